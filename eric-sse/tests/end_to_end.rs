//! End to end, over real TCP: a hyper server streams an `SseChannel` listener through
//! `SseBody`; a hyper HTTP/1.1 client (which undoes the chunked transfer encoding) feeds
//! every body frame to a `Parser`.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eric_core::{Message, MessageStream};
use eric_sse::http::{sse_response, SseBody, SseBodyConfig};
use eric_sse::{Item, ParsedEvent, Parser, SseAdapter, SseChannel};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// `future`'s output; fails the test if it takes longer than [`WAIT`].
async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Waits until `condition` holds; fails the test after [`WAIT`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    bounded(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

fn tick(n: u64) -> Message {
    Message::new("tick", json!({"n": n, "text": format!("line {n}\nand é")}))
}

/// Checks that `event` is the broadcast [`tick`] `n`, with the event id of offset `n`.
fn assert_tick(event: &ParsedEvent, n: u64) {
    assert_eq!(event.event, "tick");
    let position: eric_core::Position = event.last_event_id.parse().unwrap();
    assert_eq!(position.offset, n, "{}", event.last_event_id);
    let data: Value = event.json().unwrap();
    assert_eq!(data, json!({"n": n, "text": format!("line {n}\nand é")}));
}

type Body = Either<Empty<Bytes>, SseBody<MessageStream<SseAdapter>>>;

/// A hyper server on 127.0.0.1 (a free port): `GET /{listener id}` starts that listener of
/// its channel and streams it, after the `Last-Event-ID` if the request has one.
struct Server {
    addr: SocketAddr,
    channel: SseChannel,
    /// How many connections are being served.
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(config: SseBodyConfig) -> Server {
        let channel = SseChannel::new();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(tcp, channel.clone(), config, Arc::clone(&open)));
        Server {
            addr,
            channel,
            open,
            task,
        }
    }

    fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The connections are in the task's JoinSet: they go with it.
        self.task.abort();
    }
}

