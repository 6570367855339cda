//! Real Chromium against tokens, cookies and HTTP/2: a page that sets the `eric_token`
//! cookie and opens an `EventSource` with credentials on eric at another origin (CORS
//! with credentials), beside one without credentials that is refused; and a page opening
//! twelve `EventSource`s on one origin, which all receive over HTTPS (HTTP/2 by ALPN)
//! while over HTTP/1.1 the browser holds six and stalls the rest.
//!
//! Needs Chromium (`apt-get install chromium`; `ERIC_CHROMIUM` names another binary).
#![cfg(feature = "http")]

mod http_support;
mod tls_support;

use bytes::Bytes;
use eric_core::Message;
use eric_socket::http::auth::{AccessConfig, JwtKey};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_support::TestServer;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tls_support::TestCa;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const PAGE: &str = include_str!("fixtures/eventsources.html");
const BROWSER_WAIT: Duration = Duration::from_secs(30);
const SECRET: &[u8] = b"browser secret";

fn chromium() -> PathBuf {
    let path = std::env::var_os("ERIC_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the browser test needs Chromium at {} (apt-get install chromium, or set ERIC_CHROMIUM)",
        path.display()
    );
    path
}

/// A headless Chromium in its own process group, killed with its children when dropped.
struct Browser {
    child: Child,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(url: &str) -> Browser {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::Builder::new()
            .prefix("eric-chromium")
            .tempdir()
            .unwrap();
        let log = profile.path().join("chromium.log");
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--mute-audio",
                // The test's own certificate authority is not the system's.
                "--ignore-certificate-errors",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .expect("Chromium starts");
        Browser {
            child,
            log,
            _profile: profile,
        }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// The page's server, on an origin of its own: `GET /page` serves the page, `POST
/// /report` forwards each report to the test.
struct PageServer {
    origin: String,
    reports: mpsc::UnboundedReceiver<Value>,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    async fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (sender, reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let sender = sender.clone();
                        async move { Ok::<_, Infallible>(page_answer(request, &sender).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        PageServer {
            origin,
            reports,
            task,
        }
    }

    /// Opens the page in Chromium with `query`.
    fn open(&self, query: &str) -> Browser {
        Browser::open(&format!("{}/page?{query}", self.origin))
    }

    /// The first report satisfying `done`.
    async fn report_where(
        &mut self,
        browser: &Browser,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let wait = async {
            while let Some(report) = self.reports.recv().await {
                if done(&report) {
                    return report;
                }
            }
            panic!("the page server stopped");
        };
        match tokio::time::timeout(BROWSER_WAIT, wait).await {
            Ok(report) => report,
            Err(_) => panic!(
                "the page never reported {what} within {BROWSER_WAIT:?}; Chromium's output:\n{}",
                browser.log()
            ),
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn page_answer(
    request: Request<Incoming>,
    reports: &mpsc::UnboundedSender<Value>,
) -> Response<Full<Bytes>> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/page") => Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .body(Full::new(Bytes::from_static(PAGE.as_bytes()))),
        (&Method::POST, "/report") => {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            if let Ok(report) = serde_json::from_slice(&body) {
                let _ = reports.send(report);
            }
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Full::new(Bytes::new()))
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new())),
    };
    response.unwrap()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn tick(server: &TestServer, n: u64) {
    server
        .container
        .get("c")
        .unwrap()
        .broadcast(Message::new("tick", json!({ "n": n })));
}

fn ticks_of(report: &Value) -> Vec<u64> {
    report["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn an_event_source_with_credentials_sends_the_token_cookie_across_origins() {
    let mut page = PageServer::start().await;
    let origin = page.origin.clone();
    let server = TestServer::start_with(|config| {
        config.cors_allowed_origins = vec![origin];
        config.access = AccessConfig {
            key: Some(JwtKey::hs256(SECRET).unwrap()),
            ..AccessConfig::default()
        };
    })
    .await;
    server.container.add_with_id("c").unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": exp, "eric": {"subscribe": ["c"]}}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let stream = format!("http://{}/watch/c", server.addr);
    let browser = page.open(&format!(
        "stream={}&count=1&credentials=1&bare=1&token={token}",
        encode(&stream)
    ));
    // The EventSource without credentials sends no cookie: 401, closed for good. Each
    // report holds the page's whole state: one wait for both, in whichever order.
    page.report_where(&browser, "the bare stream refused, the other open", |r| {
        r["bare"]["closed"] == true && r["opens"] == 1
    })
    .await;
    tick(&server, 1);
    tick(&server, 2);
    let report = page
        .report_where(&browser, "two ticks", |r| ticks_of(r) == [2])
        .await;
    assert_eq!(report["bare"]["opens"], 0);
    assert_eq!(report["bare"]["ticks"], 0);
    assert_eq!(
        server.container.get("c").unwrap().listener_count(),
        1,
        "only the stream with the cookie is served"
    );
    drop(browser);
    server.shutdown().await;
}

/// Opens the page with twelve `EventSource`s on `stream`, waits until `open` are open,
/// broadcasts three ticks, and waits until `open` of them have all three; the page's
/// report then.
async fn twelve_sources(
    page: &mut PageServer,
    server: &TestServer,
    stream: &str,
    open: u64,
) -> (Browser, Value) {
    let browser = page.open(&format!("stream={}&count=12", encode(stream)));
    page.report_where(&browser, &format!("{open} open streams"), |r| {
        r["opens"] == open
    })
    .await;
    for n in 1..=3 {
        tick(server, n);
    }
    let report = page
        .report_where(&browser, "every tick on every open stream", |r| {
            ticks_of(r).iter().filter(|&&n| n == 3).count() as u64 == open
        })
        .await;
    (browser, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn twelve_event_sources_all_receive_over_http2_and_stall_after_six_over_http11() {
    let mut page = PageServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (files, _) = ca.server_files(dir.path(), "server");

    // HTTPS: ALPN gives HTTP/2, and the twelve streams share one connection.
    let origin = page.origin.clone();
    let server = TestServer::start_with(|config| {
        config.cors_allowed_origins = vec![origin];
        config.tls = Some(files);
    })
    .await;
    server.container.add_with_id("c").unwrap();
    let stream = format!("https://127.0.0.1:{}/watch/c", server.addr.port());
    let (browser, report) = twelve_sources(&mut page, &server, &stream, 12).await;
    assert_eq!(ticks_of(&report), [3; 12], "every stream got every tick");
    assert_eq!(server.container.get("c").unwrap().listener_count(), 12);
    drop(browser);
    server.shutdown().await;

    // HTTP/1.1: six connections per origin, one stream each; the other six wait.
    let origin = page.origin.clone();
    let server = TestServer::start_with(|config| config.cors_allowed_origins = vec![origin]).await;
    server.container.add_with_id("c").unwrap();
    let stream = format!("http://{}/watch/c", server.addr);
    let (browser, report) = twelve_sources(&mut page, &server, &stream, 6).await;
    let ticks = ticks_of(&report);
    assert_eq!(ticks.iter().filter(|&&n| n == 3).count(), 6);
    assert_eq!(
        ticks.iter().filter(|&&n| n == 0).count(),
        6,
        "six stalled: {ticks:?}"
    );
    assert_eq!(report["opens"], 6);
    assert_eq!(
        server.container.get("c").unwrap().listener_count(),
        6,
        "the server saw six streams: the browser held the other six back"
    );
    drop(browser);
    server.shutdown().await;
}
