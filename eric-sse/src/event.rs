//! [`SseEvent`]: the event a server sends.

use std::fmt;
use std::sync::Arc;

use eric_core::{Delivery, Epoch, Message, Position};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reconnection time, in milliseconds, of an event that sets none: 5, as in the
/// reference (`SSEChannel(retry_timeout_milliseconds=5)`).
///
/// Over HTTP that is far too short for a browser, which is why
/// `http::SseBody` (feature `http`) raises it to a floor (1 s by default).
pub const DEFAULT_RETRY_MS: u64 = 5;

/// One server-sent event: a shared [`Message`] (its type is the event name, its payload
/// the data), an optional id and a reconnection time.
///
/// The message is held in an [`Arc`]: the same message broadcast to 10,000 listeners
/// becomes 10,000 events that share one payload.
///
/// Serialised with serde it reads exactly `{"event": <type>, "retry": <ms>, "data":
/// <payload>}`, in that order: the line the socket protocol of the reference writes for
/// each message. The id is deliberately left out of that form, so Python clients of the
/// socket protocol see what they always saw; it is written only by the
/// `text/event-stream` [`Encoder`](crate::Encoder). Deserialising that form gives an event
/// with no id (`retry` defaults to [`DEFAULT_RETRY_MS`] and `data` to `null` when absent).
///
/// ```
/// use eric_sse::SseEvent;
/// use serde_json::json;
///
/// let event = SseEvent::new("price", json!({"eur": 12})).with_id(7);
/// assert_eq!(event.event(), "price");
/// assert_eq!(event.id(), Some(7));
/// assert_eq!(
///     serde_json::to_string(&event).unwrap(),
///     r#"{"event":"price","retry":5,"data":{"eur":12}}"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    message: Arc<Message>,
    id: Option<u64>,
    /// The epoch of the log `id` is an offset in, for events of a channel.
    epoch: Option<Epoch>,
    retry: u64,
}

impl SseEvent {
    /// An event named `event` carrying `data`, with no id and the default retry.
    pub fn new(event: impl Into<String>, data: impl Into<Value>) -> Self {
        SseEvent::from_message(Arc::new(Message::new(event, data)))
    }

    /// An event for a shared message: the message type is the event name, the payload
    /// the data. No payload is copied.
    pub fn from_message(message: Arc<Message>) -> Self {
        SseEvent {
            message,
            id: None,
            epoch: None,
            retry: DEFAULT_RETRY_MS,
        }
    }

    /// This event with the id `id` (written as `id:`; a client sends the last one it saw
    /// back as `Last-Event-ID` when it reconnects).
    #[must_use]
    pub fn with_id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self.epoch = None;
        self
    }

    /// This event with the id of a position in a channel's log, written
    /// `<epoch>-<offset>` (see [`eric_core::log`]): what [`SseChannel`](crate::SseChannel)
    /// events carry, so a client's `Last-Event-ID` names a position no other epoch has.
    #[must_use]
    pub fn with_position(mut self, position: Position) -> Self {
        self.id = Some(position.offset);
        self.epoch = Some(position.epoch);
        self
    }

    /// This event with a reconnection time of `retry_ms` milliseconds.
    #[must_use]
    pub fn with_retry(mut self, retry_ms: u64) -> Self {
        self.retry = retry_ms;
        self
    }

    /// The event name: the message type.
    pub fn event(&self) -> &str {
        &self.message.msg_type
    }

    /// The data: the message payload.
    pub fn data(&self) -> &Value {
        &self.message.payload
    }

    /// The event id, if any: for an event with a [`position`](Self::position), its
    /// offset.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// The position in a channel's log this event's id names, if it has one.
    pub fn position(&self) -> Option<Position> {
        Some(Position::new(self.epoch?, self.id?))
    }

    /// The reconnection time in milliseconds.
    pub fn retry(&self) -> u64 {
        self.retry
    }

    /// The shared message.
    pub fn message(&self) -> &Arc<Message> {
        &self.message
    }

    /// The shared message, giving up the event.
    pub fn into_message(self) -> Arc<Message> {
        self.message
    }
}

