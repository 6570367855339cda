//! Messages: a type and a JSON payload.

use crate::error::{Error, Result};
use crate::log::{Epoch, Position};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

/// The reserved message type that marks the end of a stream.
///
/// [`Channel::notify_end`](crate::Channel::notify_end) broadcasts it, and a stream whose
/// listener is removed yields one message of this type before it ends.
pub const MESSAGE_TYPE_CLOSED: &str = "_eric_channel_closed";

/// The reserved message type for errors reported in-band, inside a stream.
pub const MESSAGE_TYPE_ERROR: &str = "_eric_error";

/// Checks that `msg_type` can be the name of an SSE event, as every transport that
/// publishes for SSE streams must before it queues a message.
///
/// A type becomes the `event:` line of the event: a line break (CR or LF) would end that
/// line early, so the stream could only skip the event, and a NUL has no place in it
/// either. Refusing such a type when it is published, with one error whichever the
/// transport, is the only way its sender learns of it.
///
/// ```
/// use eric_core::{check_message_type, Error};
///
/// assert!(check_message_type("price-update").is_ok());
/// let error = check_message_type("a\nb").unwrap_err();
/// assert!(matches!(error, Error::InvalidMessageType { .. }));
/// assert!(error.to_string().contains("line break"));
/// ```
pub fn check_message_type(msg_type: &str) -> Result<()> {
    let what = match msg_type
        .bytes()
        .find(|b| matches!(b, b'\r' | b'\n' | b'\0'))
    {
        None => return Ok(()),
        Some(b'\r') => "a line break (carriage return, U+000D)",
        Some(b'\n') => "a line break (line feed, U+000A)",
        Some(_) => "a NUL character (U+0000)",
    };
    Err(Error::InvalidMessageType {
        msg_type: msg_type.to_owned(),
        what,
    })
}

/// A message: a type that says what it is, and a JSON payload.
///
/// The payload may be any JSON value: object, array, string, number, boolean or null
/// (the reference accepts `dict | list | str | int | float | None`).
///
/// Serialised with serde it reads `{"type": ..., "payload": ...}`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// What the message is; receivers and adapters select on it.
    #[serde(rename = "type")]
    pub msg_type: String,
    /// The content; `null` when absent.
    #[serde(default)]
    pub payload: Value,
    /// What a transport made of the message, kept for the next reader of the same
    /// shared message (see [`Message::rendering`]).
    #[serde(skip)]
    rendering: Rendering,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("msg_type", &self.msg_type)
            .field("payload", &self.payload)
            .finish()
    }
}

/// One rendering of a message (its bytes on some wire), made by the first reader that
/// needs it and shared by every later one: a message broadcast to N listeners is
/// encoded once, not N times. Its type belongs to the transport that made it; a clone
/// of the message starts without one, and it never takes part in comparisons.
#[derive(Default)]
struct Rendering(OnceLock<Box<dyn Any + Send + Sync>>);

impl Clone for Rendering {
    fn clone(&self) -> Self {
        Rendering::default()
    }
}

impl PartialEq for Rendering {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Message {
    /// A message of type `msg_type` carrying `payload`.
    pub fn new(msg_type: impl Into<String>, payload: impl Into<Value>) -> Self {
        Message {
            msg_type: msg_type.into(),
            payload: payload.into(),
            rendering: Rendering::default(),
        }
    }

    /// The rendering of type `T` this message carries, made by `render` if it has none
    /// yet; `None` when it already carries a rendering of another type.
    ///
    /// A transport that writes the same shared message to many readers (an SSE stream
    /// per subscriber) renders it once here and hands every reader the same bytes. The
    /// rendering must depend only on the message and on what `T` itself records (so a
    /// reader can check it fits before using it): change the fields of a message after
    /// it was rendered, and the rendering no longer matches them.
    ///
    /// ```
    /// use eric_core::Message;
    ///
    /// let message = Message::new("greeting", "hi");
    /// let first = message.rendering(|| format!("{}: {}", message.msg_type, message.payload));
    /// assert_eq!(first.map(String::as_str), Some("greeting: \"hi\""));
    /// // Made once: a later reader gets the same value.
    /// assert_eq!(message.rendering(|| String::from("other")), first);
    /// // One type per message.
    /// assert_eq!(message.rendering(|| 7_u32), None);
    /// ```
    pub fn rendering<T: Any + Send + Sync>(&self, render: impl FnOnce() -> T) -> Option<&T> {
        self.rendering
            .0
            .get_or_init(|| Box::new(render()))
            .downcast_ref()
    }

