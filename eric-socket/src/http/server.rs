//! The HTTP server: the accept loop, each connection (on the direct path, then on
//! hyper) and shutdown.

use super::config::HttpServerConfig;
use super::direct::{self, NextRequest, ResponseWriter, Rewound};
use super::observe;
use super::routes;
use super::state::State;
use super::tls::{Tls, TlsReloader};
use crate::accept::{serve_connections, ConnectionLimits};
use crate::container::ChannelContainer;
use crate::metrics::Transport;
use crate::shutdown::ShutdownHandle;
use crate::unix::{ConnectionGauge, ConnectionGuard};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// An HTTP/1.1 and HTTP/2 server (TLS optional) for the routes of eric-api, with `text/event-stream` streams,
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
    tls: Option<Tls>,
}

impl HttpServer {
    /// Listens on `config.addr` (port 0 picks a free port: see
    /// [`local_addr`](Self::local_addr)); with [`HttpServerConfig::tls`], reads the
    /// certificate and key first (an unusable one fails here, naming the file).
    pub async fn bind(
        config: HttpServerConfig,
        container: Arc<ChannelContainer>,
    ) -> io::Result<Self> {
        let tls = config.tls.clone().map(Tls::new).transpose()?;
        let socket = match config.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(config.addr)?;
        // A deep backlog: thousands of EventSource clients reconnect at once after a restart.
        let listener = socket.listen(4096)?;
        let local_addr = listener.local_addr()?;
        if tls.is_some() {
            tracing::info!(addr = %local_addr, "HTTP server listening with TLS (HTTP/2 and HTTP/1.1)");
        } else {
            tracing::info!(addr = %local_addr, "HTTP server listening");
        }
        Ok(HttpServer {
            listener,
            local_addr,
            config,
            container,
            shutdown: ShutdownHandle::new(),
            tls,
        })
    }

    /// What re-reads the certificate and key, for a server with TLS.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.as_ref().map(Tls::reloader)
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

    /// Serves until the shutdown handle fires; then stops accepting, refuses messages
    /// published from then on (`503`), writes what every open event stream has queued
    /// and ends it (each client sees its response end), lets the requests in flight
    /// finish and closes the connections, waiting at most
    /// [`shutdown_grace`](HttpServerConfig::shutdown_grace) before cutting those left.
    /// The messages the cut streams still held are counted in one log line.
    pub async fn run(self) -> io::Result<()> {
        let HttpServer {
            listener,
            local_addr,
            config,
            container,
            shutdown,
            tls,
        } = self;
        // The address the server answers as is the one it listens on (its port, too,
        // when port 0 picked it).
        let mut config = config;
        config.addr = local_addr;
        let state = Arc::new(State::new(
            config,
            container,
            shutdown.clone(),
            tls.map(|tls| tls.server),
        ));
        let undelivered = state.undelivered.clone();
        let connections = ConnectionGauge::default();
        state
            .container
            .metrics()
            .watch_connections(Transport::Http, connections.clone());
        let monitor = observe::start_sampling(&state).map(AbortOnDrop);
        let limits = ConnectionLimits {
            max_connections: state.config.max_connections,
            shutdown_grace: state.config.shutdown_grace,
            server: "HTTP server",
            undelivered,
        };
        // The guard goes into the connection's future rather than beside it in an
        // async block: a block that awaits a future it captured stores that future
        // twice, which cost 1.7 KB of RSS per idle subscriber.
        let serve = |stream| serve_connection(stream, Arc::clone(&state), connections.enter());
        serve_connections(listener, limits, &shutdown, serve, drop).await;
        drop(monitor);
        tracing::info!(addr = %local_addr, "HTTP server stopped");
        Ok(())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves one connection until the client leaves or, after shutdown, until the
/// response in flight is finished (streams end on shutdown by themselves).
async fn serve_connection(mut stream: TcpStream, state: Arc<State>, _open: ConnectionGuard) {
    // Events go out as soon as they are written, not after Nagle's delay.
    let _ = stream.set_nodelay(true);
    if let Some(timeout) = state.config.tcp_user_timeout {
        set_user_timeout(&stream, timeout);
    }
    if let Some(server) = state.tls.clone() {
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        // The direct path writes plain HTTP/1.1 on the socket: over TLS, hyper serves
        // (HTTP/2 when ALPN chose it).
        let timeout = state.config.header_read_timeout;
        let handshake = tokio::select! {
            handshake = tokio::time::timeout(timeout, acceptor.accept(stream)) => handshake,
            () = state.shutdown.wait() => return,
        };
        match handshake {
            Ok(Ok(tls)) => Box::pin(serve_with_hyper(tls, state)).await,
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => tracing::debug!(?timeout, "no TLS handshake in time: connection closed"),
        }
        return;
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
            NextRequest::Answered(pending) => {
                match ResponseWriter::new(&mut stream, *pending).await {
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

/// Serves the rest of a connection with hyper: HTTP/1.1, or HTTP/2 when the client
/// starts with the HTTP/2 preface (the direct path hands over a `PRI * HTTP/2.0` at once,
/// since it is no HTTP/1.1 head).
async fn serve_with_hyper<I>(io: I, state: Arc<State>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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
