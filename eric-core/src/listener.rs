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
//!   make room. The new message is accepted. A stream's next item is then a gap marker
//!   for what was discarded since its previous item (see below).
//! * [`Disconnect`](OverflowPolicy::Disconnect): the listener is removed from its channel;
//!   its open streams yield one `_eric_channel_closed` item and end.
//!
//! Every message lost in these ways is counted in [`ListenerStats::dropped`]; nothing is
//! dropped silently.
//!
//! ## The gap marker of `DropOldest`
//!
//! A [`MessageStream`](crate::MessageStream) whose queue discarded messages since its
//! previous item yields, before its next message, one item of type
//! [`MESSAGE_TYPE_ERROR`](crate::MESSAGE_TYPE_ERROR): the channel log's `history_gap`
//! marker (see [`crate::log`]) with reason `"dropped"`, one for a whole run of discards:
//! `{"error": "history_gap", "last_event_id": ..., "first_available": ..., "reason": "dropped", "dropped": n}`.
//!
//! * its id, echoed in `last_event_id`, is the position just before the first message
//!   discarded: a consumer that resumes from it
//!   ([`Channel::message_stream_after`](crate::Channel::message_stream_after)) gets them
//!   back from the channel's log while the log retains them;
//! * `first_available` is the position of the message the stream yields next;
//! * `dropped` counts the messages discarded.
//!
//! Pull consumers ([`Channel::deliver_next`](crate::Channel::deliver_next),
//! [`Listener::take_next`]) get no marker: they see the ids jump, and the counter.
//!
//! ## A bound in bytes: consumers too slow
//!
//! [`QueueConfig::max_bytes`] bounds the bytes a queue holds, each message counted at
//! [`message_size`] (computed once per publish, not per queue), whatever the policy. A
//! push that would take a non-empty queue over it ends the consumer's turn: everything
//! queued is discarded, and so is every message that comes until a stream takes the
//! marker (all counted in [`ListenerStats::dropped`], the event in
//! [`ListenerStats::too_slow`]). The stream's next item is an `_eric_error` item
//! `{"error": "too_slow", "last_event_id": ..., "max_lag_bytes": ..., "message": ...}`,
//! and then it ends. Its id, echoed in `last_event_id`, is the position just before the
//! first message discarded, so a consumer that resumes from it gets them back from the
//! channel's log while the log retains them. The listener stays in its channel (a
//! [`Channel::watch`](crate::Channel::watch) stream removes it as it ends), and its queue
//! takes messages again once the marker is taken or a stream resumes.
//!
//! A [`QueueLedger`] shared by channels counts the bytes all their queues hold, against
//! an optional budget that publishers check ([`QueueLedger::admit`]), and tells an
//! observer what publishes lost. Queues count bytes only when they have a byte bound or
//! their channel a ledger with a budget: the default costs nothing.
//!
//! # Resume
//!
//! A queue holds only what waits for a consumer. What was delivered, and may have been
//! lost with a connection, stays in the channel's log (see [`crate::log`]), from which
//! [`Channel::message_stream_after`](crate::Channel::message_stream_after) replays it.

use crate::deferred::{DeferredPush, Room, Tail, Waiter, MAX_ROOM, NO_ROOM};
use crate::id_key::IdKey;
use crate::log::{Epoch, Position};
use crate::message::{Delivery, Message};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
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
    /// The most bytes of messages (as [`message_size`] counts them) the queue holds
    /// before its consumer counts as too slow; `None` (the default) is unbounded. See
    /// the [module documentation](self#a-bound-in-bytes-consumers-too-slow).
    pub max_bytes: Option<usize>,
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
            max_bytes: None,
        }
    }

    /// The same configuration with a bound of `max_bytes` on the bytes queued.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = Some(max_bytes);
        self
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
    /// Bytes of the messages waiting, as [`message_size`] counts them; 0 in a queue
    /// that does not count bytes (no byte bound, no budget).
    pub queued_bytes: usize,
    /// How many times the queue went over its byte bound and its stream was ended as
    /// too slow.
    pub too_slow: u64,
}

/// The size of a message as byte bounds and budgets count it: its type and payload as
/// JSON text, estimated without writing it (strings by their length, numbers as 8
/// bytes), plus a fixed overhead; at most `u32::MAX`.
pub fn message_size(message: &Message) -> usize {
    fn value_size(value: &serde_json::Value) -> usize {
        use serde_json::Value;
        match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(text) => text.len() + 2,
            Value::Array(items) => 2 + items.iter().map(|v| value_size(v) + 1).sum::<usize>(),
            Value::Object(map) => {
                2 + map
                    .iter()
                    .map(|(k, v)| k.len() + 4 + value_size(v))
                    .sum::<usize>()
            }
        }
    }
    (message.msg_type.len() + value_size(&message.payload) + 24).min(u32::MAX as usize)
}

/// A listener's queue, locked; in a channel that defers its broadcasts it first
/// applies what was deferred to the queue, and when it unlocks gives back to the
/// listener's [`Room`] what the section freed (see [`crate::deferred`]). Every lock of
/// a queue goes through it.
struct Section<'a> {
    listener: &'a Listener,
    state: MutexGuard<'a, QueueState>,
    /// What the queue used when last noted.
    used: Used,
}

/// What a queue uses against its [`Room`]: messages and bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Used {
    messages: i64,
    bytes: i64,
}

impl std::ops::Deref for Section<'_> {
    type Target = QueueState;
    fn deref(&self) -> &QueueState {
        &self.state
    }
}

impl std::ops::DerefMut for Section<'_> {
    fn deref_mut(&mut self) -> &mut QueueState {
        &mut self.state
    }
}

