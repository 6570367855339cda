//! eric-fanout: the SSE fan-out load generator of `bench/compare`.
//!
//! It opens N EventSource subscribers (raw HTTP/1.1 over TCP, `text/event-stream` parsed
//! with `eric_sse::Parser`) to one channel of eric's HTTP server or of nginx + nchan,
//! measures the server's memory and CPU while they are idle, then publishes M messages
//! (at full speed, or at a fixed rate on an absolute schedule) and counts what every
//! subscriber receives: deliveries/s, lost, duplicates, latency. One JSON object on stdout.
//!
//! With `--resume-behind K` (eric only) it measures resume instead: it broadcasts K
//! messages with nobody listening, then opens the N subscribers at once, each with the
//! `Last-Event-ID` of the position before them, and times the replay until every
//! subscriber has all K, in order, each with its own position as id.
//!
//! ```text
//! eric-fanout --target eric|nchan --url http://127.0.0.1:8080[/PREFIX] --subscribers N --messages M
//!             [--rate R] [--channel fanout] [--server-pid PID] [--idle-seconds 3]
//!             [--connect-concurrency 256] [--drain-timeout 10] [--publishers 4]
//!             [--token JWT] [--publish-url http://127.0.0.1:8081[/PREFIX]]
//!             [--other-pids PID,PID] [--redis-stats 127.0.0.1:6379]
//! eric-fanout --target eric --url http://127.0.0.1:8080 --subscribers N --resume-behind K
//!             [--channel fanout] [--server-pid PID] [--connect-concurrency 256]
//!             [--drain-timeout 10]
//! ```
//!
//! Routes: eric: `PUT /create?channel_id=C` (once), `GET /watch/C`, `POST
//! /broadcast?channel_id=C` with `{"type": "m", "payload": P}`; nchan: `GET /sub/C`,
//! `POST /pub/C` with P. P is `{"seq": k, "sent": ns}`: ns is read from this process's
//! monotonic clock just before the publish request is written, and every subscriber
//! reads the same clock when the bytes of the event arrive, so the latency is
//! publish-to-receive through the server. See bench/README.md.
//!
//! With `--publish-url` the publishes (and eric's `PUT /create`) go to another server
//! than the subscribers (two nodes sharing channels through Redis); `--other-pids` adds
//! the CPU of more processes (that node, Redis) over the publishing window; with
//! `--redis-stats ADDR` it sends Redis `CONFIG RESETSTAT` just before the measured
//! publishes and reads `INFO commandstats` once the subscribers are drained, so the
//! calls counted are those of the measured publishes and their deliveries.

use eric_sse::Parser;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

// ---------------------------------------------------------------------------------------
// Options

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Eric,
    Nchan,
}

#[derive(Debug)]
struct Options {
    target: Target,
    addr: SocketAddr,
    /// The `Host` value, followed by `\r\nAuthorization: Bearer ...` with `--token`: every
    /// request (streams and publishes) writes it as `Host: {host}\r\n`.
    host: String,
    /// The path the routes are mounted under (empty: at the root).
    prefix: String,
    /// Where the publishes go: `--publish-url`, else the subscribers' server.
    publish: Endpoint,
    /// More processes whose CPU over the publishing window is reported (`--other-pids`).
    other_pids: Vec<u32>,
    /// The Redis whose command statistics are reset and read around the measured
    /// publishes (`--redis-stats`).
    redis_stats: Option<SocketAddr>,
    channel: String,
    subscribers: usize,
    messages: usize,
    rate: Option<f64>,
    server_pid: Option<u32>,
    idle_seconds: f64,
    connect_concurrency: usize,
    drain_timeout: Duration,
    publishers: usize,
    /// Resume mode: how many retained broadcasts each subscriber is behind.
    resume_behind: Option<usize>,
}

/// An HTTP server's address, `Host` value (with the token's header, as [`Options::host`])
/// and route prefix.
#[derive(Clone, Debug)]
struct Endpoint {
    addr: SocketAddr,
    host: String,
    prefix: String,
}

/// Splits `http://IP:PORT[/PREFIX]` into an [`Endpoint`]; `token` is added to the host.
fn parse_url(url: &str, flag: &str, token: Option<&str>) -> Endpoint {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| usage(&format!("--{flag} must start with http://")))
        .trim_end_matches('/');
    // A path after the address is where the routes are mounted (eric's API under a
    // prefix of an application: http://127.0.0.1:3000/eric).
    let (host, prefix) = match rest.split_once('/') {
        Some((host, path)) => (host.to_owned(), format!("/{path}")),
        None => (rest.to_owned(), String::new()),
    };
    let addr: SocketAddr = host
        .parse()
        .unwrap_or_else(|_| usage(&format!("--{flag} must be http://IP:PORT")));
    // With a token (a server that checks tokens), every request carries it.
    let host = match token {
        Some(token) => format!("{host}\r\nAuthorization: Bearer {token}"),
        None => host,
    };
    Endpoint { addr, host, prefix }
}

fn usage(problem: &str) -> ! {
    eprintln!("eric-fanout: {problem}");
    eprintln!(
        "usage: eric-fanout --target eric|nchan --url http://HOST:PORT --subscribers N --messages M \
         [--rate R] [--channel NAME] [--server-pid PID] [--idle-seconds S] \
         [--connect-concurrency N] [--drain-timeout S] [--publishers P] [--token JWT] \
         [--publish-url http://HOST:PORT] [--other-pids PID,PID] [--redis-stats HOST:PORT]\n       \
         eric-fanout --target eric --url http://HOST:PORT --subscribers N --resume-behind K \
         [--channel NAME] [--server-pid PID] [--connect-concurrency N] [--drain-timeout S]"
    );
    std::process::exit(2);
}

