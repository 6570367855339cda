//! The figures of a moment, with the rates since the moment before: what `/monitor`
//! draws and `eric stats` prints (as JSON, one `GET /monitor/events` event each).

use super::histogram::quantile_us;
use crate::container::ChannelContainer;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How many past rates a snapshot carries (one a second: a minute).
pub(crate) const HISTORY: usize = 60;

/// The shortest interval over which rates are measured, in seconds.
const MIN_INTERVAL_SECONDS: f64 = 0.5;

/// How many channels a snapshot lists, the most subscribed first.
pub(crate) const CHANNELS_LISTED: usize = 100;

/// Every counter of a container's servers, summed (see [`super::Metrics::totals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Totals {
    /// Messages published by broadcast.
    pub published_broadcast: u64,
    /// Messages published by dispatch.
    pub published_dispatch: u64,
    /// Events written to HTTP streams.
    pub delivered_http: u64,
    /// Events written to socket streams.
    pub delivered_socket: u64,
    /// Messages a full queue refused.
    pub dropped_rejected: u64,
    /// Messages whose overflow disconnected their listener.
    pub dropped_disconnected: u64,
    /// Streams ended for reading too slowly.
    pub disconnects_slow: u64,
    /// Streams ended when their token expired.
    pub disconnects_token_expired: u64,
    /// Streams ended by the server's shutdown.
    pub disconnects_shutdown: u64,
    /// Listeners removed by their overflowing queue.
    pub disconnects_overflow: u64,
    /// Resumes the log covered.
    pub resumes_replayed: u64,
    /// Resumes that started with a gap marker.
    pub resumes_marker: u64,
    /// Open HTTP event streams.
    pub subscribers_http: u64,
    /// Open socket streams.
    pub subscribers_socket: u64,
    /// Open HTTP connections.
    pub connections_http: u64,
    /// Open socket connections.
    pub connections_socket: u64,
}

impl Totals {
    /// Messages published, both kinds.
    pub fn published(&self) -> u64 {
        self.published_broadcast + self.published_dispatch
    }

    /// Events delivered, both transports.
    pub fn delivered(&self) -> u64 {
        self.delivered_http + self.delivered_socket
    }

    /// Messages dropped, every reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_rejected + self.dropped_disconnected
    }

    /// Streams the server ended, every reason.
    pub fn disconnects(&self) -> u64 {
        self.disconnects_slow
            + self.disconnects_token_expired
            + self.disconnects_shutdown
            + self.disconnects_overflow
    }

    /// Open streams, both transports.
    pub fn subscribers(&self) -> u64 {
        self.subscribers_http + self.subscribers_socket
    }
}

/// One channel in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChannelFigures {
    /// The channel id.
    pub id: String,
    /// Its listeners.
    pub listeners: usize,
    /// Its open streams, both transports.
    pub subscribers: usize,
    /// Messages published on it (its log's offset).
    pub published: u64,
    /// Messages published a second, over the last interval (`None` at its first sight).
    pub publish_rate: Option<f64>,
}

/// The figures of a container's servers at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Seconds since the container was made.
    pub uptime_seconds: u64,
    /// Whether the server is ready (`/readyz` answers 200).
    pub ready: bool,
    /// `ready`, or why not (shutting down, the engine unreachable).
    pub state: String,
    /// Channels.
    pub channels: usize,
    /// Listeners over all channels.
    pub listeners: usize,
    /// The counters.
    pub totals: Totals,
    /// Messages published a second over the last interval.
    pub publish_rate: f64,
    /// Events delivered a second over the last interval.
    pub delivery_rate: f64,
    /// Past publish rates, oldest first, one a sample.
    pub publish_history: Vec<f64>,
    /// Past delivery rates, oldest first, one a sample.
    pub delivery_history: Vec<f64>,
    /// The publish latency under which half of all publishes stayed, in microseconds
    /// (the upper bound of a histogram bucket; `None` before the first publish).
    pub latency_p50_us: Option<f64>,
    /// The same for 99 % of all publishes.
    pub latency_p99_us: Option<f64>,
    /// What the queues lost or refused (`--overflow drop-oldest`, `--max-lag-bytes`,
    /// `--max-queued-bytes`); the overflow refusals and disconnects are in `totals`.
    #[serde(default)]
    pub losses: crate::LossTotals,
    /// What the engine tells of its store (`None` in memory).
    #[serde(default)]
    pub engine: Option<crate::engine::EngineFigures>,
    /// The most subscribed channels (at most 100), with their figures; empty when the
    /// snapshot was taken without them.
    pub channel_list: Vec<ChannelFigures>,
}

/// Takes snapshots and keeps what rates need: the previous totals, and the history.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    previous: Option<(Instant, Totals)>,
    positions: HashMap<String, u64>,
    publish_history: VecDeque<f64>,
    delivery_history: VecDeque<f64>,
}

impl Sampler {
    /// The figures of `container` now; `readiness` is what `/readyz` would answer.
    /// `with_channels` lists the channels too (a lock of each channel's log).
    pub(crate) fn sample(
        &mut self,
        container: &ChannelContainer,
        readiness: Result<(), String>,
        with_channels: bool,
    ) -> Snapshot {
        self.sample_at(Instant::now(), container, readiness, with_channels)
    }