    /// A message with a `null` payload.
    pub fn empty(msg_type: impl Into<String>) -> Self {
        Message::new(msg_type, Value::Null)
    }

    /// The end-of-stream message ([`MESSAGE_TYPE_CLOSED`], null payload).
    pub fn closed() -> Self {
        Message::empty(MESSAGE_TYPE_CLOSED)
    }

    /// Whether this is the reserved end-of-stream message.
    pub fn is_closed(&self) -> bool {
        self.msg_type == MESSAGE_TYPE_CLOSED
    }
}

/// A message that carries the id of its sender, so the receiver can answer.
///
/// Converted into a [`Message`], its payload reads
/// `{"sender_id": "<sender>", "payload": <payload>}`, as in the reference.
///
/// ```
/// use eric_core::{Message, SignedMessage};
/// use serde_json::json;
///
/// let signed = SignedMessage::new("1", "hello", "hi");
/// assert_eq!(signed.payload(), json!({"sender_id": "1", "payload": "hi"}));
/// let message: Message = signed.into();
/// assert_eq!(message.msg_type, "hello");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SignedMessage {
    /// The id of the listener that sent the message.
    pub sender_id: String,
    /// The message type.
    pub msg_type: String,
    /// The payload before wrapping.
    pub inner_payload: Value,
}

impl SignedMessage {
    /// A message of `msg_type` with `payload`, signed by `sender_id`.
    pub fn new(
        sender_id: impl Into<String>,
        msg_type: impl Into<String>,
        payload: impl Into<Value>,
    ) -> Self {
        SignedMessage {
            sender_id: sender_id.into(),
            msg_type: msg_type.into(),
            inner_payload: payload.into(),
        }
    }

    /// The wrapped payload: `{"sender_id": ..., "payload": ...}`.
    pub fn payload(&self) -> Value {
        wrap_signed(self.sender_id.clone(), self.inner_payload.clone())
    }
}

fn wrap_signed(sender_id: String, payload: Value) -> Value {
    let mut map = serde_json::Map::with_capacity(2);
    map.insert("sender_id".to_owned(), Value::String(sender_id));
    map.insert("payload".to_owned(), payload);
    Value::Object(map)
}

impl From<SignedMessage> for Message {
    fn from(signed: SignedMessage) -> Self {
        Message::new(
            signed.msg_type,
            wrap_signed(signed.sender_id, signed.inner_payload),
        )
    }
}

/// A message as delivered to one listener: the shared message and its place in the
/// channel's log.
///
/// `id` is the offset the message took in its channel's log (see [`crate::log`]): it
/// grows with every message published on the channel, so one listener's ids grow but
/// skip the offsets of dispatches to other listeners. With the log's `epoch` it makes
/// the [`Position`] that an SSE stream writes as `id:` and that a client sends back as
/// `Last-Event-ID` to resume. Synthetic items (the end of a removed listener's stream)
/// have id 0. Dereferences to the [`Message`].
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The message's offset in its channel's log, from 1; 0 for synthetic items.
    pub id: u64,
    /// The epoch of its channel's log.
    pub epoch: Epoch,
    /// The message; shared with every other listener it was broadcast to.
    pub message: Arc<Message>,
}

impl Delivery {
    /// Its position in the channel's log: what an event stream writes as its id.
    pub fn position(&self) -> Position {
        Position::new(self.epoch, self.id)
    }
}

impl Deref for Delivery {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl From<SignedMessage> for Arc<Message> {
    fn from(signed: SignedMessage) -> Self {
        Arc::new(Message::from(signed))
    }
}
