//! The example `axum_sse`, driven as a user would: start it on a free port, open the
//! event stream, broadcast through its route, receive the event, stop it.
#![cfg(feature = "http")]

#[path = "../examples/axum_sse.rs"]
#[allow(dead_code)] // its `main` is the example's, not the test's
mod axum_sse;

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

#[tokio::test]
async fn a_broadcast_reaches_the_stream_and_stopping_ends_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = tokio::spawn(axum_sse::serve(listener, async {
        let _ = stopped.await;
    }));

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut stream, "retry:").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");

    let mut say = TcpStream::connect(addr).await.unwrap();
    say.write_all(
        b"POST /say HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    )
    .await
    .unwrap();
    assert!(read_until(&mut say, "sent")
        .await
        .starts_with("HTTP/1.1 200 "));

    let event = read_until(&mut stream, "data: \"hello\"").await;
    assert!(event.contains("event: say\n"), "{event}");

    stop.send(()).unwrap();
    let rest = read_until(&mut stream, "event: _eric_channel_closed").await;
    assert!(!rest.is_empty());
    tokio::time::timeout(WAIT, app)
        .await
        .expect("the application stops once its streams ended")
        .unwrap()
        .unwrap();
}
