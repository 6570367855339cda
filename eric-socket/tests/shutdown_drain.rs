//! Shutdown loses nothing acknowledged: open streams write what they have queued
//! before they end, and messages published after shutdown was asked for are refused
//! rather than acknowledged and then lost.
#![cfg(feature = "http")]

mod http_support;

use http_support::{bounded, eventually, read_head, RawStream, TestServer};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Messages queued for each stream before shutdown: with their padding, far more than
/// the socket buffers hold, so most are still queued when shutdown comes.
const MESSAGES: u64 = 5_000;

/// A grace period no test outlives: the drain ends because the streams are written,
/// not because the grace ran out.
const LONG_GRACE: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_deliver_every_acknowledged_message_before_they_end() {
    let server = TestServer::start_both_with(
        |unix| unix.shutdown_grace = LONG_GRACE,
        |http| http.shutdown_grace = LONG_GRACE,
    )
    .await;
    let channel = server.channel().await;
    // Two readers, slow to start: neither reads until shutdown was asked for.
    let mut socket_reader = RawStream::watch(&server.path, &channel).await;
    let mut http_reader = server.stream(&format!("/watch/{channel}")).await;
    // The same on a connection that hyper serves (its first request is not a stream).
    let mut hyper_reader = TcpStream::connect(server.addr).await.unwrap();
    hyper_reader
        .write_all(
            format!(
                "OPTIONS / HTTP/1.1\r\nhost: localhost\r\n\r\n\
                 GET /watch/{channel} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    eventually("the three streams are registered", || {
        server.listeners_of(&channel) == 3
    })
    .await;
    let pad = "x".repeat(1024);
    let publisher = server.container.get(&channel).unwrap();
    for n in 0..MESSAGES - 2 {
        publisher.broadcast(eric_core::Message::new("tick", json!({"n": n, "pad": pad})));
    }
    // The last two through the transports, acknowledged.
    let answer = server
        .send_command(&format!(
            r#"{{"v": "b", "c": "{channel}", "t": "tick", "p": {{"n": {}}}}}"#,
            MESSAGES - 2
        ))
        .await;
    assert_eq!(answer, "ack");
    server
        .broadcast(&channel, "tick", json!({"n": MESSAGES - 1}))
        .await;

    // Commands that are in flight when shutdown comes: a socket connection that has
    // not sent its command yet, and an HTTP request whose body the server waits for.
    let mut late_command = UnixStream::connect(&server.path).await.unwrap();
    eventually("the command's connection is open", || {
        server.gauge.open() == 2
    })
    .await;
    let late_body = r#"{"type": "late", "payload": null}"#;
    let mut late_request = TcpStream::connect(server.addr).await.unwrap();
    late_request
        .write_all(
            format!(
                "POST /broadcast?channel_id={channel} HTTP/1.1\r\nhost: localhost\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\
                 expect: 100-continue\r\n\r\n",
                late_body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The server asks for the body: it is reading the request.
    let continued = read_head(&mut late_request).await;
    assert!(continued.starts_with("HTTP/1.1 100"), "{continued}");

    server.stop.shutdown();

    late_command
        .write_all(format!(r#"{{"v": "b", "c": "{channel}", "t": "late", "p": null}}"#).as_bytes())
        .await
        .unwrap();
    late_command.shutdown().await.unwrap();
    let mut refusal = String::new();
    bounded(
        "the late command's answer",
        late_command.read_to_string(&mut refusal),
    )
    .await
    .unwrap();
    assert!(
        refusal.starts_with("ServerShuttingDownException("),
        "{refusal}"
    );
    late_request.write_all(late_body.as_bytes()).await.unwrap();
    let head = read_head(&mut late_request).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let mut body = Vec::new();
    bounded("the 503's body", late_request.read_to_end(&mut body))
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("shutting down"), "{body}");

    // Now the readers start: every acknowledged message, in order, then the end.
    let mut socket_seen = Vec::new();
    while let Some(line) = socket_reader.next_line().await {
        let event: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(event["event"], "tick", "{line}");
        socket_seen.push(event["data"]["n"].as_u64().unwrap());
    }
    let http_seen: Vec<u64> = http_reader
        .rest()
        .await
        .iter()
        .map(|event| {
            assert_eq!(event.event, "tick");
            event.json::<Value>().unwrap()["n"].as_u64().unwrap()
        })
        .collect();
    let mut hyper_read = Vec::new();
    bounded(
        "the hyper stream ends",
        hyper_reader.read_to_end(&mut hyper_read),
    )
    .await
    .unwrap();
    let hyper_text = String::from_utf8_lossy(&hyper_read);
    assert_eq!(
        hyper_text.matches("event: tick\n").count() as u64,
        MESSAGES,
        "the reader of the connection hyper serves"
    );
    assert!(
        hyper_text.ends_with("0\r\n\r\n"),
        "the stream's body ends cleanly"
    );
    let expected: Vec<u64> = (0..MESSAGES).collect();
    assert_eq!(
        socket_seen.len() as u64,
        MESSAGES,
        "the socket reader's count"
    );
    assert_eq!(socket_seen, expected);
    assert_eq!(http_seen.len() as u64, MESSAGES, "the HTTP reader's count");
    assert_eq!(http_seen, expected);
    server.shutdown().await;
}