impl Section<'_> {
    /// Gives back to the room what was freed since the last note (or takes what was
    /// filled), and notes again: before the lock is let go.
    fn settle(&mut self) {
        let now = self.listener.used(&self.state);
        if now != self.used {
            self.listener.room.add(
                self.used.messages - now.messages,
                self.used.bytes - now.bytes,
            );
            self.used = now;
        }
    }

    /// After the lock was let go and taken again (a condition variable's wait): applies
    /// what was deferred meanwhile and notes again.
    fn resume(&mut self) {
        self.listener.apply_deferred(&mut self.state);
        self.used = self.listener.used(&self.state);
    }
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        self.settle();
    }
}

/// What a publish lost to queues: what [`QueueLedger`]'s observer is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Messages discarded as oldest by [`OverflowPolicy::DropOldest`].
    pub discarded: u64,
    /// Queues that went over their byte bound now: their streams end as too slow.
    pub too_slow: u64,
    /// Messages discarded by queues cut as too slow (what they held then, and what came
    /// until their stream took the marker); the channel's log still has them.
    pub too_slow_discarded: u64,
}

impl Losses {
    /// Whether nothing was lost.
    pub fn is_empty(&self) -> bool {
        *self == Losses::default()
    }
}

/// Called with the channel's id and what one publish lost; see [`QueueLedger::observe`].
pub type LossObserver = Box<dyn Fn(&str, Losses) + Send + Sync>;

/// Shared by many channels (a server's): the bytes all their queues hold, against an
/// optional budget, and an observer of what publishes lost to full or too slow queues.
///
/// Publishers ask [`admit`](Self::admit) first and refuse the message while the queues
/// hold the budget. The count is kept without a shared write per delivery: a publish
/// adds its bytes once for all the queues that took it, and a queue gives back what its
/// consumer took when the queue runs empty or every 64 KiB, so the count may run a
/// little above the truth while consumers read, never below it for long.
pub struct QueueLedger {
    max_bytes: Option<usize>,
    queued: AtomicI64,
    observer: Option<LossObserver>,
}

/// Bytes a queue takes before it gives them back to its ledger even though it is not
/// empty yet.
const RELEASE_BATCH: usize = 64 * 1024;

impl QueueLedger {
    /// A ledger with a budget of `max_bytes` over every queue (`None`: no budget, only
    /// the observer).
    pub fn new(max_bytes: Option<usize>) -> Self {
        QueueLedger {
            max_bytes,
            queued: AtomicI64::new(0),
            observer: None,
        }
    }

    /// The same ledger, calling `observer` after every publish that lost messages (with
    /// no lock of the channel held).
    #[must_use]
    pub fn observe(mut self, observer: impl Fn(&str, Losses) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// The budget: the most bytes the queues may hold before publishes are refused.
    pub fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }

    /// The bytes the queues hold now (as counted: see the type's documentation).
    pub fn queued_bytes(&self) -> usize {
        usize::try_from(self.queued.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// `Ok` while the queues hold less than the budget;
    /// [`Error::Overloaded`](crate::Error::Overloaded) once they hold it.
    pub fn admit(&self) -> crate::Result<()> {
        let Some(limit) = self.max_bytes else {
            return Ok(());
        };
        let queued = self.queued_bytes();
        if queued >= limit {
            return Err(crate::Error::Overloaded { queued, limit });
        }
        Ok(())
    }

    /// Whether queues of channels with this ledger count their bytes.
    pub(crate) fn counts_bytes(&self) -> bool {
        self.max_bytes.is_some()
    }

    pub(crate) fn take(&self, bytes: usize) {
        if bytes > 0 {
            self.queued.fetch_add(bytes as i64, Ordering::Relaxed);
        }
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.queued.fetch_sub(bytes as i64, Ordering::Relaxed);
        }
    }

    pub(crate) fn report(&self, channel: &str, losses: Losses) {
        if let Some(observer) = &self.observer {
            if !losses.is_empty() {
                observer(channel, losses);
            }
        }
    }
}

impl fmt::Debug for QueueLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueLedger")
            .field("max_bytes", &self.max_bytes)
            .field("queued_bytes", &self.queued_bytes())
            .field("observer", &self.observer.is_some())
            .finish()
    }
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
// In declaration order (`repr(C)`). A push reads the queue's lock and the first fields
// of its state: the first 64 bytes, on one or two cache lines. A deferring broadcast
// touches only the room word and the flag beside it, at the other end: the consumer
// locks and unlocks its queue for every batch, and a broadcast writing on that line
// from the other core would make each of those a cache miss (docs/benchmarks.md). It
// is not `align(64)`, which would make the first 64 bytes always one line: aligned
// allocations crowd the messages allocated after them onto fewer cache sets.
#[repr(C)]
pub struct Listener {
    queue: Mutex<QueueState>,
    id_key: IdKey,
    running: AtomicBool,
    /// Whether the listener's channel defers its broadcasts, so that its queue's
    /// sections keep `room`.
    tracks_room: bool,
    /// The round of its channel's list of waiters (see [`Tail`]) that the stream's
    /// waker last went on in. Written under the queue's lock. In the padding after the
    /// flags, so 32 bits: a round repeats after 2^32 broadcasts, and a task that a
    /// broadcast woke is polled long before.
    listed_round: AtomicU32,
    handler: Option<Handler>,
    config: QueueConfig,
    id: String,
    ready: Condvar,
    /// The channel's log offset when the listener joined it: entries up to it were
    /// published before the listener existed and are never replayed to it.
    joined_at: u64,
    /// The deferred broadcasts of the channel holding the listener (none before it
    /// joins one), which also tells that channel from any other. A listener joins at
    /// most one channel, once: joining takes it by value.
    tail: Option<Arc<Tail>>,
    /// The offset up to which the queue took what its channel's broadcasts deferred to
    /// it (`u64::MAX` once removed). Written under the queue's lock; read without it by
    /// the channel, which trims its tail below the smallest.
    applied: AtomicU64,
    /// What a broadcast may defer to the queue (see [`crate::deferred`]).
    room: Room,
    /// Whether `room` counts bytes: the queue has a byte bound, small enough to count.
    tracks_bytes: bool,
}

