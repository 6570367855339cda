//! What the streams of a channel have done: the counters they share with their channel.
//!
//! A file of its own because both the channel (which reads them) and its streams (which
//! count into them) use the counters, and neither should depend on the other for them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by a channel and all its streams.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) yielded: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) discarded: AtomicU64,
}

/// What the streams of a [`DataProcessingChannel`](crate::DataProcessingChannel) have
/// done so far, all streams together; read with
/// [`DataProcessingChannel::stats`](crate::DataProcessingChannel::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessingStats {
    /// Items handed to consumers: results and reported panics.
    pub yielded: u64,
    /// Handlers or adapters that panicked. Each panic is an `Err` item of its stream
    /// (unless the stream was dropped before yielding it).
    pub panicked: u64,
    /// Messages taken from a queue whose results were never yielded, because their
    /// stream was dropped early.
    pub discarded: u64,
}

impl Counters {
    /// The counters' current values.
    pub(crate) fn snapshot(&self) -> ProcessingStats {
        ProcessingStats {
            yielded: self.yielded.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
        }
    }
}
