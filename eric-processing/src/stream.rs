//! The results of one `process_queue` call: a blocking iterator and an async `Stream`.

use crate::error::ProcessingError;
use crate::stats::Counters;
use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use eric_core::{Adapter, Channel, Delivery, Listener};
use futures_core::stream::{FusedStream, Stream};
use parking_lot::Mutex;
use rayon::ThreadPool;
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::iter::FusedIterator;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// What a [`ProcessingStream`] yields: the adapted message, or the panic that replaced it.
pub type ProcessingResult<T> = Result<T, ProcessingError>;

/// How many messages one worker task processes before it hands its thread back to the
/// pool (the consumer starts a fresh task at once). Keeps several streams that share a
/// pool fair to each other, at one task spawn per this many messages.
const TASK_BUDGET: usize = 64;

/// What a worker task tells the consumer.
enum Event<T> {
    /// A message was processed; `seq` is its position among the messages this stream took.
    Done {
        seq: u64,
        result: ProcessingResult<T>,
    },
    /// A worker task ended (sent even if it unwinds).
    Exit,
}

/// What the worker tasks of one stream share, guarded by one small lock so that taking a
/// message, numbering it and spotting the end-of-stream message happen as one step.
#[derive(Default)]
struct TakeState {
    next_seq: u64,
    closed: bool,
    cancelled: bool,
}

/// The state shared between a stream and its worker tasks.
struct Shared<A: Adapter> {
    channel: Channel<A>,
    listener: Arc<Listener>,
    take: Mutex<TakeState>,
    /// Messages taken from the queue and not yet yielded to the consumer.
    outstanding: AtomicUsize,
    window: usize,
    tx: Sender<Event<A::Output>>,
    waker: AtomicWaker,
    panicked: AtomicU64,
    totals: Arc<Counters>,
}

