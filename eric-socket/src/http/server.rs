//! The HTTP server: configuration, accept loop, connections and shutdown.

use super::direct::{self, NextRequest, ResponseWriter, Rewound};
use super::routes;
use super::stream::StreamSlots;
use crate::accept::{serve_connections, ConnectionLimits};
use crate::container::ChannelContainer;
use crate::shutdown::ShutdownHandle;
use eric_sse::http::SseBodyConfig;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

/// The default limit on a request body: a 1 MiB payload plus 64 KiB for the rest of the
/// JSON object (the same as the Unix server's command limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = crate::limits::MAX_REQUEST_BYTES;

/// Settings of an [`HttpServer`].
///
/// ```
/// use eric_socket::HttpServerConfig;
/// use std::time::Duration;
///
/// let mut config = HttpServerConfig::new("127.0.0.1:8080".parse().unwrap());
/// config.cors_allowed_origins = vec!["https://app.example".to_owned()];
/// config.sse = config.sse.with_keep_alive(Some(Duration::from_secs(30)));
/// assert_eq!(config.max_streams, 16_384);
/// ```
#[derive(Clone, Debug)]
pub struct HttpServerConfig {
    /// The address to listen on. Default `127.0.0.1:8080`: only this machine can
    /// connect; listening on another interface is a deliberate choice.
    pub addr: SocketAddr,
    /// The largest request body accepted, in bytes ([`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// How long a client may take to send a request head, counted from the moment the
    /// server waits for one (so it is also the idle timeout of a keep-alive connection).
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body (default 10 s).
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait to be accepted (default 16,384).
    pub max_connections: usize,
    /// Event streams open at once; more are answered `503` (default 16,384).
    pub max_streams: usize,
    /// How event streams are written: keep-alive interval (default 15 s), the floor of
    /// the `retry:` written at the start (default 1,000 ms), data encoding.
    pub sse: SseBodyConfig,
    /// Origins allowed to call the server from a browser page served elsewhere (CORS),
    /// e.g. `http://localhost:3000`; the entry `*` allows every origin. Empty (the
    /// default): no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// How long shutdown waits for connections to finish before cutting them (default 5 s).
    pub shutdown_grace: Duration,
    /// How long data the server wrote may stay unacknowledged before the connection is
    /// dropped (`TCP_USER_TIMEOUT`, Linux only; default 30 s; `None` leaves the system's
    /// default, about 15 minutes). A client that vanished without closing its connection
    /// (a laptop lid shut, a network gone) acknowledges nothing: this bounds how long its
    /// stream and `/watch` listener outlive it, counted from the next keep-alive.
    pub tcp_user_timeout: Option<Duration>,
}

