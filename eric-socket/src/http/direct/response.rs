//! The response future: writes a routed response, head and body, while it reads what
//! the client sends.

use super::chunk::{self, Chunk};
use super::head::has_token;
use crate::http::body::ResponseBody;
use crate::http::stream::LiveEvents;
use bytes::Bytes;
use eric_sse::http::SseBody;
use http::header::{self, HeaderValue};
use http::Response;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::net::TcpStream;

/// Bytes a client may send behind its stream request (a pipelined request, served
/// after the stream); more ends the connection.
const MAX_PIPELINED_BYTES: usize = 8 * 1024;

/// The response to a request the direct path read and routed, waiting to be written,
/// with what the connection needs after it.
pub(crate) struct PendingResponse {
    pub(super) response: Response<ResponseBody>,
    /// Whether the connection may serve another request after this one: the request
    /// did not ask to close it, and the server is not shutting down.
    pub(super) keep_alive: bool,
    /// The bytes the client sent after the request's head.
    pub(super) rest: Vec<u8>,
}

/// Writes the [`PendingResponse`] to a stream request: the head, then the
/// whole body or the events of a stream as chunks, reading what the client sends
/// meanwhile (the end of its connection, or a pipelined request). Written by hand
/// rather than as an `async fn`: it is the state of every idle stream, so its size is
/// most of the server's memory per subscriber.
///
/// Completes with `Some` of the bytes the client sent after its request when the
/// response is out and the connection may serve another request, or `None` when it
/// must close: the client left, a write failed, or one side asked to close.
pub(crate) struct ResponseWriter<'a> {
    stream: &'a mut TcpStream,
    /// The events of a stream; `None` for a whole body (written with the head).
    events: Option<SseBody<LiveEvents>>,
    /// `chunk` is not written yet, and what the body has ready joins it first: the head
    /// on the first poll (the opening `retry:` frame goes in the same write), and the
    /// frames of a stream that is behind, once the tasks ready before it ran (so what
    /// they published goes in the same write too).
    gathering: bool,
    /// What is being written.
    chunk: Chunk,
    /// `chunk` is the end of the response.
    last_chunk: bool,
    /// What the client sent after its request.
    rest: Vec<u8>,
    /// Neither side asked to close the connection after the response.
    keep_alive: bool,
}

impl<'a> ResponseWriter<'a> {
    /// Writes `pending` on `stream`.
    pub(crate) fn new(stream: &'a mut TcpStream, pending: PendingResponse) -> Self {
        let PendingResponse {
            response,
            keep_alive,
            rest,
        } = pending;
        let (mut parts, body) = response.into_parts();
        let response_closes = has_token(&parts.headers, header::CONNECTION, "close");
        if !keep_alive && !response_closes {
            // A response after which the server closes the connection says so (RFC 9112,
            // 9.6), as hyper's do.
            parts
                .headers
                .append(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let keep_alive = keep_alive && !response_closes;
        let mut head = Vec::with_capacity(256);
        write_head(&parts, &body, &mut head);
        let events = match body {
            ResponseBody::Full(bytes) => {
                head.extend_from_slice(bytes.as_deref().unwrap_or_default());
                None
            }
            ResponseBody::Sse(events) => Some(events),
        };
        ResponseWriter {
            stream,
            last_chunk: events.is_none(),
            gathering: events.is_some(),
            events,
            chunk: Chunk::new(Bytes::from(head)),
            rest,
            keep_alive,
        }
    }

    /// The data of the body's next frame, as shared buffers; `None` when it ended (an
    /// ended `SseBody` stays ended when polled again).
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Vec<Bytes>>> {
        let Some(events) = self.events.as_mut() else {
            return Poll::Ready(None);
        };
        let mut pieces = chunk::piece_list();
        match events.poll_batched_pieces(cx, &mut pieces) {
            Poll::Ready(Some(())) => Poll::Ready(Some(pieces)),
            Poll::Ready(None) => {
                chunk::recycle(pieces);
                Poll::Ready(None)
            }
            Poll::Pending => {
                chunk::recycle(pieces);
                Poll::Pending
            }
        }
    }

    /// Reads what the client sent; `Err` when its connection ended (or sent too much).
    fn poll_client(&mut self, cx: &mut Context<'_>) -> Result<(), ()> {
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(())) => {}
            }
            let mut incoming = [0u8; 1024];
            match self.stream.try_read(&mut incoming) {
                Ok(0) => return Err(()),
                Ok(n) if self.rest.len() + n <= MAX_PIPELINED_BYTES => {
                    self.rest.extend_from_slice(&incoming[..n]);
                }
                Ok(_) => {
                    tracing::debug!(
                        "more than {MAX_PIPELINED_BYTES} bytes sent behind a stream request: connection closed"
                    );
                    return Err(());
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(()),
            }
        }
    }
}

