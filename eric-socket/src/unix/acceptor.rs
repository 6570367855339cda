//! The accept thread of the Unix server: one blocking thread that accepts and answers
//! the commands that arrive whole, handing everything else to the runtime.
//!
//! Most connections carry one small command that the client writes and half-closes
//! right after connecting. On the runtime, each would pay for the machinery of a task:
//! a non-blocking listener drained until it fails, the socket registered with the
//! reactor and removed again, often a read that comes before the client's write and one
//! more wait, and a wake-up of another thread. A blocking `accept` on a thread of its
//! own wakes once per connection. There, a `poll` waits up to [`BRIEF_WAIT`] for the
//! client's half-close (the client is usually writing at that very moment), a peek
//! copies the command, which is executed and answered with a non-blocking write; then
//! the command's bytes are taken off the socket and the socket is closed. No task, no
//! registration, no wake-up of another thread, and one wake-up of the client (see
//! [`peek_whole_command`]).
//!
//! A connection that cannot finish that way goes to the runtime as a [`Handoff`]: a
//! command still arriving after the brief wait (its read timeout starts there) or larger
//! than the thread's buffer, an answer larger than the socket buffer, and the streams of
//! `l` and `w`. A client that connects and says nothing holds the thread for at most
//! [`BRIEF_WAIT`], and only while no other client waits to be accepted. Where a
//! half-close cannot be seen before reading (outside Linux), the runtime reads every
//! command.

use crate::accept::accept_error_pause;
use crate::unix::gauge::{ConnectionGauge, ConnectionGuard};
use crate::unix::service::{CommandBuffer, CommandService, Handoff, Reply};
use socket2::Socket;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// How long the accept thread waits for a client to send its whole command before it
/// hands the connection to the runtime. Long enough for a client that writes right after
/// connecting, short enough that a silent client delays the next accept by little.
pub(crate) const BRIEF_WAIT: Duration = Duration::from_millis(1);

/// A connection handed to the runtime, with its share of the connection limits: the
/// permit and the gauge count go with it until it ends.
pub(crate) struct Pending {
    /// The socket, non-blocking once handed off.
    pub(crate) stream: UnixStream,
    pub(crate) handoff: Handoff,
    pub(crate) permit: OwnedSemaphorePermit,
    pub(crate) open: ConnectionGuard,
}

/// The running accept thread. Stopping it (or dropping it) makes the thread leave its
/// `accept` at once and end; it drops the listener, and new clients are refused.
pub(crate) struct AcceptThread {
    listener: Arc<Socket>,
    stopping: Arc<AtomicBool>,
    permits: Arc<Semaphore>,
    path: PathBuf,
}

/// What the accept thread needs.
pub(crate) struct AcceptSettings {
    /// Connections served at once, those handed off included.
    pub(crate) max_connections: usize,
    /// The socket file, only to wake the thread where shutting the listener down does
    /// not.
    pub(crate) path: PathBuf,
    /// Counts open connections.
    pub(crate) gauge: ConnectionGauge,
}

impl AcceptThread {
    /// Starts the thread on `listener`; connections it cannot finish arrive on the
    /// receiver, which yields `None` once the thread has ended.
    pub(crate) fn start(
        listener: std::os::unix::net::UnixListener,
        settings: AcceptSettings,
        service: CommandService,
    ) -> io::Result<(AcceptThread, UnboundedReceiver<Pending>)> {
        let listener = Socket::from(listener);
        listener.set_nonblocking(false)?;
        let listener = Arc::new(listener);
        let stopping = Arc::new(AtomicBool::new(false));
        let permits = Arc::new(Semaphore::new(settings.max_connections));
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let worker = Worker {
            listener: Arc::clone(&listener),
            stopping: Arc::clone(&stopping),
            permits: Arc::clone(&permits),
            runtime: tokio::runtime::Handle::current(),
            gauge: settings.gauge,
            service,
            sender,
        };
        std::thread::Builder::new()
            .name("eric-unix-accept".into())
            .spawn(move || worker.run())?;
        Ok((
            AcceptThread {
                listener,
                stopping,
                permits,
                path: settings.path,
            },
            receiver,
        ))
    }

    /// Stops accepting. The thread finishes the connection it is serving, if any, and
    /// ends.
    pub(crate) fn stop(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wakes the thread if it waits for a permit.
        self.permits.close();
        // On Linux, shutting a listening socket down wakes a blocked `accept` (which
        // fails with EINVAL) and refuses new clients at once. Elsewhere it may fail:
        // then one connection of our own wakes the thread, which sees `stopping`.
        if self.listener.shutdown(Shutdown::Read).is_err() {
            let _ = UnixStream::connect(&self.path);
        }
    }
}

