//! eric's side of `bench/compare`: the workloads W1-W4 and W7 of bench/README.md, one per
//! invocation, each printing one JSON object on stdout.
//!
//! ```text
//! eric-workloads w1      [--messages 200000]          (w1-w3 also take [--history N])
//! eric-workloads w2      [--messages 200] [--listeners 1000] [--server-bounds 1]
//! eric-workloads w3      [--messages 50000]
//! eric-workloads w4      [--messages 10000] [--rate 5000]
//! eric-workloads w4idle  [--seconds 3]
//! eric-workloads w7sha   [--messages 2000] [--workers 2] [--rounds 200]
//! eric-workloads w7sleep [--messages 2000] [--workers 2] [--sleep-ms 1]
//! ```
//!
//! bench/python/workloads.py is the same program against eric-sse 0.6.0.3; the two must
//! stay line for line equivalent in what they time (see bench/README.md).

use eric_core::{Listener, Message, MESSAGE_TYPE_CLOSED};
use eric_processing::DataProcessingChannel;
use eric_sse::SseChannel;
use futures::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU time (user + system) of the whole process, all threads, with nanosecond
/// resolution: `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, what Python's
/// `time.process_time()` reads.
fn process_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The SSE channel of W1-W3: `SseChannel::new()` (its log retains the default
/// history), or one retaining `--history N` entries for a diagnosis (not used by
/// bench/compare).
fn sse_channel(history: Option<usize>) -> SseChannel {
    match history {
        None => SseChannel::new(),
        Some(h) => SseChannel::builder()
            .retention(eric_core::Retention::entries(h))
            .build(),
    }
}

/// `{"i": i}` of type "t", the message of W1-W3.
fn counter(i: usize) -> Arc<Message> {
    Arc::new(Message::new("t", json!({ "i": i })))
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// W1: dispatch `n` prebuilt messages to one started listener, then drain with
/// `deliver_next`. The messages are built before the clock starts and stay alive until
/// it stops, on both sides.
fn w1(n: usize, history: Option<usize>) -> Value {
    let channel = sse_channel(history);
    let listener = channel.add_listener();
    listener.start();
    let id = listener.id().to_owned();
    let messages: Vec<Arc<Message>> = (0..n).map(counter).collect();

    let started = Instant::now();
    for message in &messages {
        channel.dispatch(&id, Arc::clone(message)).unwrap();
    }
    let dispatch = started.elapsed();

    let started = Instant::now();
    let mut drained = 0usize;
    while channel.deliver_next(&id).is_ok() {
        drained += 1;
    }
    let drain = started.elapsed();
    drop(messages);
    json!({
        "params": {"messages": n, "history": history},
        "metrics": {
            "dispatch_per_s": rate(n, dispatch),
            "drain_per_s": rate(drained, drain),
            "dispatch_s": dispatch.as_secs_f64(),
            "drain_s": drain.as_secs_f64(),
        },
        "check": {"expected": n, "received": drained},
    })
}

/// W2: broadcast `n` prebuilt messages to `listeners` started listeners, then drain
/// every queue with `deliver_next`; both inside the clock.
///
/// With `server_bounds`, the channel has `eric serve`'s default byte bounds (1 MiB a
/// queue, a ledger with a 256 MiB budget), which none of the messages reaches: what
/// counting the bytes costs (not used by bench/compare).
fn w2(n: usize, listeners: usize, history: Option<usize>, server_bounds: bool) -> Value {
    let channel = if server_bounds {
        let mut builder = SseChannel::builder()
            .queue_config(eric_core::QueueConfig::unbounded().with_max_bytes(1 << 20))
            .ledger(Arc::new(eric_core::QueueLedger::new(Some(256 << 20))));
        if let Some(h) = history {
            builder = builder.retention(eric_core::Retention::entries(h));
        }
        builder.build()
    } else {
        sse_channel(history)
    };
    let ids: Vec<String> = (0..listeners)
        .map(|_| {
            let listener = channel.add_listener();
            listener.start();
            listener.id().to_owned()
        })
        .collect();
    let messages: Vec<Arc<Message>> = (0..n).map(counter).collect();

    let started = Instant::now();
    for message in &messages {
        channel.broadcast(Arc::clone(message));
    }
    let mut delivered = 0usize;
    for id in &ids {
        while channel.deliver_next(id).is_ok() {
            delivered += 1;
        }
    }
    let elapsed = started.elapsed();
    json!({
        "params": {"messages": n, "listeners": listeners, "history": history,
                   "server_bounds": server_bounds},
        "metrics": {
            "deliveries_per_s": rate(delivered, elapsed),
            "elapsed_s": elapsed.as_secs_f64(),
        },
        "check": {"expected": n * listeners, "received": delivered},
    })
}

/// W3: `n` messages queued (not timed), then consumed through the listener's async
/// stream, polled by `futures::executor::block_on` on the main thread.
fn w3(n: usize, history: Option<usize>) -> Value {
    let channel = sse_channel(history);
    let listener = channel.add_listener();
    listener.start();
    let messages: Vec<Arc<Message>> = (0..n).map(counter).collect();
    for message in &messages {
        channel.dispatch_to(&listener, message).unwrap();
    }
    let mut stream = channel.message_stream(&listener);

    let started = Instant::now();
    let received = futures::executor::block_on(async {
        let mut received = 0usize;
        while received < n {
            match stream.next().await {
                Some(event) => {
                    black_box(&event);
                    received += 1;
                }
                None => break,
            }
        }
        received
    });
    let elapsed = started.elapsed();
    drop(stream);
    drop(messages);
    json!({
        "params": {"messages": n, "executor": "futures::executor::block_on", "history": history},
        "metrics": {
            "items_per_s": rate(received, elapsed),
            "elapsed_s": elapsed.as_secs_f64(),
        },
        "check": {"expected": n, "received": received},
    })
}

/// W4: a producer thread dispatches `n` messages `{"sent": ns}` at `per_second` on an
/// absolute schedule; the consumer awaits the async stream (block_on on the main thread)
/// and records receive time - sent. Process CPU over the run.
fn w4(n: usize, per_second: u64) -> Value {
    let channel = SseChannel::new();
    let listener = channel.add_listener();
    listener.start();
    let epoch = Instant::now();
    let interval = Duration::from_nanos(1_000_000_000 / per_second);
    let mut stream = channel.message_stream(&listener);

    let cpu_before = process_cpu_time();
    let wall_before = Instant::now();
    let producer = {
        let channel = channel.clone();
        let id = listener.id().to_owned();
        std::thread::spawn(move || {
            let cpu_start = thread_cpu_time();
            let start = Instant::now();
            for i in 0..n {
                let due = start + interval * i as u32;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let sent = epoch.elapsed().as_nanos() as u64;
                channel
                    .dispatch(&id, Message::new("t", json!({ "sent": sent })))
                    .unwrap();
            }
            channel.notify_end();
            thread_cpu_time() - cpu_start
        })
    };
    let consumer_cpu_start = thread_cpu_time();
    let mut latencies: Vec<u64> = Vec::with_capacity(n);
    futures::executor::block_on(async {
        while let Some(event) = stream.next().await {
            if event.event() == MESSAGE_TYPE_CLOSED {
                break;
            }
            let now = epoch.elapsed().as_nanos() as u64;
            let sent = event.data()["sent"].as_u64().expect("sent stamp");
            latencies.push(now.saturating_sub(sent));
        }
    });
    let consumer_cpu = thread_cpu_time() - consumer_cpu_start;
    let producer_cpu = producer.join().unwrap();
    let cpu = process_cpu_time() - cpu_before;
    let wall = wall_before.elapsed();
    let received = latencies.len();
    latencies.sort_unstable();

    // Calibration, after the measurement: the CPU of the producer's schedule alone (the
    // same sleeps, no eric), for one second or n messages.
    let calibration = n.min(per_second as usize);
    let schedule_only = std::thread::spawn(move || {
        let cpu_start = thread_cpu_time();
        let start = Instant::now();
        for i in 0..calibration {
            let due = start + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        (thread_cpu_time() - cpu_start, start.elapsed())
    });
    let (schedule_cpu, schedule_wall) = schedule_only.join().unwrap();

    json!({
        "params": {"messages": n, "rate": per_second, "producer": "OS thread", "consumer": "futures::executor::block_on"},
        "metrics": {
            "p50_us": percentile_us(&latencies, 0.50),
            "p99_us": percentile_us(&latencies, 0.99),
            "max_us": percentile_us(&latencies, 1.0),
            "cpu_pct": 100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            "producer_cpu_pct": 100.0 * producer_cpu.as_secs_f64() / wall.as_secs_f64(),
            "consumer_cpu_pct": 100.0 * consumer_cpu.as_secs_f64() / wall.as_secs_f64(),
            "schedule_only_cpu_pct": 100.0 * schedule_cpu.as_secs_f64() / schedule_wall.as_secs_f64(),
            "wall_s": wall.as_secs_f64(),
        },
        "check": {"expected": n, "received": received},
    })
}

/// W4-idle: one started listener with an empty queue, its stream awaited on a thread;
/// process CPU over `seconds`.
fn w4idle(seconds: f64) -> Value {
    let channel = SseChannel::new();
    let listener = channel.add_listener();
    listener.start();
    let consumer = {
        let mut stream = channel.message_stream(&listener);
        std::thread::spawn(move || futures::executor::block_on(stream.next()).is_some())
    };
    std::thread::sleep(Duration::from_millis(100));
    let cpu_before = process_cpu_time();
    let wall_before = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let cpu = process_cpu_time() - cpu_before;
    let wall = wall_before.elapsed();
    channel
        .dispatch(listener.id(), Message::empty("bye"))
        .unwrap();
    let woke = consumer.join().unwrap();
    json!({
        "params": {"seconds": seconds},
        "metrics": {
            "cpu_pct": 100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            "cpu_s": cpu.as_secs_f64(),
        },
        "check": {"expected": 1, "received": usize::from(woke)},
    })
}

/// The CPU-bound handler of W7: a 1 KiB block of 0x07 bytes; `rounds` times, hash it
/// with SHA-256 and write the digest over its first 32 bytes.
fn sha_work(rounds: usize) {
    let mut block = [7u8; 1024];
    for _ in 0..rounds {
        let digest = Sha256::digest(block);
        block[..32].copy_from_slice(&digest);
    }
    black_box(block);
}

/// W7: a DataProcessingChannel of `workers` workers; `n` messages queued (not timed), then
/// `process_queue` drained through its blocking iterator, with `handler` as on_message.
fn w7(
    n: usize,
    workers: usize,
    handler: impl Fn() + Send + Sync + 'static,
    params: Value,
) -> Value {
    let channel = DataProcessingChannel::new(workers).unwrap();
    let listener = channel
        .register_listener(Listener::new().on_message(move |_, _| handler()))
        .unwrap();
    listener.start();
    for i in 0..n {
        channel.dispatch_to(&listener, &counter(i)).unwrap();
    }
    let started = Instant::now();
    let mut received = 0usize;
    let mut failed = 0usize;
    for result in channel.process_queue(&listener) {
        match result {
            Ok(item) => {
                black_box(item);
                received += 1;
            }
            Err(_) => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    json!({
        "params": params,
        "metrics": {
            "items_per_s": rate(received, elapsed),
            "elapsed_s": elapsed.as_secs_f64(),
        },
        "check": {"expected": n, "received": received, "failed": failed},
    })
}

fn usage() -> ! {
    eprintln!(
        "usage: eric-workloads w1|w2|w3|w4|w4idle|w7sha|w7sleep [--messages N] [--listeners N] \
         [--rate R] [--seconds S] [--workers N] [--rounds N] [--sleep-ms MS]"
    );
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| usage());
    let mut options: HashMap<String, String> = HashMap::new();
    while let Some(key) = args.next() {
        let Some(name) = key.strip_prefix("--") else {
            usage()
        };
        let value = args.next().unwrap_or_else(|| usage());
        options.insert(name.to_owned(), value);
    }
    let get = |name: &str, default: f64| -> f64 {
        options
            .get(name)
            .map(|v| v.parse().unwrap_or_else(|_| usage()))
            .unwrap_or(default)
    };
    let history = options
        .get("history")
        .map(|v| v.parse::<usize>().unwrap_or_else(|_| usage()));
    let result = match workload.as_str() {
        "w1" => w1(get("messages", 200_000.0) as usize, history),
        "w2" => w2(
            get("messages", 200.0) as usize,
            get("listeners", 1_000.0) as usize,
            history,
            get("server-bounds", 0.0) != 0.0,
        ),
        "w3" => w3(get("messages", 50_000.0) as usize, history),
        "w4" => w4(
            get("messages", 10_000.0) as usize,
            get("rate", 5_000.0) as u64,
        ),
        "w4idle" => w4idle(get("seconds", 3.0)),
        "w7sha" => {
            let (n, workers) = (
                get("messages", 2_000.0) as usize,
                get("workers", 2.0) as usize,
            );
            let rounds = get("rounds", 200.0) as usize;
            w7(
                n,
                workers,
                move || sha_work(rounds),
                json!({"messages": n, "workers": workers, "rounds": rounds}),
            )
        }
        "w7sleep" => {
            let (n, workers) = (
                get("messages", 2_000.0) as usize,
                get("workers", 2.0) as usize,
            );
            let sleep_ms = get("sleep-ms", 1.0);
            let pause = Duration::from_secs_f64(sleep_ms / 1000.0);
            w7(
                n,
                workers,
                move || std::thread::sleep(pause),
                json!({"messages": n, "workers": workers, "sleep_ms": sleep_ms}),
            )
        }
        _ => usage(),
    };
    let mut out = json!({"workload": workload, "side": "eric"});
    out.as_object_mut()
        .unwrap()
        .extend(result.as_object().unwrap().clone());
    println!("{out}");
}
