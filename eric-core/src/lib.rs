//! The core of eric: channels that hold one queue per listener, send-to-one and
//! broadcast, and push-based streams of what each listener receives.
//!
//! eric is the Rust successor of the Python library eric-sse. This crate is its
//! runtime-agnostic heart: it depends on no async runtime, spawns no thread and owns no
//! timer, so it serves a plain threaded program as well as any async executor.
//!
//! The main types:
//! * [`Message`] (a type and a JSON payload) and [`SignedMessage`] (plus a sender id);
//!   a [`Delivery`] is a message as one listener receives it, with its event id.
//! * [`Listener`]: an id, a running flag, an optional handler, and its queue
//!   ([`QueueConfig`] bounds it, with an [`OverflowPolicy`]).
//! * [`Channel`]: the listeners and an [`Adapter`] that shapes what consumers get.
//!   eric-sse's `SseChannel` adapts to Server-Sent Events, eric-processing's
//!   `DataProcessingChannel` runs handlers on a thread pool, eric-socket serves channels
//!   over a Unix socket and HTTP.
//! * [`MessageStream`]: a listener's messages, as an async `Stream` or a blocking receiver.
//! * [`DistributedListener`]: a listener that answers messages by action name.
//!
//! # Example
//! ```
//! use eric_core::{Channel, Delivery, Message};
//! use serde_json::json;
//!
//! // The adapter decides what consumers receive; here: "type: payload".
//! let channel = Channel::new(|d: &Delivery| format!("{}: {}", d.msg_type, d.payload));
//! let listener = channel.add_listener();
//! listener.start();
//!
//! // A producer thread; the consumer blocks until each message is pushed to it.
//! let producer = {
//!     let channel = channel.clone();
//!     let id = listener.id().to_owned();
//!     std::thread::spawn(move || {
//!         for i in 0..3 {
//!             channel.dispatch(&id, Message::new("count", json!({"i": i}))).unwrap();
//!         }
//!         channel.notify_end();
//!     })
//! };
//! let mut stream = channel.message_stream(&listener);
//! let received: Vec<String> = stream.iter().collect();
//! producer.join().unwrap();
//! assert_eq!(received[0], r#"count: {"i":0}"#);
//! assert_eq!(received.len(), 4); // three counts, then _eric_channel_closed
//! ```
//!
//! The same stream is a `futures_core::Stream` for async code, whatever the runtime.
#![deny(missing_docs)]

mod channel;
mod deferred;
mod distributed;
mod error;
pub mod id;
mod id_key;
pub mod listener;
pub mod log;
mod message;
mod registry;
mod stream;

pub use channel::{
    Adapter, Applied, BroadcastReport, Channel, ChannelBuilder, Identity, StreamDelay, Timer,
    WeakChannel,
};
pub use distributed::{Action, DistributedListener, RESERVED_ACTIONS};
pub use error::{Error, Result};
pub use listener::{
    message_size, Handler, Listener, ListenerStats, LossObserver, Losses, OverflowPolicy,
    QueueConfig, QueueLedger,
};
pub use log::{Epoch, InvalidPosition, Position, Retention};
pub use message::{
    check_message_type, Delivery, Message, SignedMessage, MESSAGE_TYPE_CLOSED, MESSAGE_TYPE_ERROR,
};
pub use stream::{Iter, MessageStream, RecvTimeoutError};

/// The README's examples, compiled and run with the doc tests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
