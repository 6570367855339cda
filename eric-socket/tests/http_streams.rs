//! The HTTP event streams: headers and wire format, resume, one stream per listener,
//! clients that leave or vanish, limits, and shutdown.
#![cfg(feature = "http")]

mod http_support;

use eric_core::Retention;
use eric_socket::{ChannelContainer, ChannelSettings};
use http::{Method, StatusCode};
use http_support::{
    bounded, data, eventually, ids, raw_request, read_head, read_to_close, read_until, with_prefix,
    SseClient, TestServer,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A channel `c` with one subscribed listener; the listener's id.
async fn channel_with_listener(server: &TestServer) -> String {
    server
        .request(Method::PUT, "/create?channel_id=c")
        .await
        .assert_ok();
    server.subscribe("c").await
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

#[tokio::test]
async fn a_stream_has_the_event_stream_headers_a_retry_floor_and_json_events_with_ids() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    server
        .broadcast("c", "price", json!({"eur": 12.5, "note": "çà 🚀\nline"}))
        .await;
    let mut client = server.stream(&format!("/stream/c/{listener}")).await;
    assert_eq!(client.status, StatusCode::OK);
    assert_eq!(client.headers["content-type"], "text/event-stream");
    assert_eq!(client.headers["cache-control"], "no-cache");
    assert_eq!(client.headers["x-accel-buffering"], "no");

    let event = client.next_event().await;
    assert_eq!(event.event, "price");
    assert_eq!(event.last_event_id, server.position("c", 1));
    assert_eq!(
        event.json::<Value>().unwrap(),
        json!({"eur": 12.5, "note": "çà 🚀\nline"})
    );
    // The channel's 5 ms (the reference's default) is raised to the 1 s floor.
    assert_eq!(client.retry(), Some(1_000));
}

#[tokio::test]
async fn the_retry_floor_is_configurable() {
    let server =
        TestServer::start_with(|config| config.sse = config.sse.clone().with_retry_floor_ms(2_500))
            .await;
    let listener = channel_with_listener(&server).await;
    server.broadcast("c", "t", json!(1)).await;
    let mut client = server.stream(&format!("/stream/c/{listener}")).await;
    client.next_event().await;
    assert_eq!(client.retry(), Some(2_500));
}

#[tokio::test]
async fn streaming_starts_the_listener_and_delivers_what_was_queued_since_subscribe() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    broadcast_ticks(&server, 1..=3).await;
    let sse = server.container.get("c").unwrap();
    assert!(!server
        .container
        .listener(&sse, &listener)
        .unwrap()
        .is_running());

    let mut client = server.stream(&format!("/stream/c/{listener}")).await;
    let events = client.next_events(3).await;
    assert_eq!(data(&events), ticks(1..=3));
    assert_eq!(ids(&events), strings(1..=3));
    assert!(sse.get_listener(&listener).unwrap().is_running());

    // And what comes next, as it comes.
    server.broadcast("c", "tick", json!({"n": 4})).await;
    assert_eq!(
        client.next_event().await.json::<Value>().unwrap(),
        json!({"n": 4})
    );
}

#[tokio::test]
async fn a_broadcast_sent_as_soon_as_the_watch_head_arrives_is_not_lost() {
    let server = TestServer::start().await;
    server.container.add_with_id("c").unwrap();
    for round in 0..20 {
        let mut client = server.stream("/watch/c").await;
        // The head is here: the listener must exist already.
        server.broadcast("c", "round", json!(round)).await;
        let event = client.next_event().await;
        assert_eq!(event.json::<Value>().unwrap(), json!(round));
        assert_eq!(event.last_event_id, server.position("c", round + 1));
    }
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let server = TestServer::start_with(|config| {
        config.sse = config
            .sse
            .clone()
            .with_keep_alive(Some(Duration::from_millis(100)));
    })
    .await;
    server.container.add_with_id("c").unwrap();
    let mut client = server.stream("/watch/c").await;
    for _ in 0..3 {
        match client.next_item().await {
            Some(eric_sse::Item::Comment(text)) => assert_eq!(text, "keep-alive"),
            other => panic!("expected a keep-alive comment, got {other:?}"),
        }
    }
    // The retry came first, as soon as the stream opened.
    assert_eq!(client.retry(), Some(1_000));
}

