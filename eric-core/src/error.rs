//! The one error type of eric-core.

use thiserror::Error;

/// Everything that can go wrong in eric-core. Each message names the id or input at fault.
///
/// The first four cases are the exceptions of the reference (`InvalidChannelException`,
/// `InvalidListenerException`, `InvalidMessageFormat`, `NoMessagesException`); the others
/// are eric's additions (bounded queues, duplicate ids, reserved names).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// No channel has this id.
    #[error("No channel with id {0}")]
    InvalidChannel(String),
    /// No listener has this id on the channel.
    #[error("Invalid listener {0}")]
    InvalidListener(String),
    /// A command or message could not be understood; the text says what was wrong.
    #[error("{0}")]
    InvalidMessageFormat(String),
    /// The listener's queue is empty, or the listener is stopped.
    #[error("No messages for listener {0}")]
    NoMessages(String),
    /// A channel or listener with this id already exists.
    #[error("Id {0} is already taken")]
    DuplicateId(String),
    /// The listener's bounded queue is full and its policy rejects new messages.
    #[error(
        "Queue of listener {listener} is full ({capacity} messages); the message was rejected"
    )]
    QueueFull {
        /// The listener whose queue is full.
        listener: String,
        /// Its capacity.
        capacity: usize,
    },
    /// The listener's bounded queue overflowed and its policy disconnected it.
    #[error("Listener {listener} was disconnected: its queue overflowed ({capacity} messages)")]
    Disconnected {
        /// The listener that was removed.
        listener: String,
        /// Its capacity.
        capacity: usize,
    },
    /// The listener given to [`Channel::dispatch_to`](crate::Channel::dispatch_to) is not
    /// one of that channel's listeners.
    #[error("Listener {listener} is not a listener of channel {channel}")]
    ForeignListener {
        /// The listener's id.
        listener: String,
        /// The channel it was dispatched on.
        channel: String,
    },
    /// The queues sharing a [`QueueLedger`](crate::QueueLedger) hold its budget or
    /// more: the message was refused, not queued, until consumers catch up.
    #[error("the queues are full ({queued} bytes queued over all channels, the budget is {limit}): the message was refused; retry when subscribers catch up")]
    Overloaded {
        /// Bytes queued.
        queued: usize,
        /// The budget.
        limit: usize,
    },
    /// `stop` and `remove` are built-in actions and cannot be replaced.
    #[error("Action {0:?} is reserved and cannot be overridden")]
    ReservedAction(String),
    /// A message type that cannot be the name of an SSE event: it holds a line break or
    /// a NUL. See [`check_message_type`](crate::check_message_type).
    #[error(
        "message type {msg_type:?} contains {what}; it becomes the SSE event name, which cannot hold one"
    )]
    InvalidMessageType {
        /// The type as it was given.
        msg_type: String,
        /// What it holds that an event name cannot, e.g. `a NUL character (U+0000)`.
        what: &'static str,
    },
}

/// `Result` with eric-core's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
