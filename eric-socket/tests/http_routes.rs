//! The HTTP server's routes and every error status, through a real TCP client.
#![cfg(feature = "http")]

mod http_support;

use eric_core::Message;
use eric_socket::HttpServerConfig;
use http::{Method, StatusCode};
use http_support::{bounded, raw_request, read_to_close, with_prefix, TestServer};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn create_answers_a_generated_id_or_the_one_asked_for() {
    let server = TestServer::start().await;
    let generated = server.create().await;
    assert!(server.container.get(&generated).is_ok());

    let reply = server.request(Method::PUT, "/create?channel_id=news").await;
    reply.assert_ok();
    assert_eq!(reply.json(), json!({"channel_id": "news"}));
    assert!(server.container.get("news").is_ok());
}

#[tokio::test]
async fn create_with_a_taken_id_is_409_naming_it() {
    let server = TestServer::start().await;
    server.container.add_with_id("news").unwrap();
    server
        .request(Method::PUT, "/create?channel_id=news")
        .await
        .assert_error(StatusCode::CONFLICT, &["\"news\"", "exists already"]);
}

#[tokio::test]
async fn create_with_an_empty_id_is_400() {
    let server = TestServer::start().await;
    server
        .request(Method::PUT, "/create?channel_id=")
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["channel_id", "empty"]);
    assert!(server.container.is_empty());
}

#[tokio::test]
async fn subscribe_registers_a_listener_that_is_not_started_yet() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let listener = server.subscribe(&channel).await;
    let listener = server
        .container
        .listener(&server.container.get(&channel).unwrap(), &listener)
        .expect("registered");
    assert!(!listener.is_running());
}

#[tokio::test]
async fn broadcast_queues_the_message_for_every_listener_and_answers_null() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let a = server.subscribe(&channel).await;
    let b = server.subscribe(&channel).await;
    server
        .broadcast(&channel, "price", json!({"eur": 12.5, "tags": ["a", "é"]}))
        .await;
    let sse = server.container.get(&channel).unwrap();
    for id in [&a, &b] {
        let listener = server.container.listener(&sse, id).unwrap();
        listener.start();
        let delivery = sse.deliver_next(id).unwrap();
        assert_eq!(
            *delivery.message,
            Message::new("price", json!({"eur": 12.5, "tags": ["a", "é"]}))
        );
    }
}

#[tokio::test]
async fn dispatch_queues_the_message_for_one_listener_and_answers_null() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let a = server.subscribe(&channel).await;
    let b = server.subscribe(&channel).await;
    let reply = server
        .request_with(
            Method::POST,
            &format!("/dispatch?channel_id={channel}&listener_id={a}"),
            r#"{"type": "hello", "payload": "just you"}"#,
        )
        .await;
    reply.assert_ok();
    assert_eq!(reply.json(), Value::Null);
    let sse = server.container.get(&channel).unwrap();
    assert_eq!(server.container.listener(&sse, &a).unwrap().queue_len(), 1);
    assert_eq!(server.container.listener(&sse, &b).unwrap().queue_len(), 0);
}

#[tokio::test]
async fn a_missing_payload_is_null() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let listener = server.subscribe(&channel).await;
    server
        .request_with(
            Method::POST,
            &format!("/broadcast?channel_id={channel}"),
            r#"{"type": "ping"}"#,
        )
        .await
        .assert_ok();
    let sse = server.container.get(&channel).unwrap();
    server.container.listener(&sse, &listener).unwrap().start();
    assert_eq!(sse.deliver_next(&listener).unwrap().payload, Value::Null);
}

#[tokio::test]
async fn channels_lists_the_ids_sorted_and_root_the_listeners_of_each() {
    let server = TestServer::start().await;
    let reply = server.request(Method::GET, "/channels").await;
    reply.assert_ok();
    assert_eq!(reply.json(), json!([]));
    assert_eq!(server.request(Method::GET, "/").await.json(), json!({}));

    for id in ["b", "a"] {
        server
            .request(Method::PUT, &format!("/create?channel_id={id}"))
            .await
            .assert_ok();
    }
    let l1 = server.subscribe("a").await;
    let l2 = server.subscribe("a").await;
    assert_eq!(
        server.request(Method::GET, "/channels").await.json(),
        json!(["a", "b"])
    );
    let mut expected = vec![l1, l2];
    expected.sort();
    let reply = server.request(Method::GET, "/").await;
    reply.assert_ok();
    assert_eq!(reply.json(), json!({"a": expected, "b": []}));
}

