//! The HTTP and the Unix server over one container: what one transport sends, the
//! other delivers.
#![cfg(feature = "http")]

mod http_support;

use eric_socket::protocol::ProtocolError;
use eric_socket::{ShutdownHandle, SocketClient};
use http::{Method, StatusCode};
use http_support::{bounded, eventually, offset_of, TestServer};
use serde_json::{json, Value};

/// The HTTP server and the Unix server of one [`TestServer`], which share one container
/// and one shutdown handle, with a client of the Unix one.
struct BothServers {
    http: TestServer,
    unix: SocketClient,
}

impl BothServers {
    async fn start() -> BothServers {
        let http = TestServer::start().await;
        let unix = http.client();
        BothServers { http, unix }
    }

    fn stop(&self) -> ShutdownHandle {
        self.http.stop.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_broadcast_reaches_an_http_stream() {
    let both = BothServers::start().await;
    let channel = both.unix.create_channel().await.unwrap();
    let listener = both.http.subscribe(&channel).await;
    let mut stream = both
        .http
        .stream(&format!("/stream/{channel}/{listener}"))
        .await;
    let payload = json!({"from": "unix", "text": "héllo 🌍", "n": [1, 2.5, null]});
    both.unix
        .broadcast(&channel, "greeting", payload.clone())
        .await
        .unwrap();
    let event = stream.next_event().await;
    assert_eq!(event.event, "greeting");
    assert_eq!(offset_of(&event.last_event_id), "1");
    assert_eq!(event.json::<Value>().unwrap(), payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_dispatch_reaches_the_http_stream_of_its_listener() {
    let both = BothServers::start().await;
    let channel = both.http.create().await;
    let listener = both.http.subscribe(&channel).await;
    let other = both.http.subscribe(&channel).await;
    both.unix
        .dispatch(&channel, &listener, "private", json!("for you"))
        .await
        .unwrap();
    let mut stream = both
        .http
        .stream(&format!("/stream/{channel}/{listener}"))
        .await;
    assert_eq!(stream.next_event().await.data, r#""for you""#);
    let mut others = both
        .http
        .stream(&format!("/stream/{channel}/{other}"))
        .await;
    assert!(
        others
            .quiet_for(std::time::Duration::from_millis(200))
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_broadcast_reaches_a_unix_watch_stream() {
    let both = BothServers::start().await;
    let channel = both.http.create().await;
    let mut watch = both.unix.watch(&channel).await.unwrap();
    eventually("the Unix watcher is registered", || {
        both.http.container.listener_count() == 1
    })
    .await;
    let payload = json!({"from": "http", "blob": "x".repeat(4096)});
    both.http
        .broadcast(&channel, "update", payload.clone())
        .await;
    let event = bounded("the Unix stream's event", watch.next_event())
        .await
        .expect("an event")
        .expect("no error");
    assert_eq!(event.event(), "update");
    assert_eq!(event.data(), &payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_transports_list_the_same_channels_and_listeners() {
    let both = BothServers::start().await;
    let from_unix = both.unix.create_channel().await.unwrap();
    let listener = both.unix.register(&from_unix).await.unwrap();
    let reply = both.http.request(Method::GET, "/").await;
    reply.assert_ok();
    assert_eq!(
        reply.json(),
        json!({ from_unix.clone(): [listener.clone()] })
    );
    // And an HTTP delete is seen by the Unix side.
    both.http
        .request(Method::DELETE, &format!("/channel/{from_unix}"))
        .await
        .assert_ok();
    assert!(both.unix.register(&from_unix).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shutdown_handle_stops_both_servers_and_ends_their_streams() {
    let both = BothServers::start().await;
    let channel = both.http.create().await;
    let mut unix_watch = both.unix.watch(&channel).await.unwrap();
    let mut http_watch = both.http.stream(&format!("/watch/{channel}")).await;
    eventually("both watchers are registered", || {
        both.http.container.listener_count() == 2
    })
    .await;
    both.stop().shutdown();
    assert_eq!(http_watch.rest().await, vec![]);
    assert!(bounded("the Unix stream ends", unix_watch.next_event())
        .await
        .is_none());
    // Waits for both servers' `run` to return Ok, and checks the socket file is gone.
    both.http.shutdown().await;
}

#[tokio::test]
async fn both_transports_refuse_a_type_no_event_can_carry_with_the_same_error() {
    let both = BothServers::start().await;
    let channel = both.http.create().await;
    for (json_type, needle) in [(r"a\u0000b", "NUL"), (r"a\nb", "line break")] {
        let answer = both
            .http
            .send_command(&format!(
                r#"{{"v": "b", "c": "{channel}", "t": "{json_type}"}}"#
            ))
            .await;
        let socket = ProtocolError::from_wire(&answer).expect("an error answer");
        assert_eq!(socket.name, "InvalidMessageFormat");
        let reply = both
            .http
            .send(
                Method::POST,
                &format!("/broadcast?channel_id={channel}"),
                &[("content-type", "application/json")],
                Some(&format!(r#"{{"type": "{json_type}"}}"#)),
            )
            .await;
        reply.assert_error(StatusCode::BAD_REQUEST, &[needle]);
        assert_eq!(reply.message(), socket.message);
    }
}
