//! The routes: from a request to its answer. Every failure becomes a JSON
//! `{"message": ...}` answer with its status; nothing here panics on client input.

use super::auth::{self, Right};
use super::body::ResponseBody;
use super::host;
use super::observe;
use super::state::State;
use super::stream::{stop_future, LiveEvents};
use crate::metrics::{PublishKind, ResumeResult};
use bytes::Bytes;
use eric_core::{Error, Message, MessageStream, Retention};
use eric_sse::http::{sse_response, SseBody};
use eric_sse::{SseAdapter, SseChannel};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;
use serde::Serialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One route of the server: a method on a path. Every known path also answers
/// `OPTIONS`, which the table leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// The method, in upper case: `GET`, `HEAD`, `PUT`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path template: literal segments, and ids in braces (`{channel_id}`,
    /// `{listener_id}`) that a request fills percent-encoded.
    pub path: &'static str,
    /// What the route does, in a line (its `summary` in docs/openapi.yaml).
    pub summary: &'static str,
}

const fn route(method: &'static str, path: &'static str, summary: &'static str) -> Route {
    Route {
        method,
        path,
        summary,
    }
}

/// Every route the server answers, `OPTIONS` aside: the one list that the router, the
/// [module documentation](crate::http) and docs/openapi.yaml are tested against.
///
/// ```
/// let watch = eric_socket::http::ROUTES
///     .iter()
///     .find(|route| route.path == "/watch/{channel_id}")
///     .unwrap();
/// assert_eq!(watch.method, "GET");
/// ```
pub const ROUTES: &[Route] = &[
    route("GET", "/", "Every channel with its listener ids"),
    route("HEAD", "/", "The headers of `GET /`"),
    route("GET", "/channels", "The channel ids"),
    route("HEAD", "/channels", "The headers of `GET /channels`"),
    route("PUT", "/create", "Create a channel"),
    route("POST", "/subscribe", "Add a listener to a channel"),
    route(
        "POST",
        "/broadcast",
        "Queue a message for every listener of a channel",
    ),
    route("POST", "/dispatch", "Queue a message for one listener"),
    route(
        "GET",
        "/stream/{channel_id}/{listener_id}",
        "Start a listener and stream its queue",
    ),
    route(
        "GET",
        "/watch/{channel_id}",
        "Stream a channel through a new listener",
    ),
    route(
        "DELETE",
        "/listener/{channel_id}/{listener_id}",
        "Remove a listener",
    ),
    route(
        "DELETE",
        "/channel/{channel_id}",
        "Remove a channel and its listeners",
    ),
    route(
        "GET",
        "/metrics",
        "The server's figures, in the Prometheus text format",
    ),
    route("GET", "/healthz", "Whether the process serves"),
    route("GET", "/readyz", "Whether the server is ready to serve"),
    route("GET", "/monitor", "A live page of the server's figures"),
    route(
        "GET",
        "/monitor/events",
        "The server's figures as an event stream, a snapshot a second",
    ),
];

/// A request path the server knows, with the ids it carries (percent-decoded). The
/// router matches paths by hand, for speed; a test checks it against [`ROUTES`].
#[derive(Debug, PartialEq, Eq)]
enum Resource {
    Root,
    Channels,
    Create,
    Subscribe,
    Broadcast,
    Dispatch,
    Stream { channel: String, listener: String },
    Watch { channel: String },
    DeleteListener { channel: String, listener: String },
    DeleteChannel { channel: String },
    Metrics,
    Healthz,
    Readyz,
    Monitor,
    MonitorEvents,
}

