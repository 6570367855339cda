//! The socket workloads, over the raw protocol: one connection per command, the command
//! written, the write side half-closed, the answer read to EOF.
//!
//! * W5a: `n` broadcasts (3,000), one after the other, to a channel with `listeners`
//!   registered listeners (100): commands/s.
//! * W5b: the same broadcasts from `clients` (20) concurrent clients, `n / clients` each:
//!   commands/s.
//! * W6: `n` messages (20,000) queued for one listener with `d` (not timed), then one
//!   `l` stream timed from the command until the `n`th line: lines/s.
//!
//! W5's timed commands are sent by plain blocking clients by default (`--client
//! blocking`): W5a from one thread, W5b from one thread per client. One command is then
//! seven system calls for the client (socket, connect, write, shutdown, two reads,
//! close), where a tokio client adds an epoll registration, a wait and a removal for
//! every connection and spent more CPU per command than the server it measured.
//! `--client async` keeps the tokio client (one thread, one task per W5b client).

use crate::report::Report;
use clap::{Args as ClapArgs, ValueEnum};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The server's socket file.
    #[arg(long)]
    socket: PathBuf,
    /// The workload to run.
    workload: Workload,
    /// Commands (W5a, W5b) or lines (W6); each workload has its own default.
    #[arg(long)]
    n: Option<u64>,
    /// Listeners registered on the broadcast channel (W5a, W5b).
    #[arg(long, default_value_t = 100)]
    listeners: u64,
    /// Concurrent clients (W5b).
    #[arg(long, default_value_t = 20)]
    clients: u64,
    /// W6: stream this already-filled listener (`CHANNEL/LISTENER`) instead of queueing
    /// `n` messages first; see --queue-only. To profile the stream alone.
    #[arg(long, value_name = "CHANNEL/LISTENER")]
    queued: Option<String>,
    /// W6: only queue the `n` messages, print `CHANNEL/LISTENER` and exit.
    #[arg(long, conflicts_with = "queued")]
    queue_only: bool,
    /// How W5's timed commands are sent.
    #[arg(long, value_enum, default_value_t = Client::Blocking)]
    client: Client,
}

/// The W5 client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Client {
    /// Blocking system calls: one thread per client, no event loop.
    Blocking,
    /// tokio, one thread: a task per client.
    Async,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    /// Sequential broadcasts to a channel with registered listeners.
    W5a,
    /// Concurrent broadcasts from several clients.
    W5b,
    /// One `l` stream delivering pre-queued messages.
    W6,
}

pub async fn run(args: Args) -> io::Result<Report> {
    let socket = Rc::new(args.socket.clone());
    match args.workload {
        Workload::W5a => {
            w5a(
                &socket,
                args.n.unwrap_or(3_000),
                args.listeners,
                args.client,
            )
            .await
        }
        Workload::W5b => {
            let n = args.n.unwrap_or(3_000);
            w5b(socket, n, args.clients, args.listeners, args.client).await
        }
        Workload::W6 => {
            let n = args.n.unwrap_or(20_000);
            let (channel, listener) = match &args.queued {
                Some(queued) => match queued.split_once('/') {
                    Some((channel, listener)) => (channel.to_owned(), listener.to_owned()),
                    None => return Err(io::Error::other("--queued takes CHANNEL/LISTENER")),
                },
                None => queue(&socket, n).await?,
            };
            if args.queue_only {
                println!("{channel}/{listener}");
                std::process::exit(0);
            }
            w6(&socket, n, &channel, &listener).await
        }
    }
    .map(|report| report.with("socket", args.socket.display().to_string()))
}

/// One command with blocking calls: connect, write, half-close, read the answer to EOF.
fn blocking_acked(socket: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.write_all(bytes)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = Vec::with_capacity(16);
    stream.read_to_end(&mut answer)?;
    if answer != b"ack" {
        return Err(unexpected("sending", &answer));
    }
    Ok(())
}

/// One command: connect, write, half-close, read the answer to EOF.
async fn command(socket: &Path, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = UnixStream::connect(socket).await?;
    stream.write_all(bytes).await?;
    stream.shutdown().await?;
    let mut answer = Vec::with_capacity(16);
    stream.read_to_end(&mut answer).await?;
    Ok(answer)
}

fn unexpected(what: &str, answer: &[u8]) -> io::Error {
    io::Error::other(format!(
        "{what}: unexpected answer {:?}",
        String::from_utf8_lossy(answer)
    ))
}

/// A command whose answer is an id (`c`, `r`).
async fn new_id(socket: &Path, bytes: &[u8]) -> io::Result<String> {
    let answer = command(socket, bytes).await?;
    if answer.is_empty() || !answer.iter().all(u8::is_ascii_digit) {
        return Err(unexpected("creating", &answer));
    }
    Ok(String::from_utf8(answer).expect("digits"))
}

/// A command whose answer is `ack` (`d`, `b`).
async fn acked(socket: &Path, bytes: &[u8]) -> io::Result<()> {
    let answer = command(socket, bytes).await?;
    if answer != b"ack" {
        return Err(unexpected("sending", &answer));
    }
    Ok(())
}