/// A queued message and the offset it took in its channel's log.
struct Queued {
    id: u64,
    message: Arc<Message>,
}

/// Messages a stream took from its listener's queue at once, under one lock, to yield
/// one by one without taking the lock again: the queue's ring itself, swapped with the
/// batch's empty one, so taking a batch moves no message and allocates nothing.
///
/// Its messages count as queued against the byte bound and the ledger until the stream
/// comes back for more; what a stream did not yield when it ends goes back to the
/// front of the queue ([`Listener::give_back`]).
pub(crate) struct Batch {
    entries: VecDeque<Queued>,
    /// The size of each message taken, when the queue counts bytes (else empty): a pop
    /// leaves it, so the sizes of what is not yielded yet are its last `entries.len()`.
    sizes: VecDeque<u32>,
    epoch: Epoch,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            entries: VecDeque::new(),
            sizes: VecDeque::new(),
            epoch: Epoch::from_u64(0),
        }
    }
}

impl Batch {
    /// The next message of the batch.
    pub(crate) fn pop(&mut self) -> Option<Delivery> {
        let Queued { id, message } = self.entries.pop_front()?;
        Some(Delivery {
            id,
            epoch: self.epoch,
            message,
        })
    }

    /// How many messages it still holds.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

// In declaration order (`repr(C)`): what every push reads and writes comes first, right
// after the mutex's lock byte (see `Listener`).
#[repr(C)]
struct QueueState {
    /// The messages waiting for a consumer.
    entries: VecDeque<Queued>,
    last_id: u64,
    /// A push takes its fast path while fewer messages than this are queued: the
    /// capacity, or 0 while the listener is removed, the queue counts bytes or anyone
    /// waits for a push, which the slow path handles. One field for these conditions
    /// keeps what a push reads within the listener's first 64 bytes; `refresh_gate`
    /// recomputes it after each change of any of them.
    fast_below: usize,
    /// The configuration's capacity (at least 1), `usize::MAX` for an unbounded queue:
    /// copied here, like the fields below from the configuration, so that a push or a
    /// pop reads it beside the ring it works on.
    capacity: usize,
    // The small fields share one word.
    blocked_threads: u32,
    removed: bool,
    /// Whether pushes and pops count the bytes of messages (a byte bound or a budget).
    counts_bytes: bool,
    /// Whether a pop has more to do than take the front entry: a marker is due or the
    /// queue counts bytes. One flag on the line of `delivered`, which every pop writes;
    /// `refresh_extra` recomputes it.
    extra: bool,
    /// The epoch of the channel's log, which every delivery carries: kept once, beside
    /// what a pop writes, rather than in each queued entry, which stays two words.
    epoch: Epoch,
    delivered: u64,
    /// The marker a stream's next item is, if one is due.
    mark: Mark,
    dropped: u64,
    waker: Option<Waker>,
    more_wakers: Vec<Waker>,
    /// Bytes of the messages waiting, when the queue counts them.
    bytes: usize,
    /// The size of each message waiting, when the queue counts bytes, in the order of
    /// `entries`: a pop gives back what its push took without measuring the message
    /// again, and the entries stay two words.
    sizes: VecDeque<u32>,
    /// The configuration's byte bound, `usize::MAX` for none.
    max_bytes: usize,
    too_slow: u64,
    /// How many messages the last cut discarded (for the channel's report).
    cut_discarded: u64,
    /// The ledger the queued bytes count against, if it has a budget.
    ledger: Option<Arc<QueueLedger>>,
    /// Bytes taken by consumers and not yet given back to the ledger.
    unreleased: usize,
    /// Bytes of the messages a stream took in its last [`Batch`]: they still count
    /// against the byte bound and the ledger until the stream comes back for more (by
    /// then it yielded them all) or gives the rest back.
    batch_bytes: usize,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            entries: VecDeque::new(),
            last_id: 0,
            fast_below: usize::MAX,
            capacity: usize::MAX,
            removed: false,
            counts_bytes: false,
            epoch: Epoch::from_u64(0),
            delivered: 0,
            dropped: 0,
            waker: None,
            more_wakers: Vec::new(),
            blocked_threads: 0,
            extra: false,
            mark: Mark::None,
            bytes: 0,
            sizes: VecDeque::new(),
            max_bytes: usize::MAX,
            too_slow: 0,
            cut_discarded: 0,
            ledger: None,
            unreleased: 0,
            batch_bytes: 0,
        }
    }
}

/// A marker due before a stream's next message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    None,
    /// `DropOldest` discarded `count` messages since the last pop, the first at offset
    /// `first`: a gap marker.
    Dropped {
        first: u64,
        count: u64,
    },
    /// The queue was cut for a consumer too slow; the first message discarded was at
    /// offset `first`. Nothing is queued until a stream takes the marker.
    Cut {
        first: u64,
    },
}

/// What the queue has for a consumer.
pub(crate) enum Next {
    Message(Delivery),
    /// The gap marker of messages discarded by `DropOldest` (streams only).
    Gap(Delivery),
    /// The marker of a queue cut as too slow: the stream ends after it (streams only).
    TooSlow(Delivery),
    Stopped,
    Removed,
}

