//! The engine interface: where the channels' state lives when it is kept outside the
//! process, so that several servers share it and it outlives them.
//!
//! A [`ChannelContainer`](crate::ChannelContainer) without an engine keeps everything
//! in memory (the default). With one, every operation the transports perform on the
//! channels' state goes through the engine, which keeps each node's local
//! [`SseChannel`]s as the delivery fabric (the streams, queues and wake-ups of the
//! in-memory engine) and makes the outside store the source of truth for what exists,
//! for the order of every channel's log and for what was acknowledged. The transports
//! never look past the container, so they behave the same on either engine.
//!
//! Failures of the store are [`Error::Unavailable`](eric_core::Error::Unavailable)
//! (the store cannot be reached: nothing was done, HTTP answers 503) and
//! [`Error::Engine`](eric_core::Error::Engine) (it holds a value that does not parse;
//! the message names the key).

use crate::container::ChannelSettings;
use crate::metrics::{LatencyCounts, LatencyHistogram};
use eric_core::{Listener, Message, Result, Retention};
use eric_sse::{SseAdapter, SseChannel};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A stream of a channel as the transports write it.
pub type ChannelStream = eric_core::MessageStream<SseAdapter>;

/// The operations the container hands to an engine that keeps the channels' state
/// outside the process. Every method may block its thread until the store answered
/// (at most a couple of seconds, then it fails with `Unavailable`).
pub trait Engine: Send + Sync + fmt::Debug + 'static {
    /// Whether the store can be reached now; the error says why not.
    fn readiness(&self) -> std::result::Result<(), String>;

    /// Makes a channel (with a generated id for `None`) retaining `retention` of its
    /// log; fails with `DuplicateId` if the id is taken.
    fn create(
        &self,
        id: Option<&str>,
        retention: Retention,
        settings: &ChannelSettings,
    ) -> Result<SseChannel>;

    /// The channel with this id (`InvalidChannel` if there is none).
    fn get(&self, id: &str, settings: &ChannelSettings) -> Result<SseChannel>;

    /// Removes a channel and its listeners everywhere: their streams get
    /// `_eric_channel_closed` and end.
    fn remove(&self, id: &str) -> Result<SseChannel>;

    /// Every channel id with its listener ids, sorted.
    fn snapshot(&self) -> Result<BTreeMap<String, Vec<String>>>;

    /// Registers a new listener on `channel`; its id.
    fn subscribe(&self, channel: &SseChannel) -> Result<String>;

    /// The listener `id` of `channel`, ready to stream on this node, its queue holding
    /// what waits for it.
    fn listener(&self, channel: &SseChannel, id: &str) -> Result<Arc<Listener>>;

    /// Whether `channel` has a listener `id` (`InvalidListener` if not), without making
    /// it local to this node.
    fn has_listener(&self, channel: &SseChannel, id: &str) -> Result<()>;

    /// Removes the listener `id` of `channel` everywhere.
    fn remove_listener(&self, channel: &SseChannel, id: &str) -> Result<()>;

    /// Publishes `message` on `channel`, to the listener `to` or to every listener;
    /// returns once the store holds it.
    fn publish(&self, channel: &SseChannel, to: Option<&str>, message: Arc<Message>) -> Result<()>;

    /// A new anonymous listener of `channel` that lives as long as the stream, after
    /// the retained broadcasts since `last_event_id` when given.
    fn watch(&self, channel: &SseChannel, last_event_id: Option<&str>) -> Result<ChannelStream>;

    /// Stores what must outlive the process (the listeners' cursors): the server stops.
    fn flush(&self);

    /// What the engine tells of its store for `/metrics`, `/monitor` and `eric stats`,
    /// read without a round trip to the store. `None` (the default): nothing to tell.
    fn figures(&self) -> Option<EngineFigures> {
        None
    }
}

/// What an engine tells of its store: whether it is up, how often its connections
/// were made again, and how long its commands take. `/metrics` exposes them as
/// `eric_<store>_up`, `eric_<store>_reconnects_total` and
/// `eric_<store>_command_duration_seconds`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EngineFigures {
    /// The store's name in metric names: lower case letters (`redis`).
    pub store: String,
    /// Whether the store answered the last command and the engine's connections are up.
    pub up: bool,
    /// Connections to the store made again after one was lost.
    pub reconnects: u64,
    /// How long its commands took, from sending to the answer.
    pub command_latency: LatencyCounts,
}

impl EngineFigures {
    /// The figures of the store named `store` (lower case letters: it becomes part of
    /// metric names).
    pub fn new(store: &str, up: bool, reconnects: u64, commands: &LatencyHistogram) -> Self {
        EngineFigures {
            store: store.to_owned(),
            up,
            reconnects,
            command_latency: commands.read(),
        }
    }
}
