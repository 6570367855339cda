//! Full, lossy and overloaded servers: a `drop-oldest` queue's discards show in the
//! stream as a gap marker (over HTTP and the socket) and in the container's counters; a
//! stream that falls more than its byte bound behind is ended with a `too_slow` event
//! and resumes from the log; a server whose queues hold their byte budget refuses
//! publishes (HTTP 503, a socket error) instead of growing without end.
#![cfg(feature = "http")]

mod http_support;

use eric_core::{message_size, Message, OverflowPolicy, QueueConfig, Retention};
use eric_socket::{ChannelContainer, ChannelSettings, LossTotals};
use http::{Method, StatusCode};
use http_support::{data, eventually, ids, RawStream, SseClient, TestServer};
use serde_json::{json, Value};
use std::sync::Arc;

const KIB: usize = 1024;

async fn start(settings: ChannelSettings) -> TestServer {
    let server =
        TestServer::start_on(Arc::new(ChannelContainer::with_settings(settings)), |_| {}).await;
    server
        .request(Method::PUT, "/create?channel_id=c")
        .await
        .assert_ok();
    server
}

fn drop_oldest(capacity: usize) -> ChannelSettings {
    ChannelSettings {
        queue: QueueConfig::bounded(capacity, OverflowPolicy::DropOldest),
        ..ChannelSettings::default()
    }
}

fn byte_bounds(max_lag_bytes: Option<usize>, max_queued_bytes: Option<usize>) -> ChannelSettings {
    ChannelSettings {
        queue: QueueConfig {
            max_bytes: max_lag_bytes,
            ..QueueConfig::unbounded()
        },
        max_queued_bytes,
        retention: Retention::entries(100_000),
        ..ChannelSettings::default()
    }
}

async fn broadcast_ticks(server: &TestServer, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        server.broadcast("c", "tick", json!({ "n": n })).await;
    }
}

fn ticks(range: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    range.map(|n| json!({ "n": n })).collect()
}

