//! Stopping servers: a handle for library users, and the signals for binaries.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// Stops a server that runs in the caller's runtime; clones stop the same server.
///
/// A server stops accepting, refuses the messages published from then on, writes what
/// its open streams have queued and ends them (each client sees the end of its
/// stream), waits a bounded time for connections to finish, and returns.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    sender: Arc<watch::Sender<bool>>,
    gate: Arc<Gate>,
}

/// What orders publishing against shutdown: a publish is admitted only before shutdown,
/// and streams drain only once every admitted publish has queued its message.
#[derive(Debug, Default)]
struct Gate {
    closed: AtomicBool,
    /// Publishes admitted and still running.
    in_flight: AtomicUsize,
    /// Woken when the last admitted publish ends after the gate closed.
    settled: Notify,
}

impl Gate {
    fn release(&self) {
        // Both sides are sequentially consistent: a waiter that read a count of one
        // before this decrement registered before it, and the closed gate is seen here.
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 && self.closed.load(Ordering::SeqCst)
        {
            self.settled.notify_waiters();
        }
    }
}

/// A publish admitted before shutdown: while it lives, open streams wait before they
/// drain, so that what it queues is written before they end.
#[derive(Debug)]
pub(crate) struct Admitted(Arc<Gate>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.release();
    }
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
            gate: Arc::default(),
        }
    }

    /// Asks every server watching this handle to stop.
    pub fn shutdown(&self) {
        self.gate.closed.store(true, Ordering::SeqCst);
        self.sender.send_replace(true);
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.gate.closed.load(Ordering::SeqCst)
    }

    /// A future that completes once shutdown is asked for.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            // An error means the sender is gone, which only happens when nobody can ask
            // for shutdown any more: treat it as asked.
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }

    /// Admits a publish unless shutdown was asked for (`None`: refuse it). Hold the
    /// guard until the message is queued.
    pub(crate) fn admit(&self) -> Option<Admitted> {
        self.gate.in_flight.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted(Arc::clone(&self.gate));
        if self.gate.closed.load(Ordering::SeqCst) {
            // Dropping it gives back the count taken above.
            drop(admitted);
            return None;
        }
        Some(admitted)
    }

    /// Completes once shutdown is asked for and every admitted publish has ended: from
    /// then on nothing more is queued through the servers of this handle, so a stream
    /// that writes what its queue holds writes everything that was acknowledged.
    pub(crate) fn settled(&self) -> impl Future<Output = ()> + Send + 'static {
        let stop = self.wait();
        let gate = Arc::clone(&self.gate);
        async move {
            stop.await;
            loop {
                let notified = gate.settled.notified();
                tokio::pin!(notified);
                // Registered before the count is read: a release in between wakes it.
                notified.as_mut().enable();
                if gate.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        }
    }
}

/// The count of messages that a server's open streams still held when shutdown ended
/// them (the grace period ran out, or their client left): logged once the server stops.
#[derive(Clone, Debug, Default)]
pub(crate) struct Undelivered(Arc<AtomicU64>);

impl Undelivered {
    /// Counts `messages` more.
    pub(crate) fn add(&self, messages: usize) {
        if messages > 0 {
            self.0.fetch_add(messages as u64, Ordering::Relaxed);
        }
    }

    /// The count so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nothing_is_admitted_after_shutdown() {
        let handle = ShutdownHandle::new();
        assert!(handle.admit().is_some());
        handle.shutdown();
        assert!(handle.admit().is_none());
    }

    #[tokio::test]
    async fn settled_waits_for_the_publishes_admitted_before_shutdown() {
        let handle = ShutdownHandle::new();
        let admitted = handle.admit().expect("admitted before shutdown");
        let mut settled = Box::pin(handle.settled());
        handle.shutdown();
        for _ in 0..10 {
            let polled = poll_once(settled.as_mut());
            assert!(polled.is_pending(), "a publish is still running");
            tokio::task::yield_now().await;
        }
        drop(admitted);
        tokio::time::timeout(Duration::from_secs(10), settled)
            .await
            .expect("settled once the publish ended");
    }

    /// Polls `future` once, with a waker that does nothing.
    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        future.poll(&mut cx)
    }
}
