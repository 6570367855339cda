//! Deferred broadcasts held to the eager ones: the same random operations on two
//! channels, one that pushes every broadcast into every queue at once and one that
//! defers the pushes to the consumers, must be seen the same way by everyone. That
//! means the same broadcast reports, dispatch results, deliveries, listener stats and
//! listener sets, with bounded queues of every policy and byte bounds.
//!
//! This is the net the exact version of deferred pushes must pass (docs/benchmarks.md,
//! "the step for N = 10,000"). The prototype on this branch does not pass it: it takes
//! every listener to have room and reports every one as delivered. The test's failures
//! are that gap.

use eric_core::{Channel, Identity, Listener, Message, OverflowPolicy, QueueConfig};
use proptest::prelude::*;
use serde_json::json;

const LISTENERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// A broadcast whose payload is a string of this many bytes.
    Broadcast(usize),
    Dispatch(usize),
    /// Listener `l` takes up to `n` messages (a pull consumer).
    Deliver(usize, usize),
    Stats(usize),
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..40usize).prop_map(Op::Broadcast),
        1 => (0..LISTENERS).prop_map(Op::Dispatch),
        3 => (0..LISTENERS, 1..4usize).prop_map(|(l, n)| Op::Deliver(l, n)),
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
    let channel = Channel::builder(Identity)
        .queue_config(QueueConfig::unbounded().with_max_bytes(1 << 20))
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

/// With unbounded queues no push is ever refused, so even the prototype must match.
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