#[tokio::test]
async fn head_on_the_listing_routes_answers_the_headers_only() {
    let server = TestServer::start().await;
    server.container.add_with_id("a").unwrap();
    let reply = server.request(Method::HEAD, "/channels").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn delete_listener_removes_it_and_a_second_delete_is_404() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let listener = server.subscribe(&channel).await;
    let path = format!("/listener/{channel}/{listener}");
    let reply = server.request(Method::DELETE, &path).await;
    reply.assert_ok();
    assert_eq!(reply.json(), Value::Null);
    assert_eq!(server.container.listener_count(), 0);
    server.request(Method::DELETE, &path).await.assert_error(
        StatusCode::NOT_FOUND,
        &["listener", &format!("{listener:?}")],
    );
}

#[tokio::test]
async fn delete_channel_removes_it_and_a_second_delete_is_404() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    server.subscribe(&channel).await;
    let path = format!("/channel/{channel}");
    let reply = server.request(Method::DELETE, &path).await;
    reply.assert_ok();
    assert_eq!(reply.json(), Value::Null);
    assert!(server.container.is_empty());
    server
        .request(Method::DELETE, &path)
        .await
        .assert_error(StatusCode::NOT_FOUND, &["channel", &format!("{channel:?}")]);
}

#[tokio::test]
async fn every_route_answers_404_naming_an_unknown_channel() {
    let server = TestServer::start().await;
    let message = r#"{"type": "t"}"#;
    for (method, path, body) in [
        (Method::POST, "/subscribe?channel_id=ghost", ""),
        (Method::POST, "/broadcast?channel_id=ghost", message),
        (
            Method::POST,
            "/dispatch?channel_id=ghost&listener_id=1",
            message,
        ),
        (Method::GET, "/stream/ghost/1", ""),
        (Method::GET, "/watch/ghost", ""),
        (Method::DELETE, "/listener/ghost/1", ""),
        (Method::DELETE, "/channel/ghost", ""),
    ] {
        let reply = server.send(method.clone(), path, &[], Some(body)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        reply.assert_error(StatusCode::NOT_FOUND, &["no channel", "\"ghost\""]);
    }
}

#[tokio::test]
async fn every_route_answers_404_naming_an_unknown_listener() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    for (method, path, body) in [
        (
            Method::POST,
            format!("/dispatch?channel_id={channel}&listener_id=ghost"),
            r#"{"type": "t"}"#,
        ),
        (Method::GET, format!("/stream/{channel}/ghost"), ""),
        (Method::DELETE, format!("/listener/{channel}/ghost"), ""),
    ] {
        let reply = server.send(method.clone(), &path, &[], Some(body)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        reply.assert_error(
            StatusCode::NOT_FOUND,
            &["no listener", "\"ghost\"", &format!("channel {channel:?}")],
        );
    }
}

#[tokio::test]
async fn a_missing_or_empty_query_parameter_is_400_naming_it() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let message = r#"{"type": "t"}"#;
    for (path, name) in [
        ("/subscribe".to_owned(), "channel_id"),
        ("/subscribe?channel=x".to_owned(), "channel_id"),
        ("/broadcast".to_owned(), "channel_id"),
        ("/broadcast?channel_id=".to_owned(), "channel_id"),
        ("/dispatch?listener_id=1".to_owned(), "channel_id"),
        (format!("/dispatch?channel_id={channel}"), "listener_id"),
        (
            format!("/dispatch?channel_id={channel}&listener_id="),
            "listener_id",
        ),
    ] {
        server
            .request_with(Method::POST, &path, message)
            .await
            .assert_error(StatusCode::BAD_REQUEST, &[name]);
    }
}

