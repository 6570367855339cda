//! Encode and parse throughput, for small events (`{"i": n}`) and 4 KiB payloads.
//!
//! Run: `cargo bench -p eric-sse --bench codec -- --warm-up-time 1 --measurement-time 3`.
//! Targets: encode >= 5 M small events/s; parse >= 200 MB/s.

use std::hint::black_box;

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use eric_sse::{Encoder, Parser, SseEvent};
use serde_json::json;

const EVENTS: usize = 1_000;

fn small_events() -> Vec<SseEvent> {
    (0..EVENTS as u64)
        .map(|i| SseEvent::new("tick", json!({ "i": i })).with_id(i))
        .collect()
}

/// Events whose payload is an object holding a 4 KiB string.
fn large_events() -> Vec<SseEvent> {
    let text: String = "abcdefghijklmnopqrstuvwxyz0123456789 "
        .chars()
        .cycle()
        .take(4096)
        .collect();
    (0..EVENTS as u64)
        .map(|i| SseEvent::new("blob", json!({ "i": i, "text": text })).with_id(i))
        .collect()
}

fn encode_all(events: &[SseEvent]) -> Vec<u8> {
    let mut buf = Vec::new();
    for event in events {
        Encoder::new().encode_event(event, &mut buf).unwrap();
    }
    buf
}

fn codec(c: &mut Criterion) {
    for (name, events) in [("small", small_events()), ("4KiB", large_events())] {
        let wire = encode_all(&events);

        let mut group = c.benchmark_group("encode");
        group.throughput(Throughput::Elements(EVENTS as u64));
        let mut buf = Vec::with_capacity(wire.len());
        group.bench_function(BenchmarkId::new("events", name), |b| {
            b.iter(|| {
                buf.clear();
                for event in &events {
                    Encoder::new()
                        .encode_event(black_box(event), &mut buf)
                        .unwrap();
                }
                black_box(buf.len())
            })
        });
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::new("bytes", name), |b| {
            b.iter(|| {
                buf.clear();
                for event in &events {
                    Encoder::new()
                        .encode_event(black_box(event), &mut buf)
                        .unwrap();
                }
                black_box(buf.len())
            })
        });
        group.finish();

        let mut group = c.benchmark_group("parse");
        for (unit, throughput) in [
            ("events", Throughput::Elements(EVENTS as u64)),
            ("bytes", Throughput::Bytes(wire.len() as u64)),
        ] {
            group.throughput(throughput);
            // Fed in 16 KiB chunks, as a socket read would deliver them.
            group.bench_function(BenchmarkId::new(unit, name), |b| {
                b.iter(|| {
                    let mut parser = Parser::new();
                    let mut count = 0;
                    for chunk in black_box(&wire).chunks(16 * 1024) {
                        parser.feed(chunk);
                        while let Some(event) = parser.next_event() {
                            count += event.data.len();
                        }
                    }
                    black_box(count)
                })
            });
        }
        group.finish();
    }
}

// Written out rather than with `criterion_group!`, whose function has no doc comment
// (the workspace warns on missing docs).
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    codec(&mut criterion);
}

criterion_main!(benches);
