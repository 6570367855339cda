//! eric embedded in a program with threads and no async runtime: eric-core's channels
//! and eric-processing's pool, and nothing else (no tokio anywhere in the build).
//!
//! A job channel hands numbers to a worker listener whose handler runs on a pool of
//! 4 threads and publishes each result on a second channel; a watcher thread blocks on
//! that channel's stream and prints the results as they come.
//!
//! ```text
//! cargo run -p eric-processing --example embed_threads
//! ```

use eric_core::{Channel, Delivery, Listener, Message, MESSAGE_TYPE_CLOSED};
use eric_processing::DataProcessingChannel;
use serde_json::{json, Value};
use std::thread;

fn main() {
    let outcome = run(20);
    println!(
        "the watcher saw {} results; the pool processed {} jobs",
        outcome.watched.len(),
        outcome.processed
    );
}

/// What one run saw.
#[derive(Debug)]
pub struct Outcome {
    /// The results the watcher received, `(n, n * n)`, in the order they came.
    pub watched: Vec<(u64, u64)>,
    /// The jobs the pool processed.
    pub processed: usize,
}

/// Squares `0..jobs` on the pool and watches the results arrive.
pub fn run(jobs: u64) -> Outcome {
    // Create: the results channel streams each message's type and payload.
    let results =
        Channel::new(|delivery: &Delivery| (delivery.msg_type.clone(), delivery.payload.clone()));
    // Watch: a listener registered now (so nothing published from here on is missed),
    // consumed on a thread of its own; it blocks until a message is pushed to it.
    let mut watch = results.watch();
    let watcher = thread::spawn(move || {
        let mut watched = Vec::new();
        // Ends after the channel's closed message (`notify_end`), which it yields last.
        for (msg_type, payload) in watch.iter() {
            if msg_type == MESSAGE_TYPE_CLOSED {
                continue;
            }
            let pair = (number(&payload, "n"), number(&payload, "square"));
            println!("watched  {} squared is {}", pair.0, pair.1);
            watched.push(pair);
        }
        watched
    });

    // The worker: its handler runs on the pool and publishes on the results channel (a
    // handler may call back into channels: it never runs under one of their locks).
    let jobs_channel = DataProcessingChannel::new(4).expect("4 threads");
    let publisher = results.clone();
    let worker = jobs_channel
        .register_listener(Listener::new().on_message(move |_me, message| {
            let n = message.payload.as_u64().unwrap_or_default();
            publisher.broadcast(Message::new("squared", json!({"n": n, "square": n * n})));
        }))
        .expect("a fresh listener id");

    // Broadcast: the jobs, then the end of the queue.
    for n in 0..jobs {
        jobs_channel.broadcast(Message::new("job", json!(n)));
    }
    jobs_channel.notify_end();

    // Receive: the pool drains the worker's queue; this thread blocks on the results.
    let processed = jobs_channel
        .process_queue(&worker)
        .iter()
        .filter(Result::is_ok)
        .count();

    // Stop: end the results channel, and its watcher with it.
    results.notify_end();
    let watched = watcher.join().expect("the watcher does not panic");
    Outcome { watched, processed }
}

fn number(payload: &Value, key: &str) -> u64 {
    payload[key].as_u64().unwrap_or_default()
}
