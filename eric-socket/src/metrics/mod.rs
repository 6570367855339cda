//! What a server counts, for `/metrics`, `/monitor` and `eric stats`.
//!
//! Every [`ChannelContainer`](crate::ChannelContainer) has one [`Metrics`], shared by
//! the transports that serve it, so a Unix server and an HTTP server over the same
//! container report together, and two containers in one process (two servers in a test)
//! never mix their figures.
//!
//! # Cost
//! Counting must not slow down what it counts. Every counter lives in per-thread slots
//! (`shards.rs`): a delivery adds one to a counter on a cache line of its own thread,
//! with no lock and no line that another thread writes; a scrape sums the slots. The
//! gauges are read when asked for: channels and listeners from the container, open
//! connections from the servers' connection gauges, open streams as streams opened
//! minus streams closed. A stream's opening and closing also update the count of open
//! streams of its channel, under a lock: once per stream, never per event.
//!
//! # Who counts what
//! * publishes and their latency: `POST /broadcast`, `POST /dispatch`, socket `b`, `d`;
//! * deliveries: each event an HTTP stream hands to its writer, each line a socket
//!   stream writes;
//! * drops and overflow disconnects: what the publishes' reports say (see
//!   [`DroppedReason`]);
//! * disconnects: [`Metrics::disconnected`], called by whatever ends a stream early:
//!   the server's shutdown here, and, as they land, the end of a slow stream and of a
//!   stream whose token expired;
//! * resumes: each `/stream` or `/watch` that names a `Last-Event-ID`;
//! * requests: every HTTP answer, by route of [`ROUTES`](crate::http::ROUTES) and status.

mod histogram;
mod shards;
mod snapshot;

pub use histogram::{LatencyCounts, LatencyHistogram};

pub(crate) use snapshot::Sampler;
pub use snapshot::{ChannelFigures, Snapshot, Totals};

use crate::unix::ConnectionGauge;
use parking_lot::Mutex;
use shards::{Counter, Shards};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

#[cfg(feature = "http")]
mod expose;
#[cfg(feature = "http")]
pub(crate) use expose::{encode, request_cell, CONTENT_TYPE};

/// A transport a server speaks: a label of `eric_subscribers`, `eric_connections` and
/// `eric_deliveries_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP, with `text/event-stream` streams.
    Http,
    /// The Unix socket, with JSON-line streams.
    Socket,
}

impl Transport {
    /// The label value: `http` or `socket`.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Socket => "socket",
        }
    }
}

/// Why a stream was ended by the server rather than by its client or its listener: a
/// label of `eric_disconnects_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client did not read its stream fast enough.
    Slow,
    /// The token that authorised the stream expired.
    TokenExpired,
    /// The server shut down.
    Shutdown,
    /// The listener's bounded queue overflowed under the `Disconnect` policy.
    Overflow,
}

impl DisconnectReason {
    /// Every reason, in the order of the exposition.
    pub const ALL: [DisconnectReason; 4] = [
        DisconnectReason::Slow,
        DisconnectReason::TokenExpired,
        DisconnectReason::Shutdown,
        DisconnectReason::Overflow,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            DisconnectReason::Slow => "slow",
            DisconnectReason::TokenExpired => "token_expired",
            DisconnectReason::Shutdown => "shutdown",
            DisconnectReason::Overflow => "overflow",
        }
    }

    fn counter(self) -> Counter {
        match self {
            DisconnectReason::Slow => Counter::DisconnectSlow,
            DisconnectReason::TokenExpired => Counter::DisconnectTokenExpired,
            DisconnectReason::Shutdown => Counter::DisconnectShutdown,
            DisconnectReason::Overflow => Counter::DisconnectOverflow,
        }
    }
}

/// Why a message did not reach a queue: a label of `eric_dropped_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DroppedReason {
    /// A full queue refused it (`Reject` policy).
    Rejected,
    /// It overflowed a queue whose listener was disconnected for it (`Disconnect`
    /// policy).
    Disconnected,
}