impl<A: Adapter> Shared<A>
where
    A::Output: Send + 'static,
{
    /// The next message to process, numbered; `None` when the task should stop: the
    /// queue is empty, the window is full, the end-of-stream message was met or the
    /// stream was dropped.
    fn take(&self) -> Option<(u64, Delivery)> {
        let mut state = self.take.lock();
        if state.cancelled || state.closed {
            return None;
        }
        if self.outstanding.load(Ordering::Acquire) >= self.window {
            return None;
        }
        let delivery = self.listener.take_next()?;
        if delivery.is_closed() {
            state.closed = true;
            return None;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        Some((seq, delivery))
    }

    /// Runs the handler, then the adapter, each behind `catch_unwind`.
    fn process(&self, delivery: &Delivery) -> ProcessingResult<A::Output> {
        let handled = catch_unwind(AssertUnwindSafe(|| self.listener.handle(&delivery.message)));
        if let Err(payload) = handled {
            self.count_panic();
            let message = panic_text(payload.as_ref());
            tracing::warn!(listener = %self.listener.id(), event = %delivery.msg_type,
                id = delivery.id, panic = %message, "handler panicked");
            return Err(ProcessingError::HandlerPanicked {
                listener: self.listener.id().to_owned(),
                event: delivery.msg_type.clone(),
                id: delivery.id,
                message,
            });
        }
        catch_unwind(AssertUnwindSafe(|| self.channel.adapter().adapt(delivery))).map_err(
            |payload| {
                self.count_panic();
                let message = panic_text(payload.as_ref());
                tracing::warn!(listener = %self.listener.id(), event = %delivery.msg_type,
                    id = delivery.id, panic = %message, "adapter panicked");
                ProcessingError::AdapterPanicked {
                    listener: self.listener.id().to_owned(),
                    event: delivery.msg_type.clone(),
                    id: delivery.id,
                    message,
                }
            },
        )
    }

    fn count_panic(&self) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
        self.totals.panicked.fetch_add(1, Ordering::Relaxed);
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Tells the consumer that a worker task ended, even when it ends by unwinding, so that
/// the consumer never waits for a task that is gone.
struct ExitNotice<A: Adapter>(Arc<Shared<A>>);

impl<A: Adapter> Drop for ExitNotice<A> {
    fn drop(&mut self) {
        // The consumer may be gone already; then nobody needs the notice.
        let _ = self.0.tx.send(Event::Exit);
        self.0.waker.wake();
    }
}

/// One worker task: takes messages from the queue and processes them until there is
/// nothing to take or its budget is spent.
fn run_worker<A: Adapter>(shared: Arc<Shared<A>>)
where
    A::Output: Send + 'static,
{
    let notice = ExitNotice(shared);
    let shared = &notice.0;
    for _ in 0..TASK_BUDGET {
        let Some((seq, delivery)) = shared.take() else {
            break;
        };
        let result = shared.process(&delivery);
        if shared.tx.send(Event::Done { seq, result }).is_err() {
            break; // the stream was dropped
        }
        shared.waker.wake();
    }
}

/// The results of [`DataProcessingChannel::process_queue`](crate::DataProcessingChannel::process_queue)
/// (or its ordered twin): each message of the listener's queue, run through the
/// listener's handler on the channel's thread pool, then adapted.
///
/// It is an async [`Stream`] that any executor can poll (it is woken by the worker that
/// finishes a message; it never spins), and a blocking receiver for threaded programs:
/// [`recv`](Self::recv), [`iter`](Self::iter), `for result in stream`. Items are
/// `Ok(output)`, or the [`ProcessingError`] that replaced a message whose handler or
/// adapter panicked.
///
/// # Order
/// [`process_queue`](crate::DataProcessingChannel::process_queue) yields results as they
/// complete (the reference's `as_completed`);
/// [`process_queue_ordered`](crate::DataProcessingChannel::process_queue_ordered) yields
/// them in queue order, holding back results that finish early.
///
/// # How work is fed
/// Work starts when the stream is created, before the first item is asked for. Up to
/// `max_workers` worker tasks (rayon jobs on the channel's pool, not threads) take
/// messages from the listener's queue, one at a time and only when free to process
/// one, so the queue itself balances the load between them. At most
/// [`window`](crate::DataProcessingChannelBuilder::window) messages are taken and not
/// yet yielded: when the consumer falls behind, the tasks stop taking and end, and the
/// consumer starts new ones once it has caught up by half a window (feeding is driven
/// by its `recv` and `poll_next` calls; there is no feeder thread). A task also ends after 64 messages
/// and is replaced at once, so that streams sharing a pool take turns. The reference,
/// by contrast, submits the whole queue to its executor at once.
///
/// # When it ends
/// * The queue is empty and every message taken has been yielded. Messages that arrive
///   while the stream runs are processed too: before ending, the stream looks at the
///   queue once more.
/// * It meets an `_eric_channel_closed` message (see
///   [`Channel::notify_end`](eric_core::Channel::notify_end)): it takes no further
///   message, yields the ones in progress, and ends. The closed message is consumed
///   from the queue but neither handled nor yielded; [`met_closed`](Self::met_closed)
///   tells that the stream ended this way. Messages queued after it stay queued.
/// * The listener is removed from its channel: its queue is discarded, so the stream
///   yields the messages in progress and ends.
///
/// The listener's running flag is not looked at (as in the reference: a stopped
/// listener's queue is processed too), and the channel's stream delay does not apply
/// (the reference applies it to `message_stream` only).
///
/// A handler runs on a pool thread: it may dispatch into any channel, but it must not
/// wait for a `ProcessingStream` of the same channel, whose work would need the very
/// threads that wait.
///
/// # Dropping it early
/// Dropping the stream stops taking messages at once and returns without waiting.
/// Messages not yet taken stay in the queue. Messages already taken and not yet yielded
/// (at most the window) are lost: those in progress finish on the pool and their results
/// are thrown away; they are counted in
/// [`ProcessingStats::discarded`](crate::ProcessingStats::discarded).
pub struct ProcessingStream<A: Adapter>
where
    A::Output: Send + 'static,
{
    shared: Arc<Shared<A>>,
    rx: Receiver<Event<A::Output>>,
    pool: Arc<ThreadPool>,
    max_workers: usize,
    /// Worker tasks started and not yet reported ended.
    active: usize,
    ordered: bool,
    /// Results ready to yield. Ordered: slot `i` holds the result of message
    /// `next_seq + i`, `None` while that message is in progress.
    ready: VecDeque<Option<ProcessingResult<A::Output>>>,
    next_seq: u64,
    yielded: u64,
    finished: bool,
}

impl<A: Adapter> ProcessingStream<A>
where
    A::Output: Send + 'static,
{
    pub(crate) fn new(
        channel: Channel<A>,
        listener: Arc<Listener>,
        pool: Arc<ThreadPool>,
        max_workers: usize,
        window: usize,
        ordered: bool,
        totals: Arc<Counters>,
    ) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            channel,
            listener,
            take: Mutex::new(TakeState::default()),
            outstanding: AtomicUsize::new(0),
            window,
            tx,
            waker: AtomicWaker::new(),
            panicked: AtomicU64::new(0),
            totals,
        });
        let mut stream = ProcessingStream {
            shared,
            rx,
            pool,
            max_workers,
            active: 0,
            ordered,
            ready: VecDeque::new(),
            next_seq: 0,
            yielded: 0,
            finished: false,
        };
        stream.feed();
        stream
    }

    /// The listener whose queue this stream processes.
    pub fn listener(&self) -> &Arc<Listener> {
        &self.shared.listener
    }

    /// Whether the stream yields results in queue order.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// Whether the stream has ended.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the stream met an `_eric_channel_closed` message (and so ends, or ended,
    /// because of it).
    pub fn met_closed(&self) -> bool {
        self.shared.take.lock().closed
    }

    /// Items yielded so far (results and panics).
    pub fn yielded(&self) -> u64 {
        self.yielded
    }

    /// Handler and adapter panics of this stream so far (each is, or will be, an `Err` item).
    pub fn panicked(&self) -> u64 {
        self.shared.panicked.load(Ordering::Relaxed)
    }

    /// Messages taken from the queue and not yet yielded: in progress, or done and
    /// waiting for the consumer. Never more than the channel's window.
    pub fn in_flight(&self) -> usize {
        self.shared.outstanding.load(Ordering::Acquire)
    }

    /// The next result, blocking the thread until one is ready; `None` once the stream
    /// ended.
    pub fn recv(&mut self) -> Option<ProcessingResult<A::Output>> {
        match self.advance(None) {
            Poll::Ready(item) => item,
            Poll::Pending => unreachable!("a blocking advance never returns Pending"),
        }
    }

    /// A blocking iterator over the results; it ends with the stream.
    ///
    /// `for result in &mut stream` does the same, and `for result in stream` consumes it.
    /// (The stream itself is not an `Iterator`, so that `StreamExt` methods stay
    /// unambiguous for async users.)
    pub fn iter(&mut self) -> Iter<'_, A> {
        Iter { stream: self }
    }

    /// Starts worker tasks while some are missing, the window has room and the queue
    /// has messages.
    fn feed(&mut self) {
        if self.active >= self.max_workers {
            return;
        }
        let outstanding = self.shared.outstanding.load(Ordering::Acquire);
        // Refill only once the consumer has made room for half a window (at least one
        // message): a task then has a run of messages to take, instead of a task spawn
        // per yielded item when the consumer is the bottleneck.
        if outstanding > self.shared.window / 2 || outstanding >= self.shared.window {
            return;
        }
        {
            let state = self.shared.take.lock();
            if state.closed || state.cancelled {
                return;
            }
        }
        let queued = self.shared.listener.queue_len();
        let wanted = (self.max_workers - self.active)
            .min(self.shared.window - outstanding)
            .min(queued);
        for _ in 0..wanted {
            let shared = Arc::clone(&self.shared);
            self.pool.spawn(move || run_worker(shared));
            self.active += 1;
        }
    }

    fn accept(&mut self, event: Event<A::Output>) {
        match event {
            Event::Exit => self.active -= 1,
            Event::Done { seq, result } if self.ordered => {
                let slot = (seq - self.next_seq) as usize;
                if self.ready.len() <= slot {
                    self.ready.resize_with(slot + 1, || None);
                }
                self.ready[slot] = Some(result);
            }
            Event::Done { result, .. } => self.ready.push_back(Some(result)),
        }
    }

    fn pop_ready(&mut self) -> Option<ProcessingResult<A::Output>> {
        if !matches!(self.ready.front(), Some(Some(_))) {
            return None;
        }
        let item = self.ready.pop_front().flatten();
        self.next_seq += 1;
        self.yielded += 1;
        self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
        self.shared.totals.yielded.fetch_add(1, Ordering::Relaxed);
        item
    }

    /// The one state machine behind both `Iterator::next` (`cx` is `None`: block the
    /// thread) and `Stream::poll_next`.
    fn advance(
        &mut self,
        mut cx: Option<&mut Context<'_>>,
    ) -> Poll<Option<ProcessingResult<A::Output>>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            if self.active < self.max_workers {
                self.feed();
            }
            if let Some(item) = self.pop_ready() {
                return Poll::Ready(Some(item));
            }
            match self.rx.try_recv() {
                Ok(event) => {
                    self.accept(event);
                    continue;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => unreachable!("the stream holds a sender"),
            }
            if self.active == 0 {
                // feed() started nothing: the queue is empty, the closed message was met
                // or the stream was cancelled. Every taken message has been yielded,
                // since each in-progress one keeps its task active.
                debug_assert!(self.ready.is_empty());
                self.finished = true;
                return Poll::Ready(None);
            }
            match cx.as_deref_mut() {
                None => {
                    let event = self.rx.recv().expect("the stream holds a sender");
                    self.accept(event);
                }
                Some(cx) => {
                    self.shared.waker.register(cx.waker());
                    match self.rx.try_recv() {
                        Ok(event) => self.accept(event),
                        Err(_) => return Poll::Pending,
                    }
                }
            }
        }
    }
}

