//! Streams of a listener's messages: async (`futures_core::Stream`) and blocking.

use crate::channel::{Adapter, Channel};
use crate::listener::{Batch, Listener, Next};
use crate::message::{Delivery, Message};
use futures_core::Stream;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The adapted messages of one listener, in queue order: the reference's
/// `message_stream`.
///
/// It is both an async [`Stream`] that any runtime can poll, and a blocking receiver
/// ([`recv`](Self::recv), [`recv_timeout`](Self::recv_timeout), [`iter`](Self::iter)) for
/// programs without one. Either way delivery is push: an empty stream sleeps until a
/// message, a stop or a removal wakes it, and uses no CPU meanwhile.
///
/// Each message taken out of the queue runs the listener's handler, then is adapted.
/// Where the queue lost messages (a `DropOldest` discard, a cut for a consumer too
/// slow), the stream yields a marker instead; no handler runs on it (see
/// [`crate::listener`]).
///
/// # When it ends
/// * the listener is stopped (at once, or when a handler stops it): the stream ends;
///   messages still queued stay queued for a later stream;
/// * the listener is removed from the channel: it yields one `_eric_channel_closed` item
///   (id 0), then ends;
/// * it takes an `_eric_channel_closed` message (see
///   [`Channel::notify_end`](crate::Channel::notify_end)): it yields it, then ends;
/// * its queue went over its byte bound: it yields the `too_slow` marker, then ends.
///
/// A stream of a listener that is not running ends at once, as in the reference.
pub struct MessageStream<A: Adapter> {
    channel: Channel<A>,
    listener: Arc<Listener>,
    replay: VecDeque<Delivery>,
    /// Messages taken from the queue in one go and not yielded yet (see [`Batch`]);
    /// boxed, as most streams sleep most of the time.
    batch: Option<Box<Batch>>,
    pause: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    rest_until: Option<Instant>,
    finished: bool,
    remove_listener_on_drop: bool,
}

/// Why [`MessageStream::recv_timeout`] returned no item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time; the stream goes on.
    Timeout,
    /// The stream has ended.
    Ended,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvTimeoutError::Timeout => "no message arrived before the timeout",
            RecvTimeoutError::Ended => "the stream has ended",
        })
    }
}

impl std::error::Error for RecvTimeoutError {}

// The channel's stream constructors live here, beside the stream, so that the channel's
// file does not depend on this one (the stream holds its channel).
impl<A: Adapter> Channel<A> {
    /// A stream of the listener's messages, adapted. See [`MessageStream`] for when it ends.
    pub fn message_stream(&self, listener: &Arc<Listener>) -> MessageStream<A> {
        MessageStream::new(self.clone(), Arc::clone(listener), Default::default())
    }

    /// A stream of the listener's messages for a consumer that last saw the event
    /// with id `last_event_id` (a [`Position`](crate::Position) in its text form, as a
    /// client sends it back in `Last-Event-ID`): first the retained entries of the log
    /// after that position that were addressed to the listener and have left its queue,
    /// then its queue. No message comes twice and none is skipped silently: when the log
    /// cannot cover the position (trimmed, another epoch, past the end, not a position),
    /// the stream starts with one `_eric_error` marker; see [`crate::log`] for its
    /// payload.
    pub fn message_stream_after(
        &self,
        listener: &Arc<Listener>,
        last_event_id: &str,
    ) -> MessageStream<A> {
        let replay = self.replay_for(listener, last_event_id);
        MessageStream::new(self.clone(), Arc::clone(listener), replay)
    }

    /// Adds a new listener, starts it and streams it. The listener lives as long as the
    /// stream: dropping the stream removes it from the channel.
    pub fn watch(&self) -> MessageStream<A> {
        let listener = self.add_listener_with(self.queue_config());
        listener.start();
        self.message_stream(&listener).removing_listener_on_drop()
    }

    /// [`watch`](Self::watch) for a consumer that last saw the event with id
    /// `last_event_id`: the retained broadcasts after that position come first, then
    /// the live ones, with none twice and none skipped silently (a gap starts the
    /// stream with a marker, as in [`message_stream_after`](Self::message_stream_after)).
    pub fn watch_after(&self, last_event_id: &str) -> MessageStream<A> {
        let (listener, replay) = self
            .add_listener_after(last_event_id, None)
            .expect("a generated id is never taken");
        listener.start();
        MessageStream::new(self.clone(), listener, replay).removing_listener_on_drop()
    }