fn parse_options() -> Options {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(key) = args.next() {
        if key == "-h" || key == "--help" {
            usage("help");
        }
        let Some(name) = key.strip_prefix("--") else {
            usage(&format!("unexpected argument {key}"))
        };
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("--{name} needs a value")));
        map.insert(name.to_owned(), value);
    }
    let take = |name: &str| map.get(name).cloned();
    let num = |name: &str, default: Option<f64>| -> f64 {
        match take(name) {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| usage(&format!("--{name}: not a number: {v}"))),
            None => default.unwrap_or_else(|| usage(&format!("--{name} is required"))),
        }
    };
    let target = match take("target").as_deref() {
        Some("eric") => Target::Eric,
        Some("nchan") => Target::Nchan,
        _ => usage("--target must be eric or nchan"),
    };
    let url = take("url").unwrap_or_else(|| usage("--url is required"));
    let token = take("token");
    let subscribe = parse_url(&url, "url", token.as_deref());
    let publish = match take("publish-url") {
        Some(url) => parse_url(&url, "publish-url", token.as_deref()),
        None => subscribe.clone(),
    };
    let other_pids = take("other-pids")
        .map(|list| {
            list.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.trim()
                        .parse()
                        .unwrap_or_else(|_| usage(&format!("--other-pids: not a pid: {p}")))
                })
                .collect()
        })
        .unwrap_or_default();
    let redis_stats = take("redis-stats").map(|a| {
        a.parse()
            .unwrap_or_else(|_| usage("--redis-stats must be IP:PORT"))
    });
    let resume_behind = take("resume-behind").map(|_| num("resume-behind", None) as usize);
    if resume_behind.is_some() && target != Target::Eric {
        usage("--resume-behind needs --target eric (it checks eric's <epoch>-<offset> ids)");
    }
    Options {
        target,
        addr: subscribe.addr,
        host: subscribe.host,
        prefix: subscribe.prefix,
        publish,
        other_pids,
        redis_stats,
        channel: take("channel").unwrap_or_else(|| "fanout".to_owned()),
        subscribers: num("subscribers", None) as usize,
        // Resume mode publishes exactly the K messages it replays.
        messages: resume_behind.unwrap_or_else(|| num("messages", None) as usize),
        rate: take("rate").map(|_| num("rate", None)).filter(|r| *r > 0.0),
        server_pid: take("server-pid").map(|_| num("server-pid", None) as u32),
        idle_seconds: num("idle-seconds", Some(3.0)),
        connect_concurrency: num("connect-concurrency", Some(256.0)).max(1.0) as usize,
        drain_timeout: Duration::from_secs_f64(num("drain-timeout", Some(10.0))),
        publishers: num("publishers", Some(4.0)).max(1.0) as usize,
        resume_behind,
    }
}

// ---------------------------------------------------------------------------------------
// The clock shared by publisher and subscribers

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------------------
// The server's memory and CPU, from /proc

/// The server's process and all its descendants (nginx: master and workers).
fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
                    if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok())
                    {
                        parents.push((pid, ppid));
                    }
                }
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// A `key:   N kB` line of a /proc file, in bytes.
fn proc_kb(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

#[derive(Clone, Copy, Debug, Default)]
struct Memory {
    /// VmRSS summed over the process tree.
    rss: u64,
    /// Pss summed over the process tree (shared pages counted once).
    pss: u64,
    processes: usize,
}

fn memory(root: u32) -> Memory {
    let tree = process_tree(root);
    let mut m = Memory {
        processes: tree.len(),
        ..Memory::default()
    };
    for pid in tree {
        m.rss += proc_kb(&format!("/proc/{pid}/status"), "VmRSS:");
        m.pss += proc_kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:");
    }
    m
}

/// The memory of the process tree once three readings 250 ms apart agree within 0.5%
/// (at most 5 s).
async fn settled_memory(root: u32) -> Memory {
    let mut last = memory(root);
    let mut stable = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while stable < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = memory(root);
        if (now.rss as f64 - last.rss as f64).abs() <= 0.005 * last.rss as f64 {
            stable += 1;
        } else {
            stable = 0;
        }
        last = now;
    }
    last
}

/// CPU time of the process tree, every thread, in ns (first field of each task's
/// schedstat: time spent on a CPU).
fn cpu_ns(root: u32) -> u64 {
    let mut total = 0;
    for pid in process_tree(root) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                total += text
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 by hand

struct Head {
    status: u16,
    chunked: bool,
    content_length: Option<usize>,
    close: bool,
}

/// Reads a response head from `stream`; `buf` keeps what came after it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Head> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
            let mut parsed = Head {
                status,
                chunked: false,
                content_length: None,
                close: false,
            };
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let (name, value) = (
                    name.trim().to_ascii_lowercase(),
                    value.trim().to_ascii_lowercase(),
                );
                match name.as_str() {
                    "transfer-encoding" => parsed.chunked = value.contains("chunked"),
                    "content-length" => parsed.content_length = value.parse().ok(),
                    "connection" => parsed.close = value.contains("close"),
                    _ => {}
                }
            }
            return Ok(parsed);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the response head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Incremental decoder of a chunked body.
#[derive(Default)]
struct Dechunker {
    state: ChunkState,
    size: usize,
}

#[derive(Default, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data(usize),
    DataCr,
    DataLf,
    Done,
}