/// What a push did other than queue the message plainly.
pub(crate) enum Refused {
    /// Not queued: the queue is full (`Reject`).
    Full,
    /// Not queued: the listener must be disconnected (`Disconnect`).
    MustDisconnect,
    /// Not queued: the listener was removed.
    Removed,
    /// Queued, and the oldest message discarded to make room (`DropOldest`).
    Discarded,
    /// Not queued: the queue went over its byte bound now and was cut, discarding what
    /// it held (see `Listener::cut_discarded`). The message is the channel's all the
    /// same (in its log).
    Cut,
    /// Not queued: the queue is cut and waits for its stream to take the marker.
    WhileCut,
}

/// Wakers taken out of the queue under its lock, woken after it is released.
pub(crate) struct Wakeup {
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
        self.fast_below = if self.removed || self.counts_bytes || self.has_waiters() {
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

    /// Registers `waker` to be woken by the next push, stop or removal; false if it
    /// was already.
    fn register(&mut self, waker: &Waker) -> bool {
        let added = match &self.waker {
            None => {
                self.waker = Some(waker.clone());
                true
            }
            Some(current) if current.will_wake(waker) => false,
            Some(_) => {
                let known = self.more_wakers.iter().any(|w| w.will_wake(waker));
                if !known {
                    self.more_wakers.push(waker.clone());
                }
                !known
            }
        };
        self.refresh_gate();
        added
    }

    /// Forgets `waker`, whose task is running: a broadcast may have woken it off its
    /// channel's list of waiters, which leaves the registration in place.
    fn forget_waker(&mut self, waker: &Waker) {
        if self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = None;
        } else if !self.more_wakers.is_empty() {
            self.more_wakers.retain(|w| !w.will_wake(waker));
        } else {
            return;
        }
        self.refresh_gate();
    }

    /// Appends `message` at offset `id`, counting its `size` if the queue counts bytes:
    /// a push once its policy and bound let it in, or a deferred push applied.
    fn enqueue(&mut self, id: u64, message: &Arc<Message>, size: usize) {
        if self.counts_bytes {
            self.bytes += size;
            self.sizes.push_back(size as u32);
        }
        self.last_id = id;
        self.entries.push_back(Queued {
            id,
            message: Arc::clone(message),
        });
    }

    /// Messages waiting for a consumer.
    fn queued(&self) -> usize {
        self.entries.len()
    }

    /// Takes the front entry, with no marker or byte count to mind (`extra` unset).
    #[inline]
    fn pop_plain(&mut self) -> Option<Delivery> {
        let Queued { id, message } = self.entries.pop_front()?;
        self.delivered += 1;
        Some(Delivery {
            id,
            epoch: self.epoch,
            message,
        })
    }

    /// Takes the front entry and counts its bytes out.
    fn pop(&mut self) -> Option<Delivery> {
        let delivery = self.pop_plain()?;
        if self.counts_bytes {
            self.popped_bytes();
        }
        Some(delivery)
    }

    fn set_mark(&mut self, mark: Mark) {
        self.mark = mark;
        self.refresh_extra();
    }

    fn refresh_extra(&mut self) {
        self.extra = self.counts_bytes || self.mark != Mark::None;
    }

    /// Counts out the bytes of a message that left the queue; gives them back to the
    /// ledger when the queue ran empty or enough have gathered.
    #[cold]
    fn popped_bytes(&mut self) {
        let size = self.sizes.pop_front().unwrap_or(0) as usize;
        self.bytes -= size;
        self.unreleased += size;
        if self.entries.is_empty() || self.unreleased >= RELEASE_BATCH {
            self.release_all();
        }
    }

    fn release_all(&mut self) {
        if let Some(ledger) = &self.ledger {
            ledger.release(self.unreleased);
        }
        self.unreleased = 0;
    }

    /// Moves what is queued into `batch` (empty): the rest of a stream's run of plain
    /// messages, after the one it yields now.
    fn take_batch(&mut self, batch: &mut Batch) {
        debug_assert!(batch.is_empty() && self.batch_bytes == 0);
        batch.sizes.clear();
        std::mem::swap(&mut self.entries, &mut batch.entries);
        std::mem::swap(&mut self.sizes, &mut batch.sizes);
        batch.epoch = self.epoch;
        self.delivered += batch.len() as u64;
        self.batch_bytes = std::mem::take(&mut self.bytes);
    }

    /// The stream is done with its last batch: the bytes of what it yielded stop
    /// counting.
    fn finish_batch(&mut self, yielded_bytes: usize) {
        if self.batch_bytes == 0 {
            return;
        }
        self.batch_bytes -= yielded_bytes;
        self.unreleased += yielded_bytes;
        if self.entries.is_empty() || self.unreleased >= RELEASE_BATCH {
            self.release_all();
        }
    }

    /// Discards every queued message; returns how many.
    fn discard_all(&mut self) -> u64 {
        let count = self.entries.len() as u64;
        self.entries.clear();
        self.sizes.clear();
        self.unreleased += self.bytes;
        self.bytes = 0;
        self.release_all();
        count
    }

    /// Discards the oldest message (`DropOldest`), noting it for the gap marker.
    fn discard_oldest(&mut self) {
        let Some(oldest) = self.entries.pop_front() else {
            return;
        };
        if self.counts_bytes {
            let size = self.sizes.pop_front().unwrap_or(0) as usize;
            self.bytes -= size;
            self.unreleased += size;
            self.release_all();
        }
        self.dropped += 1;
        match &mut self.mark {
            Mark::Dropped { count, .. } => *count += 1,
            _ => self.set_mark(Mark::Dropped {
                first: oldest.id,
                count: 1,
            }),
        }
    }

