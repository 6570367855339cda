//! Channels: a set of listeners, each with its queue, and an adapter for what consumers see.

use crate::deferred::{DeferredPush, Tail};
use crate::error::{Error, Result};
use crate::listener::{message_size, Listener, Losses, QueueConfig, QueueLedger, Refused};
use crate::log::{Addressee, ChannelLog, Epoch, Position, Retention};
use crate::message::{Delivery, Message};
use crate::registry::ListenerSet;
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Turns a delivered message into what a channel's consumers receive: the reference's
/// abstract `adapt`.
///
/// eric-sse's adapter makes SSE events, eric-processing's makes `{event, data}` results;
/// any `Fn(&Delivery) -> T` is an adapter too.
///
/// ```
/// use eric_core::{Channel, Delivery, Message};
///
/// let channel = Channel::new(|d: &Delivery| format!("{}#{}", d.msg_type, d.id));
/// let listener = channel.add_listener();
/// listener.start();
/// channel.dispatch(listener.id(), Message::empty("ping")).unwrap();
/// let mut stream = channel.message_stream(&listener);
/// assert_eq!(stream.try_recv().as_deref(), Some("ping#1"));
/// ```
pub trait Adapter: Send + Sync + 'static {
    /// What a stream of the channel yields.
    type Output;

    /// Adapts one delivered message. A `Delivery` with id 0 is synthetic: the
    /// `_eric_channel_closed` message of a removed listener, or a resume marker.
    fn adapt(&self, delivery: &Delivery) -> Self::Output;

    /// Adapts a delivery the stream no longer needs: what streams call. The default
    /// lends it to [`adapt`](Self::adapt); an adapter whose output keeps the shared
    /// message implements it to move the message instead of cloning it, which saves two
    /// atomic operations per delivery on a count every listener of a broadcast shares.
    fn adapt_owned(&self, delivery: Delivery) -> Self::Output {
        self.adapt(&delivery)
    }
}

impl<F, T> Adapter for F
where
    F: Fn(&Delivery) -> T + Send + Sync + 'static,
{
    type Output = T;

    fn adapt(&self, delivery: &Delivery) -> T {
        self(delivery)
    }
}

/// An adapter that hands out the delivery itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl Adapter for Identity {
    type Output = Delivery;

    fn adapt(&self, delivery: &Delivery) -> Delivery {
        delivery.clone()
    }

    fn adapt_owned(&self, delivery: Delivery) -> Delivery {
        delivery
    }
}

/// A sleep provided by the caller's runtime, used for the stream delay.
///
/// eric-core never spawns threads nor touches a runtime, so an async stream that must
/// pause between messages asks this trait for a future that completes after a duration
/// (eric-socket implements it with `tokio::time::sleep`). Blocking consumers sleep the
/// thread instead and do not need it.
pub trait Timer: Send + Sync + 'static {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The reference's `stream_delay_seconds`: a pause after every message a stream yields.
#[derive(Clone)]
pub struct StreamDelay {
    pub(crate) delay: Duration,
    pub(crate) timer: Arc<dyn Timer>,
}

impl StreamDelay {
    /// A pause of `delay` after each streamed message, slept with `timer` in async streams.
    pub fn new(delay: Duration, timer: Arc<dyn Timer>) -> Self {
        StreamDelay { delay, timer }
    }