#[tokio::test]
async fn resume_with_last_event_id_replays_exactly_the_missed_events() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    broadcast_ticks(&server, 1..=8).await;

    let mut first = server.stream(&path).await;
    let seen = first.next_events(5).await;
    assert_eq!(ids(&seen), strings(1..=5));
    // The connection goes; the server may well have sent 6 to 8 already.
    drop(first);
    broadcast_ticks(&server, 9..=12).await;

    let mut resumed = SseClient::resume(server.addr, &path, &server.position("c", 5)).await;
    let missed = resumed.next_events(7).await;
    assert_eq!(ids(&missed), strings(6..=12));
    assert_eq!(data(&missed), ticks(6..=12));
    assert!(
        resumed.quiet_for(Duration::from_millis(300)).await,
        "no duplicate after the missed events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_while_the_old_connection_still_hangs_gets_exactly_the_missed_events() {
    // A browser whose connection died silently reconnects while the server still
    // streams to the dead one: the new stream takes over, and the old one takes
    // nothing more from the queue once the new one has read the history.
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    for round in 0..10u64 {
        let base = round * 10;
        let mut old = server.stream(&path).await;
        broadcast_ticks(&server, base + 1..=base + 6).await;
        let seen = old.next_events(3).await;
        assert_eq!(ids(&seen), strings(base + 1..=base + 3));
        // `old` stays open, unread, while the client resumes and more is broadcast.
        let mut resumed =
            SseClient::resume(server.addr, &path, &server.position("c", base + 3)).await;
        broadcast_ticks(&server, base + 7..=base + 10).await;
        let missed = resumed.next_events(7).await;
        assert_eq!(ids(&missed), strings(base + 4..=base + 10), "round {round}");
        assert_eq!(data(&missed), ticks(base + 4..=base + 10));
        assert!(resumed.quiet_for(Duration::from_millis(50)).await);
        drop(old);
    }
}

#[tokio::test]
async fn resume_from_the_last_id_seen_replays_nothing_and_goes_on() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    broadcast_ticks(&server, 1..=3).await;
    let mut first = server.stream(&path).await;
    first.next_events(3).await;
    drop(first);

    let mut resumed = SseClient::resume(server.addr, &path, &server.position("c", 3)).await;
    assert!(resumed.quiet_for(Duration::from_millis(200)).await);
    broadcast_ticks(&server, 4..=4).await;
    let event = resumed.next_event().await;
    assert_eq!(event.last_event_id, server.position("c", 4));
}

#[tokio::test]
async fn a_last_event_id_that_is_not_a_position_gets_a_marker_then_the_queue() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    broadcast_ticks(&server, 1..=2).await;
    let mut first = server.stream(&path).await;
    first.next_events(2).await;
    drop(first);
    broadcast_ticks(&server, 3..=3).await;

    let mut client = SseClient::resume(server.addr, &path, "latest").await;
    assert_eq!(client.status, StatusCode::OK);
    let marker = client.next_event().await;
    assert_eq!(marker.event, "_eric_error");
    assert_eq!(
        marker.json::<Value>().unwrap(),
        json!({"error": "history_gap", "last_event_id": "latest",
               "first_available": server.position("c", 1), "reason": "invalid"})
    );
    // No replay: the queue only.
    assert_eq!(ids(&client.next_events(1).await), strings(3..=3));
    assert!(client.quiet_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn a_resume_older_than_the_history_starts_with_a_gap_marker() {
    let settings = ChannelSettings {
        retention: Retention::entries(2),
        ..ChannelSettings::default()
    };
    let server =
        TestServer::start_on(Arc::new(ChannelContainer::with_settings(settings)), |_| {}).await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    broadcast_ticks(&server, 1..=6).await;
    let mut first = server.stream(&path).await;
    first.next_events(6).await;
    drop(first);

    let mut resumed = SseClient::resume(server.addr, &path, &server.position("c", 1)).await;
    let gap = resumed.next_event().await;
    assert_eq!(gap.event, "_eric_error");
    assert_eq!(
        gap.json::<Value>().unwrap(),
        json!({"error": "history_gap", "last_event_id": server.position("c", 1),
               "first_available": server.position("c", 5), "reason": "trimmed"})
    );
    assert_eq!(
        gap.last_event_id,
        server.position("c", 4),
        "the marker repositions"
    );
    assert_eq!(ids(&resumed.next_events(2).await), strings(5..=6));
}

#[tokio::test]
async fn a_new_stream_of_a_listener_ends_the_older_one() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    let mut old = server.stream(&path).await;
    broadcast_ticks(&server, 1..=1).await;
    old.next_event().await;

    let mut new = server.stream(&path).await;
    assert_eq!(
        old.rest().await,
        vec![],
        "the old stream ends without more events"
    );
    broadcast_ticks(&server, 2..=3).await;
    assert_eq!(data(&new.next_events(2).await), ticks(2..=3));
    assert_eq!(server.container.listener_count(), 1);
}

