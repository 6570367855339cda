//! Listeners and their queues.
//!
//! A [`Listener`] owns the queue of messages waiting for it. Producers push into it
//! (through [`Channel::dispatch`](crate::Channel::dispatch) and
//! [`Channel::broadcast`](crate::Channel::broadcast)); consumers pop from it through a
//! [`MessageStream`](crate::MessageStream) or
//! [`Channel::deliver_next`](crate::Channel::deliver_next).
//!
//! # Bounded queues and overflow
//!
//! A queue is unbounded by default, as in the reference. A [`QueueConfig`] may bound it;
//! when a message arrives at a full queue, the listener's [`OverflowPolicy`] decides:
//!
//! * [`Reject`](OverflowPolicy::Reject): the new message is refused.
//!   [`Channel::dispatch`](crate::Channel::dispatch) returns
//!   [`Error::QueueFull`](crate::Error::QueueFull); a broadcast skips this listener and
//!   reports it in [`BroadcastReport::rejected`](crate::BroadcastReport::rejected).
//! * [`DropOldest`](OverflowPolicy::DropOldest): the oldest queued message is discarded to
//!   make room. The new message is accepted.
//! * [`Disconnect`](OverflowPolicy::Disconnect): the listener is removed from its channel;
//!   its open streams yield one `_eric_channel_closed` item and end.
//!
//! Every message lost in these ways is counted in [`ListenerStats::dropped`]; nothing is
//! dropped silently.
//!
//! # Resume
//!
//! A queue holds only what waits for a consumer. What was delivered, and may have been
//! lost with a connection, stays in the channel's log (see [`crate::log`]), from which
//! [`Channel::message_stream_after`](crate::Channel::message_stream_after) replays it.

use crate::id_key::IdKey;
use crate::log::Epoch;
use crate::message::{Delivery, Message};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// A listener's message handler: the reference's `on_message` override.
///
/// It receives the listener (so it can stop itself, or answer with its id) and the
/// message. It runs once per delivered message, outside every lock, so it may dispatch
/// into any channel, the listener's own included.
///
/// # Panics
/// A handler that panics unwinds into whoever delivered the message (the stream's
/// consumer, or the caller of `deliver_next`); the message counts as delivered. eric
/// leaves recovery to that caller; eric-processing catches handler panics and reports
/// them as items.
pub type Handler = Arc<dyn Fn(&Listener, &Message) + Send + Sync>;

/// What a bounded queue does with a message that arrives when it is full.
/// See the [module documentation](self) for the details of each policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Refuse the new message with an error.
    #[default]
    Reject,
    /// Discard the oldest queued message to make room.
    DropOldest,
    /// Remove the listener from its channel.
    Disconnect,
}

/// Size limit and overflow policy of a listener's queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// The most messages the queue holds; `None` (the default) is unbounded.
    pub capacity: Option<usize>,
    /// What happens when a bounded queue is full.
    pub overflow: OverflowPolicy,
}

impl QueueConfig {
    /// An unbounded queue: the reference's behaviour.
    pub fn unbounded() -> Self {
        QueueConfig::default()
    }

    /// A queue of at most `capacity` messages (at least 1) with the given overflow policy.
    pub fn bounded(capacity: usize, overflow: OverflowPolicy) -> Self {
        QueueConfig {
            capacity: Some(at_least_one(capacity)),
            overflow,
        }
    }

    /// The most messages the queue holds: the capacity (a capacity of 0, which the
    /// public field allows, means the smallest queue), `usize::MAX` when unbounded.
    /// Every reader of the capacity goes through here, so all agree on what it means.
    pub(crate) fn limit(&self) -> usize {
        self.capacity.map_or(usize::MAX, at_least_one)
    }
}

/// A capacity as a queue holds it: at least one message.
fn at_least_one(capacity: usize) -> usize {
    capacity.max(1)
}

/// Counters of one listener, read with [`Listener::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Messages waiting in the queue.
    pub queued: usize,
    /// Messages taken out of the queue by consumers.
    pub delivered: u64,
    /// Messages lost to the overflow policy (rejected, or discarded as oldest).
    pub dropped: u64,
    /// The log offset of the last message queued (0 before the first).
    pub last_event_id: u64,
}