impl Resource {
    /// The resource of `path`; `Ok(None)` for a path the server does not know.
    fn parse(path: &str) -> Result<Option<Resource>, ApiError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Ok(None);
        };
        // No route has more than three segments: a path with more is no route, and the
        // segments fit on the stack (this runs for every request).
        let mut buf = [""; 4];
        let mut count = 0;
        for segment in rest.split('/') {
            let Some(slot) = buf.get_mut(count) else {
                return Ok(None);
            };
            *slot = segment;
            count += 1;
        }
        let resource = match &buf[..count] {
            [""] => Resource::Root,
            ["channels"] => Resource::Channels,
            ["create"] => Resource::Create,
            ["subscribe"] => Resource::Subscribe,
            ["broadcast"] => Resource::Broadcast,
            ["dispatch"] => Resource::Dispatch,
            ["stream", channel, listener] => Resource::Stream {
                channel: decode_segment(channel)?,
                listener: decode_segment(listener)?,
            },
            ["watch", channel] => Resource::Watch {
                channel: decode_segment(channel)?,
            },
            ["listener", channel, listener] => Resource::DeleteListener {
                channel: decode_segment(channel)?,
                listener: decode_segment(listener)?,
            },
            ["channel", channel] => Resource::DeleteChannel {
                channel: decode_segment(channel)?,
            },
            ["metrics"] => Resource::Metrics,
            ["healthz"] => Resource::Healthz,
            ["readyz"] => Resource::Readyz,
            ["monitor"] => Resource::Monitor,
            ["monitor", "events"] => Resource::MonitorEvents,
            _ => return Ok(None),
        };
        Ok(Some(resource))
    }

    /// The methods the resource answers, `OPTIONS` aside.
    fn methods(&self) -> &'static [Method] {
        match self {
            Resource::Root | Resource::Channels => &[Method::GET, Method::HEAD],
            Resource::Create => &[Method::PUT],
            Resource::Subscribe | Resource::Broadcast | Resource::Dispatch => &[Method::POST],
            Resource::Stream { .. } | Resource::Watch { .. } => &[Method::GET],
            Resource::DeleteListener { .. } | Resource::DeleteChannel { .. } => &[Method::DELETE],
            Resource::Metrics
            | Resource::Healthz
            | Resource::Readyz
            | Resource::Monitor
            | Resource::MonitorEvents => &[Method::GET],
        }
    }

    /// The path template of the resource, as [`ROUTES`] writes it.
    fn template(&self) -> &'static str {
        match self {
            Resource::Root => "/",
            Resource::Channels => "/channels",
            Resource::Create => "/create",
            Resource::Subscribe => "/subscribe",
            Resource::Broadcast => "/broadcast",
            Resource::Dispatch => "/dispatch",
            Resource::Stream { .. } => "/stream/{channel_id}/{listener_id}",
            Resource::Watch { .. } => "/watch/{channel_id}",
            Resource::DeleteListener { .. } => "/listener/{channel_id}/{listener_id}",
            Resource::DeleteChannel { .. } => "/channel/{channel_id}",
            Resource::Metrics => "/metrics",
            Resource::Healthz => "/healthz",
            Resource::Readyz => "/readyz",
            Resource::Monitor => "/monitor",
            Resource::MonitorEvents => "/monitor/events",
        }
    }

    /// The `Allow` header of the resource.
    fn allow(&self) -> String {
        let mut allow: Vec<&str> = self.methods().iter().map(Method::as_str).collect();
        allow.push("OPTIONS");
        allow.join(", ")
    }
}

fn decode_segment(segment: &str) -> Result<String, ApiError> {
    percent_decode(segment, false).map(Cow::into_owned).ok_or_else(|| {
        ApiError::bad_request(format!(
            "the path segment {segment:?} is not valid UTF-8 once percent-decoded: ids are UTF-8 text"
        ))
    })
}

/// Percent-decodes one component of a request target: a path segment, or (with
/// `plus_is_space`, as forms write them) a query parameter's name or value. The one
/// decoder of every id the routes read. `None` if the bytes are not UTF-8: replacing
/// them with U+FFFD would let different raw ids name the same channel.
/// Borrows `text` when there is nothing to decode, as in most requests.
fn percent_decode(text: &str, plus_is_space: bool) -> Option<Cow<'_, str>> {
    if plus_is_space && text.contains('+') {
        let spaced = text.replace('+', " ");
        return percent_decode(&spaced, false).map(|decoded| Cow::Owned(decoded.into_owned()));
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
}

/// A failed request: its status and the message that names what was wrong.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// Close the connection after answering (the request body was not read to its end).
    close: bool,
    /// The `Allow` header of a 405.
    allow: Option<String>,
    /// The `WWW-Authenticate` header of a 401 or 403.
    challenge: Option<HeaderValue>,
}

