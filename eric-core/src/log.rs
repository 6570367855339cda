//! The channel log: every message published on a channel, in order, with the part of it
//! a channel retains for resume.
//!
//! Every message published on a channel, broadcast or dispatch, takes the channel's next
//! *offset* (1, 2, 3, ...). A channel also has an *epoch*, chosen when the channel is
//! made, that changes whenever its history is lost: a new channel (even one that reuses
//! an old id) and a restart of the process both start a new epoch. Together they make a
//! [`Position`], written `<epoch>-<offset>` (`"5f0c2a9be1d34c77-42"`): the id of the
//! event on the wire, and what a subscriber gives back (`Last-Event-ID`) to resume.
//! A position of another epoch is never read as a position of this one.
//!
//! The channel retains its last entries, bounded by count and by age ([`Retention`]).
//! The log shares the `Arc<Message>` that listener queues hold: retaining a message
//! costs one pointer, not a copy.
//!
//! # Resume
//! [`Channel::watch_after`](crate::Channel::watch_after) and
//! [`Channel::message_stream_after`](crate::Channel::message_stream_after) give a
//! subscriber the retained entries after its position that were addressed to it
//! (broadcasts, and dispatches to its own listener), then the live ones, with no gap and
//! no duplicate: the replay is read under the same lock that publishes take, so a
//! message is either in the replay or in the queue, never both.
//!
//! When the log cannot prove that nothing is missing, the stream starts with one marker
//! item of type [`MESSAGE_TYPE_ERROR`](crate::MESSAGE_TYPE_ERROR) whose payload reads
//! `{"error": "history_gap", "last_event_id": ..., "first_available": ..., "reason": ...}`:
//!
//! | `reason` | when | then |
//! |---|---|---|
//! | `"trimmed"` | entries after the position were trimmed from the log | the retained entries, then live |
//! | `"epoch"` | the position is of another epoch (a restart, a new channel) | every retained entry, then live |
//! | `"future"` | the position is past the last offset of this epoch | live |
//! | `"invalid"` | the id is not a position at all | live |
//!
//! `last_event_id` echoes the id given (cut to [`MAX_ID_LEN`] bytes), `first_available`
//! is the position of the oldest retained entry (or of the next one when none is
//! retained). The marker's own id is the position just before what follows it, so a
//! client that reconnects after reading only the marker does not get it again.
//!
//! The same marker, with reason `"dropped"`, comes in the middle of a stream whose
//! bounded queue discarded messages ([`OverflowPolicy::DropOldest`](crate::OverflowPolicy::DropOldest)):
//! there `last_event_id` is the marker's own id, the position just before the first
//! message discarded, so a client that reconnects with it resumes them from the log
//! while the log retains them; `first_available` is the position of the message that
//! follows it; and a fifth key, `dropped`, counts the messages discarded (see
//! [`crate::listener`]).

use crate::message::Message;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest event id read as a position; longer ones are `invalid` (and cut to this
/// length when echoed in a marker).
pub const MAX_ID_LEN: usize = 64;

/// The epoch of a channel's log: a value chosen when the channel is made, different for
/// every channel made (in this process and, with overwhelming likelihood, any other).
///
/// Written as 16 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(u64);

impl Epoch {
    /// A new epoch: 64 bits from the process's random hash keys, the time and a counter,
    /// so two epochs made in one process always differ and two processes almost surely
    /// make different ones.
    pub fn new() -> Self {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u64(MADE.fetch_add(1, Ordering::Relaxed));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(now.as_nanos());
        // 0 is kept for "no epoch" in serialised forms of other engines.
        Epoch(hasher.finish().max(1))
    }

    /// The epoch with this value (as stored by an engine that keeps logs elsewhere).
    pub const fn from_u64(value: u64) -> Self {
        Epoch(value)
    }

    /// Its value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl Default for Epoch {
    fn default() -> Self {
        Epoch::new()
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({self})")
    }
}

/// A position in a channel's log: its epoch and an offset in it. Offset 0 is the
/// position before the first message.
///
/// Its text form, `<epoch>-<offset>`, is the event id a subscriber sees and gives back:
///
/// ```
/// use eric_core::{Epoch, Position};
///
/// let position = Position::new(Epoch::from_u64(0x5f0c), 42);
/// assert_eq!(position.to_string(), "0000000000005f0c-42");
/// assert_eq!("0000000000005f0c-42".parse::<Position>(), Ok(position));
/// assert!("42".parse::<Position>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// The log's epoch.
    pub epoch: Epoch,
    /// The offset: that of the last message seen.
    pub offset: u64,
}

impl Position {
    /// The position `offset` of `epoch`.
    pub const fn new(epoch: Epoch, offset: u64) -> Self {
        Position { epoch, offset }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.offset)
    }
}

