//! Parallel processing of eric queues on a thread pool: the Rust successor of
//! eric-sse's `DataProcessingChannel`.
//!
//! eric-core holds one queue per listener and streams it one message at a time. This
//! crate adds a channel that drains a listener's queue on a [rayon] thread pool instead:
//! each message runs the listener's handler (its `on_message`) on a worker thread, and
//! the results come back as soon as they complete, or in queue order if asked.
//!
//! The main types:
//! * [`DataProcessingChannel`]: an [`eric_core::Channel`] (it dereferences to it, so
//!   `add_listener`, `dispatch`, `broadcast`, `notify_end` work as usual) plus a pool of
//!   `max_workers` threads of its own. [`DataProcessingChannel::process_queue`] is the
//!   reference's `process_queue`.
//! * [`ProcessingStream`]: the results of one `process_queue` call, as an async
//!   `futures_core::Stream` that any executor can poll, or through a blocking iterator.
//! * [`ProcessingAdapter`] and [`Processed`]: the default shape of a result,
//!   `{"event": type, "data": payload}`. Any [`eric_core::Adapter`] may replace it (the
//!   reference's `adapt` override).
//! * [`ProcessingError`]: the crate's errors, among them the panic of a handler, which is
//!   reported as an item of the stream while the others go on.
//!
//! How it plugs into eric-core: the handler is the listener's own
//! ([`Listener::on_message`](eric_core::Listener::on_message)); workers pop the queue
//! with [`Listener::take_next`](eric_core::Listener::take_next) and call
//! [`Listener::handle`](eric_core::Listener::handle) themselves, then the channel's
//! adapter. The stream ends when the queue is empty or at the `_eric_channel_closed`
//! message, which it consumes without yielding (see [`ProcessingStream`]).
//!
//! # Example
//! ```
//! use eric_core::{Listener, Message};
//! use eric_processing::DataProcessingChannel;
//! use serde_json::json;
//! use std::collections::BTreeSet;
//!
//! let channel = DataProcessingChannel::new(2).unwrap();
//! // The handler runs on the pool, two messages at a time.
//! let listener = channel
//!     .register_listener(Listener::new().on_message(|_me, msg| {
//!         std::thread::sleep(std::time::Duration::from_millis(5)); // slow work
//!         let _ = &msg.payload;
//!     }))
//!     .unwrap();
//! for i in 0..6 {
//!     channel.dispatch(listener.id(), Message::new("counter", json!(i))).unwrap();
//! }
//! channel.notify_end();
//!
//! let mut stream = channel.process_queue(&listener);
//! let mut seen = BTreeSet::new();
//! for result in &mut stream {
//!     let processed = result.expect("no handler panicked");
//!     assert_eq!(processed.event(), "counter");
//!     seen.insert(processed.data().as_i64().unwrap());
//! }
//! assert_eq!(seen, (0..6).collect());
//! assert!(stream.met_closed()); // it ended at notify_end's message
//! ```
//!
//! The same stream is an async `Stream` (no runtime needed, no tokio):
//! ```
//! # use eric_core::Message;
//! # use eric_processing::DataProcessingChannel;
//! use futures::StreamExt;
//!
//! let channel = DataProcessingChannel::new(2).unwrap();
//! let listener = channel.add_listener();
//! channel.dispatch(listener.id(), Message::empty("ping")).unwrap();
//! let events: Vec<String> = futures::executor::block_on(
//!     channel.process_queue(&listener).map(|r| r.unwrap().event().to_owned()).collect(),
//! );
//! assert_eq!(events, ["ping"]);
//! ```
#![deny(missing_docs)]

mod adapter;
mod channel;
mod error;
mod stats;
mod stream;

pub use adapter::{Processed, ProcessingAdapter};
pub use channel::{
    DataProcessingChannel, DataProcessingChannelBuilder, DEFAULT_MIN_WINDOW,
    DEFAULT_WINDOW_PER_WORKER,
};
pub use error::{ProcessingError, Result};
pub use stats::ProcessingStats;
pub use stream::{IntoIter, Iter, ProcessingResult, ProcessingStream};

/// The README's examples, compiled and run with the doc tests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