impl From<auth::Refusal> for ApiError {
    fn from(refusal: auth::Refusal) -> Self {
        let mut error = ApiError::new(refusal.status, refusal.message);
        error.challenge = Some(refusal.challenge);
        error
    }
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            close: false,
            allow: None,
            challenge: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    fn unknown_channel(channel: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no channel with id {channel:?}"),
        )
    }

    fn unknown_listener(channel: &str, listener: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no listener with id {listener:?} in channel {channel:?}"),
        )
    }

    /// An eric-core error met while working on `channel`.
    fn core(error: Error, channel: &str) -> Self {
        match error {
            Error::InvalidChannel(id) => ApiError::unknown_channel(&id),
            Error::InvalidListener(id) => ApiError::unknown_listener(channel, &id),
            Error::DuplicateId(id) => ApiError::new(
                StatusCode::CONFLICT,
                format!("a channel with id {id:?} exists already"),
            ),
            error @ (Error::QueueFull { .. } | Error::Overloaded { .. }) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
            error @ Error::Disconnected { .. } => {
                ApiError::new(StatusCode::GONE, error.to_string())
            }
            error @ Error::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
            error @ Error::Engine(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
            error => ApiError::bad_request(error.to_string()),
        }
    }

    fn into_response(self) -> Response<ResponseBody> {
        let mut response = json_response(self.status, &json!({ "message": self.message }));
        let headers = response.headers_mut();
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::try_from(a).ok()) {
            headers.insert(header::ALLOW, allow);
        }
        if let Some(challenge) = self.challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// A route's outcome: its response, or the error to answer instead.
type RouteResult = Result<Response<ResponseBody>, ApiError>;

/// The body of a request, as hyper reads it or (for the event-stream requests that
/// the direct path serves) an empty one.
pub(crate) trait RequestBody:
    Body<Data = Bytes, Error: std::fmt::Display> + Unpin + Send
{
}

impl<B: Body<Data = Bytes, Error: std::fmt::Display> + Unpin + Send> RequestBody for B {}

/// Answers one request.
pub(crate) async fn handle(
    state: &Arc<State>,
    request: Request<impl RequestBody>,
) -> Response<ResponseBody> {
    let origin = allowed_origin(state, request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let outcome = match refused_before_routing(state, &request) {
        Some(error) => Err(error),
        None => answer(state, request, origin.is_some()).await,
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%method, path = ?path, status = %error.status, message = ?error.message, "request refused");
            error.into_response()
        }
    };
    if !state.config.cors_allowed_origins.is_empty() {
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            // Cookies (an EventSource `withCredentials`) only for the origins listed by
            // name: never for one let in by `*`.
            if credentials_allowed(state, &origin) {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
    }
    // Labelled by route template, never by the raw path: the series stay bounded.
    let template = Resource::parse(&path).ok().flatten().map(|r| r.template());
    state
        .container
        .metrics()
        .request(crate::metrics::request_cell(
            &method,
            template,
            response.status(),
        ));
    response
}

/// The refusal of a request before it is routed: a `Host` the server does not answer
/// (`421`), or a body that is not declared JSON (`415`); see [`super::host`].
fn refused_before_routing<B>(state: &State, request: &Request<B>) -> Option<ApiError> {
    host::check(
        &state.hosts,
        request.method(),
        request.uri(),
        request.headers(),
    )
    .err()
    .map(|refusal| ApiError::new(refusal.status, refusal.message))
}

/// Admits a publish unless the server is shutting down (`503`): a message acknowledged
/// before is written by the open streams before they end, and one that comes later is
/// refused rather than acknowledged and lost; and unless the server's queues hold
/// their byte budget (`503` too). Hold the guard until it is queued.
fn admit_publish(state: &State, channel_id: &str) -> Result<crate::shutdown::Admitted, ApiError> {
    let admitted = state.shutdown.admit().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down: the message was not queued",
        )
    })?;
    // The server's queues hold their byte budget (`max_queued_bytes`): refused, 503.
    state
        .container
        .admit_publish(channel_id)
        .map_err(|e| ApiError::core(e, channel_id))?;
    Ok(admitted)
}

