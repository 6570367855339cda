//! Resume from the channel log, held to its promise by random interleavings: publishes
//! (broadcast and dispatch), consumers that read, lose what was in flight, disconnect
//! and resume, and a log trimmed by its retention. Whatever happens, what each
//! subscriber receives is the log filtered for it, in order, with no duplicate, and
//! every entry it misses falls where the stream told it so with a gap marker.

use eric_core::{Channel, Delivery, Identity, MessageStream, Retention, MESSAGE_TYPE_ERROR};
use eric_core::{Listener, Message};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Debug)]
enum Op {
    Broadcast,
    /// A dispatch to named listener `n % NAMED`.
    Dispatch(usize),
    /// Subscriber `s` reads up to `n` items.
    Read(usize, usize),
    /// Subscriber `s` takes up to `n` items in one poll, as the HTTP writer does.
    ReadReady(usize, usize),
    /// Subscriber `s`'s connection dies with up to `n` items taken but never seen.
    Lose(usize, usize),
    /// Subscriber `s` disconnects.
    Disconnect(usize),
    /// Subscriber `s` reconnects with the last id it saw.
    Resume(usize),
}

const NAMED: usize = 2;
const WATCHERS: usize = 2;
const SUBSCRIBERS: usize = NAMED + WATCHERS;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Broadcast),
        2 => (0..NAMED).prop_map(Op::Dispatch),
        3 => (0..SUBSCRIBERS, 1..4usize).prop_map(|(s, n)| Op::Read(s, n)),
        2 => (0..SUBSCRIBERS, 1..6usize).prop_map(|(s, n)| Op::ReadReady(s, n)),
        1 => (0..SUBSCRIBERS, 1..3usize).prop_map(|(s, n)| Op::Lose(s, n)),
        1 => (0..SUBSCRIBERS).prop_map(Op::Disconnect),
        2 => (0..SUBSCRIBERS).prop_map(Op::Resume),
    ]
}

/// What one subscriber has seen, as its client would keep it.
struct Subscriber {
    /// `Some` for a named listener (subscribers `0..NAMED`); watchers make their own.
    listener: Option<Arc<Listener>>,
    stream: Option<MessageStream<Identity>>,
    /// The offset its first stream started after: entries up to it are not its own.
    start: u64,
    /// The id a client would send back: that of the last item with an id.
    last_id: Option<String>,
    /// Offsets received, and after how many of them a gap marker came.
    received: Vec<u64>,
    markers: Vec<usize>,
}

impl Subscriber {
    fn take(&mut self, delivery: Delivery, seen: bool) {
        if !seen {
            return;
        }
        if delivery.id != 0 {
            self.last_id = Some(delivery.position().to_string());
        }
        if delivery.msg_type == MESSAGE_TYPE_ERROR {
            assert_eq!(delivery.payload["error"], "history_gap");
            self.markers.push(self.received.len());
        } else {
            self.received.push(delivery.id);
        }
    }
}

