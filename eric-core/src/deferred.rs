//! Broadcasts deferred to the consumers.
//!
//! A broadcast to N listeners used to push into N queues, one lock and a few cache
//! lines each, on the publisher's core, while each consumer's core had last written
//! those lines. A channel that defers ([`ChannelBuilder::defer_broadcasts`], the
//! default) does less on the publisher's side:
//!
//! * each listener has a [`Room`] word: how many more messages and bytes its queue takes
//!   before anything but a plain push could happen (an overflow policy acting, the byte
//!   bound cutting the queue), less what was deferred to it and not applied yet;
//! * a broadcast walks the words in turn. Where there is room it takes it and counts the
//!   listener as delivered, which is what the push would have done; elsewhere it pushes
//!   as before, policies and all;
//! * the message goes once onto the channel's [`Tail`], and the tail's watermark rises
//!   to its offset;
//! * whoever next locks a queue (its consumer, mostly, with the queue's lines already in
//!   its cache) first applies what the tail holds for it, with the same steps as a push.
//!   When it unlocks, it gives back to the room word what the locked section freed.
//!
//! The queue goes through the same operations in the same order as with eager pushes,
//! so everything anyone can observe (reports, stats, deliveries, markers, the ledger's
//! bytes) is the same: `tests/deferred_vs_eager.rs` holds the two to each other. Only
//! the timing changes, and which core does the work.
//!
//! Why the room word stays exact: a queue's locked section applies the deferred pushes
//! first, then notes what the queue uses; at the unlock it adds the difference to the
//! word. Pushes deferred while the section runs were taken from the word by their
//! broadcast, and are not in what the section noted. So the word is always the room the
//! queue had at its last unlock, less every push deferred to it since, and a deferral
//! that takes it never takes more than the queue has.
//!
//! [`ChannelBuilder::defer_broadcasts`]: crate::ChannelBuilder::defer_broadcasts

use crate::listener::Listener;
use crate::message::Message;
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Waker;

/// How many broadcasts apart a channel trims its tail.
const TRIM_EVERY: u64 = 64;

/// The most room either half of a [`Room`] starts with; what a queue uses is counted up
/// to it. A queue with a larger byte bound is never deferred to.
pub(crate) const MAX_ROOM: i64 = 1 << 28;

/// What a removed or cut queue counts as using on top of its messages: no deferral can
/// find room while it lasts.
pub(crate) const NO_ROOM: i64 = 1 << 29;

/// A broadcast deferred to the listeners that had room for it.
pub(crate) struct DeferredPush {
    /// The offset the message took in the channel's log.
    pub(crate) offset: u64,
    pub(crate) message: Arc<Message>,
    /// Its size as the channel counts it (0 if it does not).
    pub(crate) size: usize,
}

/// A channel's deferred broadcasts, and who waits for them.
pub(crate) struct Tail {
    /// The offset of the latest broadcast: a queue holds everything deferred to it up
    /// to here once it applied the tail. Every consumer reads it each time it locks its
    /// queue, and only broadcasts write it: it has a cache line of its own.
    watermark: Watermark,
    /// What was deferred, in offset order, from the oldest a listener still needs.
    /// Consumers read it together; only broadcasts write it.
    entries: RwLock<VecDeque<DeferredPush>>,
    /// Who waits for a listener's next message, woken after each broadcast.
    waiters: Mutex<Vec<Waiter>>,
    /// How many times a broadcast took the list of waiters (wrapping): a stream whose
    /// waker went on the list in the current round is on it still.
    round: AtomicU32,
    broadcasts: AtomicU64,
    defers: bool,
}

#[repr(align(64))]
struct Watermark(AtomicU64);

/// Somebody on a [`Tail`]'s list of waiters.
pub(crate) enum Waiter {
    /// A stream's task. The broadcast wakes it without locking the listener's queue,
    /// whose lines stay in the consumer's cache.
    Task(Waker),
    /// Threads blocked on the listener's condition variable, which are told under the
    /// queue's lock (see [`Listener::notify_threads`]).
    Threads(Arc<Listener>),
}

impl Waiter {
    /// Wakes it, for a broadcast that may have deferred its next message.
    pub(crate) fn wake(self) {
        match self {
            Waiter::Task(waker) => waker.wake(),
            Waiter::Threads(listener) => listener.notify_threads(),
        }
    }
}

impl Tail {
    /// The tail of a channel that defers its broadcasts, or (`defers` false) pushes
    /// every broadcast at once.
    pub(crate) fn new(defers: bool) -> Self {
        Tail {
            watermark: Watermark(AtomicU64::new(0)),
            entries: RwLock::new(VecDeque::new()),
            waiters: Mutex::new(Vec::new()),
            round: AtomicU32::new(0),
            broadcasts: AtomicU64::new(0),
            defers,
        }
    }

    /// Whether the channel defers its broadcasts.
    pub(crate) fn defers(&self) -> bool {
        self.defers
    }

    /// The offset of the latest broadcast (see the field).
    #[inline]
    pub(crate) fn watermark(&self) -> u64 {
        self.watermark.0.load(Ordering::SeqCst)
    }

    /// Ends the broadcast of `push`, whose walk deferred it to some listeners
    /// (`deferred`) or none, and raises the watermark to its offset. The caller holds
    /// the channel's log, so broadcasts come here in offset order, and its listener
    /// set, so that a listener removed after this has everything deferred to it in view
    /// when it discards its queue. Returns whether the tail is due for a
    /// [`trim`](Self::trim), every so many broadcasts.
    pub(crate) fn end_broadcast(&self, push: DeferredPush, deferred: bool) -> bool {
        let offset = push.offset;
        if deferred {
            self.entries.write().push_back(push);
        }
        // SeqCst, with the load in `Listener::wait_for_tail`: a consumer that goes on the
        // waiter list after the broadcast took it sees the new watermark.
        self.watermark.0.store(offset, Ordering::SeqCst);
        self.broadcasts.fetch_add(1, Ordering::Relaxed) % TRIM_EVERY == TRIM_EVERY - 1
    }

