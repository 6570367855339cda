//! The reference's example: a producer thread dispatches 20 counters, then
//! `notify_end()`; the consumer's `on_message` does slow work, which a pool of 4
//! threads runs in parallel. Results are printed as they complete.
//!
//! Run with `cargo run -p eric-processing --example producer_consumer`.

use eric_core::{Listener, Message};
use eric_processing::DataProcessingChannel;
use serde_json::json;
use std::time::{Duration, Instant};

fn main() {
    let channel = DataProcessingChannel::new(4).expect("4 threads");
    let listener = channel
        .register_listener(Listener::new().on_message(|me, msg| {
            std::thread::sleep(Duration::from_millis(100)); // slow work
            println!("listener {} handled {}", me.id(), msg.payload);
        }))
        .expect("a fresh id");

    let producer = {
        let channel = channel.clone();
        let id = listener.id().to_owned();
        std::thread::spawn(move || {
            for i in 0..20 {
                channel
                    .dispatch(&id, Message::new("counter", json!({"value": i})))
                    .expect("the listener exists");
            }
            channel.notify_end();
        })
    };

    let started = Instant::now();
    let mut processed = 0;
    // A stream ends when the queue is empty or at the closed message. The consumer may
    // start before the producer has sent everything, so it processes call after call
    // until it meets the closed message.
    loop {
        let mut stream = channel.process_queue(&listener);
        for result in stream.iter() {
            let result = result.expect("the handler does not panic");
            println!(
                "{:>6.0?}  {}",
                started.elapsed(),
                serde_json::to_string(&result).unwrap()
            );
            processed += 1;
        }
        if stream.met_closed() {
            break;
        }
        // eric-core has no public way yet to wait for a message without handling it.
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.join().expect("the producer does not panic");
    println!(
        "{processed} messages in {:.0?} (serially: 2 s)",
        started.elapsed()
    );
}
