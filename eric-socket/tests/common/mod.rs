//! Helpers shared by the socket tests: [`TestServer`] (both of eric's servers over one
//! container), raw Unix clients that check bytes exactly, and bounded waits. The HTTP
//! tests reach it through `tests/http_support`, which adds the HTTP clients.
#![allow(dead_code)]

use eric_socket::unix::ConnectionGauge;
use eric_socket::{
    ChannelContainer, ChannelSettings, ShutdownHandle, SocketClient, UnixServer, UnixServerConfig,
};
#[cfg(feature = "http")]
use eric_socket::{HttpServer, HttpServerConfig};
use std::io;
#[cfg(feature = "http")]
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

#[path = "../waits/mod.rs"]
mod waits;
#[allow(unused_imports)] // each test binary uses its own part
pub use waits::{bounded, eventually, WAIT};

/// A directory for socket files, removed with its contents when dropped.
pub fn socket_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("eric-unix-test")
        .tempdir()
        .expect("a temporary directory")
}

/// eric's servers as a test runs them, in the test's runtime: the Unix server on a
/// temporary socket and (feature `http`) the HTTP server on 127.0.0.1 with a free port,
/// over one container and one shutdown handle, as `eric serve` runs them. The one
/// server helper of every socket test: the Unix tests use `path`, the HTTP tests `addr`
/// (their request helpers are in `tests/http_support`).
pub struct TestServer {
    /// The Unix server's socket file.
    pub path: PathBuf,
    /// The HTTP server's address.
    #[cfg(feature = "http")]
    pub addr: SocketAddr,
    pub container: Arc<ChannelContainer>,
    /// Stops both servers.
    pub stop: ShutdownHandle,
    /// The Unix server's open connections.
    pub gauge: ConnectionGauge,
    tasks: Vec<(&'static str, JoinHandle<io::Result<()>>)>,
    _dir: tempfile::TempDir,
    /// The test's own Redis, when the container keeps its state there.
    _redis: Option<eric_redis::testing::RedisServer>,
}

/// The container of a test server: in memory, or on the Redis engine over a Redis of
/// the test's own when `ERIC_TEST_ENGINE=redis` (run the same tests on either engine).
pub fn container_for_tests(
    settings: ChannelSettings,
) -> (
    Arc<ChannelContainer>,
    Option<eric_redis::testing::RedisServer>,
) {
    match std::env::var("ERIC_TEST_ENGINE").as_deref() {
        Ok("redis") => {
            let redis = eric_redis::testing::RedisServer::start();
            let engine =
                eric_redis::RedisEngine::connect(eric_redis::RedisConfig::new(redis.url()))
                    .expect("the test's Redis answers");
            (
                Arc::new(ChannelContainer::with_engine(settings, Arc::new(engine))),
                Some(redis),
            )
        }
        Ok("memory") | Err(_) => (Arc::new(ChannelContainer::with_settings(settings)), None),
        Ok(other) => panic!("ERIC_TEST_ENGINE is memory or redis, not {other:?}"),
    }
}

type Engine = (
    Arc<ChannelContainer>,
    Option<eric_redis::testing::RedisServer>,
);

fn default_container() -> Engine {
    container_for_tests(ChannelSettings::default())
}

impl TestServer {
    /// Both servers with default settings.
    pub async fn start() -> TestServer {
        TestServer::launch(default_container(), |_| {}, |_| {}).await
    }

    /// Both servers, the Unix one with the settings `configure` adjusts.
    pub async fn start_unix_with(configure: impl FnOnce(&mut UnixServerConfig)) -> TestServer {
        TestServer::launch(default_container(), configure, |_| {}).await
    }

    /// Both servers, the HTTP one with the settings `configure` adjusts.
    #[cfg(feature = "http")]
    pub async fn start_with(configure: impl FnOnce(&mut HttpServerConfig)) -> TestServer {
        TestServer::launch(default_container(), |_| {}, configure).await
    }

