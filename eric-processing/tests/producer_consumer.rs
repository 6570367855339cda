//! The reference's example: a producer dispatches 20 counters and then `notify_end()`;
//! a consumer with a slow `on_message` processes them in parallel.

mod common;

use common::*;
use eric_core::{Listener, Message};
use eric_processing::DataProcessingChannel;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Processes the listener's queue until the end-of-stream message, call after call.
fn process_until_closed(channel: &DataProcessingChannel, listener: &Arc<Listener>) -> Vec<i64> {
    let mut values = Vec::new();
    loop {
        let mut stream = channel.process_queue(listener);
        values.extend(stream.iter().map(value));
        if stream.met_closed() {
            return values;
        }
        // The queue ran dry before the producer was done: wait for more.
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_producer_thread_and_a_slow_consumer() {
    let channel = DataProcessingChannel::new(4).unwrap();
    let listener = channel
        .register_listener(Listener::new().on_message(|_, _| {
            std::thread::sleep(Duration::from_millis(20)); // slow work
        }))
        .unwrap();

    let producer = {
        let channel = channel.clone();
        let id = listener.id().to_owned();
        std::thread::spawn(move || {
            for i in 0..20 {
                channel
                    .dispatch(&id, Message::new("counter", json!(i)))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            channel.notify_end();
        })
    };

    let mut values = process_until_closed(&channel, &listener);
    producer.join().unwrap();
    values.sort_unstable();
    assert_eq!(values, (0..20).collect::<Vec<_>>());
    assert_eq!(listener.queue_len(), 0);
}
