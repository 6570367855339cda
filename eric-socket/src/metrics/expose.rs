//! `GET /metrics`: the counters in the Prometheus text format (version 0.0.4), written
//! by prometheus-client's encoder from a collector that reads them at scrape time.

use super::shards::Counter;
use super::LatencyCounts;
use super::{DisconnectReason, Transport};
use crate::container::ChannelContainer;
use crate::engine::EngineFigures;
use crate::http::ROUTES;
use http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;

/// The `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The statuses counted each in a cell of their own; others count as `other`.
const STATUSES: [u16; 13] = [
    200, 204, 400, 404, 405, 408, 409, 410, 413, 415, 421, 500, 503,
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;

/// A route slot per entry of [`ROUTES`], then `OPTIONS` on any known path, then a
/// request that matches no route (an unknown path, or a method the path does not answer).
const OPTIONS_SLOT: usize = ROUTES.len();
const UNMATCHED_SLOT: usize = ROUTES.len() + 1;
const ROUTE_SLOTS: usize = ROUTES.len() + 2;

/// How many request cells the counters hold: a route slot by a status slot.
pub(crate) const REQUEST_CELLS: usize = ROUTE_SLOTS * STATUS_SLOTS;

/// The cell of a request of `method` on the route template `template` (`None`: no
/// known path) answered `status`. Labels come from [`ROUTES`], never from the raw path,
/// so that the number of series stays bounded whatever clients send.
pub(crate) fn request_cell(method: &Method, template: Option<&str>, status: StatusCode) -> usize {
    let route = match template {
        Some(_) if method == Method::OPTIONS => OPTIONS_SLOT,
        Some(template) => ROUTES
            .iter()
            .position(|route| route.path == template && route.method == method.as_str())
            .unwrap_or(UNMATCHED_SLOT),
        None => UNMATCHED_SLOT,
    };
    let status = STATUSES
        .iter()
        .position(|&s| s == status.as_u16())
        .unwrap_or(STATUSES.len());
    route * STATUS_SLOTS + status
}

/// The `method` and `route` labels of a route slot.
fn route_labels(slot: usize) -> (&'static str, &'static str) {
    match ROUTES.get(slot) {
        Some(route) => (route.method, route.path),
        None if slot == OPTIONS_SLOT => ("OPTIONS", "any"),
        None => ("other", "unmatched"),
    }
}

/// The `status` label of a status slot.
fn status_label(slot: usize) -> String {
    STATUSES
        .get(slot)
        .map_or_else(|| "other".to_owned(), u16::to_string)
}

/// What one scrape reports, read before encoding.
#[derive(Debug)]
struct Scrape {
    ready: bool,
    uptime: u64,
    channels: usize,
    listeners: usize,
    counters: Vec<(Counter, u64)>,
    subscribers: [(Transport, u64); 2],
    connections: [(Transport, u64); 2],
    latency: LatencyCounts,
    /// What the engine tells of its store, if the state lives in one.
    engine: Option<EngineFigures>,
    requests: Vec<(usize, u64)>,
    /// What the queues lost, from the container's loss counters.
    losses: crate::losses::LossTotals,
}

impl Scrape {
    fn read(container: &ChannelContainer, ready: bool) -> Self {
        let metrics = container.metrics();
        let shards = metrics.shards();
        let totals = metrics.totals();
        let counters = [
            Counter::PublishedBroadcast,
            Counter::PublishedDispatch,
            Counter::DeliveredHttp,
            Counter::DeliveredSocket,
            Counter::DroppedRejected,
            Counter::DroppedDisconnected,
            Counter::DisconnectSlow,
            Counter::DisconnectTokenExpired,
            Counter::DisconnectShutdown,
            Counter::DisconnectOverflow,
            Counter::ResumeReplayed,
            Counter::ResumeMarker,
        ]
        .into_iter()
        .map(|counter| (counter, shards.sum(counter)))
        .collect();
        let latency = LatencyCounts {
            buckets: shards.latency().to_vec(),
            sum_seconds: shards.sum(Counter::LatencyNanos) as f64 / 1e9,
        };
        Scrape {
            ready,
            uptime: metrics.uptime().as_secs(),
            channels: container.len(),
            listeners: container.listener_count(),
            counters,
            subscribers: [
                (Transport::Http, totals.subscribers_http),
                (Transport::Socket, totals.subscribers_socket),
            ],
            connections: [
                (Transport::Http, totals.connections_http),
                (Transport::Socket, totals.connections_socket),
            ],
            latency,
            engine: container.engine_figures(),
            losses: container.losses().totals(),
            requests: shards
                .requests()
                .into_iter()
                .enumerate()
                .filter(|&(_, n)| n > 0)
                .collect(),
        }
    }

    fn counter(&self, counter: Counter) -> u64 {
        self.counters
            .iter()
            .find(|(c, _)| *c == counter)
            .map_or(0, |&(_, n)| n)
    }
}

/// Writes a counter family with one label.
fn counter_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        metric
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
    }
    Ok(())
}

