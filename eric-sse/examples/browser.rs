//! eric-sse in a browser, on a bare hyper 1.x server: a page that opens an `EventSource`,
//! and a channel that broadcasts a tick every second.
//!
//! ```text
//! cargo run -p eric-sse --features http --example browser [PORT]
//! ```
//! then open <http://127.0.0.1:3000/>, or `curl -N http://127.0.0.1:3000/events`.
//!
//! The SSE part is one line, `sse_response(SseBody::new(stream))`: the body writes the
//! `retry:`, every event with its `id:`, and keep-alive comments. The rest is hyper's
//! usual connection loop and the choice of which listener a request streams.

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eric_core::{Listener, Message, MessageStream, OverflowPolicy, QueueConfig, Retention};
use eric_sse::http::{sse_response, SseBody};
use eric_sse::{SseAdapter, SseChannel, DEFAULT_HISTORY};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

/// The page, or an event stream: two bodies, one response type, no boxing.
type Body = Either<Full<Bytes>, SseBody<MessageStream<SseAdapter>>>;

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>eric-sse ticks</title>
<p id="state">connecting…</p>
<ol id="ticks"></ol>
<script>
  // One listener per page load. The EventSource reconnects to this same URL by itself,
  // with the id of the last event it saw, so a dropped connection resumes where it was.
  const client = Math.random().toString(36).slice(2);
  const source = new EventSource("/events?client=" + client);
  const state = document.getElementById("state");
  source.onopen = () => (state.textContent = "open");
  source.onerror = () => (state.textContent = "reconnecting…");
  source.addEventListener("tick", (event) => {
    const tick = JSON.parse(event.data);
    const item = document.createElement("li");
    item.textContent = `id ${event.lastEventId}: n = ${tick.n} at ${tick.at}`;
    document.getElementById("ticks").append(item);
  });
</script>
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(port) => port.parse().expect("usage: browser [PORT]"),
        None => 3000,
    };
    // The channel's log (the last DEFAULT_HISTORY events) is what makes resume possible.
    // The queue bound is for pages closed for good: their listener stops being read, and
    // once 1,024 ticks (17 min) are waiting it is removed instead of growing forever.
    let queue = QueueConfig::bounded(1024, OverflowPolicy::Disconnect);
    let channel = SseChannel::builder()
        .queue_config(queue)
        .retention(Retention::entries(DEFAULT_HISTORY))
        .build();
    tokio::spawn(tick(channel.clone()));

    let tcp = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = tcp.local_addr()?;
    println!("open http://{addr}/ or run: curl -N http://{addr}/events");
    loop {
        let (stream, _) = tcp.accept().await?;
        let channel = channel.clone();
        let service = service_fn(move |request| {
            let response = route(&channel, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        // A client that leaves mid-stream ends its connection with an error: nothing to
        // report. Dropping the connection drops the body, and with it the stream.
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

fn route(channel: &SseChannel, request: &Request<Incoming>) -> Response<Body> {
    match request.uri().path() {
        "/" => Response::builder()
            .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(Either::Left(Full::from(PAGE)))
            .expect("a valid response"),
        "/events" => match events(channel, request) {
            Ok(events) => sse_response(SseBody::new(events)).map(Either::Right),
            Err(error) => text(StatusCode::CONFLICT, error.to_string()),
        },
        _ => text(StatusCode::NOT_FOUND, "not found".to_owned()),
    }
}

/// What `/events` streams.
fn events(
    channel: &SseChannel,
    request: &Request<Incoming>,
) -> eric_core::Result<MessageStream<SseAdapter>> {
    let client = request.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("client="))
    });
    // Unnamed (curl): a listener of its own, removed when its stream is dropped; a
    // reconnecting client resumes from the channel's log after the last event it saw.
    let Some(client) = client else {
        return Ok(match last_event_id(request) {
            Some(id) => channel.watch_after(id),
            None => channel.watch(),
        });
    };
    // Named by the page, the listener outlives its connections: what is broadcast while the
    // browser reconnects waits in its queue, and what went out on a connection that died
    // before the browser saw it is still in the channel's log.
    let listener = match channel.get_listener(client) {
        Ok(listener) => listener,
        Err(_) => {
            let listener = Listener::with_id(client).queue_config(channel.queue_config());
            channel.register_listener(listener)?
        }
    };
    listener.start();
    // Caveat of a demo: a connection that died silently keeps its stream until hyper
    // notices, and may take an event or two from the shared queue meanwhile. eric-socket's
    // `/stream` ends a listener's older stream before it starts a new one.
    Ok(match last_event_id(request) {
        Some(id) => channel.message_stream_after(&listener, id),
        None => channel.message_stream(&listener),
    })
}

/// The `Last-Event-ID` an `EventSource` sends when it reconnects: a position in the
/// channel's log, `<epoch>-<offset>` (anything else resumes with a gap marker).
fn last_event_id(request: &Request<Incoming>) -> Option<&str> {
    request.headers().get("last-event-id")?.to_str().ok()
}

fn text(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::from(text + "\n")));
    *response.status_mut() = status;
    response
}

/// Broadcasts `{"n": n, "at": "<time>"}` every second, to every listener at once.
async fn tick(channel: SseChannel) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    for n in 1u64.. {
        interval.tick().await;
        channel.broadcast(Message::new("tick", json!({"n": n, "at": utc_time()})));
    }
}

/// The time of day in UTC, `HH:MM:SS.mmmZ`: enough for a demo, with no date crate.
fn utc_time() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (s, ms) = (since_epoch.as_secs(), since_epoch.subsec_millis());
    format!(
        "{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}
