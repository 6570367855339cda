//! What the servers count, read back through `/metrics` (parsed here, and by Python's
//! prometheus_client parser in the ignored test), `/healthz`, `/readyz` and
//! `/monitor/events`, against traffic whose figures are known.
#![cfg(feature = "http")]

mod http_support;

use eric_core::{OverflowPolicy, QueueConfig};
use eric_socket::http::MetricsServer;
use eric_socket::{ChannelContainer, ChannelSettings};
use http::{Method, StatusCode};
use http_support::{bounded, eventually, SseClient, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The samples of an exposition: `name{labels}` to value, labels as written.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            (series.to_owned(), value.parse().expect("a numeric value"))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> BTreeMap<String, f64> {
    let reply = server.request(Method::GET, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    samples(std::str::from_utf8(&reply.body).unwrap())
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

/// `subscribers` HTTP watchers of one channel, each having read `broadcasts` events.
async fn known_traffic(
    server: &TestServer,
    subscribers: usize,
    broadcasts: usize,
) -> Vec<SseClient> {
    let channel = server.create().await;
    let mut streams = Vec::new();
    for _ in 0..subscribers {
        streams.push(server.stream(&format!("/watch/{channel}")).await);
    }
    for n in 0..broadcasts {
        server.broadcast(&channel, "tick", json!(n)).await;
    }
    for stream in &mut streams {
        assert_eq!(stream.next_events(broadcasts).await.len(), broadcasts);
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_subscribers_times_broadcasts() {
    let server = TestServer::start().await;
    let streams = known_traffic(&server, 5, 7).await;
    let metrics = scrape(&server).await;
    assert_eq!(
        value(&metrics, r#"eric_deliveries_total{transport="http"}"#),
        35.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"eric_messages_published_total{kind="broadcast"}"#
        ),
        7.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"eric_messages_published_total{kind="dispatch"}"#
        ),
        0.0
    );
    assert_eq!(
        value(&metrics, r#"eric_subscribers{transport="http"}"#),
        5.0
    );
    assert_eq!(value(&metrics, "eric_channels"), 1.0);
    assert_eq!(value(&metrics, "eric_listeners"), 5.0);
    assert_eq!(value(&metrics, "eric_publish_duration_seconds_count"), 7.0);
    assert_eq!(
        value(
            &metrics,
            r#"eric_publish_duration_seconds_bucket{le="+Inf"}"#
        ),
        7.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"eric_http_requests_total{method="POST",route="/broadcast",status="200"}"#
        ),
        7.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"eric_http_requests_total{method="PUT",route="/create",status="200"}"#
        ),
        1.0
    );
    // A connection per request, and one per open stream (the scrape's own among them).
    assert!(value(&metrics, r#"eric_connections{transport="http"}"#) >= 5.0);

    drop(streams);
    eventually("the streams are counted closed", || {
        server.container.metrics().totals().subscribers_http == 0
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_streams_and_publishes_are_counted_as_socket_traffic() {
    let server = TestServer::start().await;
    let client = server.client();
    let channel = client.create_channel().await.unwrap();
    let listener = client.register(&channel).await.unwrap();
    let mut events = client.listen(&channel, &listener).await.unwrap();
    let mut watcher = client.watch(&channel).await.unwrap();
    eventually("both socket streams are open", || {
        server.container.metrics().totals().subscribers_socket == 2
    })
    .await;
    for n in 0..3 {
        client.broadcast(&channel, "b", json!(n)).await.unwrap();
    }
    client
        .dispatch(&channel, &listener, "d", json!(null))
        .await
        .unwrap();
    for _ in 0..4 {
        events.next_event().await.unwrap().unwrap();
    }
    for _ in 0..3 {
        watcher.next_event().await.unwrap().unwrap();
    }
    // Counted once the write returned, which the client may beat.
    eventually("seven socket deliveries", || {
        server.container.metrics().totals().delivered_socket == 7
    })
    .await;
    let totals = server.container.metrics().totals();
    assert_eq!(totals.published_broadcast, 3);
    assert_eq!(totals.published_dispatch, 1);
    assert_eq!(totals.delivered_http, 0);
    assert!(totals.connections_socket >= 2);
    let metrics = scrape(&server).await;
    assert_eq!(
        value(&metrics, r#"eric_deliveries_total{transport="socket"}"#),
        7.0
    );
    assert_eq!(
        value(&metrics, r#"eric_subscribers{transport="socket"}"#),
        2.0
    );
    drop((events, watcher));
    eventually("the socket streams are counted closed", || {
        server.container.metrics().totals().subscribers_socket == 0
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queues_count_drops_and_overflow_disconnects() {
    let reject = Arc::new(ChannelContainer::with_settings(ChannelSettings {
        queue: QueueConfig::bounded(1, OverflowPolicy::Reject),
        ..ChannelSettings::default()
    }));
    let server = TestServer::start_on(reject, |_| {}).await;
    let channel = server.create().await;
    server.subscribe(&channel).await;
    server.subscribe(&channel).await;
    for n in 0..3 {
        server.broadcast(&channel, "t", json!(n)).await;
    }
    let metrics = scrape(&server).await;
    // Each queue took the first message and refused the other two.
    assert_eq!(
        value(&metrics, r#"eric_dropped_total{reason="rejected"}"#),
        4.0
    );
    assert_eq!(
        value(&metrics, r#"eric_disconnects_total{reason="overflow"}"#),
        0.0
    );
    server.shutdown().await;

    let disconnect = Arc::new(ChannelContainer::with_settings(ChannelSettings {
        queue: QueueConfig::bounded(1, OverflowPolicy::Disconnect),
        ..ChannelSettings::default()
    }));
    let server = TestServer::start_on(disconnect, |_| {}).await;
    let channel = server.create().await;
    let listener = server.subscribe(&channel).await;
    server.broadcast(&channel, "t", json!(1)).await;
    server.broadcast(&channel, "t", json!(2)).await;
    let reply = server
        .request_with(
            Method::POST,
            &format!("/dispatch?channel_id={channel}&listener_id={listener}"),
            r#"{"type": "t"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "the listener is gone");
    let metrics = scrape(&server).await;
    assert_eq!(
        value(&metrics, r#"eric_dropped_total{reason="disconnected"}"#),
        1.0
    );
    assert_eq!(
        value(&metrics, r#"eric_disconnects_total{reason="overflow"}"#),
        1.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"eric_http_requests_total{method="POST",route="/dispatch",status="404"}"#
        ),
        1.0
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_are_counted_by_whether_the_log_covered_them() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    server.broadcast(&channel, "t", json!(1)).await;
    let covered = server.position(&channel, 0);
    let mut replayed = SseClient::resume(server.addr, &format!("/watch/{channel}"), &covered).await;
    assert_eq!(replayed.next_event().await.event, "t");
    let mut gap =
        SseClient::resume(server.addr, &format!("/watch/{channel}"), "not-a-position").await;
    assert_eq!(gap.next_event().await.event, "_eric_error");
    let metrics = scrape(&server).await;
    assert_eq!(
        value(&metrics, r#"eric_resumes_total{result="replayed"}"#),
        1.0
    );
    assert_eq!(
        value(&metrics, r#"eric_resumes_total{result="marker"}"#),
        1.0
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_labels_stay_within_the_route_table_whatever_the_path() {
    let server = TestServer::start().await;
    for n in 0..20 {
        let reply = server.request(Method::GET, &format!("/no/such/{n}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let reply = server
            .request(Method::DELETE, &format!("/channel/gone-{n}"))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    let metrics = scrape(&server).await;
    assert_eq!(
        value(
            &metrics,
            r#"eric_http_requests_total{method="other",route="unmatched",status="404"}"#
        ),
        20.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"eric_http_requests_total{method="DELETE",route="/channel/{channel_id}",status="404"}"#
        ),
        20.0
    );
    let request_series = metrics
        .keys()
        .filter(|series| series.starts_with("eric_http_requests_total"))
        .count();
    assert_eq!(request_series, 2, "{metrics:#?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_while_serving() {
    let server = TestServer::start().await;
    let health = server.request(Method::GET, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"status": "serving"}));
    let ready = server.request(Method::GET, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json(), json!({"ready": true}));
    assert_eq!(value(&scrape(&server).await, "eric_ready"), 1.0);
    server.shutdown().await;
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = bounded("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    bounded("the answer", tcp.read_to_end(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_address_answers_503_while_the_servers_shut_down() {
    let server = TestServer::start().await;
    let metrics = MetricsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::clone(&server.container),
    )
    .await
    .unwrap()
    .ready_until(server.stop.clone());
    let addr = metrics.local_addr();
    let stop_metrics = metrics.shutdown_handle();
    let running = tokio::spawn(metrics.run());

    let (status, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("eric_ready 1\n"), "{body}");
    assert_eq!(
        get(addr, "/monitor").await.0,
        404,
        "not on the metrics address"
    );

    server.stop.shutdown();
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"ready": false, "message": "the server is shutting down"})
    );
    assert_eq!(
        get(addr, "/healthz").await.0,
        200,
        "the process still serves"
    );
    assert!(get(addr, "/metrics").await.1.contains("eric_ready 0\n"));
    server.shutdown().await;

    stop_metrics.shutdown();
    bounded("the metrics server stops", running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_ended_by_shutdown_count_as_shutdown_disconnects() {
    let server = TestServer::start().await;
    let streams = known_traffic(&server, 3, 1).await;
    let client = server.client();
    let channel = server.container.ids()[0].clone();
    let mut socket_stream = client.watch(&channel).await.unwrap();
    eventually("the socket stream is open", || {
        server.container.metrics().totals().subscribers_socket == 1
    })
    .await;
    let metrics = Arc::clone(server.container.metrics());
    server.shutdown().await;
    assert!(socket_stream.next_event().await.is_none());
    assert_eq!(metrics.totals().disconnects_shutdown, 4);
    assert_eq!(metrics.totals().subscribers(), 0);
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_stream_sends_snapshots_of_the_figures_without_counting_itself() {
    let server = TestServer::start().await;
    let _streams = known_traffic(&server, 2, 3).await;
    let mut monitor = server.stream("/monitor/events").await;
    assert_eq!(monitor.status, StatusCode::OK);
    let mut snapshot: Value;
    // The first snapshot may predate the traffic: read until one shows it.
    loop {
        let event = monitor.next_event().await;
        assert_eq!(event.event, "snapshot");
        snapshot = serde_json::from_str(&event.data).unwrap();
        if snapshot["totals"]["delivered_http"] == 6
            && !snapshot["channel_list"].as_array().unwrap().is_empty()
        {
            break;
        }
    }
    assert_eq!(snapshot["totals"]["subscribers_http"], 2, "{snapshot}");
    assert_eq!(snapshot["channels"], 1);
    assert_eq!(snapshot["ready"], true);
    assert_eq!(snapshot["channel_list"][0]["subscribers"], 2);
    assert_eq!(snapshot["channel_list"][0]["published"], 3);
    let parsed: eric_socket::metrics::Snapshot = serde_json::from_value(snapshot).unwrap();
    assert_eq!(parsed.totals.published(), 3);
    server.shutdown().await;
}

/// Python's prometheus_client (`$ERIC_PYTHON`, else `.venv/bin/python`, else `python3`).
fn python() -> std::path::PathBuf {
    if let Some(python) = std::env::var_os("ERIC_PYTHON") {
        return python.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python prometheus_client"]
async fn the_exposition_parses_with_the_prometheus_client_parser() {
    let server = TestServer::start().await;
    let _streams = known_traffic(&server, 4, 6).await;
    server.request(Method::GET, "/no/such/route").await;
    let reply = server.request(Method::GET, "/metrics").await;
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        out[f"{family.type} {sample.name}{{{labels}}}"] = sample.value
print(json.dumps(out))
"#;
    let mut child = tokio::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs: install prometheus_client, or set ERIC_PYTHON");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&reply.body).await.unwrap();
    }
    let output = bounded("the parser", child.wait_with_output())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the parser refused the exposition: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&reply.body)
    );
    let parsed: BTreeMap<String, f64> = serde_json::from_slice(&output.stdout).unwrap();
    let get = |key: &str| {
        *parsed
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {parsed:#?}"))
    };
    assert_eq!(get("counter eric_deliveries_total{transport=http}"), 24.0);
    assert_eq!(
        get("counter eric_messages_published_total{kind=broadcast}"),
        6.0
    );
    assert_eq!(get("gauge eric_subscribers{transport=http}"), 4.0);
    assert_eq!(get("gauge eric_channels{}"), 1.0);
    assert_eq!(get("gauge eric_listeners{}"), 4.0);
    assert_eq!(get("histogram eric_publish_duration_seconds_count{}"), 6.0);
    assert_eq!(
        get("histogram eric_publish_duration_seconds_bucket{le=+Inf}"),
        6.0
    );
    assert_eq!(
        get("counter eric_http_requests_total{method=other,route=unmatched,status=404}"),
        1.0
    );
    for reason in ["slow", "token_expired", "shutdown", "overflow"] {
        assert_eq!(
            get(&format!(
                "counter eric_disconnects_total{{reason={reason}}}"
            )),
            0.0
        );
    }
    server.shutdown().await;
}
