//! Helpers shared by the HTTP server tests: the HTTP side of the one [`TestServer`]
//! (`tests/common`: both servers over one container, 127.0.0.1 with a free port for
//! HTTP), a real HTTP client (hyper's), an SSE client that parses what it reads, raw TCP
//! for what a well-behaved client would never do, and bounded waits.
#![allow(dead_code)]

use bytes::Bytes;
use eric_sse::{ParsedEvent, Parser};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

#[path = "../common/mod.rs"]
mod common;
#[allow(unused_imports)] // each test binary uses its own part
pub use common::{bounded, eventually, path_prefix, prefix_for, RawStream, TestServer, WAIT};

impl TestServer {
    /// A request on a new connection.
    pub async fn request(&self, method: Method, path: &str) -> Reply {
        self.send(method, path, &[], None).await
    }

    /// A request with a body.
    pub async fn request_with(&self, method: Method, path: &str, body: &str) -> Reply {
        self.send(method, path, &[], Some(body)).await
    }

    /// A request with headers and an optional body, on a new connection.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let (mut sender, connection) = handshake(self.addr).await;
        let target = format!("{}{path}", prefix_for(self.addr));
        let mut request = Request::builder().method(method).uri(target);
        request = request.header("host", self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let declares_type = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !declares_type {
            // What the server requires of a body (415 otherwise).
            request = request.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default().to_owned()));
        let request = request.body(body).expect("a valid request");
        let response = bounded("the response head", sender.send_request(request))
            .await
            .expect("the server answers");
        let (parts, body) = response.into_parts();
        let body = bounded("the response body", body.collect())
            .await
            .expect("the whole body")
            .to_bytes();
        connection.abort();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Creates a channel over HTTP; its id.
    pub async fn create(&self) -> String {
        let reply = self.request(Method::PUT, "/create").await;
        reply.assert_ok();
        reply.json()["channel_id"].as_str().unwrap().to_owned()
    }

    /// Subscribes a listener over HTTP; its id.
    pub async fn subscribe(&self, channel: &str) -> String {
        let reply = self
            .request(Method::POST, &format!("/subscribe?channel_id={channel}"))
            .await;
        reply.assert_ok();
        reply.json()["listener_id"].as_str().unwrap().to_owned()
    }

    /// Broadcasts `{"type": msg_type, "payload": payload}` over HTTP.
    pub async fn broadcast(&self, channel: &str, msg_type: &str, payload: Value) {
        let body = serde_json::json!({"type": msg_type, "payload": payload}).to_string();
        let reply = self
            .request_with(
                Method::POST,
                &format!("/broadcast?channel_id={channel}"),
                &body,
            )
            .await;
        reply.assert_ok();
        assert_eq!(reply.json(), Value::Null);
    }

    /// Opens an event stream at `path`.
    pub async fn stream(&self, path: &str) -> SseClient {
        SseClient::open(self.addr, path, &[]).await
    }

    /// The event id of `offset` in the log of `channel`, as a client sends it back.
    pub fn position(&self, channel: &str, offset: u64) -> String {
        let epoch = self.container.get(channel).unwrap().epoch();
        eric_core::Position::new(epoch, offset).to_string()
    }
}

async fn handshake(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    JoinHandle<()>,
) {
    let tcp = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("the server accepts");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("the handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, connection)
}

/// A whole answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the body is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `message` of a JSON error answer.
    pub fn message(&self) -> String {
        let json = self.json();
        json["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {json}"))
            .to_owned()
    }

    /// Asserts a `200` with a JSON body.
    pub fn assert_ok(&self) {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.headers["content-type"], "application/json");
    }

    /// Asserts an error answer: its status, JSON content type, and a message containing
    /// every one of `needles`.
    pub fn assert_error(&self, status: StatusCode, needles: &[&str]) {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.headers["content-type"], "application/json");
        let message = self.message();
        for needle in needles {
            assert!(
                message.contains(needle),
                "{message:?} should mention {needle:?}"
            );
        }
    }
}

/// An open `text/event-stream` response, read through eric-sse's parser.
pub struct SseClient {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    parser: Parser,
    connection: JoinHandle<()>,
    ended: bool,
}

