//! The streaming verbs `l` and `w`: what they deliver, in which order, in which bytes,
//! and what happens to their listener when the client goes away.

mod common;

use common::{eventually, line, RawStream, TestServer};
use std::time::Duration;

fn dispatch(channel: &str, listener: &str, t: &str, p: &str) -> String {
    format!(r#"{{"v": "d", "c": "{channel}", "r": "{listener}", "t": "{t}", "p": {p}}}"#)
}

fn broadcast(channel: &str, t: &str, p: &str) -> String {
    format!(r#"{{"v": "b", "c": "{channel}", "t": "{t}", "p": {p}}}"#)
}

#[tokio::test]
async fn l_starts_the_listener_and_streams_queued_messages_first_in_order() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    for n in 1..=3 {
        let p = n.to_string();
        assert_eq!(
            server
                .send_command(&dispatch(&channel, &listener, "q", &p))
                .await,
            "ack"
        );
    }
    let registered = server
        .container
        .listener(&server.container.get(&channel).unwrap(), &listener)
        .unwrap();
    assert!(!registered.is_running());

    let mut stream = RawStream::listen(&server.path, &channel, &listener).await;
    // The reference 0.6.0.3 would end here with an empty answer (it never starts the
    // listener); eric starts it and streams the queue.
    for n in 1..=3 {
        assert_eq!(stream.line().await, line("q", &n.to_string()));
    }
    assert!(registered.is_running());
    // Then live messages, after the queued ones.
    assert_eq!(
        server
            .send_command(&dispatch(&channel, &listener, "live", "4"))
            .await,
        "ack"
    );
    assert_eq!(stream.line().await, line("live", "4"));
    stream.assert_silent_for(Duration::from_millis(50)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn stream_lines_are_json_dumps_of_event_retry_data() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    // (payload as sent, the line's data as Python's json.dumps writes it)
    let cases = [
        (r#"{"text": "hi"}"#, r#"{"text": "hi"}"#),
        (
            r#"{"a": 1, "b": [true, false, null]}"#,
            r#"{"a": 1, "b": [true, false, null]}"#,
        ),
        (
            r#"{"deep": {"er": [{"x": -1.5}]}}"#,
            r#"{"deep": {"er": [{"x": -1.5}]}}"#,
        ),
        (
            r#""h\u00e9llo \u2603 😀""#,
            r#""h\u00e9llo \u2603 \ud83d\ude00""#,
        ),
        (
            r#""tab\tquote\"back\\slash\u0001""#,
            r#""tab\tquote\"back\\slash\u0001""#,
        ),
        ("[]", "[]"),
        ("{}", "{}"),
        ("12345678901234", "12345678901234"),
        ("null", "null"),
    ];
    for (payload, _) in &cases {
        assert_eq!(
            server
                .send_command(&dispatch(&channel, &listener, "t", payload))
                .await,
            "ack"
        );
    }
    let mut stream = RawStream::listen(&server.path, &channel, &listener).await;
    for (payload, data) in &cases {
        assert_eq!(stream.line().await, line("t", data), "payload {payload}");
    }
    // The message type is escaped the same way.
    assert_eq!(
        server
            .send_command(&dispatch(&channel, &listener, "caf\u{e9}", "1"))
            .await,
        "ack"
    );
    assert_eq!(stream.line().await, line("caf\\u00e9", "1"));
    server.shutdown().await;
}

#[tokio::test]
async fn w_listener_is_removed_when_its_client_disconnects() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let _registered = server.listener(&channel).await;
    let before = server.listeners_of(&channel);

    let mut watcher = RawStream::watch(&server.path, &channel).await;
    eventually("the watcher's listener is added", || {
        server.listeners_of(&channel) == before + 1
    })
    .await;
    assert_eq!(
        server.send_command(&broadcast(&channel, "t", "1")).await,
        "ack"
    );
    assert_eq!(watcher.line().await, line("t", "1"));

    drop(watcher);
    eventually("the watcher's listener is removed after it hung up", || {
        server.listeners_of(&channel) == before
    })
    .await;
    eventually("its connection is closed", || server.gauge.open() == 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_watcher_that_hangs_up_is_noticed_without_any_traffic() {
    // Nothing is ever written on this stream, so only the hang-up itself can tell the
    // server the client left.
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let watchers: Vec<RawStream> =
        futures::future::join_all((0..10).map(|_| RawStream::watch(&server.path, &channel))).await;
    eventually("ten watchers are registered", || {
        server.listeners_of(&channel) == 10
    })
    .await;
    assert_eq!(server.gauge.open(), 10);
    drop(watchers);
    eventually("every watcher's listener is removed", || {
        server.listeners_of(&channel) == 0
    })
    .await;
    eventually("every connection is closed", || server.gauge.open() == 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn l_listener_stays_registered_after_disconnect_and_keeps_its_queue() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    let mut first = RawStream::listen(&server.path, &channel, &listener).await;
    assert_eq!(
        server
            .send_command(&dispatch(&channel, &listener, "a", "1"))
            .await,
        "ack"
    );
    assert_eq!(first.line().await, line("a", "1"));
    drop(first);
    eventually("the stream's connection is closed", || {
        server.gauge.open() == 0
    })
    .await;
    assert_eq!(server.listeners_of(&channel), 1, "the listener stays");

    // Its queue keeps filling while nobody listens...
    assert_eq!(
        server
            .send_command(&dispatch(&channel, &listener, "b", "2"))
            .await,
        "ack"
    );
    assert_eq!(
        server.send_command(&broadcast(&channel, "c", "3")).await,
        "ack"
    );
    let queued = server
        .container
        .listener(&server.container.get(&channel).unwrap(), &listener)
        .unwrap()
        .queue_len();
    assert_eq!(queued, 2);

    // ...and listening again delivers what was queued meanwhile, in order.
    let mut again = RawStream::listen(&server.path, &channel, &listener).await;
    assert_eq!(again.line().await, line("b", "2"));
    assert_eq!(again.line().await, line("c", "3"));
    again.assert_silent_for(Duration::from_millis(50)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_channel_closed_message_ends_l_and_w_streams() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    let mut listened = RawStream::listen(&server.path, &channel, &listener).await;
    let mut watched = RawStream::watch(&server.path, &channel).await;
    eventually("the watcher is registered", || {
        server.listeners_of(&channel) == 2
    })
    .await;
    // What `notify_end()` sends, broadcast by a client.
    assert_eq!(
        server
            .send_command(&broadcast(&channel, "_eric_channel_closed", "null"))
            .await,
        "ack"
    );
    for stream in [&mut listened, &mut watched] {
        assert_eq!(stream.line().await, line("_eric_channel_closed", "null"));
        stream.assert_ends().await;
    }
    eventually("the watcher's listener is removed", || {
        server.listeners_of(&channel) == 1
    })
    .await;
    eventually("both connections are closed", || server.gauge.open() == 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn removing_the_channel_ends_its_streams_with_channel_closed() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    let mut listened = RawStream::listen(&server.path, &channel, &listener).await;
    let mut watched = RawStream::watch(&server.path, &channel).await;
    eventually("the watcher is registered", || {
        server.listeners_of(&channel) == 2
    })
    .await;
    server.container.remove(&channel).unwrap();
    for stream in [&mut listened, &mut watched] {
        assert_eq!(stream.line().await, line("_eric_channel_closed", "null"));
        stream.assert_ends().await;
    }
    eventually("both connections are closed", || server.gauge.open() == 0).await;
    assert_eq!(
        server.send_command(&broadcast(&channel, "t", "1")).await,
        format!("InvalidChannelException('No channel with id {channel}')")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stopping_the_listener_ends_its_l_stream_and_keeps_the_rest_queued() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    let mut stream = RawStream::listen(&server.path, &channel, &listener).await;
    assert_eq!(
        server
            .send_command(&dispatch(&channel, &listener, "a", "1"))
            .await,
        "ack"
    );
    assert_eq!(stream.line().await, line("a", "1"));
    let handle = server
        .container
        .listener(&server.container.get(&channel).unwrap(), &listener)
        .unwrap();
    handle.stop();
    stream.assert_ends().await;
    assert_eq!(
        server
            .send_command(&dispatch(&channel, &listener, "b", "2"))
            .await,
        "ack"
    );
    assert_eq!(handle.queue_len(), 1);
    let mut again = RawStream::listen(&server.path, &channel, &listener).await;
    assert_eq!(again.line().await, line("b", "2"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_big_backlog_streams_in_order_without_loss() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    let sse = server.container.get(&channel).unwrap();
    // Queue directly: this test is about the stream, not about 5,000 round trips.
    for n in 0..5_000u32 {
        server
            .container
            .dispatch(&sse, &listener, eric_core::Message::new("n", n))
            .unwrap();
    }
    let mut stream = RawStream::listen(&server.path, &channel, &listener).await;
    for n in 0..5_000u32 {
        assert_eq!(stream.line().await, line("n", &n.to_string()));
    }
    stream.assert_silent_for(Duration::from_millis(50)).await;
    server.shutdown().await;
}