async fn answer(state: &Arc<State>, request: Request<impl RequestBody>, cors: bool) -> RouteResult {
    let Some(resource) = Resource::parse(request.uri().path())? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no route for {}", request.uri().path()),
        ));
    };
    let method = request.method();
    if method == Method::OPTIONS {
        return Ok(preflight(&resource, request.headers(), cors));
    }
    if !resource.methods().contains(method) {
        let mut error = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} does not answer {method}; it answers {}",
                request.uri().path(),
                resource.allow()
            ),
        );
        error.allow = Some(resource.allow());
        return Err(error);
    }
    let container = &state.container;
    // The probes answer without a token: a load balancer or an orchestrator has none.
    let access = match resource {
        Resource::Healthz | Resource::Readyz => auth::Access::Open,
        // Once per request (a stream's token once, when it opens), never per event.
        _ => auth::authenticate(&state.gate, &request)?,
    };
    match resource {
        Resource::Root => {
            let mut snapshot = container
                .try_snapshot()
                .map_err(|e| ApiError::core(e, ""))?;
            snapshot.retain(|channel, _| access.may_see(channel));
            Ok(json_response(StatusCode::OK, &snapshot))
        }
        Resource::Channels => {
            let mut ids = container.try_ids().map_err(|e| ApiError::core(e, ""))?;
            ids.retain(|channel| access.may_see(channel));
            Ok(json_response(StatusCode::OK, &ids))
        }
        Resource::Create => {
            let retention = retention_of(&request, container.settings().retention)?;
            let channel = match query_param(&request, "channel_id")? {
                None => {
                    access.require_every(Right::Publish)?;
                    container.add_with(None, retention).map_err(|e| ApiError::core(e, ""))?
                }
                Some(id) if id.is_empty() => {
                    return Err(ApiError::bad_request(
                        "the query parameter channel_id is empty: give an id, or leave it out for a generated one",
                    ))
                }
                Some(id) => {
                    access.require(Right::Publish, &id)?;
                    container
                        .add_with(Some(&id), retention)
                        .map_err(|e| ApiError::core(e, &id))?
                }
            };
            Ok(json_response(
                StatusCode::OK,
                &json!({ "channel_id": channel.id() }),
            ))
        }
        Resource::Subscribe => {
            let channel_id = required_param(&request, "channel_id")?;
            access.require(Right::Subscribe, &channel_id)?;
            let channel = channel_of(state, &channel_id)?;
            let listener = container
                .subscribe(&channel)
                .map_err(|e| ApiError::core(e, &channel_id))?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "listener_id": listener }),
            ))
        }
        Resource::Broadcast => {
            let channel_id = required_param(&request, "channel_id")?;
            access.require(Right::Publish, &channel_id)?;
            let channel = channel_of(state, &channel_id)?;
            let message = parse_message(&read_body(state, request).await?)?;
            let _admitted = admit_publish(state, &channel_id)?;
            let started = Instant::now();
            let report = container
                .broadcast(&channel, message)
                .map_err(|e| ApiError::core(e, &channel_id))?;
            container
                .metrics()
                .published(PublishKind::Broadcast, started.elapsed());
            container.note_refusals(&channel_id, report.rejected, report.disconnected);
            Ok(json_response(StatusCode::OK, &Value::Null))
        }
        Resource::Dispatch => {
            let channel_id = required_param(&request, "channel_id")?;
            let listener_id = required_param(&request, "listener_id")?;
            access.require(Right::Publish, &channel_id)?;
            let channel = channel_of(state, &channel_id)?;
            let listener = container
                .dispatch_target(&channel, &listener_id)
                .map_err(|e| ApiError::core(e, &channel_id))?;
            let message = parse_message(&read_body(state, request).await?)?;
            let _admitted = admit_publish(state, &channel_id)?;
            let started = Instant::now();
            container
                .dispatch_to(&channel, &listener, &Arc::new(message))
                .map_err(|e| {
                    container.note_refused(&channel_id, &e);
                    ApiError::core(e, &channel_id)
                })?;
            container
                .metrics()
                .published(PublishKind::Dispatch, started.elapsed());
            Ok(json_response(StatusCode::OK, &Value::Null))
        }
        Resource::Stream { channel, listener } => {
            access.require(Right::Subscribe, &channel)?;
            let last_event_id = last_event_id(&request)?;
            stream(state, &channel, &listener, last_event_id)
                .await
                .map(|events| sse(state, events.expiring_at(access.expires())))
        }
        Resource::Watch { channel } => {
            access.require(Right::Subscribe, &channel)?;
            watch(state, &channel, last_event_id(&request)?)
                .map(|events| sse(state, events.expiring_at(access.expires())))
        }
        Resource::DeleteListener { channel, listener } => {
            // A subscriber removes its listener; a publisher may too.
            if let Err(refusal) = access.require(Right::Subscribe, &channel) {
                access
                    .require(Right::Publish, &channel)
                    .map_err(|_| refusal)?;
            }
            container
                .remove_listener(&channel_of(state, &channel)?, &listener)
                .map_err(|e| ApiError::core(e, &channel))?;
            Ok(json_response(StatusCode::OK, &Value::Null))
        }
        Resource::DeleteChannel { channel } => {
            access.require(Right::Publish, &channel)?;
            container
                .remove(&channel)
                .map_err(|e| ApiError::core(e, &channel))?;
            Ok(json_response(StatusCode::OK, &Value::Null))
        }
        // What the hub as a whole does is for its operators: an admin token, when
        // tokens are checked. The probes stay open.
        Resource::Metrics => {
            access.require_admin()?;
            Ok(observe::metrics(container, &state.shutdown))
        }
        Resource::Healthz => Ok(observe::healthz()),
        Resource::Readyz => Ok(observe::readyz(container, &state.shutdown)),
        Resource::Monitor => {
            access.require_admin()?;
            Ok(observe::monitor_page())
        }
        Resource::MonitorEvents => {
            access.require_admin()?;
            // A mounted service has no task sampling the figures until it is asked.
            drop(observe::start_sampling(state));
            Ok(observe::monitor_events(state, stream_permit(state)?))
        }
    }
}

/// Counts a stream that resumes from a `Last-Event-ID`, by how it starts.
fn count_resume(state: &State, events: &MessageStream<SseAdapter>) {
    let result = if events.starts_with_gap() {
        ResumeResult::Marker
    } else {
        ResumeResult::Replayed
    };
    state.container.metrics().resumed(result);
}

