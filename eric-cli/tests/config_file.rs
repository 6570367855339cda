//! `eric serve --config FILE` and `--print-config`, through the binary: which of file,
//! environment and flag wins, the errors, and a server started from a file.

use assert_cmd::Command;
use predicates::prelude::*;
use rustix::process::Signal;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const ERIC: &str = env!("CARGO_BIN_EXE_eric");
const WAIT: Duration = Duration::from_secs(10);

/// `eric` with none of its variables inherited from the test's environment.
fn eric() -> Command {
    let mut command = Command::new(ERIC);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ERIC_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.timeout(WAIT);
    command
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("eric.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The value of `key` in the effective configuration `eric serve ... --print-config`
/// prints.
fn printed(output: &[u8], key: &str) -> toml::Value {
    let table: toml::Table = toml::from_str(std::str::from_utf8(output).unwrap()).unwrap();
    table[key].clone()
}

#[test]
fn the_file_is_below_the_environment_which_is_below_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "history = 1\nretry-ms = 11\nmax-streams = 3\nhttp = \"127.0.0.1:9101\"\n",
    );
    let output = eric()
        .args(["serve", "--print-config", "--history", "2"])
        .env("ERIC_CONFIG", &path)
        .env("ERIC_HISTORY", "5")
        .env("ERIC_RETRY_MS", "22")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let value = |key| printed(&output.stdout, key);
    assert_eq!(
        value("history").as_integer(),
        Some(2),
        "flag over env and file"
    );
    assert_eq!(value("retry-ms").as_integer(), Some(22), "env over file");
    assert_eq!(
        value("max-streams").as_integer(),
        Some(3),
        "file over default"
    );
    assert_eq!(
        value("http").as_str(),
        Some("127.0.0.1:9101"),
        "a global flag"
    );
    assert_eq!(
        value("max-body-bytes").as_integer(),
        Some(1_114_112),
        "default"
    );
}

#[test]
fn the_printed_configuration_is_a_file_that_reads_back_to_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let first = eric()
        .args([
            "serve",
            "--print-config",
            "--cors-origin",
            "https://a.example",
        ])
        .args(["--queue-capacity", "4", "--no-http"])
        .output()
        .unwrap();
    assert!(first.status.success(), "{first:?}");
    let path = write(dir.path(), std::str::from_utf8(&first.stdout).unwrap());
    let again = eric()
        .args(["serve", "--print-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&first.stdout)
    );
    assert_eq!(
        printed(&again.stdout, "cors-origin"),
        toml::Value::Array(vec!["https://a.example".into()])
    );
}

#[test]
fn secrets_are_not_printed() {
    let output = eric()
        .args(["serve", "--print-config", "--jwt-secret", "hunter2-signing"])
        .args(["--redis", "redis://app:hunter2-redis@127.0.0.1:6379/0"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("# jwt-secret = (set; a secret, not printed)"),
        "{text}"
    );
    assert_eq!(
        printed(text.as_bytes(), "redis").as_str(),
        Some("redis://app:********@127.0.0.1:6379/0")
    );
}

#[test]
fn an_unknown_key_or_a_bad_value_exits_5_naming_the_key_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        (
            "history = 3\nmax-stream = 9\n",
            "eric.toml:2: max-stream: unknown key",
        ),
        ("\n\nqueue-capacity = -1\n", "eric.toml:3: queue-capacity: "),
        (
            "history = 3\nhistory = 4\n",
            "eric.toml:2: not a valid TOML file",
        ),
    ] {
        let path = write(dir.path(), text);
        eric()
            .args(["serve", "--config"])
            .arg(&path)
            .assert()
            .code(5)
            .stderr(predicate::str::contains(needle));
    }
    eric()
        .args(["serve", "--config"])
        .arg(dir.path().join("missing.toml"))
        .assert()
        .code(6)
        .stderr(predicate::str::contains("missing.toml"));
}

#[test]
fn a_bad_value_of_the_file_is_an_error_even_where_a_flag_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "max-streams = 0\n");
    eric()
        .args(["serve", "--print-config", "--max-streams", "8", "--config"])
        .arg(&path)
        .assert()
        .code(5)
        .stderr(predicate::str::contains("eric.toml:1: max-streams: "));
}

#[test]
fn a_server_started_from_a_file_listens_where_the_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("from-file.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = write(
        dir.path(),
        &format!(
            "socket = {:?}\nhttp = \"127.0.0.1:{port}\"\n",
            socket.to_str().unwrap()
        ),
    );
    let mut child = std::process::Command::new(ERIC)
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("ERIC_SOCKET")
        .env_remove("ERIC_HTTP")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let answered = loop {
        if socket.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let _ = rustix::process::kill_process(pid, Signal::TERM);
    let status = child.wait().unwrap();
    assert!(
        answered,
        "the server did not listen at the file's addresses"
    );
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
}