    /// Cuts the queue for a consumer too slow: what it holds is discarded, and so is
    /// what comes until a stream takes the marker. `next_id` is the offset of the
    /// message that went over the bound. Returns how many messages were discarded.
    fn cut(&mut self, next_id: u64) {
        let first = match self.mark {
            Mark::Dropped { first, .. } => first,
            _ => self.entries.front().map_or(next_id, |q| q.id),
        };
        let discarded = self.discard_all() + 1;
        self.dropped += discarded;
        self.cut_discarded = discarded;
        self.set_mark(Mark::Cut { first });
        self.too_slow += 1;
    }

    /// The `too_slow` marker of a queue that was cut, if it was; the queue takes
    /// messages again.
    fn take_cut(&mut self) -> Option<Delivery> {
        let Mark::Cut { first } = self.mark else {
            return None;
        };
        self.set_mark(Mark::None);
        let after = Position::new(self.epoch, first - 1);
        let max_bytes = self.max_bytes;
        Some(self.marker(after, crate::log::too_slow_payload(after, max_bytes)))
    }

    /// The gap marker for what `DropOldest` discarded since the last pop, if anything.
    fn take_gap(&mut self) -> Option<Delivery> {
        let Mark::Dropped { first, count } = self.mark else {
            return None;
        };
        self.set_mark(Mark::None);
        let next = self.entries.front().map_or(self.last_id + 1, |q| q.id);
        let after = Position::new(self.epoch, first - 1);
        let next = Position::new(self.epoch, next);
        Some(self.marker(after, crate::log::dropped_payload(after, next, count)))
    }

    fn marker(&self, at: Position, payload: serde_json::Value) -> Delivery {
        Delivery {
            id: at.offset,
            epoch: at.epoch,
            message: Arc::new(Message::new(crate::MESSAGE_TYPE_ERROR, payload)),
        }
    }
}

