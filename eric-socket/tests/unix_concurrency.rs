//! Many clients at once: broadcasts are neither lost nor duplicated, each client's
//! messages keep their order, and concurrent creations get distinct ids.

mod common;

use common::{bounded, eventually, RawStream, TestServer};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use tokio::task::JoinSet;

const CLIENTS: u64 = 50;
const BROADCASTS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_broadcasting_twenty_times_reach_a_watcher_exactly_once() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut watcher = RawStream::watch(&server.path, &channel).await;
    eventually("the watcher is registered", || {
        server.listeners_of(&channel) == 1
    })
    .await;

    let mut clients = JoinSet::new();
    for client_no in 0..CLIENTS {
        let client = server.client();
        let channel = channel.clone();
        clients.spawn(async move {
            for seq in 0..BROADCASTS {
                client
                    .broadcast(&channel, "tick", json!({"client": client_no, "seq": seq}))
                    .await
                    .expect("the broadcast is acknowledged");
            }
        });
    }

    let mut seen = HashSet::new();
    let mut last_seq = vec![None; CLIENTS as usize];
    for _ in 0..CLIENTS * BROADCASTS {
        let line = watcher.line().await;
        let event: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(event["event"], "tick");
        assert_eq!(event["retry"], 5);
        let client_no = event["data"]["client"].as_u64().unwrap();
        let seq = event["data"]["seq"].as_u64().unwrap();
        assert!(seen.insert((client_no, seq)), "duplicate: {line}");
        // A client waits for each ack before the next broadcast: its messages are
        // queued, so delivered, in order.
        let last = &mut last_seq[client_no as usize];
        if let Some(last) = *last {
            assert!(last < seq, "out of order: {line}");
        }
        *last = Some(seq);
    }
    assert_eq!(seen.len(), (CLIENTS * BROADCASTS) as usize);
    bounded("every client finishes", async {
        while let Some(done) = clients.join_next().await {
            done.unwrap();
        }
    })
    .await;
    watcher.assert_silent_for(Duration::from_millis(200)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_get_distinct_ids() {
    let server = TestServer::start().await;
    let mut creators = JoinSet::new();
    for _ in 0..50 {
        let client = server.client();
        creators.spawn(async move { client.create_channel().await.unwrap() });
    }
    let mut channels = HashSet::new();
    while let Some(id) = bounded("a creation", creators.join_next()).await {
        assert!(channels.insert(id.unwrap()));
    }
    assert_eq!(channels.len(), 50);
    assert_eq!(server.container.len(), 50);

    let channel = channels.into_iter().next().unwrap();
    let mut registrations = JoinSet::new();
    for _ in 0..50 {
        let client = server.client();
        let channel = channel.clone();
        registrations.spawn(async move { client.register(&channel).await.unwrap() });
    }
    let mut listeners = HashSet::new();
    while let Some(id) = bounded("a registration", registrations.join_next()).await {
        assert!(listeners.insert(id.unwrap()));
    }
    assert_eq!(server.listeners_of(&channel), 50);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_each_get_every_broadcast() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut watchers = Vec::new();
    for _ in 0..20 {
        watchers.push(RawStream::watch(&server.path, &channel).await);
    }
    eventually("the watchers are registered", || {
        server.listeners_of(&channel) == 20
    })
    .await;
    let client = server.client();
    for n in 0..50 {
        client.broadcast(&channel, "n", json!(n)).await.unwrap();
    }
    for watcher in &mut watchers {
        for n in 0..50 {
            assert_eq!(watcher.line().await, common::line("n", &n.to_string()));
        }
    }
    drop(watchers);
    eventually("the watchers' listeners are removed", || {
        server.listeners_of(&channel) == 0
    })
    .await;
    server.shutdown().await;
}
