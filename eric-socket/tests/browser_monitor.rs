//! The monitor page in a real browser: headless Chromium opens `/monitor` while known
//! traffic flows; the page, fed by `/monitor/events`, must show the channel and
//! non-zero publish and delivery rates in its DOM. A screenshot is saved
//! (`target/monitor.png`, its path printed) for a person to look at.
//!
//! Chromium is driven over its DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages ended by NUL on file descriptors 3 and 4, here two FIFOs), which lets
//! the test read the live DOM and take the screenshot when the page is ready, rather than
//! at its load event, before the first snapshot came.
//!
//! Needs Chromium (`apt-get install chromium`; `ERIC_CHROMIUM` names another binary).
//! Without it the test fails: it never skips.
#![cfg(feature = "http")]

mod http_support;

use http_support::TestServer;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest the page may take to show the traffic.
const PAGE_WAIT: Duration = Duration::from_secs(30);

fn chromium() -> PathBuf {
    let path = std::env::var_os("ERIC_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the monitor test needs Chromium at {} (apt-get install chromium, or set ERIC_CHROMIUM)",
        path.display()
    );
    path
}

/// A headless Chromium spoken to over the DevTools pipe; killed with its process group
/// when dropped.
struct DevTools {
    child: Child,
    commands: File,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    _dir: tempfile::TempDir,
}

impl DevTools {
    fn launch() -> DevTools {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::Builder::new()
            .prefix("eric-monitor-chromium")
            .tempdir()
            .unwrap();
        let (to_browser, from_browser) = (dir.path().join("in"), dir.path().join("out"));
        for fifo in [&to_browser, &from_browser] {
            let made = Command::new("mkfifo")
                .arg(fifo)
                .status()
                .expect("mkfifo runs");
            assert!(made.success(), "mkfifo {}", fifo.display());
        }
        // The shell puts the FIFOs on the descriptors the protocol uses, then becomes
        // Chromium.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<"$Eric_IN" 4>"$Eric_OUT""#)
            .arg(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--mute-audio",
                "--hide-scrollbars",
                "--window-size=1280,1000",
                "--remote-debugging-pipe",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .arg("about:blank")
            .env("Eric_IN", &to_browser)
            .env("Eric_OUT", &from_browser)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("Chromium starts");
        // Opening a FIFO waits for its other end: the shell opens `in` first.
        let commands = File::options().write(true).open(&to_browser).unwrap();
        let mut output = File::open(&from_browser).unwrap();
        let (sender, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut chunk = [0u8; 64 * 1024];
            while let Ok(read) = output.read(&mut chunk) {
                if read == 0 {
                    return;
                }
                pending.extend_from_slice(&chunk[..read]);
                while let Some(end) = pending.iter().position(|&b| b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(value) = serde_json::from_slice(&message[..end]) {
                        if sender.send(value).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        DevTools {
            child,
            commands,
            replies,
            next_id: 0,
            _dir: dir,
        }
    }

    /// Sends a command (to the page's session, if given) and waits for its result.
    fn call(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} from Chromium"));
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page; the page's session.
    fn open(&mut self, url: &str) -> String {
        let target = self.call("Target.createTarget", json!({"url": url}), None);
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
            None,
        );
        attached["sessionId"].as_str().unwrap().to_owned()
    }

    /// The value of a JavaScript expression in the page.
    fn evaluate(&mut self, session: &str, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
            Some(session),
        );
        result["result"]["value"].clone()
    }

    /// A PNG of the page.
    fn screenshot(&mut self, session: &str) -> Vec<u8> {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png"}),
            Some(session),
        );
        base64_decode(shot["data"].as_str().unwrap())
    }
}

impl Drop for DevTools {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|group| {
            let mut word = 0u32;
            for (i, digit) in group.iter().enumerate() {
                word |= u32::from(*digit) << (18 - 6 * i);
            }
            let bytes = word.to_be_bytes();
            bytes[1..group.len()].to_vec()
        })
        .collect()
}

/// What the test reads off the rendered page.
const READ_PAGE: &str = r##"JSON.stringify({
    state: document.getElementById("state").textContent,
    channels: [...document.querySelectorAll("#channel-table tbody tr[data-channel]")]
        .map((row) => [...row.cells].map((cell) => cell.textContent)),
    publish: document.getElementById("publish-rate").textContent,
    delivery: document.getElementById("delivery-rate").textContent,
    subscribers: document.getElementById("subscribers-count").textContent,
})"##;

