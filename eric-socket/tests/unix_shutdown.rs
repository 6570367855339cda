//! Graceful shutdown: by the handle in process, and by SIGTERM for the example server
//! run as a child process.

mod common;

use common::{bounded, eventually, read_to_end_or_reset, RawStream, TestServer};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;

#[tokio::test]
async fn shutdown_ends_open_streams_and_removes_the_socket_file() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let listener = server.listener(&channel).await;
    let mut listened = RawStream::listen(&server.path, &channel, &listener).await;
    let mut watched = RawStream::watch(&server.path, &channel).await;
    eventually("the watcher is registered", || {
        server.listeners_of(&channel) == 2
    })
    .await;
    let path = server.path.clone();
    let container = std::sync::Arc::clone(&server.container);
    let gauge = server.gauge.clone();
    // Stops, waits for `run` to return, checks the socket file is gone.
    server.shutdown().await;
    for stream in [&mut listened, &mut watched] {
        stream.assert_ends().await;
    }
    assert_eq!(gauge.open(), 0);
    assert!(!path.exists());
    // The watcher's listener went with its stream; the registered one stays.
    assert_eq!(container.get(&channel).unwrap().listener_ids(), [listener]);
    let refused = UnixStream::connect(&path)
        .await
        .expect_err("no server any more");
    assert_eq!(refused.kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test]
async fn shutdown_cuts_a_stuck_connection_after_the_grace_period() {
    let grace = Duration::from_millis(200);
    // A read timeout no test outlives: if shutdown waited for the connection rather
    // than cutting it, `shutdown` below would fail its bounded wait, and the client
    // would read a TimeoutError instead of nothing.
    let server = TestServer::start_unix_with(|config| {
        config.read_timeout = Duration::from_secs(3600);
        config.shutdown_grace = grace;
    })
    .await;
    // Connected, but never sends its command: it holds its connection open.
    let mut stuck = UnixStream::connect(&server.path).await.unwrap();
    eventually("the connection is open", || server.gauge.open() == 1).await;
    let gauge = server.gauge.clone();
    let started = Instant::now();
    server.shutdown().await;
    let took = started.elapsed();
    assert!(took >= grace, "waited the grace period ({took:?})");
    // Then cut it: the connection is closed, with no answer.
    assert_eq!(gauge.open(), 0);
    let answer = bounded("the cut connection ends", read_to_end_or_reset(&mut stuck)).await;
    assert!(answer.is_empty(), "{answer:?}");
}

#[tokio::test]
async fn a_command_in_flight_at_shutdown_is_still_answered() {
    let server = TestServer::start().await;
    let mut stream = UnixStream::connect(&server.path).await.unwrap();
    eventually("the connection is open", || server.gauge.open() == 1).await;
    let path = server.path.clone();
    let stop = server.stop.clone();
    let finishing = tokio::spawn(server.shutdown());
    eventually("the socket file is removed: no new connection", || {
        !path.exists()
    })
    .await;
    // The open connection sends its command now and gets its answer.
    use tokio::io::AsyncWriteExt;
    stream.write_all(br#"{"v": "c"}"#).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    bounded("the answer", stream.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(common::is_decimal_id(&answer), "{answer:?}");
    assert!(stop.is_shutdown());
    bounded("the server stops", finishing).await.unwrap();
}

/// Builds the `unix_server` example into the target directory of this test binary, with
/// the same profile, and returns its path.
fn build_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/<this test>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary lives in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target directory");
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "--package",
            "eric-socket",
            "--example",
            name,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(profile) => {
            cargo.args(["--profile", profile]);
        }
        None => panic!("no profile directory in {}", exe.display()),
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building the {name} example failed");
    let binary = profile_dir.join("examples").join(name);
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_and_the_example_server_exits_zero_without_its_socket() {
    let binary = tokio::task::spawn_blocking(|| build_example("unix_server"))
        .await
        .unwrap();
    let dir = common::socket_dir();
    let path = dir.path().join("example.sock");
    let mut child = tokio::process::Command::new(&binary)
        .arg(&path)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = bounded("the example says it listens", stdout.next_line())
        .await
        .unwrap();
    assert_eq!(first, Some(format!("listening on {}", path.display())));

    let client = eric_socket::SocketClient::new(&path);
    let channel = client.create_channel().await.unwrap();
    let listener = client.register(&channel).await.unwrap();
    let mut listened = RawStream::listen(&path, &channel, &listener).await;
    let mut watched = RawStream::watch(&path, &channel).await;
    // Both streams are live: a broadcast that reaches the watcher was sent after it
    // registered, so it reaches both. Before that, broadcasts may miss the watcher.
    bounded("a broadcast reaches the watcher", async {
        loop {
            client
                .broadcast(&channel, "ping", serde_json::json!(null))
                .await
                .unwrap();
            if watched.try_line(Duration::from_millis(20)).await.is_some() {
                break;
            }
        }
    })
    .await;
    assert_eq!(listened.line().await, common::line("ping", "null"));

    let pid = child.id().expect("the child runs").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    // Each stream ends; lines already on their way may still come first.
    for stream in [&mut listened, &mut watched] {
        while let Some(line) = stream.next_line().await {
            assert_eq!(line, common::line("ping", "null"));
        }
    }
    let status = bounded("the example exits", child.wait()).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(!path.exists(), "the socket file is removed");
    let last = bounded("the example's last words", stdout.next_line())
        .await
        .unwrap();
    assert_eq!(last.as_deref(), Some("stopped"));
}

#[tokio::test]
async fn dropping_the_run_future_stops_serving_at_once() {
    let dir = common::socket_dir();
    let path = dir.path().join("dropped.sock");
    let server = eric_socket::UnixServer::bind(
        eric_socket::UnixServerConfig::new(&path),
        std::sync::Arc::new(eric_socket::ChannelContainer::new()),
    )
    .await
    .unwrap();
    let gauge = server.connection_gauge();
    let running = tokio::spawn(server.run());
    assert!(common::is_decimal_id(
        &common::send_raw(&path, br#"{"v": "c"}"#).await
    ));
    let _open = UnixStream::connect(&path).await.unwrap();
    eventually("the connection is open", || gauge.open() == 1).await;
    running.abort();
    assert!(bounded("the run task ends", running).await.is_err());
    eventually("its connections are cut", || gauge.open() == 0).await;
    // The socket file stays (nobody removed it), but nobody answers on it any more:
    // the next server replaces it as stale.
    let refused = UnixStream::connect(&path)
        .await
        .expect_err("nobody listens");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}