// Results are moved in and out of the buffer, never pinned in place.
impl<A: Adapter> Unpin for ProcessingStream<A> where A::Output: Send + 'static {}

impl<A: Adapter> Stream for ProcessingStream<A>
where
    A::Output: Send + 'static,
{
    type Item = ProcessingResult<A::Output>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().advance(Some(cx))
    }
}

impl<A: Adapter> FusedStream for ProcessingStream<A>
where
    A::Output: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl<A: Adapter> Drop for ProcessingStream<A>
where
    A::Output: Send + 'static,
{
    fn drop(&mut self) {
        // Under the take lock, so that no task takes a message after this point.
        self.shared.take.lock().cancelled = true;
        let lost = self.shared.outstanding.load(Ordering::Acquire) as u64;
        if lost > 0 {
            self.shared
                .totals
                .discarded
                .fetch_add(lost, Ordering::Relaxed);
        }
    }
}

impl<A: Adapter> fmt::Debug for ProcessingStream<A>
where
    A::Output: Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessingStream")
            .field("listener", &self.shared.listener.id())
            .field("ordered", &self.ordered)
            .field("active_tasks", &self.active)
            .field("in_flight", &self.in_flight())
            .field("yielded", &self.yielded)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// A blocking iterator over a [`ProcessingStream`]; see [`ProcessingStream::iter`].