/// Why a text is not a [`Position`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidPosition;

impl fmt::Display for InvalidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an event position: expected <16 hex digits>-<decimal offset>")
    }
}

impl std::error::Error for InvalidPosition {}

impl FromStr for Position {
    type Err = InvalidPosition;

    fn from_str(text: &str) -> Result<Self, InvalidPosition> {
        if text.len() > MAX_ID_LEN {
            return Err(InvalidPosition);
        }
        let (epoch, offset) = text.split_once('-').ok_or(InvalidPosition)?;
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if epoch.len() != 16 || !epoch.bytes().all(hex) {
            return Err(InvalidPosition);
        }
        if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidPosition);
        }
        let epoch = u64::from_str_radix(epoch, 16).map_err(|_| InvalidPosition)?;
        let offset = offset.parse().map_err(|_| InvalidPosition)?;
        Ok(Position::new(Epoch(epoch), offset))
    }
}

/// How much of its log a channel retains for resume: at most `max_entries` entries,
/// none older than `max_age` (when set). Entries past either bound are trimmed when the
/// next message is published or the log is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// The most entries retained; 0 retains none (the reference's behaviour).
    pub max_entries: usize,
    /// The oldest an entry may be; `None` bounds by count alone.
    pub max_age: Option<Duration>,
}

impl Retention {
    /// Retains nothing: resume always reports a gap unless nothing was missed.
    pub const fn none() -> Self {
        Retention {
            max_entries: 0,
            max_age: None,
        }
    }

    /// Retains the last `max_entries` entries.
    pub const fn entries(max_entries: usize) -> Self {
        Retention {
            max_entries,
            max_age: None,
        }
    }

    /// The same bound by count, and no entry older than `max_age`.
    #[must_use]
    pub const fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }
}

/// Whom a logged message was addressed to.
#[derive(Clone)]
pub(crate) enum Addressee {
    /// A broadcast: every listener of the channel.
    All,
    /// A dispatch: one listener, known by the address of its allocation (a listener
    /// removed and another registered under its id is another listener).
    One(usize),
}

impl Addressee {
    pub(crate) fn includes(&self, listener: usize) -> bool {
        match self {
            Addressee::All => true,
            Addressee::One(one) => *one == listener,
        }
    }
}

struct Entry {
    message: Arc<Message>,
    to: Addressee,
    /// When it was published; `None` when the retention has no age bound.
    at: Option<Instant>,
}

/// A channel's log: the offsets taken so far and the entries retained.
pub(crate) struct ChannelLog {
    epoch: Epoch,
    /// The offset of the last message published (0 before the first).
    last: u64,
    /// The retained entries: offsets `last - entries.len() + 1 ..= last`.
    entries: VecDeque<Entry>,
    retention: Retention,
}

/// What a subscriber gets before its live messages when it resumes.
pub(crate) struct Resume {
    /// The retained entries it missed, oldest first, with their offsets.
    pub(crate) replay: Vec<(u64, Arc<Message>)>,
    /// The gap marker's payload, when something may be missing.
    pub(crate) gap: Option<Gap>,
}

/// Why a resume cannot prove that nothing is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GapReason {
    Trimmed,
    Epoch,
    Future,
    Invalid,
}

impl GapReason {
    fn as_str(self) -> &'static str {
        match self {
            GapReason::Trimmed => "trimmed",
            GapReason::Epoch => "epoch",
            GapReason::Future => "future",
            GapReason::Invalid => "invalid",
        }
    }
}

/// A gap found on resume.
pub(crate) struct Gap {
    pub(crate) reason: GapReason,
    pub(crate) first_available: Position,
}

impl ChannelLog {
    pub(crate) fn new(epoch: Epoch, retention: Retention) -> Self {
        ChannelLog {
            epoch,
            last: 0,
            entries: VecDeque::new(),
            retention,
        }
    }

    pub(crate) fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The position of the last message published.
    pub(crate) fn position(&self) -> Position {
        Position::new(self.epoch, self.last)
    }

    pub(crate) fn retention(&self) -> Retention {
        self.retention
    }

    /// The offset the next message takes.
    pub(crate) fn next_offset(&self) -> u64 {
        self.last + 1
    }

    /// The offset of the oldest retained entry (`next_offset` when none is).
    fn first_retained(&self) -> u64 {
        self.last + 1 - self.entries.len() as u64
    }