impl HttpServerConfig {
    /// Default settings, listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        HttpServerConfig {
            addr,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: crate::limits::MAX_CONNECTIONS,
            max_streams: 16_384,
            sse: SseBodyConfig::default(),
            cors_allowed_origins: Vec::new(),
            shutdown_grace: crate::limits::SHUTDOWN_GRACE,
            tcp_user_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl Default for HttpServerConfig {
    /// Default settings on `127.0.0.1:8080`.
    fn default() -> Self {
        HttpServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: HttpServerConfig,
    pub(crate) container: Arc<ChannelContainer>,
    pub(crate) shutdown: ShutdownHandle,
    /// One permit per open event stream.
    pub(crate) streams: Arc<Semaphore>,
    pub(crate) slots: Arc<StreamSlots>,
    /// How hyper serves the connections that are not a lone event stream.
    pub(crate) hyper: http1::Builder,
}

/// An HTTP/1.1 server for the routes of eric-api, with `text/event-stream` streams,
/// over a [`ChannelContainer`] that the [`UnixServer`](crate::UnixServer) may share.
/// See the [module documentation](crate::http) for the routes and their semantics.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use eric_socket::{ChannelContainer, HttpServer, HttpServerConfig};
/// use std::sync::Arc;
///
/// let container = Arc::new(ChannelContainer::new());
/// let server = HttpServer::bind(HttpServerConfig::default(), container).await?;
/// let stop = server.shutdown_handle();
/// tokio::spawn(async move {
///     eric_socket::termination_signal().await.ok();
///     stop.shutdown();
/// });
/// server.run().await
/// # }
/// ```
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: HttpServerConfig,
    container: Arc<ChannelContainer>,
    shutdown: ShutdownHandle,
}

impl HttpServer {
    /// Listens on `config.addr` (port 0 picks a free port: see
    /// [`local_addr`](Self::local_addr)).
    pub async fn bind(
        config: HttpServerConfig,
        container: Arc<ChannelContainer>,
    ) -> io::Result<Self> {
        let socket = match config.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(config.addr)?;
        // A deep backlog: thousands of EventSource clients reconnect at once after a restart.
        let listener = socket.listen(4096)?;
        let local_addr = listener.local_addr()?;
        tracing::info!(addr = %local_addr, "HTTP server listening");
        Ok(HttpServer {
            listener,
            local_addr,
            config,
            container,
            shutdown: ShutdownHandle::new(),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Uses `handle` to stop this server (to stop several servers with one handle).
    pub fn with_shutdown_handle(mut self, handle: ShutdownHandle) -> Self {
        self.shutdown = handle;
        self
    }

    /// Serves until the shutdown handle fires; then stops accepting, ends every open
    /// event stream (each client sees its response end), lets the requests in flight
    /// finish and closes the connections, waiting at most
    /// [`shutdown_grace`](HttpServerConfig::shutdown_grace) before cutting those left.
    pub async fn run(self) -> io::Result<()> {
        let HttpServer {
            listener,
            local_addr,
            config,
            container,
            shutdown,
        } = self;
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout);
        let state = Arc::new(State {
            streams: Arc::new(Semaphore::new(config.max_streams)),
            slots: Arc::default(),
            config,
            container,
            shutdown: shutdown.clone(),
            hyper: builder,
        });
        let limits = ConnectionLimits {
            max_connections: state.config.max_connections,
            shutdown_grace: state.config.shutdown_grace,
            server: "HTTP server",
        };
        let serve = |stream| serve_connection(stream, Arc::clone(&state));
        serve_connections(listener, limits, &shutdown, serve, drop).await;
        tracing::info!(addr = %local_addr, "HTTP server stopped");
        Ok(())
    }
}

/// Serves one connection until the client leaves or, after shutdown, until the
/// response in flight is finished (streams end on shutdown by themselves).
async fn serve_connection(mut stream: TcpStream, state: Arc<State>) {
    // Events go out as soon as they are written, not after Nagle's delay.
    let _ = stream.set_nodelay(true);
    if let Some(timeout) = state.config.tcp_user_timeout {
        set_user_timeout(&stream, timeout);
    }
    // Stream requests are served here one after another (an EventSource that
    // reconnects on the same connection stays off hyper); the first other request
    // hands the connection to hyper for good.
    let mut read = Vec::new();
    let read = loop {
        // Boxed: reading and routing a request is short-lived, and what every
        // connection holds for its whole life is kept small.
        match Box::pin(direct::next_request(&stream, &state, read)).await {
            NextRequest::Gone => return,
            NextRequest::ForHyper(all_read) => break all_read,
            NextRequest::Answered(answer) => {
                match ResponseWriter::new(&mut stream, *answer).await {
                    Some(rest) if !state.shutdown.is_shutdown() => read = rest,
                    _ => {
                        let _ = stream.shutdown().await;
                        return;
                    }
                }
            }
        }
    };
    // Boxed: hyper's connection state is only paid for by connections that use it.
    Box::pin(serve_with_hyper(Rewound::new(read, stream), state)).await;
}

/// Serves the rest of a connection with hyper.
async fn serve_with_hyper(io: Rewound<TcpStream>, state: Arc<State>) {
    let shutdown = state.shutdown.clone();
    let builder = state.hyper.clone();
    let service = hyper::service::service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(routes::handle(&state, request).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    // A client that left mid-stream lands here: expected, not a fault.
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
                return;
            }
            () = &mut stop, if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Sets `TCP_USER_TIMEOUT`: written data unacknowledged for `timeout` fails the
/// connection, so a silently vanished client is noticed at the next keep-alive plus
/// `timeout`, not after the kernel's retransmissions (about 15 minutes).
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
fn set_user_timeout(stream: &TcpStream, timeout: Duration) {
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!(%error, "could not set TCP_USER_TIMEOUT");
    }
}

#[cfg(not(any(target_os = "android", target_os = "fuchsia", target_os = "linux")))]
fn set_user_timeout(_stream: &TcpStream, _timeout: Duration) {}

#[cfg(all(
    test,
    any(target_os = "android", target_os = "fuchsia", target_os = "linux")
))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_user_timeout_is_set_on_a_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        set_user_timeout(&accepted, Duration::from_secs(7));
        let read_back = socket2::SockRef::from(&accepted)
            .tcp_user_timeout()
            .unwrap();
        assert_eq!(read_back, Some(Duration::from_secs(7)));
        drop(client);
    }
}
