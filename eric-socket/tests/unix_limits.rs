//! The Unix server's limits and its socket file: read timeout, command size limit,
//! stale, live and foreign files at the path, file mode.

mod common;

use common::{bounded, read_to_end_or_reset, socket_dir, TestServer};
use eric_socket::{ChannelContainer, UnixServer, UnixServerConfig};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

#[tokio::test]
async fn a_client_that_never_half_closes_gets_a_timeout_error() {
    let timeout = Duration::from_millis(200);
    let server = TestServer::start_unix_with(|config| config.read_timeout = timeout).await;
    let started = Instant::now();
    let mut stream = UnixStream::connect(&server.path).await.unwrap();
    // A complete command, but no half-close: the server cannot know it is complete.
    stream.write_all(br#"{"v": "c"}"#).await.unwrap();
    let answer = bounded("the timeout answer", read_to_end_or_reset(&mut stream)).await;
    let answer = String::from_utf8(answer).unwrap();
    assert!(started.elapsed() >= timeout, "answered too early");
    assert!(
        answer.starts_with("TimeoutError('") && answer.ends_with("')"),
        "{answer:?}"
    );
    assert!(answer.contains("half-close"), "says what to do: {answer:?}");
    assert!(server.container.is_empty(), "the command was not executed");
    eventually_closed(&server).await;
    server.assert_serves().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_sends_nothing_gets_a_timeout_error() {
    let server =
        TestServer::start_unix_with(|config| config.read_timeout = Duration::from_millis(100))
            .await;
    let mut stream = UnixStream::connect(&server.path).await.unwrap();
    let answer = bounded("the timeout answer", read_to_end_or_reset(&mut stream)).await;
    assert!(answer.starts_with(b"TimeoutError("), "{answer:?}");
    eventually_closed(&server).await;
    server.shutdown().await;
}

async fn eventually_closed(server: &TestServer) {
    common::eventually("no connection left open", || server.gauge.open() == 0).await;
}

#[tokio::test]
async fn a_command_over_max_command_bytes_is_refused_before_it_ends() {
    let server = TestServer::start_unix_with(|config| config.max_command_bytes = 1024).await;
    let mut stream = UnixStream::connect(&server.path).await.unwrap();
    // 4 KiB of a command that never ends: no half-close. A server that buffered until
    // EOF would wait forever; this one refuses as soon as the limit is passed.
    let mut command = br#"{"v": "c", "p": ""#.to_vec();
    command.resize(4096, b'a');
    stream.write_all(&command).await.unwrap();
    let answer = bounded("the refusal", read_to_end_or_reset(&mut stream)).await;
    assert_eq!(
        String::from_utf8(answer).unwrap(),
        "InvalidMessageFormat('command larger than 1024 bytes: refused')"
    );
    assert!(server.container.is_empty(), "the command was not executed");
    eventually_closed(&server).await;
    server.assert_serves().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_huge_command_is_refused_while_the_client_is_still_writing() {
    let server = TestServer::start_unix_with(|config| config.max_command_bytes = 64 << 10).await;
    let stream = UnixStream::connect(&server.path).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // 64 MiB: far more than the socket buffers hold, so the writer blocks until the
    // server closes; then its write fails (broken pipe), which is expected.
    let writing = tokio::spawn(async move {
        let block = vec![b' '; 1 << 20];
        for _ in 0..64 {
            if writer.write_all(&block).await.is_err() {
                return false;
            }
        }
        true
    });
    let mut answer = Vec::new();
    bounded("the refusal", async {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert_eq!(
        String::from_utf8(answer).unwrap(),
        format!(
            "InvalidMessageFormat('command larger than {} bytes: refused')",
            64 << 10
        )
    );
    let wrote_everything = bounded("the writer gives up", writing).await.unwrap();
    assert!(!wrote_everything, "the server did not read 64 MiB");
    eventually_closed(&server).await;
    server.assert_serves().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_command_of_exactly_max_command_bytes_is_accepted() {
    let limit = 1024;
    let server = TestServer::start_unix_with(|config| config.max_command_bytes = limit).await;
    let channel = server.channel().await;
    let head = format!(r#"{{"v": "b", "c": "{channel}", "t": "t", "p": ""#);
    let padding = "x".repeat(limit - head.len() - 2);
    let command = format!("{head}{padding}\"}}");
    assert_eq!(command.len(), limit);
    assert_eq!(server.send_command(&command).await, "ack");
    let over = format!("{head}{padding}x\"}}");
    assert_eq!(
        server.send_command(&over).await,
        format!("InvalidMessageFormat('command larger than {limit} bytes: refused')")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = socket_dir();
    let path = dir.path().join("stale.sock");
    // A socket file left behind by a server that died: nobody listens on it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = UnixServer::bind(
        UnixServerConfig::new(&path),
        Arc::new(ChannelContainer::new()),
    )
    .await
    .expect("a stale socket file does not stop the server");
    let stop = server.shutdown_handle();
    let running = tokio::spawn(server.run());
    let answer = common::send_raw(&path, br#"{"v": "c"}"#).await;
    assert!(common::is_decimal_id(&answer), "{answer:?}");
    stop.shutdown();
    bounded("the server stops", running).await.unwrap().unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn a_live_socket_is_refused_with_addr_in_use() {
    let server = TestServer::start().await;
    let error = UnixServer::bind(
        UnixServerConfig::new(&server.path),
        Arc::new(ChannelContainer::new()),
    )
    .await
    .expect_err("a second server on a live socket");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
    // The first server is undisturbed.
    server.assert_serves().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_untouched() {
    let dir = socket_dir();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, "do not delete").unwrap();
    let error = UnixServer::bind(
        UnixServerConfig::new(&path),
        Arc::new(ChannelContainer::new()),
    )
    .await
    .expect_err("binding over a regular file");
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists, "{error}");
    assert!(error.to_string().contains("not a socket"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "do not delete");

    let directory = dir.path().join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    UnixServer::bind(
        UnixServerConfig::new(&directory),
        Arc::new(ChannelContainer::new()),
    )
    .await
    .expect_err("binding over a directory");
    assert!(directory.is_dir());
}

#[tokio::test]
async fn the_socket_file_is_private_by_default() {
    let server = TestServer::start().await;
    let mode = std::fs::metadata(&server.path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_socket_file_gets_the_configured_mode() {
    let server = TestServer::start_unix_with(|config| config.mode = 0o660).await;
    let mode = std::fs::metadata(&server.path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "mode {mode:o}");
    server.assert_serves().await;
    server.shutdown().await;
}

#[tokio::test]
async fn no_staging_file_is_left_next_to_the_socket() {
    let server = TestServer::start().await;
    let dir = server.path.parent().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("eric.sock")]);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_max_connections_wait_until_one_ends() {
    let server = TestServer::start_unix_with(|config| config.max_connections = 2).await;
    // Two connections that say nothing hold both places.
    let first = UnixStream::connect(&server.path).await.unwrap();
    let _second = UnixStream::connect(&server.path).await.unwrap();
    eventually_open(&server, 2).await;
    let path = server.path.clone();
    let third = tokio::spawn(async move { common::send_raw(&path, br#"{"v": "c"}"#).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!third.is_finished(), "served over the limit");
    assert!(
        server.container.is_empty(),
        "the third command ran over the limit"
    );
    drop(first);
    let answer = bounded("the third is served", third).await.unwrap();
    assert!(common::is_decimal_id(&answer), "{answer:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_prompt_while_max_connections_are_taken() {
    let server = TestServer::start_unix_with(|config| {
        config.max_connections = 1;
        config.shutdown_grace = Duration::from_millis(100);
    })
    .await;
    let _idle = UnixStream::connect(&server.path).await.unwrap();
    eventually_open(&server, 1).await;
    // A client waits in the backlog for a place that never frees.
    let _waiting = UnixStream::connect(&server.path).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn silent_clients_do_not_hold_up_the_others() {
    let server = TestServer::start().await;
    // A silent client is handed to the runtime as soon as another client waits to be
    // accepted, then waits for its command (or its read timeout) without holding up
    // anyone. That the accept thread lets a silent client go when the next one comes,
    // rather than when its brief wait runs out, is checked without a clock by the
    // accept thread's unit tests; here, 400 of them, then commands, all served.
    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(UnixStream::connect(&server.path).await.unwrap());
    }
    server.assert_serves().await;
    eventually_open(&server, 400).await;
    // A handed-off connection still gets its answer.
    let mut late = silent.pop().unwrap();
    late.write_all(br#"{"v": "c"}"#).await.unwrap();
    late.shutdown().await.unwrap();
    let answer = bounded("the late command", read_to_end_or_reset(&mut late)).await;
    assert!(common::is_decimal_id(&String::from_utf8(answer).unwrap()));
    drop(silent);
    eventually_closed(&server).await;
    server.shutdown().await;
}

async fn eventually_open(server: &TestServer, open: usize) {
    common::eventually("connections open", || server.gauge.open() == open).await;
}