async fn serve(
    tcp: TcpListener,
    channel: SseChannel,
    config: SseBodyConfig,
    open: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = tcp.accept().await.unwrap();
        let (channel, config) = (channel.clone(), config.clone());
        let service = hyper::service::service_fn(move |request| {
            let response = respond(&channel, &config, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        let open = Arc::clone(&open);
        open.fetch_add(1, Ordering::SeqCst);
        connections.spawn(async move {
            // A client that leaves mid-stream is an error for hyper, and expected here.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn respond(
    channel: &SseChannel,
    config: &SseBodyConfig,
    request: &Request<Incoming>,
) -> Response<Body> {
    let Ok(listener) = channel.get_listener(&request.uri().path()[1..]) else {
        let mut response = Response::new(Either::Left(Empty::new()));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    listener.start();
    let last_event_id = request
        .headers()
        .get("last-event-id")
        .map(|id| id.to_str().unwrap());
    let events = match last_event_id {
        Some(id) => channel.message_stream_after(&listener, id),
        None => channel.message_stream(&listener),
    };
    sse_response(SseBody::with_config(events, config.clone())).map(Either::Right)
}

/// The event id of `offset` in the channel's log.
fn at(channel: &SseChannel, offset: u64) -> String {
    eric_core::Position::new(channel.epoch(), offset).to_string()
}

/// An SSE client on a connection of its own. Dropping it closes the connection.
struct Client {
    _sender: SendRequest<Empty<Bytes>>,
    body: Incoming,
    parser: Parser,
    connection: JoinHandle<()>,
}

impl Client {
    async fn open(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> Client {
        let tcp = bounded("connect", TcpStream::connect(addr)).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::get(path).header(http::header::HOST, addr.to_string());
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let request = request.body(Empty::new()).unwrap();
        let response = bounded("the response head", sender.send_request(request))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Client {
            _sender: sender,
            body: response.into_body(),
            parser: Parser::new().with_comments(true),
            connection,
        }
    }

    /// The next data frame of the body, once fed to the parser; `None` at its end.
    async fn frame(&mut self) -> Option<Bytes> {
        loop {
            let frame = bounded("a body frame", self.body.frame()).await?.unwrap();
            if let Ok(data) = frame.into_data() {
                self.parser.feed(&data);
                return Some(data);
            }
        }
    }

    /// The next event or comment; `None` at the end of the body.
    async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.parser.next_item() {
                return Some(item);
            }
            self.frame().await?;
        }
    }

    /// The next event, skipping comments.
    async fn next_event(&mut self) -> ParsedEvent {
        loop {
            match self.next_item().await {
                Some(Item::Event(event)) => return event,
                Some(Item::Comment(_)) => {}
                None => panic!("the stream ended"),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The connection task owns the socket: aborting it closes the connection.
        self.connection.abort();
    }
}

#[tokio::test]
async fn events_arrive_in_order_with_their_ids_and_json_data() {
    let server = Server::start(SseBodyConfig::default()).await;
    let listener = server.channel.add_listener();
    // Three wait in the queue before the client comes, the rest are broadcast live.
    for n in 1..=3 {
        server.channel.broadcast(tick(n));
    }
    let mut client = Client::open(server.addr, &format!("/{}", listener.id()), None).await;
    for n in 1..=3 {
        assert_tick(&client.next_event().await, n);
    }
    // One at a time: each arrives without waiting for the next.
    for n in 4..=10 {
        server.channel.broadcast(tick(n));
        assert_tick(&client.next_event().await, n);
    }
    // In a burst.
    for n in 11..=20 {
        server.channel.broadcast(tick(n));
    }
    for n in 11..=20 {
        assert_tick(&client.next_event().await, n);
    }
    assert_eq!(client.parser.reconnection_time(), Some(1_000));
    assert_eq!(client.parser.last_event_id(), at(&server.channel, 20));
    assert_eq!(client.parser.comment_count(), 0);
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_gets_exactly_the_missed_events() {
    let server = Server::start(SseBodyConfig::default()).await;
    let listener = server.channel.add_listener();
    let path = format!("/{}", listener.id());

    let mut client = Client::open(server.addr, &path, None).await;
    for n in 1..=5 {
        server.channel.broadcast(tick(n));
    }
    for n in 1..=5 {
        assert_tick(&client.next_event().await, n);
    }
    // Two more go out on this connection but the client never reads them: the server took
    // them from the queue, so only the channel's log still has them.
    server.channel.broadcast(tick(6));
    server.channel.broadcast(tick(7));
    eventually("the server takes 6 and 7", || {
        let stats = listener.stats();
        stats.queued == 0 && stats.delivered == 7
    })
    .await;
    let last_seen = client.parser.last_event_id().to_owned();
    assert_eq!(last_seen, at(&server.channel, 5));
    drop(client);

    // These are broadcast while the client is away.
    for n in 8..=10 {
        server.channel.broadcast(tick(n));
    }
    // Once the server has noticed the drop, the old stream takes nothing more.
    eventually("the server closes the old connection", || {
        server.open_connections() == 0
    })
    .await;

    let mut client = Client::open(server.addr, &path, Some(&last_seen)).await;
    for n in 6..=10 {
        assert_tick(&client.next_event().await, n);
    }
    // The next event is the next live one: nothing was replayed twice.
    server.channel.broadcast(tick(11));
    assert_tick(&client.next_event().await, 11);
    assert_eq!(client.parser.next_item(), None);
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let config = SseBodyConfig::default().with_keep_alive(Some(Duration::from_millis(100)));
    let server = Server::start(config).await;
    let listener = server.channel.add_listener();
    let start = Instant::now();
    let mut client = Client::open(server.addr, &format!("/{}", listener.id()), None).await;
    for _ in 0..3 {
        match client.next_item().await {
            Some(Item::Comment(text)) => assert_eq!(text, "keep-alive"),
            other => panic!("expected a keep-alive comment, got {other:?}"),
        }
    }
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.parser.comment_count(), 3);
    // The stream is still good for events after them.
    server.channel.broadcast(tick(1));
    assert_tick(&client.next_event().await, 1);
}

#[tokio::test]
async fn the_retry_arrives_before_any_event_on_an_idle_stream() {
    // No keep-alive and no event: the retry is all there is to write, and it is written.
    let config = SseBodyConfig::default()
        .with_keep_alive(None)
        .with_retry_ms(Some(2_500));
    let server = Server::start(config).await;
    let listener = server.channel.add_listener();
    let mut client = Client::open(server.addr, &format!("/{}", listener.id()), None).await;

    assert_eq!(client.frame().await.unwrap(), "retry: 2500\n\n");
    assert_eq!(client.parser.reconnection_time(), Some(2_500));
    assert_eq!(client.parser.next_item(), None);

    server.channel.broadcast(tick(1));
    let frame = client.frame().await.unwrap();
    let frame = std::str::from_utf8(&frame).unwrap();
    assert!(
        frame.starts_with(&format!("id: {}\n", at(&server.channel, 1)))
            && !frame.contains("retry:"),
        "{frame}"
    );
    assert_tick(&client.parser.next_event().unwrap(), 1);
}