    /// The pause.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

impl fmt::Debug for StreamDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamDelay")
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

// The rare paths of `deliver_next`, kept out of line so that the common one (a
// message, no handler) has a small frame: an inlined error would copy the id with its
// own allocation call, and the handler call needs the listener kept alive across it.

#[cold]
#[inline(never)]
fn invalid_listener(listener_id: &str) -> Error {
    Error::InvalidListener(listener_id.to_owned())
}

#[cold]
#[inline(never)]
fn no_messages(listener_id: &str) -> Error {
    Error::NoMessages(listener_id.to_owned())
}

#[cold]
#[inline(never)]
fn foreign_listener(listener: &Listener, channel: &str) -> Error {
    Error::ForeignListener {
        listener: listener.id().to_owned(),
        channel: channel.to_owned(),
    }
}

#[inline(never)]
fn handle_out_of_line(listener: &Listener, delivery: &Delivery) {
    listener.handle(&delivery.message);
}

/// The items a resumed stream yields before its queue: the gap marker, if any, then
/// the replay. The marker's id is the offset right before what follows it.
fn replay_items(
    resume: crate::log::Resume,
    epoch: Epoch,
    live_from: u64,
    last_event_id: &str,
) -> VecDeque<Delivery> {
    let mut items = VecDeque::with_capacity(resume.replay.len() + 1);
    if let Some(gap) = &resume.gap {
        let next = resume
            .replay
            .first()
            .map_or(live_from, |(offset, _)| *offset);
        items.push_back(Delivery {
            id: next - 1,
            epoch,
            message: Arc::new(Message::new(
                crate::MESSAGE_TYPE_ERROR,
                gap.payload(last_event_id),
            )),
        });
    }
    items.extend(
        resume
            .replay
            .into_iter()
            .map(|(id, message)| Delivery { id, epoch, message }),
    );
    items
}

/// What [`Channel::apply`] did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The entry took its offset and reached its listeners.
    Done,
    /// The offset was taken already: nothing changed.
    Duplicate,
    /// The offset is past the next one: the entries from `next` on are missing.
    Gap {
        /// The next offset the channel expects.
        next: u64,
    },
}

/// What a broadcast did: how many listeners got the message and how many did not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Listeners whose queue took the message.
    pub delivered: usize,
    /// Listeners whose full queue refused it ([`OverflowPolicy::Reject`](crate::OverflowPolicy::Reject)).
    pub rejected: usize,
    /// Listeners removed because their queue overflowed
    /// ([`OverflowPolicy::Disconnect`](crate::OverflowPolicy::Disconnect)).
    pub disconnected: usize,
    /// Listeners whose full queue took it by discarding its oldest message
    /// ([`OverflowPolicy::DropOldest`](crate::OverflowPolicy::DropOldest)); counted in
    /// `delivered` too.
    pub discarded: usize,
    /// Listeners whose queue it did not reach because the queue is over its byte bound
    /// (their stream ends as too slow; see [`QueueConfig::max_bytes`]).
    pub too_slow: usize,
}

/// What a broadcast's pushes did, gathered for its report.
#[derive(Default)]
struct Pushes {
    report: BroadcastReport,
    losses: Losses,
    /// Listeners whose `Disconnect` policy acted, removed once the publish is done.
    to_disconnect: Vec<Arc<Listener>>,
}

impl Pushes {
    fn note(&mut self, listener: &Arc<Listener>, pushed: std::result::Result<(), Refused>) {
        let report = &mut self.report;
        match pushed {
            Ok(()) => report.delivered += 1,
            Err(Refused::Full) => report.rejected += 1,
            Err(Refused::MustDisconnect) => self.to_disconnect.push(Arc::clone(listener)),
            Err(Refused::Removed) => {}
            Err(Refused::Discarded) => {
                report.delivered += 1;
                report.discarded += 1;
            }
            Err(Refused::Cut) => {
                report.too_slow += 1;
                self.losses.too_slow += 1;
                self.losses.too_slow_discarded += listener.cut_discarded();
            }
            Err(Refused::WhileCut) => self.losses.too_slow_discarded += 1,
        }
    }
}

struct Inner<A> {
    id: String,
    /// The log's epoch, which never changes: readable without the log's lock.
    epoch: Epoch,
    adapter: A,
    /// Taken by every publish for the whole of it, and by every resume and every new
    /// listener before `listeners`: offsets reach each queue in order, and a resume
    /// reads the log and joins the live messages with none published in between.
    log: Mutex<ChannelLog>,
    listeners: RwLock<ListenerSet>,
    queue_config: QueueConfig,
    stream_delay: Option<StreamDelay>,
    /// Shared with other channels: the bytes queued against a budget, and the observer
    /// of losses.
    ledger: Option<Arc<QueueLedger>>,
    /// Whether publishes measure their message for byte bounds and the budget;
    /// otherwise every message counts 0 bytes.
    counts_bytes: bool,
    /// The broadcasts deferred to listeners, and the listeners waiting for them (see
    /// [`crate::deferred`]). Each channel has its own, and its listeners hold it: it
    /// also tells them from those of any other channel.
    tail: Arc<Tail>,
}