/// How a message was published: a label of `eric_messages_published_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PublishKind {
    /// To every listener of a channel.
    Broadcast,
    /// To one listener.
    Dispatch,
}

/// How a resumed stream started: a label of `eric_resumes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResumeResult {
    /// The log covered the position: the stream replayed what followed it (perhaps
    /// nothing).
    Replayed,
    /// The log could not cover it: the stream started with a `history_gap` marker.
    Marker,
}

/// The counters of one container's servers. See the [module documentation](self).
pub struct Metrics {
    shards: Shards,
    started: Instant,
    /// Open streams by channel id (no entry for none).
    channel_streams: Mutex<HashMap<String, usize>>,
    /// The open-connection gauges of the servers over the container.
    connections: Mutex<Vec<(Transport, ConnectionGauge)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: Shards::new(request_cells()),
            started: Instant::now(),
            channel_streams: Mutex::default(),
            connections: Mutex::default(),
        }
    }
}

#[cfg(feature = "http")]
fn request_cells() -> usize {
    expose::REQUEST_CELLS
}

#[cfg(not(feature = "http"))]
fn request_cells() -> usize {
    0
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("totals", &self.totals())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Counts a stream that the server ended before its client or its listener did.
    /// Whatever ends a stream for one of these reasons calls this once per stream.
    pub fn disconnected(&self, reason: DisconnectReason) {
        self.shards.add(reason.counter(), 1);
    }

    /// Counts `n` events written to streams of `transport`.
    #[inline]
    pub(crate) fn delivered(&self, transport: Transport, n: u64) {
        let counter = match transport {
            Transport::Http => Counter::DeliveredHttp,
            Transport::Socket => Counter::DeliveredSocket,
        };
        self.shards.add(counter, n);
    }

    /// Counts a message published, and how long queueing it took.
    pub(crate) fn published(&self, kind: PublishKind, took: Duration) {
        let counter = match kind {
            PublishKind::Broadcast => Counter::PublishedBroadcast,
            PublishKind::Dispatch => Counter::PublishedDispatch,
        };
        self.shards.add(counter, 1);
        self.shards
            .observe_latency(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Counts `n` messages dropped for `reason`.
    pub(crate) fn dropped(&self, reason: DroppedReason, n: u64) {
        if n == 0 {
            return;
        }
        let counter = match reason {
            DroppedReason::Rejected => Counter::DroppedRejected,
            DroppedReason::Disconnected => Counter::DroppedDisconnected,
        };
        self.shards.add(counter, n);
    }

    /// Counts a stream resumed from a `Last-Event-ID`.
    pub(crate) fn resumed(&self, result: ResumeResult) {
        self.shards.add(
            match result {
                ResumeResult::Replayed => Counter::ResumeReplayed,
                ResumeResult::Marker => Counter::ResumeMarker,
            },
            1,
        );
    }

    /// Counts a stream of `channel` open on `transport`, until
    /// [`stream_closed`](Self::stream_closed).
    pub(crate) fn stream_opened(&self, transport: Transport, channel: &str) {
        self.shards.add(
            match transport {
                Transport::Http => Counter::StreamsOpenedHttp,
                Transport::Socket => Counter::StreamsOpenedSocket,
            },
            1,
        );
        let mut streams = self.channel_streams.lock();
        match streams.get_mut(channel) {
            Some(count) => *count += 1,
            None => {
                streams.insert(channel.to_owned(), 1);
            }
        }
    }

    /// Counts the end of a stream [`stream_opened`](Self::stream_opened) counted.
    pub(crate) fn stream_closed(&self, transport: Transport, channel: &str) {
        self.shards.add(
            match transport {
                Transport::Http => Counter::StreamsClosedHttp,
                Transport::Socket => Counter::StreamsClosedSocket,
            },
            1,
        );
        let mut streams = self.channel_streams.lock();
        if let Some(count) = streams.get_mut(channel) {
            *count -= 1;
            if *count == 0 {
                streams.remove(channel);
            }
        }
    }

    /// Counts an HTTP request in its cell (see `expose::request_cell`).
    #[cfg(feature = "http")]
    pub(crate) fn request(&self, cell: usize) {
        self.shards.add_request(cell);
    }

    /// Reports the open connections of a server of `transport` from now on.
    pub(crate) fn watch_connections(&self, transport: Transport, gauge: ConnectionGauge) {
        self.connections.lock().push((transport, gauge));
    }

    /// Open connections of `transport`, over every server of the container.
    pub fn connections(&self, transport: Transport) -> u64 {
        self.connections
            .lock()
            .iter()
            .filter(|(t, _)| *t == transport)
            .map(|(_, gauge)| gauge.open() as u64)
            .sum()
    }

    /// Open streams of each channel that has any.
    pub fn channel_streams(&self) -> HashMap<String, usize> {
        self.channel_streams.lock().clone()
    }

    /// How long since the container was made.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every counter, summed now.
    pub fn totals(&self) -> Totals {
        let s = &self.shards;
        let open = |opened, closed| s.sum(opened).saturating_sub(s.sum(closed));
        Totals {
            published_broadcast: s.sum(Counter::PublishedBroadcast),
            published_dispatch: s.sum(Counter::PublishedDispatch),
            delivered_http: s.sum(Counter::DeliveredHttp),
            delivered_socket: s.sum(Counter::DeliveredSocket),
            dropped_rejected: s.sum(Counter::DroppedRejected),
            dropped_disconnected: s.sum(Counter::DroppedDisconnected),
            disconnects_slow: s.sum(Counter::DisconnectSlow),
            disconnects_token_expired: s.sum(Counter::DisconnectTokenExpired),
            disconnects_shutdown: s.sum(Counter::DisconnectShutdown),
            disconnects_overflow: s.sum(Counter::DisconnectOverflow),
            resumes_replayed: s.sum(Counter::ResumeReplayed),
            resumes_marker: s.sum(Counter::ResumeMarker),
            subscribers_http: open(Counter::StreamsOpenedHttp, Counter::StreamsClosedHttp),
            subscribers_socket: open(Counter::StreamsOpenedSocket, Counter::StreamsClosedSocket),
            connections_http: self.connections(Transport::Http),
            connections_socket: self.connections(Transport::Socket),
        }
    }

    pub(crate) fn shards(&self) -> &Shards {
        &self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_streams_are_counted_by_transport_and_channel() {
        let metrics = Metrics::default();
        metrics.stream_opened(Transport::Http, "a");
        metrics.stream_opened(Transport::Http, "a");
        metrics.stream_opened(Transport::Socket, "b");
        assert_eq!(metrics.totals().subscribers_http, 2);
        assert_eq!(metrics.totals().subscribers_socket, 1);
        assert_eq!(metrics.channel_streams().get("a"), Some(&2));
        metrics.stream_closed(Transport::Http, "a");
        metrics.stream_closed(Transport::Socket, "b");
        assert_eq!(metrics.channel_streams().get("a"), Some(&1));
        assert_eq!(metrics.channel_streams().get("b"), None);
        metrics.stream_closed(Transport::Http, "a");
        assert!(metrics.channel_streams().is_empty());
        assert_eq!(metrics.totals().subscribers_http, 0);
    }

    #[test]
    fn disconnects_are_counted_by_reason() {
        let metrics = Metrics::default();
        metrics.disconnected(DisconnectReason::Slow);
        metrics.disconnected(DisconnectReason::Shutdown);
        metrics.disconnected(DisconnectReason::Shutdown);
        let totals = metrics.totals();
        assert_eq!(totals.disconnects_slow, 1);
        assert_eq!(totals.disconnects_shutdown, 2);
        assert_eq!(totals.disconnects_token_expired, 0);
    }
}
