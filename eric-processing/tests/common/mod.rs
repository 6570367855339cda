//! Helpers shared by the integration tests.
#![allow(dead_code)]

use eric_core::{Listener, Message};
use eric_processing::{DataProcessingChannel, Processed, ProcessingResult};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A processing channel with the default adapter and `workers` threads.
pub fn channel(workers: usize) -> DataProcessingChannel {
    DataProcessingChannel::new(workers).expect("a pool of at least one thread")
}

/// Registers a listener whose handler sleeps `ms` milliseconds per message.
pub fn sleepy_listener(channel: &DataProcessingChannel, ms: u64) -> Arc<Listener> {
    channel
        .register_listener(
            Listener::new().on_message(move |_, _| std::thread::sleep(Duration::from_millis(ms))),
        )
        .unwrap()
}

/// Registers a listener whose handler counts its calls in the returned counter.
pub fn counting_listener(channel: &DataProcessingChannel) -> (Arc<Listener>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let listener = channel
        .register_listener(Listener::new().on_message(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
    (listener, calls)
}

/// Dispatches `n` messages of type "counter" with payloads 0..n.
pub fn dispatch_counters(channel: &DataProcessingChannel, listener: &Listener, n: i64) {
    for i in 0..n {
        channel
            .dispatch(listener.id(), Message::new("counter", json!(i)))
            .unwrap();
    }
}

/// The counter value of a successful result.
pub fn value(result: ProcessingResult<Processed>) -> i64 {
    result
        .expect("no panic")
        .data()
        .as_i64()
        .expect("a counter")
}
