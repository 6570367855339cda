//! The set of channels the servers share: the reference's `SSEChannelContainer`.

use crate::losses::LossCounters;
use crate::metrics::{DisconnectReason, DroppedReason, Metrics};
use crate::refusals::RefusalLog;
use eric_core::{Error, QueueConfig, QueueLedger, Result, Retention};
use eric_sse::{SseChannel, DEFAULT_HISTORY};
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How the container makes channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSettings {
    /// The `retry` of every event in the JSON form (the reference's default is 5 ms).
    pub retry_ms: u64,
    /// Queue bounds (messages, bytes) and overflow policy of every listener.
    pub queue: QueueConfig,
    /// How much of its log a channel retains for resume, unless made with its own.
    pub retention: Retention,
    /// The most bytes queued over every channel: while the queues hold that much,
    /// publishes are refused with [`Error::Overloaded`]. `None` (the library's default)
    /// is unbounded.
    pub max_queued_bytes: Option<usize>,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            retry_ms: eric_sse::DEFAULT_RETRY_MS,
            queue: QueueConfig::unbounded(),
            retention: Retention::entries(DEFAULT_HISTORY),
            max_queued_bytes: None,
        }
    }
}

/// A thread-safe set of [`SseChannel`]s, shared by the Unix and the HTTP server, so that
/// what one transport sends the other delivers.
///
/// ```
/// use eric_socket::ChannelContainer;
///
/// let container = ChannelContainer::new();
/// let channel = container.add();
/// assert_eq!(container.get(channel.id()).unwrap().id(), channel.id());
/// container.add_with_id("news").unwrap();
/// assert!(container.add_with_id("news").is_err());
/// container.remove("news").unwrap();
/// ```
#[derive(Debug)]
pub struct ChannelContainer {
    channels: RwLock<HashMap<String, SseChannel>>,
    settings: ChannelSettings,
    /// What full queues refused, logged as summaries by both transports alike.
    refusals: Arc<RefusalLog>,
    /// What the transports serving the container count.
    metrics: Arc<Metrics>,
    /// What the queues lost or refused, counted for metrics.
    losses: Arc<LossCounters>,
    /// Shared by every channel: the bytes queued against `max_queued_bytes`, and the
    /// observer that counts and logs what publishes lose.
    ledger: Arc<QueueLedger>,
}

impl Default for ChannelContainer {
    fn default() -> Self {
        ChannelContainer::with_settings(ChannelSettings::default())
    }
}

impl ChannelContainer {
    /// An empty container with default channel settings.
    pub fn new() -> Self {
        ChannelContainer::default()
    }

    /// An empty container whose channels use `settings`.
    pub fn with_settings(settings: ChannelSettings) -> Self {
        let refusals = Arc::<RefusalLog>::default();
        let losses = Arc::<LossCounters>::default();
        let ledger = {
            let (refusals, losses) = (Arc::clone(&refusals), Arc::clone(&losses));
            QueueLedger::new(settings.max_queued_bytes).observe(move |channel, lost| {
                losses.add_losses(&lost);
                refusals.record_losses(channel, &lost);
            })
        };
        ChannelContainer {
            channels: RwLock::default(),
            settings,
            metrics: Arc::default(),
            refusals,
            losses,
            ledger: Arc::new(ledger),
        }
    }

    /// What the queues of every channel lost or refused since the container was made:
    /// the counters behind metrics such as dropped messages and slow disconnects.
    pub fn losses(&self) -> &LossCounters {
        &self.losses
    }

    /// The bytes the queues of every channel hold now, as the budget counts them (0
    /// without `max_queued_bytes`: only a budget makes queues count).
    pub fn queued_bytes(&self) -> usize {
        self.ledger.queued_bytes()
    }

    /// `Ok` unless the queues hold the budget of `max_queued_bytes`: what every publish
    /// asks first (socket `b` and `d`, HTTP `/broadcast` and `/dispatch`). A refusal
    /// is counted and logged as a summary for `channel`.
    pub fn admit_publish(&self, channel: &str) -> Result<()> {
        self.ledger.admit().inspect_err(|_| {
            self.losses.add_overloaded();
            self.refusals.record_overloaded(channel);
        })
    }

    /// The settings of new channels.
    pub fn settings(&self) -> ChannelSettings {
        self.settings
    }

    fn build(&self, id: Option<&str>, retention: Retention) -> SseChannel {
        let builder = SseChannel::builder()
            .retry_ms(self.settings.retry_ms)
            .queue_config(self.settings.queue)
            .retention(retention)
            .ledger(Arc::clone(&self.ledger));
        match id {
            Some(id) => builder.id(id),
            None => builder,
        }
        .build()
    }

    /// Adds a channel with a generated id.
    pub fn add(&self) -> SseChannel {
        self.add_with(None, self.settings.retention)
            .expect("a generated id is never taken")
    }

