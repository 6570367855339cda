//! Interoperability with the Python reference, eric-sse 0.6.0.3: its own `SocketClient`
//! and raw asyncio streams drive eric's Unix server (tests/interop/reference_client.py),
//! and eric's `SocketClient` drives the reference's server.
//!
//! The Python interpreter is `$ERIC_PYTHON`, else `.venv/bin/python` at the workspace
//! root if it exists, else `python3`. It must have eric-sse 0.6.0.3 installed: these
//! tests fail, not skip, without it.

mod common;

use common::{bounded, eventually, TestServer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const REFERENCE_VERSION: &str = "0.6.0.3";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("eric-socket lives in the workspace")
        .to_path_buf()
}

/// The interpreter with the reference installed; fails the test with what to do if there
/// is none.
async fn python() -> PathBuf {
    let python = match std::env::var_os("ERIC_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => {
            let venv = workspace_root().join(".venv/bin/python");
            if venv.exists() {
                venv
            } else {
                PathBuf::from("python3")
            }
        }
    };
    let help = "these tests need Python with the reference installed: run `.ci/run`, or create \
                the venv at the workspace root: `python3 -m venv .venv && .venv/bin/pip install \
                eric-sse==0.6.0.3` (or point ERIC_PYTHON at an interpreter that has it)";
    let probe = tokio::process::Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata, eric_sse.clients, eric_sse.servers; \
             print(importlib.metadata.version('eric-sse'))",
        ])
        .output();
    let output = match bounded("the Python probe", probe).await {
        Ok(output) => output,
        Err(error) => panic!("cannot run {}: {error}; {help}", python.display()),
    };
    assert!(
        output.status.success(),
        "{} cannot import eric_sse: {}; {help}",
        python.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(
        version,
        REFERENCE_VERSION,
        "{} has eric-sse {version}, not {REFERENCE_VERSION}; {help}",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python reference (eric-sse 0.6.0.3)"]
async fn the_reference_python_client_and_streams_work_against_eric() {
    let python = python().await;
    let server = TestServer::start().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/reference_client.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&server.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the Python client finishes within 60 s")
        .expect("the Python client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the reference client found a difference ({}):\n{stderr}\n{stdout}",
        output.status
    );
    assert!(stdout.starts_with("OK: "), "{stdout}");

    // The server kept nothing it should not: the watcher's listener went with its
    // stream, the two registered listeners stay, every connection is closed.
    let summary = stdout
        .lines()
        .find_map(|line| line.strip_prefix("channel "))
        .expect("the script names its channel");
    let words: Vec<&str> = summary.split_whitespace().collect();
    let (channel, registered) = (words[0], [words[2], words[3]]);
    eventually("the watcher's listener is removed", || {
        server.listeners_of(channel) == 2
    })
    .await;
    let listeners = server.container.snapshot()[channel].clone();
    let mut expected = registered.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(listeners, expected);
    eventually("every connection is closed", || server.gauge.open() == 0).await;
    server.shutdown().await;
}

/// The reference's server, run as a child process; killed when dropped.
struct ReferenceServer {
    child: tokio::process::Child,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ReferenceServer {
    async fn start(python: &Path) -> ReferenceServer {
        let dir = common::socket_dir();
        let path = dir.path().join("reference.sock");
        let child = tokio::process::Command::new(python)
            .arg("-c")
            .arg("import sys; from eric_sse.servers import SocketServer; SocketServer.start(sys.argv[1])")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the reference server starts");
        // The file appears at bind, a moment before the server listens: wait until it
        // accepts (the probe is an empty command, which it answers with an error).
        eventually("the reference server accepts connections", || {
            std::os::unix::net::UnixStream::connect(&path).is_ok()
        })
        .await;
        ReferenceServer {
            child,
            path,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id().expect("the server runs") as i32);
        rustix::process::kill_process(pid.expect("a child's pid"), rustix::process::Signal::TERM)
            .expect("the server is there to signal");
        let _ = bounded("the reference server exits", self.child.wait()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python reference (eric-sse 0.6.0.3)"]
async fn eric_socket_client_works_against_the_reference_server() {
    let python = python().await;
    let reference = ReferenceServer::start(&python).await;
    let client = eric_socket::SocketClient::new(&reference.path);
    let channel = client.create_channel().await.unwrap();
    let listener = client.register(&channel).await.unwrap();
    client
        .dispatch(&channel, &listener, "direct", json!({"n": 1}))
        .await
        .unwrap();
    client
        .broadcast(&channel, "all", json!([1, "two"]))
        .await
        .unwrap();

    // The reference streams a watcher with its own lines: eric's client parses them.
    let mut watched = client.watch(&channel).await.unwrap();
    let mut event = None;
    for n in 0..200 {
        client.broadcast(&channel, "ping", json!(n)).await.unwrap();
        if let Ok(next) =
            tokio::time::timeout(Duration::from_millis(50), watched.next_event()).await
        {
            event = next;
            break;
        }
    }
    let event = event
        .expect("a line")
        .expect("an event eric's client parses");
    assert_eq!(event.event(), "ping");
    assert_eq!(event.retry(), 5);

    // Error answers of the reference are read back into name and message.
    match client.register("no-such-channel").await {
        Err(eric_socket::ClientError::Server { name, message }) => {
            assert_eq!(name, "InvalidChannelException");
            assert_eq!(message, "No channel with id no-such-channel");
        }
        other => panic!("expected the reference's error, got {other:?}"),
    }
    match client.dispatch(&channel, "nobody", "t", json!(null)).await {
        Err(eric_socket::ClientError::Server { name, message }) => {
            assert_eq!(name, "InvalidListenerException");
            assert_eq!(message, "Invalid listener nobody");
        }
        other => panic!("expected the reference's error, got {other:?}"),
    }
    drop(watched);
    reference.stop().await;
}
