//! The set of channels the servers share: the reference's `SSEChannelContainer`.

use crate::engine::{ChannelStream, Engine};
use crate::losses::LossCounters;
use crate::metrics::{DisconnectReason, DroppedReason, Metrics};
use crate::refusals::RefusalLog;
use eric_core::{
    BroadcastReport, Error, Listener, Message, QueueConfig, QueueLedger, Result, Retention,
};
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
///
/// Every transport reaches channels through it: with an [`Engine`] (see
/// [`with_engine`](Self::with_engine)) the state lives outside the process and the
/// container hands each operation to the engine; without one (the default) it lives
/// in the container's own map.
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
    /// The engine keeping the state outside the process, if any.
    engine: Option<Arc<dyn Engine>>,
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
            engine: None,
        }
    }

    /// An empty container whose channels use `settings`, and whose state `engine` keeps.
    pub fn with_engine(settings: ChannelSettings, engine: Arc<dyn Engine>) -> Self {
        ChannelContainer {
            engine: Some(engine),
            ..ChannelContainer::with_settings(settings)
        }
    }

    /// Whether the engine that keeps the channels' state can be reached: always for
    /// the in-memory engine; the reason otherwise. `/readyz` answers with it.
    pub fn readiness(&self) -> std::result::Result<(), String> {
        match &self.engine {
            None => Ok(()),
            Some(engine) => engine.readiness(),
        }
    }

    /// What the engine tells of its store (`None` in memory); see
    /// [`Engine::figures`].
    pub fn engine_figures(&self) -> Option<crate::engine::EngineFigures> {
        self.engine.as_ref().and_then(|engine| engine.figures())
    }

    /// Whether the state lives outside the process (an engine other than the
    /// in-memory one).
    pub fn has_engine(&self) -> bool {
        self.engine.is_some()
    }

    /// Registers a new listener on `channel` (stopped, as every new listener); its id.
    pub fn subscribe(&self, channel: &SseChannel) -> Result<String> {
        match &self.engine {
            None => Ok(channel.add_listener().id().to_owned()),
            Some(engine) => engine.subscribe(channel),
        }
    }

    /// The listener `id` of `channel`, ready to stream here.
    pub fn listener(&self, channel: &SseChannel, id: &str) -> Result<Arc<Listener>> {
        match &self.engine {
            None => channel.get_listener(id),
            Some(engine) => engine.listener(channel, id),
        }
    }

    /// The listener `id` of `channel` as a target of [`dispatch_to`](Self::dispatch_to):
    /// checked to exist, but not made ready to stream here (with an engine, a handle
    /// that only names it).
    pub fn dispatch_target(&self, channel: &SseChannel, id: &str) -> Result<Arc<Listener>> {
        match &self.engine {
            None => channel.get_listener(id),
            Some(engine) => {
                engine.has_listener(channel, id)?;
                Ok(Arc::new(Listener::with_id(id)))
            }
        }
    }

    /// Removes the listener `id` of `channel`: its streams get `_eric_channel_closed`.
    pub fn remove_listener(&self, channel: &SseChannel, id: &str) -> Result<()> {
        match &self.engine {
            None => channel.remove_listener(id).map(drop),
            Some(engine) => engine.remove_listener(channel, id),
        }
    }

    /// Queues `message` for every listener of `channel`. With an engine the report
    /// counts nothing: the listeners' queues are the engine's, and the call returns
    /// once the engine stored the message.
    pub fn broadcast(&self, channel: &SseChannel, message: Message) -> Result<BroadcastReport> {
        match &self.engine {
            None => Ok(channel.broadcast(message)),
            Some(engine) => engine
                .publish(channel, None, Arc::new(message))
                .map(|()| BroadcastReport::default()),
        }
    }

    /// Queues `message` for the listener `id` of `channel`.
    pub fn dispatch(&self, channel: &SseChannel, id: &str, message: Message) -> Result<()> {
        match &self.engine {
            None => channel.dispatch(id, message),
            Some(engine) => engine.publish(channel, Some(id), Arc::new(message)),
        }
    }

    /// Queues `message` for a listener the caller already holds (from
    /// [`listener`](Self::listener)).
    pub fn dispatch_to(
        &self,
        channel: &SseChannel,
        listener: &Arc<Listener>,
        message: &Arc<Message>,
    ) -> Result<()> {
        match &self.engine {
            None => channel.dispatch_to(listener, message),
            Some(engine) => engine.publish(channel, Some(listener.id()), Arc::clone(message)),
        }
    }

    /// A new listener of `channel`, started, that lives as long as the stream; after
    /// the retained broadcasts since `last_event_id` when given.
    pub fn watch(
        &self,
        channel: &SseChannel,
        last_event_id: Option<&str>,
    ) -> Result<ChannelStream> {
        match (&self.engine, last_event_id) {
            (None, None) => Ok(channel.watch()),
            (None, Some(id)) => Ok(channel.watch_after(id)),
            (Some(engine), _) => engine.watch(channel, last_event_id),
        }
    }

    /// Stores what the engine must keep past the process (nothing in memory).
    pub fn flush_engine(&self) {
        if let Some(engine) = &self.engine {
            engine.flush();
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
    ///
    /// # Panics
    /// With an engine, when the engine fails: use [`add_with`](Self::add_with) there.
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
        if let Some(engine) = &self.engine {
            return engine.create(id, retention, &self.settings);
        }
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
        if let Some(engine) = &self.engine {
            return engine.get(id, &self.settings);
        }
        self.channels
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::InvalidChannel(id.to_owned()))
    }

    /// Removes a channel and every listener in it: their streams get
    /// `_eric_channel_closed` and end.
    pub fn remove(&self, id: &str) -> Result<SseChannel> {
        if let Some(engine) = &self.engine {
            let channel = engine.remove(id)?;
            self.refusals.forget(id);
            return Ok(channel);
        }
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
        self.try_ids().unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot list the channels");
            Vec::new()
        })
    }

    /// The ids of all channels, sorted, or why the engine cannot list them.
    pub fn try_ids(&self) -> Result<Vec<String>> {
        if let Some(engine) = &self.engine {
            return Ok(engine.snapshot()?.into_keys().collect());
        }
        let mut ids: Vec<String> = self.channels.read().keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    /// Every channel id with its listener ids, sorted.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        self.try_snapshot().unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot list the channels");
            BTreeMap::new()
        })
    }

    /// Every channel id with its listener ids, sorted, or why the engine cannot list
    /// them.
    pub fn try_snapshot(&self) -> Result<BTreeMap<String, Vec<String>>> {
        if let Some(engine) = &self.engine {
            return engine.snapshot();
        }
        Ok(self
            .channels
            .read()
            .iter()
            .map(|(id, channel)| {
                let mut listeners = channel.listener_ids();
                listeners.sort();
                (id.clone(), listeners)
            })
            .collect())
    }

    /// The number of channels.
    pub fn len(&self) -> usize {
        match &self.engine {
            None => self.channels.read().len(),
            Some(_) => self.ids().len(),
        }
    }

    /// Whether there is no channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total number of listeners over all channels.
    pub fn listener_count(&self) -> usize {
        match &self.engine {
            None => self
                .channels
                .read()
                .values()
                .map(|channel| channel.listener_count())
                .sum(),
            Some(_) => self.snapshot().values().map(Vec::len).sum(),
        }
    }
}