impl<A> Drop for Inner<A> {
    fn drop(&mut self) {
        // The waiters hold their listeners, which hold the tail.
        drop(self.tail.take_waiters());
    }
}

/// A set of listeners, one queue each, and the adapter that shapes what they receive:
/// the reference's `AbstractChannel`.
///
/// `Channel` is a cheap handle: clones share the same channel. Every method takes
/// `&self` and may be called from many threads at once. Consumers of different
/// listeners never contend with each other; a broadcast holds the listener set for
/// reading while it queues, which only delays adding and removing listeners.
/// Publishes on one channel are ordered: each takes the channel's log (see
/// [`crate::log`]) for its whole fan-out, so every queue receives offsets in order.
///
/// ```
/// use eric_core::{Channel, Identity, Message};
/// use serde_json::json;
///
/// let channel = Channel::new(Identity);
/// let a = channel.add_listener();
/// let b = channel.add_listener();
/// a.start();
/// channel.broadcast(Message::new("greeting", json!({"text": "hi"})));
/// assert_eq!(channel.deliver_next(a.id()).unwrap().payload["text"], "hi");
/// assert_eq!(b.queue_len(), 1);
/// ```
pub struct Channel<A> {
    inner: Arc<Inner<A>>,
}

impl<A> Clone for Channel<A> {
    fn clone(&self) -> Self {
        Channel {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A> fmt::Debug for Channel<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.inner.id)
            .field("listeners", &self.inner.listeners.read().len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Channel`] with a chosen id, queue configuration or stream delay.
#[derive(Debug)]
pub struct ChannelBuilder<A> {
    adapter: A,
    id: Option<String>,
    queue_config: QueueConfig,
    stream_delay: Option<StreamDelay>,
    retention: Retention,
    epoch: Option<Epoch>,
    ledger: Option<Arc<QueueLedger>>,
    last: u64,
    defer: bool,
}

impl<A: Adapter> ChannelBuilder<A> {
    /// Uses `id` instead of the next generated channel id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The queue configuration of listeners made by [`Channel::add_listener`].
    pub fn queue_config(mut self, config: QueueConfig) -> Self {
        self.queue_config = config;
        self
    }

    /// Pauses every stream of the channel after each message it yields.
    pub fn stream_delay(mut self, delay: StreamDelay) -> Self {
        self.stream_delay = Some(delay);
        self
    }

    /// How much of its log the channel retains for resume (none by default, as the
    /// reference keeps nothing).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Counts the bytes queued for the channel's listeners in `ledger` (which other
    /// channels may share), against its budget, and tells its observer what publishes
    /// lose to full or too slow queues.
    pub fn ledger(mut self, ledger: Arc<QueueLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Starts the log in `epoch` instead of a new one: for an engine that keeps the
    /// log's epoch elsewhere and makes the channel again.
    pub fn epoch(mut self, epoch: Epoch) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// Starts the log after offset `last` (0 by default): for an engine that keeps the
    /// log elsewhere and makes the channel again, then [`applies`](Channel::apply) what
    /// follows.
    pub fn starting_after(mut self, last: u64) -> Self {
        self.last = last;
        self
    }

    /// Whether broadcasts defer their pushes to the consumers (the default) or push
    /// into every queue at once.
    ///
    /// Deferring, a broadcast only takes room in each listener's queue and puts the
    /// message once on a channel-wide list; each queue takes it when its consumer next
    /// looks, on the consumer's core. What anyone sees is the same either way (reports,
    /// deliveries, stats, markers); the publisher's share of the work is smaller, which
    /// matters with thousands of listeners. See `docs/benchmarks.md`.
    pub fn defer_broadcasts(mut self, on: bool) -> Self {
        self.defer = on;
        self
    }

    /// The channel.
    pub fn build(self) -> Channel<A> {
        let epoch = self.epoch.unwrap_or_default();
        Channel {
            inner: Arc::new(Inner {
                id: self.id.unwrap_or_else(crate::id::next_channel_id),
                epoch,
                adapter: self.adapter,
                log: Mutex::new(ChannelLog::starting_after(epoch, self.retention, self.last)),
                listeners: RwLock::new(ListenerSet::default()),
                counts_bytes: self.queue_config.max_bytes.is_some()
                    || self.ledger.as_ref().is_some_and(|l| l.counts_bytes()),
                ledger: self.ledger,
                tail: Arc::new(Tail::new(self.defer)),
                queue_config: self.queue_config,
                stream_delay: self.stream_delay,
            }),
        }
    }
}

impl<A: Adapter> Channel<A> {
    /// A channel with the next generated id, unbounded queues and no stream delay.
    pub fn new(adapter: A) -> Self {
        Channel::builder(adapter).build()
    }

    /// A builder for a channel with other settings.
    pub fn builder(adapter: A) -> ChannelBuilder<A> {
        ChannelBuilder {
            adapter,
            id: None,
            queue_config: QueueConfig::default(),
            stream_delay: None,
            retention: Retention::none(),
            epoch: None,
            ledger: None,
            last: 0,
            defer: true,
        }
    }

    /// `listener` as one of the channel's, whose stream starts after `joined_at` and
    /// whose log is at `offset` (the caller holds it and the listener set).
    fn admit(&self, listener: Listener, joined_at: u64, offset: u64) -> Arc<Listener> {
        Arc::new(listener.joining(
            &self.inner.tail,
            joined_at,
            offset,
            self.inner.epoch,
            self.inner.ledger.as_ref(),
        ))
    }

    /// The channel's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The channel's adapter.
    pub fn adapter(&self) -> &A {
        &self.inner.adapter
    }

    /// The queue configuration given to listeners made by [`add_listener`](Self::add_listener).
    pub fn queue_config(&self) -> QueueConfig {
        self.inner.queue_config
    }

    /// The stream delay, if the channel has one.
    pub fn stream_delay(&self) -> Option<&StreamDelay> {
        self.inner.stream_delay.as_ref()
    }

    /// The epoch of the channel's log.
    pub fn epoch(&self) -> Epoch {
        self.inner.epoch
    }

    /// The position of the last message published on the channel (offset 0 before
    /// the first).
    pub fn position(&self) -> Position {
        self.inner.log.lock().position()
    }

    /// How much of its log the channel retains.
    pub fn retention(&self) -> Retention {
        self.inner.log.lock().retention()
    }

    /// Adds a new listener with a generated id and the channel's queue configuration.
    /// Like every new listener it is stopped. An id that a listener registered with
    /// [`register_listener`](Self::register_listener) already holds is skipped.
    pub fn add_listener(&self) -> Arc<Listener> {
        self.add_listener_with(self.inner.queue_config)
    }

    /// Adds a new listener with a generated id and the queue `config`.
    pub(crate) fn add_listener_with(&self, config: QueueConfig) -> Arc<Listener> {
        let log = self.inner.log.lock();
        self.insert_new_listener(&log, config)
    }

    /// Adds a new listener with a generated id; the caller holds the log.
    fn insert_new_listener(&self, log: &ChannelLog, config: QueueConfig) -> Arc<Listener> {
        let mut listeners = self.inner.listeners.write();
        // A caller may have registered a listener under an id the counter has not
        // reached yet: that id is skipped, never taken over (which would orphan the
        // caller's listener and its streams).
        let id = std::iter::repeat_with(crate::id::next_listener_id)
            .find(|id| !listeners.contains(id))
            .expect("the id counter goes on");
        let listener = self.admit(
            Listener::with_id(id).queue_config(config),
            log.position().offset,
            log.position().offset,
        );
        listeners.insert(Arc::clone(&listener));
        listener
    }

    /// Adds a listener built by the caller. Fails if its id is taken on this channel.
    pub fn register_listener(&self, listener: Listener) -> Result<Arc<Listener>> {
        let log = self.inner.log.lock();
        let mut listeners = self.inner.listeners.write();
        if listeners.contains(listener.id()) {
            return Err(Error::DuplicateId(listener.id().to_owned()));
        }
        let listener = self.admit(listener, log.position().offset, log.position().offset);
        listeners.insert(Arc::clone(&listener));
        Ok(listener)
    }

    /// Removes a listener. Its queue is discarded; its open streams yield one
    /// `_eric_channel_closed` item and end.
    pub fn remove_listener(&self, listener_id: &str) -> Result<Arc<Listener>> {
        self.take_out(listener_id, false)
    }

    fn take_out(&self, listener_id: &str, by_overflow: bool) -> Result<Arc<Listener>> {
        let mut listeners = self.inner.listeners.write();
        let listener = listeners
            .remove(listener_id)
            .ok_or_else(|| Error::InvalidListener(listener_id.to_owned()))?;
        // Before the set is let go: a broadcast that no longer finds the listener must
        // neither have a deferred push of its own applied to it nor trim the tail below
        // what it has yet to apply.
        let wakeup = listener.mark_removed(by_overflow);
        drop(listeners);
        listener.wake(wakeup);
        Ok(listener)
    }

    /// The listener with this id.
    pub fn get_listener(&self, listener_id: &str) -> Result<Arc<Listener>> {
        self.inner
            .listeners
            .read()
            .get(listener_id)
            .cloned()
            .ok_or_else(|| Error::InvalidListener(listener_id.to_owned()))
    }

    /// The ids of the channel's listeners, in no particular order.
    pub fn listener_ids(&self) -> Vec<String> {
        self.inner
            .listeners
            .read()
            .iter()
            .map(|l| l.id().to_owned())
            .collect()
    }

    /// How many listeners the channel has.
    pub fn listener_count(&self) -> usize {
        self.inner.listeners.read().len()
    }

    /// Queues `message` for one listener.
    ///
    /// Fails with `InvalidListener` if no listener has this id, and with `QueueFull` or
    /// `Disconnected` when a bounded queue overflows (see
    /// [`OverflowPolicy`](crate::OverflowPolicy)).
    pub fn dispatch(&self, listener_id: &str, message: impl Into<Arc<Message>>) -> Result<()> {
        let message = message.into();
        let mut log = self.inner.log.lock();
        // Push under the map's read lock: no reference count to take on the listener.
        let listeners = self.inner.listeners.read();
        let listener = listeners
            .get(listener_id)
            .ok_or_else(|| Error::InvalidListener(listener_id.to_owned()))?;
        let size = self.size_of(&message);
        match listener.push(log.next_offset(), &message, size) {
            Ok(()) => {
                log.append(&message, Addressee::One(listener.address()));
                self.take_bytes(size);
                Ok(())
            }
            Err(refused) => {
                let listener = Arc::clone(listener);
                // Overflow handling may remove the listener: release the map first.
                drop(listeners);
                self.dispatch_refused(log, &listener, &message, size, refused)
            }
        }
    }

    /// The rest of a dispatch whose push did more than queue (`log` still held): a
    /// message the consumer will find in the log is the channel's all the same.
    #[cold]
    fn dispatch_refused(
        &self,
        mut log: parking_lot::MutexGuard<'_, ChannelLog>,
        listener: &Arc<Listener>,
        message: &Arc<Message>,
        size: usize,
        refused: Refused,
    ) -> Result<()> {
        let mut losses = Losses::default();
        match refused {
            Refused::Discarded => {
                self.take_bytes(size);
                losses.discarded = 1;
            }
            Refused::Cut => {
                losses.too_slow = 1;
                losses.too_slow_discarded = listener.cut_discarded();
            }
            Refused::WhileCut => losses.too_slow_discarded = 1,
            refused => {
                drop(log);
                return Err(self.overflowed(listener, refused));
            }
        }
        log.append(message, Addressee::One(listener.address()));
        drop(log);
        self.report_losses(losses);
        Ok(())
    }

    /// The size a publish counts its message at: 0 unless the channel counts bytes.
    fn size_of(&self, message: &Message) -> usize {
        if self.inner.counts_bytes {
            message_size(message)
        } else {
            0
        }
    }

    /// Counts `bytes` newly queued against the ledger's budget.
    fn take_bytes(&self, bytes: usize) {
        if bytes > 0 {
            if let Some(ledger) = &self.inner.ledger {
                ledger.take(bytes);
            }
        }
    }

    fn report_losses(&self, losses: Losses) {
        if let Some(ledger) = &self.inner.ledger {
            ledger.report(self.id(), losses);
        }
    }

    /// Queues `message` for a listener the caller already holds, skipping the id lookup.
    ///
    /// Fails with `ForeignListener` if the listener is not one of this channel's (it
    /// belongs to another channel, or to none), and otherwise as
    /// [`dispatch`](Self::dispatch) does.
    pub fn dispatch_to(&self, listener: &Arc<Listener>, message: &Arc<Message>) -> Result<()> {
        if !listener.joined(&self.inner.tail) {
            return Err(foreign_listener(listener, self.id()));
        }
        let mut log = self.inner.log.lock();
        let size = self.size_of(message);
        match listener.push(log.next_offset(), message, size) {
            Ok(()) => {
                log.append(message, Addressee::One(listener.address()));
                self.take_bytes(size);
                Ok(())
            }
            Err(refused) => self.dispatch_refused(log, listener, message, size, refused),
        }
    }

    fn overflowed(&self, listener: &Listener, refused: Refused) -> Error {
        let capacity = listener.config().limit();
        let id = listener.id().to_owned();
        match refused {
            Refused::Full => {
                tracing::debug!(listener = ?id, capacity, "queue full: message rejected");
                Error::QueueFull {
                    listener: id,
                    capacity,
                }
            }
            Refused::MustDisconnect => {
                tracing::info!(listener = ?id, capacity, "queue overflowed: listener disconnected");
                // It may already be gone if a concurrent overflow disconnected it.
                let _ = self.take_out(&id, true);
                Error::Disconnected {
                    listener: id,
                    capacity,
                }
            }
            Refused::Removed => Error::InvalidListener(id),
            Refused::Discarded | Refused::Cut | Refused::WhileCut => {
                unreachable!("a publish keeps what a discarding or cut queue did not take")
            }
        }
    }

    /// Queues `message` for every listener of the channel.
    ///
    /// The message is shared, not copied: each queue holds a pointer to it. Listeners
    /// whose bounded queue overflows are handled by their policy and counted in the report.
    pub fn broadcast(&self, message: impl Into<Arc<Message>>) -> BroadcastReport {
        let message = message.into();
        let mut pushes = Pushes::default();
        let tail = &self.inner.tail;
        {
            let mut log = self.inner.log.lock();
            let offset = log.next_offset();
            let size = self.size_of(&message);
            let listeners = self.inner.listeners.read();
            if tail.defers() {
                let mut deferred = 0;
                for listener in listeners.iter_prefetching(Listener::prefetch_room) {
                    if listener.try_defer(size) {
                        deferred += 1;
                    } else {
                        pushes.note(listener, listener.push_broadcast(offset, &message, size));
                    }
                }
                pushes.report.delivered += deferred;
                let push = DeferredPush {
                    offset,
                    message: Arc::clone(&message),
                    size,
                };
                if tail.end_broadcast(push, deferred > 0) {
                    tail.trim(
                        listeners
                            .iter()
                            .map(|l| l.applied())
                            .min()
                            .unwrap_or(u64::MAX),
                    );
                }
            } else {
                for listener in listeners.iter_prefetching(Listener::prefetch_queue) {
                    pushes.note(listener, listener.push(offset, &message, size));
                }
            }
            drop(listeners);
            log.append(&message, Addressee::All);
            self.take_bytes(size * pushes.report.delivered);
        }
        for waiter in tail.take_waiters() {
            waiter.wake();
        }
        let Pushes {
            mut report,
            mut losses,
            to_disconnect,
        } = pushes;
        for listener in to_disconnect {
            self.overflowed(&listener, Refused::MustDisconnect);
            report.disconnected += 1;
        }
        losses.discarded = report.discarded as u64;
        self.report_losses(losses);
        report
    }

    /// Takes the next message of a running listener and runs its handler on it.
    ///
    /// Fails with `NoMessages` when the queue is empty or the listener is stopped, and
    /// with `InvalidListener` when no listener has this id.
    pub fn deliver_next(&self, listener_id: &str) -> Result<Delivery> {
        let listeners = self.inner.listeners.read();
        let Some(listener) = listeners.get(listener_id) else {
            return Err(invalid_listener(listener_id));
        };
        let Some(crate::listener::Next::Message(delivery)) = listener.try_next(false) else {
            return Err(no_messages(listener_id));
        };
        if listener.has_handler() {
            // The handler may call back into the channel: run it with no lock held.
            let listener = Arc::clone(listener);
            drop(listeners);
            handle_out_of_line(&listener, &delivery);
        }
        Ok(delivery)
    }

    /// Publishes `message` at the log offset `offset`, assigned by an engine that keeps
    /// the channel's log elsewhere: to the listener `to` (if this channel holds it; the
    /// entry is logged either way, addressed to nobody here otherwise), or to every
    /// listener for `None`. Offsets must come in order: one already taken is a
    /// duplicate and changes nothing, one past the next leaves a gap the caller must
    /// fill first. A full queue applies its overflow policy, as a publish does.
    pub fn apply(&self, offset: u64, to: Option<&str>, message: &Arc<Message>) -> Applied {
        let mut to_disconnect = None;
        let size = self.size_of(message);
        let mut queued = 0;
        {
            let mut log = self.inner.log.lock();
            let next = log.next_offset();
            if offset < next {
                return Applied::Duplicate;
            }
            if offset > next {
                return Applied::Gap { next };
            }
            let listeners = self.inner.listeners.read();
            match to {
                Some(id) => {
                    let listener = listeners.get(id);
                    let address = listener.map_or(0, |l| l.address());
                    if let Some(listener) = listener {
                        match listener.push(offset, message, size) {
                            Ok(()) => queued += 1,
                            Err(Refused::MustDisconnect) => {
                                to_disconnect = Some(vec![Arc::clone(listener)]);
                            }
                            Err(_) => {}
                        }
                    }
                    log.append(message, Addressee::One(address));
                }
                None => {
                    for listener in listeners.iter_prefetching(Listener::prefetch_queue) {
                        match listener.push(offset, message, size) {
                            Ok(()) => queued += 1,
                            Err(Refused::MustDisconnect) => {
                                to_disconnect
                                    .get_or_insert_with(Vec::new)
                                    .push(Arc::clone(listener));
                            }
                            Err(_) => {}
                        }
                    }
                    log.append(message, Addressee::All);
                }
            }
        }
        self.take_bytes(size * queued);
        for listener in to_disconnect.into_iter().flatten() {
            self.overflowed(&listener, Refused::MustDisconnect);
        }
        Applied::Done
    }

    /// Adds a listener built by the caller whose queue an engine keeps elsewhere: it
    /// joined the channel at offset `joined_at`, and `backlog` (offsets increasing, read
    /// from the engine up to offset `read_through`) is what waits for it. The entries
    /// this channel has already applied are queued; the later ones will reach the queue
    /// when applied. Answers `Ok(Err(last))` without adding it when the channel has
    /// applied more (up to `last`) than the backlog covers: read it again.
    pub fn register_listener_at(
        &self,
        listener: Listener,
        joined_at: u64,
        backlog: &[(u64, Arc<Message>)],
        read_through: u64,
    ) -> Result<std::result::Result<Arc<Listener>, u64>> {
        let log = self.inner.log.lock();
        let last = log.position().offset;
        if read_through < last {
            return Ok(Err(last));
        }
        let mut listeners = self.inner.listeners.write();
        if listeners.contains(listener.id()) {
            return Err(Error::DuplicateId(listener.id().to_owned()));
        }
        let listener = self.admit(listener, joined_at, log.position().offset);
        for (offset, message) in backlog.iter().take_while(|(offset, _)| *offset <= last) {
            // A bounded queue keeps what its policy keeps; the engine still holds the rest.
            let size = self.size_of(message);
            if listener.push(*offset, message, size).is_ok() {
                self.take_bytes(size);
            }
        }
        listeners.insert(Arc::clone(&listener));
        Ok(Ok(listener))
    }

    /// Broadcasts the end-of-stream message (`_eric_channel_closed`): every open stream
    /// yields it and ends.
    pub fn notify_end(&self) -> BroadcastReport {
        self.broadcast(Message::closed())
    }

    /// What a stream of `listener` for a consumer that last saw the event with id
    /// `last_event_id` yields before the queue (see
    /// [`Channel::message_stream_after`]): read under the log, so that nothing is
    /// published between the replay and the queue.
    pub(crate) fn replay_for(
        &self,
        listener: &Listener,
        last_event_id: &str,
    ) -> VecDeque<Delivery> {
        let mut log = self.inner.log.lock();
        let first_queued = listener.resume_point();
        let resume = log.resume(
            last_event_id,
            listener.address(),
            listener.joined_at(),
            first_queued,
        );
        let live_from = first_queued.unwrap_or(log.next_offset());
        replay_items(resume, log.epoch(), live_from, last_event_id)
    }

    /// A new listener (`chosen`, or one with a generated id) for a watcher that last
    /// saw the event with id `last_event_id`, and what it yields before its queue (see
    /// [`Channel::watch_after`]): it joins under the log, so every broadcast after the
    /// replay reaches its queue. Fails only if the chosen listener's id is taken.
    pub(crate) fn add_listener_after(
        &self,
        last_event_id: &str,
        chosen: Option<Listener>,
    ) -> Result<(Arc<Listener>, VecDeque<Delivery>)> {
        let mut log = self.inner.log.lock();
        let listener = match chosen {
            None => self.insert_new_listener(&log, self.inner.queue_config),
            Some(listener) => {
                let mut listeners = self.inner.listeners.write();
                if listeners.contains(listener.id()) {
                    return Err(Error::DuplicateId(listener.id().to_owned()));
                }
                let listener = self.admit(listener, log.position().offset, log.position().offset);
                listeners.insert(Arc::clone(&listener));
                listener
            }
        };
        // A watcher resumes a position of an earlier connection: every broadcast
        // after it is its own, whenever its new listener joined.
        let resume = log.resume(last_event_id, listener.address(), 0, None);
        let live_from = log.next_offset();
        let items = replay_items(resume, log.epoch(), live_from, last_event_id);
        Ok((listener, items))
    }

    /// A handle that does not keep the channel alive (for handlers that call back into
    /// their channel without making a reference cycle).
    pub fn downgrade(&self) -> WeakChannel<A> {
        WeakChannel {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

/// A [`Channel`] handle that does not keep the channel alive; see [`Channel::downgrade`].
pub struct WeakChannel<A> {
    inner: Weak<Inner<A>>,
}

impl<A> Clone for WeakChannel<A> {
    fn clone(&self) -> Self {
        WeakChannel {
            inner: Weak::clone(&self.inner),
        }
    }
}

impl<A> WeakChannel<A> {
    /// The channel, if it still exists.
    pub fn upgrade(&self) -> Option<Channel<A>> {
        self.inner.upgrade().map(|inner| Channel { inner })
    }
}