/// Writes a gauge family with one label.
fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        metric.encode_family(&labels)?.encode_gauge(n)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: &impl prometheus_client::encoding::EncodeGaugeValue,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(value)
}

/// Writes a latency histogram (seconds) without labels.
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    latency: &LatencyCounts,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(
            latency.sum_seconds,
            latency.count(),
            &latency.bounded(),
            None,
        )
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        gauge(
            e,
            "eric_ready",
            "1 while /readyz answers 200, else 0",
            &u64::from(self.ready),
        )?;
        gauge(
            e,
            "eric_uptime_seconds",
            "Whole seconds since the server's channels were made",
            &self.uptime,
        )?;
        gauge(e, "eric_channels", "Channels", &(self.channels as u64))?;
        gauge(
            e,
            "eric_listeners",
            "Listeners over all channels",
            &(self.listeners as u64),
        )?;
        let by_transport = |pairs: &[(Transport, u64); 2]| pairs.map(|(t, n)| (t.label(), n));
        gauge_family(
            e,
            "eric_subscribers",
            "Open event streams",
            "transport",
            &by_transport(&self.subscribers),
        )?;
        gauge_family(
            e,
            "eric_connections",
            "Open client connections",
            "transport",
            &by_transport(&self.connections),
        )?;
        counter_family(
            e,
            "eric_messages_published",
            "Messages published",
            "kind",
            &[
                ("broadcast", self.counter(Counter::PublishedBroadcast)),
                ("dispatch", self.counter(Counter::PublishedDispatch)),
            ],
        )?;
        counter_family(
            e,
            "eric_deliveries",
            "Events written to streams",
            "transport",
            &[
                ("http", self.counter(Counter::DeliveredHttp)),
                ("socket", self.counter(Counter::DeliveredSocket)),
            ],
        )?;
        counter_family(
            e,
            "eric_dropped",
            "Messages lost to a bounded queue's overflow policy",
            "reason",
            &[
                ("rejected", self.counter(Counter::DroppedRejected)),
                ("disconnected", self.counter(Counter::DroppedDisconnected)),
                ("oldest", self.losses.dropped_oldest),
                ("too_slow", self.losses.dropped_too_slow),
                ("overloaded", self.losses.overloaded),
            ],
        )?;
        let disconnects: Vec<(&str, u64)> = DisconnectReason::ALL
            .iter()
            .map(|reason| {
                let mut n = self.counter(reason.counter());
                if *reason == DisconnectReason::Slow {
                    n += self.losses.slow_disconnects;
                }
                (reason.label(), n)
            })
            .collect();
        counter_family(
            e,
            "eric_disconnects",
            "Streams or listeners the server ended",
            "reason",
            &disconnects,
        )?;
        counter_family(
            e,
            "eric_resumes",
            "Streams resumed from a Last-Event-ID",
            "result",
            &[
                ("replayed", self.counter(Counter::ResumeReplayed)),
                ("marker", self.counter(Counter::ResumeMarker)),
            ],
        )?;
        histogram(
            e,
            "eric_publish_duration_seconds",
            "Time to queue a published message for its listeners",
            &self.latency,
        )?;
        if let Some(engine) = &self.engine {
            encode_engine(e, engine)?;
        }
        let mut requests = e.encode_descriptor(
            "eric_http_requests",
            "HTTP requests answered, by route and status",
            None,
            MetricType::Counter,
        )?;
        for &(cell, n) in &self.requests {
            let (method, route) = route_labels(cell / STATUS_SLOTS);
            let status = status_label(cell % STATUS_SLOTS);
            let labels = [
                ("method", method),
                ("route", route),
                ("status", status.as_str()),
            ];
            requests
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        Ok(())
    }
}