impl From<Message> for SseEvent {
    fn from(message: Message) -> Self {
        SseEvent::from_message(Arc::new(message))
    }
}

impl From<Arc<Message>> for SseEvent {
    fn from(message: Arc<Message>) -> Self {
        SseEvent::from_message(message)
    }
}

/// The event for a delivery: its message, shared, with the delivery's position as
/// event id.
impl From<Delivery> for SseEvent {
    fn from(delivery: Delivery) -> Self {
        let position = delivery.position();
        SseEvent::from_message(delivery.message).with_position(position)
    }
}

/// The event for a delivery: its message, shared, with the delivery's id as event id.
impl From<&Delivery> for SseEvent {
    fn from(delivery: &Delivery) -> Self {
        SseEvent::from_message(Arc::clone(&delivery.message)).with_id(delivery.id)
    }
}

impl Serialize for SseEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("SseEvent", 3)?;
        state.serialize_field("event", self.event())?;
        state.serialize_field("retry", &self.retry)?;
        state.serialize_field("data", self.data())?;
        state.end()
    }
}

const FIELDS: &[&str] = &["event", "retry", "data"];

enum Field {
    Event,
    Retry,
    Data,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl Visitor<'_> for FieldVisitor {
            type Value = Field;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`event`, `retry` or `data`")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "event" => Field::Event,
                    "retry" => Field::Retry,
                    "data" => Field::Data,
                    // Unknown keys are skipped, so a later protocol may add some.
                    _ => Field::Other,
                })
            }
        }

        deserializer.deserialize_identifier(FieldVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = SseEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an SSE event object {"event": ..., "retry": ..., "data": ...}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SseEvent, A::Error> {
        let mut event: Option<String> = None;
        let mut retry: Option<u64> = None;
        let mut data: Option<Value> = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Event if event.is_some() => return Err(de::Error::duplicate_field("event")),
                Field::Retry if retry.is_some() => return Err(de::Error::duplicate_field("retry")),
                Field::Data if data.is_some() => return Err(de::Error::duplicate_field("data")),
                Field::Event => event = Some(map.next_value()?),
                Field::Retry => retry = Some(map.next_value()?),
                Field::Data => data = Some(map.next_value()?),
                Field::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let event = event.ok_or_else(|| de::Error::missing_field("event"))?;
        Ok(SseEvent::new(event, data.unwrap_or(Value::Null))
            .with_retry(retry.unwrap_or(DEFAULT_RETRY_MS)))
    }
}

impl<'de> Deserialize<'de> for SseEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("SseEvent", FIELDS, EventVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_exactly_event_retry_data_in_order_without_id() {
        let event = SseEvent::new("t", json!([1, "x"])).with_id(3).with_retry(9);
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"t","retry":9,"data":[1,"x"]}"#
        );
    }

    #[test]
    fn deserialises_the_socket_protocol_line_with_no_id() {
        let line = r#"{"event": "t", "retry": 5, "data": {"a": null}}"#;
        let event: SseEvent = serde_json::from_str(line).unwrap();
        assert_eq!(event, SseEvent::new("t", json!({"a": null})));
        assert_eq!(event.id(), None);
    }

    #[test]
    fn deserialising_defaults_retry_and_data_and_requires_event() {
        let event: SseEvent = serde_json::from_str(r#"{"event": "t"}"#).unwrap();
        assert_eq!(event.retry(), DEFAULT_RETRY_MS);
        assert_eq!(event.data(), &Value::Null);
        let error = serde_json::from_str::<SseEvent>(r#"{"data": 1}"#).unwrap_err();
        assert!(
            error.to_string().contains("missing field `event`"),
            "{error}"
        );
    }

    #[test]
    fn events_made_from_one_message_share_its_payload() {
        let message = Arc::new(Message::new("t", json!({"big": "payload"})));
        let a = SseEvent::from_message(Arc::clone(&message)).with_id(1);
        let b = SseEvent::from_message(Arc::clone(&message)).with_id(2);
        assert!(Arc::ptr_eq(a.message(), b.message()));
        assert_eq!(Arc::strong_count(&message), 3);
    }
}
