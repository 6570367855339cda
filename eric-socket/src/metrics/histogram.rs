//! A latency histogram shared by the threads that observe it: for what is timed once
//! per round trip to a store (an engine's commands), where one atomic increment per
//! observation costs nothing next to the round trip. The per-delivery counters use
//! per-thread slots instead (`shards.rs`).

use super::shards::{bucket_of, LATENCY_BOUNDS, LATENCY_BUCKETS};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latencies counted in the buckets of the publish latency histogram (upper bounds from
/// 5 µs to 1 s, then `+Inf`).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    nanos: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one latency.
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// What was counted so far.
    pub fn read(&self) -> LatencyCounts {
        LatencyCounts {
            buckets: self
                .buckets
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .collect(),
            sum_seconds: self.nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A [`LatencyHistogram`] read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LatencyCounts {
    /// How many latencies fell in each bucket, the `+Inf` bucket last (not
    /// cumulative).
    pub buckets: Vec<u64>,
    /// The sum of every latency, in seconds.
    pub sum_seconds: f64,
}

impl LatencyCounts {
    /// How many latencies were counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound, in microseconds, of the bucket that holds quantile `q`; `None`
    /// when nothing was counted.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        quantile_us(&self.buckets, q)
    }

    /// The buckets as the Prometheus encoder takes them: (upper bound in seconds,
    /// count), `+Inf` last.
    pub(crate) fn bounded(&self) -> Vec<(f64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, &n)| (LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), n))
            .collect()
    }
}

/// The upper bound (in microseconds) of the bucket that holds quantile `q` of a
/// histogram over [`LATENCY_BOUNDS`]; `None` when it is empty, and the largest finite
/// bound for the `+Inf` bucket.
pub(crate) fn quantile_us(buckets: &[u64], q: f64) -> Option<f64> {
    let count: u64 = buckets.iter().sum();
    if count == 0 {
        return None;
    }
    let rank = (q * count as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let bound = LATENCY_BOUNDS
                .get(i)
                .copied()
                .unwrap_or(LATENCY_BOUNDS[LATENCY_BOUNDS.len() - 1]);
            return Some(bound * 1e6);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_are_bucketed_summed_and_ranked() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.read().quantile_us(0.5), None);
        for micros in [3, 4, 40, 400, 4_000_000] {
            histogram.observe(Duration::from_micros(micros));
        }
        let counts = histogram.read();
        assert_eq!(counts.count(), 5);
        assert_eq!(counts.buckets[0], 2, "3 and 4 µs are under 5 µs");
        assert_eq!(counts.buckets[LATENCY_BUCKETS - 1], 1, "4 s is past 1 s");
        assert!((counts.sum_seconds - 4.000_447).abs() < 1e-9);
        assert_eq!(counts.quantile_us(0.5), Some(50.0));
        assert_eq!(
            counts.quantile_us(1.0),
            Some(1e6),
            "+Inf reports the last bound"
        );
        assert_eq!(counts.bounded().last(), Some(&(f64::INFINITY, 1)));
    }
}