/// The families of an engine's store: `eric_<store>_up`, `eric_<store>_reconnects_total`
/// and `eric_<store>_command_duration_seconds`.
fn encode_engine(encoder: &mut DescriptorEncoder, engine: &EngineFigures) -> fmt::Result {
    let store = &engine.store;
    gauge(
        encoder,
        &format!("eric_{store}_up"),
        &format!("1 while {store} answers commands and notifications, else 0"),
        &u64::from(engine.up),
    )?;
    encoder
        .encode_descriptor(
            &format!("eric_{store}_reconnects"),
            &format!("Connections to {store} made again after one was lost"),
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&engine.reconnects, None)?;
    histogram(
        encoder,
        &format!("eric_{store}_command_duration_seconds"),
        &format!("Time from sending a command to {store} to its answer"),
        &engine.command_latency,
    )
}

/// The exposition of `container`'s figures; `ready` is whether `/readyz` answers 200.
pub(crate) fn encode(container: &ChannelContainer, ready: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape::read(container, ready)));
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_cell_has_labels_from_the_route_table() {
        let watch = request_cell(&Method::GET, Some("/watch/{channel_id}"), StatusCode::OK);
        assert_eq!(
            route_labels(watch / STATUS_SLOTS),
            ("GET", "/watch/{channel_id}")
        );
        assert_eq!(status_label(watch % STATUS_SLOTS), "200");
        let options = request_cell(&Method::OPTIONS, Some("/broadcast"), StatusCode::NO_CONTENT);
        assert_eq!(route_labels(options / STATUS_SLOTS), ("OPTIONS", "any"));
        let unknown = request_cell(&Method::GET, None, StatusCode::IM_A_TEAPOT);
        assert_eq!(route_labels(unknown / STATUS_SLOTS), ("other", "unmatched"));
        assert_eq!(status_label(unknown % STATUS_SLOTS), "other");
        let wrong_method = request_cell(
            &Method::PUT,
            Some("/broadcast"),
            StatusCode::METHOD_NOT_ALLOWED,
        );
        assert_eq!(
            route_labels(wrong_method / STATUS_SLOTS),
            ("other", "unmatched")
        );
        assert!(unknown < REQUEST_CELLS);
    }

    #[test]
    fn the_exposition_names_every_family() {
        let container = ChannelContainer::new();
        container.add_with_id("a").unwrap().add_listener();
        container
            .metrics()
            .request(request_cell(&Method::GET, Some("/"), StatusCode::OK));
        let text = encode(&container, true);
        for needle in [
            "eric_channels 1",
            "eric_listeners 1",
            "eric_subscribers{transport=\"http\"} 0",
            "eric_messages_published_total{kind=\"broadcast\"} 0",
            "eric_deliveries_total{transport=\"socket\"} 0",
            "eric_dropped_total{reason=\"rejected\"} 0",
            "eric_dropped_total{reason=\"oldest\"} 0",
            "eric_dropped_total{reason=\"too_slow\"} 0",
            "eric_disconnects_total{reason=\"token_expired\"} 0",
            "eric_resumes_total{result=\"marker\"} 0",
            "eric_publish_duration_seconds_bucket{le=\"+Inf\"} 0",
            "eric_http_requests_total{method=\"GET\",route=\"/\",status=\"200\"} 1",
            "eric_ready 1",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
    }
}