impl Dechunker {
    /// Decodes `input`, appending the body bytes to `out`.
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            match self.state {
                ChunkState::Data(remaining) => {
                    let take = remaining.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = if take == remaining {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(remaining - take)
                    };
                    continue;
                }
                ChunkState::Done => return,
                _ => {}
            }
            let byte = input[0];
            input = &input[1..];
            self.state = match (&self.state, byte) {
                (ChunkState::Size, b) if b.is_ascii_hexdigit() => {
                    self.size = self.size * 16 + (b as char).to_digit(16).unwrap() as usize;
                    ChunkState::Size
                }
                (ChunkState::Size | ChunkState::Extension, b'\r') => ChunkState::SizeLf,
                (ChunkState::Size | ChunkState::Extension | ChunkState::SizeLf, b'\n') => {
                    let size = std::mem::take(&mut self.size);
                    if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    }
                }
                (ChunkState::Size | ChunkState::Extension, _) => ChunkState::Extension,
                (ChunkState::DataCr, b'\r') => ChunkState::DataLf,
                (ChunkState::DataCr | ChunkState::DataLf, b'\n') => ChunkState::Size,
                // Anything else is a framing error; resynchronise on the next size line.
                _ => ChunkState::Size,
            };
        }
    }

    fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// One keep-alive connection that sends POSTs and reads their answers.
struct Publisher {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    request: Vec<u8>,
}

impl Publisher {
    fn new(addr: SocketAddr, host: String) -> Self {
        Publisher {
            addr,
            host,
            stream: None,
            buf: Vec::new(),
            request: Vec::with_capacity(512),
        }
    }

    /// Sends `method path` with `body`; returns the status. Reconnects once if the
    /// kept-alive connection was closed by the server.
    async fn send(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<u16> {
        match self.try_send(method, path, body).await {
            Ok(status) => Ok(status),
            Err(_) => {
                self.stream = None;
                self.try_send(method, path, body).await
            }
        }
    }

    async fn try_send(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<u16> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                self.host,
                body.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(body);
        let stream = self.stream.as_mut().unwrap();
        stream.write_all(&self.request).await?;
        let head = read_head(stream, &mut self.buf).await?;
        // Read and discard the body.
        let mut chunk = [0u8; 4096];
        if head.chunked {
            let mut dechunker = Dechunker::default();
            let mut sink = Vec::new();
            let pending = std::mem::take(&mut self.buf);
            dechunker.feed(&pending, &mut sink);
            while !dechunker.is_done() {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed in a body",
                    ));
                }
                dechunker.feed(&chunk[..n], &mut sink);
            }
        } else {
            let length = head.content_length.unwrap_or(0);
            while self.buf.len() < length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed in a body",
                    ));
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
            self.buf.drain(..length);
        }
        if head.close {
            self.stream = None;
        }
        Ok(head.status)
    }
}

// ---------------------------------------------------------------------------------------
// Subscribers

/// What all subscribers share with the main task.
struct Shared {
    messages: usize,
    /// Subscribers that read a 200 response head.
    ready: AtomicUsize,
    /// Subscribers that failed (connect, status, read error).
    failed: AtomicUsize,
    /// Subscribers that saw at least one warm-up event.
    warmed: AtomicUsize,
    /// Measured events received, duplicates included.
    received: AtomicU64,
    /// Subscribers that have every measured message.
    complete: AtomicUsize,
    /// Latest receive time of a measured event (ns on the shared clock).
    last_receive_ns: AtomicU64,
    /// Turns true when the subscribers must stop reading.
    stop: watch::Sender<bool>,
    /// Resume mode: the ids measured events must carry.
    ids: Option<ExpectedIds>,
}

/// The ids of the replayed events: message `seq` has the id `<epoch>-<first + seq>`.
struct ExpectedIds {
    epoch: String,
    first: u64,
}

impl ExpectedIds {
    fn matches(&self, id: &str, seq: u64) -> bool {
        id.strip_prefix(self.epoch.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|offset| offset.parse::<u64>().ok())
            == Some(self.first + seq)
    }
}

#[derive(Default)]
struct SubscriberResult {
    unique: u64,
    duplicates: u64,
    out_of_order: u64,
    latencies_ns: Vec<u64>,
    error: Option<String>,
    /// Events the parser yielded that were not ours (neither warm-up nor measured).
    foreign: u64,
    /// Of the foreign events, gap markers (`_eric_error`).
    gap_markers: u64,
    /// Measured events whose id is not the one expected (resume mode).
    wrong_ids: u64,
    /// When the response head came (ns on the shared clock).
    ready_ns: u64,
    /// When the subscriber had every measured message (ns on the shared clock).
    complete_ns: Option<u64>,
}

enum Decoded {
    Measured { seq: u64, sent: u64 },
    Warmup,
    Foreign,
}

/// The unsigned integer after `"key":` in compact JSON.
fn field(data: &str, key: &str) -> Option<u64> {
    let at = data.find(key)? + key.len();
    let digits = data[at..].bytes().take_while(u8::is_ascii_digit).count();
    data[at..at + digits].parse().ok()
}

