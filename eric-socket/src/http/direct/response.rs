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
    /// Whether `chunk` is the head, not written yet: a ready frame may join it.
    head_pending: bool,
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
            events,
            head_pending: true,
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
        if std::mem::take(&mut this.head_pending) && this.events.is_some() {
            // The head and the opening `retry:` frame (ready on the first poll) go out in
            // one write.
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
                Poll::Ready(Some(data)) => this.chunk = Chunk::data(data),
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
