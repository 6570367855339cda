//! The Unix socket server of the command protocol.

use crate::accept::drain;
use crate::container::ChannelContainer;
use crate::protocol::{self, Answer, ProtocolError};
use crate::shutdown::ShutdownHandle;
use crate::unix::acceptor::{AcceptSettings, AcceptThread, Handoff, Pending};
use eric_core::MessageStream;
use eric_sse::SseAdapter;
use futures_core::Stream;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// The default limit on a command's size: a 1 MiB payload plus 64 KiB for the rest of
/// the JSON object (keys, ids, message type, escapes).
pub const DEFAULT_MAX_COMMAND_BYTES: usize = (1 << 20) + (64 << 10);

/// Settings of a [`UnixServer`].
#[derive(Clone, Debug)]
pub struct UnixServerConfig {
    /// Where the socket file is created.
    pub path: PathBuf,
    /// Permission bits of the socket file (default `0o600`: only the owner may connect).
    pub mode: u32,
    /// How long a client may take to send its command and half-close (default 10 s).
    pub read_timeout: Duration,
    /// The largest command accepted, in bytes ([`DEFAULT_MAX_COMMAND_BYTES`]).
    pub max_command_bytes: usize,
    /// Connections served at once; more wait to be accepted (default 16,384).
    pub max_connections: usize,
    /// How long shutdown waits for connections to finish before cutting them (default 5 s).
    pub shutdown_grace: Duration,
}

impl UnixServerConfig {
    /// Default settings for a socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        UnixServerConfig {
            path: path.into(),
            mode: 0o600,
            read_timeout: Duration::from_secs(10),
            max_command_bytes: DEFAULT_MAX_COMMAND_BYTES,
            max_connections: 16_384,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// A live count of a server's open connections (streams included); clones observe the
/// same server. For monitoring, and for tests that check no connection is leaked.
#[derive(Clone, Debug, Default)]
pub struct ConnectionGauge {
    open: Arc<AtomicUsize>,
}

impl ConnectionGauge {
    /// The number of connections being served now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub(crate) fn enter(&self) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }
}

/// Counts one connection as open until dropped (also when its task is aborted).
pub(crate) struct ConnectionGuard(ConnectionGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A Unix socket server speaking the eric-sse 0.6.0.3 command protocol, wire-compatible
/// with the reference's `SocketServer`: one command per connection, streams for `l` and
/// `w`.
///
/// A thread of its own accepts, and answers at once the commands that arrived whole;
/// commands still arriving, and streams, run as tasks of the caller's runtime.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use eric_socket::{ChannelContainer, UnixServer, UnixServerConfig};
/// use std::sync::Arc;
///
/// let container = Arc::new(ChannelContainer::new());
/// let server = UnixServer::bind(UnixServerConfig::new("/tmp/eric.sock"), container).await?;
/// let stop = server.shutdown_handle();
/// tokio::spawn(async move {
///     eric_socket::termination_signal().await.ok();
///     stop.shutdown();
/// });
/// server.run().await
/// # }
/// ```
#[derive(Debug)]
pub struct UnixServer {
    listener: UnixListener,
    config: Arc<UnixServerConfig>,
    container: Arc<ChannelContainer>,
    shutdown: ShutdownHandle,
    gauge: ConnectionGauge,
}

impl UnixServer {
    /// Creates the socket file and listens on it.
    ///
    /// A stale socket file (nobody answers on it) is replaced; a live one (another
    /// server answers) is refused with `AddrInUse`; a path that is not a socket is never
    /// touched. The file gets its mode before any client can reach it: the socket is
    /// bound under a temporary name, given its mode, then renamed into place.
    pub async fn bind(
        config: UnixServerConfig,
        container: Arc<ChannelContainer>,
    ) -> io::Result<Self> {
        let path = &config.path;
        if let Ok(metadata) = std::fs::symlink_metadata(path) {
            if !metadata.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; refusing to replace it",
                        path.display()
                    ),
                ));
            }
            match UnixStream::connect(path).await {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("another server is listening at {}", path.display()),
                    ))
                }
                Err(_) => {
                    tracing::info!(path = %path.display(), "replacing stale socket file");
                    std::fs::remove_file(path)?;
                }
            }
        }
        let staging = staging_path(path);
        let _ = std::fs::remove_file(&staging);
        let listener = UnixListener::bind(&staging)?;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(config.mode))?;
        std::fs::rename(&staging, path)?;
        tracing::info!(path = %path.display(), "socket server listening");
        Ok(UnixServer {
            listener,
            config: Arc::new(config),
            container,
            shutdown: ShutdownHandle::new(),
            gauge: ConnectionGauge::default(),
        })
    }

    /// The path of the socket file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// The handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The count of this server's open connections, readable while it runs.
    pub fn connection_gauge(&self) -> ConnectionGauge {
        self.gauge.clone()
    }

    /// Uses `handle` to stop this server (to stop several servers with one handle).
    pub fn with_shutdown_handle(mut self, handle: ShutdownHandle) -> Self {
        self.shutdown = handle;
        self
    }

    /// Serves until the shutdown handle fires; then stops accepting, ends the open
    /// streams, waits for connections (at most the grace period), removes the socket
    /// file and returns.
    ///
    /// Connections are accepted on a thread of the server's own (`eric-unix-accept`),
    /// which answers there every command that arrives whole within a brief wait (1 ms
    /// per read). What it cannot finish (a command still arriving, a stream, an answer
    /// larger than the socket buffer) becomes a task of the runtime `run` is awaited
    /// in, spawned from a task of that runtime so that it starts on a worker's own
    /// queue. Dropping the future returned by `run` stops the server at once.
    ///
    /// Fails if the accept thread cannot be started, or if it ends before shutdown (a
    /// panic), after draining the connections as a shutdown does.
    pub async fn run(self) -> io::Result<()> {
        let mut task = AbortOnDrop(tokio::spawn(self.serve()));
        match (&mut task.0).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(io::Error::other(error)),
        }
    }

    async fn serve(self) -> io::Result<()> {
        let UnixServer {
            listener,
            config,
            container,
            shutdown,
            gauge,
        } = self;
        let connection = Connection {
            container,
            config: Arc::clone(&config),
            shutdown: shutdown.clone(),
        };
        let settings = AcceptSettings {
            max_connections: config.max_connections,
            path: config.path.clone(),
            gauge,
        };
        let (acceptor, mut handoffs) =
            AcceptThread::start(listener.into_std()?, settings, connection.clone())?;
        let mut connections = JoinSet::new();
        let spawn = |connections: &mut JoinSet<()>, pending: Pending| {
            let connection = connection.clone();
            connections.spawn(async move {
                let Pending {
                    stream,
                    handoff,
                    permit,
                    open,
                } = pending;
                connection.finish(stream, handoff).await;
                drop(open);
                drop(permit);
            });
        };
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut thread_ended = false;
        loop {
            let pending = tokio::select! {
                _ = &mut stop => break,
                pending = handoffs.recv() => match pending {
                    Some(pending) => pending,
                    None => {
                        thread_ended = true;
                        break;
                    }
                },
            };
            spawn(&mut connections, pending);
            while connections.try_join_next().is_some() {}
        }
        // The thread finishes the connection in its hands and ends; what it handed off
        // until then is served like the rest (a command in flight is still answered).
        acceptor.stop();
        while let Some(pending) = handoffs.recv().await {
            spawn(&mut connections, pending);
        }
        // The thread has dropped its handle of the listener: this closes it.
        drop(acceptor);
        let _ = std::fs::remove_file(&config.path);
        drain(connections, config.shutdown_grace, "socket server").await;
        if thread_ended {
            return Err(io::Error::other(
                "the accept thread of the socket server ended",
            ));
        }
        Ok(())
    }
}