    /// Records the message that took `next_offset`.
    pub(crate) fn append(&mut self, message: &Arc<Message>, to: Addressee) {
        self.last += 1;
        let retention = self.retention;
        if retention.max_entries == 0 {
            return;
        }
        let at = retention.max_age.map(|_| Instant::now());
        if self.entries.len() == retention.max_entries {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            message: Arc::clone(message),
            to,
            at,
        });
        if let (Some(max_age), Some(now)) = (retention.max_age, at) {
            self.trim_older_than(now, max_age);
        }
    }

    fn trim_older_than(&mut self, now: Instant, max_age: Duration) {
        while let Some(front) = self.entries.front() {
            match front.at {
                Some(at) if now.saturating_duration_since(at) > max_age => {
                    self.entries.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Trims what has grown too old since the last publish.
    fn trim(&mut self) {
        if let Some(max_age) = self.retention.max_age {
            self.trim_older_than(Instant::now(), max_age);
        }
    }

    /// What a subscriber that last saw `last_event_id` gets before its live messages:
    /// the retained entries for `listener` with offsets after its position, after
    /// `joined` (entries published before it existed are not its own) and before
    /// `first_queued` (what its queue still holds is delivered from the queue).
    pub(crate) fn resume(
        &mut self,
        last_event_id: &str,
        listener: usize,
        joined: u64,
        first_queued: Option<u64>,
    ) -> Resume {
        self.trim();
        let live_from = first_queued.unwrap_or(self.last + 1);
        let first_retained = self.first_retained();
        let (after, reason) = match last_event_id.parse::<Position>() {
            Ok(p) if p.epoch != self.epoch => (0, Some(GapReason::Epoch)),
            Ok(p) if p.offset > self.last => (self.last, Some(GapReason::Future)),
            Ok(p) => {
                let effective = p.offset.max(joined);
                let missing_trimmed = effective + 1 < live_from.min(first_retained);
                (p.offset, missing_trimmed.then_some(GapReason::Trimmed))
            }
            Err(InvalidPosition) => (self.last, Some(GapReason::Invalid)),
        };
        let from = after.max(joined) + 1;
        let replay = if from < live_from {
            let skip = from.saturating_sub(first_retained) as usize;
            self.entries
                .iter()
                .enumerate()
                .skip(skip)
                .map(|(i, e)| (first_retained + i as u64, e))
                .take_while(|(offset, _)| *offset < live_from)
                .filter(|(_, e)| e.to.includes(listener))
                .map(|(offset, e)| (offset, Arc::clone(&e.message)))
                .collect()
        } else {
            Vec::new()
        };
        Resume {
            replay,
            gap: reason.map(|reason| Gap {
                reason,
                first_available: Position::new(self.epoch, first_retained),
            }),
        }
    }
}

impl Gap {
    /// The marker's payload: `{"error", "last_event_id", "first_available", "reason"}`.
    pub(crate) fn payload(&self, last_event_id: &str) -> serde_json::Value {
        let mut echoed = last_event_id;
        if echoed.len() > MAX_ID_LEN {
            let mut end = MAX_ID_LEN;
            while !echoed.is_char_boundary(end) {
                end -= 1;
            }
            echoed = &echoed[..end];
        }
        let mut payload = serde_json::Map::with_capacity(4);
        payload.insert("error".into(), "history_gap".into());
        payload.insert("last_event_id".into(), echoed.into());
        payload.insert(
            "first_available".into(),
            self.first_available.to_string().into(),
        );
        payload.insert("reason".into(), self.reason.as_str().into());
        serde_json::Value::Object(payload)
    }
}

/// The payload of a `"dropped"` gap marker: `count` messages discarded after `after`,
/// the stream going on at `next`.
pub(crate) fn dropped_payload(after: Position, next: Position, count: u64) -> serde_json::Value {
    let mut payload = serde_json::Map::with_capacity(5);
    payload.insert("error".into(), "history_gap".into());
    payload.insert("last_event_id".into(), after.to_string().into());
    payload.insert("first_available".into(), next.to_string().into());
    payload.insert("reason".into(), "dropped".into());
    payload.insert("dropped".into(), count.into());
    serde_json::Value::Object(payload)
}

/// The payload of the marker that ends a stream too slow: what it missed follows
/// `after`, in the log.
pub(crate) fn too_slow_payload(after: Position, max_bytes: usize) -> serde_json::Value {
    let mut payload = serde_json::Map::with_capacity(4);
    payload.insert("error".into(), "too_slow".into());
    payload.insert("last_event_id".into(), after.to_string().into());
    payload.insert("max_lag_bytes".into(), max_bytes.into());
    payload.insert(
        "message".into(),
        "the stream fell more than max_lag_bytes behind and was ended: reconnect with \
         last_event_id to resume from the channel's log"
            .into(),
    );
    serde_json::Value::Object(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(entries: usize) -> ChannelLog {
        ChannelLog::new(Epoch::from_u64(7), Retention::entries(entries))
    }

    fn publish(log: &mut ChannelLog, n: usize, to: Addressee) {
        let message = Arc::new(Message::empty("m"));
        for _ in 0..n {
            log.append(&message, to.clone());
        }
    }

    fn offsets(resume: &Resume) -> Vec<u64> {
        resume.replay.iter().map(|(o, _)| *o).collect()
    }

    #[test]
    fn positions_round_trip_and_refuse_everything_else() {
        let p = Position::new(Epoch::from_u64(u64::MAX), u64::MAX);
        assert_eq!(p.to_string().parse::<Position>(), Ok(p));
        for bad in [
            "",
            "-",
            "12",
            "0000000000000007",
            "0000000000000007-",
            "0000000000000007--1",
            "0000000000000007-1-2",
            "000000000000007-1",
            "00000000000000007-1",
            "000000000000000G-1",
            "000000000000000A-1",
            "0000000000000007-18446744073709551616",
            "0000000000000007-+1",
            "0000000000000007- 1",
        ] {
            assert_eq!(bad.parse::<Position>(), Err(InvalidPosition), "{bad:?}");
        }
        assert!("7".repeat(10_000).parse::<Position>().is_err());
    }

    #[test]
    fn a_resume_within_the_log_replays_what_follows_the_position() {
        let mut log = log(10);
        publish(&mut log, 5, Addressee::All);
        let resume = log.resume("0000000000000007-2", 1, 0, None);
        assert_eq!(offsets(&resume), [3, 4, 5]);
        assert!(resume.gap.is_none());
    }

    #[test]
    fn trimmed_entries_make_a_gap_then_the_rest_is_replayed() {
        let mut log = log(2);
        publish(&mut log, 5, Addressee::All);
        let resume = log.resume("0000000000000007-1", 1, 0, None);
        assert_eq!(offsets(&resume), [4, 5]);
        let gap = resume.gap.unwrap();
        assert_eq!(gap.reason, GapReason::Trimmed);
        assert_eq!(gap.first_available.offset, 4);
        // Right before the first retained entry: nothing is missing.
        assert!(log.resume("0000000000000007-3", 1, 0, None).gap.is_none());
    }

    #[test]
    fn dispatches_to_others_are_not_replayed_and_queued_ones_stay_in_the_queue() {
        let mut log = log(10);
        publish(&mut log, 1, Addressee::All);
        publish(&mut log, 1, Addressee::One(2));
        publish(&mut log, 1, Addressee::One(1));
        publish(&mut log, 1, Addressee::All);
        let resume = log.resume("0000000000000007-0", 1, 0, Some(4));
        assert_eq!(offsets(&resume), [1, 3]);
    }

    #[test]
    fn another_epoch_replays_everything_retained_after_a_marker() {
        let mut log = log(3);
        publish(&mut log, 4, Addressee::All);
        let resume = log.resume("0000000000000008-2", 1, 0, None);
        assert_eq!(offsets(&resume), [2, 3, 4]);
        assert_eq!(resume.gap.unwrap().reason, GapReason::Epoch);
    }

    #[test]
    fn future_and_invalid_positions_get_a_marker_and_no_replay() {
        let mut log = log(3);
        publish(&mut log, 4, Addressee::All);
        for (id, reason) in [
            ("0000000000000007-9", GapReason::Future),
            ("12", GapReason::Invalid),
            ("", GapReason::Invalid),
        ] {
            let resume = log.resume(id, 1, 0, None);
            assert!(resume.replay.is_empty(), "{id:?}");
            assert_eq!(resume.gap.unwrap().reason, reason, "{id:?}");
        }
    }

    #[test]
    fn entries_older_than_the_age_bound_are_trimmed() {
        let mut log = ChannelLog::new(
            Epoch::from_u64(7),
            Retention::entries(10).max_age(Duration::from_millis(1)),
        );
        publish(&mut log, 3, Addressee::All);
        std::thread::sleep(Duration::from_millis(5));
        let resume = log.resume("0000000000000007-0", 1, 0, None);
        assert!(resume.replay.is_empty());
        assert_eq!(resume.gap.unwrap().first_available.offset, 4);
    }

    #[test]
    fn a_marker_echoes_at_most_the_longest_id() {
        let gap = Gap {
            reason: GapReason::Invalid,
            first_available: Position::new(Epoch::from_u64(7), 1),
        };
        let payload = gap.payload(&"é".repeat(1000));
        assert!(payload["last_event_id"].as_str().unwrap().len() <= MAX_ID_LEN);
        let keys: Vec<_> = payload.as_object().unwrap().keys().cloned().collect();
        let mut expected = ["error", "first_available", "last_event_id", "reason"];
        if keys[0] == "error" && keys[1] == "last_event_id" {
            // serde_json's preserve_order is on in this build: the wire order.
            expected = ["error", "last_event_id", "first_available", "reason"];
        }
        assert_eq!(keys, expected);
    }
}
