//! What the server's queues lost or refused, counted over every channel of a container.

use eric_core::Losses;
use std::sync::atomic::{AtomicU64, Ordering};

/// Totals over every channel of a [`ChannelContainer`](crate::ChannelContainer) since it
/// was made, for metrics: read them with [`ChannelContainer::losses`](crate::ChannelContainer::losses).
///
/// Each is written at most once per publish (the channels sum a publish's losses
/// before reporting them), never per delivery. The same events are logged as counted
/// summaries (`refusals.rs`).
#[derive(Debug, Default)]
pub struct LossCounters {
    rejected: AtomicU64,
    disconnected: AtomicU64,
    dropped_oldest: AtomicU64,
    slow_disconnects: AtomicU64,
    dropped_too_slow: AtomicU64,
    overloaded: AtomicU64,
}

/// A snapshot of [`LossCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LossTotals {
    /// Messages a full queue refused (`--overflow reject`).
    pub rejected: u64,
    /// Listeners removed because their queue overflowed (`--overflow disconnect`).
    pub disconnected: u64,
    /// Messages discarded as oldest by full queues (`--overflow drop-oldest`); each
    /// stream that lost some got a `history_gap` marker with reason `dropped`.
    pub dropped_oldest: u64,
    /// Streams ended because they fell more than their byte bound behind
    /// (`--max-lag-bytes`): the slow disconnects.
    pub slow_disconnects: u64,
    /// Messages the queues of those streams discarded (the channel's log keeps them for
    /// the resume).
    pub dropped_too_slow: u64,
    /// Publishes refused because the queues held their budget (`--max-queued-bytes`).
    pub overloaded: u64,
}

impl LossCounters {
    /// The totals now.
    pub fn totals(&self) -> LossTotals {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LossTotals {
            rejected: read(&self.rejected),
            disconnected: read(&self.disconnected),
            dropped_oldest: read(&self.dropped_oldest),
            slow_disconnects: read(&self.slow_disconnects),
            dropped_too_slow: read(&self.dropped_too_slow),
            overloaded: read(&self.overloaded),
        }
    }

    pub(crate) fn add_refusals(&self, rejected: usize, disconnected: usize) {
        add(&self.rejected, rejected as u64);
        add(&self.disconnected, disconnected as u64);
    }

    pub(crate) fn add_losses(&self, losses: &Losses) {
        add(&self.dropped_oldest, losses.discarded);
        add(&self.slow_disconnects, losses.too_slow);
        add(&self.dropped_too_slow, losses.too_slow_discarded);
    }

    pub(crate) fn add_overloaded(&self) {
        add(&self.overloaded, 1);
    }
}

fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
