//! The smallest "Server-Sent Events in my axum app": one `SseChannel`, a handler that
//! streams a listener of it as `text/event-stream` with `SseBody`, and one that
//! broadcasts to it.
//!
//! ```text
//! cargo run -p eric-sse --features http --example axum_sse -- 127.0.0.1:3000
//! curl -N http://127.0.0.1:3000/events                     # in one terminal
//! curl -d 'hello' http://127.0.0.1:3000/say                # in another
//! ```
//!
//! Ctrl-C (or SIGTERM) stops it: the channel's closed message ends every stream, and
//! axum's graceful shutdown then finishes.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use eric_core::Message;
use eric_sse::http::{sse_response, SseBody};
use eric_sse::SseChannel;
use std::future::Future;
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// `GET /events`: a new listener of the channel, streamed until the client leaves (the
/// listener goes with it) or the channel ends. A client that reconnects with
/// `Last-Event-ID` would use `channel.watch_after(id)` to resume.
async fn events(State(channel): State<SseChannel>) -> impl IntoResponse {
    sse_response(SseBody::new(channel.watch()))
}

/// `POST /say` with a text body: broadcast it as an event `say`.
async fn say(State(channel): State<SseChannel>, text: String) -> &'static str {
    channel.broadcast(Message::new("say", text));
    "sent\n"
}

/// The application on `listener`, until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let channel = SseChannel::new();
    let app = Router::new()
        .route("/events", get(events))
        .route("/say", post(say))
        .with_state(channel.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
            // Streams do not end by themselves: the closed message ends them.
            channel.notify_end();
        })
        .await
}
