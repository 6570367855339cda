//! The Unix socket transport: [`UnixServer`] and [`SocketClient`].

mod acceptor;
mod client;
mod server;

pub use client::{ClientError, EventStream, SocketClient};
pub use server::{ConnectionGauge, UnixServer, UnixServerConfig, DEFAULT_MAX_COMMAND_BYTES};
