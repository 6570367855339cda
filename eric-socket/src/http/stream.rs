//! The events of one HTTP stream, and the bookkeeping that keeps one stream per listener.

use eric_core::MessageStream;
use eric_sse::{SseAdapter, SseEvent};
use futures_core::Stream;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

/// How long a new stream of a listener waits for the listener's previous stream to go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(1);

type StopFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A listener's events as one HTTP stream sees them: they end when the listener's
/// stream ends, when the server shuts down, or when a newer stream of the same listener
/// takes over. Dropping it (hyper drops the body of a connection that failed) drops the
/// message stream, which removes a `/watch` listener, and frees the stream's slot.
pub(crate) struct LiveEvents {
    events: MessageStream<SseAdapter>,
    stop: StopFuture,
    stopped: bool,
    _permit: OwnedSemaphorePermit,
    _slot: Option<SlotGuard>,
}

impl LiveEvents {
    /// `events`, ended early by `stop`, holding `permit` (one of the open-stream
    /// permits) and `slot` (the listener's one-stream slot, for `/stream`) while it lives.
    pub(crate) fn new(
        events: MessageStream<SseAdapter>,
        stop: StopFuture,
        permit: OwnedSemaphorePermit,
        slot: Option<SlotGuard>,
    ) -> Self {
        LiveEvents {
            events,
            stop,
            stopped: false,
            _permit: permit,
            _slot: slot,
        }
    }
}

impl Stream for LiveEvents {
    type Item = SseEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SseEvent>> {
        let this = self.get_mut();
        // The stop signal first: once it fired, not one more message leaves the queue.
        if this.stopped || this.stop.as_mut().poll(cx).is_ready() {
            this.stopped = true;
            return Poll::Ready(None);
        }
        Pin::new(&mut this.events).poll_next(cx)
    }
}

impl fmt::Debug for LiveEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveEvents")
            .field("events", &self.events)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

/// A future that completes when `shutdown` completes or, if given, when `superseded`
/// does (a newer stream took over, or the slot was dropped).
pub(crate) fn stop_future(
    shutdown: impl Future<Output = ()> + Send + 'static,
    superseded: Option<oneshot::Receiver<()>>,
) -> StopFuture {
    match superseded {
        None => Box::pin(shutdown),
        Some(superseded) => Box::pin(async move {
            tokio::select! {
                () = shutdown => {}
                _ = superseded => {}
            }
        }),
    }
}

type Key = (String, String);

struct Slot {
    token: u64,
    /// Fired (or dropped) to end the stream holding this slot.
    supersede: oneshot::Sender<()>,
    /// Completes when that stream is gone (its guard dropped).
    gone: oneshot::Receiver<()>,
}

/// Which listeners have an open HTTP stream, so that a new stream of a listener ends the
/// old one first.
#[derive(Default)]
pub(crate) struct StreamSlots {
    slots: Mutex<HashMap<Key, Slot>>,
    next_token: AtomicU64,
}

impl fmt::Debug for StreamSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSlots")
            .field("open", &self.slots.lock().len())
            .finish()
    }
}

impl StreamSlots {
    /// Takes the slot of the listener `listener_id` of `channel_id`: ends the stream that
    /// held it and waits (at most [`TAKEOVER_WAIT`]) until it is gone. Returns the guard
    /// of the slot and the receiver that fires when a later stream takes it in turn.
    pub(crate) async fn claim(
        self: &Arc<Self>,
        channel_id: &str,
        listener_id: &str,
    ) -> (SlotGuard, oneshot::Receiver<()>) {
        let key = (channel_id.to_owned(), listener_id.to_owned());
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (supersede, superseded) = oneshot::channel();
        let (gone_tx, gone) = oneshot::channel();
        let previous = self.slots.lock().insert(
            key.clone(),
            Slot {
                token,
                supersede,
                gone,
            },
        );
        // The guard exists before the wait, so a request dropped while waiting frees the slot.
        let guard = SlotGuard {
            slots: Arc::clone(self),
            key,
            token,
            _gone: gone_tx,
        };
        if let Some(previous) = previous {
            let _ = previous.supersede.send(());
            if tokio::time::timeout(TAKEOVER_WAIT, previous.gone)
                .await
                .is_err()
            {
                tracing::warn!(
                    channel = ?channel_id,
                    listener = ?listener_id,
                    "the previous stream of this listener did not end in time; starting anyway"
                );
            } else {
                tracing::debug!(
                    channel = ?channel_id,
                    listener = ?listener_id,
                    "a new stream took over from the previous one"
                );
            }
        }
        (guard, superseded)
    }
}

/// Holds a listener's stream slot; dropping it frees the slot (unless a newer stream
/// took it) and tells a waiting newer stream that this one is gone.
pub(crate) struct SlotGuard {
    slots: Arc<StreamSlots>,
    key: Key,
    token: u64,
    _gone: oneshot::Sender<()>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut slots = self.slots.slots.lock();
        if slots
            .get(&self.key)
            .is_some_and(|slot| slot.token == self.token)
        {
            slots.remove(&self.key);
        }
    }
}