async fn channel(socket: &Path) -> io::Result<String> {
    new_id(socket, br#"{"v": "c"}"#).await
}

async fn listener(socket: &Path, channel: &str) -> io::Result<String> {
    new_id(
        socket,
        format!(r#"{{"v": "r", "c": "{channel}"}}"#).as_bytes(),
    )
    .await
}

/// A channel with `listeners` registered (not streamed) listeners.
async fn broadcast_channel(socket: &Path, listeners: u64) -> io::Result<String> {
    let channel = channel(socket).await?;
    for _ in 0..listeners {
        listener(socket, &channel).await?;
    }
    Ok(channel)
}

fn broadcast(channel: &str, seq: u64) -> Vec<u8> {
    format!(r#"{{"v": "b", "c": "{channel}", "t": "load", "p": {{"seq": {seq}}}}}"#).into_bytes()
}

async fn w5a(socket: &Path, n: u64, listeners: u64, client: Client) -> io::Result<Report> {
    let channel = broadcast_channel(socket, listeners).await?;
    let commands: Vec<Vec<u8>> = (0..n).map(|seq| broadcast(&channel, seq)).collect();
    let started = Instant::now();
    for bytes in &commands {
        match client {
            Client::Blocking => blocking_acked(socket, bytes)?,
            Client::Async => acked(socket, bytes).await?,
        }
    }
    let elapsed = started.elapsed();
    Ok(Report::new("w5a", n, elapsed, "cmds/s")
        .with("listeners", listeners)
        .with("client", format!("{client:?}").to_lowercase()))
}

/// W5b with one blocking thread per client.
fn w5b_threads(socket: &Path, channel: &str, per_client: u64, clients: u64) -> io::Result<()> {
    let batches: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|client| {
            (0..per_client)
                .map(|k| broadcast(channel, client * per_client + k))
                .collect()
        })
        .collect();
    std::thread::scope(|scope| {
        let threads: Vec<_> = batches
            .iter()
            .map(|commands| {
                scope.spawn(move || {
                    commands
                        .iter()
                        .try_for_each(|bytes| blocking_acked(socket, bytes))
                })
            })
            .collect();
        threads.into_iter().try_for_each(|thread| {
            thread
                .join()
                .map_err(|_| io::Error::other("a client panicked"))?
        })
    })
}

async fn w5b(
    socket: Rc<PathBuf>,
    n: u64,
    clients: u64,
    listeners: u64,
    client: Client,
) -> io::Result<Report> {
    let clients = clients.max(1);
    let per_client = n / clients;
    let channel = broadcast_channel(&socket, listeners).await?;
    if client == Client::Blocking {
        let started = Instant::now();
        w5b_threads(&socket, &channel, per_client, clients)?;
        return Ok(
            Report::new("w5b", clients * per_client, started.elapsed(), "cmds/s")
                .with("clients", clients)
                .with("listeners", listeners)
                .with("client", "blocking"),
        );
    }
    let local = tokio::task::LocalSet::new();
    let started = Instant::now();
    let outcome = local
        .run_until(async {
            let tasks: Vec<_> = (0..clients)
                .map(|client| {
                    let commands: Vec<Vec<u8>> = (0..per_client)
                        .map(|k| broadcast(&channel, client * per_client + k))
                        .collect();
                    let socket = Rc::clone(&socket);
                    tokio::task::spawn_local(async move {
                        for bytes in &commands {
                            acked(&socket, bytes).await?;
                        }
                        io::Result::Ok(())
                    })
                })
                .collect();
            for task in tasks {
                task.await.map_err(io::Error::other)??;
            }
            io::Result::Ok(())
        })
        .await;
    let elapsed = started.elapsed();
    outcome?;
    Ok(Report::new("w5b", clients * per_client, elapsed, "cmds/s")
        .with("clients", clients)
        .with("listeners", listeners)
        .with("client", "async"))
}

/// A new listener with `n` messages queued by `d` commands: (channel, listener).
async fn queue(socket: &Path, n: u64) -> io::Result<(String, String)> {
    let channel = channel(socket).await?;
    let listener = listener(socket, &channel).await?;
    for seq in 0..n {
        let bytes = format!(
            r#"{{"v": "d", "c": "{channel}", "r": "{listener}", "t": "load", "p": {{"seq": {seq}}}}}"#
        );
        acked(socket, bytes.as_bytes()).await?;
    }
    Ok((channel, listener))
}

async fn w6(socket: &Path, n: u64, channel: &str, listener: &str) -> io::Result<Report> {
    let started = Instant::now();
    let mut stream = UnixStream::connect(socket).await?;
    stream
        .write_all(format!(r#"{{"v": "l", "c": "{channel}", "r": "{listener}"}}"#).as_bytes())
        .await?;
    stream.shutdown().await?;
    let mut lines = 0u64;
    let mut first_line = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    while lines < n {
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .map_err(|_| io::Error::other(format!("no line for 30 s after {lines} lines")))??;
        if read == 0 {
            return Err(io::Error::other(format!(
                "the stream ended after {lines} of {n} lines"
            )));
        }
        if lines == 0 && first_line.len() < 4096 {
            first_line.extend_from_slice(&buf[..read]);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..read]).count() as u64;
    }
    let elapsed = started.elapsed();
    drop(stream);

    // Check the stream is what it should be, outside the timing.
    let end = memchr::memchr(b'\n', &first_line).unwrap_or(first_line.len());
    let first: serde_json::Value = serde_json::from_slice(&first_line[..end])
        .map_err(|e| unexpected(&format!("the first line ({e})"), &first_line[..end]))?;
    if first["event"] != "load" || first["data"]["seq"] != 0 {
        return Err(unexpected("the first line", &first_line[..end]));
    }
    Ok(Report::new("w6", n, elapsed, "lines/s"))
}
