//! The one error type of eric-processing.

use thiserror::Error;

/// Everything that can go wrong in eric-processing.
///
/// The first three cases come from building a
/// [`DataProcessingChannel`](crate::DataProcessingChannel); the panic cases are items of a
/// [`ProcessingStream`](crate::ProcessingStream): a handler or adapter that panicked on
/// one message is reported in place of that message's result, and the stream goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProcessingError {
    /// `max_workers` was 0: the pool needs at least one thread.
    #[error("max_workers must be at least 1, got 0")]
    ZeroWorkers,
    /// The processing window was 0: no message could ever be taken.
    #[error("the processing window must hold at least 1 message, got 0")]
    ZeroWindow,
    /// rayon could not start the pool's threads; the text is rayon's.
    #[error("could not build the thread pool: {0}")]
    ThreadPool(String),
    /// The listener's handler panicked on a message.
    #[error("the handler of listener {listener} panicked on message {id} ({event}): {message}")]
    HandlerPanicked {
        /// The listener whose handler panicked.
        listener: String,
        /// The type of the message it was handling.
        event: String,
        /// The message's event id in the listener's queue.
        id: u64,
        /// The panic's text (`"<non-string panic payload>"` when it was not a string).
        message: String,
    },
    /// The channel's adapter panicked on a message (after the handler ran).
    #[error("the adapter panicked on message {id} ({event}) of listener {listener}: {message}")]
    AdapterPanicked {
        /// The listener whose message was being adapted.
        listener: String,
        /// The type of the message.
        event: String,
        /// The message's event id in the listener's queue.
        id: u64,
        /// The panic's text (`"<non-string panic payload>"` when it was not a string).
        message: String,
    },
}

impl ProcessingError {
    /// Whether this error reports a panic (of a handler or of the adapter).
    pub fn is_panic(&self) -> bool {
        matches!(
            self,
            ProcessingError::HandlerPanicked { .. } | ProcessingError::AdapterPanicked { .. }
        )
    }
}

/// `Result` with eric-processing's [`ProcessingError`].
pub type Result<T, E = ProcessingError> = std::result::Result<T, E>;