/// Aborts the task when dropped, so that dropping [`UnixServer::run`] stops the server.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// A command read until the client half-closes. `Ok(Err(_))` is a command refused for
/// its size.
type ReadCommand = io::Result<Result<Vec<u8>, ProtocolError>>;

/// What the client is sent for a command's answer or refusal.
fn reply(answer: Result<Answer, ProtocolError>) -> Reply {
    match answer {
        Ok(Answer::Text(text)) => Reply::Bytes(text.into_bytes()),
        Ok(Answer::Stream(events)) => Reply::Stream(events),
        Err(error) => {
            tracing::debug!(%error, "command refused");
            Reply::Bytes(error.to_wire())
        }
    }
}

/// The bytes of one command, bounded by the size limit.
pub(crate) struct CommandBuffer {
    raw: Vec<u8>,
    limit: usize,
}

impl CommandBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        CommandBuffer {
            raw: Vec::with_capacity(512),
            limit,
        }
    }

    /// Takes `read` bytes of `chunk`; `Some` once the command is complete or refused.
    fn absorb(&mut self, chunk: &[u8], read: usize) -> Option<ReadCommand> {
        if read == 0 {
            return Some(Ok(Ok(std::mem::take(&mut self.raw))));
        }
        if self.raw.len() + read > self.limit {
            return Some(Ok(Err(ProtocolError::invalid_format(format!(
                "command larger than {} bytes: refused",
                self.limit
            )))));
        }
        self.raw.extend_from_slice(&chunk[..read]);
        None
    }

    /// Reads until the command is complete or refused.
    async fn read_rest(&mut self, stream: &mut UnixStream) -> ReadCommand {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let read = stream.read(&mut chunk).await?;
            if let Some(done) = self.absorb(&chunk, read) {
                return done;
            }
        }
    }
}

/// What a connection's answer is, once its command is read.
pub(crate) enum Reply {
    /// Bytes to write before closing: an id, `ack`, an error.
    Bytes(Vec<u8>),
    /// An `l` or `w` stream.
    Stream(MessageStream<SseAdapter>),
}