/// Reads an event's data: `{"seq": k, "sent": ns}`, a warm-up, or something else. The
/// publisher writes compact JSON, and both servers pass it on compact, so a scan does;
/// anything unexpected goes through serde_json.
fn decode(data: &str) -> Decoded {
    if let (Some(seq), Some(sent)) = (field(data, "\"seq\":"), field(data, "\"sent\":")) {
        return Decoded::Measured { seq, sent };
    }
    match serde_json::from_str::<Value>(data) {
        Ok(v) if v.get("warmup").is_some() => Decoded::Warmup,
        Ok(v) => match (v["seq"].as_u64(), v["sent"].as_u64()) {
            (Some(seq), Some(sent)) => Decoded::Measured { seq, sent },
            _ => Decoded::Foreign,
        },
        Err(_) => Decoded::Foreign,
    }
}

/// The request of an EventSource subscriber on `path`, resuming after `last_event_id`.
fn stream_request(path: &str, host: &str, last_event_id: Option<&str>) -> Vec<u8> {
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n{resume}\r\n"
    )
    .into_bytes()
}

/// Connects, sends `request` and reads the response head, which must be a 200. Returns
/// the stream, the head and the bytes read past it; the error is the subscriber's.
async fn open_stream(
    addr: SocketAddr,
    request: &[u8],
) -> Result<(TcpStream, Head, Vec<u8>), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    match async {
        stream.write_all(request).await?;
        read_head(&mut stream, &mut buf).await
    }
    .await
    {
        Ok(head) if head.status == 200 => Ok((stream, head, buf)),
        Ok(head) => Err(format!("status {}", head.status)),
        Err(e) => Err(format!("head: {e}")),
    }
}

/// Takes a response body's bytes as they come, chunked or not, into an SSE parser.
struct BodyReader {
    dechunker: Option<Dechunker>,
    body: Vec<u8>,
}

impl BodyReader {
    fn new(head: &Head) -> Self {
        BodyReader {
            dechunker: head.chunked.then(Dechunker::default),
            body: Vec::with_capacity(4096),
        }
    }

    fn feed(&mut self, bytes: &[u8], parser: &mut Parser) {
        match self.dechunker.as_mut() {
            Some(d) => {
                self.body.clear();
                d.feed(bytes, &mut self.body);
                parser.feed(&self.body);
            }
            None => parser.feed(bytes),
        }
    }
}

async fn subscriber(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    shared: Arc<Shared>,
    connect_gate: Arc<Semaphore>,
) -> SubscriberResult {
    let mut result = SubscriberResult::default();
    let permit = connect_gate.acquire().await.unwrap();
    let (mut stream, head, buf) = match open_stream(addr, &request).await {
        Ok(opened) => opened,
        Err(e) => {
            result.error = Some(e);
            shared.failed.fetch_add(1, Ordering::SeqCst);
            return result;
        }
    };
    result.ready_ns = now_ns();
    drop(permit);
    let mut stop = shared.stop.subscribe();
    shared.ready.fetch_add(1, Ordering::SeqCst);

    let messages = shared.messages;
    let mut seen = vec![false; messages];
    let mut warmed = false;
    let mut complete = false;
    let mut last_seq: Option<usize> = None;
    let mut parser = Parser::new();
    let mut body = BodyReader::new(&head);
    let mut chunk = vec![0u8; 4096];
    let mut pending = buf;
    loop {
        if !pending.is_empty() {
            let received_at = now_ns();
            body.feed(&pending, &mut parser);
            pending.clear();
            let mut measured = 0;
            while let Some(event) = parser.next_event() {
                let (seq, sent) = match decode(&event.data) {
                    Decoded::Measured { seq, sent } => (seq, sent),
                    Decoded::Warmup => {
                        if !warmed {
                            warmed = true;
                            shared.warmed.fetch_add(1, Ordering::SeqCst);
                        }
                        continue;
                    }
                    Decoded::Foreign => {
                        result.foreign += 1;
                        if event.event == "_eric_error" {
                            result.gap_markers += 1;
                        }
                        continue;
                    }
                };
                if let Some(ids) = &shared.ids {
                    if !ids.matches(&event.last_event_id, seq) {
                        result.wrong_ids += 1;
                    }
                }
                let seq = seq as usize;
                measured += 1;
                if seq >= messages {
                    result.foreign += 1;
                    continue;
                }
                if seen[seq] {
                    result.duplicates += 1;
                } else {
                    seen[seq] = true;
                    result.unique += 1;
                    result.latencies_ns.push(received_at.saturating_sub(sent));
                }
                if last_seq.is_some_and(|last| seq < last) {
                    result.out_of_order += 1;
                }
                last_seq = Some(seq);
            }
            if measured > 0 {
                shared.received.fetch_add(measured, Ordering::Relaxed);
                shared
                    .last_receive_ns
                    .fetch_max(received_at, Ordering::Relaxed);
                if !complete && result.unique as usize == messages {
                    complete = true;
                    result.complete_ns = Some(received_at);
                    shared.complete.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        if *stop.borrow_and_update() {
            break;
        }
        let read = tokio::select! {
            read = stream.read(&mut chunk) => read,
            _ = stop.changed() => break,
        };
        match read {
            Ok(0) => {
                if !complete {
                    result.error = Some("the server ended the stream".to_owned());
                }
                break;
            }
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) => {
                result.error = Some(format!("read: {e}"));
                break;
            }
        }
    }
    result
}

// ---------------------------------------------------------------------------------------
// The run

fn percentile_us(sorted: &[u64], p: f64) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    json!(sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0)
}

/// Publishes the measured messages `{"seq": k, "sent": ns}`, k < `opts.messages`, from
/// `publishers` keep-alive connections (the first is `publisher`): publisher i sends the
/// sequence numbers i, i+P, i+2P, ... one request at a time; with a rate, message k is
/// due at k / rate seconds after the start (an absolute schedule: a late publish does
/// not shift the next ones).
async fn publish_measured(
    opts: &Options,
    mut publisher: Publisher,
    pub_path: &str,
    publishers: usize,
) -> Published {
    let publish_started = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|first| {
            let mut publisher = if first == 0 {
                std::mem::replace(
                    &mut publisher,
                    Publisher::new(opts.publish.addr, opts.publish.host.clone()),
                )
            } else {
                Publisher::new(opts.publish.addr, opts.publish.host.clone())
            };
            let (count, step, rate, target) = (opts.messages, publishers, opts.rate, opts.target);
            let pub_path = pub_path.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut lags = Vec::new();
                let mut errors = 0u64;
                for seq in (first..count).step_by(step) {
                    let due = rate
                        .map(|rate| publish_started + Duration::from_secs_f64(seq as f64 / rate));
                    if let Some(due) = due {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let sent = now_ns();
                    if let Some(due) = due {
                        lags.push(due.elapsed().as_nanos() as u64);
                    }
                    let payload = json!({"seq": seq, "sent": sent});
                    let body = match target {
                        Target::Eric => {
                            serde_json::to_vec(&json!({"type": "m", "payload": payload}))
                        }
                        Target::Nchan => serde_json::to_vec(&payload),
                    }
                    .unwrap();
                    match publisher.send("POST", &pub_path, &body).await {
                        Ok(s) if (200..300).contains(&s) => {}
                        _ => errors += 1,
                    }
                    latencies.push(now_ns() - sent);
                }
                (latencies, lags, errors)
            })
        })
        .collect();
    let mut published = Published {
        latencies_ns: Vec::with_capacity(opts.messages),
        lags_ns: Vec::new(),
        errors: 0,
        seconds: 0.0,
    };
    for task in tasks {
        let (latencies, lags, errors) = task.await.expect("publisher task");
        published.latencies_ns.extend(latencies);
        published.lags_ns.extend(lags);
        published.errors += errors;
    }
    published.seconds = publish_started.elapsed().as_secs_f64();
    published.latencies_ns.sort_unstable();
    published.lags_ns.sort_unstable();
    published
}

