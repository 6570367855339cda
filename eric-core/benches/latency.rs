//! W4: dispatch-to-receive latency of a blocked async stream, and the CPU it costs.
//!
//! A producer thread dispatches one message every 200 us on an absolute schedule (so a
//! late send does not shift the next ones), stamped with its send time; a consumer
//! awaits the async stream on a `futures` executor and records now - stamp. Prints p50,
//! p99, max and the process CPU use over the run (the consumer's and the producer's
//! threads apart), then what the producer's schedule costs alone: the same 20,000 sleeps
//! with no dispatch, since on a VM a timer wake-up every 200 us is not free. Last, the
//! CPU of one idle stream.
//!
//! `cargo bench -p eric-core --bench latency`

use eric_core::{Channel, Identity, Message};
use futures::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

const MESSAGES: usize = 20_000;
const INTERVAL: Duration = Duration::from_micros(200);

/// User + system CPU time of this process, from /proc/self/stat (Linux).
fn cpu_time() -> Duration {
    cpu_time_of("/proc/self/stat")
}

/// User + system CPU time of the calling thread (Linux).
fn thread_cpu_time() -> Duration {
    cpu_time_of("/proc/thread-self/stat")
}

fn cpu_time_of(stat_file: &str) -> Duration {
    let stat = std::fs::read_to_string(stat_file).expect(stat_file);
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel reports in clock ticks; 100 per second on every Linux we run on.
    Duration::from_millis(ticks * 10)
}

fn sleep_until(due: Instant) {
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // cargo bench passes --bench; a filter argument that is not ours is ignored.
    let channel = Channel::new(Identity);
    let listener = channel.add_listener();
    listener.start();
    let epoch = Instant::now();

    let producer = {
        let channel = channel.clone();
        let id = listener.id().to_owned();
        std::thread::spawn(move || {
            let cpu_before = thread_cpu_time();
            let start = Instant::now();
            for i in 0..MESSAGES {
                sleep_until(start + INTERVAL * i as u32);
                let sent_ns = epoch.elapsed().as_nanos() as u64;
                channel
                    .dispatch(&id, Message::new("t", json!({ "sent": sent_ns })))
                    .unwrap();
            }
            channel.notify_end();
            thread_cpu_time() - cpu_before
        })
    };

    let cpu_before = cpu_time();
    let consumer_cpu_before = thread_cpu_time();
    let wall_before = Instant::now();
    let mut latencies = Vec::with_capacity(MESSAGES);
    futures::executor::block_on(async {
        let mut stream = channel.message_stream(&listener);
        while let Some(delivery) = stream.next().await {
            if let Some(sent) = delivery.payload["sent"].as_u64() {
                let now = epoch.elapsed().as_nanos() as u64;
                latencies.push(Duration::from_nanos(now.saturating_sub(sent)));
            }
        }
    });
    let consumer_cpu = thread_cpu_time() - consumer_cpu_before;
    let producer_cpu = producer.join().unwrap();
    let cpu = cpu_time() - cpu_before;
    let wall = wall_before.elapsed();
    latencies.sort();
    println!(
        "W4 latency over {} messages at {:?} intervals: p50 {:?}, p99 {:?}, max {:?}; process CPU {:.1}% of one core (consumer {:.1}%, producer {:.1}%)",
        latencies.len(),
        INTERVAL,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        100.0 * consumer_cpu.as_secs_f64() / wall.as_secs_f64(),
        100.0 * producer_cpu.as_secs_f64() / wall.as_secs_f64()
    );

    // The producer's schedule alone: its sleeps, with nothing dispatched.
    let cpu_before = thread_cpu_time();
    let wall_before = Instant::now();
    for i in 0..MESSAGES {
        sleep_until(wall_before + INTERVAL * i as u32);
    }
    let schedule_cpu = thread_cpu_time() - cpu_before;
    println!(
        "W4 schedule: the producer's {} sleeps alone use {:.1}% of one core",
        MESSAGES,
        100.0 * schedule_cpu.as_secs_f64() / wall_before.elapsed().as_secs_f64()
    );

    // W4-idle: one stream waiting on an empty queue for 3 seconds.
    let idle_listener = channel.add_listener();
    idle_listener.start();
    let consumer = {
        let mut stream = channel.message_stream(&idle_listener);
        std::thread::spawn(move || futures::executor::block_on(stream.next()).is_some())
    };
    std::thread::sleep(Duration::from_millis(100));
    let cpu_before = cpu_time();
    std::thread::sleep(Duration::from_secs(3));
    let idle_cpu = cpu_time() - cpu_before;
    channel
        .dispatch(idle_listener.id(), Message::empty("bye"))
        .unwrap();
    assert!(consumer.join().unwrap());
    println!(
        "W4-idle: one idle stream used {:?} of CPU in 3 s ({:.2}% of one core)",
        idle_cpu,
        100.0 * idle_cpu.as_secs_f64() / 3.0
    );
}