/// Serves connections: what the accept thread and the runtime's tasks share.
#[derive(Clone)]
pub(crate) struct Connection {
    container: Arc<ChannelContainer>,
    config: Arc<UnixServerConfig>,
    shutdown: ShutdownHandle,
}

impl Connection {
    /// The size limit of a command.
    pub(crate) fn max_command_bytes(&self) -> usize {
        self.config.max_command_bytes
    }

    /// Executes a command read whole, or turns a refused read into its error answer;
    /// `None` if the connection failed and gets no answer.
    pub(crate) fn answer(&self, read: ReadCommand) -> Option<Reply> {
        match read {
            Ok(Ok(raw)) => Some(self.execute(&raw)),
            Ok(Err(refused)) => Some(reply(Err(refused))),
            Err(error) => {
                tracing::debug!(%error, "connection failed while reading");
                None
            }
        }
    }

    /// Executes a whole command (at most `max_command_bytes` long).
    pub(crate) fn execute(&self, raw: &[u8]) -> Reply {
        reply(protocol::handle(&self.container, raw))
    }

    /// Serves the rest of a connection the accept thread handed off. The connection
    /// closes when the stream is dropped, which ends the client's read as a shutdown
    /// would, one system call cheaper.
    pub(crate) async fn finish(self, stream: std::os::unix::net::UnixStream, handoff: Handoff) {
        let mut stream = match UnixStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot register the connection");
                return;
            }
        };
        let reply = match handoff {
            Handoff::Reply(reply) => reply,
            Handoff::Read(mut command) => {
                // The read timeout is armed only here, for a command still arriving.
                let read =
                    tokio::time::timeout(self.config.read_timeout, command.read_rest(&mut stream))
                        .await
                        .unwrap_or_else(|_| Ok(Err(self.timeout_error())));
                match self.answer(read) {
                    Some(reply) => reply,
                    None => return,
                }
            }
        };
        let result = match reply {
            Reply::Bytes(bytes) => stream.write_all(&bytes).await,
            Reply::Stream(events) => self.stream(stream, events).await,
        };
        if let Err(error) = result {
            tracing::debug!(%error, "connection ended with an error");
        }
    }

    fn timeout_error(&self) -> ProtocolError {
        ProtocolError {
            name: "TimeoutError",
            message: format!(
                "no complete command within {:?}: write one JSON object, then half-close the connection (shutdown SHUT_WR)",
                self.config.read_timeout
            ),
        }
    }

    /// Writes the stream's events, one JSON line each, until the stream ends, the client
    /// goes away, or the server shuts down.
    async fn stream(
        &self,
        stream: UnixStream,
        mut events: MessageStream<SseAdapter>,
    ) -> io::Result<()> {
        let (stream, watcher) = split_watcher(stream)?;
        let mut stream = stream;
        let client_gone = client_gone(&watcher);
        tokio::pin!(client_gone);
        let stop = self.shutdown.wait();
        tokio::pin!(stop);
        let mut buf = Vec::with_capacity(16 * 1024);
        loop {
            let event = tokio::select! {
                biased;
                _ = &mut stop => break,
                _ = &mut client_gone => {
                    tracing::debug!(listener = events.listener().id(), "stream client left");
                    return Ok(());
                }
                event = next_event(&mut events) => event,
            };
            let Some(event) = event else { break };
            protocol::write_stream_line(&mut buf, &event);
            // Write what else is ready in the same system call.
            while buf.len() < 64 * 1024 {
                match events.try_recv() {
                    Some(event) => protocol::write_stream_line(&mut buf, &event),
                    None => break,
                }
            }
            stream.write_all(&buf).await?;
            buf.clear();
        }
        stream.shutdown().await
    }
}

async fn next_event(events: &mut MessageStream<SseAdapter>) -> Option<eric_sse::SseEvent> {
    std::future::poll_fn(|cx| Pin::new(&mut *events).poll_next(cx)).await
}

/// A second handle on the connection's socket, only to notice a hang-up: the client
/// half-closed long ago, so reading cannot tell it left; its full close shows as
/// `EPOLLHUP`, which this handle waits for without disturbing the writer's readiness.
fn split_watcher(stream: UnixStream) -> io::Result<(UnixStream, UnixStream)> {
    let std_stream = stream.into_std()?;
    let watcher = std_stream.try_clone()?;
    Ok((
        UnixStream::from_std(std_stream)?,
        UnixStream::from_std(watcher)?,
    ))
}

async fn client_gone(watcher: &UnixStream) {
    loop {
        match watcher.ready(Interest::WRITABLE).await {
            Ok(ready) if ready.is_write_closed() => return,
            Ok(_) => {
                // Consume this readiness so the next wait is for a new event.
                let _ = watcher.try_io(Interest::WRITABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
            Err(_) => return,
        }
    }
}
