//! Event streams served straight on the socket, without hyper.
//!
//! An idle event stream is most of what a busy SSE server holds, and hyper keeps two
//! buffers per connection (a read buffer and a header write buffer, 8 KiB each) that a
//! stream never needs once its head is out. So the server reads the requests of a
//! connection itself: while each is a plain `GET /stream/...` or `GET /watch/...`, it is
//! answered here through the same [`routes::handle`] as every request, and the events
//! are written as HTTP/1.1 chunks from a task that holds little more than the socket and
//! the stream (a browser that reconnects on the same connection stays here). The first
//! other request (another route, HTTP/1.0, a body, an unusual header, a head that does
//! not parse or is large) goes to hyper with the bytes already read, and hyper serves
//! the connection from then on.

use super::body::ResponseBody;
use super::routes;
use super::state::State;
use super::stream::LiveEvents;
use bytes::Bytes;
use eric_sse::http::SseBody;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Body;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A request head larger than this goes to hyper, which has its own limit.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// A request with more headers than this goes to hyper.
const MAX_HEADERS: usize = 32;
/// Bytes a client may send behind its stream request (a pipelined request, served
/// after the stream); more ends the connection.
const MAX_PIPELINED_BYTES: usize = 8 * 1024;

/// What the next request of a connection turned out to be.
pub(crate) enum NextRequest {
    /// An event-stream request, answered: [`ResponseWriter`] writes the answer.
    Answered(Box<Answer>),
    /// Anything else: hyper serves the connection, starting with these bytes.
    ForHyper(Vec<u8>),
    /// The client left, or sent nothing in time, before a request head was complete
    /// (a connection left idle ends so); or the server is shutting down.
    Gone,
}

/// The answer to a request, waiting to be written.
pub(crate) struct Answer {
    response: Response<ResponseBody>,
    /// Whether the request lets the connection serve another request after it.
    keep_alive: bool,
    /// The bytes the client sent after the request's head.
    rest: Vec<u8>,
}

/// Reads the next request head of `stream` (within the header read timeout), after the
/// bytes `read` already, and, when it is a request this module serves, routes it.
pub(crate) async fn next_request(
    stream: &TcpStream,
    state: &Arc<State>,
    read: Vec<u8>,
) -> NextRequest {
    let timeout = state.config.header_read_timeout;
    let head = tokio::select! {
        head = tokio::time::timeout(timeout, read_head(stream, read)) => head,
        () = state.shutdown.wait() => return NextRequest::Gone,
    };
    match head {
        Err(_) => {
            tracing::debug!(?timeout, "no request head in time: connection closed");
            NextRequest::Gone
        }
        Ok(Head::Gone) => NextRequest::Gone,
        Ok(Head::Other(read)) => NextRequest::ForHyper(read),
        Ok(Head::Stream { request, rest }) => {
            let keep_alive = !has_token(request.headers(), header::CONNECTION, "close");
            let response = routes::handle(state, request).await;
            NextRequest::Answered(Box::new(Answer {
                response,
                keep_alive,
                rest,
            }))
        }
    }
}

/// A request head, read.
// Short-lived, inside the boxed first-request future: boxing the request would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Head {
    /// An event-stream request this module serves, and the bytes read after its head.
    Stream {
        request: Request<http_body_util::Empty<Bytes>>,
        rest: Vec<u8>,
    },
    /// Anything else, and every byte read.
    Other(Vec<u8>),
    /// The client left before its head was complete.
    Gone,
}

