//! The SSE channel: an eric-core channel whose consumers receive [`SseEvent`]s.

use crate::event::{SseEvent, DEFAULT_RETRY_MS};
use eric_core::{Adapter, Channel, Delivery, QueueConfig, QueueLedger, Retention, StreamDelay};
use std::ops::Deref;
use std::sync::Arc;

/// How many entries of its log an [`SseChannel`] retains for resume, unless configured
/// otherwise: enough for a browser that reconnects after a short drop. The log is per
/// channel, so this costs the same whatever the number of subscribers.
pub const DEFAULT_HISTORY: usize = 1024;

/// Adapts a delivery to an [`SseEvent`]: the message (shared, not copied), the
/// delivery's position in the channel log as event id (`<epoch>-<offset>`), and the
/// channel's retry time. Synthetic deliveries (id 0: the closed event of a removed
/// listener) get no id, so they do not move a client's `Last-Event-ID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SseAdapter {
    retry_ms: u64,
}

impl SseAdapter {
    /// An adapter that puts `retry_ms` on every event.
    pub fn new(retry_ms: u64) -> Self {
        SseAdapter { retry_ms }
    }

    /// The retry time it puts on events.
    pub fn retry_ms(&self) -> u64 {
        self.retry_ms
    }
}

impl Default for SseAdapter {
    fn default() -> Self {
        SseAdapter::new(DEFAULT_RETRY_MS)
    }
}

impl Adapter for SseAdapter {
    type Output = SseEvent;

    fn adapt(&self, delivery: &Delivery) -> SseEvent {
        self.adapt_owned(delivery.clone())
    }

    fn adapt_owned(&self, delivery: Delivery) -> SseEvent {
        let position = delivery.position();
        let event = SseEvent::from_message(delivery.message).with_retry(self.retry_ms);
        match delivery.id {
            0 => event,
            _ => event.with_position(position),
        }
    }
}

/// A channel of Server-Sent Events: the reference's
/// `SSEChannel(stream_delay_seconds=0, retry_timeout_milliseconds=5)`.
///
/// It dereferences to an [`eric_core::Channel`] whose streams yield [`SseEvent`]s, so it
/// has every channel method (`add_listener`, `dispatch`, `broadcast`, `message_stream`,
/// `message_stream_after` and `watch_after` for resume, ...). Unlike the reference it
/// gives every event an id, its position in the channel's log, and the channel retains
/// the last [`DEFAULT_HISTORY`] entries of its log so a client can resume with
/// `Last-Event-ID`.
///
/// ```
/// use eric_core::Message;
/// use eric_sse::SseChannel;
///
/// let channel = SseChannel::new();
/// let listener = channel.add_listener();
/// listener.start();
/// channel.dispatch(listener.id(), Message::new("welcome", "Hello!")).unwrap();
/// let event = channel.message_stream(&listener).try_recv().unwrap();
/// assert_eq!(
///     serde_json::to_string(&event).unwrap(),
///     r#"{"event":"welcome","retry":5,"data":"Hello!"}"#
/// );
/// assert_eq!(event.id(), Some(1));
/// assert_eq!(event.position(), Some(channel.position()));
/// ```
#[derive(Clone, Debug)]
pub struct SseChannel {
    channel: Channel<SseAdapter>,
}

impl SseChannel {
    /// A channel with a generated id, retry 5 ms (the reference's default), no stream
    /// delay, unbounded queues and [`DEFAULT_HISTORY`] entries of log retained.
    pub fn new() -> Self {
        SseChannel::builder().build()
    }

    /// A builder for other settings.
    pub fn builder() -> SseChannelBuilder {
        SseChannelBuilder::default()
    }

    /// The underlying eric-core channel.
    pub fn channel(&self) -> &Channel<SseAdapter> {
        &self.channel
    }

    /// The retry time written in the JSON form of every event.
    pub fn retry_ms(&self) -> u64 {
        self.channel.adapter().retry_ms()
    }
}

impl Default for SseChannel {
    fn default() -> Self {
        SseChannel::new()
    }
}

impl Deref for SseChannel {
    type Target = Channel<SseAdapter>;

    fn deref(&self) -> &Channel<SseAdapter> {
        &self.channel
    }
}

/// Builds an [`SseChannel`]; see [`SseChannel::builder`].
#[derive(Debug)]
pub struct SseChannelBuilder {
    id: Option<String>,
    retry_ms: u64,
    queue: QueueConfig,
    stream_delay: Option<StreamDelay>,
    retention: Retention,
    ledger: Option<Arc<QueueLedger>>,
}

impl Default for SseChannelBuilder {
    fn default() -> Self {
        SseChannelBuilder {
            id: None,
            retry_ms: DEFAULT_RETRY_MS,
            queue: QueueConfig::unbounded(),
            stream_delay: None,
            retention: Retention::entries(DEFAULT_HISTORY),
            ledger: None,
        }
    }
}

impl SseChannelBuilder {
    /// Uses `id` instead of a generated channel id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The reference's `retry_timeout_milliseconds` (default 5).
    pub fn retry_ms(mut self, retry_ms: u64) -> Self {
        self.retry_ms = retry_ms;
        self
    }

    /// How much of its log the channel retains for resume (default: the last
    /// [`DEFAULT_HISTORY`] entries, whatever their age).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Queue bounds and overflow policy of the listeners `add_listener` makes.
    pub fn queue_config(mut self, config: QueueConfig) -> Self {
        self.queue = config;
        self
    }

    /// The reference's `stream_delay_seconds`, with the timer of the caller's runtime.
    pub fn stream_delay(mut self, delay: StreamDelay) -> Self {
        self.stream_delay = Some(delay);
        self
    }

    /// Counts the channel's queued bytes in `ledger`, shared with other channels (see
    /// [`ChannelBuilder::ledger`](eric_core::ChannelBuilder::ledger)).
    pub fn ledger(mut self, ledger: Arc<QueueLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The channel.
    pub fn build(self) -> SseChannel {
        let mut builder = Channel::builder(SseAdapter::new(self.retry_ms))
            .queue_config(self.queue)
            .retention(self.retention);
        if let Some(id) = self.id {
            builder = builder.id(id);
        }
        if let Some(delay) = self.stream_delay {
            builder = builder.stream_delay(delay);
        }
        if let Some(ledger) = self.ledger {
            builder = builder.ledger(ledger);
        }
        SseChannel {
            channel: builder.build(),
        }
    }
}