impl Future for ResponseWriter<'_> {
    type Output = Option<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Reading is how a client that left is noticed: the end of its connection.
        if this.poll_client(cx).is_err() {
            return Poll::Ready(None);
        }
        if std::mem::take(&mut this.gathering) {
            if let Poll::Ready(Some(data)) = this.poll_data(cx) {
                this.chunk.append_data(data);
            }
        }
        loop {
            while !this.chunk.is_written() {
                match this.chunk.poll_write(this.stream, cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if this.last_chunk {
                return Poll::Ready(this.keep_alive.then(|| std::mem::take(&mut this.rest)));
            }
            match this.poll_data(cx) {
                Poll::Ready(Some(data)) => {
                    // More than one frame came since the last write: the publishers
                    // are ahead of this stream, and more frames are likely on their
                    // way. A write costs about the same for one frame as for many, so
                    // the stream goes to the back of the scheduler's queue once and
                    // writes what came meanwhile with these. A stream that keeps up
                    // (one frame at a time) writes at once.
                    let behind = data.len() > 1;
                    this.chunk = Chunk::data(data);
                    if behind {
                        this.gathering = true;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(None) => {
                    this.chunk = Chunk::last();
                    this.last_chunk = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The status line and headers of a response, as hyper writes them: lower-case names,
/// a `date`, and the body's framing (`content-length` for a whole body, chunks for a
/// stream).
fn write_head(parts: &http::response::Parts, body: &ResponseBody, out: &mut Vec<u8>) {
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body {
        ResponseBody::Full(bytes) => {
            let length = bytes.as_ref().map_or(0, Bytes::len);
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        ResponseBody::Sse(_) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ChannelContainer;
    use crate::http::config::HttpServerConfig;
    use crate::http::state::State;
    use crate::http::stream::stop_future;
    use crate::shutdown::ShutdownHandle;
    use eric_core::Message;
    use eric_sse::http::sse_response;
    use eric_sse::SseChannel;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Wakes {
        fn take(&self) -> usize {
            self.0.swap(0, Ordering::SeqCst)
        }
    }

    /// What the client received so far (its socket is non-blocking: a loopback write
    /// is in the peer's receive queue when it returns).
    fn received(client: &mut std::net::TcpStream) -> String {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("client read: {error}"),
            }
        }
        String::from_utf8(bytes).expect("UTF-8")
    }

    fn broadcast(container: &ChannelContainer, channel: &SseChannel, n: i64) {
        container
            .broadcast(channel, Message::new("m", serde_json::json!(n)))
            .expect("broadcast");
    }

    /// The chunks of a chunked body: each chunk's data.
    fn chunks(mut body: &str) -> Vec<&str> {
        let mut out = Vec::new();
        while let Some((size, rest)) = body.split_once("\r\n") {
            let size = usize::from_str_radix(size, 16).expect("chunk size");
            out.push(&rest[..size]);
            body = rest[size..].strip_prefix("\r\n").expect("chunk end");
        }
        out
    }

    #[tokio::test]
    async fn a_stream_behind_writes_what_came_while_it_waited_in_the_same_chunk() {
        let container = Arc::new(ChannelContainer::new());
        let state = State::new(
            HttpServerConfig::default(),
            Arc::clone(&container),
            ShutdownHandle::new(),
            None,
        );
        let channel = container.add_with_id("c").expect("channel");
        let events = container.watch(&channel, None).expect("watch");
        let permit = Arc::clone(&state.streams)
            .try_acquire_owned()
            .expect("permit");
        let live = LiveEvents::new(events, stop_future(&state, None), permit, None, None);
        let response = sse_response(SseBody::with_config(live, state.config.sse.clone()))
            .map(ResponseBody::Sse);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().expect("accept");
        client.set_nonblocking(true).unwrap();
        server.set_nonblocking(true).unwrap();
        let mut server = TcpStream::from_std(server).unwrap();
        // Known writable, as a connection is by the time its response goes out.
        server.writable().await.unwrap();
        let pending = PendingResponse {
            response,
            keep_alive: true,
            rest: Vec::new(),
        };
        let mut writer = ResponseWriter::new(&mut server, pending);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(Arc::clone(&wakes));
        let mut poll = || Pin::new(&mut writer).poll(&mut Context::from_waker(&waker));

        assert!(poll().is_pending());
        let head = received(&mut client);
        let (_, body) = head.split_once("\r\n\r\n").expect("a response head");
        assert_eq!(chunks(body), ["retry: 1000\n\n"]);

        // One frame: the stream keeps up, and writes it at once.
        broadcast(&container, &channel, 1);
        wakes.take();
        assert!(poll().is_pending());
        assert_eq!(wakes.take(), 0, "no wait for more");
        let one = received(&mut client);
        assert_eq!(chunks(&one).len(), 1);
        assert!(chunks(&one)[0].ends_with("data: 1\n\n"), "{one:?}");

        // Two frames: the stream is behind; it waits a turn, and wakes itself for it.
        broadcast(&container, &channel, 2);
        broadcast(&container, &channel, 3);
        wakes.take();
        assert!(poll().is_pending());
        assert_eq!(
            wakes.take(),
            1,
            "the stream's task goes to the back of the queue"
        );
        assert_eq!(received(&mut client), "", "nothing written before the turn");

        // What came during the turn goes out with them, in one chunk.
        broadcast(&container, &channel, 4);
        assert!(poll().is_pending());
        let gathered = received(&mut client);
        let gathered = chunks(&gathered);
        assert_eq!(gathered.len(), 1, "{gathered:?}");
        let data: Vec<&str> = gathered[0]
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .collect();
        assert_eq!(data, ["2", "3", "4"]);

        // A turn with nothing new writes what the stream held.
        broadcast(&container, &channel, 5);
        broadcast(&container, &channel, 6);
        assert!(poll().is_pending());
        assert_eq!(received(&mut client), "");
        assert!(poll().is_pending());
        let held = received(&mut client);
        assert_eq!(chunks(&held).len(), 1);
        assert!(held.contains("data: 5\n\n") && held.contains("data: 6\n\n"));

        // The channel's end ends the body after what was held.
        broadcast(&container, &channel, 7);
        broadcast(&container, &channel, 8);
        assert!(poll().is_pending());
        container.remove("c").expect("remove");
        let mut end = Poll::Pending;
        for _ in 0..10 {
            end = poll();
            if end.is_ready() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(end.is_ready(), "the response ends with its channel");
        let rest = received(&mut client);
        assert!(
            rest.contains("data: 7\n\n") && rest.contains("data: 8\n\n"),
            "{rest:?}"
        );
        assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
    }
}
