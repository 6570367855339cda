//! The events of one HTTP stream (drained at shutdown), and the bookkeeping that keeps
//! one stream per listener.

use super::state::State;
use crate::metrics::{DisconnectReason, Metrics, Transport};
use crate::shutdown::{ShutdownHandle, Undelivered};
use eric_core::MessageStream;
use eric_sse::http::EventBatches;
use eric_sse::{SseAdapter, SseEvent};
use futures_core::Stream;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

/// How long a new stream of a listener waits for the listener's previous stream to go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(1);

/// What ends a stream early: a newer stream of the same listener at once, a server
/// shutdown once the stream has written what its queue holds.
pub(crate) struct Stop {
    /// Completes once shutdown is asked for and no publish is in flight (see
    /// [`ShutdownHandle::settled`]): nothing more will be queued.
    settled: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Fires (or is dropped) when a newer stream takes over.
    superseded: Option<oneshot::Receiver<()>>,
    shutdown: ShutdownHandle,
    undelivered: Undelivered,
    /// Whether `settled` was polled once, so it holds this stream's waker: a stream is
    /// polled by one task for its whole life, so that waker stays the right one, and
    /// until shutdown is asked for `settled` need not be polled again.
    settled_armed: bool,
}

/// The [`Stop`] of a stream of `state`'s server; `superseded`, for a `/stream`, fires
/// when a newer stream of the listener takes over.
pub(crate) fn stop_future(state: &State, superseded: Option<oneshot::Receiver<()>>) -> Stop {
    Stop {
        settled: Box::pin(state.shutdown.settled()),
        superseded,
        shutdown: state.shutdown.clone(),
        undelivered: state.undelivered.clone(),
        settled_armed: false,
    }
}

impl Stop {
    /// Whether shutdown has settled; arranges for the task to be woken when it does.
    fn is_settled(&mut self, cx: &mut Context<'_>) -> bool {
        if self.settled_armed && !self.shutdown.is_shutdown() {
            return false;
        }
        self.settled_armed = true;
        self.settled.as_mut().poll(cx).is_ready()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Events as they come.
    Live,
    /// The server is stopping: what the queue holds now, then the end.
    Draining,
    Ended,
}

/// A listener's events as one HTTP stream sees them: they end when the listener's
/// stream ends, when a newer stream of the same listener takes over, or when the
/// server shuts down, once the events queued by then are out. Dropping it (hyper drops
/// the body of a connection that failed) drops the message stream, which removes a
/// `/watch` listener, and frees the stream's slot.
pub(crate) struct LiveEvents {
    events: MessageStream<SseAdapter>,
    stop: Stop,
    phase: Phase,
    _permit: OwnedSemaphorePermit,
    _slot: Option<SlotGuard>,
    /// The expiry of the token that opened the stream, and its `exp`. Boxed: a stream
    /// without a token pays one pointer for it.
    expiry: Option<Box<Expiry>>,
    /// Where its events and its life are counted; `None` for the monitor's own streams,
    /// which are not the hub's traffic.
    metrics: Option<Arc<Metrics>>,
}

/// When a stream's token expires.
struct Expiry {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The token's `exp`, sent in the closing event.
    exp: u64,
}

impl LiveEvents {
    /// `events`, ended early by `stop`, holding `permit` (one of the open-stream
    /// permits) and `slot` (the listener's one-stream slot, for `/stream`) while it
    /// lives, counted as an open stream and its events as deliveries in `metrics`.
    pub(crate) fn new(
        events: MessageStream<SseAdapter>,
        stop: Stop,
        permit: OwnedSemaphorePermit,
        slot: Option<SlotGuard>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        if let Some(metrics) = &metrics {
            metrics.stream_opened(Transport::Http, events.channel().id());
        }
        LiveEvents {
            events,
            stop,
            phase: Phase::Live,
            _permit: permit,
            _slot: slot,
            expiry: None,
            metrics,
        }
    }

    /// Counts `n` events handed over as deliveries.
    fn delivered(&self, n: usize) -> Poll<Option<usize>> {
        if let Some(metrics) = &self.metrics {
            metrics.delivered(Transport::Http, n as u64);
        }
        Poll::Ready(Some(n))
    }

    /// These events, ended at `expires` (the `exp` of the token that opened the stream)
    /// after an [`EVENT_TOKEN_EXPIRED`](super::auth::EVENT_TOKEN_EXPIRED) event: the
    /// client reconnects with a fresh token.
    pub(crate) fn expiring_at(mut self, expires: Option<SystemTime>) -> Self {
        if let Some(expires) = expires {
            let exp = expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            let left = expires
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            let sleep = Box::pin(tokio::time::sleep(left));
            self.expiry = Some(Box::new(Expiry { sleep, exp }));
        }
        self
    }
}

impl EventBatches for LiveEvents {
    fn poll_each(
        &mut self,
        cx: &mut Context<'_>,
        mut each: impl FnMut(SseEvent) -> ControlFlow<()>,
    ) -> Poll<Option<usize>> {
        if self.phase == Phase::Live {
            if let Some(expiry) = self.expiry.as_mut() {
                if expiry.sleep.as_mut().poll(cx).is_ready() {
                    self.phase = Phase::Ended;
                    let exp = expiry.exp;
                    let _ = each(SseEvent::new(
                        super::auth::EVENT_TOKEN_EXPIRED,
                        serde_json::json!({ "exp": exp }),
                    ));
                    return Poll::Ready(Some(1));
                }
            }
            // A newer stream first: once it took over, not one more message leaves the
            // queue here (the new stream reads the log from where this one stopped).
            let superseded = self
                .stop
                .superseded
                .as_mut()
                .is_some_and(|superseded| Pin::new(superseded).poll(cx).is_ready());
            if superseded {
                self.phase = Phase::Ended;
            } else {
                // Shutdown is looked at only when the queue is empty: what is queued goes
                // out either way, and a busy stream is not charged for the look per event.
                let handed = self.events.poll_each(cx, &mut each);
                if let Poll::Ready(Some(n)) = handed {
                    return self.delivered(n);
                }
                if handed.is_ready() || !self.stop.is_settled(cx) {
                    return handed;
                }
                self.phase = Phase::Draining;
                if let Some(metrics) = &self.metrics {
                    metrics.disconnected(DisconnectReason::Shutdown);
                }
            }
        }
        if self.phase == Phase::Draining {
            // Nothing more is published once shutdown has settled: the queue only shrinks.
            let mut handed = 0;
            while let Some(event) = self.events.try_recv() {
                handed += 1;
                if each(event).is_break() {
                    return self.delivered(handed);
                }
            }
            self.phase = Phase::Ended;
            if handed > 0 {
                return self.delivered(handed);
            }
        }
        Poll::Ready(None)
    }
}

impl Stream for LiveEvents {
    type Item = SseEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SseEvent>> {
        let mut next = None;
        let handed = self.get_mut().poll_each(cx, |event| {
            next = Some(event);
            ControlFlow::Break(())
        });
        handed.map(|_| next)
    }
}

impl Drop for LiveEvents {
    fn drop(&mut self) {
        // Cut by the end of the grace period, or its client left, while shutting down.
        if self.phase != Phase::Ended && self.stop.shutdown.is_shutdown() {
            self.stop.undelivered.add(self.events.pending());
        }
        if let Some(metrics) = &self.metrics {
            metrics.stream_closed(Transport::Http, self.events.channel().id());
        }
    }
}

impl fmt::Debug for LiveEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveEvents")
            .field("events", &self.events)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
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
