//! The Unix socket transport: [`UnixServer`] and [`SocketClient`].
//!
//! Files, in the order they depend on each other: `gauge` (the open-connection count),
//! `service` (executing a command and writing its answer or stream, shared by every
//! connection), `acceptor` (the accept thread, which serves whole commands at once and
//! hands the rest to the runtime), `server` (the public server: binding, the runtime's
//! side, shutdown), and `client`.

mod acceptor;
mod client;
mod gauge;
mod server;
mod service;

pub use client::{ClientError, EventStream, SocketClient};
pub use gauge::ConnectionGauge;
pub(crate) use gauge::ConnectionGuard;
pub use server::{UnixServer, UnixServerConfig, DEFAULT_MAX_COMMAND_BYTES};
