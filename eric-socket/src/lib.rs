//! eric's servers and clients: channels shared by every transport, the socket command
//! protocol of eric-sse 0.6.0.3 over a Unix socket, and an HTTP server with SSE streams.
//!
//! * [`ChannelContainer`]: the set of [`eric_sse::SseChannel`]s the servers share (the
//!   reference's `SSEChannelContainer`).
//! * [`protocol`]: the command protocol without I/O, the one definition of the wire for
//!   servers and clients: write and parse a command, execute it against a container,
//!   write and read answers, errors and stream lines byte for byte as the reference.
//! * [`UnixServer`] and [`SocketClient`]: the protocol over a Unix socket (tokio), so that
//!   Python programs written for eric-sse 0.6.0.3 work unchanged.
//! * [`HttpServer`] (feature `http`, on by default; module `http`): the HTTP routes of
//!   eric-api with `text/event-stream` streams for browsers, over the same container.
//!
//! Servers run inside the caller's tokio runtime and stop with a [`ShutdownHandle`]
//! (or [`termination_signal`] for binaries).
//!
//! # Example
//! ```
//! use eric_socket::{ChannelContainer, SocketClient, UnixServer, UnixServerConfig};
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("eric-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("eric.sock");
//! let server = UnixServer::bind(UnixServerConfig::new(&path), Arc::new(ChannelContainer::new()))
//!     .await
//!     .unwrap();
//! let stop = server.shutdown_handle();
//! let running = tokio::spawn(server.run());
//!
//! let client = SocketClient::new(&path);
//! let channel = client.create_channel().await.unwrap();
//! let listener = client.register(&channel).await.unwrap();
//! client.dispatch(&channel, &listener, "hello", json!({"to": "you"})).await.unwrap();
//! let mut events = client.listen(&channel, &listener).await.unwrap();
//! let event = events.next_event().await.unwrap().unwrap();
//! assert_eq!(event.event(), "hello");
//! assert_eq!(event.data(), &json!({"to": "you"}));
//!
//! stop.shutdown();
//! running.await.unwrap().unwrap();
//! assert!(!path.exists());
//! # });
//! ```
//!
//! # Feature flags
//! * `http` (default): the HTTP server, on hyper 1.x, and [`http::HttpService`], the
//!   same API to mount in an application's own hyper server.
//! * `tower`: [`http::HttpService`] is also a `tower::Service`, for axum's
//!   `Router::nest_service` (and implies `http`).
#![deny(missing_docs)]

mod accept;
mod container;
pub mod engine;
/// The checks of the fuzz targets, for them and for the tests that replay their corpus:
/// not API.
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "http")]
pub mod http;
mod limits;
mod losses;
pub mod metrics;
pub mod protocol;
mod pyjson;
mod refusals;
mod shutdown;
mod timer;
pub mod unix;

pub use container::{ChannelContainer, ChannelSettings};
pub use engine::Engine;
#[cfg(feature = "http")]
pub use http::{HttpServer, HttpServerConfig};
pub use losses::{LossCounters, LossTotals};
pub use pyjson::{python_repr, write_python_json};
pub use shutdown::{termination_signal, ShutdownHandle};
pub use timer::TokioTimer;
pub use unix::{ClientError, EventStream, SocketClient, UnixServer, UnixServerConfig};

/// The user guide in `docs/`, compiled here so that every Rust example in it is tested
/// (`cargo test -p eric-socket --doc`).
#[cfg(doctest)]
pub mod docs {
    #[doc = include_str!("../../docs/concepts.md")]
    pub struct Concepts;
    #[doc = include_str!("../../docs/socket-protocol.md")]
    pub struct SocketProtocol;
    #[doc = include_str!("../../docs/eric-core.md")]
    pub struct EricCore;
    #[cfg(feature = "http")]
    #[doc = include_str!("../../docs/eric-sse.md")]
    pub struct EricSse;
    #[doc = include_str!("../../docs/eric-processing.md")]
    pub struct EricProcessing;
    #[cfg(feature = "http")]
    #[doc = include_str!("../../docs/http-api.md")]
    pub struct HttpApi;
    #[cfg(feature = "http")]
    #[doc = include_str!("../../docs/eric-socket.md")]
    pub struct EricSocket;
    #[doc = include_str!("../../docs/migrating-from-python.md")]
    pub struct MigratingFromPython;
    #[doc = include_str!("../../docs/README.md")]
    pub struct Readme;
    #[doc = include_str!("../../docs/deploying.md")]
    pub struct Deploying;
    #[doc = include_str!("../../docs/benchmarks.md")]
    pub struct Benchmarks;
    #[doc = include_str!("../../docs/eric-cli.md")]
    pub struct EricCli;
    #[cfg(feature = "tower")]
    #[doc = include_str!("../../docs/embedding.md")]
    pub struct Embedding;
}

/// The README's examples, compiled and run with the doc tests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
