//! The routes that watch the server rather than use it: `/metrics`, `/healthz`,
//! `/readyz`, the `/monitor` page and its event stream `/monitor/events`.
//!
//! The monitor is fed by eric itself: a private channel (in no container, so it shows
//! in no listing) gets a [`Snapshot`] broadcast once a second, and every
//! `/monitor/events` client watches it like any `/watch` client, without being counted
//! in the figures it shows.

use super::body::ResponseBody;
use super::state::State;
use super::stream::{stop_future, LiveEvents};
use crate::container::ChannelContainer;
use crate::metrics::{self, Sampler};
use crate::shutdown::ShutdownHandle;
use eric_core::Message;
use eric_sse::http::{sse_response, SseBody};
use eric_sse::SseChannel;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The monitor page: HTML, CSS and JavaScript in one file, in the binary.
const MONITOR_PAGE: &str = include_str!("monitor.html");

/// How often the monitor samples the figures.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The message type of a snapshot on `/monitor/events`.
pub const SNAPSHOT_EVENT: &str = "snapshot";

/// What `/readyz` answers: `Ok`, or why the server is not ready.
pub(crate) fn readiness(
    container: &ChannelContainer,
    shutdown: &ShutdownHandle,
) -> Result<(), String> {
    if shutdown.is_shutdown() {
        return Err("the server is shutting down".to_owned());
    }
    container.readiness()
}

fn with_type(
    mut response: Response<ResponseBody>,
    content_type: &'static str,
) -> Response<ResponseBody> {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(value.to_string()));
    *response.status_mut() = status;
    with_type(response, "application/json")
}

/// `GET /metrics`.
pub(crate) fn metrics(
    container: &ChannelContainer,
    shutdown: &ShutdownHandle,
) -> Response<ResponseBody> {
    let ready = readiness(container, shutdown).is_ok();
    let response = Response::new(ResponseBody::full(metrics::encode(container, ready)));
    with_type(response, metrics::CONTENT_TYPE)
}

/// `GET /healthz`: the process serves.
pub(crate) fn healthz() -> Response<ResponseBody> {
    json(StatusCode::OK, &json!({ "status": "serving" }))
}

/// `GET /readyz`: 200, or 503 with the reason.
pub(crate) fn readyz(
    container: &ChannelContainer,
    shutdown: &ShutdownHandle,
) -> Response<ResponseBody> {
    match readiness(container, shutdown) {
        Ok(()) => json(StatusCode::OK, &json!({ "ready": true })),
        Err(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "ready": false, "message": reason }),
        ),
    }
}

/// `GET /monitor`.
pub(crate) fn monitor_page() -> Response<ResponseBody> {
    with_type(
        Response::new(ResponseBody::full(MONITOR_PAGE)),
        "text/html; charset=utf-8",
    )
}

/// The monitor's channel and sampler, one per HTTP server.
#[derive(Debug)]
pub(crate) struct Monitor {
    channel: SseChannel,
    sampler: Mutex<Sampler>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            // A watcher gets the latest snapshot when it connects: the log keeps none.
            channel: SseChannel::builder()
                .id("eric-monitor")
                .retention(eric_core::Retention::entries(0))
                .build(),
            sampler: Mutex::default(),
        }
    }
}

impl Monitor {
    /// Takes a snapshot and sends it to the monitor's watchers (the channels are listed
    /// only when somebody watches).
    fn tick(&self, container: &ChannelContainer, shutdown: &ShutdownHandle) {
        let watched = self.channel.listener_count() > 0;
        let snapshot =
            self.sampler
                .lock()
                .sample(container, readiness(container, shutdown), watched);
        let payload = serde_json::to_value(&snapshot).unwrap_or_default();
        if watched {
            self.channel
                .broadcast(Message::new(SNAPSHOT_EVENT, payload));
        }
    }
}

/// Starts the task that samples the figures of `/monitor/events` once a second, unless
/// one runs already: `HttpServer` starts it with the server, a mounted `HttpService` on
/// its first monitor stream. It ends when the server shuts down.
pub(crate) fn start_sampling(state: &Arc<State>) -> Option<tokio::task::JoinHandle<()>> {
    if state
        .sampling
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return None;
    }
    Some(tokio::spawn(run_monitor(Arc::clone(state))))
}

/// Samples the figures once a second until `state`'s server shuts down (one last
/// sample then, which shows the state).
async fn run_monitor(state: Arc<State>) {
    let mut interval = tokio::time::interval(SAMPLE_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = state.shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = interval.tick() => state.monitor.tick(&state.container, &state.shutdown),
            () = &mut stop => {
                state.monitor.tick(&state.container, &state.shutdown);
                return;
            }
        }
    }
}

/// `GET /monitor/events`: a snapshot at once (with the channels listed), then one a
/// second.
pub(crate) fn monitor_events(
    state: &Arc<State>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Response<ResponseBody> {
    let monitor = &state.monitor;
    let events = monitor.channel.watch();
    // Now that somebody watches, a snapshot with the channels, for every watcher.
    monitor.tick(&state.container, &state.shutdown);
    let live = LiveEvents::new(events, stop_future(state, None), permit, None, None);
    sse_response(SseBody::with_config(live, state.config.sse.clone())).map(ResponseBody::Sse)
}
