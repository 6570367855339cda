//! The example `axum_embed`, driven as a user would: start it on a free port, create a
//! channel under `/eric/`, watch it, broadcast to it, receive the event, stop it. The
//! application's own route at `/` answers beside eric's.
#![cfg(feature = "tower")]

#[path = "../examples/axum_embed.rs"]
#[allow(dead_code)] // its `main` is the example's, not the test's
mod axum_embed;

use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

/// Reads from `tcp` until what was read contains `needle`; everything read.
async fn read_until(tcp: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {needle:?} within {WAIT:?}: {}",
            String::from_utf8_lossy(&seen)
        )
    });
    String::from_utf8(seen).unwrap()
}

/// One request on its own connection (closed after the answer); the whole answer.
async fn request(addr: std::net::SocketAddr, head: &str, body: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the answer in time")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

/// The JSON body of a whole answer.
fn json_body(answer: &str) -> Value {
    let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test]
async fn create_watch_broadcast_receive_and_stop_under_the_prefix() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = tokio::spawn(axum_embed::serve(listener, async {
        let _ = stopped.await;
    }));

    let page = request(addr, "GET /", "").await;
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
    assert!(page.contains("my application"), "{page}");

    let created = request(addr, "PUT /eric/create", "").await;
    assert!(created.starts_with("HTTP/1.1 200 "), "{created}");
    let channel = json_body(&created)["channel_id"]
        .as_str()
        .expect("a channel id")
        .to_owned();

    let mut watch = TcpStream::connect(addr).await.unwrap();
    watch
        .write_all(
            format!("GET /eric/watch/{channel} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let head = read_until(&mut watch, "retry:").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");

    let broadcast = request(
        addr,
        &format!("POST /eric/broadcast?channel_id={channel}"),
        r#"{"type": "greeting", "payload": {"hi": 1}}"#,
    )
    .await;
    assert!(broadcast.starts_with("HTTP/1.1 200 "), "{broadcast}");
    let event = read_until(&mut watch, r#"data: {"hi":1}"#).await;
    assert!(event.contains("event: greeting\n"), "{event}");

    stop.send(()).unwrap();
    // The stream ends cleanly (the last chunk, at the start of what is left unread
    // since the event), and the application returns.
    let rest = read_until(&mut watch, "0\r\n\r\n").await;
    assert!(
        rest.starts_with("0\r\n\r\n") || rest.contains("\r\n0\r\n\r\n"),
        "{rest:?}"
    );
    tokio::time::timeout(WAIT, app)
        .await
        .expect("the application stops once its streams ended")
        .unwrap()
        .unwrap();
}