/// A consumer of one queue in a channel.
///
/// A listener has an id, a running flag and an optional [`Handler`]. It is created on its
/// own (to choose its id, handler or queue) and then handed to
/// [`Channel::register_listener`](crate::Channel::register_listener), or created by
/// [`Channel::add_listener`](crate::Channel::add_listener). Registered listeners are
/// shared as `Arc<Listener>`.
///
/// A new listener is stopped. Messages are queued for it either way, but it delivers
/// only while running: a stream of a stopped listener ends, and
/// [`Channel::deliver_next`](crate::Channel::deliver_next) answers `NoMessages`.
///
/// ```
/// use eric_core::Listener;
///
/// let listener = Listener::with_id("alice").on_message(|me, msg| {
///     println!("{} got {}", me.id(), msg.msg_type);
/// });
/// assert!(!listener.is_running());
/// listener.start();
/// assert!(listener.is_running());
/// ```
// In declaration order (`repr(C)`): a broadcast to many listeners touches each one
// once per message, and what a push reads (the queue's lock and the first four fields
// of its state) is its first 64 bytes, on one or two cache lines. It is not
// `align(64)`, which would make that always one line: aligned allocations crowd the
// messages allocated after them onto fewer cache sets (docs/benchmarks.md).
#[repr(C)]
pub struct Listener {
    queue: Mutex<QueueState>,
    id_key: IdKey,
    running: AtomicBool,
    handler: Option<Handler>,
    config: QueueConfig,
    id: String,
    ready: Condvar,
    /// The channel's log offset when the listener joined it: entries up to it were
    /// published before the listener existed and are never replayed to it.
    joined_at: u64,
    /// The serial number of the channel holding the listener (0 before it joins one).
    /// A listener joins at most one channel, once: joining takes it by value.
    channel: u64,
}

/// A queued message and the offset it took in its channel's log.
struct Queued {
    id: u64,
    message: Arc<Message>,
}

// In declaration order (`repr(C)`): what every push reads and writes comes first, right
// after the mutex's lock byte (see `Listener`).
#[repr(C)]
struct QueueState {
    /// The messages waiting for a consumer.
    entries: VecDeque<Queued>,
    last_id: u64,
    /// A push takes its fast path while fewer messages than this are queued: the
    /// capacity, or 0 while the listener is removed or anyone waits for a push, which
    /// the slow path handles. One field for the three conditions keeps what a push
    /// reads within the listener's first 64 bytes; `refresh_gate` recomputes it after
    /// each change of any of them.
    fast_below: usize,
    /// The configuration's capacity (at least 1), `usize::MAX` for an unbounded queue:
    /// copied here, like the fields below from the configuration, so that a push or a
    /// pop reads it beside the ring it works on.
    capacity: usize,
    removed: bool,
    /// The epoch of the channel's log, which every delivery carries: kept once, beside
    /// what a pop writes, rather than in each queued entry, which stays two words.
    epoch: Epoch,
    delivered: u64,
    dropped: u64,
    waker: Option<Waker>,
    more_wakers: Vec<Waker>,
    blocked_threads: usize,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            entries: VecDeque::new(),
            last_id: 0,
            fast_below: usize::MAX,
            capacity: usize::MAX,
            removed: false,
            epoch: Epoch::from_u64(0),
            delivered: 0,
            dropped: 0,
            waker: None,
            more_wakers: Vec::new(),
            blocked_threads: 0,
        }
    }
}

/// What the queue has for a consumer.
pub(crate) enum Next {
    Message(Delivery),
    Stopped,
    Removed,
}

/// Why a push did not queue the message.
pub(crate) enum Refused {
    Full,
    MustDisconnect,
    Removed,
}

/// Wakers taken out of the queue under its lock, woken after it is released.
struct Wakeup {
    waker: Option<Waker>,
    more: Vec<Waker>,
    threads: bool,
}

impl Wakeup {
    fn run(self, ready: &Condvar) {
        if let Some(waker) = self.waker {
            waker.wake();
        }
        for waker in self.more {
            waker.wake();
        }
        if self.threads {
            ready.notify_all();
        }
    }
}

impl QueueState {
    fn has_waiters(&self) -> bool {
        self.waker.is_some() || !self.more_wakers.is_empty() || self.blocked_threads > 0
    }

    /// Brings `fast_below` up to date after a change of the waiters, the capacity or
    /// `removed`.
    fn refresh_gate(&mut self) {
        self.fast_below = if self.removed || self.has_waiters() {
            0
        } else {
            self.capacity
        };
    }

    fn take_wakeup(&mut self) -> Wakeup {
        let wakeup = Wakeup {
            waker: self.waker.take(),
            more: if self.more_wakers.is_empty() {
                Vec::new()
            } else {
                std::mem::take(&mut self.more_wakers)
            },
            threads: self.blocked_threads > 0,
        };
        self.refresh_gate();
        wakeup
    }

