//! What full queues refused, logged as counted summaries.
//!
//! A listener that never reads, behind a bounded queue that rejects, refuses every
//! message published to it: a log line per refusal would let one stalled reader fill
//! the disk. Each channel gets at most one line per [`SUMMARY_INTERVAL`]. The first
//! refusal after a quiet interval is logged at once; the ones that follow are counted
//! and logged together when the interval is over, by a timer of the runtime, or failing
//! one by the next refusal, or when the channel is removed or the servers stop. Every
//! line counts what happened since the channel's previous line, so the lines add up to
//! the total.
//!
//! Both transports report here (the socket's `b` and `d`, HTTP's `/broadcast` and
//! `/dispatch`), so a refusal reads the same whichever of them published. So do the
//! channels themselves, through their ledger's observer, for what no transport sees:
//! messages a `drop-oldest` queue discarded, and streams ended as too slow with what
//! their queue discarded; and the container, for publishes refused because the
//! server's queues hold their byte budget.

use eric_core::{Error, Losses};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a channel's refusals wait to be logged, and the shortest time between
/// two of its lines.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Refusals counted since a channel's previous line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Publishes that met at least one full queue.
    publishes: u64,
    /// Messages a full queue refused.
    rejected: u64,
    /// Listeners their overflowing queue disconnected.
    disconnected: u64,
    /// Messages discarded as oldest by `drop-oldest` queues.
    discarded: u64,
    /// Streams ended because their queue fell more than its byte bound behind.
    too_slow: u64,
    /// Messages those queues discarded (the channel's log keeps them for resume).
    too_slow_dropped: u64,
    /// Publishes refused because the server's queues held their byte budget.
    overloaded: u64,
}

impl Tally {
    fn is_empty(&self) -> bool {
        self.publishes == 0
    }

    fn add(&mut self, other: &Tally) {
        self.publishes += other.publishes;
        self.rejected += other.rejected;
        self.disconnected += other.disconnected;
        self.discarded += other.discarded;
        self.too_slow += other.too_slow;
        self.too_slow_dropped += other.too_slow_dropped;
        self.overloaded += other.overloaded;
    }
}

/// One channel's summary.
#[derive(Debug)]
struct Summary {
    /// When its previous line was written.
    last_line: Instant,
    /// What happened since.
    pending: Tally,
    /// A timer will flush it at the end of the interval.
    timer_armed: bool,
}

/// The summaries of every channel that met full queues recently; one per container.
#[derive(Debug)]
pub(crate) struct RefusalLog {
    interval: Duration,
    channels: Mutex<Channels>,
}

#[derive(Debug, Default)]
struct Channels {
    summaries: HashMap<String, Summary>,
    /// Past this many summaries, the quiet ones are dropped before a new one is added,
    /// so that the map holds only channels with recent refusals.
    sweep_at: usize,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog::new(SUMMARY_INTERVAL)
    }
}

impl RefusalLog {
    fn new(interval: Duration) -> Self {
        RefusalLog {
            interval,
            channels: Mutex::new(Channels::default()),
        }
    }

    /// Counts what one publish on `channel` met: `rejected` messages refused by full
    /// queues, `disconnected` listeners removed by their overflowing queue.
    pub(crate) fn record(self: &Arc<Self>, channel: &str, rejected: usize, disconnected: usize) {
        if rejected == 0 && disconnected == 0 {
            return;
        }
        self.record_tally(
            channel,
            Tally {
                publishes: 1,
                rejected: rejected as u64,
                disconnected: disconnected as u64,
                ..Tally::default()
            },
        );
    }

    /// Counts what one publish on `channel` lost to `drop-oldest` and too slow queues.
    pub(crate) fn record_losses(self: &Arc<Self>, channel: &str, losses: &Losses) {
        if losses.is_empty() {
            return;
        }
        self.record_tally(
            channel,
            Tally {
                publishes: 1,
                discarded: losses.discarded,
                too_slow: losses.too_slow,
                too_slow_dropped: losses.too_slow_discarded,
                ..Tally::default()
            },
        );
    }

    /// Counts a publish on `channel` refused because the queues hold their budget.
    pub(crate) fn record_overloaded(self: &Arc<Self>, channel: &str) {
        self.record_tally(
            channel,
            Tally {
                publishes: 1,
                overloaded: 1,
                ..Tally::default()
            },
        );
    }

