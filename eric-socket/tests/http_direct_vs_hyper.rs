//! Two HTTP writers, one behaviour: the server writes the answers to event-stream
//! requests itself (the direct path) while a connection asks for nothing else, and lets
//! hyper write everything else. Every case below sends the same bytes on a raw TCP
//! connection to two fresh servers holding the same channels: once on a connection
//! whose first request is the case's own (the direct path serves it when it is a plain
//! `GET /stream` or `/watch`), once on a connection that first sent `OPTIONS /`, which
//! hands the connection to hyper for good. The answers must have the same status line,
//! the same header lines in the same order (`date` aside) and the same body.
//!
//! No switch in the server forces hyper: the `OPTIONS /` in front is a request a client
//! may send, its answer does not depend on what the server holds, and it is taken off
//! before the comparison. [`each_run_takes_the_path_it_names`] proves that the two
//! connections are served by the two paths, so the comparison cannot pass by comparing
//! hyper with itself.
#![cfg(feature = "http")]

mod http_support;

use eric_core::{Listener, Message, MESSAGE_TYPE_CLOSED};
use eric_socket::http::auth::{AccessConfig, JwtKey};
use eric_socket::http::ROUTES;
use eric_socket::{ChannelContainer, HttpServerConfig};
use http_support::{bounded, TestServer};
use serde_json::{json, Value};
use std::fmt::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The request that hands a connection to hyper. Its answer (`204`, `Allow`) is the same
/// whatever the server holds.
const TO_HYPER: &[u8] = b"OPTIONS / HTTP/1.1\r\nhost: localhost\r\n\r\n";

/// Which writer a run expects to answer the case's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// The case's requests open the connection: a stream request is served directly.
    Direct,
    /// [`TO_HYPER`] opens the connection: hyper serves every request.
    Hyper,
}

/// A raw connection that keeps every byte it read.
struct Conn {
    tcp: TcpStream,
    read: Vec<u8>,
}

