//! Throughput of eric-core's queues: the W1-W3 workloads of bench/README.md.
#![allow(missing_docs)] // criterion_group! generates undocumented items
//!
//! `cargo bench -p eric-core --bench core`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eric_core::{Channel, Identity, Message};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const W1_MESSAGES: usize = 200_000;
const W2_LISTENERS: usize = 1_000;
const W2_MESSAGES: usize = 200;
const W3_MESSAGES: usize = 50_000;

fn counter(i: usize) -> Message {
    Message::new("t", json!({ "i": i }))
}

/// A channel with one started listener, and the listener's id.
fn one_started_listener() -> (Channel<Identity>, String) {
    let channel = Channel::new(Identity);
    let listener = channel.add_listener();
    listener.start();
    let id = listener.id().to_owned();
    (channel, id)
}

fn prebuilt_counters() -> Vec<Arc<Message>> {
    (0..W1_MESSAGES).map(|i| Arc::new(counter(i))).collect()
}

/// Times `run` on a fresh `setup` per iteration; `setup` is not timed, and what it
/// returns is dropped after the clock stops.
fn timed<S>(iters: u64, setup: impl Fn() -> S, run: impl Fn(&S)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let state = setup();
        let started = Instant::now();
        run(&state);
        total += started.elapsed();
    }
    total
}

/// W1: dispatch 200,000 `{"i": i}` messages to one started listener, then drain them
/// with deliver_next; the two rates apart. The messages are built before the clock
/// starts (building a JSON payload is the producer's work, not the dispatcher's) and
/// kept alive until it stops (so draining does not time their deallocation); the
/// `_with_construction` and `_with_deallocation` variants time those too.
fn w1(c: &mut Criterion) {
    let mut group = c.benchmark_group("W1");
    group.throughput(Throughput::Elements(W1_MESSAGES as u64));
    group.sample_size(20);
    let queued = |messages: Vec<Arc<Message>>| {
        let (channel, id) = one_started_listener();
        for message in &messages {
            channel.dispatch(&id, Arc::clone(message)).unwrap();
        }
        (channel, id, messages)
    };
    group.bench_function("dispatch", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || (one_started_listener(), prebuilt_counters()),
                |((channel, id), messages)| {
                    for message in messages {
                        channel.dispatch(id, Arc::clone(message)).unwrap();
                    }
                },
            )
        })
    });
    group.bench_function("drain", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || queued(prebuilt_counters()),
                |(channel, id, _messages)| while channel.deliver_next(id).is_ok() {},
            )
        })
    });
    group.bench_function("dispatch_with_construction", |b| {
        b.iter_custom(|iters| {
            timed(iters, one_started_listener, |(channel, id)| {
                for i in 0..W1_MESSAGES {
                    channel.dispatch(id, counter(i)).unwrap();
                }
            })
        })
    });
    group.bench_function("drain_with_deallocation", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || {
                    // Only the queue holds the messages: draining frees them.
                    let (channel, id, messages) = queued(prebuilt_counters());
                    drop(messages);
                    (channel, id, Vec::<Arc<Message>>::new())
                },
                |(channel, id, _)| while channel.deliver_next(id).is_ok() {},
            )
        })
    });
    group.finish();
}

/// W2: broadcast 200 messages to 1,000 started listeners, then drain every queue.
fn w2(c: &mut Criterion) {
    let mut group = c.benchmark_group("W2");
    group.throughput(Throughput::Elements((W2_LISTENERS * W2_MESSAGES) as u64));
    group.sample_size(20);
    group.bench_function("broadcast_and_drain", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let channel = Channel::new(Identity);
                let ids: Vec<String> = (0..W2_LISTENERS)
                    .map(|_| {
                        let listener = channel.add_listener();
                        listener.start();
                        listener.id().to_owned()
                    })
                    .collect();
                let started = Instant::now();
                for i in 0..W2_MESSAGES {
                    channel.broadcast(counter(i));
                }
                for id in &ids {
                    while channel.deliver_next(id).is_ok() {}
                }
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// W3: one listener with 50,000 queued messages consumed through the async stream.
fn w3(c: &mut Criterion) {
    let mut group = c.benchmark_group("W3");
    group.throughput(Throughput::Elements(W3_MESSAGES as u64));
    group.sample_size(20);
    group.bench_function("async_stream", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let channel = Channel::new(Identity);
                let listener = channel.add_listener();
                listener.start();
                let message = Arc::new(counter(0));
                for _ in 0..W3_MESSAGES {
                    channel.dispatch_to(&listener, &message).unwrap();
                }
                let stream = channel.message_stream(&listener);
                let started = Instant::now();
                let count = futures::executor::block_on(stream.take(W3_MESSAGES).count());
                total += started.elapsed();
                assert_eq!(count, W3_MESSAGES);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, w1, w2, w3);
criterion_main!(benches);