#[tokio::test]
async fn a_malformed_body_is_400_saying_what_is_wrong() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let listener = server.subscribe(&channel).await;
    let broadcast = format!("/broadcast?channel_id={channel}");
    let dispatch = format!("/dispatch?channel_id={channel}&listener_id={listener}");
    for path in [&broadcast, &dispatch] {
        for (body, needle) in [
            ("", "empty"),
            ("{\"type\": ", "not valid JSON"),
            ("type=x", "not valid JSON"),
            ("[1, 2]", "an array, not a JSON object"),
            ("\"hello\"", "a string, not a JSON object"),
            (r#"{"payload": 1}"#, "no \"type\""),
            (r#"{"type": null}"#, "must be a string, not null"),
            (r#"{"type": "a\nb"}"#, "line break"),
            (r#"{"type": "a\u0000b"}"#, "NUL"),
        ] {
            server
                .request_with(Method::POST, path, body)
                .await
                .assert_error(StatusCode::BAD_REQUEST, &[needle]);
        }
    }
    let sse = server.container.get(&channel).unwrap();
    assert_eq!(
        server
            .container
            .listener(&sse, &listener)
            .unwrap()
            .queue_len(),
        0
    );
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let server = TestServer::start().await;
    for (method, path, allow) in [
        (Method::GET, "/create", "PUT, OPTIONS"),
        (Method::POST, "/create", "PUT, OPTIONS"),
        (Method::GET, "/subscribe", "POST, OPTIONS"),
        (Method::PUT, "/broadcast", "POST, OPTIONS"),
        (Method::DELETE, "/dispatch", "POST, OPTIONS"),
        (Method::POST, "/stream/a/b", "GET, OPTIONS"),
        (Method::DELETE, "/watch/a", "GET, OPTIONS"),
        (Method::GET, "/listener/a/b", "DELETE, OPTIONS"),
        (Method::GET, "/channel/a", "DELETE, OPTIONS"),
        (Method::POST, "/channels", "GET, HEAD, OPTIONS"),
        (Method::DELETE, "/", "GET, HEAD, OPTIONS"),
    ] {
        let reply = server.request(method.clone(), path).await;
        reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, &[method.as_str(), allow]);
        assert_eq!(reply.headers["allow"], allow, "{method} {path}");
    }
}

#[tokio::test]
async fn an_unknown_path_is_404() {
    let server = TestServer::start().await;
    for path in [
        "/nope",
        "/channels/",
        "/stream/a",
        "/stream/a/b/c",
        "/watch",
    ] {
        server
            .request(Method::GET, path)
            .await
            .assert_error(StatusCode::NOT_FOUND, &["no route", path]);
    }
}

#[tokio::test]
async fn options_on_a_known_path_lists_its_methods() {
    let server = TestServer::start().await;
    let reply = server.request(Method::OPTIONS, "/broadcast").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.headers["allow"], "POST, OPTIONS");
    assert!(reply.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn ids_with_reserved_characters_travel_percent_encoded() {
    let server = TestServer::start().await;
    let reply = server
        .request(Method::PUT, "/create?channel_id=caf%C3%A9+%26+news%2F1")
        .await;
    reply.assert_ok();
    let id = "café & news/1";
    assert_eq!(reply.json(), json!({"channel_id": id}));
    let listener = server
        .request(
            Method::POST,
            "/subscribe?channel_id=caf%C3%A9%20%26%20news%2F1",
        )
        .await
        .json()["listener_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = server
        .request(
            Method::DELETE,
            &format!("/listener/caf%C3%A9%20%26%20news%2F1/{listener}"),
        )
        .await;
    reply.assert_ok();
    let reply = server
        .request(Method::DELETE, "/channel/caf%C3%A9%20%26%20news%2F1")
        .await;
    reply.assert_ok();
    assert!(server.container.is_empty());
}

#[tokio::test]
async fn ids_that_are_not_utf8_once_decoded_are_400_on_every_route() {
    let server = TestServer::start().await;
    server.container.add_with_id("c").unwrap();
    let listener = server.subscribe("c").await;
    let message = r#"{"type": "t"}"#;
    for (method, path, body) in [
        (Method::PUT, "/create?channel_id=%ff%fe".to_owned(), None),
        (Method::PUT, "/create?channel_id=%C3".to_owned(), None),
        (Method::POST, "/subscribe?channel_id=%ff".to_owned(), None),
        (
            Method::POST,
            "/broadcast?channel_id=%ff".to_owned(),
            Some(message),
        ),
        (
            Method::POST,
            "/dispatch?channel_id=c&listener_id=%fe".to_owned(),
            Some(message),
        ),
        (Method::GET, "/watch/%ff".to_owned(), None),
        (Method::GET, "/watch/c?last_event_id=%ff".to_owned(), None),
        (Method::GET, format!("/stream/%ff/{listener}"), None),
        (Method::GET, "/stream/c/%ff".to_owned(), None),
        (Method::DELETE, format!("/listener/%ff/{listener}"), None),
        (Method::DELETE, "/channel/%ff".to_owned(), None),
    ] {
        let reply = server
            .send(
                method.clone(),
                &path,
                &[("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {path}");
        reply.assert_error(StatusCode::BAD_REQUEST, &["not valid UTF-8"]);
    }
    // Nothing was made of the lossy forms (U+FFFD) of those ids.
    assert_eq!(server.container.ids(), ["c"]);
    assert_eq!(server.listeners_of("c"), 1);
}

#[tokio::test]
async fn a_dispatch_to_a_full_queue_is_503_and_to_an_overflowed_listener_410() {
    use eric_core::{Listener, OverflowPolicy, QueueConfig};
    let server = TestServer::start().await;
    let channel = server.container.add_with_id("c").unwrap();
    channel
        .register_listener(
            Listener::with_id("full").queue_config(QueueConfig::bounded(1, OverflowPolicy::Reject)),
        )
        .unwrap();
    channel
        .register_listener(
            Listener::with_id("fragile")
                .queue_config(QueueConfig::bounded(1, OverflowPolicy::Disconnect)),
        )
        .unwrap();
    let body = r#"{"type": "t"}"#;
    for id in ["full", "fragile"] {
        server
            .request_with(
                Method::POST,
                &format!("/dispatch?channel_id=c&listener_id={id}"),
                body,
            )
            .await
            .assert_ok();
    }
    server
        .request_with(
            Method::POST,
            "/dispatch?channel_id=c&listener_id=full",
            body,
        )
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, &["full", "rejected"]);
    server
        .request_with(
            Method::POST,
            "/dispatch?channel_id=c&listener_id=fragile",
            body,
        )
        .await
        .assert_error(StatusCode::GONE, &["fragile", "disconnected"]);
}

fn small_bodies(config: &mut HttpServerConfig) {
    config.max_body_bytes = 100;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_by_its_content_length() {
    let server = TestServer::start_with(small_bodies).await;
    let channel = server.create().await;
    let body = json!({"type": "t", "payload": "x".repeat(200)}).to_string();
    let reply = server
        .request_with(
            Method::POST,
            &format!("/broadcast?channel_id={channel}"),
            &body,
        )
        .await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["100 bytes"]);
    assert_eq!(reply.headers["connection"], "close");

    // At the limit exactly, it passes.
    let body = format!(r#"{{"type": "t", "payload": "{}"}}"#, "x".repeat(100 - 28));
    assert_eq!(body.len(), 100);
    server
        .request_with(
            Method::POST,
            &format!("/broadcast?channel_id={channel}"),
            &body,
        )
        .await
        .assert_ok();
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_while_reading() {
    let server = TestServer::start_with(small_bodies).await;
    let channel = server.create().await;
    let mut request = format!(
        "POST /broadcast?channel_id={channel} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..4 {
        request.extend_from_slice(b"28\r\n");
        request.extend_from_slice(&[b' '; 0x28]);
        request.extend_from_slice(b"\r\n");
    }
    let (mut tcp, head) = raw_request(server.addr, &request).await;
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let body = read_to_close(&mut tcp).await;
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(json["message"].as_str().unwrap().contains("100 bytes"));
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let server = TestServer::start_with(|config| {
        config.body_read_timeout = Duration::from_millis(300);
    })
    .await;
    let channel = server.create().await;
    let request = format!(
        "POST /broadcast?channel_id={channel} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{{\"type\""
    );
    let (mut tcp, head) = raw_request(server.addr, request.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    let body = read_to_close(&mut tcp).await;
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(json["message"].as_str().unwrap().contains("did not arrive"));
}

#[tokio::test]
async fn a_client_that_sends_no_request_head_is_disconnected() {
    let server = TestServer::start_listener_with(|config| {
        config.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /channels HTTP/1.1\r\nhost:")
        .await
        .unwrap();
    bounded("the server closes the connection", read_to_close(&mut tcp)).await;
}

#[tokio::test]
async fn requests_on_one_keep_alive_connection_are_all_answered() {
    let server = TestServer::start().await;
    let (mut tcp, head) = raw_request(
        server.addr,
        b"PUT /create?channel_id=k HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let mut body = [0u8; 18];
    bounded(
        "the body",
        tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut body),
    )
    .await
    .unwrap();
    assert_eq!(&body, br#"{"channel_id":"k"}"#);
    tcp.write_all(&with_prefix(
        b"GET /channels HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    ))
    .await
    .unwrap();
    let rest = String::from_utf8(read_to_close(&mut tcp).await).unwrap();
    assert!(rest.starts_with("HTTP/1.1 200 "), "{rest}");
    assert!(rest.ends_with(r#"["k"]"#), "{rest}");
}

#[tokio::test]
async fn the_default_config_listens_on_localhost_8080() {
    let config = HttpServerConfig::default();
    assert_eq!(config.addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.max_body_bytes, (1 << 20) + (64 << 10));
    assert_eq!(config.sse.keep_alive, Some(Duration::from_secs(15)));
    assert_eq!(config.sse.retry_floor_ms, 1_000);
    assert!(config.cors_allowed_origins.is_empty());
}

mod cors {
    use super::*;

    const PAGE: &str = "http://127.0.0.1:3000";

    async fn server() -> TestServer {
        TestServer::start_with(|config| config.cors_allowed_origins = vec![PAGE.to_owned()]).await
    }

    #[tokio::test]
    async fn an_allowed_origin_is_echoed_on_answers_and_errors() {
        let server = server().await;
        for (method, path) in [
            (Method::GET, "/channels"),
            (Method::PUT, "/create"),
            (Method::GET, "/nope"),
            (Method::POST, "/subscribe"),
        ] {
            let reply = server.send(method, path, &[("origin", PAGE)], None).await;
            assert_eq!(reply.headers["access-control-allow-origin"], PAGE, "{path}");
            assert_eq!(reply.headers["vary"], "Origin");
        }
    }

    #[tokio::test]
    async fn an_allowed_origin_is_echoed_on_streams() {
        let server = server().await;
        let channel = server.create().await;
        let client = http_support::SseClient::open(
            server.addr,
            &format!("/watch/{channel}"),
            &[("origin", PAGE)],
        )
        .await;
        assert_eq!(client.status, StatusCode::OK);
        assert_eq!(client.headers["access-control-allow-origin"], PAGE);
    }

    #[tokio::test]
    async fn another_origin_gets_no_cors_headers() {
        let server = server().await;
        let reply = server
            .send(
                Method::GET,
                "/channels",
                &[("origin", "http://evil.example")],
                None,
            )
            .await;
        reply.assert_ok();
        assert!(reply.headers.get("access-control-allow-origin").is_none());
    }

    #[tokio::test]
    async fn a_preflight_from_an_allowed_origin_is_answered() {
        let server = server().await;
        let reply = server
            .send(
                Method::OPTIONS,
                "/broadcast",
                &[
                    ("origin", PAGE),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(reply.headers["access-control-allow-origin"], PAGE);
        assert_eq!(
            reply.headers["access-control-allow-methods"],
            "POST, OPTIONS"
        );
        assert_eq!(
            reply.headers["access-control-allow-headers"],
            "content-type"
        );
        assert!(reply.headers.contains_key("access-control-max-age"));
    }

    #[tokio::test]
    async fn a_star_allows_every_origin() {
        let server =
            TestServer::start_with(|config| config.cors_allowed_origins = vec!["*".to_owned()])
                .await;
        let reply = server
            .send(Method::GET, "/", &[("origin", "http://any.example")], None)
            .await;
        assert_eq!(
            reply.headers["access-control-allow-origin"],
            "http://any.example"
        );
    }

    #[tokio::test]
    async fn without_allowed_origins_there_are_no_cors_headers() {
        let server = TestServer::start().await;
        let reply = server
            .send(Method::GET, "/", &[("origin", PAGE)], None)
            .await;
        assert!(reply.headers.get("access-control-allow-origin").is_none());
        assert!(reply.headers.get("vary").is_none());
    }
}
