//! Server-Sent Events for eric: the `text/event-stream` wire format, both ways.
//!
//! eric delivers each listener's messages as Server-Sent Events. This crate holds what
//! that takes on the wire, exact to the WHATWG HTML standard (section "Server-sent
//! events"), with no async runtime unless asked for:
//!
//! * [`SseEvent`]: the event a server sends, a shared [`eric_core::Message`] (type =
//!   event name, payload = data) with an optional id and a reconnection time. Serialised
//!   with serde it is the `{"event", "retry", "data"}` line of eric's socket protocol.
//! * [`Encoder`]: writes events, comments and `retry:` into a caller's buffer, with the
//!   data as JSON ([`DataMode::Json`], the default) or as raw text
//!   ([`DataMode::RawText`]); refuses, with an [`EncodeError`], what it cannot write
//!   faithfully.
//! * [`Parser`]: the incremental decoder a client runs: feed it byte chunks, pull
//!   [`ParsedEvent`]s.
//! * [`http::SseBody`] (feature `http`): an `http_body::Body` for hyper 1.x that streams
//!   events with retry and keep-alive, and [`http::sse_response`] for the headers.
//!
//! How it plugs in: eric-core's `Channel` is generic over an `Adapter`; the SSE channel
//! adapts each `Delivery` to an [`SseEvent`] (`SseEvent::from(&delivery)` shares the
//! message and takes the delivery id as event id). eric-socket writes those events as
//! JSON lines on its Unix socket, and, behind `eric serve --http`, streams them to
//! browsers through [`http::SseBody`]. Clients and tests read streams back with
//! [`Parser`].
//!
//! # Example
//! ```
//! use eric_sse::{Encoder, Parser, SseEvent};
//! use serde_json::{json, Value};
//!
//! // Server side: encode an event.
//! let event = SseEvent::new("price", json!({"eur": 12.5})).with_id(42);
//! let mut wire = Vec::new();
//! Encoder::new().encode_event(&event, &mut wire)?;
//! assert_eq!(wire, b"id: 42\nevent: price\ndata: {\"eur\":12.5}\n\n");
//!
//! // Client side: parse it back, in chunks of any size.
//! let mut parser = Parser::new();
//! for chunk in wire.chunks(5) {
//!     parser.feed(chunk);
//! }
//! let parsed = parser.next_event().expect("one event");
//! assert_eq!(parsed.event, "price");
//! assert_eq!(parsed.last_event_id, "42");
//! assert_eq!(parsed.json::<Value>().unwrap(), *event.data());
//! # Ok::<(), eric_sse::EncodeError>(())
//! ```
//!
//! # Feature flags
//! No feature is on by default.
//! * `http`: the [`http`] module: [`http::SseBody`], an `http_body::Body` (hyper 1.x)
//!   that streams [`SseEvent`]s, and [`http::sse_response`]. Brings in `http`,
//!   `http-body`, `bytes`, `futures-core` and `tokio` (its `time` feature only, for the
//!   keep-alive timer).
// Without the feature, the links to the `http` module point to docs.rs.
#![cfg_attr(
    not(feature = "http"),
    doc = "",
    doc = "[`http`]: https://docs.rs/eric-sse/latest/eric_sse/http/index.html",
    doc = "[`http::SseBody`]: https://docs.rs/eric-sse/latest/eric_sse/http/struct.SseBody.html",
    doc = "[`http::sse_response`]: https://docs.rs/eric-sse/latest/eric_sse/http/fn.sse_response.html"
)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod channel;
pub mod encode;
mod event;
/// The checks of the fuzz targets, for them and for the tests that replay their corpus:
/// not API.
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod parse;

pub use channel::{SseAdapter, SseChannel, SseChannelBuilder, DEFAULT_HISTORY};
pub use encode::{DataMode, EncodeError, Encoder, Forbidden};
pub use event::{SseEvent, DEFAULT_RETRY_MS};
pub use parse::{Item, ParsedEvent, Parser};

/// The README's examples, compiled and run with the doc tests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
