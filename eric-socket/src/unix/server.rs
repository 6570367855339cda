//! The Unix socket server of the command protocol.

use crate::accept::drain;
use crate::container::ChannelContainer;
use crate::limits;
use crate::metrics::Transport;
use crate::shutdown::ShutdownHandle;
use crate::unix::acceptor::{AcceptSettings, AcceptThread, Pending};
use crate::unix::gauge::ConnectionGauge;
use crate::unix::service::CommandService;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// The default limit on a command's size: a 1 MiB payload plus 64 KiB for the rest of
/// the JSON object (keys, ids, message type, escapes). The same as the HTTP server's
/// body limit.
pub const DEFAULT_MAX_COMMAND_BYTES: usize = limits::MAX_REQUEST_BYTES;

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
            read_timeout: limits::READ_TIMEOUT,
            max_command_bytes: DEFAULT_MAX_COMMAND_BYTES,
            max_connections: limits::MAX_CONNECTIONS,
            shutdown_grace: limits::SHUTDOWN_GRACE,
        }
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

    /// Serves until the shutdown handle fires; then stops accepting, refuses the `b` and
    /// `d` commands that arrive from then on (`ServerShuttingDownException`), writes what
    /// the open streams have queued and ends them, waits for connections (at most the
    /// grace period), removes the socket file and returns. The messages that streams cut
    /// at the end of the grace period still held are counted in one log line.
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
        container
            .metrics()
            .watch_connections(Transport::Socket, gauge.clone());
        let service = CommandService::new(
            container,
            shutdown.clone(),
            config.read_timeout,
            config.max_command_bytes,
        );
        let settings = AcceptSettings {
            max_connections: config.max_connections,
            path: config.path.clone(),
            gauge,
        };
        let (acceptor, mut handoffs) =
            AcceptThread::start(listener.into_std()?, settings, service.clone())?;
        let mut connections = JoinSet::new();
        let spawn = |connections: &mut JoinSet<()>, pending: Pending| {
            let service = service.clone();
            connections.spawn(async move {
                let Pending {
                    stream,
                    handoff,
                    permit,
                    open,
                } = pending;
                service.finish(stream, handoff).await;
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
        drain(
            connections,
            config.shutdown_grace,
            "socket server",
            service.undelivered(),
        )
        .await;
        service.flush_refusals();
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
