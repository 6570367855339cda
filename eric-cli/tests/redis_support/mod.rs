//! What the Redis engine's tests share: their own `redis-server`, `eric serve --redis`
//! nodes as child processes, and small HTTP, SSE and socket clients. Every wait is
//! bounded by [`WAIT`]; every process started is killed on drop.

#![allow(dead_code)]

use rustix::process::Signal;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const ERIC: &str = env!("CARGO_BIN_EXE_eric");
pub const WAIT: Duration = Duration::from_secs(15);

pub use eric_redis::testing::free_port;

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sent: Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let _ = rustix::process::kill_process(pid, sent);
}

fn wait_for_exit(child: &mut Child) {
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "a process did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `redis-server` of its own, on a free port, with its data (AOF on) in a temporary
/// directory that outlives a stop, so it can start again on what it stored.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// With TLS only (`rediss://`): the certificates it serves and asks clients for.
    tls: Option<RedisCertificates>,
}

/// The PEM files of a TLS Redis: its CA, its own certificate and key, and a client
/// certificate and key the CA signed.
#[derive(Clone)]
pub struct RedisCertificates {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl RedisCertificates {
    /// A CA of the test's own in `dir`, a certificate for 127.0.0.1 and one for a
    /// client, both signed by it; `name` tells two sets apart.
    pub fn issue(dir: &Path, name: &str) -> RedisCertificates {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        // Distinct subjects: OpenSSL (Redis's side) takes a certificate whose subject is
        // its issuer's for self-signed, and rcgen gives every certificate the same one.
        let named = |names: Vec<String>, common_name: String| {
            let mut params = CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            params
        };
        let mut params = named(Vec::new(), format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let file = |suffix: &str, pem: String| {
            let path = dir.join(format!("{name}-{suffix}.pem"));
            std::fs::write(&path, pem).unwrap();
            path
        };
        let signed = |common_name: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = named(vec![common_name.to_owned()], common_name.to_owned())
                .signed_by(&key, &ca)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = signed("127.0.0.1");
        let (client_cert, client_key) = signed("eric-node");
        RedisCertificates {
            ca: file("ca", ca.pem()),
            server_cert: file("server-cert", server_cert),
            server_key: file("server-key", server_key),
            client_cert: file("client-cert", client_cert),
            client_key: file("client-key", client_key),
        }
    }
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis = Redis {
            child: None,
            port: 0, // chosen by `launch_on_a_free_port`
            dir: tempfile::tempdir().unwrap(),
            tls: None,
        };
        redis.launch_on_a_free_port();
        redis
    }

    /// One that speaks only TLS, with `certificates`, and asks clients for a
    /// certificate its CA signed (Redis's default, `tls-auth-clients yes`).
    pub fn start_tls(certificates: &RedisCertificates) -> Redis {
        let mut redis = Redis {
            child: None,
            port: 0, // chosen by `launch_on_a_free_port`
            dir: tempfile::tempdir().unwrap(),
            tls: Some(certificates.clone()),
        };
        redis.launch_on_a_free_port();
        redis
    }

    fn launch_on_a_free_port(&mut self) {
        eric_redis::testing::on_a_free_port("redis-server", || {
            self.port = free_port();
            self.launch().then_some(())
        });
    }