    fn record_tally(self: &Arc<Self>, channel: &str, met: Tally) {
        let now = Instant::now();
        let mut arm = None;
        let line = {
            let mut channels = self.channels.lock();
            match channels.summaries.get_mut(channel) {
                None => {
                    channels.sweep(now, self.interval);
                    channels.summaries.insert(
                        channel.to_owned(),
                        Summary {
                            last_line: now,
                            pending: Tally::default(),
                            timer_armed: false,
                        },
                    );
                    Some(met)
                }
                Some(summary) => {
                    summary.pending.add(&met);
                    let since = now.duration_since(summary.last_line);
                    if since >= self.interval {
                        summary.last_line = now;
                        Some(std::mem::take(&mut summary.pending))
                    } else {
                        if !summary.timer_armed {
                            arm = Some(self.interval - since);
                        }
                        None
                    }
                }
            }
        };
        if let Some(after) = arm {
            if self.arm_timer(channel, after) {
                if let Some(summary) = self.channels.lock().summaries.get_mut(channel) {
                    summary.timer_armed = true;
                }
            }
        }
        if let Some(tally) = line {
            write_line(channel, &tally);
        }
    }

    /// Counts a dispatch that `error` refused, if a full queue refused it.
    pub(crate) fn record_error(self: &Arc<Self>, channel: &str, error: &Error) {
        match error {
            Error::QueueFull { .. } => self.record(channel, 1, 0),
            Error::Disconnected { .. } => self.record(channel, 0, 1),
            _ => {}
        }
    }

    /// Logs what `channel` has pending and forgets it (the channel is gone).
    pub(crate) fn forget(&self, channel: &str) {
        let summary = self.channels.lock().summaries.remove(channel);
        if let Some(summary) = summary.filter(|s| !s.pending.is_empty()) {
            write_line(channel, &summary.pending);
        }
    }

    /// Logs what every channel has pending (the servers stop).
    pub(crate) fn flush(&self) {
        let now = Instant::now();
        let mut lines = Vec::new();
        for (channel, summary) in self.channels.lock().summaries.iter_mut() {
            if !summary.pending.is_empty() {
                summary.last_line = now;
                lines.push((channel.clone(), std::mem::take(&mut summary.pending)));
            }
        }
        for (channel, tally) in lines {
            write_line(&channel, &tally);
        }
    }

    /// Flushes `channel` in `after` on the current runtime; false without one (the
    /// next refusal, or the end, logs what is pending then).
    fn arm_timer(self: &Arc<Self>, channel: &str, after: Duration) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        // Weak: a pending timer does not keep the log (and its container) alive.
        let log = Arc::downgrade(self);
        let channel = channel.to_owned();
        runtime.spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(log) = log.upgrade() {
                log.timer_fired(&channel);
            }
        });
        true
    }

    fn timer_fired(self: &Arc<Self>, channel: &str) {
        let now = Instant::now();
        let mut rearm = None;
        let line = {
            let mut channels = self.channels.lock();
            let Some(summary) = channels.summaries.get_mut(channel) else {
                return;
            };
            summary.timer_armed = false;
            let since = now.duration_since(summary.last_line);
            if summary.pending.is_empty() {
                None
            } else if since < self.interval {
                // A refusal logged in the meantime started a new interval.
                rearm = Some(self.interval - since);
                None
            } else {
                summary.last_line = now;
                Some(std::mem::take(&mut summary.pending))
            }
        };
        if let Some(after) = rearm {
            if self.arm_timer(channel, after) {
                if let Some(summary) = self.channels.lock().summaries.get_mut(channel) {
                    summary.timer_armed = true;
                }
            }
        }
        if let Some(tally) = line {
            write_line(channel, &tally);
        }
    }
}

impl Channels {
    /// Drops the summaries with nothing pending whose interval is over, when the map
    /// has grown enough since the last sweep for the walk to pay for itself.
    fn sweep(&mut self, now: Instant, interval: Duration) {
        if self.summaries.len() < self.sweep_at {
            return;
        }
        self.summaries.retain(|_, summary| {
            summary.timer_armed
                || !summary.pending.is_empty()
                || now.duration_since(summary.last_line) < interval
        });
        self.sweep_at = (self.summaries.len() * 2).max(64);
    }
}