async fn read_head(stream: &TcpStream, read: Vec<u8>) -> Head {
    let mut buf = read;
    // Most request heads fit in a few hundred bytes.
    buf.reserve(1024_usize.saturating_sub(buf.len()));
    // Bytes already read (sent behind a previous request) may hold a whole head.
    let mut parse_first = !buf.is_empty();
    loop {
        if !std::mem::take(&mut parse_first) {
            if buf.len() == buf.capacity() {
                buf.reserve(buf.len());
            }
            match read_some(stream, &mut buf).await {
                Ok(0) | Err(_) => return Head::Gone,
                Ok(_) => {}
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Request::new(&mut headers);
        match head.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                return match stream_request(&head) {
                    Some(request) => Head::Stream {
                        request,
                        rest: buf.split_off(len),
                    },
                    None => Head::Other(buf),
                };
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => {}
            // Large, malformed or unusual: hyper answers it as it answers any request.
            Ok(httparse::Status::Partial) | Err(_) => return Head::Other(buf),
        }
    }
}

/// Reads what is there into the spare capacity of `buf`, waiting until something is.
async fn read_some(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read_buf(buf) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// The request, when `head` is one this module serves: `GET` of a stream path in
/// HTTP/1.1, with no body and nothing that asks more of the server than a response.
fn stream_request(
    head: &httparse::Request<'_, '_>,
) -> Option<Request<http_body_util::Empty<Bytes>>> {
    if head.method != Some("GET") || head.version != Some(1) {
        return None;
    }
    let uri: Uri = head.path?.parse().ok()?;
    let path = uri.path();
    if !(path.starts_with("/stream/") || path.starts_with("/watch/")) {
        return None;
    }
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for field in head.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(field.value).ok()?;
        headers.append(name, value);
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    if has_body || headers.contains_key(header::EXPECT) || headers.contains_key(header::UPGRADE) {
        return None;
    }
    let mut request = Request::new(http_body_util::Empty::new());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(request)
}

/// Writes the [`Answer`] to a stream request: the head, then the
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
    /// Writes `answer` on `stream`.
    pub(crate) fn new(stream: &'a mut TcpStream, answer: Answer) -> Self {
        let Answer {
            response,
            keep_alive,
            rest,
        } = answer;
        let keep_alive = keep_alive && !has_token(response.headers(), header::CONNECTION, "close");
        let (parts, body) = response.into_parts();
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

    /// The data of the body's next frame; `None` when it ended (an ended `SseBody` stays
    /// ended when polled again).
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let Some(events) = self.events.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match Pin::new(&mut *events).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(data));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
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

/// Bytes on their way out, written without copying the data: a response head, then one
/// chunk of the chunked transfer coding (its size line, its data, the CRLF that ends
/// it); either part may be absent. Nothing is allocated per chunk.
#[derive(Default)]
struct Chunk {
    head: Bytes,
    size_line: SizeLine,
    data: Bytes,
    suffix: &'static [u8],
    /// How much of the parts, in order, is written.
    written: usize,
}

impl Chunk {
    /// A response head alone.
    fn new(head: Bytes) -> Self {
        Chunk {
            head,
            ..Chunk::default()
        }
    }

    /// `data` as one chunk.
    fn data(data: Bytes) -> Self {
        let mut chunk = Chunk::default();
        chunk.append_data(data);
        chunk
    }

    /// The zero-size chunk that ends the body.
    fn last() -> Self {
        let mut chunk = Chunk::default();
        chunk.set_chunk(Bytes::new());
        chunk
    }

    /// Adds `data` as the chunk after the head (nothing written yet, no chunk yet).
    fn append_data(&mut self, data: Bytes) {
        // An empty chunk would end the body.
        if !data.is_empty() {
            self.set_chunk(data);
        }
    }

    fn set_chunk(&mut self, data: Bytes) {
        debug_assert!(self.written == 0 && self.suffix.is_empty());
        self.size_line = SizeLine::new(data.len());
        self.data = data;
        self.suffix = b"\r\n";
    }

    fn parts(&self) -> [&[u8]; 4] {
        [
            &self.head,
            self.size_line.as_bytes(),
            &self.data,
            self.suffix,
        ]
    }

    fn is_written(&self) -> bool {
        self.written == self.parts().iter().map(|part| part.len()).sum::<usize>()
    }

    /// Writes some of what is left.
    fn poll_write(&mut self, stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut skip = self.written;
        let mut slices = [io::IoSlice::new(&[]); 4];
        let mut count = 0;
        for part in self.parts() {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[count] = io::IoSlice::new(&part[skip..]);
            skip = 0;
            count += 1;
        }
        match Pin::new(stream).poll_write_vectored(cx, &slices[..count]) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                self.written += n;
                if self.is_written() {
                    // Nothing of a written chunk is kept while the stream idles.
                    *self = Chunk::default();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The size line of a chunk: its length in hexadecimal and CRLF, kept inline.
#[derive(Default)]
struct SizeLine {
    bytes: [u8; 18],
    len: u8,
}

impl SizeLine {
    fn new(size: usize) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (usize::BITS - size.leading_zeros()).div_ceil(4).max(1) as usize;
        let mut line = SizeLine {
            bytes: [0; 18],
            len: (digits + 2) as u8,
        };
        for (index, byte) in line.bytes[..digits].iter_mut().enumerate() {
            *byte = HEX[(size >> (4 * (digits - 1 - index))) & 0xf];
        }
        line.bytes[digits..digits + 2].copy_from_slice(b"\r\n");
        line
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Whether the header `name` lists `token` (case-insensitively).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    })
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

/// A connection whose first bytes were read already: they are read again first.
#[derive(Debug)]
pub(crate) struct Rewound<T> {
    read: Bytes,
    io: T,
}

impl<T> Rewound<T> {
    /// `io`, with `read` to be read before anything new.
    pub(crate) fn new(read: Vec<u8>, io: T) -> Self {
        Rewound {
            read: Bytes::from(read),
            io,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewound<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewound<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Option<Request<http_body_util::Empty<Bytes>>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Request::new(&mut headers);
        assert!(head.parse(raw).unwrap().is_complete());
        stream_request(&head)
    }

    #[test]
    fn plain_stream_requests_are_served_here() {
        let request =
            parse(b"GET /stream/news%20feed/7?x=1 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 4\r\n\r\n")
                .unwrap();
        assert_eq!(request.uri().path(), "/stream/news%20feed/7");
        assert_eq!(request.headers()["last-event-id"], "4");
        assert!(parse(b"GET /watch/c HTTP/1.1\r\nContent-Length: 0\r\n\r\n").is_some());
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for raw in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"POST /broadcast?channel_id=c HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
            b"HEAD /watch/c HTTP/1.1\r\n\r\n",
            b"OPTIONS /watch/c HTTP/1.1\r\n\r\n",
            b"GET /watch/c HTTP/1.0\r\n\r\n",
            b"GET /watch/c HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            b"GET /watch/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /watch/c HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /watch/c HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET /streams HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
    }

    fn bytes_of(chunk: &Chunk) -> Vec<u8> {
        chunk.parts().concat()
    }

    #[test]
    fn chunks_frame_their_data() {
        let mut chunk = Chunk::new(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"));
        chunk.append_data(Bytes::new());
        chunk.append_data(Bytes::from_static(b"retry: 1000\n\n"));
        assert_eq!(
            bytes_of(&chunk),
            b"HTTP/1.1 200 OK\r\n\r\nd\r\nretry: 1000\n\n\r\n"
        );
        assert_eq!(
            bytes_of(&Chunk::data(Bytes::from_static(b"x"))),
            b"1\r\nx\r\n"
        );
        assert_eq!(bytes_of(&Chunk::last()), b"0\r\n\r\n");
        for (size, line) in [
            (0, "0\r\n"),
            (9, "9\r\n"),
            (0x10, "10\r\n"),
            (65_536, "10000\r\n"),
        ] {
            assert_eq!(SizeLine::new(size).as_bytes(), line.as_bytes());
        }
        let largest = format!("{:x}\r\n", usize::MAX);
        assert_eq!(SizeLine::new(usize::MAX).as_bytes(), largest.as_bytes());
    }

    #[test]
    fn connection_tokens_are_matched_in_lists() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Close"),
        );
        assert!(has_token(&headers, header::CONNECTION, "close"));
        assert!(!has_token(&HeaderMap::new(), header::CONNECTION, "close"));
    }
}