    /// [`watch`](Self::watch) or [`watch_after`](Self::watch_after) with a listener the
    /// caller built (its id chosen so that it cannot meet ids given elsewhere); fails if
    /// its id is taken on this channel.
    pub fn watch_as(
        &self,
        listener: Listener,
        last_event_id: Option<&str>,
    ) -> crate::Result<MessageStream<A>> {
        let (listener, replay) = match last_event_id {
            Some(id) => self.add_listener_after(id, Some(listener))?,
            None => (self.register_listener(listener)?, VecDeque::new()),
        };
        listener.start();
        Ok(MessageStream::new(self.clone(), listener, replay).removing_listener_on_drop())
    }
}

impl<A: Adapter> MessageStream<A> {
    pub(crate) fn new(
        channel: Channel<A>,
        listener: Arc<Listener>,
        replay: VecDeque<Delivery>,
    ) -> Self {
        MessageStream {
            channel,
            listener,
            replay,
            batch: None,
            pause: None,
            rest_until: None,
            finished: false,
            remove_listener_on_drop: false,
        }
    }

    /// Whether the stream's next item is a `history_gap` marker: it resumed from a
    /// position its channel's log could not cover (see
    /// [`Channel::message_stream_after`]), and has not yielded the marker yet.
    pub fn starts_with_gap(&self) -> bool {
        self.replay
            .front()
            .is_some_and(|first| first.message.msg_type == crate::MESSAGE_TYPE_ERROR)
    }

    /// Makes the stream remove its listener from the channel when dropped (what
    /// [`Channel::watch`](crate::Channel::watch) does).
    pub fn removing_listener_on_drop(mut self) -> Self {
        self.remove_listener_on_drop = true;
        self
    }

    /// The listener this stream consumes.
    pub fn listener(&self) -> &Arc<Listener> {
        &self.listener
    }

    /// The channel this stream belongs to.
    pub fn channel(&self) -> &Channel<A> {
        &self.channel
    }

    /// Whether the stream has ended.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// How many messages the stream took from its listener's queue and has not yielded
    /// yet: an async stream takes what is queued in one go. Dropped with the stream,
    /// they go back to the front of the queue.
    pub fn held(&self) -> usize {
        self.batch.as_ref().map_or(0, |batch| batch.len())
    }

    /// How many messages for this stream it has not yielded yet: those it
    /// [`held`](Self::held) and those still in its listener's queue.
    pub fn pending(&self) -> usize {
        self.held() + self.listener.queue_len()
    }

