//! The channel: an eric-core `Channel` plus a rayon pool of its own.

use crate::adapter::ProcessingAdapter;
use crate::error::{ProcessingError, Result};
use crate::stats::{Counters, ProcessingStats};
use crate::stream::ProcessingStream;
use eric_core::{Adapter, Channel, Listener, QueueConfig, StreamDelay};
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// How many messages per worker a stream may have taken and not yet yielded, unless
/// [`DataProcessingChannelBuilder::window`] says otherwise (but see
/// [`DEFAULT_MIN_WINDOW`]).
pub const DEFAULT_WINDOW_PER_WORKER: usize = 2;

/// The smallest default window. A window of a few messages is enough for slow handlers
/// (the workers only take a message when free, so in-flight work stays at
/// `max_workers`), but with fast handlers the consumer becomes the bottleneck and a tiny
/// window makes tasks stop and restart every few messages, which costs more than the
/// handlers (docs/benchmarks.md has the figures).
pub const DEFAULT_MIN_WINDOW: usize = 64;

/// A channel whose listeners' queues are processed in parallel on a thread pool: the
/// reference's `DataProcessingChannel(max_workers)`.
///
/// It dereferences to the inner [`Channel`], so listeners are added and messages
/// dispatched, broadcast and streamed as with any eric-core channel;
/// [`process_queue`](Self::process_queue) is what it adds. The pool is a rayon
/// [`ThreadPool`] of `max_workers` threads, built once with the channel and shared by
/// all its streams (not rayon's global pool).
///
/// `DataProcessingChannel` is a cheap handle: clones share the channel and the pool.
///
/// ```
/// use eric_core::Message;
/// use eric_processing::DataProcessingChannel;
/// use serde_json::json;
///
/// let channel = DataProcessingChannel::new(2).unwrap();
/// let listener = channel.add_listener();
/// for i in 0..5 {
///     channel.dispatch(listener.id(), Message::new("counter", json!(i))).unwrap();
/// }
/// let values: Vec<i64> = channel
///     .process_queue_ordered(&listener)
///     .into_iter()
///     .map(|result| result.unwrap().data().as_i64().unwrap())
///     .collect();
/// assert_eq!(values, [0, 1, 2, 3, 4]);
/// ```
pub struct DataProcessingChannel<A: Adapter = ProcessingAdapter> {
    channel: Channel<A>,
    pool: Arc<ThreadPool>,
    max_workers: usize,
    window: usize,
    counters: Arc<Counters>,
}

impl<A: Adapter> Clone for DataProcessingChannel<A> {
    fn clone(&self) -> Self {
        DataProcessingChannel {
            channel: self.channel.clone(),
            pool: Arc::clone(&self.pool),
            max_workers: self.max_workers,
            window: self.window,
            counters: Arc::clone(&self.counters),
        }
    }
}

impl DataProcessingChannel<ProcessingAdapter> {
    /// A channel with the default adapter (`{"event", "data"}`, see [`ProcessingAdapter`])
    /// and a pool of `max_workers` threads. Fails if `max_workers` is 0 or the threads
    /// cannot be started.
    pub fn new(max_workers: usize) -> Result<Self> {
        DataProcessingChannel::builder(max_workers).build()
    }

    /// A builder, to choose the adapter, the window, the channel id, the queue
    /// configuration or the stream delay.
    pub fn builder(max_workers: usize) -> DataProcessingChannelBuilder<ProcessingAdapter> {
        DataProcessingChannelBuilder {
            max_workers,
            adapter: ProcessingAdapter,
            window: None,
            id: None,
            queue_config: QueueConfig::default(),
            stream_delay: None,
        }
    }
}

impl<A: Adapter> DataProcessingChannel<A>
where
    A::Output: Send + 'static,
{
    /// A channel whose results are shaped by `adapter` (the reference's `adapt`
    /// override), with a pool of `max_workers` threads.
    pub fn with_adapter(max_workers: usize, adapter: A) -> Result<Self> {
        DataProcessingChannel::builder(max_workers)
            .adapter(adapter)
            .build()
    }

    /// The inner eric-core channel (also reachable through `Deref`).
    pub fn channel(&self) -> &Channel<A> {
        &self.channel
    }

    /// The number of threads of the pool.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// The most messages one stream takes from its queue ahead of its consumer.
    pub fn window(&self) -> usize {
        self.window
    }

    /// What all streams of this channel have done so far.
    pub fn stats(&self) -> ProcessingStats {
        self.counters.snapshot()
    }

    /// Processes the listener's queue on the pool: each message runs the listener's
    /// handler, is adapted, and is yielded as soon as it completes (the reference's
    /// `process_queue`, in `as_completed` order).
    ///
    /// The returned [`ProcessingStream`] is an async `Stream` and a blocking iterator; its documentation says when it ends, what the closed message does and
    /// what dropping it early leaves in the queue. Work starts at once, before the
    /// first item is asked for.
    ///
    /// The listener is normally one of this channel's (its results are shaped by this
    /// channel's adapter). Two streams on the same listener share its queue between them.
    pub fn process_queue(&self, listener: &Arc<Listener>) -> ProcessingStream<A> {
        self.stream(listener, false)
    }

    /// Like [`process_queue`](Self::process_queue), but yields results in queue order:
    /// a result that completes early waits for those before it (at most the window's
    /// worth are held back).
    pub fn process_queue_ordered(&self, listener: &Arc<Listener>) -> ProcessingStream<A> {
        self.stream(listener, true)
    }

    fn stream(&self, listener: &Arc<Listener>, ordered: bool) -> ProcessingStream<A> {
        ProcessingStream::new(
            self.channel.clone(),
            Arc::clone(listener),
            Arc::clone(&self.pool),
            self.max_workers,
            self.window,
            ordered,
            Arc::clone(&self.counters),
        )
    }
}