    /// Both servers over `container`, the HTTP one with the settings `configure`
    /// adjusts.
    #[cfg(feature = "http")]
    pub async fn start_on(
        container: Arc<ChannelContainer>,
        configure: impl FnOnce(&mut HttpServerConfig),
    ) -> TestServer {
        TestServer::launch((container, None), |_| {}, configure).await
    }

    /// Both servers, each with the settings its closure adjusts.
    #[cfg(feature = "http")]
    pub async fn start_both_with(
        configure_unix: impl FnOnce(&mut UnixServerConfig),
        configure_http: impl FnOnce(&mut HttpServerConfig),
    ) -> TestServer {
        TestServer::launch(default_container(), configure_unix, configure_http).await
    }

    async fn launch(
        (container, redis): Engine,
        configure_unix: impl FnOnce(&mut UnixServerConfig),
        configure_http: impl FnOnce(&mut HttpConfig),
    ) -> TestServer {
        TestServer::launch_as(
            mounted(),
            (container, redis),
            configure_unix,
            configure_http,
        )
        .await
    }

    async fn launch_as(
        mounted: bool,
        (container, redis): Engine,
        configure_unix: impl FnOnce(&mut UnixServerConfig),
        configure_http: impl FnOnce(&mut HttpConfig),
    ) -> TestServer {
        #[cfg(not(feature = "http"))]
        let _ = (configure_http, mounted);
        let stop = ShutdownHandle::new();
        let mut tasks = Vec::new();

        #[cfg(feature = "http")]
        let addr = if mounted {
            launch_mounted(&container, &stop, configure_http, &mut tasks).await
        } else {
            let mut config = HttpServerConfig::new("127.0.0.1:0".parse().unwrap());
            configure_http(&mut config);
            let server = HttpServer::bind(config, Arc::clone(&container))
                .await
                .expect("the HTTP server binds")
                .with_shutdown_handle(stop.clone());
            let addr = server.local_addr();
            tasks.push(("the HTTP server", tokio::spawn(server.run())));
            addr
        };

        let dir = socket_dir();
        let path = dir.path().join("eric.sock");
        let mut config = UnixServerConfig::new(&path);
        configure_unix(&mut config);
        let server = UnixServer::bind(config, Arc::clone(&container))
            .await
            .expect("the Unix server binds")
            .with_shutdown_handle(stop.clone());
        let gauge = server.connection_gauge();
        tasks.push(("the Unix server", tokio::spawn(server.run())));

        TestServer {
            path,
            #[cfg(feature = "http")]
            addr,
            container,
            stop,
            gauge,
            tasks,
            _dir: dir,
            _redis: redis,
        }
    }

    /// Both servers, the HTTP one eric's own [`HttpServer`] even where the tests run
    /// against the mounted API: for the tests of what belongs to the listener (the
    /// header read timeout, the grace period of shutdown, the direct stream path),
    /// which a mounted API leaves to the application's server.
    #[cfg(feature = "http")]
    pub async fn start_listener_with(configure: impl FnOnce(&mut HttpServerConfig)) -> TestServer {
        let server = TestServer::launch_as(false, default_container(), |_| {}, configure).await;
        OWN_LISTENERS.lock().unwrap().push(server.addr);
        server
    }

    /// A typed client of the Unix server.
    pub fn client(&self) -> SocketClient {
        SocketClient::new(&self.path)
    }

    /// Sends raw bytes as one command to the Unix server and returns the whole answer
    /// as text.
    pub async fn send_command(&self, command: &str) -> String {
        send_raw(&self.path, command.as_bytes()).await
    }