    /// Polls for the items ready now and hands each to `each`, in order, until `each`
    /// breaks (the rest wait for the next poll), none is ready or the stream ends: the
    /// same items as [`poll_next`](Stream::poll_next) called in a loop, for a writer that
    /// sends what is ready in one go and would otherwise pay one poll per item.
    ///
    /// `Ready(Some(n))` when it handed over `n >= 1` items, `Ready(None)` once the stream
    /// has ended, `Pending` when no item is ready (the task is woken when one is).
    pub fn poll_each(
        &mut self,
        cx: &mut Context<'_>,
        mut each: impl FnMut(A::Output) -> ControlFlow<()>,
    ) -> Poll<Option<usize>> {
        let mut handed = 0;
        loop {
            // What the last poll took in a batch goes out without the rest of `poll_next`;
            // the replay, a paced stream, or a batch to take go through it.
            let batched = if self.finished {
                None
            } else {
                self.take_batched()
            };
            let next = match batched {
                Some(item) => Poll::Ready(item),
                None => Pin::new(&mut *self).poll_next(cx),
            };
            match next {
                Poll::Ready(Some(item)) => {
                    handed += 1;
                    if each(item).is_break() {
                        break;
                    }
                }
                Poll::Ready(None) if handed == 0 => return Poll::Ready(None),
                Poll::Pending if handed == 0 => return Poll::Pending,
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        Poll::Ready(Some(handed))
    }

    /// The next message taken in a batch, if the listener still runs; a stopped
    /// listener gets the batch back in its queue and the stream ends.
    fn take_batched(&mut self) -> Option<Option<A::Output>> {
        let batch = self.batch.as_mut().filter(|batch| !batch.is_empty())?;
        if !self.listener.is_running() {
            self.listener.give_back(batch);
            self.finished = true;
            return Some(None);
        }
        let delivery = batch.pop()?;
        Some(self.accept(Next::Message(delivery)))
    }

    /// Whether the stream may take what is queued in one go: a handler runs (and may
    /// stop the listener) as each message is yielded, and a stream delay paces them,
    /// so with either they come one at a time.
    fn batches(&self) -> bool {
        !self.listener.has_handler() && self.channel.stream_delay().is_none()
    }

    /// Turns what the queue gave into the stream's next item (or its end).
    fn accept(&mut self, next: Next) -> Option<A::Output> {
        let delivery = match next {
            Next::Message(delivery) => {
                self.listener.handle(&delivery.message);
                if delivery.is_closed() {
                    self.finished = true;
                }
                delivery
            }
            // Handlers see messages, not markers.
            Next::Gap(marker) => marker,
            Next::TooSlow(marker) => {
                self.finished = true;
                marker
            }
            Next::Stopped => {
                self.finished = true;
                return None;
            }
            Next::Removed => {
                self.finished = true;
                Delivery {
                    id: 0,
                    epoch: self.channel.epoch(),
                    message: Arc::new(Message::closed()),
                }
            }
        };
        Some(self.channel.adapter().adapt_owned(delivery))
    }

    /// The next replayed delivery. Replays end where the original stream ended: at an
    /// `_eric_channel_closed`. Handlers ran when the messages were first delivered and
    /// do not run again.
    fn take_replayed(&mut self) -> Option<A::Output> {
        let delivery = self.replay.pop_front()?;
        if delivery.is_closed() {
            self.finished = true;
        }
        Some(self.channel.adapter().adapt_owned(delivery))
    }

    fn delay(&self) -> Option<Duration> {
        self.channel.stream_delay().map(|d| d.delay)
    }

    /// The next item, blocking the thread until there is one; `None` once the stream ended.
    pub fn recv(&mut self) -> Option<A::Output> {
        self.recv_until(None).ok()
    }

    /// The next item, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<A::Output, RecvTimeoutError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    /// The next item if one is ready now; `None` if there is none yet or the stream ended
    /// (tell them apart with [`is_finished`](Self::is_finished)). Ignores the stream delay.
    pub fn try_recv(&mut self) -> Option<A::Output> {
        if self.finished {
            return None;
        }
        if let Some(item) = self.take_replayed() {
            return Some(item);
        }
        if let Some(item) = self.take_batched() {
            return item;
        }
        let next = self.listener.try_next(true)?;
        self.accept(next)
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<A::Output, RecvTimeoutError> {
        if self.finished {
            return Err(RecvTimeoutError::Ended);
        }
        if let Some(rest_until) = self.rest_until.take() {
            let now = Instant::now();
            if rest_until > now {
                if deadline.is_some_and(|d| d < rest_until) {
                    self.rest_until = Some(rest_until);
                    std::thread::sleep(deadline.unwrap().saturating_duration_since(now));
                    return Err(RecvTimeoutError::Timeout);
                }
                std::thread::sleep(rest_until - now);
            }
        }
        let item = match self.take_replayed() {
            Some(item) => Some(item),
            None => match self.take_batched() {
                Some(item) => item,
                None => match self.listener.wait_next(deadline) {
                    Some(next) => self.accept(next),
                    None => return Err(RecvTimeoutError::Timeout),
                },
            },
        };
        match item {
            Some(item) => {
                self.rest_until = self.delay().map(|d| Instant::now() + d);
                Ok(item)
            }
            None => Err(RecvTimeoutError::Ended),
        }
    }

    /// A blocking iterator over the stream's items; it ends with the stream.
    pub fn iter(&mut self) -> Iter<'_, A> {
        Iter { stream: self }
    }
}

impl<A: Adapter> Stream for MessageStream<A> {
    type Item = A::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<A::Output>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(pause) = this.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.pause = None;
        }
        let item = if let Some(item) = this.take_replayed() {
            Some(item)
        } else if let Some(item) = this.take_batched() {
            item
        } else {
            let batch = this.batches().then_some(&mut this.batch);
            match this.listener.poll_next(cx, batch) {
                Poll::Ready(next) => this.accept(next),
                Poll::Pending => return Poll::Pending,
            }
        };
        if item.is_some() {
            if let Some(delay) = this.channel.stream_delay() {
                this.pause = Some(delay.timer.sleep(delay.delay));
            }
        }
        Poll::Ready(item)
    }
}

impl<A: Adapter> Drop for MessageStream<A> {
    fn drop(&mut self) {
        if let Some(batch) = self.batch.as_mut() {
            self.listener.give_back(batch);
        }
        if self.remove_listener_on_drop {
            // Already gone if it was removed while the stream ran.
            let _ = self.channel.remove_listener(self.listener.id());
        }
    }
}

impl<A: Adapter> fmt::Debug for MessageStream<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("channel", &self.channel.id())
            .field("listener", &self.listener.id())
            .field("replay", &self.replay.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// A blocking iterator over a [`MessageStream`]; see [`MessageStream::iter`].
#[derive(Debug)]
pub struct Iter<'a, A: Adapter> {
    stream: &'a mut MessageStream<A>,
}

impl<A: Adapter> Iterator for Iter<'_, A> {
    type Item = A::Output;

    fn next(&mut self) -> Option<A::Output> {
        self.stream.recv()
    }
}