    /// Starts `redis-server` and waits until it answers as itself: true, or false if it
    /// exited first (its port was taken).
    fn launch(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.server_cert)
                .arg("--tls-key-file")
                .arg(&tls.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca),
        };
        let mut child = command
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) runs");
        let serving = eric_redis::testing::wait_until_serving(&mut child, || self.answering_pid());
        if serving {
            self.child = Some(child);
        }
        serving
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The process id of the Redis answering on its port, so a test never talks to
    /// another test's Redis that took the port.
    fn answering_pid(&self) -> Option<u32> {
        match self.tls {
            None => eric_redis::testing::server_pid(self.port),
            Some(_) => eric_redis::testing::pid_in_info(&self.try_cli(&["INFO", "server"])?),
        }
    }

    /// Stops it (SIGTERM: it writes what it holds) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, Signal::TERM);
            wait_for_exit(&mut child);
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.launch(),
            "redis-server could not start again on its port"
        );
    }

    /// Runs `redis-cli` against it; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(tls) = &self.tls {
            command
                .args(["-h", "127.0.0.1", "--tls", "--cacert"])
                .arg(&tls.ca)
                .arg("--cert")
                .arg(&tls.client_cert)
                .arg("--key")
                .arg(&tls.client_key);
        }
        let output = command
            .args(args)
            .output()
            .expect("redis-cli (Debian's redis-tools package) runs");
        // redis-cli answers errors on stdout with status 0: a refused TLS handshake too.
        let out = String::from_utf8(output.stdout).ok()?;
        (output.status.success() && !out.starts_with("Could not connect")).then_some(out)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An `eric serve --redis URL` node in a temporary directory, on a free port.
pub struct Node {
    child: Option<Child>,
    pub socket: PathBuf,
    pub http: String,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn start(redis: &Redis) -> Node {
        Node::start_with(&redis.url(), &[])
    }

    pub fn start_with(url: &str, flags: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("eric.sock");
        let http = format!("127.0.0.1:{}", free_port());
        let child = Command::new(ERIC)
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(["--http", &http, "--redis", url])
            .args(flags)
            .env_remove("ERIC_REDIS")
            .env_remove("ERIC_REDIS_PREFIX")
            .env_remove("ERIC_REDIS_CA")
            .env_remove("ERIC_REDIS_CERT")
            .env_remove("ERIC_REDIS_KEY")
            .env_remove("ERIC_SOCKET")
            .env_remove("ERIC_HTTP")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let node = Node {
            child: Some(child),
            socket,
            http,
            _dir: dir,
        };
        wait_until("the node answers", || {
            TcpStream::connect(&node.http).is_ok() && node.socket.exists()
        });
        node
    }

    /// One HTTP request on a new connection: the status and the body.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        request(&self.http, method, path, body, &[])
    }

    /// `PUT /create?channel_id=ID`.
    pub fn create(&self, id: &str) {
        let (status, body) = self.request("PUT", &format!("/create?channel_id={id}"), None);
        assert_eq!(status, 200, "{body}");
    }

    /// `POST /subscribe`: the new listener's id.
    pub fn subscribe(&self, channel: &str) -> String {
        let (status, body) =
            self.request("POST", &format!("/subscribe?channel_id={channel}"), None);
        assert_eq!(status, 200, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        value["listener_id"].as_str().unwrap().to_owned()
    }

    /// `POST /broadcast` of `{"type": "n", "payload": n}`: the status.
    pub fn broadcast(&self, channel: &str, n: u64) -> u16 {
        let body = format!(r#"{{"type":"n","payload":{n}}}"#);
        self.request(
            "POST",
            &format!("/broadcast?channel_id={channel}"),
            Some(&body),
        )
        .0
    }

    /// `POST /dispatch` of `{"type": "d", "payload": n}`: the status.
    pub fn dispatch(&self, channel: &str, listener: &str, n: u64) -> u16 {
        let body = format!(r#"{{"type":"d","payload":{n}}}"#);
        self.request(
            "POST",
            &format!("/dispatch?channel_id={channel}&listener_id={listener}"),
            Some(&body),
        )
        .0
    }

    /// An event stream of `path`, resuming from `last_event_id` when given.
    pub fn events(&self, path: &str, last_event_id: Option<&str>) -> Events {
        Events::open(&self.http, path, last_event_id)
    }

    /// One socket command, written whole and half-closed; the answer.
    pub fn command(&self, command: &str) -> String {
        let mut unix = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        unix.set_read_timeout(Some(WAIT)).unwrap();
        unix.write_all(command.as_bytes()).unwrap();
        unix.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        unix.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Stops the node with SIGTERM and waits for it.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, Signal::TERM);
            wait_for_exit(&mut child);
        }
    }

    /// Kills the node with SIGKILL.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`: the status and the body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let body = body.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body.as_bytes()).unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    // A chunked body of one chunk (what the server sends for JSON answers).
    let body = match body.split_once("\r\n") {
        Some((size, rest)) if usize::from_str_radix(size.trim(), 16).is_ok() => {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            rest.get(..size).unwrap_or(rest).to_owned()
        }
        _ => body,
    };
    (status, body)
}

