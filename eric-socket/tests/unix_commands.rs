//! Every verb of the socket protocol and every error answer, byte for byte, over a real
//! Unix socket: raw clients write one JSON object, half-close and read to EOF.

mod common;

use common::{is_decimal_id, line, RawStream, TestServer};
use eric_socket::ClientError;
use serde_json::json;

#[tokio::test]
async fn c_answers_a_fresh_decimal_channel_id_without_newline() {
    let server = TestServer::start().await;
    let first = server.send_command(r#"{"v": "c"}"#).await;
    let second = server.send_command(r#"{"v": "c"}"#).await;
    assert!(is_decimal_id(&first), "{first:?}");
    assert!(is_decimal_id(&second), "{second:?}");
    assert_ne!(first, second);
    assert_eq!(server.container.ids().len(), 2);
    assert!(server.container.get(&first).is_ok());
    assert!(server.container.get(&second).is_ok());
    server.shutdown().await;
}

#[tokio::test]
async fn r_answers_a_fresh_listener_id_registered_on_the_channel() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let answer = server
        .send_command(&format!(r#"{{"v": "r", "c": "{channel}"}}"#))
        .await;
    assert!(is_decimal_id(&answer), "{answer:?}");
    let other = server.listener(&channel).await;
    assert_ne!(answer, other);
    let ids = server.container.snapshot()[&channel].clone();
    let mut expected = vec![answer.clone(), other];
    expected.sort();
    assert_eq!(ids, expected);
    // A registered listener is not started: `r` only registers.
    let listener = server
        .container
        .listener(&server.container.get(&channel).unwrap(), &answer)
        .unwrap();
    assert!(!listener.is_running());
    server.shutdown().await;
}

#[tokio::test]
async fn d_answers_ack_and_queues_for_that_listener_only() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let target = server.listener(&channel).await;
    let bystander = server.listener(&channel).await;
    let answer = server
        .send_command(&format!(
            r#"{{"v": "d", "c": "{channel}", "r": "{target}", "t": "hello", "p": {{"to": "you"}}}}"#
        ))
        .await;
    assert_eq!(answer, "ack");
    let sse = server.container.get(&channel).unwrap();
    assert_eq!(
        server
            .container
            .listener(&sse, &target)
            .unwrap()
            .queue_len(),
        1
    );
    assert_eq!(
        server
            .container
            .listener(&sse, &bystander)
            .unwrap()
            .queue_len(),
        0
    );

    let mut stream = RawStream::listen(&server.path, &channel, &target).await;
    assert_eq!(stream.line().await, line("hello", r#"{"to": "you"}"#));
    server.shutdown().await;
}

#[tokio::test]
async fn b_answers_ack_and_queues_for_every_listener() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listeners = [
        server.listener(&channel).await,
        server.listener(&channel).await,
        server.listener(&channel).await,
    ];
    let answer = server
        .send_command(&format!(
            r#"{{"v": "b", "c": "{channel}", "t": "news", "p": [1, "two", null]}}"#
        ))
        .await;
    assert_eq!(answer, "ack");
    for listener in &listeners {
        let mut stream = RawStream::listen(&server.path, &channel, listener).await;
        assert_eq!(stream.line().await, line("news", r#"[1, "two", null]"#));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_payload_is_delivered_as_null() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    let answer = server
        .send_command(&format!(
            r#"{{"v": "d", "c": "{channel}", "r": "{listener}", "t": "ping"}}"#
        ))
        .await;
    assert_eq!(answer, "ack");
    let mut stream = RawStream::listen(&server.path, &channel, &listener).await;
    assert_eq!(stream.line().await, line("ping", "null"));
    server.shutdown().await;
}

#[tokio::test]
async fn l_streams_the_listeners_queue_as_json_lines() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    let mut stream = RawStream::listen(&server.path, &channel, &listener).await;
    let answer = server
        .send_command(&format!(
            r#"{{"v": "d", "c": "{channel}", "r": "{listener}", "t": "t", "p": "x"}}"#
        ))
        .await;
    assert_eq!(answer, "ack");
    assert_eq!(stream.line().await, line("t", r#""x""#));
    server.shutdown().await;
}

#[tokio::test]
async fn w_streams_a_new_started_listener_of_the_channel() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut stream = RawStream::watch(&server.path, &channel).await;
    common::eventually("the watcher's listener is added", || {
        server.listeners_of(&channel) == 1
    })
    .await;
    let watcher = server.container.get(&channel).unwrap().listener_ids()[0].clone();
    assert!(server
        .container
        .get(&channel)
        .unwrap()
        .get_listener(&watcher)
        .unwrap()
        .is_running());
    let answer = server
        .send_command(&format!(
            r#"{{"v": "b", "c": "{channel}", "t": "t", "p": 7}}"#
        ))
        .await;
    assert_eq!(answer, "ack");
    assert_eq!(stream.line().await, line("t", "7"));
    server.shutdown().await;
}

// ---- errors: each answered on one line, then the connection closes; the server goes on.

#[tokio::test]
async fn an_unknown_channel_is_invalid_channel_exception_naming_it() {
    let server = TestServer::start().await;
    // Byte for byte as the protocol page gives it (no channel exists yet, so none is "9").
    assert_eq!(
        server.send_command(r#"{"v": "r", "c": "9"}"#).await,
        "InvalidChannelException('No channel with id 9')"
    );
    server.assert_serves().await;
    for command in [
        r#"{"v": "r", "c": "nowhere"}"#,
        r#"{"v": "d", "c": "nowhere", "r": "1", "t": "t", "p": 1}"#,
        r#"{"v": "b", "c": "nowhere", "t": "t", "p": 1}"#,
        r#"{"v": "l", "c": "nowhere", "r": "1"}"#,
        r#"{"v": "w", "c": "nowhere"}"#,
    ] {
        assert_eq!(
            server.send_command(command).await,
            "InvalidChannelException('No channel with id nowhere')",
            "for {command}"
        );
        server.assert_serves().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn d_to_an_unknown_listener_is_invalid_listener_exception_naming_it() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    assert_eq!(
        server
            .send_command(&format!(
                r#"{{"v": "d", "c": "{channel}", "r": "7", "t": "t", "p": 1}}"#
            ))
            .await,
        "InvalidListenerException('Invalid listener 7')"
    );
    server.assert_serves().await;
    server.shutdown().await;
}

#[tokio::test]
async fn l_on_an_unknown_listener_names_it_unlike_the_reference() {
    // The reference answers `InvalidListenerException()`; eric names the listener.
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut stream = RawStream::listen(&server.path, &channel, "7").await;
    assert_eq!(
        stream.next_line().await.as_deref(),
        Some("InvalidListenerException('Invalid listener 7')")
    );
    stream.assert_ends().await;
    server.assert_serves().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_verb_is_invalid_message_format_with_the_raw_command() {
    let server = TestServer::start().await;
    for command in [
        r#"{"c": "1"}"#,
        r#"{"c": "1", "t": "t", "p": {"a": [1, 2]}}"#,
        "{}",
    ] {
        assert_eq!(
            server.send_command(command).await,
            format!("InvalidMessageFormat('{command}')")
        );
        server.assert_serves().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_type_on_d_or_b_is_invalid_message_format_with_the_raw_command() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    for command in [
        format!(r#"{{"v": "d", "c": "{channel}", "r": "{listener}", "p": 1}}"#),
        format!(r#"{{"v": "b", "c": "{channel}", "p": 1}}"#),
        format!(r#"{{"v": "b", "c": "{channel}"}}"#),
    ] {
        assert_eq!(
            server.send_command(&command).await,
            format!("InvalidMessageFormat('{command}')")
        );
        server.assert_serves().await;
    }
    // Nothing was queued by the refused commands.
    let sse = server.container.get(&channel).unwrap();
    assert_eq!(
        server
            .container
            .listener(&sse, &listener)
            .unwrap()
            .queue_len(),
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn input_that_is_not_json_is_the_json_decode_error_of_python() {
    let server = TestServer::start().await;
    for command in ["", "hello", "\u{1}\u{2}", "é"] {
        assert_eq!(
            server.send_command(command).await,
            "JSONDecodeError('Expecting value: line 1 column 1 (char 0)')",
            "for {command:?}"
        );
        server.assert_serves().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn json_that_ends_too_early_is_located_as_python_locates_it() {
    // The expected answers are what `repr(e)` gives for `json.loads(command)` in Python.
    let server = TestServer::start().await;
    for (command, answer) in [
        (
            "   ",
            "JSONDecodeError('Expecting value: line 1 column 4 (char 3)')",
        ),
        (
            r#"{"v": "b", "c": "1", "t": "#,
            "JSONDecodeError('Expecting value: line 1 column 27 (char 26)')",
        ),
        (
            r#"{"v": "c"} x"#,
            "JSONDecodeError('Extra data: line 1 column 12 (char 11)')",
        ),
        (
            "{v: 1}",
            "JSONDecodeError('Expecting property name enclosed in double quotes: line 1 column 2 (char 1)')",
        ),
    ] {
        assert_eq!(server.send_command(command).await, answer, "for {command:?}");
        server.assert_serves().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_verb_is_an_error_naming_the_verb() {
    // The reference answers nothing at all here; eric says what is wrong.
    let server = TestServer::start().await;
    let answer = server
        .send_command(r#"{"v": "zap", "c": "1", "t": "t"}"#)
        .await;
    assert!(
        answer.starts_with("InvalidMessageFormat('") && answer.ends_with("')"),
        "{answer:?}"
    );
    assert!(answer.contains("zap"), "{answer:?}");
    assert!(!answer.contains('\n'), "one line: {answer:?}");
    server.assert_serves().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_command_that_is_not_an_object_is_invalid_message_format() {
    let server = TestServer::start().await;
    for command in ["[1, 2]", "\"c\"", "42", "null"] {
        let answer = server.send_command(command).await;
        assert!(
            answer.starts_with("InvalidMessageFormat(") && answer.ends_with(')'),
            "for {command}: {answer:?}"
        );
        server.assert_serves().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_channel_or_receiver_is_invalid_message_format() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    for command in [
        r#"{"v": "r"}"#.to_owned(),
        r#"{"v": "w"}"#.to_owned(),
        r#"{"v": "b", "t": "t"}"#.to_owned(),
        format!(r#"{{"v": "l", "c": "{channel}"}}"#),
        format!(r#"{{"v": "d", "c": "{channel}", "t": "t"}}"#),
    ] {
        let answer = server.send_command(&command).await;
        assert!(
            answer.starts_with("InvalidMessageFormat('") && answer.ends_with("')"),
            "for {command}: {answer:?}"
        );
        server.assert_serves().await;
    }
    server.shutdown().await;
}

// ---- the typed client against the server.

#[tokio::test]
async fn socket_client_drives_every_verb() {
    let server = TestServer::start().await;
    let client = server.client();
    let channel = client.create_channel().await.unwrap();
    let listener = client.register(&channel).await.unwrap();
    client
        .dispatch(&channel, &listener, "direct", json!({"n": 1}))
        .await
        .unwrap();
    client
        .broadcast(&channel, "all", json!("everyone"))
        .await
        .unwrap();
    let mut listened = client.listen(&channel, &listener).await.unwrap();
    let first = listened.next_event().await.unwrap().unwrap();
    assert_eq!((first.event(), first.data()), ("direct", &json!({"n": 1})));
    let second = listened.next_event().await.unwrap().unwrap();
    assert_eq!((second.event(), second.data()), ("all", &json!("everyone")));

    let mut watched = client.watch(&channel).await.unwrap();
    common::eventually("the watcher is registered", || {
        server.listeners_of(&channel) == 2
    })
    .await;
    client
        .broadcast(&channel, "later", json!(null))
        .await
        .unwrap();
    let event = common::bounded("the watcher gets the broadcast", watched.next_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.event(), "later");
    let event = common::bounded("the listener gets the broadcast", listened.next_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.event(), "later");
    server.shutdown().await;
}

#[tokio::test]
async fn socket_client_reports_server_errors_by_exception_name() {
    let server = TestServer::start().await;
    let client = server.client();
    match client.register("nowhere").await {
        Err(ClientError::Server { name, message }) => {
            assert_eq!(name, "InvalidChannelException");
            assert_eq!(message, "No channel with id nowhere");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    let channel = client.create_channel().await.unwrap();
    match client.dispatch(&channel, "7", "t", json!(1)).await {
        Err(ClientError::Server { name, message }) => {
            assert_eq!(name, "InvalidListenerException");
            assert_eq!(message, "Invalid listener 7");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    let mut stream = client.listen(&channel, "7").await.unwrap();
    assert!(matches!(
        stream.next_event().await,
        Some(Err(ClientError::Server { name, .. })) if name == "InvalidListenerException"
    ));
    assert!(stream.next_event().await.is_none());
    // send_payload returns an error answer as text, as the reference's client does.
    assert_eq!(
        client
            .send_payload(&json!({"v": "r", "c": "nowhere"}))
            .await
            .unwrap(),
        "InvalidChannelException('No channel with id nowhere')"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn b_and_d_refuse_a_type_with_a_line_break_or_a_nul_and_queue_nothing() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    // JSON escapes, as a client writes them: the type holds the character itself.
    for (t, what) in [
        (r"a\nb", "a line break (line feed, U+000A)"),
        (r"a\rb", "a line break (carriage return, U+000D)"),
        (r"a\u0000b", "a NUL character (U+0000)"),
    ] {
        for command in [
            format!(r#"{{"v": "b", "c": "{channel}", "t": "{t}", "p": 1}}"#),
            format!(r#"{{"v": "d", "c": "{channel}", "r": "{listener}", "t": "{t}", "p": 1}}"#),
        ] {
            let answer = server.send_command(&command).await;
            let error = eric_socket::protocol::ProtocolError::from_wire(&answer)
                .unwrap_or_else(|| panic!("{command}: answered {answer:?}, not an error"));
            assert_eq!(error.name, "InvalidMessageFormat", "{command}");
            assert!(error.message.contains(what), "{command}: {error}");
        }
    }
    let queued = server.container.get(&channel).unwrap();
    assert_eq!(
        server
            .container
            .listener(&queued, &listener)
            .unwrap()
            .queue_len(),
        0
    );
    server.shutdown().await;
}
