//! The server of `--metrics-addr`: `/metrics`, `/healthz` and `/readyz` on an address
//! of their own, apart from the traffic.

use super::body::ResponseBody;
use super::observe;
use crate::accept::{serve_connections, ConnectionLimits};
use crate::container::ChannelContainer;
use crate::shutdown::{ShutdownHandle, Undelivered};
use http::{Method, Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Scrapers and probes connect rarely and briefly: a few connections are plenty.
const MAX_CONNECTIONS: usize = 64;

/// Serves `GET /metrics`, `/healthz` and `/readyz` of a container on an address apart
/// from the servers that carry the traffic (`eric serve --metrics-addr`), so that
/// scrapes and probes need not be exposed where clients connect, and so that `/readyz`
/// keeps answering (503) while those servers shut down: stop this one after them.
///
/// ```
/// use eric_socket::http::MetricsServer;
/// use eric_socket::{ChannelContainer, ShutdownHandle};
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let servers = ShutdownHandle::new();
/// let metrics = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), Arc::new(ChannelContainer::new()))
///     .await
///     .unwrap()
///     .ready_until(servers.clone());
/// let stop = metrics.shutdown_handle();
/// let running = tokio::spawn(metrics.run());
/// // ... the servers run, then stop; then:
/// stop.shutdown();
/// running.await.unwrap().unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    container: Arc<ChannelContainer>,
    /// The traffic servers' handle: `/readyz` answers 503 once it fired.
    servers: ShutdownHandle,
    /// Stops this server.
    stop: ShutdownHandle,
}

impl MetricsServer {
    /// Listens on `addr` for the figures of `container`.
    pub async fn bind(addr: SocketAddr, container: Arc<ChannelContainer>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        tracing::info!(addr = %local_addr, "metrics server listening");
        Ok(MetricsServer {
            listener,
            local_addr,
            container,
            servers: ShutdownHandle::new(),
            stop: ShutdownHandle::new(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Makes `/readyz` answer 503 once `servers` (the traffic servers' handle) fires.
    pub fn ready_until(mut self, servers: ShutdownHandle) -> Self {
        self.servers = servers;
        self
    }

    /// The handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.stop.clone()
    }

    /// Serves until its shutdown handle fires.
    pub async fn run(self) -> io::Result<()> {
        let MetricsServer {
            listener,
            local_addr,
            container,
            servers,
            stop,
        } = self;
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        let limits = ConnectionLimits {
            max_connections: MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs(1),
            server: "metrics server",
            undelivered: Undelivered::default(),
        };
        let serve = |stream: tokio::net::TcpStream| {
            let container = Arc::clone(&container);
            let servers = servers.clone();
            let connection = builder.serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(move |request| {
                    let response = answer(&container, &servers, &request);
                    async move { Ok::<_, Infallible>(response) }
                }),
            );
            async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "metrics connection ended with an error");
                }
            }
        };
        serve_connections(listener, limits, &stop, serve, drop).await;
        tracing::info!(addr = %local_addr, "metrics server stopped");
        Ok(())
    }
}

fn answer<B>(
    container: &ChannelContainer,
    servers: &ShutdownHandle,
    request: &Request<B>,
) -> Response<ResponseBody> {
    let path = request.uri().path();
    if !["/metrics", "/healthz", "/readyz"].contains(&path) {
        return error(StatusCode::NOT_FOUND, format!("no route for {path}"));
    }
    if request.method() != Method::GET {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} answers GET only"),
        );
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
        return response;
    }
    match path {
        "/metrics" => observe::metrics(container, servers),
        "/healthz" => observe::healthz(),
        _ => observe::readyz(container, servers),
    }
}

fn error(status: StatusCode, message: String) -> Response<ResponseBody> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
