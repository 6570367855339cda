//! eric-core without any async runtime: producer threads dispatch and broadcast, a
//! consumer thread blocks on its stream until each message is pushed to it.
//!
//! Run with `cargo run -p eric-core --example threads`.

use eric_core::{Channel, Delivery, Message};
use serde_json::json;
use std::thread;

fn main() {
    // What consumers receive: "#id type payload".
    let channel = Channel::new(|d: &Delivery| format!("#{} {} {}", d.id, d.msg_type, d.payload));
    let worker = channel.add_listener();
    let auditor = channel.add_listener();
    worker.start();
    auditor.start();

    let producers: Vec<_> = (0..2)
        .map(|p| {
            let channel = channel.clone();
            let worker_id = worker.id().to_owned();
            thread::spawn(move || {
                for i in 0..3 {
                    let job = Message::new("job", json!({"producer": p, "i": i}));
                    channel.dispatch(&worker_id, job).unwrap();
                }
                channel.broadcast(Message::new("producer_done", json!({"producer": p})));
            })
        })
        .collect();

    let consumer = {
        let mut stream = channel.message_stream(&worker);
        thread::spawn(move || {
            // Ends when the stream takes the _eric_channel_closed message.
            for line in stream.iter() {
                println!("worker  {line}");
            }
        })
    };

    for producer in producers {
        producer.join().unwrap();
    }
    channel.notify_end();
    consumer.join().unwrap();

    let mut audit = channel.message_stream(&auditor);
    while let Some(line) = audit.try_recv() {
        println!("auditor {line}");
    }
    let stats = worker.stats();
    println!(
        "worker delivered {} messages, {} dropped",
        stats.delivered, stats.dropped
    );
}