    fn register(&mut self, waker: &Waker) {
        match &self.waker {
            None => self.waker = Some(waker.clone()),
            Some(current) if current.will_wake(waker) => {}
            Some(_) => {
                if !self.more_wakers.iter().any(|w| w.will_wake(waker)) {
                    self.more_wakers.push(waker.clone());
                }
            }
        }
        self.refresh_gate();
    }

    /// Messages waiting for a consumer.
    fn queued(&self) -> usize {
        self.entries.len()
    }

    fn pop(&mut self) -> Option<Delivery> {
        let Queued { id, message } = self.entries.pop_front()?;
        self.delivered += 1;
        Some(Delivery {
            id,
            epoch: self.epoch,
            message,
        })
    }
}

impl Listener {
    /// A stopped listener with the next generated id, no handler and an unbounded queue.
    pub fn new() -> Self {
        Listener::with_id(crate::id::next_listener_id())
    }

    /// A stopped listener with a caller-chosen id.
    pub fn with_id(id: impl Into<String>) -> Self {
        let id = id.into();
        Listener {
            id_key: IdKey::new(&id),
            queue: Mutex::new(QueueState::default()),
            running: AtomicBool::new(false),
            handler: None,
            config: QueueConfig::default(),
            id,
            ready: Condvar::new(),
            joined_at: 0,
            channel: 0,
        }
    }

    /// The same listener, held by the channel with serial number `channel`, whose log
    /// is at `offset` as it joins.
    pub(crate) fn joining(mut self, channel: u64, offset: u64, epoch: Epoch) -> Self {
        self.channel = channel;
        self.joined_at = offset;
        self.queue.get_mut().epoch = epoch;
        self
    }

    /// Whether the channel with this serial number holds (or held) the listener.
    pub(crate) fn joined(&self, channel: u64) -> bool {
        self.channel == channel
    }

    /// The same listener with `handler` called once per delivered message.
    pub fn on_message<F>(mut self, handler: F) -> Self
    where
        F: Fn(&Listener, &Message) + Send + Sync + 'static,
    {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// The same listener with this queue configuration.
    pub fn queue_config(mut self, config: QueueConfig) -> Self {
        self.config = config;
        let state = self.queue.get_mut();
        state.capacity = config.limit();
        state.refresh_gate();
        self
    }

    /// The listener's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key its channel finds it by.
    pub(crate) fn id_key(&self) -> &IdKey {
        &self.id_key
    }

    /// The listener's queue configuration.
    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Marks the listener as running: its streams deliver.
    pub fn start(&self) {
        self.running.store(true, Ordering::SeqCst);
    }

    /// Marks the listener as stopped: its open streams end (they are woken at once).
    /// Messages keep being queued; a later [`start`](Self::start) delivers them.
    pub fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
        self.wake_all();
    }

    /// Whether the listener is running.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Runs the listener's handler on `message`, if it has one.
    ///
    /// Streams and [`Channel::deliver_next`](crate::Channel::deliver_next) call this for
    /// every message they deliver; executors that pop with
    /// [`take_next`](Self::take_next) call it themselves.
    pub fn handle(&self, message: &Message) {
        if let Some(handler) = &self.handler {
            handler(self, message);
        }
    }

    /// Whether the listener has a handler.
    pub fn has_handler(&self) -> bool {
        self.handler.is_some()
    }

    /// Its counters: queue length, delivered, dropped, last event id.
    pub fn stats(&self) -> ListenerStats {
        let state = self.queue.lock();
        ListenerStats {
            queued: state.queued(),
            delivered: state.delivered,
            dropped: state.dropped,
            last_event_id: state.last_id,
        }
    }