fn strings(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

fn kib_message(n: usize, kib: usize) -> Message {
    Message::new("tick", json!({"n": n, "pad": "x".repeat(kib * KIB)}))
}

fn kib_body(n: usize) -> String {
    let message = kib_message(n, 1);
    json!({"type": message.msg_type, "payload": message.payload}).to_string()
}

/// An event line of a socket stream.
fn line(event: &str, data_json: &str) -> String {
    format!("{{\"event\": \"{event}\", \"retry\": 5, \"data\": {data_json}}}\n")
}

#[tokio::test]
async fn drop_oldest_discards_show_in_the_http_stream_are_counted_and_resume_from_the_log() {
    let server = start(drop_oldest(2)).await;
    let listener = server.subscribe("c").await;
    let other = server.subscribe("c").await;
    // Offset 1 is another listener's; 2 to 6 are broadcast: 2, 3 and 4 are discarded
    // from both queues.
    server
        .request_with(
            Method::POST,
            &format!("/dispatch?channel_id=c&listener_id={other}"),
            r#"{"type": "tick", "payload": {"n": 1}}"#,
        )
        .await
        .assert_ok();
    broadcast_ticks(&server, 2..=6).await;
    assert_eq!(
        server.container.losses().totals(),
        LossTotals {
            dropped_oldest: 3 + 4,
            ..LossTotals::default()
        },
        "each queue keeps 5 and 6: this one lost 2, 3, 4; the other 1, 2, 3, 4"
    );
    let path = format!("/stream/c/{listener}");
    let mut first = server.stream(&path).await;
    let gap = first.next_event().await;
    assert_eq!(gap.event, "_eric_error");
    assert_eq!(
        gap.json::<Value>().unwrap(),
        json!({"error": "history_gap", "last_event_id": server.position("c", 1),
               "first_available": server.position("c", 5), "reason": "dropped", "dropped": 3})
    );
    assert_eq!(gap.last_event_id, server.position("c", 1));
    assert_eq!(ids(&first.next_events(2).await), strings(5..=6));

    // Reconnecting from the marker: the log still holds what the queue discarded.
    let mut resumed = SseClient::resume(server.addr, &path, &gap.last_event_id).await;
    assert_eq!(data(&resumed.next_events(5).await), ticks(2..=6));
}

#[tokio::test]
async fn a_drop_oldest_gap_is_an_error_event_line_before_the_next_message_on_the_socket() {
    let server = start(drop_oldest(1)).await;
    let listener = server.subscribe("c").await;
    for n in 1..=3 {
        let command = format!(r#"{{"v": "d", "c": "c", "r": "{listener}", "t": "q", "p": {n}}}"#);
        assert_eq!(server.send_command(&command).await, "ack");
    }
    assert_eq!(server.container.losses().totals().dropped_oldest, 2);
    let mut stream = RawStream::listen(&server.path, "c", &listener).await;
    let marker: Value = serde_json::from_str(&stream.line().await).unwrap();
    let epoch = server.container.get("c").unwrap().epoch();
    assert_eq!(
        marker,
        json!({"event": "_eric_error", "retry": 5, "data": {
            "error": "history_gap", "last_event_id": format!("{epoch}-0"),
            "first_available": format!("{epoch}-3"), "reason": "dropped", "dropped": 2}})
    );
    assert_eq!(stream.line().await, line("q", "3"));
}

#[tokio::test]
async fn a_watch_that_never_reads_is_ended_as_too_slow_and_resumes_from_the_log() {
    const MAX_LAG: usize = 64 * KIB;
    // 16 MiB in all: far more than the connection's socket buffers take.
    const MESSAGES: usize = 2_000;
    let server = start(byte_bounds(Some(MAX_LAG), Some(usize::MAX))).await;
    let channel = server.container.get("c").unwrap();
    // A watcher that reads its first event, then nothing for a while: what is queued
    // for it is bounded by MAX_LAG, not by what is published.
    let mut watcher = SseClient::open(server.addr, "/watch/c", &[]).await;
    eventually("the watcher is subscribed", || {
        server.listeners_of("c") == 1
    })
    .await;
    channel.broadcast(kib_message(1, 8));
    let first = watcher.next_event().await;
    assert_eq!(first.last_event_id, server.position("c", 1));
    let mut peak = 0;
    for n in 2..=MESSAGES {
        channel.broadcast(kib_message(n, 8));
        peak = peak.max(server.container.queued_bytes());
    }
    let size = message_size(&kib_message(MESSAGES, 8));
    assert!(
        peak <= MAX_LAG + 64 * KIB + size,
        "the queued bytes stay within the bound (and what a reader took but did not give back yet): {peak}"
    );
    let totals = server.container.losses().totals();
    assert_eq!(totals.slow_disconnects, 1, "{totals:?}");
    assert!(
        totals.dropped_too_slow >= (MESSAGES - 1 - MAX_LAG / size) as u64,
        "{totals:?}"
    );
    // The watcher reads on: what the socket buffers held, then the marker, then the end.
    let rest = watcher.rest().await;
    let marker = rest.last().expect("the too_slow event");
    assert_eq!(marker.event, "_eric_error");
    let payload = marker.json::<Value>().unwrap();
    assert_eq!(payload["error"], "too_slow");
    assert_eq!(payload["max_lag_bytes"], MAX_LAG);
    let seen = rest.len() as u64; // the first event, and all of `rest` but the marker
    assert_eq!(payload["last_event_id"], server.position("c", seen));
    assert_eq!(marker.last_event_id, server.position("c", seen));
    assert!(seen < MESSAGES as u64, "{seen}");
    eventually("the watch listener is gone", || {
        server.listeners_of("c") == 0
    })
    .await;

    // It reconnects with the marker's id: every event it missed comes from the log.
    let mut resumed = SseClient::resume(server.addr, "/watch/c", &marker.last_event_id).await;
    let missed = resumed.next_events(MESSAGES - seen as usize).await;
    let expected: Vec<String> = (seen + 1..=MESSAGES as u64)
        .map(|offset| server.position("c", offset))
        .collect();
    let got: Vec<String> = missed.iter().map(|e| e.last_event_id.clone()).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_full_budget_refuses_publishes_over_http_and_the_socket_until_readers_catch_up() {
    let budget = 8 * KIB;
    let server = start(byte_bounds(None, Some(budget))).await;
    let listener = server.subscribe("c").await;
    let mut accepted = 0;
    loop {
        let reply = server
            .request_with(Method::POST, "/broadcast?channel_id=c", &kib_body(accepted))
            .await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            reply.assert_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &["queues are full", "budget"],
            );
            break;
        }
        reply.assert_ok();
        accepted += 1;
        assert!(accepted < 100, "the budget refuses, at last");
    }
    assert_eq!(
        accepted,
        budget.div_ceil(message_size(&kib_message(0, 1))),
        "accepted while the queues held less than the budget"
    );
    let reply = server
        .request_with(
            Method::POST,
            &format!("/dispatch?channel_id=c&listener_id={listener}"),
            &kib_body(0),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let answer = server
        .send_command(r#"{"v": "b", "c": "c", "t": "t", "p": 1}"#)
        .await;
    assert!(
        answer.starts_with("QueueFullException(") && answer.contains("queues are full"),
        "{answer}"
    );
    assert_eq!(server.container.losses().totals().overloaded, 3);

    // The reader takes what was queued: publishes are accepted again.
    let mut stream = server.stream(&format!("/stream/c/{listener}")).await;
    stream.next_events(accepted).await;
    eventually("the queue's bytes are given back", || {
        server.container.queued_bytes() == 0
    })
    .await;
    server
        .request_with(Method::POST, "/broadcast?channel_id=c", &kib_body(0))
        .await
        .assert_ok();
    assert_eq!(
        server
            .send_command(r#"{"v": "b", "c": "c", "t": "t", "p": 1}"#)
            .await,
        "ack"
    );
}
