//! The end of a server's connections at shutdown.

use std::time::Duration;
use tokio::task::JoinSet;

/// Waits for `connections` to finish, at most `grace`, then cuts the rest.
pub(crate) async fn drain(mut connections: JoinSet<()>, grace: Duration, server: &'static str) {
    tracing::info!(server, open = connections.len(), "stopping");
    let wait = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, wait).await.is_err() {
        tracing::warn!(server, "connections still open after the grace period: cut");
        connections.shutdown().await;
    }
    tracing::info!(server, "stopped");
}
