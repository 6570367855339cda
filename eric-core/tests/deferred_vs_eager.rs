//! Deferred broadcasts held to the eager ones: the same random operations on two
//! channels, one that pushes every broadcast into every queue at once and one that
//! defers the pushes to the consumers, must be seen the same way by everyone. That
//! means the same broadcast reports, dispatch results, deliveries, listener stats and
//! listener sets, with bounded queues of every policy and byte bounds.
//!
//! Consumers take messages by pull (no markers), through a blocking-style stream's
//! `try_recv` and through an async stream polled once (markers, batches, wakers), and
//! the channels share a ledger with a budget whose bytes are compared too.
//! `deferred_race.rs` races the same paths on threads.

use eric_core::{
    Channel, Epoch, Identity, Listener, Message, MessageStream, OverflowPolicy, QueueConfig,
    QueueLedger,
};
use futures::{FutureExt, StreamExt};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

const LISTENERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// A broadcast whose payload is a string of this many bytes.
    Broadcast(usize),
    Dispatch(usize),
    /// Listener `l` takes up to `n` messages (a pull consumer).
    Deliver(usize, usize),
    /// Listener `l`'s stream takes up to `n` items with `try_recv`.
    Recv(usize, usize),
    /// Listener `l`'s stream is polled up to `n` times as an async stream.
    Poll(usize, usize),
    Stats(usize),
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..40usize).prop_map(Op::Broadcast),
        1 => (0..LISTENERS).prop_map(Op::Dispatch),
        3 => (0..LISTENERS, 1..4usize).prop_map(|(l, n)| Op::Deliver(l, n)),
        2 => (0..LISTENERS, 1..4usize).prop_map(|(l, n)| Op::Recv(l, n)),
        2 => (0..LISTENERS, 1..4usize).prop_map(|(l, n)| Op::Poll(l, n)),
        1 => (0..LISTENERS).prop_map(Op::Stats),
        1 => (0..LISTENERS).prop_map(Op::Remove),
    ]
}

fn queue_config() -> impl Strategy<Value = QueueConfig> {
    let capacity = prop_oneof![Just(None), (1..4usize).prop_map(Some)];
    let policy = prop_oneof![
        Just(OverflowPolicy::Reject),
        Just(OverflowPolicy::DropOldest),
        Just(OverflowPolicy::Disconnect),
    ];
    let max_bytes = prop_oneof![Just(None), Just(Some(80usize)), Just(Some(160usize))];
    (capacity, policy, max_bytes).prop_map(|(capacity, overflow, max_bytes)| QueueConfig {
        capacity,
        overflow,
        max_bytes,
    })
}

