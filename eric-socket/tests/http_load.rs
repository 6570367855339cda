//! Many streams come and go, and the server returns to idle: no listener, no task and no
//! stream slot is left behind. (The 10,000-stream figure belongs to the bench.)
#![cfg(feature = "http")]

mod http_support;

use http::StatusCode;
use http_support::{bounded, raw_request, TestServer, WAIT};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const STREAMS: usize = 2_000;

/// Opens `n` `/watch/c` streams over raw TCP, 100 connections at a time.
async fn open_watchers(server: &TestServer, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    let mut pending = JoinSet::new();
    for i in 0..n {
        let addr = server.addr;
        pending.spawn(async move {
            let (tcp, head) =
                raw_request(addr, b"GET /watch/c HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
            assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
            tcp
        });
        if pending.len() == 100 || i + 1 == n {
            while let Some(tcp) = pending.join_next().await {
                open.push(tcp.expect("the watcher opened"));
            }
        }
    }
    open
}

/// Reads from `tcp` until `needle` shows up.
async fn read_until(tcp: &mut TcpStream, needle: &[u8]) {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let n = tcp.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the stream closed early");
        seen.extend_from_slice(&chunk[..n]);
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn settle(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT * 2;
    while !condition() {
        assert!(Instant::now() < deadline, "still not true: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_streams_that_disconnect_leave_no_listener_task_or_slot_behind() {
    let server = TestServer::start_with(|config| config.max_streams = STREAMS).await;
    server.container.add_with_id("c").unwrap();
    // Both servers are up, their tasks spawned, once each has answered a request.
    server.client().create_channel().await.unwrap();
    server
        .request(http::Method::GET, "/channels")
        .await
        .assert_ok();
    let idle_tasks = alive_tasks();

    for round in 0..2 {
        let started = Instant::now();
        let mut watchers = open_watchers(&server, STREAMS).await;
        assert_eq!(server.container.listener_count(), STREAMS);
        // The limit holds: one more stream is refused.
        let refused = server.request(http::Method::GET, "/watch/c").await;
        refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, &["too many open streams"]);

        // Every stream gets a broadcast.
        server
            .broadcast("c", "ping", serde_json::json!({ "round": round }))
            .await;
        let needle = format!("data: {{\"round\":{round}}}");
        bounded("every watcher gets the broadcast", async {
            for tcp in &mut watchers {
                read_until(tcp, needle.as_bytes()).await;
            }
        })
        .await;
        eprintln!(
            "round {round}: {STREAMS} streams opened and served in {:?}; {} tasks alive",
            started.elapsed(),
            alive_tasks()
        );

        drop(watchers);
        settle("every watch listener is removed", || {
            server.container.listener_count() == 0
        })
        .await;
        settle("the connection tasks are gone", || {
            alive_tasks() <= idle_tasks
        })
        .await;
        eprintln!(
            "round {round}: back to idle {:?} after the clients left",
            started.elapsed()
        );
    }

    // Every stream slot is free again: the full count opens once more.
    let watchers = open_watchers(&server, STREAMS).await;
    assert_eq!(server.container.listener_count(), STREAMS);
    drop(watchers);
    settle("every watch listener is removed", || {
        server.container.listener_count() == 0
    })
    .await;
    server.shutdown().await;
}