/// Runs `ops` on a channel retaining `retention` entries, checks every subscriber, and
/// returns how many gap markers they received in all.
fn run(retention: usize, ops: &[Op]) -> usize {
    let channel = Channel::builder(Identity)
        .retention(Retention::entries(retention))
        .build();
    let mut subscribers: Vec<Subscriber> = (0..SUBSCRIBERS)
        .map(|s| {
            let listener = (s < NAMED).then(|| {
                let listener = channel.add_listener();
                listener.start();
                listener
            });
            let stream = match &listener {
                Some(listener) => channel.message_stream(listener),
                None => channel.watch(),
            };
            Subscriber {
                listener,
                stream: Some(stream),
                start: 0,
                last_id: None,
                received: Vec::new(),
                markers: Vec::new(),
            }
        })
        .collect();
    // Every publish: its offset and whom it was for (None: everyone).
    let mut log: Vec<(u64, Option<usize>)> = Vec::new();
    for op in ops {
        match *op {
            Op::Broadcast => {
                channel.broadcast(Message::empty("b"));
                log.push((channel.position().offset, None));
            }
            Op::Dispatch(n) => {
                let id = subscribers[n].listener.as_ref().unwrap().id().to_owned();
                channel.dispatch(&id, Message::empty("d")).unwrap();
                log.push((channel.position().offset, Some(n)));
            }
            Op::Read(s, n) | Op::Lose(s, n) => {
                let subscriber = &mut subscribers[s];
                let Some(stream) = subscriber.stream.as_mut() else {
                    continue;
                };
                let items: Vec<Delivery> = (0..n).map_while(|_| stream.try_recv()).collect();
                let seen = matches!(op, Op::Read(..));
                for item in items {
                    subscriber.take(item, seen);
                }
                if !seen {
                    subscriber.stream = None;
                }
            }
            Op::ReadReady(s, n) => {
                let subscriber = &mut subscribers[s];
                let Some(stream) = subscriber.stream.as_mut() else {
                    continue;
                };
                let mut items = Vec::new();
                let mut cx = Context::from_waker(Waker::noop());
                let handed = stream.poll_each(&mut cx, |item| {
                    items.push(item);
                    match items.len() < n {
                        true => ControlFlow::Continue(()),
                        false => ControlFlow::Break(()),
                    }
                });
                match handed {
                    Poll::Ready(Some(count)) => assert_eq!(count, items.len()),
                    Poll::Ready(None) | Poll::Pending => assert!(items.is_empty()),
                }
                assert!(
                    items.len() <= n,
                    "{} items handed past a break",
                    items.len()
                );
                for item in items {
                    subscriber.take(item, true);
                }
            }
            Op::Disconnect(s) => subscribers[s].stream = None,
            Op::Resume(s) => {
                let subscriber = &mut subscribers[s];
                if subscriber.stream.is_some() {
                    continue;
                }
                // A client that never saw an id starts from its first position.
                let after = subscriber.last_id.clone().unwrap_or_else(|| {
                    eric_core::Position::new(channel.epoch(), subscriber.start).to_string()
                });
                subscriber.stream = Some(match &subscriber.listener {
                    Some(listener) => channel.message_stream_after(listener, &after),
                    None => channel.watch_after(&after),
                });
            }
        }
    }
    // Everyone reconnects and reads to the end.
    for subscriber in &mut subscribers {
        if subscriber.stream.is_none() {
            let after = subscriber.last_id.clone().unwrap_or_else(|| {
                eric_core::Position::new(channel.epoch(), subscriber.start).to_string()
            });
            subscriber.stream = Some(match &subscriber.listener {
                Some(listener) => channel.message_stream_after(listener, &after),
                None => channel.watch_after(&after),
            });
        }
        let stream = subscriber.stream.as_mut().unwrap();
        let items: Vec<Delivery> = std::iter::from_fn(|| stream.try_recv()).collect();
        for item in items {
            subscriber.take(item, true);
        }
    }

    for (s, subscriber) in subscribers.iter().enumerate() {
        let own: BTreeSet<u64> = log
            .iter()
            .filter(|(offset, to)| *offset > subscriber.start && to.is_none_or(|n| n == s))
            .map(|(offset, _)| *offset)
            .collect();
        let received = &subscriber.received;
        assert!(
            received.windows(2).all(|w| w[0] < w[1]),
            "subscriber {s}: out of order or twice: {received:?}"
        );
        for offset in received {
            assert!(
                own.contains(offset),
                "subscriber {s} got {offset}, not its own"
            );
        }
        // Each entry missed lies where a marker came: after the last offset received
        // before it, and before the first received after it.
        for missed in own.iter().filter(|o| !received.contains(o)) {
            let before = received.iter().filter(|&&o| o < *missed).count();
            assert!(
                subscriber.markers.contains(&before),
                "subscriber {s} missed {missed} silently: received {received:?}, \
                 markers after {:?} items",
                subscriber.markers
            );
        }
    }
    subscribers.iter().map(|s| s.markers.len()).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_subscriber_gets_the_log_filtered_for_it_or_a_marker_where_it_fell_short(
        retention in 0..6usize,
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        run(retention, &ops);
    }
}

#[test]
fn a_long_enough_log_loses_nothing_however_connections_come_and_go() {
    // With more retained than is ever published, nobody may see a marker.
    let ops: Vec<Op> = (0..40)
        .flat_map(|i| {
            [
                Op::Broadcast,
                Op::Dispatch(i % NAMED),
                Op::Lose(i % SUBSCRIBERS, 1),
                Op::Resume(i % SUBSCRIBERS),
                Op::Read((i + 1) % SUBSCRIBERS, 2),
            ]
        })
        .collect();
    assert_eq!(run(1_000, &ops), 0, "a gap marker where nothing was lost");
}
