//! The end of a server's connections at shutdown.

use crate::shutdown::Undelivered;
use std::time::Duration;
use tokio::task::JoinSet;

/// Waits for `connections` to finish, at most `grace`, then cuts the rest; logs, in one
/// line, how many queued messages the server's streams could not deliver.
pub(crate) async fn drain(
    mut connections: JoinSet<()>,
    grace: Duration,
    server: &'static str,
    undelivered: &Undelivered,
) {
    tracing::info!(server, open = connections.len(), "stopping");
    let wait = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, wait).await.is_err() {
        tracing::warn!(server, "connections still open after the grace period: cut");
        connections.shutdown().await;
    }
    match undelivered.get() {
        0 => tracing::info!(server, "stopped"),
        lost => tracing::warn!(
            server,
            undelivered = lost,
            "stopped; {lost} queued messages of open streams were not delivered \
             (the grace period ran out, or their clients left)"
        ),
    }
}
