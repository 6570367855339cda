//! The default adapter: `{"event": type, "data": payload}`, the reference's `adapt`.

use eric_core::{Adapter, Delivery, Message};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::sync::Arc;

/// The default adapter of a [`DataProcessingChannel`](crate::DataProcessingChannel): it
/// turns each processed message into a [`Processed`], which serialises as
/// `{"event": <type>, "data": <payload>}`, like the reference's `adapt`.
///
/// It copies no payload: a `Processed` shares the queued message.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessingAdapter;

impl Adapter for ProcessingAdapter {
    type Output = Processed;

    fn adapt(&self, delivery: &Delivery) -> Processed {
        self.adapt_owned(delivery.clone())
    }

    fn adapt_owned(&self, delivery: Delivery) -> Processed {
        Processed {
            id: delivery.id,
            message: delivery.message,
        }
    }
}

/// One processed message, as [`ProcessingAdapter`] yields it.
///
/// Serialised with serde it reads `{"event": <type>, "data": <payload>}`: the
/// reference's dictionary. The event id is not part of that shape.
///
/// ```
/// use eric_core::{Adapter, Delivery, Epoch, Message};
/// use eric_processing::ProcessingAdapter;
/// use serde_json::json;
/// use std::sync::Arc;
///
/// let message = Arc::new(Message::new("counter", json!(3)));
/// let delivery = Delivery { id: 7, epoch: Epoch::new(), message };
/// let processed = ProcessingAdapter.adapt(&delivery);
/// assert_eq!(processed.event(), "counter");
/// assert_eq!(processed.to_json(), json!({"event": "counter", "data": 3}));
/// assert_eq!(serde_json::to_string(&processed).unwrap(), r#"{"event":"counter","data":3}"#);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Processed {
    /// The message's event id in its listener's queue.
    pub id: u64,
    /// The message, shared with the queue it came from.
    pub message: Arc<Message>,
}

impl Processed {
    /// The message type: the reference's `"event"`.
    pub fn event(&self) -> &str {
        &self.message.msg_type
    }

    /// The payload: the reference's `"data"`.
    pub fn data(&self) -> &Value {
        &self.message.payload
    }

    /// The reference's dictionary as a JSON value: `{"event": ..., "data": ...}`.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::with_capacity(2);
        map.insert("event".to_owned(), Value::String(self.event().to_owned()));
        map.insert("data".to_owned(), self.data().clone());
        Value::Object(map)
    }
}

impl Serialize for Processed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("event", self.event())?;
        map.serialize_entry("data", self.data())?;
        map.end()
    }
}