/// `GET /stream/{channel}/{listener}`: starts the listener and streams it, after the
/// retained events for it since `last_event_id` when the client resumes.
async fn stream(
    state: &Arc<State>,
    channel_id: &str,
    listener_id: &str,
    last_event_id: Option<String>,
) -> Result<LiveEvents, ApiError> {
    let channel = channel_of(state, channel_id)?;
    let listener = state
        .container
        .listener(&channel, listener_id)
        .map_err(|e| ApiError::core(e, channel_id))?;
    let permit = stream_permit(state)?;
    // Ends the listener's previous stream, if any, and waits until it is gone, so that
    // it takes nothing more from the queue once the log below is read.
    let (slot, superseded) = state.slots.claim(channel_id, listener_id).await;
    listener.start();
    let events = match &last_event_id {
        Some(id) => {
            let events = channel.message_stream_after(&listener, id);
            count_resume(state, &events);
            events
        }
        None => channel.message_stream(&listener),
    };
    tracing::debug!(
        channel = ?channel_id,
        listener = ?listener_id,
        ?last_event_id,
        "stream opened"
    );
    let stop = stop_future(state, Some(superseded));
    Ok(LiveEvents::new(
        events,
        stop,
        permit,
        Some(slot),
        Some(Arc::clone(state.container.metrics())),
    ))
}

/// `GET /watch/{channel}`: a new listener, started, that lives as long as the stream;
/// after the retained broadcasts since `last_event_id` when the client resumes.
fn watch(
    state: &Arc<State>,
    channel_id: &str,
    last_event_id: Option<String>,
) -> Result<LiveEvents, ApiError> {
    let channel = channel_of(state, channel_id)?;
    let permit = stream_permit(state)?;
    // Registered and started here, before the response head leaves.
    let events = state
        .container
        .watch(&channel, last_event_id.as_deref())
        .map_err(|e| ApiError::core(e, channel_id))?;
    if last_event_id.is_some() {
        count_resume(state, &events);
    }
    tracing::debug!(
        channel = ?channel_id,
        listener = ?events.listener().id(),
        ?last_event_id,
        "watch opened"
    );
    let stop = stop_future(state, None);
    let metrics = Some(Arc::clone(state.container.metrics()));
    Ok(LiveEvents::new(events, stop, permit, None, metrics))
}

fn stream_permit(state: &State) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    if state.shutdown.is_shutdown() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ));
    }
    Arc::clone(&state.streams).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many open streams: the server allows {} at once",
                state.config.max_streams
            ),
        )
    })
}

fn sse(state: &State, events: LiveEvents) -> Response<ResponseBody> {
    sse_response(SseBody::with_config(events, state.config.sse.clone())).map(ResponseBody::Sse)
}

fn channel_of(state: &State, channel_id: &str) -> Result<SseChannel, ApiError> {
    state.container.get(channel_id).map_err(|e| match e {
        Error::InvalidChannel(_) => ApiError::unknown_channel(channel_id),
        e => ApiError::core(e, channel_id),
    })
}

/// The position a client resumes from: the `Last-Event-ID` header (what an
/// `EventSource` sends when it reconnects), else the `last_event_id` query parameter
/// (what a page gives on the first connection, when it cannot set headers). The header
/// wins: a reconnecting `EventSource` keeps its first URL but sends a newer id.
/// Whatever it holds is resolved by the channel's log (a gap marker for what is not a
/// position), so nothing is refused here but a query parameter that is not UTF-8, as
/// every query parameter is.
fn last_event_id<B>(request: &Request<B>) -> Result<Option<String>, ApiError> {
    if let Some(value) = request.headers().get("last-event-id") {
        return Ok(Some(
            String::from_utf8_lossy(value.as_bytes()).trim().to_owned(),
        ));
    }
    query_param(request, "last_event_id")
}

/// The retention of a channel made by `PUT /create`: the server's, with
/// `history_size` (entries) and `history_age` (seconds; 0 for no age bound) replaced
/// when given.
fn retention_of<B>(request: &Request<B>, default: Retention) -> Result<Retention, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        query_param(request, name)?
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "the query parameter {name} must be a whole number, not {text:?}"
                    ))
                })
            })
            .transpose()
    };
    let mut retention = default;
    if let Some(size) = number("history_size")? {
        retention.max_entries = usize::try_from(size).unwrap_or(usize::MAX);
    }
    if let Some(age) = number("history_age")? {
        retention.max_age = (age > 0).then(|| Duration::from_secs(age));
    }
    Ok(retention)
}

/// The query parameter `name` (the first, if it repeats), decoded as a form writes it;
/// a 400 if it is not UTF-8 once decoded.
fn query_param<B>(request: &Request<B>, name: &str) -> Result<Option<String>, ApiError> {
    let Some(query) = request.uri().query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key, true).as_deref() != Some(name) {
            continue;
        }
        return percent_decode(value, true).map(|value| Some(value.into_owned())).ok_or_else(|| {
            ApiError::bad_request(format!(
                "the query parameter {name} is not valid UTF-8 once percent-decoded: ids are UTF-8 text"
            ))
        });
    }
    Ok(None)
}

