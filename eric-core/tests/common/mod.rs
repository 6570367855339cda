//! Small helpers shared by eric-core's integration tests.
#![allow(dead_code)]

use eric_core::{Channel, Delivery, Identity, Listener, Message};
use serde_json::{json, Value};
use std::sync::Arc;

/// The reference's SSE adaptation, `{event, retry, data}`, for tests that compare with it.
pub fn sse_like(delivery: &Delivery) -> Value {
    json!({"event": delivery.msg_type, "retry": 5, "data": delivery.payload})
}

/// A channel whose streams yield deliveries, and one started listener.
pub fn channel_with_started_listener() -> (Channel<Identity>, Arc<Listener>) {
    let channel = Channel::new(Identity);
    let listener = channel.add_listener();
    listener.start();
    (channel, listener)
}

/// A channel that retains the last `history` entries of its log, and one started
/// listener.
pub fn started_listener_with_history(history: usize) -> (Channel<Identity>, Arc<Listener>) {
    let channel = Channel::builder(Identity)
        .retention(eric_core::Retention::entries(history))
        .build();
    let listener = channel.add_listener();
    listener.start();
    (channel, listener)
}

/// The event id of `offset` in the channel's log, as a client sends it back.
pub fn at<A: eric_core::Adapter>(channel: &Channel<A>, offset: u64) -> String {
    eric_core::Position::new(channel.epoch(), offset).to_string()
}

/// `n` messages of type `t` with payload `{"i": i}`.
pub fn counters(n: usize) -> impl Iterator<Item = Message> {
    (0..n).map(|i| Message::new("t", json!({ "i": i })))
}

/// The message types of a list of deliveries.
pub fn types(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.msg_type.clone()).collect()
}