#[tokio::test]
async fn deleting_the_listener_ends_its_stream_with_the_closed_event() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    let mut client = server.stream(&path).await;
    server
        .request(Method::DELETE, &format!("/listener/c/{listener}"))
        .await
        .assert_ok();
    let rest = client.rest().await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event, "_eric_channel_closed");
    assert_eq!(rest[0].data, "null");
    // A browser that reconnects is told the listener is gone, and stops.
    let again = server.request(Method::GET, &path).await;
    again.assert_error(StatusCode::NOT_FOUND, &["no listener"]);
}

#[tokio::test]
async fn deleting_the_channel_ends_its_watch_streams() {
    let server = TestServer::start().await;
    server.container.add_with_id("c").unwrap();
    let mut a = server.stream("/watch/c").await;
    let mut b = server.stream("/watch/c").await;
    eventually("both watchers registered", || {
        server.container.listener_count() == 2
    })
    .await;
    server
        .request(Method::DELETE, "/channel/c")
        .await
        .assert_ok();
    for client in [&mut a, &mut b] {
        let rest = client.rest().await;
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].event, "_eric_channel_closed");
    }
}

#[tokio::test]
async fn the_closed_message_ends_a_stream_but_keeps_its_listener_for_the_next_one() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    let mut client = server.stream(&path).await;
    broadcast_ticks(&server, 1..=1).await;
    server
        .broadcast("c", "_eric_channel_closed", Value::Null)
        .await;
    broadcast_ticks(&server, 3..=3).await;
    let rest = client.rest().await;
    assert_eq!(
        rest.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["tick", "_eric_channel_closed"]
    );
    assert_eq!(ids(&rest), strings(1..=2));

    let mut again = SseClient::resume(server.addr, &path, &server.position("c", 2)).await;
    let event = again.next_event().await;
    assert_eq!(event.last_event_id, server.position("c", 3));
    assert_eq!(event.json::<Value>().unwrap(), json!({"n": 3}));
}

#[tokio::test]
async fn a_watch_listener_is_removed_when_its_client_closes_the_connection() {
    let server = TestServer::start().await;
    server.container.add_with_id("c").unwrap();
    let client = server.stream("/watch/c").await;
    assert_eq!(server.container.listener_count(), 1);
    drop(client);
    eventually("the watch listener is removed", || {
        server.container.listener_count() == 0
    })
    .await;
}

#[tokio::test]
async fn a_stream_listener_stays_registered_and_queueing_when_its_client_leaves() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let path = format!("/stream/c/{listener}");
    let idle_tasks = alive_tasks();
    let client = server.stream(&path).await;
    drop(client);
    // The server noticed: the connection's task is gone (and the stream with it).
    eventually("the connection task ends", || alive_tasks() <= idle_tasks).await;
    broadcast_ticks(&server, 1..=2).await;
    let sse = server.container.get("c").unwrap();
    assert_eq!(sse.get_listener(&listener).unwrap().queue_len(), 2);

    let mut again = server.stream(&path).await;
    assert_eq!(data(&again.next_events(2).await), ticks(1..=2));
}

