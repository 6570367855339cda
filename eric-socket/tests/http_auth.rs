//! JWT authorization over real HTTP: which right each route needs, where tokens come
//! from, what a refusal says, listings that show only what a token may use, anonymous
//! subscribing, CORS with cookies, a stream that ends when its token expires, and
//! tokens no server should choke on.
#![cfg(feature = "http")]

mod http_support;

use eric_socket::http::auth::{AccessConfig, JwtKey, EVENT_TOKEN_EXPIRED};
use eric_socket::HttpServerConfig;
use http::{Method, StatusCode};
use http_support::{bounded, raw_request, Reply, SseClient, TestServer};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &[u8] = b"the test secret";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed with [`SECRET`], valid for ten minutes, granting `eric`.
fn token(eric: Value) -> String {
    token_with(json!({ "exp": now() + 600, "eric": eric }))
}

fn token_with(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn with_secret(config: &mut HttpServerConfig) {
    config.access = AccessConfig {
        key: Some(JwtKey::hs256(SECRET).unwrap()),
        ..AccessConfig::default()
    };
}

async fn secured(configure: impl FnOnce(&mut HttpServerConfig)) -> TestServer {
    let server = TestServer::start_with(|config| {
        with_secret(config);
        configure(config);
    })
    .await;
    for id in ["news.sport", "newsroom", "private"] {
        server.container.add_with_id(id).unwrap();
    }
    server
}

/// `method path` with `token` as a bearer token (none if empty) and `body`.
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Reply {
    let auth = bearer(token);
    let headers: Vec<(&str, &str)> = if token.is_empty() {
        vec![]
    } else {
        vec![("authorization", auth.as_str())]
    };
    server.send(method, path, &headers, body).await
}

fn assert_unauthorized(reply: &Reply, needle: &str) {
    reply.assert_error(StatusCode::UNAUTHORIZED, &[needle]);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

fn assert_forbidden(reply: &Reply, needle: &str) {
    reply.assert_error(StatusCode::FORBIDDEN, &[needle]);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
}

const MESSAGE: &str = r#"{"type": "t", "payload": 1}"#;

/// Every route with the right it needs on channel `news.sport`: `(method, path, body,
/// right)`, where right is `publish`, `subscribe`, or `either` (removing a listener:
/// its subscriber, or a publisher of the channel).
fn routes(listener: &str) -> Vec<(Method, String, Option<&'static str>, &'static str)> {
    vec![
        (
            Method::PUT,
            "/create?channel_id=news.new".into(),
            None,
            "publish",
        ),
        (
            Method::POST,
            "/subscribe?channel_id=news.sport".into(),
            None,
            "subscribe",
        ),
        (
            Method::POST,
            "/broadcast?channel_id=news.sport".into(),
            Some(MESSAGE),
            "publish",
        ),
        (
            Method::POST,
            format!("/dispatch?channel_id=news.sport&listener_id={listener}"),
            Some(MESSAGE),
            "publish",
        ),
        (
            Method::DELETE,
            format!("/listener/news.sport/{listener}"),
            None,
            "either",
        ),
        (
            Method::DELETE,
            "/channel/news.sport".into(),
            None,
            "publish",
        ),
    ]
}

#[tokio::test]
async fn every_route_needs_a_token_and_names_what_is_missing() {
    let server = secured(|_| {}).await;
    let listener = server.container.get("news.sport").unwrap().add_listener();
    for (method, path, body, _) in routes(listener.id()) {
        let reply = call(&server, method.clone(), &path, "", body).await;
        assert_unauthorized(&reply, "needs a token");
    }
    for path in ["/", "/channels"] {
        assert_unauthorized(
            &call(&server, Method::GET, path, "", None).await,
            "needs a token",
        );
    }
    for path in [
        "/watch/news.sport".to_owned(),
        format!("/stream/news.sport/{}", listener.id()),
    ] {
        let stream = SseClient::open(server.addr, &path, &[]).await;
        assert_eq!(stream.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(stream.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
    }
    // OPTIONS (a CORS preflight carries no credentials) needs none.
    let reply = call(&server, Method::OPTIONS, "/watch/news.sport", "", None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    server.shutdown().await;
}

#[tokio::test]
async fn each_route_needs_its_own_right_on_its_channel() {
    for right in ["publish", "subscribe"] {
        let server = secured(|_| {}).await;
        let listener = server.container.get("news.sport").unwrap().add_listener();
        let granted = token(json!({ right: ["news.*"] }));
        for (method, path, body, needs) in routes(listener.id()) {
            let reply = call(&server, method.clone(), &path, &granted, body).await;
            if needs == right || needs == "either" {
                reply.assert_ok();
            } else {
                assert_forbidden(&reply, &format!("{needs} on channel"));
            }
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_glob_grants_only_the_channels_it_matches() {
    let server = secured(|_| {}).await;
    let publisher = token(json!({"publish": ["news.*"]}));
    call(
        &server,
        Method::POST,
        "/broadcast?channel_id=news.sport",
        &publisher,
        Some(MESSAGE),
    )
    .await
    .assert_ok();
    let reply = call(
        &server,
        Method::POST,
        "/broadcast?channel_id=newsroom",
        &publisher,
        Some(MESSAGE),
    )
    .await;
    assert_forbidden(&reply, "publish on channel \"newsroom\"");
    // Refused before the channel is looked up: a forbidden channel's existence is not told.
    let reply = call(
        &server,
        Method::POST,
        "/broadcast?channel_id=nope",
        &publisher,
        Some(MESSAGE),
    )
    .await;
    assert_forbidden(&reply, "\"nope\"");
    // A generated channel id needs publish on every channel.
    assert_forbidden(
        &call(&server, Method::PUT, "/create", &publisher, None).await,
        "every channel",
    );
    call(
        &server,
        Method::PUT,
        "/create",
        &token(json!({"publish": ["*"]})),
        None,
    )
    .await
    .assert_ok();
    server.shutdown().await;
}

#[tokio::test]
async fn listings_show_only_the_channels_a_token_may_use() {
    let server = secured(|_| {}).await;
    let news = token(json!({"subscribe": ["news.*"], "publish": ["newsroom"]}));
    let reply = call(&server, Method::GET, "/channels", &news, None).await;
    assert_eq!(reply.json(), json!(["news.sport", "newsroom"]));
    let reply = call(
        &server,
        Method::GET,
        "/",
        &token(json!({"subscribe": ["private"]})),
        None,
    )
    .await;
    assert_eq!(reply.json(), json!({"private": []}));
    let reply = call(&server, Method::GET, "/channels", &token(json!({})), None).await;
    assert_eq!(reply.json(), json!([]));
    let reply = call(
        &server,
        Method::GET,
        "/channels",
        &token(json!({"admin": true})),
        None,
    )
    .await;
    assert_eq!(reply.json(), json!(["news.sport", "newsroom", "private"]));
    server.shutdown().await;
}

#[tokio::test]
async fn an_admin_token_may_do_everything() {
    let server = secured(|_| {}).await;
    let admin = token(json!({"admin": true}));
    let listener = server.container.get("news.sport").unwrap().add_listener();
    for (method, path, body, _) in routes(listener.id()) {
        call(&server, method, &path, &admin, body).await.assert_ok();
    }
    server.shutdown().await;
}

#[tokio::test]
async fn refused_tokens_are_401_with_the_reason() {
    let server = secured(|config| {
        config.access.audience = Some("eric".into());
        config.access.issuer = Some("https://auth.example".into());
    })
    .await;
    let good_claims = json!({"iss": "https://auth.example", "aud": "eric", "exp": now() + 600, "eric": {"subscribe": ["*"]}});
    call(
        &server,
        Method::GET,
        "/channels",
        &token_with(good_claims.clone()),
        None,
    )
    .await
    .assert_ok();
    let with = |key: &str, value: Value| {
        let mut claims = good_claims.clone();
        claims[key] = value;
        token_with(claims)
    };
    let good = token_with(good_claims.clone());
    let other_key = encode(
        &Header::default(),
        &good_claims,
        &EncodingKey::from_secret(b"other"),
    )
    .unwrap();
    let alg_none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        good.split('.').nth(1).unwrap()
    );
    for (token, needle) in [
        (with("exp", json!(now() - 1)), "expired"),
        (with("nbf", json!(now() + 600)), "not valid yet"),
        (with("aud", json!("another")), "aud is not"),
        (with("iss", json!("https://evil.example")), "iss is not"),
        (other_key, "signature does not verify"),
        (alg_none, "malformed"),
        (
            good[..good.len() - 3].to_owned(),
            "signature does not verify",
        ),
        (good[..good.len() / 2].to_owned(), "malformed"),
        ("%%%.***.~~~".to_owned(), "malformed"),
        ("a".repeat(64 * 1024), "at most 8192"),
    ] {
        assert_unauthorized(
            &call(&server, Method::GET, "/channels", &token, None).await,
            needle,
        );
    }
    let reply = server
        .send(
            Method::GET,
            "/channels",
            &[("authorization", "Basic dXNlcjpwdw==")],
            None,
        )
        .await;
    assert_unauthorized(&reply, "Bearer");
    server.shutdown().await;
}

#[tokio::test]
async fn a_64_kib_token_is_refused_on_either_path_and_the_server_goes_on() {
    let server = secured(|config| config.access.query_token = true).await;
    let huge = "x".repeat(64 * 1024);
    let host = server.addr.to_string();
    // A head that size is past the direct path's limit: hyper reads it, and the route
    // refuses the token; a target that long is refused by hyper itself (414).
    for (request, status) in [
        (format!("GET /watch/news.sport HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {huge}\r\nconnection: close\r\n\r\n"), 401),
        (format!("GET /watch/news.sport HTTP/1.1\r\nhost: {host}\r\ncookie: eric_token={huge}\r\nconnection: close\r\n\r\n"), 401),
        (format!("GET /channels HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {huge}\r\nconnection: close\r\n\r\n"), 401),
        (format!("GET /watch/news.sport?access_token={huge} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"), 414),
    ] {
        let (_tcp, head) = raw_request(server.addr, request.as_bytes()).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
    }
    // Just under the direct path's head limit: served there, refused the same.
    let long = "y".repeat(7 * 1024);
    let request = format!("GET /watch/news.sport HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {long}\r\nconnection: close\r\n\r\n");
    let (_tcp, head) = raw_request(server.addr, request.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let admin = token(json!({"admin": true}));
    call(&server, Method::GET, "/channels", &admin, None)
        .await
        .assert_ok();
    server.shutdown().await;
}

#[tokio::test]
async fn tokens_come_from_the_cookie_and_from_the_query_only_when_allowed() {
    let server = secured(|_| {}).await;
    let subscriber = token(json!({"subscribe": ["news.*"]}));
    let cookie = format!("theme=dark; eric_token={subscriber}");
    let mut stream = SseClient::open(
        server.addr,
        "/watch/news.sport",
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK);
    server
        .container
        .get("news.sport")
        .unwrap()
        .broadcast(eric_core::Message::new("t", json!(1)));
    assert_eq!(stream.next_event().await.data, "1");
    drop(stream);
    let query = format!("/watch/news.sport?access_token={subscriber}");
    let stream = SseClient::open(server.addr, &query, &[]).await;
    assert_eq!(stream.status, StatusCode::UNAUTHORIZED);
    server.shutdown().await;

    let server = secured(|config| config.access.query_token = true).await;
    let stream = SseClient::open(server.addr, &query, &[]).await;
    assert_eq!(stream.status, StatusCode::OK);
    drop(stream);
    server.shutdown().await;
}

#[tokio::test]
async fn anonymous_subscribers_may_listen_but_not_publish() {
    let server = secured(|config| config.access.anonymous_subscribe = true).await;
    let stream = SseClient::open(server.addr, "/watch/private", &[]).await;
    assert_eq!(stream.status, StatusCode::OK);
    drop(stream);
    call(
        &server,
        Method::POST,
        "/subscribe?channel_id=private",
        "",
        None,
    )
    .await
    .assert_ok();
    call(&server, Method::GET, "/channels", "", None)
        .await
        .assert_ok();
    let reply = call(
        &server,
        Method::POST,
        "/broadcast?channel_id=private",
        "",
        Some(MESSAGE),
    )
    .await;
    assert_unauthorized(&reply, "publish on channel \"private\"");
    // A token that is sent is checked all the same.
    let reply = call(&server, Method::GET, "/channels", "not.a.token", None).await;
    assert_unauthorized(&reply, "malformed");
    server.shutdown().await;
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let server = secured(|_| {}).await;
    let exp = now() + 2;
    let short = token_with(json!({"exp": exp, "eric": {"subscribe": ["news.*"]}}));
    let auth = bearer(&short);
    let listener = server.container.get("news.sport").unwrap().add_listener();
    for path in [
        "/watch/news.sport".to_owned(),
        format!("/stream/news.sport/{}", listener.id()),
    ] {
        let mut stream =
            SseClient::open(server.addr, &path, &[("authorization", auth.as_str())]).await;
        assert_eq!(stream.status, StatusCode::OK, "{path}");
        server
            .container
            .get("news.sport")
            .unwrap()
            .broadcast(eric_core::Message::new("t", json!(1)));
        assert_eq!(stream.next_event().await.event, "t");
        // The listener of /stream also holds the tick broadcast while /watch was open.
        let mut rest = stream.rest().await;
        let last = rest.pop().expect("an event before the end");
        assert!(rest.iter().all(|e| e.event == "t"), "{path}: {rest:?}");
        assert_eq!(last.event, EVENT_TOKEN_EXPIRED, "{path}");
        assert_eq!(
            serde_json::from_str::<Value>(&last.data).unwrap(),
            json!({ "exp": exp })
        );
        assert!(now() >= exp, "ended at the expiry, not before");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn cors_allows_credentials_only_for_origins_listed_by_name() {
    let server = secured(|config| {
        config.cors_allowed_origins = vec!["http://app.example".into()];
    })
    .await;
    let admin = bearer(&token(json!({"admin": true})));
    let reply = server
        .send(
            Method::GET,
            "/channels",
            &[("origin", "http://app.example"), ("authorization", &admin)],
            None,
        )
        .await;
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "http://app.example"
    );
    assert_eq!(reply.headers["access-control-allow-credentials"], "true");
    // Refusals carry the CORS headers too, so a page can read why.
    let reply = server
        .send(
            Method::GET,
            "/channels",
            &[("origin", "http://app.example")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers["access-control-allow-credentials"], "true");
    server.shutdown().await;

    let server = secured(|config| config.cors_allowed_origins = vec!["*".into()]).await;
    let reply = server
        .send(
            Method::GET,
            "/channels",
            &[("origin", "http://app.example"), ("authorization", &admin)],
            None,
        )
        .await;
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "http://app.example"
    );
    assert!(reply
        .headers
        .get("access-control-allow-credentials")
        .is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_key_no_token_is_needed_or_read() {
    let server = TestServer::start().await;
    server.container.add_with_id("c").unwrap();
    let reply = server
        .send(
            Method::GET,
            "/channels",
            &[("authorization", "Bearer nonsense")],
            None,
        )
        .await;
    assert_eq!(reply.json(), json!(["c"]));
    let stream = bounded("a stream", SseClient::open(server.addr, "/watch/c", &[])).await;
    assert_eq!(stream.status, StatusCode::OK);
    drop(stream);
    server.shutdown().await;
}

#[tokio::test]
async fn the_metrics_and_the_monitor_need_an_admin_token_and_the_probes_none() {
    let server = secured(|_| {}).await;
    let admin = token(json!({"admin": true}));
    let everything = token(json!({"publish": ["*"], "subscribe": ["*"]}));
    for path in ["/metrics", "/monitor"] {
        assert_unauthorized(&call(&server, Method::GET, path, "", None).await, "token");
        assert_forbidden(
            &call(&server, Method::GET, path, &everything, None).await,
            "admin",
        );
        let reply = call(&server, Method::GET, path, &admin, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    for path in ["/healthz", "/readyz"] {
        let reply = call(&server, Method::GET, path, "", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    server.shutdown().await;
}
