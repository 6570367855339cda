//! Counters that a hot path can bump without writing a cache line another thread
//! writes: one slot of counters per thread (threads beyond the slot count share slots,
//! still correctly), summed when someone reads them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One counter of every slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Counter {
    PublishedBroadcast,
    PublishedDispatch,
    DeliveredHttp,
    DeliveredSocket,
    DroppedRejected,
    DroppedDisconnected,
    DisconnectSlow,
    DisconnectTokenExpired,
    DisconnectShutdown,
    DisconnectOverflow,
    ResumeReplayed,
    ResumeMarker,
    StreamsOpenedHttp,
    StreamsClosedHttp,
    StreamsOpenedSocket,
    StreamsClosedSocket,
    /// The sum of every publish latency observed, in nanoseconds.
    LatencyNanos,
}

/// How many [`Counter`]s there are.
pub(crate) const COUNTERS: usize = Counter::LatencyNanos as usize + 1;

/// The upper bounds of the publish latency histogram's buckets, in seconds; the last
/// bucket (`+Inf`) is implicit.
pub(crate) const LATENCY_BOUNDS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1, 1.0,
];

/// The latency buckets, `+Inf` included.
pub(crate) const LATENCY_BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// The upper bounds of [`LATENCY_BOUNDS`] in nanoseconds, for the hot path.
const LATENCY_BOUNDS_NANOS: [u64; 14] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    1_000_000_000,
];

/// The latency bucket that holds `nanos`: the first whose bound is not below it.
pub(crate) fn bucket_of(nanos: u64) -> usize {
    LATENCY_BOUNDS_NANOS
        .iter()
        .position(|&bound| nanos <= bound)
        .unwrap_or(LATENCY_BOUNDS_NANOS.len())
}

/// One thread's counters. Aligned so that two slots never share a cache line (two
/// lines, for CPUs that fetch lines in pairs).
#[repr(align(128))]
#[derive(Debug)]
struct Slot {
    counters: [AtomicU64; COUNTERS],
    latency: [AtomicU64; LATENCY_BUCKETS],
    /// Requests by route slot and status slot, row-major.
    requests: Box<[AtomicU64]>,
}

/// Counters in per-thread slots. A thread takes a slot index the first time it counts
/// (from a process-wide sequence, so the first threads of a process, the runtime's
/// workers among them, get slots of their own); reading sums every slot.
#[derive(Debug)]
pub(crate) struct Shards {
    slots: Box<[Slot]>,
    mask: usize,
    request_cells: usize,
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

fn thread_index() -> usize {
    // A thread being torn down has no index any more: any slot does.
    THREAD_INDEX.try_with(|index| *index).unwrap_or(0)
}

impl Shards {
    /// Slots for this machine (four per core, at least 8, at most 128), each with
    /// `request_cells` request counters.
    pub(crate) fn new(request_cells: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        let count = (cores * 4).next_power_of_two().clamp(8, 128);
        let slots = (0..count)
            .map(|_| Slot {
                counters: std::array::from_fn(|_| AtomicU64::new(0)),
                latency: std::array::from_fn(|_| AtomicU64::new(0)),
                requests: (0..request_cells).map(|_| AtomicU64::new(0)).collect(),
            })
            .collect();
        Shards {
            slots,
            mask: count - 1,
            request_cells,
        }
    }

    #[inline]
    fn slot(&self) -> &Slot {
        &self.slots[thread_index() & self.mask]
    }

    /// Adds `n` to `counter`.
    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.slot().counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one publish latency.
    pub(crate) fn observe_latency(&self, nanos: u64) {
        let slot = self.slot();
        slot.latency[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        slot.counters[Counter::LatencyNanos as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts one request in request cell `cell`.
    pub(crate) fn add_request(&self, cell: usize) {
        if cell < self.request_cells {
            self.slot().requests[cell].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The sum of `counter` over every slot.
    pub(crate) fn sum(&self, counter: Counter) -> u64 {
        self.slots
            .iter()
            .map(|slot| slot.counters[counter as usize].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// The latency buckets (not cumulative), summed over every slot.
    pub(crate) fn latency(&self) -> [u64; LATENCY_BUCKETS] {
        let mut buckets = [0; LATENCY_BUCKETS];
        for slot in self.slots.iter() {
            for (total, count) in buckets.iter_mut().zip(&slot.latency) {
                *total += count.load(Ordering::Relaxed);
            }
        }
        buckets
    }

    /// The request cells, summed over every slot.
    pub(crate) fn requests(&self) -> Vec<u64> {
        let mut cells = vec![0; self.request_cells];
        for slot in self.slots.iter() {
            for (total, count) in cells.iter_mut().zip(slot.requests.iter()) {
                *total += count.load(Ordering::Relaxed);
            }
        }
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up() {
        let shards = Arc::new(Shards::new(3));
        let threads: Vec<_> = (0..24)
            .map(|_| {
                let shards = Arc::clone(&shards);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        shards.add(Counter::DeliveredHttp, 1);
                        shards.add_request(2);
                    }
                    shards.add(Counter::PublishedBroadcast, 5);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(shards.sum(Counter::DeliveredHttp), 24_000);
        assert_eq!(shards.sum(Counter::PublishedBroadcast), 120);
        assert_eq!(shards.sum(Counter::DeliveredSocket), 0);
        assert_eq!(shards.requests(), vec![0, 0, 24_000]);
    }

    #[test]
    fn latencies_land_in_the_first_bucket_that_holds_them() {
        let shards = Shards::new(0);
        shards.observe_latency(5_000);
        shards.observe_latency(5_001);
        shards.observe_latency(2_000_000_000);
        let buckets = shards.latency();
        assert_eq!(buckets[0], 1);
        assert_eq!(buckets[1], 1);
        assert_eq!(buckets[LATENCY_BUCKETS - 1], 1);
        assert_eq!(buckets.iter().sum::<u64>(), 3);
        assert_eq!(shards.sum(Counter::LatencyNanos), 2_000_010_001);
        assert_eq!(
            LATENCY_BOUNDS_NANOS.map(|n| n as f64 / 1e9),
            LATENCY_BOUNDS,
            "the two bound tables agree"
        );
    }
}
