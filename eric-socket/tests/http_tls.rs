//! TLS and HTTP/2: ALPN picks HTTP/2 or HTTP/1.1, many event streams share one HTTP/2
//! connection, h2c with prior knowledge on plain TCP, a certificate reloaded without
//! dropping open streams, tokens checked over HTTP/2 too.
#![cfg(feature = "http")]

mod tls_support;

use bytes::Bytes;
use eric_core::Message;
use eric_socket::http::auth::{AccessConfig, JwtKey};
use eric_socket::http::{TlsConfig, TlsReloader};
use eric_socket::{ChannelContainer, HttpServer, HttpServerConfig, ShutdownHandle};
use eric_sse::{Item, ParsedEvent, Parser};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls_support::TestCa;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Every wait of these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// A running HTTP server, stopped by [`Running::stop`].
struct Running {
    addr: SocketAddr,
    container: Arc<ChannelContainer>,
    reloader: Option<TlsReloader>,
    stop: ShutdownHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(configure: impl FnOnce(&mut HttpServerConfig)) -> Running {
        let mut config = HttpServerConfig::new("127.0.0.1:0".parse().unwrap());
        configure(&mut config);
        let container = Arc::new(ChannelContainer::new());
        container.add_with_id("c").unwrap();
        let server = HttpServer::bind(config, Arc::clone(&container))
            .await
            .unwrap();
        Running {
            addr: server.local_addr(),
            reloader: server.tls_reloader(),
            stop: server.shutdown_handle(),
            container,
            task: tokio::spawn(server.run()),
        }
    }

    async fn tls(files: &TlsConfig) -> Running {
        let files = files.clone();
        Running::start(move |config| config.tls = Some(files)).await
    }

    fn tick(&self, n: u64) {
        self.container
            .get("c")
            .unwrap()
            .broadcast(Message::new("tick", json!({ "n": n })));
    }