impl Drop for RefusalLog {
    fn drop(&mut self) {
        for (channel, summary) in self.channels.get_mut().summaries.drain() {
            if !summary.pending.is_empty() {
                write_line(&channel, &summary.pending);
            }
        }
    }
}

fn write_line(channel: &str, tally: &Tally) {
    // The id is the client's: Debug-formatted, like every client-supplied string in a
    // log line, so that a line break in it cannot start a line of its own.
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                channel = ?channel,
                publishes = tally.publishes,
                rejected = tally.rejected,
                disconnected = tally.disconnected,
                discarded = tally.discarded,
                too_slow = tally.too_slow,
                too_slow_dropped = tally.too_slow_dropped,
                overloaded = tally.overloaded,
                "publishes met full queues (counted since the channel's previous such line; one line per channel every 10 s at most)"
            )
        };
    }
    // A refusal is told to its publisher; a discard, a stream ended as too slow or a
    // publish refused for want of memory is the server's own trouble: a warning.
    if tally.discarded + tally.too_slow + tally.overloaded > 0 {
        line!(warn);
    } else {
        line!(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_is_logged_and_the_rest_wait_for_the_interval() {
        // No runtime here: nothing flushes but the calls below.
        let log = Arc::new(RefusalLog::new(Duration::from_secs(3600)));
        for _ in 0..10_000 {
            log.record("c", 1, 0);
        }
        log.record("c", 0, 2);
        let pending = log.channels.lock().summaries["c"].pending;
        assert_eq!(
            pending,
            Tally {
                publishes: 10_000,
                rejected: 9_999,
                disconnected: 2,
                ..Tally::default()
            }
        );
        log.flush();
        assert!(log.channels.lock().summaries["c"].pending.is_empty());
    }

    #[test]
    fn a_publish_that_met_no_full_queue_is_not_counted() {
        let log = Arc::new(RefusalLog::default());
        log.record("c", 0, 0);
        log.record_error("c", &Error::InvalidListener("1".into()));
        assert!(log.channels.lock().summaries.is_empty());
        log.record_error(
            "c",
            &Error::QueueFull {
                listener: "1".into(),
                capacity: 1,
            },
        );
        assert!(log.channels.lock().summaries.contains_key("c"));
        log.forget("c");
        assert!(log.channels.lock().summaries.is_empty());
    }

    #[test]
    fn losses_and_overloaded_publishes_are_tallied_with_the_refusals() {
        let log = Arc::new(RefusalLog::new(Duration::from_secs(3600)));
        let lost = Losses {
            discarded: 3,
            too_slow: 1,
            too_slow_discarded: 40,
        };
        // The first line goes out at once; what follows waits for the interval.
        log.record_losses("c", &lost);
        log.record_losses("c", &lost);
        log.record_losses("c", &Losses::default());
        log.record_overloaded("c");
        log.record("c", 2, 0);
        assert_eq!(
            log.channels.lock().summaries["c"].pending,
            Tally {
                publishes: 3,
                rejected: 2,
                discarded: 3,
                too_slow: 1,
                too_slow_dropped: 40,
                overloaded: 1,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn quiet_channels_are_swept_when_new_ones_come() {
        let log = Arc::new(RefusalLog::new(Duration::ZERO));
        for channel in 0..1_000 {
            log.record(&channel.to_string(), 1, 0);
        }
        assert!(log.channels.lock().summaries.len() <= 64);
    }

    #[test]
    fn the_timer_logs_what_is_pending_once_the_interval_is_over() {
        let log = Arc::new(RefusalLog::new(Duration::from_secs(10)));
        log.record("c", 1, 0);
        log.record("c", 1, 0);
        // Early, as when a refusal logged meanwhile started a new interval: kept.
        log.timer_fired("c");
        assert_eq!(log.channels.lock().summaries["c"].pending.publishes, 1);
        let mut channels = log.channels.lock();
        let summary = channels.summaries.get_mut("c").unwrap();
        summary.last_line = summary
            .last_line
            .checked_sub(Duration::from_secs(10))
            .unwrap();
        drop(channels);
        log.timer_fired("c");
        assert!(log.channels.lock().summaries["c"].pending.is_empty());
    }
}