fn required_param<B>(request: &Request<B>, name: &str) -> Result<String, ApiError> {
    match query_param(request, name)? {
        None => Err(ApiError::bad_request(format!(
            "missing query parameter {name}"
        ))),
        Some(value) if value.is_empty() => Err(ApiError::bad_request(format!(
            "the query parameter {name} is empty"
        ))),
        Some(value) => Ok(value),
    }
}

/// Reads the whole body, within the size limit and the body timeout.
async fn read_body(state: &State, request: Request<impl RequestBody>) -> Result<Bytes, ApiError> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
        .closing()
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut body = request.into_body();
    let read = async {
        let mut bytes = Vec::with_capacity(declared.map_or(1024, |l| l as usize));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                ApiError::bad_request(format!("could not read the request body: {error}")).closing()
            })?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(bytes))
    };
    match tokio::time::timeout(state.config.body_read_timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {:?}",
                state.config.body_read_timeout
            ),
        )
        .closing()),
    }
}

/// A broadcast or dispatch body read without a map for the object around the payload.
/// Unknown keys are ignored, as the general path ignores them.
#[derive(serde::Deserialize)]
struct MessageBody {
    #[serde(rename = "type")]
    msg_type: String,
    #[serde(default)]
    payload: Value,
}

const MESSAGE_SHAPE: &str = r#"{"type": "...", "payload": <any JSON>}"#;

/// The message of a broadcast or dispatch body: `{"type": "...", "payload": ...}`
/// (`payload` defaults to `null`; other keys are ignored).
fn parse_message(body: &[u8]) -> Result<Message, ApiError> {
    let Some(&first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(ApiError::bad_request(format!(
            "the request body is empty; send a JSON object {MESSAGE_SHAPE}"
        )));
    };
    // The common body, an object with a string `type`, is read straight into its two
    // fields; anything else (including duplicate keys, where the last one counts) takes
    // the general path, which also names what is wrong.
    let direct = (first == b'{').then(|| serde_json::from_slice(body).ok());
    let MessageBody { msg_type, payload } = match direct.flatten() {
        Some(message) => message,
        None => read_message_body(body)?,
    };
    eric_core::check_message_type(&msg_type)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(Message::new(msg_type, payload))
}

/// A message body read as any JSON document, then checked for its shape.
fn read_message_body(body: &[u8]) -> Result<MessageBody, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON ({error}); send a JSON object {MESSAGE_SHAPE}"
        ))
    })?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::bad_request(format!(
            "the request body is {}, not a JSON object {MESSAGE_SHAPE}",
            kind(&value)
        )));
    };
    let msg_type = match object.remove("type") {
        Some(Value::String(msg_type)) => msg_type,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "\"type\" must be a string, not {}",
                kind(&other)
            )))
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "the request body has no \"type\"; send a JSON object {MESSAGE_SHAPE}"
            )))
        }
    };
    let payload = object.remove("payload").unwrap_or(Value::Null);
    Ok(MessageBody { msg_type, payload })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    // Serialising maps of strings and JSON values cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The origin of the request if CORS allows it, as the header value to echo.
fn allowed_origin(state: &State, headers: &HeaderMap) -> Option<HeaderValue> {
    let allowed = &state.config.cors_allowed_origins;
    if allowed.is_empty() {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(text))
        .then(|| origin.clone())
}

/// Whether `origin` (one CORS allows) may send credentials: it is listed by name.
fn credentials_allowed(state: &State, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    state
        .config
        .cors_allowed_origins
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(origin))
}

/// Refuses a request that may not use the admin routes (`/metrics`, the monitor page):
/// with tokens checked, it needs one granting `"admin": true`. The check those routes
/// call before answering.
#[allow(dead_code)]
pub(crate) fn require_admin<B>(state: &State, request: &Request<B>) -> Result<(), ApiError> {
    auth::require_admin(&state.gate, request).map_err(ApiError::from)
}