    async fn stop(self) {
        self.stop.shutdown();
        bounded("the server stops", self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// An HTTP/2 client connection over `io`.
async fn h2<I>(io: I) -> http2::SendRequest<Empty<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .expect("the HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// An HTTP/1.1 client connection over `io`.
async fn h1<I>(io: I) -> http1::SendRequest<Empty<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .expect("the HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    // HTTP/2 names the host in the URI (`:authority`); HTTP/1.1 clients add `host` from it.
    let mut request = Request::get(format!("https://localhost{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Empty::new()).unwrap()
}

fn get_h1(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap()
}

async fn body_text(response: Response<Incoming>) -> String {
    let bytes = bounded("the body", response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The events of a response body.
struct Events {
    body: Incoming,
    parser: Parser,
}

impl Events {
    fn new(response: Response<Incoming>) -> Events {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Events {
            body: response.into_body(),
            parser: Parser::new(),
        }
    }

    async fn next(&mut self) -> ParsedEvent {
        bounded("the next event", async {
            loop {
                if let Some(Item::Event(event)) = self.parser.next_item() {
                    return event;
                }
                let frame = self
                    .body
                    .frame()
                    .await
                    .expect("the stream goes on")
                    .expect("a frame");
                if let Ok(data) = frame.into_data() {
                    self.parser.feed(&data);
                }
            }
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_chooses_http2_or_http11_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.server_files(dir.path(), "server");
    let server = Running::tls(&files).await;

    let tls = ca.connect(server.addr, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut sender = h2(tls).await;
    let response = sender.send_request(get("/channels", &[])).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(body_text(response).await, r#"["c"]"#);

    let tls = ca.connect(server.addr, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = h1(tls).await;
    let response = sender.send_request(get_h1("/channels")).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(body_text(response).await, r#"["c"]"#);

    // A client offering no ALPN gets HTTP/1.1.
    let mut sender = h1(ca.connect(server.addr, &[]).await).await;
    let response = sender.send_request(get_h1("/watch/c")).await.unwrap();
    let mut events = Events::new(response);
    server.tick(1);
    assert_eq!(events.next().await.data, r#"{"n":1}"#);
    drop(events);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_event_streams_share_one_http2_connection_and_each_gets_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.server_files(dir.path(), "server");
    let server = Running::tls(&files).await;
    let mut sender = h2(ca.connect(server.addr, &[b"h2"]).await).await;
    let mut streams = Vec::new();
    for _ in 0..12 {
        let response = bounded("a stream opens", sender.send_request(get("/watch/c", &[])))
            .await
            .unwrap();
        streams.push(Events::new(response));
    }
    // Every stream is registered before its head leaves: nothing broadcast now is lost.
    for n in 1..=3 {
        server.tick(n);
    }
    for events in &mut streams {
        for n in 1..=3 {
            assert_eq!(events.next().await.data, format!(r#"{{"n":{n}}}"#));
        }
    }
    assert_eq!(server.container.get("c").unwrap().listener_count(), 12);
    drop(streams);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_speaks_http2_to_a_client_with_prior_knowledge() {
    let server = Running::start(|_| {}).await;
    let mut sender = h2(TcpStream::connect(server.addr).await.unwrap()).await;
    let response = sender.send_request(get("/channels", &[])).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(body_text(response).await, r#"["c"]"#);
    let mut events = Events::new(sender.send_request(get("/watch/c", &[])).await.unwrap());
    let mut other = Events::new(sender.send_request(get("/watch/c", &[])).await.unwrap());
    server.tick(7);
    assert_eq!(events.next().await.data, r#"{"n":7}"#);
    assert_eq!(other.next().await.data, r#"{"n":7}"#);
    drop((events, other));
    // HTTP/1.1 on the same port is as before.
    let mut sender = h1(TcpStream::connect(server.addr).await.unwrap()).await;
    let response = sender.send_request(get_h1("/channels")).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_certificate_serves_new_connections_and_open_streams_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, first) = ca.server_files(dir.path(), "server");
    let server = Running::tls(&files).await;
    let tls = ca.connect(server.addr, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], first);
    let mut sender = h2(tls).await;
    let mut open = Events::new(sender.send_request(get("/watch/c", &[])).await.unwrap());

    // A renewal: new files at the same paths, then the reload (SIGHUP in `eric serve`).
    let (renewed, second) = ca.server_files(dir.path(), "renewed");
    std::fs::rename(&renewed.cert_path, &files.cert_path).unwrap();
    std::fs::rename(&renewed.key_path, &files.key_path).unwrap();
    server.reloader.as_ref().unwrap().reload().unwrap();
    let tls = ca.connect(server.addr, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], second);
    assert_ne!(first, second);
    server.tick(1);
    assert_eq!(
        open.next().await.data,
        r#"{"n":1}"#,
        "the open stream goes on"
    );

    // Files that do not go together are refused; the certificate in use stays.
    std::fs::write(
        &files.key_path,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let error = server.reloader.as_ref().unwrap().reload().unwrap_err();
    assert!(
        error.to_string().contains("cannot be used together"),
        "{error}"
    );
    let tls = ca.connect(server.addr, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0], second);
    drop(open);
    server.stop().await;
}

#[tokio::test]
async fn unusable_certificate_files_fail_the_bind_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsConfig::new(dir.path().join("none.crt"), dir.path().join("none.key"));
    let mut config = HttpServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.tls = Some(missing);
    let error = HttpServer::bind(config.clone(), Arc::new(ChannelContainer::new()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("none.crt"), "{error}");
    std::fs::write(dir.path().join("none.crt"), "not a certificate").unwrap();
    let error = HttpServer::bind(config, Arc::new(ChannelContainer::new()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no certificate in"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_over_http2_as_over_http11() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.server_files(dir.path(), "server");
    let server = Running::start(move |config| {
        config.tls = Some(files);
        config.access = AccessConfig {
            key: Some(JwtKey::hs256(b"secret").unwrap()),
            ..AccessConfig::default()
        };
    })
    .await;
    let mut sender = h2(ca.connect(server.addr, &[b"h2"]).await).await;
    let response = sender.send_request(get("/watch/c", &[])).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": exp, "eric": {"subscribe": ["c"]}}),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    // HTTP/2 may split cookies into several headers: the token is found in any.
    let response = sender
        .send_request(get(
            "/watch/c",
            &[
                ("cookie", "a=1"),
                ("cookie", &format!("eric_token={token}")),
            ],
        ))
        .await
        .unwrap();
    let mut events = Events::new(response);
    server.tick(1);
    assert_eq!(events.next().await.data, r#"{"n":1}"#);
    drop(events);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_http2_streams_after_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.server_files(dir.path(), "server");
    let server = Running::tls(&files).await;
    let mut sender = h2(ca.connect(server.addr, &[b"h2"]).await).await;
    let mut events = Events::new(sender.send_request(get("/watch/c", &[])).await.unwrap());
    server.tick(1);
    server.stop().await;
    // What was queued before the stop is written, then the stream ends cleanly.
    assert_eq!(events.next().await.data, r#"{"n":1}"#);
    let rest = bounded("the end of the stream", async {
        let mut rest = Vec::new();
        while let Some(frame) = events.body.frame().await {
            rest.extend_from_slice(&frame.unwrap().into_data().unwrap_or_default());
        }
        rest
    })
    .await;
    assert!(rest.is_empty(), "nothing after the queued event: {rest:?}");
}
