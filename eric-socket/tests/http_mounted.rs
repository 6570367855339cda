//! The route, stream and host-check tests of `HttpServer` again, against eric's API mounted as an
//! `HttpService` under `/eric` in an axum application served by `axum::serve`: the same
//! test code, compiled here as modules of this crate, where `TestServer` starts the
//! mounted form and the request helpers put the prefix before every path (see
//! `tests/common`). The few tests of what belongs to eric's own listener start
//! `HttpServer` in both runs (`TestServer::start_listener_with`).
#![cfg(feature = "tower")]
// Each test file brings its own copy of the helpers, as it does in its own crate.
#![allow(clippy::duplicate_mod)]

use tokio::io::AsyncWriteExt;

#[path = "http_host_and_type.rs"]
mod http_host_and_type;
#[path = "http_routes.rs"]
mod http_routes;
#[path = "http_streams.rs"]
mod http_streams;

#[path = "http_support/mod.rs"]
mod http_support;

#[tokio::test]
async fn the_application_keeps_its_own_routes_beside_the_mounted_api() {
    let server = http_support::TestServer::start().await;
    assert!(http_support::path_prefix() == "/eric");
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(http_support::read_to_close(&mut tcp).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nthe application's own page"),
        "{answer}"
    );
    assert!(http_support::with_prefix(
        b"GET /watch/c HTTP/1.1\r\n\r\nPUT /create HTTP/1.1\r\n\r\n"
    )
    .starts_with(b"GET /eric/watch/c HTTP/1.1\r\n\r\nPUT /eric/create HTTP/1.1"));
}