/// Runs `ops` on a channel deferring its broadcasts or not, and writes down everything
/// a caller can see.
fn observe(defer: bool, configs: &[QueueConfig], ops: &[Op]) -> Vec<String> {
    // A channel-wide byte bound makes publishes measure their messages; each listener
    // has its own bound (or none) besides.
    let ledger = Arc::new(QueueLedger::new(Some(1 << 20)));
    let channel = Channel::builder(Identity)
        .queue_config(QueueConfig::unbounded().with_max_bytes(1 << 20))
        .ledger(Arc::clone(&ledger))
        // Markers name positions, epoch and all.
        .epoch(Epoch::from_u64(7))
        .defer_broadcasts(defer)
        .build();
    let listeners: Vec<_> = configs
        .iter()
        .enumerate()
        .map(|(i, config)| {
            let listener = channel
                .register_listener(Listener::with_id(format!("l{i}")).queue_config(*config))
                .unwrap();
            listener.start();
            listener
        })
        .collect();
    let mut streams: Vec<Option<MessageStream<Identity>>> =
        (0..listeners.len()).map(|_| None).collect();
    let mut seen = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let line = match op {
            Op::Broadcast(len) => {
                let report = channel.broadcast(Message::new("b", json!("x".repeat(*len))));
                format!("{step} broadcast {report:?}")
            }
            Op::Dispatch(l) => {
                let result = channel.dispatch(&format!("l{l}"), Message::new("d", json!(step)));
                format!(
                    "{step} dispatch l{l} {:?}",
                    result.map_err(|e| e.to_string())
                )
            }
            Op::Deliver(l, n) => {
                let mut got = Vec::new();
                for _ in 0..*n {
                    match channel.deliver_next(&format!("l{l}")) {
                        Ok(delivery) => got.push(format!("{}@{}", delivery.msg_type, delivery.id)),
                        Err(error) => {
                            got.push(error.to_string());
                            break;
                        }
                    }
                }
                format!("{step} deliver l{l} {got:?}")
            }
            Op::Recv(l, n) => {
                let stream =
                    streams[*l].get_or_insert_with(|| channel.message_stream(&listeners[*l]));
                let got: Vec<_> = (0..*n)
                    .map_while(|_| stream.try_recv())
                    .map(|d| format!("{}@{} {}", d.msg_type, d.id, d.payload))
                    .collect();
                format!("{step} recv l{l} {got:?} finished {}", stream.is_finished())
            }
            Op::Poll(l, n) => {
                let stream =
                    streams[*l].get_or_insert_with(|| channel.message_stream(&listeners[*l]));
                let got: Vec<_> = (0..*n)
                    .map_while(|_| stream.next().now_or_never())
                    .map(|item| item.map(|d| format!("{}@{} {}", d.msg_type, d.id, d.payload)))
                    .collect();
                format!("{step} poll l{l} {got:?}")
            }
            Op::Stats(l) => format!("{step} stats l{l} {:?}", listeners[*l].stats()),
            Op::Remove(l) => {
                let result = channel.remove_listener(&format!("l{l}")).map(|_| ());
                format!("{step} remove l{l} {:?}", result.map_err(|e| e.to_string()))
            }
        };
        seen.push(line);
        let mut ids = channel.listener_ids();
        ids.sort();
        seen.push(format!("{step} listeners {ids:?}"));
        seen.push(format!("{step} ledger {}", ledger.queued_bytes()));
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deferred_broadcasts_are_seen_as_eager_ones(
        configs in proptest::collection::vec(queue_config(), LISTENERS),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let eager = observe(false, &configs, &ops);
        let deferred = observe(true, &configs, &ops);
        for (eager, deferred) in eager.iter().zip(&deferred) {
            prop_assert_eq!(eager, deferred);
        }
    }
}

/// With unbounded queues no push is ever refused: the plainest case, kept as a test of
/// its own.
#[test]
fn unbounded_queues_see_the_same_either_way() {
    let configs = [QueueConfig::unbounded(); LISTENERS];
    let ops: Vec<Op> = (0..30)
        .map(|i| match i % 5 {
            0 | 1 => Op::Broadcast(i),
            2 => Op::Dispatch(i % LISTENERS),
            3 => Op::Deliver(i % LISTENERS, 2),
            _ => Op::Stats(i % LISTENERS),
        })
        .collect();
    assert_eq!(
        observe(false, &configs, &ops),
        observe(true, &configs, &ops)
    );
}

/// A queue lets go of its bytes in the ledger when it goes, and so must what was
/// deferred to it and never applied: here its channel and its listeners go with
/// broadcasts no consumer ever took.
#[test]
fn a_dropped_channel_gives_back_every_byte_of_its_ledger() {
    for defer in [false, true] {
        let ledger = Arc::new(QueueLedger::new(Some(1 << 20)));
        let channel = Channel::builder(Identity)
            .ledger(Arc::clone(&ledger))
            .defer_broadcasts(defer)
            .build();
        let listeners: Vec<_> = (0..3).map(|_| channel.add_listener()).collect();
        for i in 0..10 {
            channel.broadcast(Message::new("b", json!(i)));
        }
        assert!(
            ledger.queued_bytes() > 0,
            "defer {defer}: the broadcasts count"
        );
        drop(channel);
        drop(listeners);
        assert_eq!(ledger.queued_bytes(), 0, "defer {defer}");
        // The count reads 0 below zero too: one more message must count its size.
        let channel = Channel::builder(Identity)
            .ledger(Arc::clone(&ledger))
            .build();
        let _listener = channel.add_listener();
        let message = Message::new("b", json!(1));
        let size = eric_core::message_size(&message);
        channel.broadcast(message);
        assert_eq!(ledger.queued_bytes(), size, "defer {defer}");
    }
}
