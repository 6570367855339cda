//! A thousand connections of garbage, half commands, huge inputs, hang-ups and streams
//! cut short, interleaved with valid commands: the server answers each as it should, and
//! afterwards serves correctly with no leaked listener and no leaked connection.

mod common;

use common::{bounded, eventually, read_to_end_or_reset, RawStream, TestServer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const CONNECTIONS: u64 = 1_000;
const AT_ONCE: usize = 50;
const MAX_COMMAND: usize = 64 << 10;
const BACKLOG: u32 = 100_000;

/// xorshift64*: reproducible garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[derive(Clone)]
struct Target {
    path: PathBuf,
    channel: String,
    /// Never streamed: its queue counts the `b` and `d` that were acknowledged.
    kept: String,
    /// Streamed by `l` connections that hang up in the middle of a big backlog.
    streamed: String,
}

/// What one connection did that the final checks need to know.
#[derive(Default)]
struct Outcome {
    acks: usize,
}

/// Asserts `answer` is one error line of the protocol's shape: `Name(...)`.
fn assert_error_shape(answer: &str, what: &str) {
    let open = answer.find('(');
    let well_formed = open.is_some_and(|open| {
        open > 0
            && answer[..open].bytes().all(|b| b.is_ascii_alphanumeric())
            && answer.ends_with(')')
    });
    assert!(well_formed, "{what}: not an error answer: {answer:?}");
    assert!(!answer.contains('\n'), "{what}: more than one line");
}

async fn raw(path: &Path, bytes: &[u8]) -> String {
    common::send_raw(path, bytes).await
}

async fn one_connection(i: u64, target: &Target) -> Outcome {
    let mut rng = Rng::new(i);
    let path = target.path.as_path();
    let channel = &target.channel;
    let mut outcome = Outcome::default();
    match i % 10 {
        // Random bytes.
        0 => {
            let len = 1 + rng.below(4096) as usize;
            let answer = raw(path, &rng.bytes(len)).await;
            assert_error_shape(&answer, "random bytes");
        }
        // A valid command cut short.
        1 => {
            let command =
                format!(r#"{{"v": "b", "c": "{channel}", "t": "cut", "p": {{"a": [1, 2, 3]}}}}"#);
            let cut = rng.below(command.len() as u64 - 1) as usize;
            let answer = raw(path, &command.as_bytes()[..cut]).await;
            assert!(
                answer.starts_with("JSONDecodeError('"),
                "truncated at {cut}: {answer:?}"
            );
        }
        // Far more than the server accepts, written while it refuses.
        2 => {
            let stream = UnixStream::connect(path).await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            let writing = tokio::spawn(async move {
                let block = vec![b'['; 64 << 10];
                for _ in 0..16 {
                    if writer.write_all(&block).await.is_err() {
                        break;
                    }
                }
                let _ = writer.shutdown().await;
            });
            let mut answer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                use tokio::io::AsyncReadExt;
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&chunk[..n]),
                }
            }
            assert_eq!(
                String::from_utf8(answer).unwrap(),
                format!("InvalidMessageFormat('command larger than {MAX_COMMAND} bytes: refused')")
            );
            writing.await.unwrap();
        }
        // Connect and close at once.
        3 => drop(UnixStream::connect(path).await.unwrap()),
        // Half a command, then a full close without reading the answer.
        4 => {
            let mut stream = UnixStream::connect(path).await.unwrap();
            stream.write_all(br#"{"v": "b", "c": "#).await.unwrap();
            drop(stream);
        }
        // A command without the half-close: the read timeout answers.
        5 => {
            let mut stream = UnixStream::connect(path).await.unwrap();
            stream.write_all(br#"{"v": "c"}"#).await.unwrap();
            let answer = read_to_end_or_reset(&mut stream).await;
            assert!(answer.starts_with(b"TimeoutError('"), "{answer:?}");
        }
        // A watcher that leaves after at most one line.
        6 => {
            let mut watcher = RawStream::watch(path, channel).await;
            let within = Duration::from_millis(rng.below(20));
            let _ = watcher.try_line(within).await;
        }
        // A listener that hangs up in the middle of a big backlog.
        7 => {
            let mut stream = RawStream::listen(path, channel, &target.streamed).await;
            let _ = stream.try_line(Duration::from_secs(1)).await;
        }
        // Valid broadcasts and dispatches, counted.
        8 => {
            let answer = raw(
                path,
                format!(r#"{{"v": "b", "c": "{channel}", "t": "ok", "p": {i}}}"#).as_bytes(),
            )
            .await;
            assert_eq!(answer, "ack");
            outcome.acks += 1;
        }
        _ => {
            let kept = &target.kept;
            let answer = raw(
                path,
                format!(r#"{{"v": "d", "c": "{channel}", "r": "{kept}", "t": "ok", "p": {i}}}"#)
                    .as_bytes(),
            )
            .await;
            assert_eq!(answer, "ack");
            outcome.acks += 1;
            let answer = raw(path, br#"{"v": "c"}"#).await;
            assert!(common::is_decimal_id(&answer), "{answer:?}");
        }
    }
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bad_and_good_connections_leave_the_server_sound() {
    let server = TestServer::start_unix_with(|config| {
        config.read_timeout = Duration::from_millis(300);
        config.max_command_bytes = MAX_COMMAND;
    })
    .await;
    let channel = server.channel().await;
    let kept = server.listener(&channel).await;
    let streamed = server.listener(&channel).await;
    let sse = server.container.get(&channel).unwrap();
    // Big lines, one shared message: the backlog outlasts the streams cut short.
    let big = Arc::new(eric_core::Message::new("backlog", "x".repeat(1000)));
    for _ in 0..BACKLOG {
        sse.dispatch(&streamed, Arc::clone(&big)).unwrap();
    }
    let target = Arc::new(Target {
        path: server.path.clone(),
        channel: channel.clone(),
        kept: kept.clone(),
        streamed,
    });

    let slots = Arc::new(Semaphore::new(AT_ONCE));
    let mut connections = JoinSet::new();
    for i in 0..CONNECTIONS {
        let slot = Arc::clone(&slots).acquire_owned().await.unwrap();
        let target = Arc::clone(&target);
        connections.spawn(async move {
            let outcome = one_connection(i, &target).await;
            drop(slot);
            outcome
        });
    }
    let mut acks = 0;
    bounded("all connections finish", async {
        while let Some(outcome) = connections.join_next().await {
            acks += outcome.expect("no connection check failed").acks;
        }
    })
    .await;

    eventually("every connection is closed", || server.gauge.open() == 0).await;
    eventually("no watcher's listener is left behind", || {
        server.container.listener_count() == 2
    })
    .await;
    assert_eq!(server.listeners_of(&channel), 2);
    assert_eq!(acks, 200);
    assert_eq!(
        sse.get_listener(&kept).unwrap().queue_len(),
        acks,
        "every acknowledged b and d reached the kept listener, once"
    );
    let left = sse.get_listener(&target.streamed).unwrap().queue_len();
    assert!(
        0 < left && left < BACKLOG as usize,
        "the l streams were cut in the middle of the backlog ({left} left)"
    );

    // And the server still does its job.
    server.assert_serves().await;
    let fresh = server.channel().await;
    let listener = server.listener(&fresh).await;
    let command =
        format!(r#"{{"v": "d", "c": "{fresh}", "r": "{listener}", "t": "after", "p": 1}}"#);
    assert_eq!(server.send_command(&command).await, "ack");
    let mut stream = RawStream::listen(&server.path, &fresh, &listener).await;
    assert_eq!(stream.line().await, common::line("after", "1"));
    drop(stream);
    eventually("the last stream is closed", || server.gauge.open() == 0).await;
    server.shutdown().await;
}