impl Drop for QueueState {
    fn drop(&mut self) {
        // What is still queued stops counting against the ledger with the queue.
        if self.ledger.is_some() {
            self.discard_all();
        }
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
            tail: None,
            room: Room::none(),
            tracks_room: false,
            tracks_bytes: false,
            listed_round: AtomicU32::new(u32::MAX),
            applied: AtomicU64::new(0),
            config: QueueConfig::default(),
            id,
            ready: Condvar::new(),
            joined_at: 0,
        }
    }

    /// The same listener, held by the channel whose deferred broadcasts are `tail` and
    /// whose log is at `offset` as it joins (its broadcasts after that are the
    /// listener's), of `epoch`, counting its bytes against `ledger` if that has a
    /// budget. `joined_at` is where its stream starts: `offset`, or earlier for a
    /// listener that resumes.
    pub(crate) fn joining(
        mut self,
        tail: &Arc<Tail>,
        joined_at: u64,
        offset: u64,
        epoch: Epoch,
        ledger: Option<&Arc<QueueLedger>>,
    ) -> Self {
        self.joined_at = joined_at;
        self.applied = AtomicU64::new(offset);
        let state = self.queue.get_mut();
        state.epoch = epoch;
        state.ledger = ledger.filter(|l| l.counts_bytes()).cloned();
        state.counts_bytes = state.max_bytes != usize::MAX || state.ledger.is_some();
        state.refresh_extra();
        state.refresh_gate();
        // A queue that holds nothing yet: its room is its bounds.
        let capacity = state.capacity.min(MAX_ROOM as usize) as i64;
        let max_bytes = state.max_bytes;
        // A byte bound too large to count leaves every push to the eager path.
        self.tracks_room =
            tail.defers() && (max_bytes == usize::MAX || max_bytes <= MAX_ROOM as usize);
        self.tracks_bytes = self.tracks_room && max_bytes != usize::MAX;
        self.room = match (self.tracks_room, self.tracks_bytes) {
            (false, _) => Room::none(),
            (true, false) => Room::new(capacity, MAX_ROOM),
            (true, true) => Room::new(capacity, max_bytes as i64),
        };
        self.tail = Some(Arc::clone(tail));
        self
    }

    /// What the queue uses against its room: its messages (and, while it is removed or
    /// cut, [`NO_ROOM`] more), and its bytes if the room counts them; each counted up to
    /// [`MAX_ROOM`], which is as good as full and keeps the room's halves in range.
    /// Nothing in a channel that does not defer, whose sections then leave the room
    /// alone.
    #[inline]
    fn used(&self, state: &QueueState) -> Used {
        if !self.tracks_room {
            return Used {
                messages: 0,
                bytes: 0,
            };
        }
        let shut = state.removed || matches!(state.mark, Mark::Cut { .. });
        let bytes = if self.tracks_bytes {
            (state.bytes + state.batch_bytes).min(MAX_ROOM as usize) as i64
        } else {
            0
        };
        Used {
            messages: state.entries.len().min(MAX_ROOM as usize) as i64
                + if shut { NO_ROOM } else { 0 },
            bytes,
        }
    }

    /// Locks the queue (see [`Section`]).
    #[inline]
    fn section(&self) -> Section<'_> {
        let mut state = self.queue.lock();
        self.apply_deferred(&mut state);
        let used = self.used(&state);
        Section {
            listener: self,
            state,
            used,
        }
    }

    /// Takes room for a push of `size` bytes that the queue would take plainly, for a
    /// broadcast to defer it; false if the queue has no room for it, or its channel
    /// does not defer.
    #[inline]
    pub(crate) fn try_defer(&self, size: usize) -> bool {
        let bytes = if self.tracks_bytes { size as i64 } else { 0 };
        self.room.try_take(bytes)
    }

    /// Applies what the channel's broadcasts deferred to the queue and it did not take
    /// yet.
    #[inline]
    fn apply_deferred(&self, state: &mut QueueState) {
        let Some(tail) = &self.tail else { return };
        // Relaxed: only this queue's sections write it, under the lock held here.
        let applied = self.applied.load(Ordering::Relaxed);
        let watermark = tail.watermark();
        if applied < watermark {
            self.apply_between(tail, state, applied, watermark);
        }
    }

    /// `apply_deferred` when there is something to apply: the same steps as a push
    /// with room, in offset order.
    #[inline(never)]
    fn apply_between(&self, tail: &Tail, state: &mut QueueState, applied: u64, watermark: u64) {
        tail.for_each_between(applied, watermark, |push: &DeferredPush| {
            state.enqueue(push.offset, &push.message, push.size);
        });
        self.applied.store(watermark, Ordering::Release);
    }

    /// The offset up to which the queue took what was deferred to it (see the field).
    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Whether the channel whose deferred broadcasts are `tail` holds (or held) the
    /// listener.
    pub(crate) fn joined(&self, tail: &Arc<Tail>) -> bool {
        self.tail.as_ref().is_some_and(|own| Arc::ptr_eq(own, tail))
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
        state.max_bytes = config.max_bytes.unwrap_or(usize::MAX);
        state.counts_bytes = state.max_bytes != usize::MAX || state.ledger.is_some();
        state.refresh_extra();
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
        let state = self.section();
        ListenerStats {
            queued: state.queued(),
            delivered: state.delivered,
            dropped: state.dropped,
            last_event_id: state.last_id,
            queued_bytes: state.bytes + state.batch_bytes,
            too_slow: state.too_slow,
        }
    }

    /// Number of messages waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.section().queued()
    }

    /// Whether the listener was removed from its channel (or disconnected by overflow).
    pub fn is_removed(&self) -> bool {
        self.queue.lock().removed
    }

    /// Pops the next queued message whether or not the listener runs, without calling
    /// the handler. Meant for executors that run handlers elsewhere (eric-processing).
    /// Like [`Channel::deliver_next`](crate::Channel::deliver_next) it yields no marker
    /// (see the [module documentation](self)).
    pub fn take_next(&self) -> Option<Delivery> {
        let mut state = self.section();
        Self::forget_markers(&mut state);
        state.pop()
    }

    /// The log offset up to which every message queued for the listener has left its
    /// queue: right before the oldest still queued, else the last one queued (0 before
    /// the first). An engine that keeps queues elsewhere stores it as the listener's
    /// cursor.
    pub fn consumed_through(&self) -> u64 {
        let state = self.section();
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

    /// The log offset of the oldest queued message, if any, for a stream that resumes
    /// from the log: the log covers what was discarded before it, so no marker is due
    /// any more.
    pub(crate) fn resume_point(&self) -> Option<u64> {
        let mut state = self.section();
        Self::forget_markers(&mut state);
        state.entries.front().map(|q| q.id)
    }

    /// Drops the markers due: a pull consumer sees the gap in the ids, a resume reads
    /// the log instead.
    fn forget_markers(state: &mut QueueState) {
        if state.mark != Mark::None {
            state.set_mark(Mark::None);
        }
    }

    /// How many messages the queue's last cut discarded (what it held, and the message
    /// that went over the bound).
    pub(crate) fn cut_discarded(&self) -> u64 {
        self.queue.lock().cut_discarded
    }

    /// Asks the CPU to bring the queue's cache lines (its lock and the state a push
    /// reads and writes) into the cache, without waiting for them. A broadcast calls it
    /// a few listeners ahead of its push
    /// ([`ListenerSet::iter_prefetching`](crate::registry::ListenerSet::iter_prefetching)):
    /// with thousands of listeners each queue's lines were last written by its
    /// consumer's core or have left the cache, and a push waited for them in turn.
    #[inline(always)]
    pub(crate) fn prefetch_queue(&self) {
        prefetch(&self.queue);
    }

    /// Asks the CPU for the line of the room word, as [`prefetch_queue`](Self::prefetch_queue)
    /// does for the queue: what a deferring broadcast reads.
    #[inline(always)]
    pub(crate) fn prefetch_room(&self) {
        prefetch(&self.room);
    }

    /// Queues `message`, which took offset `id` of its channel's log and counts `size`
    /// bytes (0 in a channel that does not count them), applying the overflow policy
    /// and the byte bound.
    pub(crate) fn push(&self, id: u64, message: &Arc<Message>, size: usize) -> Result<(), Refused> {
        let state = self.section();
        self.push_locked(state, id, message, size)
    }

    /// [`push`](Self::push) for a deferring broadcast that found no room in the queue.
    /// Whatever the push does, the tail's entry at `id` (deferred to other listeners)
    /// is not this queue's: a push refused here must not be applied later.
    pub(crate) fn push_broadcast(
        &self,
        id: u64,
        message: &Arc<Message>,
        size: usize,
    ) -> Result<(), Refused> {
        let state = self.section();
        // Relaxed load: only sections of this queue write it, and this one holds it.
        if self.applied.load(Ordering::Relaxed) < id {
            self.applied.store(id, Ordering::Release);
        }
        self.push_locked(state, id, message, size)
    }

    #[inline]
    fn push_locked(
        &self,
        mut state: Section<'_>,
        id: u64,
        message: &Arc<Message>,
        size: usize,
    ) -> Result<(), Refused> {
        if state.queued() >= state.fast_below {
            return self.push_slow(state, id, message, size);
        }
        state.last_id = id;
        state.entries.push_back(Queued {
            id,
            message: Arc::clone(message),
        });
        Ok(())
    }

    /// `push` to a removed listener, a full queue, one that counts bytes or one
    /// somebody waits on.
    #[inline(never)]
    fn push_slow(
        &self,
        mut state: Section<'_>,
        id: u64,
        message: &Arc<Message>,
        size: usize,
    ) -> Result<(), Refused> {
        if state.removed {
            return Err(Refused::Removed);
        }
        if let Mark::Cut { .. } = state.mark {
            state.dropped += 1;
            return Err(Refused::WhileCut);
        }
        // A single message over the bound is taken: the bound is on falling behind.
        if state.bytes + state.batch_bytes + size > state.max_bytes && !state.entries.is_empty() {
            state.cut(id);
            let wakeup = state.take_wakeup();
            drop(state);
            wakeup.run(&self.ready);
            return Err(Refused::Cut);
        }
        let mut discarded = false;
        if state.queued() >= state.capacity {
            match self.config.overflow {
                OverflowPolicy::Reject => {
                    state.dropped += 1;
                    return Err(Refused::Full);
                }
                OverflowPolicy::DropOldest => {
                    state.discard_oldest();
                    discarded = true;
                }
                OverflowPolicy::Disconnect => {
                    state.dropped += 1;
                    return Err(Refused::MustDisconnect);
                }
            }
        }
        state.enqueue(id, message, size);
        if state.has_waiters() {
            let wakeup = state.take_wakeup();
            drop(state);
            wakeup.run(&self.ready);
        }
        if discarded {
            Err(Refused::Discarded)
        } else {
            Ok(())
        }
    }

    /// Marks the listener as removed from its channel. The messages still queued are
    /// discarded with it; when the removal is the overflow policy's doing they count as
    /// dropped. Returns who is to be told, with [`wake`](Self::wake), once the caller
    /// let go of the channel's listener set.
    #[must_use]
    pub(crate) fn mark_removed(&self, by_overflow: bool) -> Wakeup {
        let mut state = self.section();
        state.removed = true;
        // Its channel's broadcasts no longer defer to it, nor keep their tail for it.
        self.applied.store(u64::MAX, Ordering::Release);
        state.refresh_gate();
        let discarded = state.discard_all();
        if by_overflow {
            state.dropped += discarded;
        }
        state.take_wakeup()
    }

    /// Wakes the consumers a [`Wakeup`] took out of the queue.
    pub(crate) fn wake(&self, wakeup: Wakeup) {
        wakeup.run(&self.ready);
    }

    fn wake_all(&self) {
        // A plain lock, as in `notify_threads`: taking the wakers changes nothing the room
        // counts, and the consumer applies the tail itself.
        let wakeup = self.queue.lock().take_wakeup();
        wakeup.run(&self.ready);
    }

    /// Tells the threads blocked on the queue that a broadcast may have deferred its
    /// next message: the channel's list of waiters named them.
    pub(crate) fn notify_threads(&self) {
        // Under the lock, which a thread holds from its last look at the tail until
        // its wait lets go of it: the notice cannot fall between the two. Not a
        // section: the consumer applies the tail itself.
        let state = self.queue.lock();
        if state.blocked_threads > 0 {
            self.ready.notify_all();
        }
    }

    /// For a consumer about to wait: puts it on its channel's list of waiters (a
    /// stream's task, `waker`, registered anew or not; `None`, a thread about to
    /// block), and says whether a broadcast came since the queue's section applied the
    /// tail, in which case it must not wait but look again. Under the queue's lock.
    fn wait_for_tail(
        self: &Arc<Self>,
        _locked: &mut QueueState,
        waker: Option<(&Waker, bool)>,
    ) -> bool {
        // A listener whose room is not tracked is never deferred to: its pushes wake it.
        let Some(tail) = self.tail.as_ref().filter(|_| self.tracks_room) else {
            return false;
        };
        match waker {
            // A task already on the list of the current round stays on it until a
            // broadcast takes the list and wakes it; the wake comes before its next
            // poll, which then sees the next round.
            Some((waker, registered_anew)) => {
                // Relaxed: written and read under the queue's lock only.
                if registered_anew || self.listed_round.load(Ordering::Relaxed) != tail.round() {
                    let round = tail.add_waiter(Waiter::Task(waker.clone()));
                    self.listed_round.store(round, Ordering::Relaxed);
                }
            }
            None => {
                tail.add_waiter(Waiter::Threads(Arc::clone(self)));
            }
        }
        // SeqCst, with the store in `Tail::end_broadcast`: either the broadcast takes
        // the list with this consumer on it and wakes it, or this sees its watermark.
        tail.watermark() > self.applied.load(Ordering::Relaxed)
    }

    /// What a consumer gets next; a stream (`markers`) gets a marker first when one is
    /// due, a pull consumer forgets it.
    #[inline]
    fn next_locked(&self, state: &mut QueueState, markers: bool) -> Option<Next> {
        if state.removed {
            return Some(Next::Removed);
        }
        if !self.is_running() {
            return Some(Next::Stopped);
        }
        if state.extra {
            return Self::next_extra(state, markers);
        }
        state.pop_plain().map(Next::Message)
    }

    /// `next_locked` when a marker is due (a stream gets it, a pull consumer forgets
    /// it) or the queue counts bytes.
    #[inline(never)]
    fn next_extra(state: &mut QueueState, markers: bool) -> Option<Next> {
        if state.mark != Mark::None {
            if !markers {
                Self::forget_markers(state);
            } else if let Some(marker) = state.take_cut() {
                return Some(Next::TooSlow(marker));
            } else if let Some(marker) = state.take_gap() {
                return Some(Next::Gap(marker));
            }
        }
        state.pop().map(Next::Message)
    }

    /// The next message for a running listener, if one is queued; for a stream
    /// (`markers`), a marker first when one is due.
    #[inline]
    pub(crate) fn try_next(&self, markers: bool) -> Option<Next> {
        let mut state = self.section();
        self.next_locked(&mut state, markers)
    }

    /// The next message, or registers `cx`'s waker to be woken by the next push, stop or
    /// removal. With a `batch` (an async stream that takes what is queued in one go),
    /// the messages queued behind a plain message move into it (it must be empty; made
    /// when first needed), for the stream to yield before it comes back; markers, a stop
    /// and a removal come one at a time all the same.
    pub(crate) fn poll_next(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        batch: Option<&mut Option<Box<Batch>>>,
    ) -> Poll<Next> {
        let mut state = self.section();
        // A stream comes back once it yielded the whole of its last batch.
        let yielded = state.batch_bytes;
        state.finish_batch(yielded);
        match self.next_locked(&mut state, true) {
            Some(next) => {
                state.forget_waker(cx.waker());
                if let Some(batch) = batch {
                    if matches!(next, Next::Message(_))
                        && state.mark == Mark::None
                        && !state.entries.is_empty()
                    {
                        state.take_batch(batch.get_or_insert_with(Box::default));
                    }
                }
                Poll::Ready(next)
            }
            None => {
                let registered_anew = state.register(cx.waker());
                if self.wait_for_tail(&mut state, Some((cx.waker(), registered_anew))) {
                    drop(state);
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    /// Puts what a stream took in `batch` and did not yield back at the front of the
    /// queue, for the listener's next stream, and stops counting what it yielded. When
    /// the queue lost messages since (a marker is due) they join the loss the marker
    /// reports; when the listener was removed they are discarded with its queue. The
    /// queue may hold a batch more than its bound for a while: the next push over the
    /// bound applies the overflow policy.
    pub(crate) fn give_back(&self, batch: &mut Batch) {
        let yielded_sizes = batch.sizes.len().saturating_sub(batch.len());
        batch.sizes.drain(..yielded_sizes);
        let unyielded_bytes: usize = batch.sizes.iter().map(|&size| size as usize).sum();
        let mut state = self.section();
        let yielded = state.batch_bytes.saturating_sub(unyielded_bytes);
        state.finish_batch(yielded);
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        let first = batch.entries.front().map_or(0, |q| q.id);
        state.batch_bytes = 0;
        if state.removed || state.mark != Mark::None {
            state.unreleased += unyielded_bytes;
            state.release_all();
            if !state.removed {
                state.dropped += count;
            }
            // What the batch held is older than what the queue lost since.
            match &mut state.mark {
                Mark::Dropped {
                    first: from,
                    count: lost,
                } => {
                    *from = first.min(*from);
                    *lost += count;
                }
                Mark::Cut { first: from } => *from = first.min(*from),
                Mark::None => {}
            }
            drop(state);
            batch.entries.clear();
            batch.sizes.clear();
            return;
        }
        batch.entries.append(&mut state.entries);
        batch.sizes.append(&mut state.sizes);
        std::mem::swap(&mut state.entries, &mut batch.entries);
        std::mem::swap(&mut state.sizes, &mut batch.sizes);
        state.bytes += unyielded_bytes;
        state.delivered -= count;
        if state.has_waiters() {
            let wakeup = state.take_wakeup();
            drop(state);
            wakeup.run(&self.ready);
        }
    }

    /// The next message, blocking the thread until one comes or `deadline` passes
    /// (`None` on timeout).
    pub(crate) fn wait_next(self: &Arc<Self>, deadline: Option<Instant>) -> Option<Next> {
        let mut state = self.section();
        loop {
            if let Some(next) = self.next_locked(&mut state, true) {
                return Some(next);
            }
            if self.wait_for_tail(&mut state, None) {
                state.settle();
                state.resume();
                continue;
            }
            state.blocked_threads += 1;
            state.refresh_gate();
            state.settle();
            let timed_out = match deadline {
                Some(deadline) => self
                    .ready
                    .wait_until(&mut state.state, deadline)
                    .timed_out(),
                None => {
                    self.ready.wait(&mut state.state);
                    false
                }
            };
            state.resume();
            state.blocked_threads -= 1;
            state.refresh_gate();
            if timed_out {
                return self.next_locked(&mut state, true);
            }
        }
    }
}

/// Asks the CPU to bring the cache lines of `value` into the cache, without waiting for
/// them: a hint, which changes nothing the program can observe.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64;
        let start = std::ptr::from_ref(value).cast::<i8>();
        for offset in (0..std::mem::size_of::<T>()).step_by(LINE) {
            // SAFETY: a prefetch reads no memory the program sees and never faults,
            // whatever the address; this one is inside `value`.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

impl Drop for Listener {
    fn drop(&mut self) {
        // What was deferred to the queue and never applied counts against the ledger as
        // what is queued does: applied now, it goes with the queue.
        let mut state = self.queue.lock();
        if state.ledger.is_some() {
            self.apply_deferred(&mut state);
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

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// Every subscriber has a listener: its size is part of the memory an idle
    /// subscriber costs, which the fan-out benchmark holds to account. What counts is
    /// the allocation of its `Arc` (two counts, then the listener): glibc's malloc
    /// rounds a request plus its 8-byte header up to 16, so a listener of 393 to 408
    /// bytes takes the same 432-byte chunk. It was 400 bytes before its room word moved
    /// to a line of its own, which took 8.
    #[test]
    fn a_listener_takes_a_432_byte_chunk_of_glibc() {
        let arc_inner = 16 + std::mem::size_of::<super::Listener>();
        assert!((arc_inner + 8).next_multiple_of(16) <= 432);
    }
}
