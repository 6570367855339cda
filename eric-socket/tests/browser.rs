//! A real browser against the HTTP server: headless Chromium opens an `EventSource` on
//! eric from a page served on another origin (so through CORS), receives unicode and
//! multi-KB events once each and in order, sees the server end the stream, reconnects
//! by itself with `Last-Event-ID` and receives, from the channel's log, the events
//! sent while it was away. And an anonymous `/watch` whose connection is cut again and
//! again while broadcasts go on gets every event once, in order.
//!
//! Needs Chromium (`apt-get install chromium`; `ERIC_CHROMIUM` names another binary).
//! Without it the test fails: it never skips.
#![cfg(feature = "http")]

mod http_support;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_support::{SseClient, TestServer};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const PAGE: &str = include_str!("fixtures/eventsource.html");

/// The whole test must finish well within this.
const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// The reconnection time the server tells the browser: the window in which the test
/// plays "events sent while the browser was away".
const RETRY_MS: u64 = 3_000;

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

/// A headless Chromium in its own process group, killed with every process it started
/// when dropped.
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
        let user_data = profile.path().join("profile");
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
            ])
            .arg(format!("--user-data-dir={}", user_data.display()))
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

    /// What Chromium wrote so far, for a failure message.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the browser and its renderer, GPU and utility processes.
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// The page's server, on its own port (so another origin than eric's): `GET /page`
/// serves the test page, `POST /report` forwards each report of the page to the test.
async fn serve_page(listener: TcpListener, reports: mpsc::UnboundedSender<Value>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let reports = reports.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let reports = reports.clone();
                async move {
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
                    Ok::<_, Infallible>(response.unwrap())
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Opens the test page (served at `page_origin`) in Chromium on the event stream at
/// `stream_url`, expecting `expect` events, and waits until its stream is open.
async fn open_page(
    page_origin: &str,
    stream_url: &str,
    expect: usize,
    reports: &mut mpsc::UnboundedReceiver<Value>,
) -> Browser {
    let page_url = format!(
        "{page_origin}/page?stream={}&expect={expect}",
        form_urlencoded_component(stream_url)
    );
    let browser = Browser::open(&page_url);
    report_where(reports, &browser, "an open stream", |r| r["opens"] == 1).await;
    browser
}

/// Waits for the first report of the page that satisfies `done`.
async fn report_where(
    reports: &mut mpsc::UnboundedReceiver<Value>,
    browser: &Browser,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let wait = async {
        while let Some(report) = reports.recv().await {
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

/// The payloads the test sends: unicode of every width, line breaks of every kind,
/// multi-KB strings, nesting, numbers, null.
fn payloads(phase: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| match i % 6 {
            0 => json!({"phase": phase, "i": i, "text": "héllo wörld — ça va? 日本語 🚀🌍"}),
            1 => json!({"phase": phase, "i": i, "lines": "one\ntwo\r\nthree\rfour\u{2028}five"}),
            2 => json!({"phase": phase, "i": i, "blob": "é🚀x".repeat(2_000)}),
            3 => json!({"phase": phase, "i": i, "big": "a".repeat(64 * 1024)}),
            4 => json!({"phase": phase, "i": i, "nested": {"list": [1, 2.5, -3, null, true, "z"], "empty": {}}}),
            _ => json!({"phase": phase, "i": i, "nothing": null, "quote": "\"'<>&\\"}),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn a_browser_event_source_gets_every_event_once_in_order_and_resumes_after_the_server_ends_the_stream(
) {
    // The page's origin first: eric's CORS list names it.
    let page_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://{}", page_listener.local_addr().unwrap());
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let page_server = tokio::spawn(serve_page(page_listener, report_tx));

    let server = TestServer::start_with(|config| {
        config.cors_allowed_origins = vec![page_origin.clone()];
        config.sse = config.sse.clone().with_retry_ms(Some(RETRY_MS));
    })
    .await;
    server.container.add_with_id("browser").unwrap();
    let listener = server.subscribe("browser").await;
    let first = payloads("first", 12);
    let while_away = payloads("away", 6);
    let expect = first.len() + while_away.len();

    let stream_url = format!("http://{}/stream/browser/{listener}", server.addr);
    // 1. The page is connected; the events come.
    let browser = open_page(&page_origin, &stream_url, expect, &mut reports).await;
    for payload in &first {
        server.broadcast("browser", "note", payload.clone()).await;
    }
    // 2. The server ends the stream (the channel's end-of-stream message); the listener
    //    stays, and the browser will reconnect after RETRY_MS.
    server
        .broadcast("browser", "_eric_channel_closed", Value::Null)
        .await;
    let closed_id = server.position("browser", first.len() as u64 + 1);
    report_where(&mut reports, &browser, "the end of the stream", |r| {
        r["errors"].as_u64() >= Some(1) && r["closed"] == json!([closed_id])
    })
    .await;

    // 3. While the browser is away, events are sent, and another client of the same
    //    listener takes them out of the queue: from now on only the channel's log
    //    has them, and only a reconnection with `Last-Event-ID` gets them back.
    let mut other = SseClient::open(server.addr, &format!("/stream/browser/{listener}"), &[]).await;
    for payload in &while_away {
        server.broadcast("browser", "note", payload.clone()).await;
    }
    let taken = other.next_events(while_away.len()).await;
    assert_eq!(taken.len(), while_away.len());
    drop(other);

    // 4. The browser reconnects by itself and receives them.
    let done = report_where(&mut reports, &browser, "every event", |r| {
        r["kind"] == "done"
    })
    .await;
    let received = done["received"].as_array().unwrap();
    let got_ids: Vec<&str> = received.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut want_ids: Vec<String> = (1..=first.len() as u64)
        .map(|n| server.position("browser", n))
        .collect();
    want_ids.extend(taken.iter().map(|event| event.last_event_id.clone()));
    assert_eq!(got_ids, want_ids, "every event once, in order, with its id");
    let got_data: Vec<&Value> = received.iter().map(|r| &r["data"]).collect();
    let want_data: Vec<&Value> = first.iter().chain(&while_away).collect();
    assert!(
        got_data == want_data,
        "the data, JSON.parse'd, is what was sent"
    );
    assert_eq!(done["unparsable"], 0);
    assert_eq!(done["opens"], 2, "one reconnection");
    assert_eq!(done["listed"], expect, "every event is in the page's DOM");

    drop(browser);
    page_server.abort();
    server.shutdown().await;
}

/// A TCP proxy in front of eric that cuts every connection it carries whenever the
/// test says so: the abrupt end a browser sees when a network drops, at any byte.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    async fn start(upstream: std::net::SocketAddr) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        CuttingProxy { addr, cut, task }
    }

    /// Cuts every connection open now.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn a_browser_watching_a_channel_gets_every_event_once_though_its_connection_is_cut() {
    const EVENTS: usize = 240;
    const CUTS: usize = 3;
    let page_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://{}", page_listener.local_addr().unwrap());
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let page_server = tokio::spawn(serve_page(page_listener, report_tx));
    let server = TestServer::start_with(|config| {
        config.cors_allowed_origins = vec![page_origin.clone()];
        // Reconnect soon: the events keep coming while the browser is away.
        config.sse = config.sse.clone().with_retry_ms(Some(250));
    })
    .await;
    server.container.add_with_id("live").unwrap();
    let proxy = CuttingProxy::start(server.addr).await;

    let stream_url = format!("http://{}/watch/live", proxy.addr);
    let browser = open_page(&page_origin, &stream_url, EVENTS, &mut reports).await;

    // Broadcasts go on at a steady pace while the connection is cut, three times, at
    // whatever byte it is at; the last events wait for the last cut, so the browser is
    // away for some of them every time.
    let cuts_done = Arc::new(tokio::sync::Notify::new());
    let publisher = {
        let channel = server.container.get("live").unwrap();
        let cuts_done = Arc::clone(&cuts_done);
        tokio::spawn(async move {
            for i in 0..EVENTS {
                if i == EVENTS - 40 {
                    cuts_done.notified().await;
                }
                channel.broadcast(eric_core::Message::new("note", json!({ "i": i })));
                tokio::time::sleep(Duration::from_millis(8)).await;
            }
        })
    };
    for cut in 1..=CUTS {
        if cut > 1 {
            report_where(&mut reports, &browser, "a reopened stream", |r| {
                r["opens"].as_u64() >= Some(cut as u64)
            })
            .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut();
    }
    cuts_done.notify_one();
    let done = report_where(&mut reports, &browser, "every event", |r| {
        r["kind"] == "done"
    })
    .await;
    publisher.await.unwrap();

    let received = done["received"].as_array().unwrap();
    let got: Vec<u64> = received
        .iter()
        .map(|r| r["data"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        (0..EVENTS as u64).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let ids: Vec<String> = received
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = (1..=EVENTS as u64)
        .map(|n| server.position("live", n))
        .collect();
    assert_eq!(ids, want, "each with its position in the channel's log");
    assert_eq!(
        done["opens"],
        CUTS + 1,
        "the browser reconnected once after each cut"
    );
    assert_eq!(done["listed"], EVENTS, "every event is in the page's DOM");

    drop(browser);
    page_server.abort();
    server.shutdown().await;
}

/// `text` percent-encoded for a query value.
fn form_urlencoded_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