/// `OPTIONS` on a known path: its methods, and the CORS preflight answer when the
/// origin is allowed.
fn preflight(resource: &Resource, headers: &HeaderMap, cors: bool) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let allow = HeaderValue::try_from(resource.allow()).expect("method names are valid headers");
    let out = response.headers_mut();
    out.insert(header::ALLOW, allow.clone());
    if cors {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, allow);
        if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A path of `template`, its ids filled (one that needs percent-encoding).
    fn example_path(template: &str) -> String {
        template
            .replace("{channel_id}", "news%20feed")
            .replace("{listener_id}", "7")
    }

    #[test]
    fn the_router_answers_exactly_the_routes_of_the_table() {
        let entries: BTreeSet<(&str, &str)> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
        assert_eq!(entries.len(), ROUTES.len(), "a route is listed twice");
        for route in ROUTES {
            let what = format!("{} {}", route.method, route.path);
            let resource = Resource::parse(&example_path(route.path))
                .unwrap()
                .unwrap_or_else(|| panic!("{what}: the router does not know the path"));
            assert_eq!(resource.template(), route.path, "{what}");
            assert!(
                resource.methods().iter().any(|m| m == route.method),
                "{what}: the router does not answer the method"
            );
            for method in resource.methods() {
                assert!(
                    entries.contains(&(method.as_str(), route.path)),
                    "{method} {}: answered, but not in ROUTES",
                    route.path
                );
            }
        }
    }

    #[test]
    fn no_path_outside_the_table_is_routed() {
        // Every path of up to four segments made of the words of the table's paths and
        // the documented ones, and an id: each path the router knows has the shape of a
        // template of the table, and every template is reached.
        let documented = documented_routes(include_str!("mod.rs"));
        let mut words: BTreeSet<&str> = ROUTES
            .iter()
            .map(|r| r.path)
            .chain(documented.iter().map(|(_, path)| path.as_str()))
            .flat_map(|path| path.split('/'))
            .filter(|w| !w.starts_with('{'))
            .collect();
        words.insert("x");
        let mut paths = vec![String::new()];
        let mut reached = BTreeSet::new();
        for _ in 0..4 {
            paths = paths
                .iter()
                .flat_map(|path| words.iter().map(move |word| format!("{path}/{word}")))
                .collect();
            for path in &paths {
                let Some(resource) = Resource::parse(path).unwrap() else {
                    continue;
                };
                let template = resource.template();
                assert!(
                    ROUTES.iter().any(|r| r.path == template),
                    "{path}: routed to {template}, which is not in ROUTES"
                );
                assert_eq!(
                    path.split('/').count(),
                    template.split('/').count(),
                    "{path} as {template}"
                );
                for (segment, pattern) in path.split('/').zip(template.split('/')) {
                    assert!(
                        pattern.starts_with('{') || segment == pattern,
                        "{path} as {template}"
                    );
                }
                reached.insert(template);
            }
        }
        let templates: BTreeSet<&str> = ROUTES.iter().map(|r| r.path).collect();
        assert_eq!(reached, templates);
    }

    /// The `METHOD /path` of every row of the route tables in `doc`: the Markdown
    /// tables whose first column is headed `method and path` (a line of a Rust module's
    /// docs counts without its `//!`).
    fn documented_routes(doc: &str) -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        let mut in_table = false;
        for line in doc.lines() {
            let line = line.trim_start_matches("//!").trim();
            let Some(first_cell) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
                in_table = false;
                continue;
            };
            let first_cell = first_cell.trim();
            if first_cell == "method and path" {
                in_table = true;
                continue;
            }
            if !in_table || first_cell.starts_with("---") {
                continue;
            }
            let (method, path) = first_cell
                .strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .and_then(|c| c.split_once(' '))
                .unwrap_or_else(|| panic!("a route table row without `METHOD /path`: {line}"));
            routes.insert((method.to_owned(), path.to_owned()));
        }
        routes
    }

    #[test]
    fn the_route_tables_of_the_docs_list_every_route() {
        // The tables leave `HEAD` to a sentence under them.
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .filter(|r| r.method != "HEAD")
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        for (name, doc) in [
            ("eric-socket/src/http/mod.rs", include_str!("mod.rs")),
            (
                "docs/http-api.md",
                include_str!("../../../docs/http-api.md"),
            ),
        ] {
            assert_eq!(documented_routes(doc), routes, "the route table of {name}");
        }
        for head in ROUTES.iter().filter(|r| r.method == "HEAD") {
            assert!(
                ROUTES
                    .iter()
                    .any(|r| r.method == "GET" && r.path == head.path),
                "HEAD {}: HEAD is documented as answered where GET is",
                head.path
            );
        }
    }

    #[test]
    fn paths_map_to_routes_with_decoded_ids() {
        assert_eq!(Resource::parse("/").unwrap(), Some(Resource::Root));
        assert_eq!(
            Resource::parse("/stream/news%20feed/7").unwrap(),
            Some(Resource::Stream {
                channel: "news feed".into(),
                listener: "7".into()
            })
        );
        assert_eq!(
            Resource::parse("/watch/%C3%A9t%C3%A9").unwrap(),
            Some(Resource::Watch {
                channel: "été".into()
            })
        );
        assert_eq!(Resource::parse("/stream/a").unwrap(), None);
        assert_eq!(Resource::parse("/channels/").unwrap(), None);
        assert_eq!(Resource::parse("/nope").unwrap(), None);
        assert_eq!(Resource::parse("/stream/a/b/c").unwrap(), None);
        assert_eq!(Resource::parse("/monitor/events/x/y/z").unwrap(), None);
        assert!(Resource::parse("/watch/%FF").is_err());
    }

    #[test]
    fn query_parameters_decode_as_forms_write_them_and_refuse_what_is_not_utf8() {
        let param = |uri: &str, name: &str| {
            query_param(&Request::put(uri).body(()).unwrap(), name).map_err(|e| e.message)
        };
        assert_eq!(
            param(
                "/create?x=1&channel_id=a+b%2Bc%20d&channel_id=2",
                "channel_id"
            ),
            Ok(Some("a b+c d".to_owned()))
        );
        assert_eq!(
            param("/create?channel%5Fid=%C3%A9", "channel_id"),
            Ok(Some("é".into()))
        );
        assert_eq!(
            param("/create?channel_id", "channel_id"),
            Ok(Some(String::new()))
        );
        assert_eq!(param("/create?other=%ff", "channel_id"), Ok(None));
        assert_eq!(param("/create", "channel_id"), Ok(None));
        for bad in ["%ff%fe", "a%C3", "%ED%A0%80"] {
            let message = param(&format!("/create?channel_id={bad}"), "channel_id").unwrap_err();
            assert!(message.contains("not valid UTF-8"), "{bad}: {message}");
        }
    }

    #[test]
    fn allow_lists_the_methods_and_options() {
        assert_eq!(Resource::Root.allow(), "GET, HEAD, OPTIONS");
        assert_eq!(Resource::Create.allow(), "PUT, OPTIONS");
    }

    #[test]
    fn a_message_needs_an_object_with_a_string_type() {
        let message = parse_message(br#"{"type": "t", "payload": [1, "x"]}"#).unwrap();
        assert_eq!(message.msg_type, "t");
        assert_eq!(message.payload, json!([1, "x"]));
        assert_eq!(
            parse_message(br#"{"type": "t"}"#).unwrap().payload,
            Value::Null
        );
        // What the general reading of a JSON object gives, whichever path reads it:
        // other keys ignored, the last of two equal keys, escapes in keys.
        for (body, msg_type, payload) in [
            (
                r#" {"x": [1], "payload": {"b": 1, "a": 2}, "type": "t"}"#,
                "t",
                json!({"b": 1, "a": 2}),
            ),
            (r#"{"type": "a", "payload": 1, "type": "b"}"#, "b", json!(1)),
            (
                r#"{"type": "a", "payload": 1, "payload": null}"#,
                "a",
                Value::Null,
            ),
            (
                r#"{"typ\u0065": "t", "p\u0061yload": "x"}"#,
                "t",
                json!("x"),
            ),
        ] {
            let message = parse_message(body.as_bytes()).unwrap();
            assert_eq!(
                (message.msg_type.as_str(), &message.payload),
                (msg_type, &payload),
                "{body}"
            );
            let keys: Vec<String> = message
                .payload
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys().cloned())
                .collect();
            let expected: Vec<String> = payload
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys().cloned())
                .collect();
            assert_eq!(keys, expected, "key order of {body}");
        }
        for (body, needle) in [
            (&b""[..], "empty"),
            (b"{", "not valid JSON"),
            (b"[1]", "an array, not a JSON object"),
            (br#"["t", 1]"#, "an array, not a JSON object"),
            (
                br#"{"type": "t", "type": 1}"#,
                "must be a string, not a number",
            ),
            (br#"{"type": "t"} x"#, "not valid JSON"),
            (br#"{"payload": 1}"#, "no \"type\""),
            (br#"{"type": 1}"#, "must be a string, not a number"),
            (br#"{"type": "a\nb"}"#, "line break"),
            (br#"{"type": "a\rb"}"#, "line break"),
            (br#"{"type": "a\u0000b"}"#, "NUL"),
        ] {
            let error = parse_message(body).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains(needle), "{}", error.message);
        }
    }

    #[test]
    fn the_last_event_id_header_wins_over_the_query_parameter() {
        let request = |uri: &str, header: Option<&'static str>| {
            let mut builder = Request::get(uri);
            if let Some(value) = header {
                builder = builder.header("last-event-id", value);
            }
            builder.body(()).unwrap()
        };
        let last_event_id = |request| last_event_id(&request).unwrap();
        assert_eq!(last_event_id(request("/watch/a", None)), None);
        assert_eq!(
            last_event_id(request("/watch/a?last_event_id=x-1", None)).as_deref(),
            Some("x-1")
        );
        assert_eq!(
            last_event_id(request("/watch/a?last_event_id=x-1", Some(" x-9 "))).as_deref(),
            Some("x-9")
        );
    }

    #[test]
    fn history_parameters_override_the_servers_retention() {
        let default = Retention::entries(10);
        let retention = |uri: &str| retention_of(&Request::put(uri).body(()).unwrap(), default);
        assert_eq!(retention("/create").unwrap(), default);
        assert_eq!(
            retention("/create?history_size=3&history_age=60").unwrap(),
            Retention::entries(3).max_age(Duration::from_secs(60))
        );
        assert_eq!(retention("/create?history_age=0").unwrap(), default);
        for bad in ["history_size=-1", "history_size=x", "history_age=1.5"] {
            let error = retention(&format!("/create?{bad}")).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains("whole number"), "{}", error.message);
        }
    }
}