/// An SSE event: its id, type and data.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// An open event stream, read event by event.
pub struct Events {
    reader: BufReader<TcpStream>,
    pub status: u16,
    /// What was read of an event not yet whole when a wait ran out: the next read goes
    /// on from there.
    line: String,
    pending: Pending,
}

#[derive(Default)]
struct Pending {
    id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
}

impl Events {
    pub fn open(addr: &str, path: &str, last_event_id: Option<&str>) -> Events {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        if let Some(id) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(tcp);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Events {
            reader,
            status,
            line: String::new(),
            pending: Pending::default(),
        }
    }

    /// The next event (chunk framing and comments skipped).
    pub fn next(&mut self) -> Event {
        self.next_before(Instant::now() + WAIT)
            .expect("an event in time")
    }

    /// The next event, or `None` when none is whole by `deadline`.
    pub fn next_before(&mut self, deadline: Instant) -> Option<Event> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.reader.get_ref().set_read_timeout(Some(left)).unwrap();
            // A read that times out keeps in `line` what it got (ASCII here).
            match self.reader.read_line(&mut self.line) {
                Ok(read) => assert!(read > 0, "the stream ended"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(e) => panic!("reading the stream: {e}"),
            }
            let line = std::mem::take(&mut self.line);
            let text = line.trim_end_matches(['\r', '\n']);
            let pending = &mut self.pending;
            if let Some(value) = text.strip_prefix("id: ") {
                pending.id = Some(value.to_owned());
            } else if let Some(value) = text.strip_prefix("event: ") {
                pending.event = Some(value.to_owned());
            } else if let Some(value) = text.strip_prefix("data: ") {
                pending.data.push(value.to_owned());
            } else if text.is_empty() && !pending.data.is_empty() {
                let done = std::mem::take(pending);
                return Some(Event {
                    id: done.id,
                    event: done.event.unwrap_or_else(|| "message".to_owned()),
                    data: done.data.join("\n"),
                });
            }
        }
    }

    /// The data of the next `count` events of type `kind` (other events skipped).
    pub fn take(&mut self, kind: &str, count: usize) -> Vec<Event> {
        let mut events = Vec::new();
        while events.len() < count {
            let event = self.next();
            if event.event == kind {
                events.push(event);
            }
        }
        events
    }
}

/// How often a proxy thread looks at its flags when nothing passes.
const POLL: Duration = Duration::from_millis(20);

/// A TCP proxy on 127.0.0.1 in front of a port, to hang connections: [`Proxy::freeze`]
/// stops every connection open at that moment from passing anything, either way, with
/// the sockets left open and no error, as when a network drops packets silently; the
/// connections made after pass. Its threads end when it is dropped.
pub struct Proxy {
    pub port: u16,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct ProxyShared {
    stop: AtomicBool,
    /// Every connection accepted so far.
    connections: Mutex<Vec<Arc<Proxied>>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

/// How much of what a client sends first is kept, to tell its connections apart.
const OPENING: usize = 4096;

#[derive(Default)]
struct Proxied {
    frozen: AtomicBool,
    /// The first bytes its client sent.
    opening: Mutex<Vec<u8>>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // Not blocking: the acceptor must see the stop flag.
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(ProxyShared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept(&listener, target, &shared))
        };
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many connections it accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.connections.lock().unwrap().len()
    }

