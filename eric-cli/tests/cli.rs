//! The `eric` binary against a real `eric serve`, both run as child processes.
//!
//! Every wait is bounded: a hung server or stream fails the test instead of hanging it.

use assert_cmd::Command;
use predicates::prelude::*;
use rustix::process::Signal;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ERIC: &str = env!("CARGO_BIN_EXE_eric");
const WAIT: Duration = Duration::from_secs(10);

/// Environment variables that would change what the binary does.
const ENVIRONMENT: &[&str] = &[
    "ERIC_SOCKET",
    "ERIC_HTTP",
    "ERIC_LOG_LEVEL",
    "ERIC_NO_HTTP",
    "ERIC_LOG_FORMAT",
    "ERIC_METRICS_ADDR",
    "RUST_LOG",
];

/// A running `eric serve` in a temporary directory, on a free port; killed on drop.
struct Server {
    child: Option<Child>,
    socket: PathBuf,
    http: String,
    /// The file its stderr (the log) goes to, if kept.
    log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(flags: &[&str]) -> Server {
        Server::launch(flags, false)
    }

    /// A server whose log is kept, for [`Server::stop_and_read_log`].
    fn start_logged(flags: &[&str]) -> Server {
        Server::launch(flags, true)
    }

    fn launch(flags: &[&str], keep_log: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = keep_log.then(|| dir.path().join("serve.log"));
        let socket = dir.path().join("eric.sock");
        let http = format!("127.0.0.1:{}", free_port());
        let mut command = std::process::Command::new(ERIC);
        command
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--http")
            .arg(&http)
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(match &log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::null(),
            });
        for name in ENVIRONMENT {
            command.env_remove(name);
        }
        let child = command.spawn().unwrap();
        let server = Server {
            child: Some(child),
            socket,
            http,
            log,
            _dir: dir,
        };
        wait_until("the server listens", || server.socket.exists());
        server
    }

    /// `eric` with this server's `--socket` and `--http`.
    fn eric(&self) -> Command {
        let mut command = Command::new(ERIC);
        command
            .arg("--socket")
            .arg(&self.socket)
            .arg("--http")
            .arg(&self.http)
            .timeout(WAIT);
        for name in ENVIRONMENT {
            command.env_remove(name);
        }
        command
    }

    /// Runs `eric ARGS...` and returns its stdout, trimmed; fails unless it exits 0.
    fn output(&self, args: &[&str]) -> String {
        let output = self
            .eric()
            .args(args)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn create_channel(&self) -> String {
        self.output(&["channel", "create"])
    }

    fn add_listener(&self, channel: &str) -> String {
        self.output(&["listener", "add", channel])
    }

    /// Starts `eric ARGS...` whose stdout is read line by line.
    fn stream(&self, args: &[&str]) -> Streaming {
        let mut command = std::process::Command::new(ERIC);
        command
            .arg("--socket")
            .arg(&self.socket)
            .arg("--http")
            .arg(&self.http)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for name in ENVIRONMENT {
            command.env_remove(name);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming { child, lines }
    }

    /// The listener ids of `channel`, from the HTTP API.
    fn listeners(&self, channel: &str) -> Vec<String> {
        let snapshot: Value =
            serde_json::from_str(&self.output(&["channel", "list", "--listeners", "--json"]))
                .unwrap();
        serde_json::from_value(snapshot[channel].clone()).unwrap_or_default()
    }

    /// Waits until `channel` has `count` listeners (a `watch` registers its own).
    fn wait_for_listeners(&self, channel: &str, count: usize) {
        wait_until("the listener is registered", || {
            self.listeners(channel).len() == count
        });
    }

    fn signal(&self, sent: Signal) {
        signal(self.child.as_ref().unwrap(), sent);
    }

    /// Waits for the server to exit on its own.
    fn wait(mut self) -> ExitStatus {
        wait_for_exit(self.child.as_mut().unwrap())
    }

    /// Stops the server with SIGTERM, waits for it, and returns all it logged.
    fn stop_and_read_log(mut self) -> String {
        let log = self.log.take().expect("a server started with start_logged");
        self.signal(Signal::TERM);
        assert!(wait_for_exit(self.child.as_mut().unwrap()).success());
        std::fs::read_to_string(log).unwrap()
    }

    /// A keep-alive HTTP/1.1 connection to the server.
    fn http_connection(&self) -> Http {
        let tcp = std::net::TcpStream::connect(&self.http).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        tcp.set_nodelay(true).unwrap();
        Http {
            reader: BufReader::new(tcp),
            host: self.http.clone(),
        }
    }

    /// One socket command, written whole and half-closed; the answer.
    fn command(&self, command: &str) -> String {
        let mut unix = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        unix.set_read_timeout(Some(WAIT)).unwrap();
        unix.write_all(command.as_bytes()).unwrap();
        unix.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        unix.read_to_string(&mut answer).unwrap();
        answer
    }
}

/// An HTTP/1.1 connection written and read by hand: requests as a hostile client would
/// write them, percent-encoding and all.
struct Http {
    reader: BufReader<std::net::TcpStream>,
    host: String,
}

impl Http {
    /// Sends one request (a JSON body if any) and reads its answer: status and body.
    fn request(&mut self, method: &str, target: &str, body: Option<&str>) -> (u16, String) {
        let body = body.unwrap_or_default();
        // In one write: a request in pieces would wait on Nagle and delayed ACKs.
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer).unwrap();
        (status, String::from_utf8(answer).unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client printing a stream; killed on drop.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("a line within the time limit")
    }

    fn wait(&mut self) -> ExitStatus {
        wait_for_exit(&mut self.child)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`TERM`, `INT`) to `child`.
fn signal(child: &Child, sent: Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a child's pid");
    rustix::process::kill_process(pid, sent).expect("the child is there to signal");
}

/// `eric` with nothing listening at its socket or HTTP address.
fn eric_without_server(dir: &Path) -> Command {
    let mut command = Command::new(ERIC);
    command
        .arg("--socket")
        .arg(dir.join("nobody.sock"))
        .arg("--http")
        .arg(format!("127.0.0.1:{}", free_port()))
        .timeout(WAIT);
    for name in ENVIRONMENT {
        command.env_remove(name);
    }
    command
}

#[test]
fn listen_prints_dispatched_messages_as_type_and_json_data() {
    let server = Server::start();
    let channel = server.create_channel();
    let listener = server.add_listener(&channel);
    server.output(&["dispatch", &channel, &listener, "greeting", r#"{"hi": 1}"#]);
    server.output(&["dispatch", &channel, &listener, "bare"]);
    let printed = server.output(&["listen", &channel, &listener, "--count", "2"]);
    assert_eq!(printed, "greeting {\"hi\":1}\nbare null");
}

#[test]
fn watch_prints_broadcasts_as_they_come() {
    let server = Server::start();
    let channel = server.create_channel();
    let watch = server.stream(&["watch", &channel]);
    server.wait_for_listeners(&channel, 1);
    server.output(&["broadcast", &channel, "news", "[1, 2]"]);
    assert_eq!(watch.next_line(), "news [1,2]");
    server.output(&["broadcast", &channel, "more", r#""text""#]);
    assert_eq!(watch.next_line(), r#"more "text""#);
}

#[test]
fn json_flag_prints_each_event_as_its_wire_object() {
    let server = Server::start();
    let channel = server.create_channel();
    let listener = server.add_listener(&channel);
    server.output(&["dispatch", &channel, &listener, "greeting", r#"{"hi":1}"#]);
    let printed = server.output(&["listen", &channel, &listener, "--json", "-n", "1"]);
    let event: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        event,
        json!({"event": "greeting", "retry": 5, "data": {"hi": 1}})
    );
}

#[test]
fn a_dash_reads_the_payload_from_stdin() {
    let server = Server::start();
    let channel = server.create_channel();
    let listener = server.add_listener(&channel);
    server
        .eric()
        .args(["broadcast", &channel, "from-stdin", "-"])
        .write_stdin("{\"lines\": [\"a\",\n \"b\"]}\n")
        .assert()
        .success();
    let printed = server.output(&["listen", &channel, &listener, "-n", "1"]);
    assert_eq!(printed, r#"from-stdin {"lines":["a","b"]}"#);
}

#[test]
fn a_payload_that_is_not_json_exits_5_naming_it() {
    let server = Server::start();
    let channel = server.create_channel();
    server
        .eric()
        .args(["broadcast", &channel, "greeting", "hello"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("`hello` is not JSON"))
        .stderr(predicate::str::contains(r#"'"text"'"#));
    server
        .eric()
        .args(["broadcast", &channel, "greeting", "-"])
        .write_stdin("{broken")
        .assert()
        .code(5)
        .stderr(predicate::str::contains("read from stdin is not JSON"));
}

#[test]
fn an_unknown_channel_or_listener_exits_4_with_the_servers_reason() {
    let server = Server::start();
    server
        .eric()
        .args(["broadcast", "no-such-channel", "t"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("InvalidChannelException"))
        .stderr(predicate::str::contains("no-such-channel"));
    let channel = server.create_channel();
    server
        .eric()
        .args(["dispatch", &channel, "no-such-listener", "t"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("InvalidListenerException"));
    server
        .eric()
        .args(["watch", "no-such-channel"])
        .assert()
        .code(4);
}

#[test]
fn without_a_server_clients_exit_3_and_say_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    eric_without_server(dir.path())
        .args(["channel", "create"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no server at"))
        .stderr(predicate::str::contains("nobody.sock"))
        .stderr(predicate::str::contains("eric serve"));
    eric_without_server(dir.path())
        .args(["watch", "1"])
        .assert()
        .code(3);
    eric_without_server(dir.path())
        .args(["channel", "list"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no HTTP API"));
}

#[test]
fn sigterm_stops_serve_with_0_and_removes_the_socket() {
    let server = Server::start();
    let socket = server.socket.clone();
    server.signal(Signal::TERM);
    assert!(server.wait().success());
    assert!(!socket.exists());
}

#[test]
fn stopping_the_server_ends_streams_with_exit_0() {
    let server = Server::start();
    let channel = server.create_channel();
    let mut watch = server.stream(&["watch", &channel]);
    server.wait_for_listeners(&channel, 1);
    server.signal(Signal::INT);
    assert!(watch.wait().success());
    assert!(server.wait().success());
}

#[test]
fn ctrl_c_ends_a_stream_with_exit_0() {
    let server = Server::start();
    let channel = server.create_channel();
    let mut watch = server.stream(&["watch", &channel]);
    server.wait_for_listeners(&channel, 1);
    signal(&watch.child, Signal::INT);
    assert!(watch.wait().success());
    // The watch's listener goes with it.
    server.wait_for_listeners(&channel, 0);
}

#[test]
fn removing_a_listener_ends_its_stream_with_the_closed_event() {
    let server = Server::start();
    let channel = server.create_channel();
    let listener = server.add_listener(&channel);
    server.output(&["dispatch", &channel, &listener, "first"]);
    let mut listen = server.stream(&["listen", &channel, &listener]);
    assert_eq!(listen.next_line(), "first null");
    server.output(&["listener", "rm", &channel, &listener]);
    assert_eq!(listen.next_line(), "_eric_channel_closed null");
    assert!(listen.wait().success());
}

#[test]
fn channels_with_chosen_ids_are_listed_and_removed_over_http() {
    let server = Server::start();
    assert_eq!(
        server.output(&["channel", "create", "--id", "news"]),
        "news"
    );
    let numbered = server.create_channel();
    let listener = server.add_listener("news");
    let listed = server.output(&["channel", "list"]);
    let mut expected = [numbered.clone(), "news".to_owned()];
    expected.sort();
    assert_eq!(listed, expected.join("\n"));
    let with_listeners = server.output(&["channel", "list", "--listeners"]);
    assert!(
        with_listeners.contains(&format!("news: {listener}")),
        "{with_listeners}"
    );
    server
        .eric()
        .args(["channel", "create", "--id", "news"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("news"));
    server.output(&["channel", "rm", "news"]);
    assert_eq!(
        server.output(&["channel", "list", "--json"]),
        format!("[\"{numbered}\"]")
    );
    server
        .eric()
        .args(["channel", "rm", "news"])
        .assert()
        .code(4);
}

#[test]
fn without_http_the_http_verbs_explain_what_they_need() {
    let server = Server::start_with(&["--no-http"]);
    assert!(!server.create_channel().is_empty());
    server
        .eric()
        .args(["channel", "create", "--id", "news"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("channel create --id"))
        .stderr(predicate::str::contains("--no-http"));
}

#[test]
fn a_bounded_queue_refuses_overflow_with_exit_4() {
    let server = Server::start_with(&["--queue-capacity", "1", "--overflow", "reject"]);
    let channel = server.create_channel();
    let listener = server.add_listener(&channel);
    server.output(&["dispatch", &channel, &listener, "one"]);
    server
        .eric()
        .args(["dispatch", &channel, &listener, "two"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("QueueFull"));
}

#[test]
fn settings_come_from_eric_variables_too() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("from-env.sock");
    let mut command = Command::new(ERIC);
    for name in ENVIRONMENT {
        command.env_remove(name);
    }
    // `serve --help` shows the variables; an invalid one is a usage error naming it.
    command
        .env("ERIC_SOCKET", &socket)
        .env("ERIC_OVERFLOW", "sometimes")
        .args(["serve"])
        .timeout(WAIT)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sometimes"));
    Command::new(ERIC)
        .args(["serve", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ERIC_QUEUE_CAPACITY"))
        .stdout(predicate::str::contains("ERIC_CORS_ORIGINS"));
}

#[test]
fn usage_errors_exit_2() {
    Command::new(ERIC)
        .args(["dispatch", "only-a-channel"])
        .assert()
        .code(2);
}

#[test]
fn an_http_address_that_does_not_parse_is_a_usage_error_2() {
    let dir = tempfile::tempdir().unwrap();
    // The HTTP verbs, the socket verbs and `serve` alike: the value is checked first.
    for args in [&["channel", "list"][..], &["channel", "create"], &["serve"]] {
        let mut command = Command::new(ERIC);
        for name in ENVIRONMENT {
            command.env_remove(name);
        }
        command
            .arg("--socket")
            .arg(dir.path().join("nobody.sock"))
            .args(["--http", "nope"])
            .args(args)
            .timeout(WAIT)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("`nope` has no port"))
            .stderr(predicate::str::contains("HOST:PORT"));
    }
    let mut command = Command::new(ERIC);
    for name in ENVIRONMENT {
        command.env_remove(name);
    }
    command
        .env("ERIC_HTTP", "127.0.0.1:port")
        .args(["channel", "list"])
        .timeout(WAIT)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`port` is not a port number"));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        Command::new(ERIC)
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("eric"));
    }
}

#[test]
fn version_names_the_binary_and_its_version() {
    Command::new(ERIC)
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "eric {}",
            env!("CARGO_PKG_VERSION")
        )));
}

/// The number in `name=N` of a log line.
fn logged_count(line: &str, name: &str) -> u64 {
    let start = line
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        + name.len()
        + 2;
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

#[test]
fn ids_chosen_by_a_client_cannot_forge_a_log_line() {
    const FORGED: &str = "2026-12-03T00:00:00Z ERROR forged";
    let server = Server::start_logged(&[
        "--queue-capacity",
        "1",
        "--overflow",
        "reject",
        "--log-level",
        "debug",
    ]);
    let mut http = server.http_connection();
    let encoded = "x%0a2026-12-03T00:00:00Z%20ERROR%20forged";
    let (status, body) = http.request("PUT", &format!("/create?channel_id={encoded}"), None);
    assert_eq!(status, 200, "{body}");
    let channel = format!("x\n{FORGED}");
    let listener = server.add_listener(&channel);
    server.output(&["dispatch", &channel, &listener, "fill"]);
    // Refused by the full queue: a broadcast on each transport, a dispatch; refused
    // outright: requests naming what does not exist, and a type with a line break.
    let (status, _) = http.request(
        "POST",
        &format!("/broadcast?channel_id={encoded}"),
        Some(r#"{"type": "t"}"#),
    );
    assert_eq!(status, 200);
    server.output(&["broadcast", &channel, "t"]);
    server
        .eric()
        .args(["dispatch", &channel, &listener, "t"])
        .assert()
        .code(4);
    // The client's error line too: the server's answer names the id it was given.
    let no_line_is_forged =
        predicate::function(|text: &str| !text.lines().any(|line| line.starts_with(FORGED)));
    server
        .eric()
        .args(["broadcast", &format!("y\n{FORGED}"), "t"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("ERROR forged").and(no_line_is_forged));
    let (status, _) = http.request("DELETE", &format!("/listener/{encoded}/{encoded}"), None);
    assert_eq!(status, 404);
    let answer = server.command(&format!(
        r#"{{"v": "b", "c": "{encoded}\n{FORGED}", "t": "t\n{FORGED}"}}"#
    ));
    assert!(answer.starts_with("InvalidChannelException"), "{answer}");
    let log = server.stop_and_read_log();
    assert!(
        log.contains("full queues"),
        "the refused broadcasts are logged:\n{log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with(FORGED),
            "a forged line in the log:\n{log}"
        );
    }
}

#[test]
fn refusals_by_a_full_queue_are_logged_as_counted_summaries() {
    const REFUSED: u64 = 10_000;
    let started = Instant::now();
    let server = Server::start_logged(&["--queue-capacity", "1", "--overflow", "reject"]);
    let channel = server.create_channel();
    let listener = server.add_listener(&channel);
    server.output(&["dispatch", &channel, &listener, "fill"]);
    // Half over HTTP, half over the socket: both log the same way, into one count.
    let mut http = server.http_connection();
    for _ in 0..REFUSED / 2 {
        let reply = http.request(
            "POST",
            &format!("/broadcast?channel_id={channel}"),
            Some(r#"{"type": "t"}"#),
        );
        assert_eq!(reply, (200, "null".to_owned()));
    }
    let broadcast = format!(r#"{{"v": "b", "c": "{channel}", "t": "t"}}"#);
    for _ in 0..REFUSED / 2 {
        assert_eq!(server.command(&broadcast), "ack");
    }
    let log = server.stop_and_read_log();
    let elapsed = started.elapsed();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("full queues")).collect();
    // One line for the first refusal, then at most one per channel every 10 s, and a
    // last one at shutdown for what was still counted.
    let bound = 2 + (elapsed.as_secs() / 10) as usize;
    assert!(
        lines.len() <= bound,
        "{} lines in {elapsed:?}, more than {bound}:\n{}",
        lines.len(),
        lines.join("\n")
    );
    let publishes: u64 = lines.iter().map(|l| logged_count(l, "publishes")).sum();
    let rejected: u64 = lines.iter().map(|l| logged_count(l, "rejected")).sum();
    assert_eq!(
        (publishes, rejected),
        (REFUSED, REFUSED),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn messages_a_stream_could_not_deliver_in_the_grace_period_are_counted_in_one_log_line() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("eric.sock");
    let mut command = std::process::Command::new(ERIC);
    command
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .arg("--no-http")
        .args(["--shutdown-grace", "200ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for name in ENVIRONMENT {
        command.env_remove(name);
    }
    let mut child = command.spawn().unwrap();
    wait_until("the server listens", || socket.exists());
    let command = |text: String| {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let channel = command(r#"{"v": "c"}"#.to_owned());
    // A watcher that never reads: what is queued for it stays queued, far more than
    // its socket buffer takes.
    let mut watcher = UnixStream::connect(&socket).unwrap();
    watcher
        .write_all(format!(r#"{{"v": "w", "c": "{channel}"}}"#).as_bytes())
        .unwrap();
    watcher.shutdown(std::net::Shutdown::Write).unwrap();
    let pad = "x".repeat(16 * 1024);
    for _ in 0..200 {
        let answer = command(format!(
            r#"{{"v": "b", "c": "{channel}", "t": "t", "p": "{pad}"}}"#
        ));
        assert_eq!(answer, "ack");
    }
    signal(&child, Signal::TERM);
    let status = wait_for_exit(&mut child);
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("were not delivered"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {log}");
    let count: u64 = lines[0]
        .split("stopped; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {:?}", lines[0]));
    assert!(count > 0 && count <= 200, "{count}: {log}");
    drop(watcher);
}

#[test]
fn stats_prints_the_figures_as_a_table_and_as_json() {
    let server = Server::start();
    let channel = server.create_channel();
    server.add_listener(&channel);
    for n in 0..3 {
        server.output(&["broadcast", &channel, "tick", &n.to_string()]);
    }
    let table = server.output(&["stats"]);
    assert!(table.contains(": ready, up"), "{table}");
    assert!(table.contains("published              3"), "{table}");
    assert!(table.contains("listeners              1"), "{table}");
    assert!(
        table
            .lines()
            .any(|line| line.trim_start().starts_with(&channel)),
        "the channel is listed:\n{table}"
    );
    let snapshot: Value = serde_json::from_str(&server.output(&["stats", "--json"])).unwrap();
    assert_eq!(snapshot["totals"]["published_broadcast"], 3);
    assert_eq!(snapshot["channels"], 1);
    assert_eq!(snapshot["channel_list"][0]["id"], channel);
}

#[test]
fn stats_watch_prints_a_fresh_snapshot_every_second() {
    let server = Server::start();
    let mut watching = server.stream(&["stats", "--watch", "--json"]);
    let first: Value = serde_json::from_str(&watching.next_line()).unwrap();
    let channel = server.create_channel();
    let later = loop {
        let snapshot: Value = serde_json::from_str(&watching.next_line()).unwrap();
        if snapshot["channels"] == 1 {
            break snapshot;
        }
    };
    assert_eq!(first["channels"], 0);
    assert!(later["time_ms"].as_u64() > first["time_ms"].as_u64());
    assert_eq!(later["channel_list"][0]["id"], channel);
    let _ = watching.child.kill();
    let _ = watching.wait();
}

#[test]
fn stats_without_an_http_server_says_so() {
    let server = Server::start_with(&["--no-http"]);
    server
        .eric()
        .arg("stats")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("`eric stats` needs it"));
}

#[test]
fn json_logs_are_one_object_a_line_and_client_ids_forge_none() {
    const FORGED: &str = "2026-12-03T00:00:00Z ERROR forged";
    let server = Server::start_logged(&[
        "--log-format",
        "json",
        "--queue-capacity",
        "1",
        "--overflow",
        "reject",
    ]);
    let mut http = server.http_connection();
    let encoded = "x%0a2026-12-03T00:00:00Z%20ERROR%20forged";
    let (status, body) = http.request("PUT", &format!("/create?channel_id={encoded}"), None);
    assert_eq!(status, 200, "{body}");
    let channel = format!("x\n{FORGED}");
    let listener = server.add_listener(&channel);
    server.output(&["dispatch", &channel, &listener, "fill"]);
    server.output(&["broadcast", &channel, "t"]);
    let log = server.stop_and_read_log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line:?}"))
        })
        .collect();
    assert!(
        lines.iter().any(|line| line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("full queues"))),
        "the refused broadcast is logged:\n{log}"
    );
    assert!(lines.iter().all(|line| line["level"].is_string()), "{log}");
    assert!(!log.lines().any(|line| line.starts_with(FORGED)), "{log}");
}

#[test]
fn the_metrics_address_serves_metrics_health_and_readiness() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(&["--metrics-addr", &metrics]);
    let get = |path: &str| {
        wait_until("the metrics server listens", || {
            std::net::TcpStream::connect(&metrics).is_ok()
        });
        let mut tcp = std::net::TcpStream::connect(&metrics).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        answer
    };
    server.create_channel();
    let exposition = get("/metrics");
    assert!(exposition.starts_with("HTTP/1.1 200"), "{exposition}");
    assert!(exposition.contains("\neric_channels 1\n"), "{exposition}");
    assert!(get("/healthz").starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").contains(r#"{"ready":true}"#));
    server.signal(Signal::TERM);
    assert!(server.wait().success());
}

#[test]
fn drop_oldest_losses_are_marked_in_the_stream_and_logged_as_counted_summaries() {
    let server = Server::start_logged(&["--queue-capacity", "2", "--overflow", "drop-oldest"]);
    let channel = server.create_channel();
    let listener = server.add_listener(&channel);
    // Ten messages for a queue of two, half over the socket, half over HTTP: eight are
    // discarded.
    let mut http = server.http_connection();
    for n in 1..=10 {
        if n % 2 == 0 {
            let reply = http.request(
                "POST",
                &format!("/dispatch?channel_id={channel}&listener_id={listener}"),
                Some(&format!(r#"{{"type": "t", "payload": {n}}}"#)),
            );
            assert_eq!(reply, (200, "null".to_owned()));
        } else {
            let command =
                format!(r#"{{"v": "d", "c": "{channel}", "r": "{listener}", "t": "t", "p": {n}}}"#);
            assert_eq!(server.command(&command), "ack");
        }
    }
    let printed = server.output(&["listen", &channel, &listener, "--count", "3"]);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    assert!(
        lines[0].starts_with("_eric_error ")
            && lines[0].contains(r#""reason":"dropped""#)
            && lines[0].contains(r#""dropped":8"#),
        "the stream says what it lost before the next message: {printed}"
    );
    assert_eq!(&lines[1..], ["t 9", "t 10"]);
    let log = server.stop_and_read_log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("full queues")).collect();
    let discarded: u64 = lines.iter().map(|l| logged_count(l, "discarded")).sum();
    assert_eq!(discarded, 8, "{log}");
    assert!(
        lines.len() <= 3,
        "counted summaries, not a line per message:\n{log}"
    );
}

#[test]
fn dispatches_refused_by_a_full_queue_are_logged_over_the_socket_as_over_http() {
    const REFUSED: u64 = 200;
    let server = Server::start_logged(&["--queue-capacity", "1", "--overflow", "reject"]);
    let channel = server.create_channel();
    let listener = server.add_listener(&channel);
    server.output(&["dispatch", &channel, &listener, "fill"]);
    let mut http = server.http_connection();
    let command = format!(r#"{{"v": "d", "c": "{channel}", "r": "{listener}", "t": "t"}}"#);
    for _ in 0..REFUSED / 2 {
        let answer = server.command(&command);
        assert!(answer.starts_with("QueueFullException("), "{answer}");
        let (status, _) = http.request(
            "POST",
            &format!("/dispatch?channel_id={channel}&listener_id={listener}"),
            Some(r#"{"type": "t"}"#),
        );
        assert_eq!(status, 503);
    }
    let log = server.stop_and_read_log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("full queues")).collect();
    let publishes: u64 = lines.iter().map(|l| logged_count(l, "publishes")).sum();
    let rejected: u64 = lines.iter().map(|l| logged_count(l, "rejected")).sum();
    assert_eq!((publishes, rejected), (REFUSED, REFUSED), "{log}");
    assert!(
        lines.len() <= 3,
        "counted summaries, not a line per refusal:\n{log}"
    );
}

#[test]
fn a_server_whose_queues_hold_their_budget_refuses_publishes_with_503_and_an_error() {
    // A listener nobody reads, a budget of 4 KiB: after a few 1 KiB messages, publishes
    // are refused on both transports, and counted in the log.
    let server = Server::start_logged(&["--max-queued-bytes", "4096"]);
    let channel = server.create_channel();
    let _listener = server.add_listener(&channel);
    let body = format!(r#"{{"type": "t", "payload": "{}"}}"#, "x".repeat(1024));
    let mut http = server.http_connection();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (status, answer) = http.request(
            "POST",
            &format!("/broadcast?channel_id={channel}"),
            Some(&body),
        );
        if status == 503 {
            assert!(answer.contains("queues are full"), "{answer}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 503, 503, 503, 503]);
    server
        .eric()
        .args(["broadcast", &channel, "t"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("queues are full"));
    let log = server.stop_and_read_log();
    let overloaded: u64 = log
        .lines()
        .filter(|l| l.contains("full queues"))
        .map(|l| logged_count(l, "overloaded"))
        .sum();
    assert_eq!(overloaded, 5, "{log}");
}
