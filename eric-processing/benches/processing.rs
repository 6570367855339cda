//! Throughput of `process_queue`.
//!
//! * W7a: a CPU-bound handler (SHA-256 over 1 KiB, 200 rounds), 2,000 messages, with 1
//!   and with 2 workers: the speed-up of the second worker.
//! * W7b: a handler that sleeps 1 ms, 2,000 messages, 2 workers: the ideal is 2,000/s.
//! * Overhead: a no-op handler, 1,000,000 messages, 2 workers: the cost of the machinery.
//!
//! Each iteration fills the queue first (not timed), then drains it with a blocking
//! iterator (timed). Run with
//! `cargo bench -p eric-processing -- --warm-up-time 1 --measurement-time 5 --sample-size 10`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eric_core::{Listener, Message};
use eric_processing::DataProcessingChannel;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Queues `n` copies of one message (shared, as a broadcast would).
fn fill(channel: &DataProcessingChannel, listener: &Arc<Listener>, n: usize) {
    let message = Arc::new(Message::new("work", json!({"n": 1})));
    for _ in 0..n {
        channel.dispatch_to(listener, &message).unwrap();
    }
}

/// Fills the queue, then times draining it, `iters` times.
fn drain_timed(
    channel: &DataProcessingChannel,
    listener: &Arc<Listener>,
    n: usize,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        fill(channel, listener, n);
        let started = Instant::now();
        let mut count = 0;
        for result in channel.process_queue(listener) {
            black_box(result.unwrap());
            count += 1;
        }
        total += started.elapsed();
        assert_eq!(count, n);
    }
    total
}

/// 200 rounds of SHA-256 over a 1 KiB block, each round feeding the digest back.
fn sha_work() {
    let mut block = [7u8; 1024];
    for _ in 0..200 {
        let digest = Sha256::digest(block);
        block[..32].copy_from_slice(&digest);
    }
    black_box(block);
}

fn w7a_cpu_bound(c: &mut Criterion) {
    const N: usize = 2_000;
    let mut group = c.benchmark_group("w7a_sha256_2000");
    group.throughput(Throughput::Elements(N as u64));
    for workers in [1, 2] {
        let channel = DataProcessingChannel::new(workers).unwrap();
        let listener = channel
            .register_listener(Listener::new().on_message(|_, _| sha_work()))
            .unwrap();
        group.bench_function(BenchmarkId::new("workers", workers), |b| {
            b.iter_custom(|iters| drain_timed(&channel, &listener, N, iters))
        });
    }
    group.finish();
}

fn w7b_sleeping(c: &mut Criterion) {
    const N: usize = 2_000;
    let mut group = c.benchmark_group("w7b_sleep_1ms_2000");
    group.throughput(Throughput::Elements(N as u64));
    let channel = DataProcessingChannel::new(2).unwrap();
    let listener = channel
        .register_listener(
            Listener::new().on_message(|_, _| std::thread::sleep(Duration::from_millis(1))),
        )
        .unwrap();
    group.bench_function(BenchmarkId::new("workers", 2), |b| {
        b.iter_custom(|iters| drain_timed(&channel, &listener, N, iters))
    });
    group.finish();
}

fn overhead(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut group = c.benchmark_group("overhead_noop_1M");
    group.throughput(Throughput::Elements(N as u64));
    let channel = DataProcessingChannel::new(2).unwrap();
    let listener = channel
        .register_listener(Listener::new().on_message(|_, _| {}))
        .unwrap();
    group.bench_function(BenchmarkId::new("workers", 2), |b| {
        b.iter_custom(|iters| drain_timed(&channel, &listener, N, iters))
    });
    group.finish();
}

criterion_group!(benches, w7a_cpu_bound, w7b_sleeping, overhead);
criterion_main!(benches);