impl<A: Adapter> Deref for DataProcessingChannel<A> {
    type Target = Channel<A>;

    fn deref(&self) -> &Channel<A> {
        &self.channel
    }
}

impl<A: Adapter> fmt::Debug for DataProcessingChannel<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataProcessingChannel")
            .field("channel", &self.channel)
            .field("max_workers", &self.max_workers)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// Builds a [`DataProcessingChannel`]; see [`DataProcessingChannel::builder`].
///
/// ```
/// use eric_core::{Delivery, QueueConfig, OverflowPolicy};
/// use eric_processing::DataProcessingChannel;
///
/// let channel = DataProcessingChannel::builder(4)
///     .adapter(|d: &Delivery| d.msg_type.to_uppercase())
///     .window(32)
///     .queue_config(QueueConfig::bounded(1000, OverflowPolicy::Reject))
///     .id("jobs")
///     .build()
///     .unwrap();
/// assert_eq!((channel.id(), channel.max_workers(), channel.window()), ("jobs", 4, 32));
/// ```
#[derive(Debug)]
pub struct DataProcessingChannelBuilder<A> {
    max_workers: usize,
    adapter: A,
    window: Option<usize>,
    id: Option<String>,
    queue_config: QueueConfig,
    stream_delay: Option<StreamDelay>,
}

impl<A> DataProcessingChannelBuilder<A> {
    /// Shapes results with `adapter` instead (the reference's `adapt` override).
    pub fn adapter<B: Adapter>(self, adapter: B) -> DataProcessingChannelBuilder<B> {
        DataProcessingChannelBuilder {
            max_workers: self.max_workers,
            adapter,
            window: self.window,
            id: self.id,
            queue_config: self.queue_config,
            stream_delay: self.stream_delay,
        }
    }

    /// The most messages one stream may have taken from its queue and not yet yielded
    /// (in progress, or done and waiting for the consumer, or held back for order).
    /// It bounds the memory a slow consumer costs and what dropping a stream early
    /// throws away. Default: [`DEFAULT_WINDOW_PER_WORKER`] × `max_workers`, at least
    /// [`DEFAULT_MIN_WINDOW`]. A window below `max_workers` leaves threads idle; 0 is an
    /// error.
    pub fn window(mut self, window: usize) -> Self {
        self.window = Some(window);
        self
    }

    /// Uses `id` instead of the next generated channel id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The queue configuration of listeners made by `add_listener`
    /// (see [`eric_core::ChannelBuilder::queue_config`]).
    pub fn queue_config(mut self, config: QueueConfig) -> Self {
        self.queue_config = config;
        self
    }

    /// The reference's `stream_delay_seconds`. As in the reference it applies to
    /// `message_stream` only, never to `process_queue`.
    pub fn stream_delay(mut self, delay: StreamDelay) -> Self {
        self.stream_delay = Some(delay);
        self
    }
}

impl<A: Adapter> DataProcessingChannelBuilder<A>
where
    A::Output: Send + 'static,
{
    /// The channel, with its pool started. Fails if `max_workers` or the window is 0,
    /// or if the pool's threads cannot be started.
    pub fn build(self) -> Result<DataProcessingChannel<A>> {
        if self.max_workers == 0 {
            return Err(ProcessingError::ZeroWorkers);
        }
        let window = self.window.unwrap_or_else(|| {
            (DEFAULT_WINDOW_PER_WORKER * self.max_workers).max(DEFAULT_MIN_WINDOW)
        });
        if window == 0 {
            return Err(ProcessingError::ZeroWindow);
        }
        let mut builder = Channel::builder(self.adapter).queue_config(self.queue_config);
        if let Some(id) = self.id {
            builder = builder.id(id);
        }
        if let Some(delay) = self.stream_delay {
            builder = builder.stream_delay(delay);
        }
        let channel = builder.build();
        let name = channel.id().to_owned();
        let pool = ThreadPoolBuilder::new()
            .num_threads(self.max_workers)
            .thread_name(move |i| format!("eric-processing-{name}-{i}"))
            .panic_handler(|payload| {
                // Handlers and adapters run behind catch_unwind; this is a last resort
                // so that a bug here never aborts the process.
                tracing::error!(panic = ?payload.downcast_ref::<&str>(), "worker task panicked");
            })
            .build()
            .map_err(|e| ProcessingError::ThreadPool(e.to_string()))?;
        Ok(DataProcessingChannel {
            channel,
            pool: Arc::new(pool),
            max_workers: self.max_workers,
            window,
            counters: Arc::default(),
        })
    }
}