/// A `/watch` request served by hyper (the connection answered a request before), then,
/// in the same write, a second pipelined request: hyper keeps those bytes unread while
/// the stream runs, so it cannot see the client's end by reading. Only writing can tell
/// that the client is gone.
async fn watch_with_pipelined_request(server: &TestServer) -> tokio::net::TcpStream {
    let (mut tcp, head) = raw_request(
        server.addr,
        b"GET /channels HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await;
    assert!(head.contains("content-length: 5\r\n"), "{head}");
    let mut body = [0u8; 5];
    tcp.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, br#"["c"]"#);
    tcp.write_all(&with_prefix(
        b"GET /watch/c HTTP/1.1\r\nhost: localhost\r\n\r\nGET /channels HTTP/1.1\r\nhost: localhost\r\n\r\n",
    ))
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    tcp
}

#[tokio::test]
async fn a_client_that_closes_behind_a_pipelined_request_is_noticed_at_once() {
    // The first request of a connection: its stream reads what the client sends
    // behind it, so the end of the connection is seen without any write: the direct
    // path of eric's own listener.
    let server = TestServer::start_listener_with(|config| {
        config.sse = config.sse.clone().with_keep_alive(None);
    })
    .await;
    server.container.add_with_id("c").unwrap();
    let (tcp, head) = raw_request(
        server.addr,
        b"GET /watch/c HTTP/1.1\r\nhost: localhost\r\n\r\nGET /channels HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(server.container.listener_count(), 1);
    drop(tcp);
    eventually("the watcher is removed", || {
        server.container.listener_count() == 0
    })
    .await;
}

#[tokio::test]
async fn a_second_stream_on_the_same_connection_follows_the_first() {
    // As an EventSource reconnecting on its kept-alive connection does.
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let request = format!(
        "GET /stream/c/{listener} HTTP/1.1\r\nhost: localhost\r\n\r\nGET /watch/c HTTP/1.1\r\nhost: localhost\r\n\r\n"
    );
    let (mut tcp, head) = raw_request(server.addr, request.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    server
        .request(Method::DELETE, &format!("/listener/c/{listener}"))
        .await
        .assert_ok();
    // The first stream ends, and the watch opens on the same connection.
    eventually("the watch is registered", || {
        server.container.listener_count() == 1
    })
    .await;
    broadcast_ticks(&server, 7..=7).await;
    let seen = read_until(&mut tcp, r#"data: {"n":7}"#).await;
    let (first, second) = seen
        .split_once("\r\n0\r\n\r\n")
        .expect("the first stream's end");
    assert!(first.contains("event: _eric_channel_closed"), "{first}");
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");
    assert!(second.contains("event: tick"), "{second}");
    drop(tcp);
    eventually("the watch goes with its connection", || {
        server.container.listener_count() == 0
    })
    .await;
}

#[tokio::test]
async fn a_request_pipelined_behind_a_stream_is_answered_when_the_stream_ends() {
    let server = TestServer::start().await;
    let listener = channel_with_listener(&server).await;
    let request = format!(
        "GET /stream/c/{listener} HTTP/1.1\r\nhost: localhost\r\n\r\nGET /channels HTTP/1.1\r\nhost: localhost\r\n\r\n"
    );
    let (mut tcp, head) = raw_request(server.addr, request.as_bytes()).await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for needle in [
        "content-type: text/event-stream\r\n",
        "cache-control: no-cache\r\n",
        "transfer-encoding: chunked\r\n",
        "date: ",
    ] {
        assert!(head.contains(needle), "{needle:?} in {head}");
    }
    broadcast_ticks(&server, 1..=2).await;
    server
        .request(Method::DELETE, &format!("/listener/c/{listener}"))
        .await
        .assert_ok();
    // The stream ends with its last chunk; the same connection then answers the
    // pipelined request. `Connection: close` on it would end the connection after.
    let seen = read_until(&mut tcp, r#"["c"]"#).await;
    let (stream, answer) = seen.split_once("\r\n0\r\n\r\n").expect("the last chunk");
    assert!(stream.contains("event: tick"), "{stream}");
    assert!(stream.contains("event: _eric_channel_closed"), "{stream}");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[tokio::test]
async fn a_vanished_client_is_noticed_at_the_next_keep_alive() {
    let server = TestServer::start_with(|config| {
        config.sse = config
            .sse
            .clone()
            .with_keep_alive(Some(Duration::from_millis(100)));
    })
    .await;
    server.container.add_with_id("c").unwrap();
    let tcp = watch_with_pipelined_request(&server).await;
    assert_eq!(server.container.listener_count(), 1);
    tcp.set_zero_linger().unwrap();
    drop(tcp); // a reset, no goodbye
    eventually("the vanished watcher is removed", || {
        server.container.listener_count() == 0
    })
    .await;
}

#[tokio::test]
async fn a_vanished_client_is_noticed_at_the_next_event() {
    let server = TestServer::start_with(|config| {
        config.sse = config.sse.clone().with_keep_alive(None);
    })
    .await;
    server.container.add_with_id("c").unwrap();
    let tcp = watch_with_pipelined_request(&server).await;
    drop(tcp); // a plain close: the first write after it meets a reset, the next one fails
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.container.listener_count(),
        1,
        "nothing tells the server yet"
    );
    let sse = server.container.get("c").unwrap();
    bounded("the next events reveal the vanished client", async {
        while sse.listener_count() > 0 {
            sse.broadcast(eric_core::Message::new("probe", "x"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn streams_over_the_limit_are_503_until_one_closes() {
    let server = TestServer::start_with(|config| config.max_streams = 2).await;
    server.container.add_with_id("c").unwrap();
    let a = server.stream("/watch/c").await;
    let _b = server.stream("/watch/c").await;
    let reply = server.request(Method::GET, "/watch/c").await;
    reply.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        &["too many open streams", "2"],
    );
    assert_eq!(
        server.container.listener_count(),
        2,
        "no listener for a refused stream"
    );
    let listener = server.subscribe("c").await;
    server
        .request(Method::GET, &format!("/stream/c/{listener}"))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, &["too many open streams"]);

    drop(a);
    bounded("a slot frees up", async {
        loop {
            let client = server.stream("/watch/c").await;
            if client.status == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_cleanly_without_waiting_for_the_grace_period() {
    // A grace far beyond the test's bounded wait: returning within it proves the
    // shutdown did not wait for the grace.
    let server = TestServer::start_with(|config| {
        config.shutdown_grace = Duration::from_secs(3600);
    })
    .await;
    let listener = channel_with_listener(&server).await;
    let mut stream = server.stream(&format!("/stream/c/{listener}")).await;
    let mut watch = server.stream("/watch/c").await;
    broadcast_ticks(&server, 1..=1).await;
    stream.next_event().await;
    watch.next_event().await;

    let stop = server.stop.clone();
    let shutting_down = tokio::spawn(server.shutdown());
    stop.shutdown();
    // Each client sees its response end: the body is finished, not cut.
    assert_eq!(stream.rest().await, vec![]);
    assert_eq!(watch.rest().await, vec![]);
    bounded("run returns", shutting_down).await.unwrap();
}

#[tokio::test]
async fn shutdown_cuts_a_request_still_in_flight_after_the_grace_period() {
    // The grace period is the listener's: a mounted API leaves it to the application.
    let server = TestServer::start_listener_with(|config| {
        config.shutdown_grace = Duration::from_millis(300);
        // Far beyond the test's bounded wait: only the grace can end the request.
        config.body_read_timeout = Duration::from_secs(3600);
    })
    .await;
    server.container.add_with_id("c").unwrap();
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"POST /broadcast?channel_id=c HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    bounded("shutdown returns after the grace", server.shutdown()).await;
    read_to_close(&mut tcp).await;
}

#[tokio::test]
async fn idle_keep_alive_connections_close_on_shutdown() {
    // An idle timeout far beyond the test's bounded wait: only the shutdown can close it.
    let server = TestServer::start_with(|config| {
        config.header_read_timeout = Duration::from_secs(3600);
    })
    .await;
    let (mut tcp, head) = raw_request(
        server.addr,
        b"GET /channels HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    bounded("shutdown returns", server.shutdown()).await;
    let rest = read_to_close(&mut tcp).await;
    assert_eq!(rest, b"[]");
}
