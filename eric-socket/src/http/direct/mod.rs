//! Event streams served straight on the socket, without hyper: the fast path for idle
//! streams.
//!
//! An idle event stream is most of what a busy SSE server holds, and hyper keeps a read
//! buffer and a header write buffer per connection that a stream never needs once its
//! head is out. So the server reads the requests of a connection itself
//! ([`head`]): while each is a plain `GET /stream/...` or `GET /watch/...`, it is
//! answered through the same [`routes::handle`] as every request, and
//! [`ResponseWriter`] ([`response`]) writes the events as HTTP/1.1 chunks ([`chunk`])
//! from a task that holds little more than the socket and the stream (a browser that
//! reconnects on the same connection stays here). The first other request (another
//! route, HTTP/1.0, a body, an unusual header, a head that does not parse or is large)
//! goes to hyper with the bytes already read ([`Rewound`]), and hyper serves the
//! connection from then on.

mod chunk;
mod head;
mod response;
mod rewound;

pub(crate) use head::{parse_head, Parsed, MAX_HEADERS};
pub(crate) use response::{PendingResponse, ResponseWriter};
pub(crate) use rewound::Rewound;

use super::routes;
use super::state::State;
use head::{has_token, read_head, Head};
use http::header;
use std::sync::Arc;
use tokio::net::TcpStream;

/// What the next request of a connection turned out to be.
pub(crate) enum NextRequest {
    /// An event-stream request, routed: [`ResponseWriter`] writes its response.
    Answered(Box<PendingResponse>),
    /// Anything else: hyper serves the connection, starting with these bytes.
    ForHyper(Vec<u8>),
    /// The client left, or sent nothing in time, before a request head was complete
    /// (a connection left idle ends so); or the server is shutting down.
    Gone,
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
            let asks_close = has_token(request.headers(), header::CONNECTION, "close");
            let response = routes::handle(state, request).await;
            // A server shutting down closes the connection after this response.
            let keep_alive = !asks_close && !state.shutdown.is_shutdown();
            NextRequest::Answered(Box::new(PendingResponse {
                response,
                keep_alive,
                rest,
            }))
        }
    }
}