    /// [`sample`](Self::sample) as if it were `now`.
    fn sample_at(
        &mut self,
        now: Instant,
        container: &ChannelContainer,
        readiness: Result<(), String>,
        with_channels: bool,
    ) -> Snapshot {
        let metrics = container.metrics();
        let totals = metrics.totals();
        let since = self
            .previous
            .map(|(then, before)| (now.duration_since(then).as_secs_f64(), before));
        let (publish_rate, delivery_rate, seconds) = match since {
            // A snapshot right after another (a new watcher): the last rates stand, and
            // the interval goes on.
            Some((seconds, _)) if seconds < MIN_INTERVAL_SECONDS => (
                self.publish_history.back().copied().unwrap_or(0.0),
                self.delivery_history.back().copied().unwrap_or(0.0),
                None,
            ),
            Some((seconds, before)) => {
                let publish =
                    totals.published().saturating_sub(before.published()) as f64 / seconds;
                let delivery =
                    totals.delivered().saturating_sub(before.delivered()) as f64 / seconds;
                push_bounded(&mut self.publish_history, publish);
                push_bounded(&mut self.delivery_history, delivery);
                self.previous = Some((now, totals));
                (publish, delivery, Some(seconds))
            }
            None => {
                self.previous = Some((now, totals));
                (0.0, 0.0, None)
            }
        };
        let channel_list = if with_channels {
            self.channels(container, seconds)
        } else {
            self.positions.clear();
            Vec::new()
        };
        let (latency_p50_us, latency_p99_us) = {
            let buckets = metrics.shards().latency();
            (quantile_us(&buckets, 0.5), quantile_us(&buckets, 0.99))
        };
        Snapshot {
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            uptime_seconds: metrics.uptime().as_secs(),
            ready: readiness.is_ok(),
            state: readiness.err().unwrap_or_else(|| "ready".to_owned()),
            channels: container.len(),
            listeners: container.listener_count(),
            totals,
            publish_rate,
            delivery_rate,
            publish_history: self.publish_history.iter().copied().collect(),
            delivery_history: self.delivery_history.iter().copied().collect(),
            latency_p50_us,
            latency_p99_us,
            losses: container.losses().totals(),
            engine: container.engine_figures(),
            channel_list,
        }
    }

    fn channels(
        &mut self,
        container: &ChannelContainer,
        seconds: Option<f64>,
    ) -> Vec<ChannelFigures> {
        let streams = container.metrics().channel_streams();
        // A new interval starts only with one long enough to measure rates over.
        let mut positions = match seconds {
            Some(_) => HashMap::with_capacity(self.positions.len()),
            None => std::mem::take(&mut self.positions),
        };
        let mut list = Vec::new();
        container.for_each_channel(|id, channel| {
            let published = channel.position().offset;
            let publish_rate = match (self.positions.get(id), seconds) {
                (Some(&before), Some(seconds)) => {
                    Some(published.saturating_sub(before) as f64 / seconds)
                }
                _ => None,
            };
            if seconds.is_some() || !positions.contains_key(id) {
                positions.insert(id.to_owned(), published);
            }
            list.push(ChannelFigures {
                id: id.to_owned(),
                listeners: channel.listener_count(),
                subscribers: streams.get(id).copied().unwrap_or(0),
                published,
                publish_rate,
            });
        });
        self.positions = positions;
        list.sort_by(|a, b| {
            (b.subscribers, b.listeners, &a.id).cmp(&(a.subscribers, a.listeners, &b.id))
        });
        list.truncate(CHANNELS_LISTED);
        list
    }
}

fn push_bounded(history: &mut VecDeque<f64>, value: f64) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::shards::LATENCY_BUCKETS;
    use crate::metrics::PublishKind;
    use std::time::Duration;

    #[test]
    fn quantiles_are_bucket_bounds() {
        let mut buckets = [0; LATENCY_BUCKETS];
        assert_eq!(quantile_us(&buckets, 0.5), None);
        buckets[0] = 98;
        buckets[3] = 2;
        assert_eq!(quantile_us(&buckets, 0.5), Some(5.0));
        assert_eq!(quantile_us(&buckets, 0.99), Some(50.0));
    }

    #[test]
    fn channels_are_listed_with_their_figures_and_rates_come_from_the_second_sample() {
        let container = ChannelContainer::new();
        let busy = container.add_with_id("busy").unwrap();
        busy.add_listener();
        busy.add_listener();
        container.add_with_id("quiet").unwrap();
        let mut sampler = Sampler::default();
        let start = Instant::now();
        let first = sampler.sample_at(start, &container, Ok(()), true);
        assert_eq!(first.publish_rate, 0.0);
        assert!(first.publish_history.is_empty());
        assert_eq!(first.channel_list[0].id, "busy");
        assert_eq!(first.channel_list[0].listeners, 2);
        assert_eq!(first.channel_list[0].publish_rate, None);
        for _ in 0..3 {
            busy.broadcast(eric_core::Message::new("t", 1));
            container
                .metrics()
                .published(PublishKind::Broadcast, Duration::from_micros(3));
        }
        // Too soon after the first to measure a rate: none yet.
        let soon = sampler.sample_at(start + Duration::from_millis(100), &container, Ok(()), true);
        assert_eq!(soon.publish_rate, 0.0);
        assert!(soon.publish_history.is_empty());
        assert_eq!(soon.channel_list[0].publish_rate, None);
        let later = start + Duration::from_secs(1);
        let second = sampler.sample_at(later, &container, Err("shutting down".into()), true);
        assert_eq!(second.publish_rate, 3.0);
        assert!(second.publish_rate > 0.0);
        assert_eq!(second.publish_history.len(), 1);
        assert_eq!(second.totals.published_broadcast, 3);
        assert_eq!(second.channel_list[0].published, 3);
        assert_eq!(second.channel_list[0].publish_rate, Some(3.0));
        assert_eq!(second.channel_list[1].publish_rate, Some(0.0));
        assert!(!second.ready);
        assert_eq!(second.state, "shutting down");
        assert_eq!(second.latency_p99_us, Some(5.0));
    }
}