#[derive(Debug)]
pub struct Iter<'a, A: Adapter>
where
    A::Output: Send + 'static,
{
    stream: &'a mut ProcessingStream<A>,
}

impl<A: Adapter> Iterator for Iter<'_, A>
where
    A::Output: Send + 'static,
{
    type Item = ProcessingResult<A::Output>;

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.recv()
    }
}

impl<A: Adapter> FusedIterator for Iter<'_, A> where A::Output: Send + 'static {}

/// An owning blocking iterator over a [`ProcessingStream`]: `for result in stream`.
#[derive(Debug)]
pub struct IntoIter<A: Adapter>
where
    A::Output: Send + 'static,
{
    stream: ProcessingStream<A>,
}

impl<A: Adapter> IntoIter<A>
where
    A::Output: Send + 'static,
{
    /// The stream, to read its counters or whether it [met the closed
    /// message](ProcessingStream::met_closed).
    pub fn stream(&self) -> &ProcessingStream<A> {
        &self.stream
    }
}

impl<A: Adapter> Iterator for IntoIter<A>
where
    A::Output: Send + 'static,
{
    type Item = ProcessingResult<A::Output>;

    fn next(&mut self) -> Option<Self::Item> {
        self.stream.recv()
    }
}

impl<A: Adapter> FusedIterator for IntoIter<A> where A::Output: Send + 'static {}

impl<A: Adapter> IntoIterator for ProcessingStream<A>
where
    A::Output: Send + 'static,
{
    type Item = ProcessingResult<A::Output>;
    type IntoIter = IntoIter<A>;

    fn into_iter(self) -> IntoIter<A> {
        IntoIter { stream: self }
    }
}

impl<'a, A: Adapter> IntoIterator for &'a mut ProcessingStream<A>
where
    A::Output: Send + 'static,
{
    type Item = ProcessingResult<A::Output>;
    type IntoIter = Iter<'a, A>;

    fn into_iter(self) -> Iter<'a, A> {
        self.iter()
    }
}