    /// How many of them had their client send `text` first thing (within 4 KiB).
    pub fn accepted_sending(&self, text: &str) -> usize {
        let connections = self.shared.connections.lock().unwrap();
        connections
            .iter()
            .filter(|c| {
                let opening = c.opening.lock().unwrap();
                opening
                    .windows(text.len())
                    .any(|window| window == text.as_bytes())
            })
            .count()
    }

    /// Hangs every connection open now.
    pub fn freeze(&self) {
        for connection in self.shared.connections.lock().unwrap().iter() {
            connection.frozen.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The acceptor has ended: no pump is added after this.
        let pumps = std::mem::take(&mut *self.shared.pumps.lock().unwrap());
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

fn accept(listener: &TcpListener, target: u16, shared: &Arc<ProxyShared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        // Dropping the client refuses it, as the target would.
        let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
            continue;
        };
        let (Ok(client_out), Ok(upstream_out)) = (client.try_clone(), upstream.try_clone()) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let proxied = Arc::new(Proxied::default());
        shared
            .connections
            .lock()
            .unwrap()
            .push(Arc::clone(&proxied));
        let mut pumps = shared.pumps.lock().unwrap();
        for (from, to, from_client) in [(client, upstream_out, true), (upstream, client_out, false)]
        {
            let shared = Arc::clone(shared);
            let proxied = Arc::clone(&proxied);
            pumps.push(std::thread::spawn(move || {
                let opening = from_client.then_some(&proxied.opening);
                pump(from, to, &proxied.frozen, opening, &shared.stop)
            }));
        }
    }
}

/// Copies `from` to `to` until either ends or the proxy stops, the first bytes into
/// `opening` when given; frozen, reads nothing more, so what is sent stays unanswered
/// and nothing fails.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    frozen: &AtomicBool,
    opening: Option<&Mutex<Vec<u8>>>,
    stop: &AtomicBool,
) {
    // Bounded blocking, so the flags are seen.
    if from.set_read_timeout(Some(POLL)).is_err() || to.set_write_timeout(Some(WAIT)).is_err() {
        return;
    }
    let mut buffer = [0; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        if frozen.load(Ordering::SeqCst) {
            std::thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            // Bytes read as the freeze came are never delivered, like the rest.
            Ok(_) if frozen.load(Ordering::SeqCst) => {}
            Ok(read) => {
                if let Some(opening) = opening {
                    let mut opening = opening.lock().unwrap();
                    let room = OPENING.saturating_sub(opening.len());
                    opening.extend_from_slice(&buffer[..read.min(room)]);
                }
                if to.write_all(&buffer[..read]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Starts a cluster node on a free port, with its data under `dir`, and waits until it
/// answers as itself; `None` if it exited first: another process took the port.
fn start_cluster_node(dir: &Path) -> Option<(Child, u16)> {
    let port = free_cluster_port();
    let data = dir.join(port.to_string());
    std::fs::create_dir_all(&data).unwrap();
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .arg("--dir")
        .arg(&data)
        .args(["--save", "", "--appendonly", "yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs");
    eric_redis::testing::wait_until_serving(&mut child, || eric_redis::testing::server_pid(port))
        .then_some((child, port))
}

/// A Redis Cluster of three masters of the test's own, made with
/// `redis-cli --cluster create`; killed on drop.
pub struct RedisCluster {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = RedisCluster {
            children: Vec::new(),
            ports: Vec::new(),
            _dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..3 {
            let (child, port) = eric_redis::testing::on_a_free_port("a cluster node", || {
                start_cluster_node(dir.path())
            });
            cluster.children.push(child);
            cluster.ports.push(port);
        }
        cluster._dir = dir;
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        for port in cluster.ports.clone() {
            wait_until("the cluster is up", || {
                cluster
                    .cli(port, &["CLUSTER", "INFO"])
                    .contains("cluster_state:ok")
            });
        }
        cluster
    }

    pub fn url(&self, node: usize) -> String {
        format!("redis://127.0.0.1:{}", self.ports[node])
    }

    /// `redis-cli -p PORT ARGS` (empty when it cannot run).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
