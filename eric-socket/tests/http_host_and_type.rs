//! What shuts out pages of other sites: a body must be declared JSON (so a browser
//! cannot send one cross-site without a CORS preflight), and the `Host` must be one the
//! server answers (so a page whose name was rebound to 127.0.0.1 cannot reach it).
#![cfg(feature = "http")]

mod http_support;

use http::{Method, StatusCode};
use http_support::{raw_request, read_to_close, TestServer};
use serde_json::Value;

const MESSAGE: &str = r#"{"type": "t", "payload": 1}"#;

/// A raw request with `host` and extra header lines; the status line and the JSON body
/// of the answer (the connection asks to close).
async fn raw(
    server: &TestServer,
    head: &str,
    host: &str,
    extra: &str,
    body: &str,
) -> (String, Value) {
    let mut text = format!("{head} HTTP/1.1\r\nhost: {host}\r\n{extra}connection: close\r\n");
    if !body.is_empty() {
        text.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    let (mut tcp, response_head) = raw_request(server.addr, text.as_bytes()).await;
    let status_line = response_head.lines().next().unwrap_or_default().to_owned();
    let body = read_to_close(&mut tcp).await;
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    (status_line, json)
}

fn message(json: &Value) -> &str {
    json["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_refused_and_not_published() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let listener = server.subscribe(&channel).await;
    let queued = || {
        let channel = server.container.get(&channel).unwrap();
        channel.get_listener(&listener).unwrap().stats().queued
    };
    let broadcast = format!("/broadcast?channel_id={channel}");
    let dispatch = format!("/dispatch?channel_id={channel}&listener_id={listener}");
    for path in [&broadcast, &dispatch] {
        for (content_type, needle) in [
            // What a page of another site may send without a preflight.
            (Some("text/plain"), "\"text/plain\" is not JSON"),
            (Some("text/plain;charset=UTF-8"), "is not JSON"),
            (Some("application/x-www-form-urlencoded"), "is not JSON"),
            (Some("multipart/form-data; boundary=x"), "is not JSON"),
            (None, "no Content-Type"),
        ] {
            let headers: Vec<(&str, &str)> = content_type
                .map(|value| ("content-type", value))
                .into_iter()
                .collect();
            let reply = if headers.is_empty() {
                // The helper declares JSON when no type is given: raw bytes instead.
                let (status, json) = raw(
                    &server,
                    &format!("POST {path}"),
                    &server.addr.to_string(),
                    "",
                    MESSAGE,
                )
                .await;
                assert!(status.starts_with("HTTP/1.1 415"), "{path}: {status}");
                assert!(message(&json).contains(needle), "{json}");
                continue;
            } else {
                server
                    .send(Method::POST, path, &headers, Some(MESSAGE))
                    .await
            };
            reply.assert_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &[needle, "application/json"],
            );
        }
    }
    assert_eq!(queued(), 0, "nothing refused was queued");
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
    ] {
        let reply = server
            .send(
                Method::POST,
                &broadcast,
                &[("content-type", content_type)],
                Some(MESSAGE),
            )
            .await;
        reply.assert_ok();
    }
    assert_eq!(queued(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_host_the_server_was_not_bound_to_is_misdirected() {
    let server = TestServer::start().await;
    let channel = server.create().await;
    let port = server.addr.port();
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
    ] {
        // A stream request (the direct path), a JSON route and a publish (hyper).
        for head in [
            format!("GET /watch/{channel}"),
            "GET /channels".to_owned(),
            format!("POST /broadcast?channel_id={channel}"),
        ] {
            let body = if head.starts_with("POST") {
                MESSAGE
            } else {
                ""
            };
            let (status, json) = raw(
                &server,
                &head,
                &host,
                "content-type: application/json\r\n",
                body,
            )
            .await;
            assert!(
                status.starts_with("HTTP/1.1 421"),
                "{head} to {host}: {status}"
            );
            let text = message(&json);
            assert!(text.contains(&format!("{host:?}")), "{text}");
            assert!(text.contains("--allowed-host"), "{text}");
        }
    }
    assert_eq!(
        server.listeners_of(&channel),
        0,
        "no stream was opened for another host"
    );
    let log = server.container.get(&channel).unwrap();
    assert_eq!(log.listener_count(), 0);
    // The names of the loopback address the server is bound to, with or without port.
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
        format!("[::1]:{port}"),
        // Another port: a port forward or a local proxy passes on the client's.
        "localhost:1".to_owned(),
    ] {
        let (status, _) = raw(&server, "GET /channels", &host, "", "").await;
        assert!(status.starts_with("HTTP/1.1 200"), "{host}: {status}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn allowed_hosts_add_names() {
    let server = TestServer::start_with(|config| {
        config.allowed_hosts = vec!["events.example.org".to_owned()];
    })
    .await;
    let (status, _) = raw(&server, "GET /channels", "events.example.org", "", "").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let (status, _) = raw(&server, "GET /channels", "other.example.org", "", "").await;
    assert!(status.starts_with("HTTP/1.1 421"), "{status}");
    server.shutdown().await;

    let server = TestServer::start_with(|config| config.allowed_hosts = vec!["*".to_owned()]).await;
    let (status, _) = raw(&server, "GET /channels", "anything.example", "", "").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    server.shutdown().await;
}