    /// Creates a channel with `c` and returns its id.
    pub async fn channel(&self) -> String {
        let id = self.send_command(r#"{"v": "c"}"#).await;
        assert!(is_decimal_id(&id), "`c` answered {id:?}");
        id
    }

    /// Registers a listener on `channel` with `r` and returns its id.
    pub async fn listener(&self, channel: &str) -> String {
        let id = self
            .send_command(&format!(r#"{{"v": "r", "c": "{channel}"}}"#))
            .await;
        assert!(is_decimal_id(&id), "`r` answered {id:?}");
        id
    }

    /// Checks the Unix server still serves: a `c` gets a fresh channel id.
    pub async fn assert_serves(&self) {
        let id = self.channel().await;
        assert!(self.container.get(&id).is_ok());
    }

    /// The number of listeners of `channel`.
    pub fn listeners_of(&self, channel: &str) -> usize {
        self.container.snapshot().get(channel).map_or(0, Vec::len)
    }

    /// Stops both servers and waits for each `run` to return `Ok`.
    pub async fn shutdown(mut self) {
        self.stop.shutdown();
        for (server, task) in std::mem::take(&mut self.tasks) {
            bounded(&format!("{server} stops"), task)
                .await
                .unwrap_or_else(|panic| panic!("{server} panicked: {panic}"))
                .unwrap_or_else(|error| panic!("{server} failed: {error}"));
        }
        assert!(
            !self.path.exists(),
            "the socket file is removed on shutdown"
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that failed half-way still stops its servers.
        self.stop.shutdown();
    }
}

/// Whether this copy of the helpers serves the HTTP tests through eric's API mounted
/// in an axum application rather than through [`HttpServer`]: tests/http_mounted.rs
/// compiles the route and stream tests, and these helpers with them, as modules of its
/// own crate, so the path of this module says which of the two test crates it is in.
pub fn mounted() -> bool {
    cfg!(feature = "tower") && module_path!().starts_with("http_mounted::")
}

/// The prefix the mounted API is served under (with a route of the application's own
/// at `/`, beside it).
pub const MOUNT_PREFIX: &str = "/eric";

/// What goes before a request path of the tests: [`MOUNT_PREFIX`] where the API is
/// mounted, nothing for `HttpServer`.
pub fn path_prefix() -> &'static str {
    if mounted() {
        MOUNT_PREFIX
    } else {
        ""
    }
}

/// The addresses of the `HttpServer`s that [`TestServer::start_listener_with`] started
/// where the other tests run against the mounted API.
#[cfg(feature = "http")]
static OWN_LISTENERS: std::sync::Mutex<Vec<SocketAddr>> = std::sync::Mutex::new(Vec::new());

/// What goes before a request path for the server at `addr`: [`path_prefix`], unless
/// that server is an `HttpServer` of [`TestServer::start_listener_with`].
#[cfg(feature = "http")]
pub fn prefix_for(addr: SocketAddr) -> &'static str {
    if OWN_LISTENERS.lock().unwrap().contains(&addr) {
        ""
    } else {
        path_prefix()
    }
}

/// eric's API mounted under [`MOUNT_PREFIX`] in an axum application on 127.0.0.1 with a
/// free port, served by `axum::serve` until `stop` fires (which also stops the API's
/// streams, as an application must); its address.
#[cfg(feature = "tower")]
async fn launch_mounted(
    container: &Arc<ChannelContainer>,
    stop: &ShutdownHandle,
    configure: impl FnOnce(&mut HttpServerConfig),
    tasks: &mut Vec<(&'static str, JoinHandle<io::Result<()>>)>,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = HttpServerConfig::new(addr);
    configure(&mut config);
    config.addr = addr;
    let service = eric_socket::http::HttpService::new(config, Arc::clone(container))
        .with_shutdown_handle(stop.clone());
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { "the application's own page" }),
        )
        .nest_service(MOUNT_PREFIX, service);
    let stop = stop.clone();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move { stop.wait().await });
    tasks.push((
        "the axum application",
        tokio::spawn(async move { serve.await }),
    ));
    addr
}

#[cfg(all(feature = "http", not(feature = "tower")))]
async fn launch_mounted(
    _: &Arc<ChannelContainer>,
    _: &ShutdownHandle,
    _: impl FnOnce(&mut HttpServerConfig),
    _: &mut Vec<(&'static str, JoinHandle<io::Result<()>>)>,
) -> SocketAddr {
    unreachable!("the mounted API needs the feature tower")
}

/// The HTTP server's settings, or nothing to set without the `http` feature.
#[cfg(feature = "http")]
type HttpConfig = HttpServerConfig;
#[cfg(not(feature = "http"))]
type HttpConfig = ();

/// Whether `text` is an id as the server writes them: a decimal number.
pub fn is_decimal_id(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Reads until EOF. A reset after the answer (the server closed with our unread
/// input still queued, as it does when it refuses a command early) counts as the end.
pub async fn read_to_end_or_reset(stream: &mut UnixStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => return answer,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => return answer,
            Err(error) => panic!("reading the answer: {error}"),
        }
    }
}

/// The protocol by hand: connect, write `command`, half-close, read the answer to EOF.
pub async fn send_raw(path: &Path, command: &[u8]) -> String {
    bounded("a one-shot command is answered", async {
        let mut stream = UnixStream::connect(path).await.expect("connect");
        stream.write_all(command).await.expect("write the command");
        stream.shutdown().await.expect("half-close");
        let answer = read_to_end_or_reset(&mut stream).await;
        String::from_utf8(answer).expect("answers are UTF-8")
    })
    .await
}

/// An `l` or `w` stream read line by line, bytes kept exactly (line feed included).
pub struct RawStream {
    reader: BufReader<UnixStream>,
}

impl RawStream {
    /// Sends `command` and keeps the connection open for its lines.
    pub async fn open(path: &Path, command: &str) -> RawStream {
        let mut stream = bounded("connect", UnixStream::connect(path))
            .await
            .expect("connect");
        stream.write_all(command.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        RawStream {
            reader: BufReader::new(stream),
        }
    }

    /// `w` on `channel`.
    pub async fn watch(path: &Path, channel: &str) -> RawStream {
        RawStream::open(path, &format!(r#"{{"v": "w", "c": "{channel}"}}"#)).await
    }

    /// `l` on `listener` of `channel`.
    pub async fn listen(path: &Path, channel: &str, listener: &str) -> RawStream {
        RawStream::open(
            path,
            &format!(r#"{{"v": "l", "c": "{channel}", "r": "{listener}"}}"#),
        )
        .await
    }

    /// The next line with its line feed, or `None` at EOF; fails the test after [`WAIT`].
    pub async fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = bounded("the next stream line", self.reader.read_line(&mut line))
            .await
            .expect("reading the stream");
        (read > 0).then_some(line)
    }

    /// The next line if one comes within `within`; `None` otherwise or at EOF.
    pub async fn try_line(&mut self, within: Duration) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(within, self.reader.read_line(&mut line)).await {
            Ok(Ok(read)) if read > 0 => Some(line),
            _ => None,
        }
    }

    /// The next line, which must exist.
    pub async fn line(&mut self) -> String {
        self.next_line()
            .await
            .expect("a line, not the end of the stream")
    }

    /// Asserts that nothing arrives within `quiet` (the stream stays open and silent).
    pub async fn assert_silent_for(&mut self, quiet: Duration) {
        let mut line = String::new();
        if let Ok(read) = tokio::time::timeout(quiet, self.reader.read_line(&mut line)).await {
            panic!("expected silence, got {read:?}: {line:?}");
        }
    }

    /// Asserts the stream ends (EOF) with nothing more on it.
    pub async fn assert_ends(&mut self) {
        if let Some(line) = self.next_line().await {
            panic!("expected the end of the stream, got {line:?}");
        }
    }
}

/// A stream line as the reference writes it: `json.dumps` of the SSE-adapted message
/// (`data_json` is already in `json.dumps` form), then a line feed.
pub fn line(event: &str, data_json: &str) -> String {
    format!("{{\"event\": \"{event}\", \"retry\": 5, \"data\": {data_json}}}\n")
}
