//! Stopping servers: a handle for library users, and the signals for binaries.

use std::sync::Arc;
use tokio::sync::watch;

/// Stops a server that runs in the caller's runtime; clones stop the same server.
///
/// A server stops accepting, ends its open streams cleanly (each client sees the end
/// of its stream), waits a bounded time for connections to finish, and returns.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        ShutdownHandle::new()
    }
}

impl ShutdownHandle {
    /// A handle not yet triggered.
    pub fn new() -> Self {
        ShutdownHandle {
            sender: Arc::new(watch::channel(false).0),
        }
    }

    /// Asks every server watching this handle to stop.
    pub fn shutdown(&self) {
        self.sender.send_replace(true);
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        *self.sender.borrow()
    }

    /// A future that completes once shutdown is asked for.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            // An error means the sender is gone, which only happens when nobody can ask
            // for shutdown any more: treat it as asked.
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }
}

/// Completes on SIGINT or SIGTERM (Ctrl-C or `kill`).
pub async fn termination_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
    Ok(())
}