fn rate_of(text: &str) -> f64 {
    let number = text.trim_end_matches("/s");
    let (number, scale) = match number.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => match number.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (number, 1.0),
        },
    };
    number.parse::<f64>().map_or(0.0, |n| n * scale)
}

/// `POST /broadcast` of a small message to `channel` (percent-encoded), read to its end.
async fn broadcast(addr: std::net::SocketAddr, channel: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = r#"{"type": "tick", "payload": {"n": 1}}"#;
    let request = format!(
        "POST /broadcast?channel_id={channel} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn the_monitor_page_shows_the_channels_and_live_rates() {
    let server = TestServer::start().await;
    let channel = "news <&> \"quoted\"";
    server
        .container
        .add_with_id(channel)
        .expect("a fresh channel");
    let encoded = "news%20%3C%26%3E%20%22quoted%22";
    let mut watchers = Vec::new();
    for _ in 0..3 {
        watchers.push(server.stream(&format!("/watch/{encoded}")).await);
    }
    // Known traffic for the life of the test: a broadcast every 50 ms, read by three
    // watchers.
    let publisher = {
        let addr = server.addr;
        tokio::spawn(async move {
            loop {
                broadcast(addr, encoded).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let readers: Vec<_> = watchers
        .into_iter()
        .map(|mut watcher| {
            tokio::spawn(async move {
                loop {
                    watcher.next_event().await;
                }
            })
        })
        .collect();

    let url = format!("http://{}/monitor", server.addr);
    let (page, png) = tokio::task::spawn_blocking(move || {
        let mut browser = DevTools::launch();
        let session = browser.open(&url);
        let started = Instant::now();
        let page = loop {
            let read = browser.evaluate(&session, READ_PAGE);
            let page: Value = read
                .as_str()
                .map(|text| serde_json::from_str(text).unwrap())
                .unwrap_or(Value::Null);
            let channel_rate = page["channels"][0][4].as_str().unwrap_or("");
            let shows_traffic = rate_of(channel_rate) > 0.0
                && rate_of(page["publish"].as_str().unwrap_or("")) > 0.0
                && rate_of(page["delivery"].as_str().unwrap_or("")) > 0.0;
            if shows_traffic {
                break page;
            }
            assert!(
                started.elapsed() < PAGE_WAIT,
                "the page did not show the traffic: {page}"
            );
            std::thread::sleep(Duration::from_millis(300));
        };
        // One more second of history for the picture.
        std::thread::sleep(Duration::from_secs(2));
        (page, browser.screenshot(&session))
    })
    .await
    .unwrap();
    publisher.abort();
    for reader in readers {
        reader.abort();
    }

    assert_eq!(page["state"], "ready", "{page}");
    assert_eq!(page["subscribers"], "3", "{page}");
    let row = &page["channels"][0];
    assert_eq!(
        row[0], channel,
        "the id is shown as text, not markup: {page}"
    );
    assert_eq!(row[1], "3", "listeners: {page}");
    assert_eq!(row[2], "3", "subscribers: {page}");
    assert!(
        rate_of(row[4].as_str().unwrap()) > 0.0,
        "the channel's rate: {page}"
    );

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/monitor.png");
    std::fs::write(&path, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    println!(
        "the monitor's screenshot: {}",
        path.canonicalize().unwrap().display()
    );
    server.shutdown().await;
}