impl Drop for AcceptThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The state of the accept thread.
struct Worker {
    listener: Arc<Socket>,
    stopping: Arc<AtomicBool>,
    permits: Arc<Semaphore>,
    /// Only to wait for a permit when the server is full.
    runtime: tokio::runtime::Handle,
    gauge: ConnectionGauge,
    service: CommandService,
    sender: UnboundedSender<Pending>,
}

impl Worker {
    fn run(self) {
        // The commands run here may arm timers on the runtime (the summaries of refused
        // messages), as they would in a task.
        let _runtime = self.runtime.enter();
        // Zeroed once: a fresh buffer per connection would cost a 16 KiB memset each.
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            // A permit before accepting: at the limit, clients wait in the backlog.
            let permit = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(TryAcquireError::Closed) => return,
                Err(TryAcquireError::NoPermits) => {
                    match self
                        .runtime
                        .block_on(Arc::clone(&self.permits).acquire_owned())
                    {
                        Ok(permit) => permit,
                        Err(_closed) => return,
                    }
                }
            };
            let socket = match self.listener.accept() {
                Ok((socket, _)) => socket,
                Err(_) if self.stopping.load(Ordering::Acquire) => return,
                Err(error) => {
                    if let Some(pause) = accept_error_pause("socket server", &error) {
                        std::thread::sleep(pause);
                    }
                    continue;
                }
            };
            let open = self.gauge.enter();
            let stream = UnixStream::from(socket);
            // A panic while serving loses this connection only, as it would in a task of
            // its own; the thread goes on accepting.
            let served =
                std::panic::catch_unwind(AssertUnwindSafe(|| self.serve_now(&stream, &mut chunk)));
            let handoff = match served {
                Ok(Some(handoff)) => handoff,
                Ok(None) => continue,
                Err(_) => {
                    tracing::error!(server = "socket server", "serving a connection panicked");
                    continue;
                }
            };
            // The runtime waits through its reactor, never in a read.
            if let Err(error) = stream.set_nonblocking(true) {
                tracing::debug!(%error, "cannot hand the connection off");
                continue;
            }
            let pending = Pending {
                stream,
                handoff,
                permit,
                open,
            };
            if self.sender.send(pending).is_err() {
                // The server's task is gone (its `run` future was dropped).
                return;
            }
        }
    }

    /// Serves a command that is already whole; the rest is for the runtime.
    fn serve_now(&self, stream: &UnixStream, chunk: &mut [u8]) -> Option<Handoff> {
        let limit = self.service.max_command_bytes();
        // A command over the limit is refused by the runtime's read, with its error.
        let Some(sent) = peek_whole_command(stream, &self.listener, chunk, BRIEF_WAIT)
            .filter(|&sent| sent <= limit)
        else {
            return Some(Handoff::Read(CommandBuffer::new(limit)));
        };
        let handoff = match self.service.execute(&chunk[..sent]) {
            Reply::Bytes(bytes) => {
                write_now(stream, bytes).map(|rest| Handoff::Reply(Reply::Bytes(rest)))
            }
            stream @ Reply::Stream(_) => Some(Handoff::Reply(stream)),
        };
        discard(stream, chunk, sent);
        handoff
    }
}

/// Waits up to `wait` ([`BRIEF_WAIT`]) for the client to half-close, then copies what it sent
/// into `chunk` without taking it off the socket: `Some(length)` if that is the whole
/// command, `None` if the command is still arriving or larger than `chunk`.
///
/// The wait ends early when another client waits to be accepted (`listener` is
/// readable): a client that says nothing then costs the others no time at all, rather
/// than up to [`BRIEF_WAIT`] each.
///
/// Peeking, and taking the bytes only after the answer is sent ([`discard`]), saves
/// the client a wake-up: taking bytes off a Unix socket wakes whoever waits on the
/// sender's socket, and the client is usually waiting there already, for its answer.
#[cfg(any(target_os = "android", target_os = "linux"))]
fn peek_whole_command(
    stream: &UnixStream,
    listener: &Socket,
    chunk: &mut [u8],
    wait: Duration,
) -> Option<usize> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::net::{recv, RecvFlags};
    let mut ready = [
        PollFd::new(stream, PollFlags::RDHUP),
        PollFd::new(listener, PollFlags::IN),
    ];
    let wait = Timespec::try_from(wait).ok()?;
    poll(&mut ready, Some(&wait)).ok()?;
    // Checked whatever the listener says: a command that is whole is served here.
    if !ready[0]
        .revents()
        .intersects(PollFlags::RDHUP | PollFlags::HUP)
    {
        return None;
    }
    let (peeked, _) = recv(stream, &mut *chunk, RecvFlags::PEEK | RecvFlags::DONTWAIT).ok()?;
    (peeked < chunk.len()).then_some(peeked)
}