impl Conn {
    async fn open(server: &TestServer, via: Via) -> Conn {
        let mut tcp = bounded("connect", TcpStream::connect(server.addr))
            .await
            .expect("the server accepts");
        if via == Via::Hyper {
            tcp.write_all(TO_HYPER).await.expect("write");
        }
        Conn {
            tcp,
            read: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write the request");
    }

    /// Reads until the bytes read hold `count` occurrences of `needle`.
    async fn wait_for(&mut self, needle: &str, count: usize) {
        let Conn { tcp, read } = self;
        bounded(&format!("{count} x {needle:?}"), async {
            while occurrences(read, needle.as_bytes()) < count {
                let mut chunk = [0u8; 4096];
                let n = tcp.read(&mut chunk).await.expect("read");
                assert!(
                    n > 0,
                    "closed before {count} x {needle:?}: {}",
                    String::from_utf8_lossy(read)
                );
                read.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
    }

    /// Reads until the server closes the connection.
    async fn read_to_close(&mut self) {
        let Conn { tcp, read } = self;
        bounded("the server closes the connection", tcp.read_to_end(read))
            .await
            .expect("read to the end");
    }
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// What a case does, in order.
enum Step {
    /// Writes these bytes on the connection.
    Send(String),
    /// Waits until the bytes read hold this many occurrences of the text.
    Await(&'static str, usize),
    /// Broadcasts `{"n": n}` as a `tick` on channel `c`.
    Tick(u64),
    /// Broadcasts the end-of-stream message on channel `c`: its streams end, its
    /// listeners stay.
    EndStreams,
    /// Removes listener `l1` of channel `c`: its stream ends.
    RemoveListener,
    /// Removes channel `c`: its streams end.
    RemoveChannel,
}

/// How a case's connection ends.
#[derive(Clone, Copy)]
enum End {
    /// The server closes it (the last request asked it to, or the server did).
    Close,
    /// The client stops reading right after the last `Await`'s text: a stream that
    /// never ends is compared up to there.
    Cut,
}

struct Case {
    name: &'static str,
    configure: fn(&mut HttpServerConfig),
    steps: Vec<Step>,
    end: End,
}

impl Case {
    fn new(name: &'static str, steps: Vec<Step>) -> Case {
        Case {
            name,
            configure: |_| {},
            steps,
            end: End::Close,
        }
    }

    /// One request that asks to close the connection after its answer.
    fn one(name: &'static str, method: &str, target: &str, headers: &str, body: &str) -> Case {
        Case::new(
            name,
            vec![Step::Send(request(
                method,
                target,
                &format!("{headers}connection: close\r\n"),
                body,
            ))],
        )
    }

    fn with_config(mut self, configure: fn(&mut HttpServerConfig)) -> Case {
        self.configure = configure;
        self
    }

    fn cut(mut self) -> Case {
        self.end = End::Cut;
        self
    }

    /// The method and path of every request the case sends.
    fn requests(&self) -> Vec<(String, String)> {
        let mut requests = Vec::new();
        for step in &self.steps {
            if let Step::Send(bytes) = step {
                for line in bytes.split("\r\n") {
                    let mut words = line.split(' ');
                    if let (Some(method), Some(target), Some(version)) =
                        (words.next(), words.next(), words.next())
                    {
                        if version.starts_with("HTTP/") {
                            let path = target.split('?').next().unwrap_or_default();
                            requests.push((method.to_owned(), path.to_owned()));
                        }
                    }
                }
            }
        }
        requests
    }
}

/// A request with `headers` (each ending in CRLF) and `body` (with its length, and
/// declared JSON unless `headers` say otherwise), to `host: localhost` unless `headers`
/// name another.
fn request(method: &str, target: &str, headers: &str, body: &str) -> String {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.starts_with("host:") {
        text.push_str("host: localhost\r\n");
    }
    text.push_str(headers);
    if !body.is_empty() {
        if !headers.contains("content-type:") {
            text.push_str("content-type: application/json\r\n");
        }
        let _ = write!(text, "content-length: {}\r\n", body.len());
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

fn get(target: &str, headers: &str) -> String {
    request("GET", target, headers, "")
}

const CLOSE: &str = "connection: close\r\n";

/// Stands for the epoch of channel `c`'s log, which is new in every run: replaced by it
/// in what a case sends, and it replaces it in what the server answers.
const EPOCH: &str = "{epoch}";
const ALLOWED: &str = "origin: http://app.example\r\n";
const MESSAGE: &str = r#"{"type": "t", "payload": {"n": 0}}"#;

fn cors(config: &mut HttpServerConfig) {
    config.cors_allowed_origins = vec!["http://app.example".to_owned()];
}

fn no_streams(config: &mut HttpServerConfig) {
    config.max_streams = 0;
}

fn small_bodies(config: &mut HttpServerConfig) {
    config.max_body_bytes = 16;
}

const SECRET: &[u8] = b"direct and hyper";

fn secured(config: &mut HttpServerConfig) {
    config.access = AccessConfig {
        key: Some(JwtKey::hs256(SECRET).unwrap()),
        ..AccessConfig::default()
    };
}

/// A token granting `eric` for ten minutes: the same bytes in both runs of a case.
fn token(eric: Value) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "exp": exp, "eric": eric }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// What every case starts with: channel `c` with listener `l1` (ids chosen, so that
/// both servers hold the same ones; the channel's queue settings, as a subscribed
/// listener has), and channel `d`.
fn setup(container: &ChannelContainer) {
    let channel = container.add_with_id("c").unwrap();
    let listener = Listener::with_id("l1").queue_config(channel.queue_config());
    channel.register_listener(listener).unwrap();
    container.add_with_id("d").unwrap();
}

fn tick(n: u64) -> Message {
    Message::new("tick", json!({ "n": n }))
}

/// The `data:` line of tick `n`.
fn tick_data(n: u64) -> &'static str {
    // Leaked once per distinct tick, so that steps can name it as a `&'static str`.
    Box::leak(format!("data: {{\"n\":{n}}}").into_boxed_str())
}

fn cases() -> Vec<Case> {
    use Step::*;
    let mut cases = vec![
        // Every route, and its errors, one request per connection.
        Case::one("GET /", "GET", "/", "", ""),
        Case::one("GET /healthz", "GET", "/healthz", "", ""),
        Case::one("GET /readyz", "GET", "/readyz", "", ""),
        Case::one("GET /monitor", "GET", "/monitor", "", ""),
        Case::new(
            "GET /monitor/events",
            vec![
                Step::Send(get("/monitor/events", "")),
                Step::Await("retry:", 1),
            ],
        )
        .cut(),
        Case::one("HEAD /", "HEAD", "/", "", ""),
        Case::one("GET /channels", "GET", "/channels", "", ""),
        Case::one("HEAD /channels", "HEAD", "/channels", "", ""),
        Case::one("PUT /create", "PUT", "/create?channel_id=new", "", ""),
        Case::one(
            "PUT /create, taken: 409",
            "PUT",
            "/create?channel_id=c",
            "",
            "",
        ),
        Case::one(
            "PUT /create, empty id: 400",
            "PUT",
            "/create?channel_id=",
            "",
            "",
        ),
        Case::one("POST /subscribe", "POST", "/subscribe?channel_id=c", "", ""),
        Case::one("POST /subscribe, no id: 400", "POST", "/subscribe", "", ""),
        Case::one(
            "POST /broadcast",
            "POST",
            "/broadcast?channel_id=c",
            "",
            MESSAGE,
        ),
        Case::one(
            "POST /broadcast, not a message: 400",
            "POST",
            "/broadcast?channel_id=c",
            "",
            "[1]",
        ),
        Case::one(
            "POST /broadcast, unknown channel: 404",
            "POST",
            "/broadcast?channel_id=nope",
            "",
            MESSAGE,
        ),
        Case::one(
            "POST /broadcast, too large: 413",
            "POST",
            "/broadcast?channel_id=c",
            "",
            MESSAGE,
        )
        .with_config(small_bodies),
        Case::one(
            "POST /dispatch",
            "POST",
            "/dispatch?channel_id=c&listener_id=l1",
            "",
            MESSAGE,
        ),
        Case::one(
            "POST /dispatch, unknown listener: 404",
            "POST",
            "/dispatch?channel_id=c&listener_id=nope",
            "",
            MESSAGE,
        ),
        Case::one("DELETE /listener", "DELETE", "/listener/c/l1", "", ""),
        Case::one(
            "DELETE /listener, unknown: 404",
            "DELETE",
            "/listener/c/nope",
            "",
            "",
        ),
        Case::one("DELETE /channel", "DELETE", "/channel/d", "", ""),
        Case::one(
            "DELETE /channel, unknown: 404",
            "DELETE",
            "/channel/nope",
            "",
            "",
        ),
        Case::one("OPTIONS /watch", "OPTIONS", "/watch/c", "", ""),
        Case::one("POST /channels: 405", "POST", "/channels", "", ""),
        Case::one("PUT /watch: 405", "PUT", "/watch/c", "", ""),
        Case::one("unknown path: 404", "GET", "/no/such/route", "", ""),
        Case::one("GET /channels, CORS", "GET", "/channels", ALLOWED, "").with_config(cors),
        // Requests refused before routing: a Host the server does not answer (DNS
        // rebinding), a body not declared JSON (a cross-site form or text/plain post).
        Case::one(
            "POST /broadcast, wrong Host: 421",
            "POST",
            "/broadcast?channel_id=c",
            "host: evil.example\r\n",
            MESSAGE,
        ),
        Case::one(
            "GET /channels, wrong Host: 421",
            "GET",
            "/channels",
            "host: 127.0.0.1.nip.example:80\r\n",
            "",
        ),
        Case::one(
            "POST /broadcast, text/plain: 415",
            "POST",
            "/broadcast?channel_id=c",
            "content-type: text/plain\r\n",
            MESSAGE,
        ),
        Case::one(
            "POST /dispatch, no Content-Type: 415",
            "POST",
            "/dispatch?channel_id=c&listener_id=l1",
            "content-type: \r\n",
            MESSAGE,
        ),
        // Stream requests the direct path answers with an error.
        Case::one(
            "GET /watch, unknown channel: 404",
            "GET",
            "/watch/nope",
            "",
            "",
        ),
        Case::one(
            "GET /stream, unknown channel: 404",
            "GET",
            "/stream/nope/l1",
            "",
            "",
        ),
        Case::one(
            "GET /stream, unknown listener: 404",
            "GET",
            "/stream/c/nope",
            "",
            "",
        ),
        Case::one(
            "GET /stream, no listener id: 404",
            "GET",
            "/stream/c",
            "",
            "",
        ),
        Case::one(
            "GET /watch, one segment too many: 404",
            "GET",
            "/watch/c/x",
            "",
            "",
        ),
        Case::one("GET /watch, id not UTF-8: 400", "GET", "/watch/%FF", "", ""),
        Case::one(
            "GET /watch, wrong Host: 421",
            "GET",
            "/watch/c",
            "host: evil.example\r\n",
            "",
        ),
        Case::one(
            "GET /stream, wrong Host: 421",
            "GET",
            "/stream/c/l1",
            "host: rebound.example:80\r\n",
            "",
        ),
        Case::one("GET /watch, no stream left: 503", "GET", "/watch/c", "", "")
            .with_config(no_streams),
        Case::one(
            "GET /watch, unknown channel, CORS: 404",
            "GET",
            "/watch/nope",
            ALLOWED,
            "",
        )
        .with_config(cors),
    ];
    // With tokens checked: refusals on both paths, and streams opened with a token.
    let on_c = token(json!({"subscribe": ["c"]}));
    let on_d = token(json!({"subscribe": ["d"], "publish": ["d"]}));
    let bearer_c = format!("authorization: Bearer {on_c}\r\n");
    cases.extend([
        Case::one("GET /watch, no token: 401", "GET", "/watch/c", "", "").with_config(secured),
        Case::one(
            "GET /stream, malformed token: 401",
            "GET",
            "/stream/c/l1",
            "authorization: Bearer not-a-token\r\n",
            "",
        )
        .with_config(secured),
        Case::one(
            "GET /watch, token for another channel: 403",
            "GET",
            "/watch/c",
            &format!("authorization: Bearer {on_d}\r\n"),
            "",
        )
        .with_config(secured),
        Case::one(
            "POST /broadcast, subscribe-only token: 403",
            "POST",
            "/broadcast?channel_id=c",
            &bearer_c,
            MESSAGE,
        )
        .with_config(secured),
        Case::one("GET /channels, filtered", "GET", "/channels", &bearer_c, "")
            .with_config(secured),
        Case::one(
            "GET /watch, query token not allowed: 401",
            "GET",
            &format!("/watch/c?access_token={on_c}"),
            "",
            "",
        )
        .with_config(secured),
        Case::new(
            "GET /watch, cookie token",
            vec![
                Send(get(
                    "/watch/c",
                    &format!("cookie: a=1; eric_token={on_c}\r\n{CLOSE}"),
                )),
                Await("retry:", 1),
                Tick(1),
                Await(tick_data(1), 1),
                RemoveChannel,
            ],
        )
        .with_config(secured),
        Case::new(
            "GET /stream, bearer token",
            vec![
                Send(get("/stream/c/l1", &format!("{bearer_c}{CLOSE}"))),
                Await(tick_data(2), 1),
                RemoveListener,
            ],
        )
        .with_config(secured),
    ]);
    cases.extend([
        // Streams, ended by the server.
        Case::new(
            "GET /stream: queued ticks, a live one, the end",
            vec![
                Send(get("/stream/c/l1", CLOSE)),
                Await(tick_data(2), 1),
                Tick(3),
                Await(tick_data(3), 1),
                RemoveListener,
            ],
        ),
        Case::new(
            "GET /watch: live ticks, the end",
            vec![
                Send(get("/watch/c", CLOSE)),
                Await("retry:", 1),
                Tick(1),
                Tick(2),
                Tick(3),
                Await(tick_data(3), 1),
                RemoveChannel,
            ],
        ),
        Case::new(
            "GET /watch, CORS",
            vec![
                Send(get("/watch/c", &format!("{ALLOWED}{CLOSE}"))),
                Await("retry:", 1),
                Tick(1),
                Await(tick_data(1), 1),
                RemoveChannel,
            ],
        )
        .with_config(cors),
        Case::new(
            "GET /watch in HTTP/1.0",
            vec![
                Send("GET /watch/c HTTP/1.0\r\nhost: localhost\r\n\r\n".to_owned()),
                Await("retry:", 1),
                Tick(1),
                Await(tick_data(1), 1),
                RemoveChannel,
            ],
        ),
        // A stream the client stops reading after three ticks.
        Case::new(
            "GET /watch, cut after three ticks",
            vec![
                Send(get("/watch/c", "")),
                Await("retry:", 1),
                Tick(1),
                Tick(2),
                Tick(3),
                Await(tick_data(3), 1),
            ],
        )
        .cut(),
        // Pipelining: several requests in one write.
        Case::new(
            "pipelined: a stream, then a listing",
            vec![
                Send(get("/watch/c", "") + &get("/channels", CLOSE)),
                Await("retry:", 1),
                Tick(1),
                Await(tick_data(1), 1),
                RemoveChannel,
            ],
        ),
        Case::new(
            "pipelined: a stream, then another stream",
            vec![
                Send(get("/stream/c/l1", "") + &get("/watch/c", CLOSE)),
                Await(tick_data(2), 1),
                RemoveListener,
                Await("retry:", 2),
                Tick(4),
                Await(tick_data(4), 1),
                RemoveChannel,
            ],
        ),
        Case::new(
            "pipelined: a stream, then its resume from Last-Event-ID",
            vec![
                Send(
                    get("/stream/c/l1", "")
                        + &get(
                            "/stream/c/l1",
                            &format!("last-event-id: {EPOCH}-1\r\n{CLOSE}"),
                        ),
                ),
                Await(tick_data(2), 1),
                EndStreams,
                Await(tick_data(2), 2),
                RemoveListener,
            ],
        ),
        Case::new(
            "pipelined: listings, then a stream",
            vec![
                Send(
                    get("/channels", "") + &request("HEAD", "/", "", "") + &get("/watch/c", CLOSE),
                ),
                Await("retry:", 1),
                Tick(1),
                Await(tick_data(1), 1),
                RemoveChannel,
            ],
        ),
        Case::new(
            "pipelined: a stream, then errors",
            vec![
                Send(
                    get("/watch/c", "")
                        + &get("/watch/nope", "")
                        + &request("POST", "/broadcast?channel_id=c", "", "{")
                        + &get("/", CLOSE),
                ),
                Await("retry:", 1),
                RemoveChannel,
            ],
        ),
    ]);
    cases
}

/// One answer off the wire.
#[derive(Debug, PartialEq, Eq)]
struct WireResponse {
    status_line: String,
    /// Every header line but `date`, as written.
    headers: Vec<String>,
    /// The body, without its chunked framing.
    body: String,
}

/// Splits the bytes read into answers. `bodyless` tells, for each answer in order,
/// whether it answers `HEAD`; with `cut`, the last body may stop anywhere.
fn parse_responses(mut raw: &[u8], bodyless: &[bool], cut: bool) -> Vec<WireResponse> {
    let mut responses = Vec::new();
    while !raw.is_empty() {
        let head_end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..head_end]).expect("an ASCII head");
        raw = &raw[head_end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_owned();
        let headers: Vec<String> = lines.map(str::to_owned).collect();
        let header = |name: &str| {
            headers.iter().find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let no_body = bodyless.get(responses.len()).copied().unwrap_or(false)
            || status == 204
            || status == 304;
        let mut body = Vec::new();
        if no_body {
        } else if header("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                if raw.is_empty() && cut {
                    break;
                }
                let line_end = raw
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("a chunk size line");
                let size = usize::from_str_radix(
                    std::str::from_utf8(&raw[..line_end]).expect("hex digits"),
                    16,
                )
                .expect("a chunk size");
                raw = &raw[line_end + 2..];
                if size == 0 {
                    assert!(raw.starts_with(b"\r\n"), "the last chunk ends with CRLF");
                    raw = &raw[2..];
                    break;
                }
                if cut && raw.len() < size + 2 {
                    body.extend_from_slice(&raw[..size.min(raw.len())]);
                    raw = &[];
                    break;
                }
                body.extend_from_slice(&raw[..size]);
                assert_eq!(&raw[size..size + 2], b"\r\n", "a chunk ends with CRLF");
                raw = &raw[size + 2..];
            }
        } else if let Some(length) = header("content-length") {
            let length: usize = length.parse().expect("a length");
            body.extend_from_slice(&raw[..length]);
            raw = &raw[length..];
        } else {
            // Delimited by the end of the connection.
            body.extend_from_slice(raw);
            raw = &[];
        }
        responses.push(WireResponse {
            status_line,
            headers: headers
                .into_iter()
                .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
                .collect(),
            body: String::from_utf8(body).expect("a UTF-8 body"),
        });
    }
    responses
}

/// Generated listener ids (`POST /subscribe`) differ between the two servers, which
/// share the process's counter: they are masked. Ids of one length are masked by one
/// of the same length, so that the `content-length` still compares.
fn mask_generated_ids(body: &str) -> String {
    const KEY: &str = r#""listener_id":""#;
    let Some(at) = body.find(KEY) else {
        return body.to_owned();
    };
    let start = at + KEY.len();
    let digits = body[start..].bytes().take_while(u8::is_ascii_digit).count();
    format!(
        "{}{}{}",
        &body[..start],
        "#".repeat(digits),
        &body[start + digits..]
    )
}

/// Moves the process's listener id counter to four digits, so that the ids the two
/// runs of a case generate have the same length.
fn align_generated_ids() {
    while Listener::new().id().len() < 4 {}
}

/// Runs `case` on a fresh server; the answers read, `TO_HYPER`'s taken off.
async fn run(case: &Case, via: Via) -> Vec<WireResponse> {
    let server = TestServer::start_with(case.configure).await;
    setup(&server.container);
    let channel = server.container.get("c").unwrap();
    // Two ticks queued for `l1` before any request.
    channel.broadcast(tick(1));
    channel.broadcast(tick(2));
    let mut conn = Conn::open(&server, via).await;
    let mut cut_at = None;
    for step in &case.steps {
        match step {
            Step::Send(bytes) => {
                let bytes = bytes.replace(EPOCH, &channel.epoch().to_string());
                conn.send(bytes.as_bytes()).await
            }
            Step::Await(needle, count) => {
                conn.wait_for(needle, *count).await;
                let mut end = 0;
                for _ in 0..*count {
                    end += conn.read[end..]
                        .windows(needle.len())
                        .position(|w| w == needle.as_bytes())
                        .unwrap()
                        + needle.len();
                }
                cut_at = Some(end);
            }
            Step::Tick(n) => {
                channel.broadcast(tick(*n));
            }
            Step::EndStreams => {
                channel.broadcast(Message::new(MESSAGE_TYPE_CLOSED, Value::Null));
            }
            Step::RemoveListener => {
                channel.remove_listener("l1").unwrap();
            }
            Step::RemoveChannel => {
                server.container.remove("c").unwrap();
            }
        }
    }
    let cut = match case.end {
        End::Close => {
            conn.read_to_close().await;
            false
        }
        End::Cut => {
            conn.read
                .truncate(cut_at.expect("a cut case awaits something"));
            true
        }
    };
    let read = std::mem::take(&mut conn.read);
    drop(conn);
    server.shutdown().await;

    let mut bodyless: Vec<bool> = case
        .requests()
        .iter()
        .map(|(method, _)| method == "HEAD")
        .collect();
    if via == Via::Hyper {
        bodyless.insert(0, false);
    }
    let mut responses = parse_responses(&read, &bodyless, cut);
    if via == Via::Hyper {
        let first = responses.remove(0);
        assert_eq!(
            first.status_line, "HTTP/1.1 204 No Content",
            "{}",
            case.name
        );
    }
    let epoch = channel.epoch().to_string();
    for response in &mut responses {
        response.body = mask_generated_ids(&response.body).replace(&epoch, EPOCH);
    }
    responses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_path_and_hyper_write_the_same_answers() {
    align_generated_ids();
    let mut differences = Vec::new();
    for case in cases() {
        let direct = run(&case, Via::Direct).await;
        let hyper = run(&case, Via::Hyper).await;
        assert!(!hyper.is_empty(), "{}: no answer", case.name);
        if direct != hyper {
            differences.push(format!(
                "{}:\n  direct: {direct:#?}\n  hyper:  {hyper:#?}",
                case.name
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} case(s) differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn the_cases_cover_every_route() {
    let sent: Vec<(String, String)> = cases().iter().flat_map(Case::requests).collect();
    // `/metrics` reports the requests each run made, so its body differs between the
    // runs by design; tests/metrics.rs checks it.
    for route in ROUTES.iter().filter(|route| route.path != "/metrics") {
        let covered = sent.iter().any(|(method, path)| {
            method == route.method
                && path.split('/').count() == route.path.split('/').count()
                && path
                    .split('/')
                    .zip(route.path.split('/'))
                    .all(|(segment, pattern)| pattern.starts_with('{') || segment == pattern)
        });
        assert!(covered, "no case sends {} {}", route.method, route.path);
    }
}

/// The direct path ends a connection whose client sends more than it keeps behind a
/// stream request; hyper leaves those bytes unread until the stream ends. So a run of
/// each kind shows which path served it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_takes_the_path_it_names() {
    let junk = vec![1u8; 9 * 1024];
    for via in [Via::Direct, Via::Hyper] {
        let server = TestServer::start().await;
        setup(&server.container);
        let mut conn = Conn::open(&server, via).await;
        conn.send(get("/watch/c", "").as_bytes()).await;
        conn.wait_for("retry:", 1).await;
        conn.send(&junk).await;
        if via == Via::Hyper {
            // The stream goes on, then ends; hyper then reads the junk and closes.
            server.container.get("c").unwrap().broadcast(tick(1));
            conn.wait_for(tick_data(1), 1).await;
            server.container.remove("c").unwrap();
        }
        conn.read_to_close().await;
        let seen = String::from_utf8_lossy(&conn.read).into_owned();
        assert_eq!(
            seen.contains(MESSAGE_TYPE_CLOSED),
            via == Via::Hyper,
            "{via:?}: {seen}"
        );
        server.shutdown().await;
    }
}