    /// Number of messages waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.queue.lock().queued()
    }

    /// Whether the listener was removed from its channel (or disconnected by overflow).
    pub fn is_removed(&self) -> bool {
        self.queue.lock().removed
    }

    /// Pops the next queued message whether or not the listener runs, without calling
    /// the handler. Meant for executors that run handlers elsewhere (eric-processing).
    pub fn take_next(&self) -> Option<Delivery> {
        self.queue.lock().pop()
    }

    /// The log offset up to which every message queued for the listener has left its
    /// queue: right before the oldest still queued, else the last one queued (0 before
    /// the first). An engine that keeps queues elsewhere stores it as the listener's
    /// cursor.
    pub fn consumed_through(&self) -> u64 {
        let state = self.queue.lock();
        match state.entries.front() {
            Some(first) => first.id - 1,
            None => state.last_id,
        }
    }

    /// The log offset at which it joined its channel.
    pub(crate) fn joined_at(&self) -> u64 {
        self.joined_at
    }

    /// The address that tells it apart from any other listener while it lives.
    pub(crate) fn address(&self) -> usize {
        self as *const Listener as usize
    }

    /// The log offset of the oldest queued message, if any.
    pub(crate) fn first_queued(&self) -> Option<u64> {
        self.queue.lock().entries.front().map(|d| d.id)
    }

    /// Queues `message`, which took offset `id` of its channel's log, applying the
    /// overflow policy.
    pub(crate) fn push(&self, id: u64, message: &Arc<Message>) -> Result<(), Refused> {
        let mut state = self.queue.lock();
        if state.queued() >= state.fast_below {
            return self.push_slow(state, id, message);
        }
        state.last_id = id;
        state.entries.push_back(Queued {
            id,
            message: Arc::clone(message),
        });
        Ok(())
    }

    /// `push` to a removed listener, a full queue or one somebody waits on.
    #[inline(never)]
    fn push_slow(
        &self,
        mut state: MutexGuard<'_, QueueState>,
        id: u64,
        message: &Arc<Message>,
    ) -> Result<(), Refused> {
        if state.removed {
            return Err(Refused::Removed);
        }
        if state.queued() >= state.capacity {
            match self.config.overflow {
                OverflowPolicy::Reject => {
                    state.dropped += 1;
                    return Err(Refused::Full);
                }
                OverflowPolicy::DropOldest => {
                    state.entries.pop_front();
                    state.dropped += 1;
                }
                OverflowPolicy::Disconnect => {
                    state.dropped += 1;
                    return Err(Refused::MustDisconnect);
                }
            }
        }
        state.last_id = id;
        state.entries.push_back(Queued {
            id,
            message: Arc::clone(message),
        });
        if state.has_waiters() {
            let wakeup = state.take_wakeup();
            drop(state);
            wakeup.run(&self.ready);
        }
        Ok(())
    }

    /// Marks the listener as removed from its channel and wakes its consumers. The
    /// messages still queued are discarded with it; when the removal is the overflow
    /// policy's doing they count as dropped.
    pub(crate) fn mark_removed(&self, by_overflow: bool) {
        let mut state = self.queue.lock();
        state.removed = true;
        state.refresh_gate();
        if by_overflow {
            state.dropped += state.queued() as u64;
        }
        state.entries.clear();
        let wakeup = state.take_wakeup();
        drop(state);
        wakeup.run(&self.ready);
    }

    fn wake_all(&self) {
        let wakeup = self.queue.lock().take_wakeup();
        wakeup.run(&self.ready);
    }

    fn next_locked(&self, state: &mut QueueState) -> Option<Next> {
        if state.removed {
            return Some(Next::Removed);
        }
        if !self.is_running() {
            return Some(Next::Stopped);
        }
        state.pop().map(Next::Message)
    }

    /// The next message for a running listener, if one is queued.
    pub(crate) fn try_next(&self) -> Option<Next> {
        self.next_locked(&mut self.queue.lock())
    }

    /// The next message, or registers `cx`'s waker to be woken by the next push, stop or
    /// removal.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Next> {
        let mut state = self.queue.lock();
        match self.next_locked(&mut state) {
            Some(next) => Poll::Ready(next),
            None => {
                state.register(cx.waker());
                Poll::Pending
            }
        }
    }

    /// The next message, blocking the thread until one comes or `deadline` passes
    /// (`None` on timeout).
    pub(crate) fn wait_next(&self, deadline: Option<Instant>) -> Option<Next> {
        let mut state = self.queue.lock();
        loop {
            if let Some(next) = self.next_locked(&mut state) {
                return Some(next);
            }
            state.blocked_threads += 1;
            state.refresh_gate();
            let timed_out = match deadline {
                Some(deadline) => self.ready.wait_until(&mut state, deadline).timed_out(),
                None => {
                    self.ready.wait(&mut state);
                    false
                }
            };
            state.blocked_threads -= 1;
            state.refresh_gate();
            if timed_out {
                return self.next_locked(&mut state);
            }
        }
    }
}

impl Default for Listener {
    fn default() -> Self {
        Listener::new()
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("id", &self.id)
            .field("running", &self.is_running())
            .field("has_handler", &self.has_handler())
            .field("config", &self.config)
            .finish()
    }
}