    /// Drops what every listener applied: the pushes up to `oldest_needed`, the
    /// smallest [`Listener::applied`] of the channel's listeners.
    pub(crate) fn trim(&self, oldest_needed: u64) {
        let mut entries = self.entries.write();
        while entries.front().is_some_and(|p| p.offset <= oldest_needed) {
            entries.pop_front();
        }
    }

    /// Calls `apply` on each deferred push after offset `after`, up to `through`.
    pub(crate) fn for_each_between(
        &self,
        after: u64,
        through: u64,
        mut apply: impl FnMut(&DeferredPush),
    ) {
        let entries = self.entries.read();
        let start = entries.partition_point(|p| p.offset <= after);
        for push in entries.range(start..) {
            if push.offset > through {
                break;
            }
            apply(push);
        }
    }

    /// Puts `waiter` on the list woken after the next broadcast; returns the round it
    /// went on in.
    pub(crate) fn add_waiter(&self, waiter: Waiter) -> u32 {
        let mut waiters = self.waiters.lock();
        waiters.push(waiter);
        self.round.load(Ordering::Relaxed)
    }

    /// The current round of the list of waiters (see the field).
    pub(crate) fn round(&self) -> u32 {
        self.round.load(Ordering::Acquire)
    }

    /// Takes the list of waiters, for the caller to wake each one, and starts the next
    /// round.
    pub(crate) fn take_waiters(&self) -> Vec<Waiter> {
        let mut waiters = self.waiters.lock();
        if waiters.is_empty() {
            Vec::new()
        } else {
            // Under the list's lock, so a waiter's round always names the list it is on.
            self.round.fetch_add(1, Ordering::Release);
            std::mem::take(&mut *waiters)
        }
    }
}

/// How many more messages and bytes a listener's queue takes plainly, less what was
/// deferred to it and not applied yet (see the [module documentation](self)). Two
/// signed 32-bit halves in one atomic word, messages high and bytes low, so that one
/// compare-and-swap takes both.
pub(crate) struct Room(AtomicU64);

impl Room {
    /// Room for `messages` and `bytes`.
    pub(crate) fn new(messages: i64, bytes: i64) -> Self {
        Room(AtomicU64::new(pack(messages, bytes)))
    }

    /// A room that no deferral ever finds: the listener of a channel that does not
    /// defer, or of none yet.
    pub(crate) fn none() -> Self {
        Room::new(-NO_ROOM, 0)
    }

    /// Takes room for one message of `bytes`, if there is.
    #[inline]
    pub(crate) fn try_take(&self, bytes: i64) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (messages, room_bytes) = unpack(word);
                (messages >= 1 && room_bytes >= bytes)
                    .then(|| pack(messages - 1, room_bytes - bytes))
            })
            .is_ok()
    }

    /// Adds `messages` and `bytes` (either may be negative).
    #[inline]
    pub(crate) fn add(&self, messages: i64, bytes: i64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (room_messages, room_bytes) = unpack(word);
                Some(pack(room_messages + messages, room_bytes + bytes))
            });
    }

    #[cfg(test)]
    fn get(&self) -> (i64, i64) {
        unpack(self.0.load(Ordering::Acquire))
    }
}

fn pack(messages: i64, bytes: i64) -> u64 {
    (u64::from(messages as i32 as u32) << 32) | u64::from(bytes as i32 as u32)
}

fn unpack(word: u64) -> (i64, i64) {
    (
        i64::from((word >> 32) as u32 as i32),
        i64::from(word as u32 as i32),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_keeps_both_halves_apart_through_negatives() {
        let room = Room::new(2, 10);
        assert!(room.try_take(4));
        assert!(room.try_take(6));
        assert_eq!(room.get(), (0, 0));
        assert!(!room.try_take(0), "no message fits");
        room.add(-NO_ROOM, -5);
        assert_eq!(room.get(), (-NO_ROOM, -5));
        room.add(NO_ROOM + 1, 5);
        assert!(!room.try_take(1), "a message fits, its byte does not");
        assert!(room.try_take(0));
        assert_eq!(room.get(), (0, 0));
    }

    #[test]
    fn a_room_of_none_never_fits_whatever_is_added_back() {
        let room = Room::none();
        room.add(MAX_ROOM, MAX_ROOM);
        assert!(!room.try_take(0));
    }

    #[test]
    fn the_tail_applies_what_lies_between_and_trims_what_all_applied() {
        let tail = Tail::new(true);
        let message = Arc::new(Message::new("m", serde_json::json!(1)));
        for offset in 1..=TRIM_EVERY {
            let push = DeferredPush {
                offset,
                message: Arc::clone(&message),
                size: 0,
            };
            let trim_due = tail.end_broadcast(push, offset != 5);
            assert_eq!(trim_due, offset == TRIM_EVERY);
        }
        tail.trim(10);
        assert_eq!(tail.watermark(), TRIM_EVERY);
        let mut seen = Vec::new();
        tail.for_each_between(2, 12, |push| seen.push(push.offset));
        assert_eq!(seen, [11, 12], "offsets up to 10 were trimmed");
        seen.clear();
        tail.for_each_between(0, 3, |push| seen.push(push.offset));
        assert!(seen.is_empty());
        let entries = tail.entries.read();
        assert_eq!(entries.len() as u64, TRIM_EVERY - 10);
    }
}
