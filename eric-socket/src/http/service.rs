//! eric's HTTP API as a service that an application mounts in its own server: the
//! same routes, streams and checks as [`HttpServer`](super::HttpServer), on the
//! application's listener and runtime.

use super::body::ResponseBody;
use super::config::HttpServerConfig;
use super::routes;
use super::state::State;
use crate::container::ChannelContainer;
use crate::shutdown::ShutdownHandle;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// eric's HTTP API as a service to mount in an application's own server: in axum
/// with `Router::nest_service("/eric", service)` (feature `tower`), or given to hyper
/// directly (it is a [`hyper::service::Service`]).
///
/// It answers exactly as [`HttpServer`](super::HttpServer) does (the same routes,
/// errors, event streams with resume, CORS, `Host` and `Content-Type` checks, stream
/// limit and shutdown) for the path it is given: a router that strips its prefix,
/// as axum's `nest_service` does, hands it `/create` for `/eric/create`.
///
/// What belongs to the listener is the application's server's: the connection limit,
/// the header read timeout, `TCP_USER_TIMEOUT`, the grace period of shutdown, and the
/// direct stream path of `HttpServer` (which serves idle streams without hyper's
/// per-connection buffers), so a mounted stream costs more memory than one of
/// `eric serve` (figures in docs/benchmarks.md). Those fields of the
/// [`HttpServerConfig`] are not read here; `addr` is the address the application
/// listens on, which decides, with `allowed_hosts`, the `Host` names answered.
///
/// **Shutdown.** Streams never end on their own, so an application that stops its
/// server gracefully must also fire the service's [`ShutdownHandle`]: publishes are
/// refused from then on, and every open stream writes what is queued for it and ends.
///
/// ```
/// use eric_socket::http::HttpService;
/// use eric_socket::{ChannelContainer, HttpServerConfig};
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let config = HttpServerConfig::new("127.0.0.1:3000".parse().unwrap());
/// let service = HttpService::new(config, Arc::new(ChannelContainer::new()));
/// let request = http::Request::put("/create?channel_id=news")
///     .header("host", "localhost:3000")
///     .body(http_body_util::Empty::<bytes::Bytes>::new())
///     .unwrap();
/// let response = service.respond(request).await;
/// assert_eq!(response.status(), 200);
/// assert!(service.container().get("news").is_ok());
/// # });
/// ```
#[derive(Clone)]
pub struct HttpService {
    state: Arc<State>,
}

impl HttpService {
    /// The API over `container`, answering as a server listening on `config.addr`
    /// would; stopped by its own [`ShutdownHandle`] (see
    /// [`with_shutdown_handle`](Self::with_shutdown_handle)).
    pub fn new(config: HttpServerConfig, container: Arc<ChannelContainer>) -> Self {
        HttpService {
            state: Arc::new(State::new(config, container, ShutdownHandle::new(), None)),
        }
    }

    /// Uses `handle` to stop this service (to stop it with the application, or with
    /// eric's other servers). Call it before cloning the service: clones made earlier
    /// keep the former handle and their own stream bookkeeping.
    pub fn with_shutdown_handle(self, handle: ShutdownHandle) -> Self {
        let config = self.state.config.clone();
        let container = Arc::clone(&self.state.container);
        HttpService {
            state: Arc::new(State::new(config, container, handle, None)),
        }
    }

    /// The handle that stops this service: publishes are refused from then on, and
    /// every open stream ends once it has written what is queued for it.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.state.shutdown.clone()
    }

    /// The channels the service serves.
    pub fn container(&self) -> &Arc<ChannelContainer> {
        &self.state.container
    }

    /// Answers one request: what [`HttpServer`](super::HttpServer) would answer to it.
    pub async fn respond<B>(&self, request: Request<B>) -> Response<ApiBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: fmt::Display,
    {
        routes::handle(&self.state, request).await.map(ApiBody)
    }
}

impl fmt::Debug for HttpService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpService")
            .field("config", &self.state.config)
            .field("shutdown", &self.state.shutdown.is_shutdown())
            .finish_non_exhaustive()
    }
}

/// The future of one answer of an [`HttpService`].
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ApiBody>, Infallible>> + Send + 'static>>;

impl<B> hyper::service::Service<Request<B>> for HttpService
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: fmt::Display,
{
    type Response = Response<ApiBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> ResponseFuture {
        let service = self.clone();
        Box::pin(async move { Ok(service.respond(request).await) })
    }
}

#[cfg(feature = "tower")]
impl<B> tower_service::Service<Request<B>> for HttpService
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: fmt::Display,
{
    type Response = Response<ApiBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: the limits (open streams, body size) are answered per request.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        hyper::service::Service::call(&*self, request)
    }
}

/// The body of an [`HttpService`] answer: a JSON document, or a `text/event-stream`
/// that runs until the stream ends (its client leaves, its listener or channel is
/// removed, or the service shuts down).
pub struct ApiBody(ResponseBody);

impl Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

impl fmt::Debug for ApiBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiBody").field(&self.0).finish()
    }
}
