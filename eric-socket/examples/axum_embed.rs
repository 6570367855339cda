//! eric's HTTP API inside an axum application: the application's own route at `/`,
//! eric's routes under `/eric/` (`PUT /eric/create`, `GET /eric/watch/{channel}`,
//! `POST /eric/broadcast?channel_id=...`), on one listener and one runtime.
//!
//! ```text
//! cargo run -p eric-socket --example axum_embed -- 127.0.0.1:3000
//! curl -X PUT http://127.0.0.1:3000/eric/create                 # {"channel_id":"1"}
//! curl -N http://127.0.0.1:3000/eric/watch/1                    # in another terminal
//! curl -H 'content-type: application/json' -d '{"type":"hi","payload":1}' \
//!     'http://127.0.0.1:3000/eric/broadcast?channel_id=1'
//! ```
//!
//! Ctrl-C (or SIGTERM) stops it: axum stops accepting, eric's streams end cleanly, the
//! program exits once the connections are closed.

use axum::routing::get;
use axum::Router;
use eric_socket::http::HttpService;
use eric_socket::{ChannelContainer, HttpServerConfig};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, async {
        let _ = eric_socket::termination_signal().await;
    })
    .await
}

/// The application: its own page at `/` and eric's API under `/eric`, served on
/// `listener` until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The address the application listens on: eric answers the `Host` names of it
    // (and the loopback names when it is a loopback address), as `eric serve` does.
    let config = HttpServerConfig::new(listener.local_addr()?);
    let eric = HttpService::new(config, Arc::new(ChannelContainer::new()));
    let eric_stop = eric.shutdown_handle();
    let app = Router::new()
        .route(
            "/",
            get(|| async { "my application: eric's API is under /eric/\n" }),
        )
        .nest_service("/eric", eric);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
            // axum waits for every connection to finish: eric's streams end here.
            eric_stop.shutdown();
        })
        .await
}
