//! Reading request heads: which requests the direct path serves, and the bytes read.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use std::io;
use tokio::net::TcpStream;

/// A request head larger than this goes to hyper, which has its own limit.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// A request with more headers than this goes to hyper.
pub(crate) const MAX_HEADERS: usize = 32;

/// A request head, read.
// Short-lived, inside the boxed first-request future: boxing the request would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Head {
    /// An event-stream request the direct path serves, and the bytes read after its head.
    Stream {
        request: Request<http_body_util::Empty<Bytes>>,
        rest: Vec<u8>,
    },
    /// Anything else, and every byte read.
    Other(Vec<u8>),
    /// The client left before its head was complete.
    Gone,
}

/// Reads a request head from `stream`, after the bytes `read` already.
pub(super) async fn read_head(stream: &TcpStream, read: Vec<u8>) -> Head {
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
        match parse_head(&buf) {
            Parsed::Stream { request, head_len } => {
                return Head::Stream {
                    request,
                    rest: buf.split_off(head_len),
                }
            }
            Parsed::Partial if buf.len() < MAX_HEAD_BYTES => {}
            // Large, malformed or unusual: hyper answers it as it answers any request.
            Parsed::Partial | Parsed::Other => return Head::Other(buf),
        }
    }
}

/// What the bytes read so far of a connection hold.
// Short-lived, as `Head`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed {
    /// The head of a request the direct path serves, `head_len` bytes long.
    Stream {
        request: Request<http_body_util::Empty<Bytes>>,
        head_len: usize,
    },
    /// A complete head the direct path leaves to hyper, or bytes that are no request head.
    Other,
    /// The start of a head: more bytes are needed to decide.
    Partial,
}

/// Decides on the bytes read so far, whatever their length (the caller bounds it).
pub(crate) fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    match head.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => match stream_request(&head) {
            Some(request) => Parsed::Stream { request, head_len },
            None => Parsed::Other,
        },
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Other,
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

/// The request, when `head` is one the direct path serves: `GET` of a stream path in
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
    // Every Content-Length counts, not the first: `0` then `5` is a body to hyper (which
    // refuses the request), and reading past it here would take the body for a request.
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|length| length.as_bytes() != b"0");
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

/// Whether the header `name` lists `token` (case-insensitively).
pub(super) fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    })
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
            b"GET /watch/c HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
            b"GET /watch/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /watch/c HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /watch/c HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET /streams HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
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