impl SseClient {
    /// Opens a stream at `path` with extra request `headers`.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let (mut sender, connection) = handshake(addr).await;
        let target = format!("{}{path}", prefix_for(addr));
        let mut request = Request::get(target).header("host", addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::new())).unwrap();
        let response = bounded("the stream's response head", sender.send_request(request))
            .await
            .expect("the server answers");
        let (parts, body) = response.into_parts();
        SseClient {
            status: parts.status,
            headers: parts.headers,
            body,
            parser: Parser::new().with_comments(true),
            connection,
            ended: false,
        }
    }

    /// Opens a stream resuming after `last_event_id`.
    pub async fn resume(addr: SocketAddr, path: &str, last_event_id: &str) -> SseClient {
        SseClient::open(addr, path, &[("last-event-id", last_event_id)]).await
    }

    /// Reads one more frame into the parser; false once the body has ended.
    async fn read_more(&mut self) -> bool {
        if self.ended {
            return false;
        }
        match self.body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    self.parser.feed(&data);
                }
                true
            }
            Some(Err(error)) => panic!("the stream failed: {error}"),
            None => {
                self.parser.finish();
                self.ended = true;
                false
            }
        }
    }

    /// The next event or comment, or `None` when the stream ended; fails after [`WAIT`].
    pub async fn next_item(&mut self) -> Option<eric_sse::Item> {
        bounded("the next stream item", async {
            loop {
                if let Some(item) = self.parser.next_item() {
                    return Some(item);
                }
                if !self.read_more().await {
                    return None;
                }
            }
        })
        .await
    }

    /// The next event, skipping comments; fails if the stream ends first or after [`WAIT`].
    pub async fn next_event(&mut self) -> ParsedEvent {
        loop {
            match self.next_item().await {
                Some(eric_sse::Item::Event(event)) => return event,
                Some(eric_sse::Item::Comment(_)) => continue,
                None => panic!("the stream ended while an event was expected"),
            }
        }
    }

    /// The next `n` events.
    pub async fn next_events(&mut self, n: usize) -> Vec<ParsedEvent> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.next_event().await);
        }
        events
    }

    /// Whether nothing arrives within `quiet` (comments aside).
    pub async fn quiet_for(&mut self, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, async {
            loop {
                match self.next_item().await {
                    Some(eric_sse::Item::Comment(_)) => continue,
                    _ => return,
                }
            }
        })
        .await
        .is_err()
    }

    /// Reads to the end of the stream; the events left. Fails after [`WAIT`].
    pub async fn rest(&mut self) -> Vec<ParsedEvent> {
        let mut events = Vec::new();
        while let Some(item) = self.next_item().await {
            if let eric_sse::Item::Event(event) = item {
                events.push(event);
            }
        }
        events
    }

    /// The reconnection time the stream set.
    pub fn retry(&self) -> Option<u64> {
        self.parser.reconnection_time()
    }

    /// The comments seen so far.
    pub fn comments(&self) -> u64 {
        self.parser.comment_count()
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        // Closes the TCP connection.
        self.connection.abort();
    }
}

/// A raw TCP client: writes `request` as given and reads the response head.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&with_prefix_of(prefix_for(addr), request))
        .await
        .expect("write the request");
    let head = read_head(&mut tcp).await;
    (tcp, head)
}

/// Reads up to the end of a response head (the blank line).
pub async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    bounded("the response head", async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tcp.read(&mut byte).await.expect("read the head");
            assert!(
                n > 0,
                "connection closed before the head: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
    })
    .await;
    String::from_utf8(head).expect("an ASCII head")
}

/// Reads until what was read contains `needle` (fails if the connection closes first);
/// everything read.
pub async fn read_until(tcp: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    bounded("the expected bytes", async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    String::from_utf8(seen).expect("UTF-8")
}

/// Reads until the server closes the connection; everything read.
pub async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    bounded(
        "the server closes the connection",
        tcp.read_to_end(&mut rest),
    )
    .await
    .expect("read to the end");
    rest
}

/// The JSON `data` of each event.
pub fn data(events: &[ParsedEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| e.json().expect("JSON data"))
        .collect()
}

/// The `id` of each event.
pub fn ids(events: &[ParsedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| offset_of(&e.last_event_id).to_owned())
        .collect()
}

/// The offset part of an event id (`<epoch>-<offset>`).
pub fn offset_of(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// `requests` (one or more, pipelined) with [`path_prefix`] put before the target of
/// each request line: a line at the start or after a blank line that reads
/// `METHOD /...`.
pub fn with_prefix(requests: &[u8]) -> Vec<u8> {
    with_prefix_of(path_prefix(), requests)
}

/// `requests` with `prefix` put before the target of each request line.
fn with_prefix_of(prefix: &str, requests: &[u8]) -> Vec<u8> {
    let prefix = prefix.as_bytes();
    let mut out = Vec::with_capacity(requests.len() + 4 * prefix.len());
    let mut at_request_line = true;
    let mut i = 0;
    while i < requests.len() {
        if at_request_line && !prefix.is_empty() {
            let method_len = requests[i..]
                .iter()
                .take_while(|b| b.is_ascii_uppercase())
                .count();
            if method_len > 0 && requests[i + method_len..].starts_with(b" /") {
                out.extend_from_slice(&requests[i..=i + method_len]);
                out.extend_from_slice(prefix);
                i += method_len + 1;
            }
        }
        out.push(requests[i]);
        i += 1;
        at_request_line = out.ends_with(b"\r\n\r\n");
    }
    out
}