/// What [`publish_measured`] did.
struct Published {
    /// Every publish's latency, from writing the request to reading the answer's end
    /// (sorted).
    latencies_ns: Vec<u64>,
    /// With a rate: how late each publish was written after it was due (sorted), which
    /// shows whether the schedule was held.
    lags_ns: Vec<u64>,
    /// Publishes not answered with a 2xx.
    errors: u64,
    /// From the first publish to the last answer.
    seconds: f64,
}

/// Sends Redis one inline command on a connection of its own and returns the answer's
/// text (a simple or a bulk string); an error answer is an error.
async fn redis_command(addr: SocketAddr, command: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("Redis: {what}"));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = memchr::memmem::find(&buf, b"\r\n") {
            let line = String::from_utf8_lossy(buf.get(1..end).unwrap_or_default()).into_owned();
            match buf[0] {
                b'+' => return Ok(line),
                b'-' => return Err(io::Error::other(format!("Redis: {line}"))),
                b'$' => {
                    let len: i64 = line.parse().map_err(|_| bad("bad bulk length"))?;
                    let Ok(len) = usize::try_from(len) else {
                        return Ok(String::new());
                    };
                    let start = end + 2;
                    if buf.len() >= start + len {
                        return Ok(String::from_utf8_lossy(&buf[start..start + len]).into_owned());
                    }
                }
                _ => return Err(bad("unexpected answer")),
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The calls of each command in the text of `INFO commandstats`
/// (`cmdstat_evalsha:calls=101,usec=...`), leaving out this tool's own `CONFIG
/// RESETSTAT` and `INFO`.
fn commandstats(text: &str) -> serde_json::Map<String, Value> {
    let mut calls = serde_json::Map::new();
    for line in text.lines() {
        let Some((name, stats)) = line
            .trim()
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        if name == "config|resetstat" || name == "info" {
            continue;
        }
        if let Some(n) = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|n| n.parse::<u64>().ok())
        {
            calls.insert(name.to_owned(), json!(n));
        }
    }
    calls
}

/// Waits until `done`, or until no measured event has arrived for `timeout`.
async fn drain(shared: &Shared, timeout: Duration, done: impl Fn(&Shared) -> bool) {
    let mut last_received = shared.received.load(Ordering::SeqCst);
    let mut last_progress = Instant::now();
    while !done(shared) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let received = shared.received.load(Ordering::SeqCst);
        if received != last_received {
            last_received = received;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > timeout {
            break;
        }
    }
}

/// The id of the first event on an open stream.
async fn first_event_id(
    stream: &mut TcpStream,
    head: &Head,
    pending: Vec<u8>,
) -> Result<String, String> {
    let mut parser = Parser::new();
    let mut body = BodyReader::new(head);
    body.feed(&pending, &mut parser);
    let mut chunk = vec![0u8; 4096];
    loop {
        if let Some(event) = parser.next_event() {
            return Ok(event.last_event_id);
        }
        match stream.read(&mut chunk).await {
            Ok(0) => return Err("the probe's stream ended".to_owned()),
            Ok(n) => body.feed(&chunk[..n], &mut parser),
            Err(e) => return Err(format!("the probe's stream: {e}")),
        }
    }
}

/// Resume mode: learns the channel's current position P from a probe subscriber,
/// broadcasts K messages with nobody else listening, then opens the N subscribers (at
/// most `connect_concurrency` connection attempts at once) with `Last-Event-ID: P` and
/// times them until each has the K events, offsets P+1..P+K, in order.
async fn resume(opts: &Options, mut publisher: Publisher, sub_path: &str, pub_path: &str) -> Value {
    let fail = |what: String| -> ! {
        eprintln!("eric-fanout: {what}");
        std::process::exit(1)
    };
    let behind = opts.messages;
    let probe_request = stream_request(sub_path, &opts.host, None);
    let (mut probe, head, pending) = open_stream(opts.addr, &probe_request)
        .await
        .unwrap_or_else(|e| fail(format!("the probe subscriber: {e}")));
    let probe_body = serde_json::to_vec(&json!({"type": "m", "payload": {"probe": 0}})).unwrap();
    match publisher.send("POST", pub_path, &probe_body).await {
        Ok(s) if (200..300).contains(&s) => {}
        other => fail(format!("the probe's broadcast: {other:?}")),
    }
    let position = tokio::time::timeout(
        Duration::from_secs(10),
        first_event_id(&mut probe, &head, pending),
    )
    .await
    .unwrap_or_else(|_| Err("no event in 10 s".to_owned()))
    .unwrap_or_else(|e| fail(format!("the probe subscriber: {e}")));
    drop(probe);
    let Some((epoch, offset)) = position
        .split_once('-')
        .and_then(|(epoch, offset)| Some((epoch.to_owned(), offset.parse::<u64>().ok()?)))
    else {
        fail(format!(
            "the probe's event id {position:?} is not <epoch>-<offset>"
        ))
    };

    // One publisher, so that the order of the sequence numbers is that of the offsets.
    let published = publish_measured(opts, publisher, pub_path, 1).await;
    let (publish_errors, publish_s) = (published.errors, published.seconds);

    let shared = Arc::new(Shared {
        messages: behind,
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        warmed: AtomicUsize::new(0),
        received: AtomicU64::new(0),
        complete: AtomicUsize::new(0),
        last_receive_ns: AtomicU64::new(0),
        stop: watch::channel(false).0,
        ids: Some(ExpectedIds {
            epoch,
            first: offset + 1,
        }),
    });
    let request = Arc::new(stream_request(sub_path, &opts.host, Some(&position)));
    let gate = Arc::new(Semaphore::new(opts.connect_concurrency));
    let own_pid = std::process::id();
    let client_cpu_before = cpu_ns(own_pid);
    let server_cpu_before = opts.server_pid.map(cpu_ns);
    let started_ns = now_ns();
    let tasks: Vec<_> = (0..opts.subscribers)
        .map(|_| {
            tokio::spawn(subscriber(
                opts.addr,
                Arc::clone(&request),
                Arc::clone(&shared),
                Arc::clone(&gate),
            ))
        })
        .collect();
    drain(&shared, opts.drain_timeout, |shared| {
        shared.complete.load(Ordering::SeqCst) + shared.failed.load(Ordering::SeqCst)
            >= opts.subscribers
    })
    .await;
    let window_ns = now_ns().saturating_sub(started_ns).max(1);
    let server_cpu_ns = server_cpu_before
        .zip(opts.server_pid)
        .map(|(before, pid)| cpu_ns(pid).saturating_sub(before));
    let client_cpu_ns = cpu_ns(own_pid).saturating_sub(client_cpu_before);
    let last_receive_ns = shared.last_receive_ns.load(Ordering::SeqCst);
    shared.stop.send_replace(true);

    let mut unique = 0u64;
    let mut duplicates = 0u64;
    let mut out_of_order = 0u64;
    let mut foreign = 0u64;
    let mut gap_markers = 0u64;
    let mut wrong_ids = 0u64;
    let mut errors: HashMap<String, u64> = HashMap::new();
    let mut ready: Vec<u64> = Vec::with_capacity(opts.subscribers);
    let mut complete: Vec<u64> = Vec::with_capacity(opts.subscribers);
    let mut replay: Vec<u64> = Vec::with_capacity(opts.subscribers);
    for task in tasks {
        let r = task.await.expect("subscriber task");
        unique += r.unique;
        duplicates += r.duplicates;
        out_of_order += r.out_of_order;
        foreign += r.foreign;
        gap_markers += r.gap_markers;
        wrong_ids += r.wrong_ids;
        if r.ready_ns > 0 {
            ready.push(r.ready_ns - started_ns);
        }
        if let Some(at) = r.complete_ns {
            complete.push(at - started_ns);
            replay.push(at - r.ready_ns);
        }
        if let Some(e) = r.error {
            *errors.entry(e).or_default() += 1;
        }
    }
    ready.sort_unstable();
    complete.sort_unstable();
    replay.sort_unstable();
    let expected = (opts.subscribers * behind) as u64;
    let resume_s = last_receive_ns.saturating_sub(started_ns) as f64 / 1e9;
    let spread = |sorted: &[u64]| {
        json!({
            "p50": percentile_us(sorted, 0.50),
            "p99": percentile_us(sorted, 0.99),
            "max": percentile_us(sorted, 1.0),
        })
    };
    json!({
        "target": "eric",
        "mode": "resume",
        "subscribers": opts.subscribers,
        "resume_behind": behind,
        "last_event_id": position,
        "connect_concurrency": opts.connect_concurrency,
        "publish_errors": publish_errors,
        "publish_s": publish_s,
        "connected": ready.len(),
        "complete": complete.len(),
        "expected": expected,
        "delivered": unique,
        "lost": expected - unique.min(expected),
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "wrong_ids": wrong_ids,
        "gap_markers": gap_markers,
        "foreign_events": foreign,
        "subscriber_errors": errors,
        "resume_s": resume_s,
        "replayed_per_s": if resume_s > 0.0 { unique as f64 / resume_s } else { 0.0 },
        "ready_us": spread(&ready),
        "complete_us": spread(&complete),
        "replay_us": spread(&replay),
        "window_s": window_ns as f64 / 1e9,
        "client_cpu_s": client_cpu_ns as f64 / 1e9,
        "client_cpu_pct": 100.0 * client_cpu_ns as f64 / window_ns as f64,
        "server": {
            "pid": opts.server_pid,
            "cpu_s": server_cpu_ns.map(|ns| ns as f64 / 1e9),
            "cpu_pct": server_cpu_ns.map(|ns| 100.0 * ns as f64 / window_ns as f64),
        },
    })
}

async fn run(opts: Options) -> Value {
    let _ = epoch();
    let (sub_path, pub_path) = match opts.target {
        Target::Eric => (
            format!("{}/watch/{}", opts.prefix, opts.channel),
            format!(
                "{}/broadcast?channel_id={}",
                opts.publish.prefix, opts.channel
            ),
        ),
        Target::Nchan => (
            format!("{}/sub/{}", opts.prefix, opts.channel),
            format!("{}/pub/{}", opts.publish.prefix, opts.channel),
        ),
    };
    let wrap = |payload: Value| -> Vec<u8> {
        match opts.target {
            Target::Eric => serde_json::to_vec(&json!({"type": "m", "payload": payload})).unwrap(),
            Target::Nchan => serde_json::to_vec(&payload).unwrap(),
        }
    };

    let mut publisher = Publisher::new(opts.publish.addr, opts.publish.host.clone());
    if opts.target == Target::Eric {
        // 409 when the channel exists already: fine.
        let status = publisher
            .send(
                "PUT",
                &format!("{}/create?channel_id={}", opts.publish.prefix, opts.channel),
                b"",
            )
            .await
            .unwrap_or_else(|e| {
                eprintln!("eric-fanout: cannot reach {}: {e}", opts.publish.addr);
                std::process::exit(1)
            });
        if status != 200 && status != 201 && status != 409 {
            eprintln!("eric-fanout: PUT /create answered {status}");
            std::process::exit(1);
        }
        if opts.resume_behind.is_some() {
            return resume(&opts, publisher, &sub_path, &pub_path).await;
        }
    }
    if opts.target == Target::Nchan {
        // Create the channel, and let more than one worker serve a request.
        for _ in 0..4 {
            let mut primer = Publisher::new(opts.publish.addr, opts.publish.host.clone());
            let _ = primer
                .send("POST", &pub_path, &wrap(json!({"warmup": "prime"})))
                .await;
        }
    }
    // The baseline: once the server's memory has settled (a freshly started nginx keeps
    // touching pages for a moment).
    let memory_before = match opts.server_pid {
        Some(pid) => Some(settled_memory(pid).await),
        None => None,
    };

    // Connect every subscriber.
    let shared = Arc::new(Shared {
        messages: opts.messages,
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        warmed: AtomicUsize::new(0),
        received: AtomicU64::new(0),
        complete: AtomicUsize::new(0),
        last_receive_ns: AtomicU64::new(0),
        stop: watch::channel(false).0,
        ids: None,
    });
    let request = Arc::new(stream_request(&sub_path, &opts.host, None));
    let gate = Arc::new(Semaphore::new(opts.connect_concurrency));
    let connect_started = Instant::now();
    let tasks: Vec<_> = (0..opts.subscribers)
        .map(|_| {
            tokio::spawn(subscriber(
                opts.addr,
                Arc::clone(&request),
                Arc::clone(&shared),
                Arc::clone(&gate),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.ready.load(Ordering::SeqCst) + shared.failed.load(Ordering::SeqCst)
        < opts.subscribers
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let connected = shared.ready.load(Ordering::SeqCst);

    // Warm up: publish until every connected subscriber has seen a warm-up event, so
    // that nobody is still being registered when the measured messages start.
    let warm_started = Instant::now();
    let mut warmups = 0u64;
    let mut publish_errors = 0u64;
    while shared.warmed.load(Ordering::SeqCst) < connected
        && warm_started.elapsed() < Duration::from_secs(60)
    {
        let body = wrap(json!({"warmup": warmups}));
        match publisher.send("POST", &pub_path, &body).await {
            Ok(s) if (200..300).contains(&s) => {}
            _ => publish_errors += 1,
        }
        warmups += 1;
        let wait_until = Instant::now() + Duration::from_millis(200);
        while shared.warmed.load(Ordering::SeqCst) < connected && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let warmed = shared.warmed.load(Ordering::SeqCst);

    // Idle: memory per subscriber, CPU of the server with every stream open and quiet.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let memory_after = opts.server_pid.map(memory);
    let idle_cpu_pct = match opts.server_pid {
        Some(pid) if opts.idle_seconds > 0.0 => {
            let before = cpu_ns(pid);
            let started = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(opts.idle_seconds)).await;
            let used = cpu_ns(pid).saturating_sub(before);
            Some(100.0 * used as f64 / started.elapsed().as_nanos() as f64)
        }
        _ => None,
    };

    // Redis's counts start from zero here: what it runs from now on is the measured
    // publishes' and their deliveries' (the warm-up's publishes were all answered).
    let redis_reset = match opts.redis_stats {
        Some(addr) => Some(redis_command(addr, "CONFIG RESETSTAT").await.map(drop)),
        None => None,
    };
    let server_cpu_before = opts.server_pid.map(cpu_ns);
    let others_cpu_before: Vec<u64> = opts.other_pids.iter().map(|&pid| cpu_ns(pid)).collect();
    let publish_started_ns = now_ns();
    let published = publish_measured(&opts, publisher, &pub_path, opts.publishers).await;
    publish_errors += published.errors;
    let publish_s = published.seconds;

    drain(&shared, opts.drain_timeout, |shared| {
        shared.complete.load(Ordering::SeqCst) >= connected
    })
    .await;
    let last_receive_ns = shared.last_receive_ns.load(Ordering::SeqCst);
    let busy_ns = now_ns().saturating_sub(publish_started_ns).max(1);
    let server_cpu_busy_pct = server_cpu_before
        .zip(opts.server_pid)
        .map(|(before, pid)| 100.0 * cpu_ns(pid).saturating_sub(before) as f64 / busy_ns as f64);
    let others: Vec<Value> = opts
        .other_pids
        .iter()
        .zip(&others_cpu_before)
        .map(|(&pid, &before)| {
            json!({
                "pid": pid,
                "busy_cpu_pct": 100.0 * cpu_ns(pid).saturating_sub(before) as f64 / busy_ns as f64,
            })
        })
        .collect();
    let redis_commands = match (opts.redis_stats, redis_reset) {
        (Some(addr), Some(Ok(()))) => Some(
            redis_command(addr, "INFO commandstats")
                .await
                .map(|text| commandstats(&text)),
        ),
        (_, Some(Err(e))) => Some(Err(e)),
        _ => None,
    };
    shared.stop.send_replace(true);

    let mut unique = 0u64;
    let mut duplicates = 0u64;
    let mut out_of_order = 0u64;
    let mut foreign = 0u64;
    let mut errors: HashMap<String, u64> = HashMap::new();
    let mut latencies: Vec<u64> = Vec::with_capacity(opts.subscribers * opts.messages);
    for task in tasks {
        let r = task.await.expect("subscriber task");
        unique += r.unique;
        duplicates += r.duplicates;
        out_of_order += r.out_of_order;
        foreign += r.foreign;
        latencies.extend_from_slice(&r.latencies_ns);
        if let Some(e) = r.error {
            *errors.entry(e).or_default() += 1;
        }
    }
    latencies.sort_unstable();
    let expected = (opts.subscribers * opts.messages) as u64;
    let elapsed_s = last_receive_ns.saturating_sub(publish_started_ns) as f64 / 1e9;
    let per_subscriber = |before: Option<Memory>, after: Option<Memory>, f: fn(&Memory) -> u64| {
        before
            .zip(after)
            .map(|(b, a)| (f(&a) as f64 - f(&b) as f64) / (connected.max(1) as f64))
    };
    json!({
        "target": match opts.target { Target::Eric => "eric", Target::Nchan => "nchan" },
        "subscribers": opts.subscribers,
        "messages": opts.messages,
        "rate": opts.rate,
        "connected": connected,
        "connect_s": connect_s,
        "warmed": warmed,
        "warmup_publishes": warmups,
        "expected": expected,
        "delivered": unique,
        "lost": expected - unique.min(expected),
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "foreign_events": foreign,
        "publish_errors": publish_errors,
        "publishers": opts.publishers,
        "subscriber_errors": errors,
        "publish_s": publish_s,
        "publish_per_s": opts.messages as f64 / publish_s,
        "publish_p50_us": percentile_us(&published.latencies_ns, 0.5),
        "publish_p99_us": percentile_us(&published.latencies_ns, 0.99),
        "publish_max_us": percentile_us(&published.latencies_ns, 1.0),
        "publish_server": opts.publish.addr.to_string(),
        "publish_lag_us": opts.rate.map(|_| json!({
            "p50": percentile_us(&published.lags_ns, 0.5),
            "p99": percentile_us(&published.lags_ns, 0.99),
            "max": percentile_us(&published.lags_ns, 1.0),
        })),
        "redis_commands": redis_commands.as_ref().and_then(|r| r.as_ref().ok()),
        "redis_stats_error": redis_commands.as_ref().and_then(|r| r.as_ref().err().map(|e| e.to_string())),
        "elapsed_s": elapsed_s,
        "deliveries_per_s": if elapsed_s > 0.0 { unique as f64 / elapsed_s } else { 0.0 },
        "latency_us": {
            "p50": percentile_us(&latencies, 0.50),
            "p99": percentile_us(&latencies, 0.99),
            "max": percentile_us(&latencies, 1.0),
        },
        "server": {
            "pid": opts.server_pid,
            "processes": memory_after.map(|m| m.processes),
            "rss_before_bytes": memory_before.map(|m| m.rss),
            "rss_after_bytes": memory_after.map(|m| m.rss),
            "pss_before_bytes": memory_before.map(|m| m.pss),
            "pss_after_bytes": memory_after.map(|m| m.pss),
            "rss_per_subscriber_bytes": per_subscriber(memory_before, memory_after, |m| m.rss),
            "pss_per_subscriber_bytes": per_subscriber(memory_before, memory_after, |m| m.pss),
            "idle_seconds": opts.idle_seconds,
            "idle_cpu_pct": idle_cpu_pct,
            "busy_cpu_pct": server_cpu_busy_pct,
        },
        "others": others,
    })
}

fn main() {
    let opts = parse_options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(run(opts));
    println!("{report}");
    // Do not wait for the runtime to close 10,000 sockets one by one.
    runtime.shutdown_background();
}
