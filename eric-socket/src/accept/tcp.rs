//! The connection loop of the HTTP server: accept under a cap, one task per connection,
//! and at shutdown a drain bounded by a grace period.

use super::drain::drain;
use super::pause::accept_error_pause;
use crate::shutdown::{ShutdownHandle, Undelivered};
use std::time::Duration;
use std::{future::Future, io, sync::Arc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A listening socket the loop accepts from.
pub(crate) trait Accept {
    /// An accepted connection.
    type Connection: Send + 'static;

    /// The next connection.
    fn accept_one(&self) -> impl Future<Output = io::Result<Self::Connection>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Connection = tokio::net::TcpStream;

    async fn accept_one(&self) -> io::Result<Self::Connection> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// How a server runs its connections.
pub(crate) struct ConnectionLimits {
    /// Connections served at once; more wait to be accepted.
    pub(crate) max_connections: usize,
    /// How long shutdown waits for connections before cutting them.
    pub(crate) shutdown_grace: Duration,
    /// Names the server in logs.
    pub(crate) server: &'static str,
    /// What the server's streams could not deliver at shutdown, logged after the drain.
    pub(crate) undelivered: Undelivered,
}

/// Accepts until `shutdown` fires, running `serve` on each connection in a task of its
/// own; then hands the listener to `stopped` (to close it, remove a socket file),
/// waits for the connections at most the grace period, and cuts the rest.
pub(crate) async fn serve_connections<L, S, F>(
    listener: L,
    limits: ConnectionLimits,
    shutdown: &ShutdownHandle,
    mut serve: S,
    stopped: impl FnOnce(L),
) where
    L: Accept,
    S: FnMut(L::Connection) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
        };
        let connection = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept_one() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    if let Some(pause) = accept_error_pause(limits.server, &error) {
                        tokio::time::sleep(pause).await;
                    }
                    continue;
                }
            },
        };
        // Boxed: awaiting a future held by value would store it twice in the task (once
        // as the captured value, once as the awaited one), doubling every connection's
        // memory.
        let served = Box::pin(serve(connection));
        connections.spawn(async move {
            served.await;
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    stopped(listener);
    drain(
        connections,
        limits.shutdown_grace,
        limits.server,
        &limits.undelivered,
    )
    .await;
}
