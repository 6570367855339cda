//! What the servers' connection loops share: how a failed `accept` is handled
//! (`pause`), and the drain of connections at shutdown (`drain`). The HTTP server's loop
//! is `tcp` (feature `http`); the Unix server accepts on a thread of its own
//! (`unix::acceptor`).

mod drain;
mod pause;
#[cfg(feature = "http")]
mod tcp;

pub(crate) use drain::drain;
pub(crate) use pause::accept_error_pause;
#[cfg(feature = "http")]
pub(crate) use tcp::{serve_connections, ConnectionLimits};