/// Without a way to see a half-close before reading, every command is read by the
/// runtime.
#[cfg(not(any(target_os = "android", target_os = "linux")))]
fn peek_whole_command(
    _stream: &UnixStream,
    _listener: &Socket,
    _chunk: &mut [u8],
    _wait: Duration,
) -> Option<usize> {
    None
}

/// Takes the `length` bytes that [`peek_whole_command`] saw off the socket: closing it
/// with unread bytes would reset the connection, and the client would see an error
/// instead of the end of its answer.
fn discard(stream: &UnixStream, chunk: &mut [u8], length: usize) {
    use std::io::Read;
    let mut left = length;
    while left > 0 {
        match (&*stream).read(&mut chunk[..left]) {
            Ok(0) => return,
            Ok(read) => left -= read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes what the socket takes now, without blocking the thread; the rest, if any, for
/// the runtime.
fn write_now(stream: &UnixStream, bytes: Vec<u8>) -> Option<Vec<u8>> {
    let mut written = 0;
    while written < bytes.len() {
        match rustix::net::send(stream, &bytes[written..], SEND_FLAGS) {
            Ok(0) => return None,
            Ok(n) => written += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Some(bytes[written..].to_vec()),
            Err(error) => {
                tracing::debug!(%error, "connection ended with an error");
                return None;
            }
        }
    }
    None
}

/// A send that never blocks (the socket is in blocking mode for its reads), and where
/// the platform allows, never raises `SIGPIPE` for a client that left.
#[cfg(any(target_os = "android", target_os = "linux"))]
const SEND_FLAGS: rustix::net::SendFlags =
    rustix::net::SendFlags::DONTWAIT.union(rustix::net::SendFlags::NOSIGNAL);

#[cfg(not(any(target_os = "android", target_os = "linux")))]
const SEND_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::DONTWAIT;

#[cfg(all(test, any(target_os = "android", target_os = "linux")))]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;

    /// A brief wait longer than any test may take: a peek that waited it to its end
    /// would fail the test, so what ends the wait is an event, never the clock.
    const FOREVER: Duration = Duration::from_secs(3600);

    /// How long a test waits for the peek to return before failing.
    const WAIT: Duration = Duration::from_secs(10);

    /// A listener, and the server's side of one client's connection (the client's
    /// side is returned to keep it open).
    fn accepted() -> (tempfile::TempDir, Arc<Socket>, UnixStream, UnixStream) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("eric.sock");
        let listener = Socket::from(UnixListener::bind(&path).expect("bind"));
        let client = UnixStream::connect(&path).expect("connect");
        let (served, _) = listener.accept().expect("accept");
        (dir, Arc::new(listener), UnixStream::from(served), client)
    }

    /// Runs the peek on a thread of its own, so that a peek that never returns fails
    /// the test instead of hanging it.
    fn peek(listener: &Arc<Socket>, served: UnixStream) -> mpsc::Receiver<Option<usize>> {
        let listener = Arc::clone(listener);
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 64];
            let _ = sender.send(peek_whole_command(&served, &listener, &mut chunk, FOREVER));
        });
        receiver
    }

    #[test]
    fn a_silent_client_is_let_go_as_soon_as_another_waits_to_be_accepted() {
        let (dir, listener, served, _silent) = accepted();
        let peeked = peek(&listener, served);
        // Whether it comes before the peek polls or during its wait, the next client
        // ends the wait.
        let _next = UnixStream::connect(dir.path().join("eric.sock")).expect("connect");
        let result = peeked
            .recv_timeout(WAIT)
            .expect("the wait ends when another client waits, not when it runs out");
        assert_eq!(result, None, "a silent client's command is not whole");
    }

    #[test]
    fn a_whole_command_is_peeked_even_while_another_client_waits() {
        let (dir, listener, served, mut client) = accepted();
        let _next = UnixStream::connect(dir.path().join("eric.sock")).expect("connect");
        std::io::Write::write_all(&mut client, br#"{"v": "c"}"#).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let result = peek(&listener, served)
            .recv_timeout(WAIT)
            .expect("a half-closed command ends the wait");
        assert_eq!(result, Some(br#"{"v": "c"}"#.len()));
    }
}
