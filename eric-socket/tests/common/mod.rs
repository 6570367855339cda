//! Helpers shared by the Unix server tests: a server on a temporary socket, raw clients
//! that check bytes exactly, and bounded waits.
#![allow(dead_code)]

use eric_socket::unix::ConnectionGauge;
use eric_socket::{ChannelContainer, ShutdownHandle, SocketClient, UnixServer, UnixServerConfig};
use std::io;
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

/// An eric Unix server running in the test's runtime on a temporary socket.
pub struct TestServer {
    pub path: PathBuf,
    pub container: Arc<ChannelContainer>,
    pub stop: ShutdownHandle,
    pub gauge: ConnectionGauge,
    task: JoinHandle<io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A server with default settings.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose settings `configure` adjusts.
    pub async fn start_with(configure: impl FnOnce(&mut UnixServerConfig)) -> TestServer {
        let dir = socket_dir();
        let path = dir.path().join("eric.sock");
        let mut config = UnixServerConfig::new(&path);
        configure(&mut config);
        let container = Arc::new(ChannelContainer::new());
        let server = UnixServer::bind(config, Arc::clone(&container))
            .await
            .expect("the server binds");
        let stop = server.shutdown_handle();
        let gauge = server.connection_gauge();
        let task = tokio::spawn(server.run());
        TestServer {
            path,
            container,
            stop,
            gauge,
            task,
            _dir: dir,
        }
    }

    /// A typed client of this server.
    pub fn client(&self) -> SocketClient {
        SocketClient::new(&self.path)
    }

    /// Sends raw bytes as one command and returns the whole answer as text.
    pub async fn send(&self, command: &str) -> String {
        send_raw(&self.path, command.as_bytes()).await
    }

    /// Creates a channel with `c` and returns its id.
    pub async fn channel(&self) -> String {
        let id = self.send(r#"{"v": "c"}"#).await;
        assert!(is_decimal_id(&id), "`c` answered {id:?}");
        id
    }

    /// Registers a listener on `channel` with `r` and returns its id.
    pub async fn listener(&self, channel: &str) -> String {
        let id = self
            .send(&format!(r#"{{"v": "r", "c": "{channel}"}}"#))
            .await;
        assert!(is_decimal_id(&id), "`r` answered {id:?}");
        id
    }

    /// Checks the server still serves: a `c` gets a fresh channel id.
    pub async fn assert_serves(&self) {
        let id = self.channel().await;
        assert!(self.container.get(&id).is_ok());
    }

    /// The number of listeners of `channel`.
    pub fn listeners_of(&self, channel: &str) -> usize {
        self.container.get(channel).unwrap().listener_count()
    }

    /// Stops the server and waits for `run` to return.
    pub async fn shutdown(self) {
        self.stop.shutdown();
        bounded("the server stops", self.task)
            .await
            .expect("the server task does not panic")
            .expect("the server stops cleanly");
        assert!(
            !self.path.exists(),
            "the socket file is removed on shutdown"
        );
    }
}

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