    /// Adds a channel with a caller-chosen id; fails if the id is taken.
    pub fn add_with_id(&self, id: &str) -> Result<SseChannel> {
        self.add_with(Some(id), self.settings.retention)
    }

    /// Adds a channel with the id given (a generated one for `None`) that retains
    /// `retention` of its log; fails if the id is taken. Its log starts a new epoch,
    /// also when the id was used by a channel removed since.
    pub fn add_with(&self, id: Option<&str>, retention: Retention) -> Result<SseChannel> {
        let mut channels = self.channels.write();
        let channel = match id {
            Some(id) if channels.contains_key(id) => return Err(Error::DuplicateId(id.to_owned())),
            Some(id) => self.build(Some(id), retention),
            // A caller may have taken the next generated id already: skip it.
            None => loop {
                let channel = self.build(None, retention);
                if !channels.contains_key(channel.id()) {
                    break channel;
                }
            },
        };
        channels.insert(channel.id().to_owned(), channel.clone());
        Ok(channel)
    }

    /// The channel with this id.
    pub fn get(&self, id: &str) -> Result<SseChannel> {
        self.channels
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::InvalidChannel(id.to_owned()))
    }

    /// Removes a channel and every listener in it: their streams get
    /// `_eric_channel_closed` and end.
    pub fn remove(&self, id: &str) -> Result<SseChannel> {
        let channel = self
            .channels
            .write()
            .remove(id)
            .ok_or_else(|| Error::InvalidChannel(id.to_owned()))?;
        for listener in channel.listener_ids() {
            let _ = channel.remove_listener(&listener);
        }
        self.refusals.forget(id);
        Ok(channel)
    }

    /// Counts what a broadcast on `channel` met: messages refused by full queues,
    /// listeners disconnected by their overflowing queue. Logged as summaries, at most
    /// a line per channel every 10 s (see `refusals.rs`).
    pub(crate) fn note_refusals(&self, channel: &str, rejected: usize, disconnected: usize) {
        self.losses.add_refusals(rejected, disconnected);
        self.refusals.record(channel, rejected, disconnected);
        self.count_refusals(rejected, disconnected);
    }

    /// Counts a dispatch on `channel` that `error` refused, if a full queue refused it.
    pub(crate) fn note_refused(&self, channel: &str, error: &Error) {
        match error {
            Error::QueueFull { .. } => self.losses.add_refusals(1, 0),
            Error::Disconnected { .. } => self.losses.add_refusals(0, 1),
            _ => {}
        }
        self.refusals.record_error(channel, error);
        match error {
            Error::QueueFull { .. } => self.count_refusals(1, 0),
            Error::Disconnected { .. } => self.count_refusals(0, 1),
            _ => {}
        }
    }

    fn count_refusals(&self, rejected: usize, disconnected: usize) {
        self.metrics
            .dropped(DroppedReason::Rejected, rejected as u64);
        self.metrics
            .dropped(DroppedReason::Disconnected, disconnected as u64);
        for _ in 0..disconnected {
            self.metrics.disconnected(DisconnectReason::Overflow);
        }
    }

    /// What the servers over this container count: see [`Metrics`].
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether the channels can be served: `Ok` for the in-memory channels, which are
    /// always reachable; the reason otherwise. `/readyz` answers with it.
    pub fn readiness(&self) -> Result<(), String> {
        Ok(())
    }

    /// Calls `f` on every channel, with its id (outside the container's lock, so that
    /// `f` may lock the channel).
    pub(crate) fn for_each_channel(&self, mut f: impl FnMut(&str, &SseChannel)) {
        let channels: Vec<(String, SseChannel)> = self
            .channels
            .read()
            .iter()
            .map(|(id, channel)| (id.clone(), channel.clone()))
            .collect();
        for (id, channel) in &channels {
            f(id, channel);
        }
    }

    /// Logs the refusals not logged yet (a server stops).
    pub(crate) fn flush_refusals(&self) {
        self.refusals.flush();
    }

    /// The ids of all channels, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.channels.read().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Every channel id with its listener ids, sorted.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        self.channels
            .read()
            .iter()
            .map(|(id, channel)| {
                let mut listeners = channel.listener_ids();
                listeners.sort();
                (id.clone(), listeners)
            })
            .collect()
    }

    /// The number of channels.
    pub fn len(&self) -> usize {
        self.channels.read().len()
    }

    /// Whether there is no channel.
    pub fn is_empty(&self) -> bool {
        self.channels.read().is_empty()
    }

    /// The total number of listeners over all channels.
    pub fn listener_count(&self) -> usize {
        self.channels
            .read()
            .values()
            .map(|channel| channel.listener_count())
            .sum()
    }
}
