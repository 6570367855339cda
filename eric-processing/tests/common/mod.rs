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

/// How long a test waits for something that should happen at once before it fails:
/// long enough that a loaded machine never reaches it, so that only a real hang does.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until `condition` holds; panics with `what` if it still does not after
/// [`PATIENCE`].
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A gate handlers wait at until the test opens it.
#[derive(Clone, Default)]
pub struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    /// Lets every waiter through, now and later.
    pub fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }

    /// Waits until the gate is open; `false` if it stayed shut for [`PATIENCE`].
    pub fn wait(&self) -> bool {
        let (open, changed) = &*self.0;
        let guard = open.lock().unwrap();
        let (guard, _) = changed
            .wait_timeout_while(guard, PATIENCE, |open| !*open)
            .unwrap();
        *guard
    }
}
