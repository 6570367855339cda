//! Deferred broadcasts raced by real threads.
//!
//! `deferred_vs_eager.rs` holds deferred broadcasts to eager ones one operation at a
//! time, so it never sees a consumer lock its queue (and apply the channel's tail, then
//! give back room at unlock) while a publisher reads and takes that room, nor a waiting
//! consumer put on the tail's waiter list while a broadcast raises the watermark. Here
//! publisher threads broadcast while consumer threads take messages every way the crate
//! offers (blocking stream, `deliver_next`, `take_next`, an async stream under
//! `block_on`, and an async stream polled by hand, which also tells whether every wake
//! that was owed came), an observer thread reads every queue's stats, and another
//! removes listeners. What must hold whatever the interleaving:
//!
//! * unbounded queues: every consumer gets every broadcast once, in the log's order,
//!   and every report counts every listener;
//! * `Reject`, `DropOldest` and byte bounds: the reports, the listeners' counters, the
//!   ledger's loss observer and what consumers saw (markers included) account for every
//!   message exactly, and no queue ever holds more than its bound;
//! * removal: waiting consumers see it at once, and a ledger's byte count returns to
//!   zero, so no deferred push leaks its bytes.
//!
//! Every scenario also runs with eager broadcasts, as a control: the same invariants
//! hold for both paths, so a failure only with deferral is the deferral's.

use eric_core::{
    message_size, BroadcastReport, Channel, Delivery, Error, Identity, Listener, Losses, Message,
    OverflowPolicy, Position, QueueConfig, QueueLedger, MESSAGE_TYPE_CLOSED, MESSAGE_TYPE_ERROR,
};
use futures::task::ArcWake;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

const PUBLISHERS: u64 = 3;
const PER_PUBLISHER: u64 = 2000;
const TOTAL: u64 = PUBLISHERS * PER_PUBLISHER;
const ROUNDS: usize = 2;
/// A small capacity, so that consumers slower than publishers overflow it often and a
/// queue has room as often as not.
const CAPACITY: usize = 4;
/// How long a consumer may take to notice the last broadcast, a stop or a removal: far
/// more than a wake needs, so that running out of it means no wake came.
const GRACE: Duration = Duration::from_secs(2);
/// A scenario that runs longer than this is hung.
const LIMIT: Duration = Duration::from_secs(10);

/// How a consumer takes its listener's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `MessageStream::recv_timeout`: `wait_next` and the condition variable.
    Blocking,
    /// `Channel::deliver_next` in a loop that yields.
    DeliverNext,
    /// `Listener::take_next` in a loop that yields.
    TakeNext,
    /// `StreamExt::next` under `futures::executor::block_on`: wakers and batches.
    AsyncBlockOn,
    /// `Stream::poll_next` by hand, with a waker that records whether it was called.
    AsyncPolled,
}

const KINDS: [Kind; 5] = [
    Kind::Blocking,
    Kind::DeliverNext,
    Kind::TakeNext,
    Kind::AsyncBlockOn,
    Kind::AsyncPolled,
];

impl Kind {
    fn is_stream(self) -> bool {
        matches!(
            self,
            Kind::Blocking | Kind::AsyncBlockOn | Kind::AsyncPolled
        )
    }

    /// Whether it takes what is queued in one go, which may leave more than the byte
    /// bound counted against the queue for a while.
    fn batches(self) -> bool {
        matches!(self, Kind::AsyncBlockOn | Kind::AsyncPolled)
    }
}

/// One item a consumer got.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Message {
        offset: u64,
        publisher: u64,
        seq: u64,
    },
    Gap {
        at: u64,
        payload: Value,
    },
    TooSlow {
        at: u64,
        payload: Value,
    },
    Closed,
}

fn seen(delivery: &Delivery) -> Seen {
    match delivery.msg_type.as_str() {
        MESSAGE_TYPE_CLOSED if delivery.id == 0 => Seen::Closed,
        MESSAGE_TYPE_ERROR => match delivery.payload["error"].as_str() {
            Some("history_gap") => Seen::Gap {
                at: delivery.id,
                payload: delivery.payload.clone(),
            },
            Some("too_slow") => Seen::TooSlow {
                at: delivery.id,
                payload: delivery.payload.clone(),
            },
            _ => panic!("unknown marker {delivery:?}"),
        },
        "m" => Seen::Message {
            offset: delivery.id,
            publisher: delivery.payload["p"].as_u64().expect("publisher id"),
            seq: delivery.payload["s"].as_u64().expect("sequence number"),
        },
        _ => panic!("unexpected delivery {delivery:?}"),
    }
}

fn message(publisher: u64, seq: u64) -> Message {
    Message::new("m", json!({ "p": publisher, "s": seq }))
}

/// The size every message of the tests counts at: numbers count 8 bytes whatever
/// their value.
fn size() -> usize {
    message_size(&message(0, 0))
}

fn offsets(items: &[Seen]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|item| match item {
            Seen::Message { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect()
}

/// When a consumer stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    /// A pull consumer when the publishers are done and its queue is empty; a stream
    /// when the test stops its listener.
    Idle,
    /// When its listener is removed.
    Removed,
}

/// What a consumer has taken so far, for the main thread to tell when it is idle.
#[derive(Default)]
struct Progress {
    messages: AtomicU64,
    too_slow: AtomicU64,
}

struct Shared {
    /// Set once every broadcast has returned: every push and every wake they owed is done.
    done: AtomicBool,
    deadline: Instant,
}

struct Consumer {
    listener: Arc<Listener>,
    kind: Kind,
    progress: Arc<Progress>,
    handle: JoinHandle<Result<Vec<Seen>, String>>,
}

/// A waker that notes that it was called and unparks its thread.
struct Flag {
    woken: AtomicBool,
    thread: Thread,
}

impl ArcWake for Flag {
    fn wake_by_ref(flag: &Arc<Self>) {
        flag.woken.store(true, Ordering::SeqCst);
        flag.thread.unpark();
    }
}

/// The next item of an async stream polled by hand. A wait that outlives the
/// publishers without a wake is checked: if an item is ready then, a push reached the
/// queue and the waker it owed was never called.
fn poll_by_hand(
    stream: &mut eric_core::MessageStream<Identity>,
    flag: &Arc<Flag>,
    shared: &Shared,
) -> Result<Option<Delivery>, String> {
    let waker = futures::task::waker(Arc::clone(flag));
    let mut cx = Context::from_waker(&waker);
    loop {
        flag.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(item) = Pin::new(&mut *stream).poll_next(&mut cx) {
            return Ok(item);
        }
        let mut checked = false;
        loop {
            // `done` before the flag: once it is set, every wake a broadcast owed was
            // made before it.
            let done = shared.done.load(Ordering::SeqCst);
            if flag.woken.load(Ordering::SeqCst) {
                break;
            }
            if done && !checked {
                checked = true;
                if let Poll::Ready(item) = Pin::new(&mut *stream).poll_next(&mut cx) {
                    // A stop or a removal may race this poll; a message may not.
                    return match item {
                        Some(delivery) if delivery.id != 0 => Err(format!(
                            "lost wakeup: {delivery:?} was ready after every broadcast \
                             returned, but the waiting stream was never woken"
                        )),
                        item => Ok(item),
                    };
                }
                continue;
            }
            if Instant::now() > shared.deadline {
                return Err("async stream (polled by hand) hung: no wake came".into());
            }
            thread::park_timeout(Duration::from_millis(5));
        }
    }
}

fn consume(
    channel: &Channel<Identity>,
    listener: &Arc<Listener>,
    kind: Kind,
    until: Until,
    pause_every: Option<u64>,
    progress: &Progress,
    shared: &Shared,
) -> Result<Vec<Seen>, String> {
    let mut items = Vec::new();
    let mut record = |item: Seen| {
        match item {
            Seen::Message { .. } => {
                let taken = progress.messages.fetch_add(1, Ordering::SeqCst) + 1;
                // Slower than the publishers, so that bounded queues fill and drain.
                if pause_every.is_some_and(|every| taken % every == 0) {
                    thread::sleep(Duration::from_millis(1));
                } else if taken % 8 == 0 {
                    thread::yield_now();
                }
            }
            Seen::TooSlow { .. } => {
                progress.too_slow.fetch_add(1, Ordering::SeqCst);
            }
            Seen::Gap { .. } | Seen::Closed => {}
        }
        items.push(item);
    };
    if !kind.is_stream() {
        loop {
            // Read before the attempt: an empty queue after every broadcast returned
            // stays empty.
            let finished = shared.done.load(Ordering::SeqCst);
            let next = match kind {
                Kind::DeliverNext => match channel.deliver_next(listener.id()) {
                    Ok(delivery) => Some(delivery),
                    Err(Error::NoMessages(_)) => None,
                    Err(Error::InvalidListener(_)) if until == Until::Removed => break,
                    Err(error) => return Err(format!("deliver_next failed: {error}")),
                },
                _ => listener.take_next(),
            };
            match next {
                Some(delivery) => record(seen(&delivery)),
                None if until == Until::Removed && listener.is_removed() => break,
                None if until == Until::Idle && finished => break,
                None if Instant::now() > shared.deadline => {
                    return Err(format!("{kind:?} consumer hung"));
                }
                None => thread::yield_now(),
            }
        }
        return Ok(items);
    }
    let flag = Arc::new(Flag {
        woken: AtomicBool::new(false),
        thread: thread::current(),
    });
    // A too_slow marker ends its stream; the consumer comes back with a new one.
    loop {
        let mut stream = channel.message_stream(listener);
        let mut ended_by_marker = false;
        loop {
            let next = match kind {
                Kind::Blocking => {
                    let left = shared.deadline.saturating_duration_since(Instant::now());
                    match stream.recv_timeout(left) {
                        Ok(delivery) => Some(delivery),
                        Err(eric_core::RecvTimeoutError::Ended) => None,
                        Err(eric_core::RecvTimeoutError::Timeout) => {
                            return Err("blocking stream hung: no wake came".into());
                        }
                    }
                }
                Kind::AsyncBlockOn => futures::executor::block_on(stream.next()),
                _ => poll_by_hand(&mut stream, &flag, shared)?,
            };
            let Some(delivery) = next else { break };
            let item = seen(&delivery);
            ended_by_marker = matches!(item, Seen::TooSlow { .. });
            record(item);
            if ended_by_marker {
                if !stream.is_finished() {
                    return Err("a stream went on after its too_slow marker".into());
                }
                break;
            }
        }
        if !ended_by_marker {
            return Ok(items);
        }
    }
}

fn spawn_consumer(
    channel: &Channel<Identity>,
    listener: &Arc<Listener>,
    kind: Kind,
    until: Until,
    pause_every: Option<u64>,
    shared: &Arc<Shared>,
    start: &Arc<Barrier>,
) -> Consumer {
    let progress = Arc::new(Progress::default());
    let handle = {
        let (channel, listener) = (channel.clone(), Arc::clone(listener));
        let (progress, shared, start) =
            (Arc::clone(&progress), Arc::clone(shared), Arc::clone(start));
        thread::spawn(move || {
            start.wait();
            consume(
                &channel,
                &listener,
                kind,
                until,
                pause_every,
                &progress,
                &shared,
            )
        })
    };
    Consumer {
        listener: Arc::clone(listener),
        kind,
        progress,
        handle,
    }
}

/// Publisher `p` broadcasts its messages in sequence; returns its reports in order.
fn spawn_publishers(
    channel: &Channel<Identity>,
    start: &Arc<Barrier>,
    published: &Arc<AtomicU64>,
) -> Vec<JoinHandle<Vec<BroadcastReport>>> {
    (0..PUBLISHERS)
        .map(|p| {
            let (channel, start, published) =
                (channel.clone(), Arc::clone(start), Arc::clone(published));
            thread::spawn(move || {
                start.wait();
                (0..PER_PUBLISHER)
                    .map(|s| {
                        let report = channel.broadcast(message(p, s));
                        published.fetch_add(1, Ordering::SeqCst);
                        // Leaves the cores to consumers now and then, so that queues
                        // drain (and have room) as well as fill.
                        if s % 4 == 0 {
                            thread::yield_now();
                        }
                        report
                    })
                    .collect()
            })
        })
        .collect()
}

/// The bound a queue must never exceed, as seen from another thread.
#[derive(Clone, Copy)]
struct Bound {
    count: Option<usize>,
    bytes: Option<usize>,
}

/// Reads every listener's stats until the publishers are done: each read locks the
/// queue, applies the tail and settles the room, racing publishers and consumers.
fn spawn_observer(
    watched: Vec<(Arc<Listener>, Bound)>,
    shared: &Arc<Shared>,
    start: &Arc<Barrier>,
) -> JoinHandle<Result<(), String>> {
    let (shared, start) = (Arc::clone(shared), Arc::clone(start));
    thread::spawn(move || {
        start.wait();
        while !shared.done.load(Ordering::SeqCst) {
            for (listener, bound) in &watched {
                let stats = listener.stats();
                if bound.count.is_some_and(|count| stats.queued > count) {
                    return Err(format!(
                        "listener {} held {} messages, over its capacity {:?}",
                        listener.id(),
                        stats.queued,
                        bound.count
                    ));
                }
                if bound.bytes.is_some_and(|bytes| stats.queued_bytes > bytes) {
                    return Err(format!(
                        "listener {} held {} bytes, over its bound {:?}",
                        listener.id(),
                        stats.queued_bytes,
                        bound.bytes
                    ));
                }
            }
            thread::yield_now();
        }
        Ok(())
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// Waits for `handle` until `until`; a thread still running then is left behind (a
/// join would hang the test) and reported.
fn join_by<T>(handle: JoinHandle<T>, until: Instant, what: &str) -> Result<T, String> {
    while !handle.is_finished() {
        if Instant::now() > until {
            return Err(format!("{what} did not finish in time"));
        }
        thread::sleep(Duration::from_millis(1));
    }
    handle
        .join()
        .map_err(|payload| format!("{what} panicked: {}", panic_message(&*payload)))
}

/// Whether a stream consumer has everything its queue got: nothing queued, nothing
/// taken in a batch and not yielded, no too_slow marker due.
fn idle(consumer: &Consumer) -> bool {
    let stats = consumer.listener.stats();
    stats.queued == 0
        && stats.delivered == consumer.progress.messages.load(Ordering::SeqCst)
        && stats.too_slow == consumer.progress.too_slow.load(Ordering::SeqCst)
}

/// After the last broadcast: waits for every consumer to take all it got (a consumer
/// that never does was not woken), stops the listeners to end the streams, and
/// collects what each consumer saw. Panics with every failure at once.
fn finish(label: &str, consumers: Vec<Consumer>) -> Vec<Vec<Seen>> {
    let mut errors = Vec::new();
    let until = Instant::now() + GRACE;
    for consumer in &consumers {
        let settled = |c: &Consumer| c.handle.is_finished() || (c.kind.is_stream() && idle(c));
        while !settled(consumer) {
            if Instant::now() > until {
                let stats = consumer.listener.stats();
                errors.push(format!(
                    "listener {} ({:?}) not idle {GRACE:?} after the last broadcast \
                     (its consumer was not woken?): {stats:?}, yielded {} messages and {} \
                     too_slow markers",
                    consumer.listener.id(),
                    consumer.kind,
                    consumer.progress.messages.load(Ordering::SeqCst),
                    consumer.progress.too_slow.load(Ordering::SeqCst),
                ));
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
    for consumer in &consumers {
        consumer.listener.stop();
    }
    let until = Instant::now() + GRACE;
    let mut all = Vec::new();
    for consumer in consumers {
        let what = format!(
            "consumer of {} ({:?})",
            consumer.listener.id(),
            consumer.kind
        );
        match join_by(consumer.handle, until, &what) {
            Ok(Ok(items)) => all.push(items),
            Ok(Err(error)) => errors.push(format!("{what}: {error}")),
            Err(error) => errors.push(error),
        }
        // Idle and stopped: nothing may be left, not even a batch given back.
        if let Some(left) = consumer.listener.take_next() {
            errors.push(format!("{what} left {left:?} in its queue"));
        }
    }
    assert!(errors.is_empty(), "{label}:\n{}", errors.join("\n"));
    all
}

struct Plan {
    defer: bool,
    /// The channel's queue configuration: a byte bound there makes publishes measure
    /// their messages.
    channel_config: QueueConfig,
    /// One listener per entry, with this queue configuration.
    configs: Vec<QueueConfig>,
    ledger: Option<Arc<QueueLedger>>,
    pause_every: Option<u64>,
}

struct Outcome {
    label: String,
    /// Per publisher, its reports in the order it broadcast.
    reports: Vec<Vec<BroadcastReport>>,
    listeners: Vec<Arc<Listener>>,
    kinds: Vec<Kind>,
    /// Per listener, what its consumer saw.
    seen: Vec<Vec<Seen>>,
    channel: Channel<Identity>,
}

impl Outcome {
    fn all_reports(&self) -> impl Iterator<Item = &BroadcastReport> {
        self.reports.iter().flatten()
    }

    fn sum(&self, field: fn(&BroadcastReport) -> usize) -> u64 {
        self.all_reports().map(|r| field(r) as u64).sum()
    }
}

fn run(name: &str, plan: &Plan, round: usize) -> Outcome {
    let label = format!("{name} (defer_broadcasts({}), round {round})", plan.defer);
    let mut builder = Channel::builder(Identity)
        .queue_config(plan.channel_config)
        .defer_broadcasts(plan.defer);
    if let Some(ledger) = &plan.ledger {
        builder = builder.ledger(Arc::clone(ledger));
    }
    let channel = builder.build();
    let listeners: Vec<_> = plan
        .configs
        .iter()
        .map(|config| {
            let listener = channel
                .register_listener(Listener::new().queue_config(*config))
                .unwrap();
            listener.start();
            listener
        })
        .collect();
    let kinds: Vec<_> = (0..listeners.len())
        .map(|i| KINDS[(i + round) % KINDS.len()])
        .collect();
    let shared = Arc::new(Shared {
        done: AtomicBool::new(false),
        deadline: Instant::now() + LIMIT,
    });
    let start = Arc::new(Barrier::new(listeners.len() + PUBLISHERS as usize + 1 + 1));
    let consumers: Vec<_> = listeners
        .iter()
        .zip(&kinds)
        .map(|(listener, kind)| {
            spawn_consumer(
                &channel,
                listener,
                *kind,
                Until::Idle,
                plan.pause_every,
                &shared,
                &start,
            )
        })
        .collect();
    let watched = listeners
        .iter()
        .zip(&kinds)
        .zip(&plan.configs)
        .map(|((listener, kind), config)| {
            let bound = Bound {
                count: config.capacity,
                // A batch still counts against the bound while it is yielded, so the
                // queue may hold more; the other consumers leave it none.
                bytes: config.max_bytes.filter(|_| !kind.batches()),
            };
            (Arc::clone(listener), bound)
        })
        .collect();
    let observer = spawn_observer(watched, &shared, &start);
    let published = Arc::new(AtomicU64::new(0));
    let publishers = spawn_publishers(&channel, &start, &published);
    start.wait();
    let reports: Vec<_> = publishers
        .into_iter()
        .map(|publisher| join_by(publisher, shared.deadline, "publisher"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{label}: {error}"));
    shared.done.store(true, Ordering::SeqCst);
    join_by(observer, shared.deadline, "observer")
        .and_then(|checked| checked)
        .unwrap_or_else(|error| panic!("{label}: {error}"));
    let seen = finish(&label, consumers);
    let outcome = Outcome {
        label,
        reports,
        listeners,
        kinds,
        seen,
        channel,
    };
    check_messages(&outcome);
    outcome
}

/// What holds for every consumer whatever the queues did: offsets grow, each
/// publisher's messages come in the order it sent them, and an offset carries the same
/// message for everyone.
fn check_messages(outcome: &Outcome) {
    let label = &outcome.label;
    let mut at_offset: HashMap<u64, (u64, u64)> = HashMap::new();
    for (l, items) in outcome.seen.iter().enumerate() {
        let mut last_offset = 0;
        let mut last_seq: HashMap<u64, u64> = HashMap::new();
        for item in items {
            let Seen::Message {
                offset,
                publisher,
                seq,
            } = *item
            else {
                continue;
            };
            assert!(
                (1..=TOTAL).contains(&offset) && publisher < PUBLISHERS && seq < PER_PUBLISHER,
                "{label}: listener {l} got {item:?}, which nobody published"
            );
            assert!(
                offset > last_offset,
                "{label}: listener {l} got offset {offset} after {last_offset}"
            );
            last_offset = offset;
            if let Some(before) = last_seq.insert(publisher, seq) {
                assert!(
                    seq > before,
                    "{label}: listener {l} got publisher {publisher}'s message {seq} after {before}"
                );
            }
            let first = *at_offset.entry(offset).or_insert((publisher, seq));
            assert_eq!(
                first,
                (publisher, seq),
                "{label}: listener {l} got another message at offset {offset} than others"
            );
        }
    }
}

/// Runs a scenario `ROUNDS` times with deferred broadcasts and as many with eager ones
/// (the control), and checks each outcome.
fn both_ways(name: &str, plan: impl Fn(bool) -> Plan, check: impl Fn(&Outcome)) {
    for defer in [true, false] {
        let plan = plan(defer);
        for round in 0..ROUNDS {
            check(&run(name, &plan, round));
        }
    }
}

#[test]
fn unbounded_queues_lose_nothing_and_keep_order() {
    const LISTENERS: usize = 6;
    both_ways(
        "unbounded",
        |defer| Plan {
            defer,
            channel_config: QueueConfig::unbounded(),
            configs: vec![QueueConfig::unbounded(); LISTENERS],
            ledger: None,
            pause_every: None,
        },
        |outcome| {
            let label = &outcome.label;
            let expected = BroadcastReport {
                delivered: LISTENERS,
                ..BroadcastReport::default()
            };
            for report in outcome.all_reports() {
                assert_eq!(*report, expected, "{label}: a broadcast missed a listener");
            }
            for (l, items) in outcome.seen.iter().enumerate() {
                assert_eq!(
                    offsets(items),
                    (1..=TOTAL).collect::<Vec<_>>(),
                    "{label}: listener {l} ({:?}) did not get every broadcast exactly once",
                    outcome.kinds[l]
                );
                assert_eq!(
                    items.len() as u64,
                    TOTAL,
                    "{label}: listener {l} got markers"
                );
                let stats = outcome.listeners[l].stats();
                assert_eq!(
                    (stats.delivered, stats.dropped, stats.too_slow, stats.queued),
                    (TOTAL, 0, 0, 0),
                    "{label}: listener {l}'s counters"
                );
            }
        },
    );
}

/// Counts, over every run of a test, how often the path it is about was taken: a run
/// that never overflowed a queue would check nothing about overflow.
#[derive(Default)]
struct Exercised(Mutex<u64>);

impl Exercised {
    fn add(&self, count: u64) {
        *self.0.lock().unwrap() += count;
    }

    fn assert_some(&self, what: &str) {
        assert!(
            *self.0.lock().unwrap() > 0,
            "no run {what}: consumers kept up, the test checked nothing"
        );
    }
}

#[test]
fn reject_accounts_for_every_broadcast_and_never_overfills() {
    const LISTENERS: usize = 5;
    let rejected = Exercised::default();
    both_ways(
        "reject",
        |defer| Plan {
            defer,
            channel_config: QueueConfig::unbounded(),
            configs: vec![QueueConfig::bounded(CAPACITY, OverflowPolicy::Reject); LISTENERS],
            ledger: None,
            pause_every: Some(128),
        },
        |outcome| {
            let label = &outcome.label;
            for report in outcome.all_reports() {
                assert_eq!(
                    (report.delivered + report.rejected, report.discarded),
                    (LISTENERS, 0),
                    "{label}: {report:?}"
                );
                assert_eq!((report.disconnected, report.too_slow), (0, 0), "{label}");
            }
            let mut received = 0;
            let mut dropped = 0;
            for (l, items) in outcome.seen.iter().enumerate() {
                let stats = outcome.listeners[l].stats();
                let got = offsets(items).len() as u64;
                assert_eq!(
                    got as usize,
                    items.len(),
                    "{label}: Reject makes no markers"
                );
                // Each broadcast was queued for the listener, or refused and counted.
                assert_eq!(
                    got + stats.dropped,
                    TOTAL,
                    "{label}: listener {l} ({:?}) got {got}, dropped {}",
                    outcome.kinds[l],
                    stats.dropped
                );
                assert_eq!(stats.delivered, got, "{label}: listener {l}'s delivered");
                received += got;
                dropped += stats.dropped;
            }
            assert_eq!(
                outcome.sum(|r| r.delivered),
                received,
                "{label}: reports' delivered"
            );
            assert_eq!(
                outcome.sum(|r| r.rejected),
                dropped,
                "{label}: reports' rejected"
            );
            rejected.add(dropped);
        },
    );
    rejected.assert_some("rejected a message");
}

/// `DropOldest` discards the oldest queued message, so what leaves a queue does so in
/// offset order, each message popped or discarded: a stream sees every offset, or gap
/// markers whose counts and positions cover exactly what it did not see.
fn check_gaps(label: &str, l: usize, items: &[Seen], channel: &Channel<Identity>) {
    let position = |offset| Position::new(channel.epoch(), offset).to_string();
    let mut prev = 0;
    let mut markers: Vec<&Value> = Vec::new();
    for item in items {
        match item {
            Seen::Gap { at, payload } => {
                assert_eq!(
                    payload["last_event_id"],
                    position(*at),
                    "{label}: listener {l}: {payload}"
                );
                assert_eq!(payload["reason"], "dropped", "{label}: {payload}");
                markers.push(payload);
            }
            Seen::Message { offset, .. } => {
                let missed = offset - prev - 1;
                if markers.is_empty() {
                    assert_eq!(
                        missed, 0,
                        "{label}: listener {l}'s stream skipped from {prev} to {offset} with no marker"
                    );
                } else {
                    let counted: u64 = markers.iter().map(|m| m["dropped"].as_u64().unwrap()).sum();
                    assert_eq!(
                        counted, missed,
                        "{label}: listener {l}: markers {markers:?} between {prev} and {offset}"
                    );
                    assert_eq!(
                        markers[0]["last_event_id"],
                        position(prev),
                        "{label}: listener {l}: the first marker after {prev}: {markers:?}"
                    );
                    // A marker's first_available may be discarded before it is popped;
                    // the next marker then starts right there.
                    for pair in markers.windows(2) {
                        let next_first: u64 = pair[0]["first_available"]
                            .as_str()
                            .and_then(|p| p.rsplit('-').next())
                            .and_then(|o| o.parse().ok())
                            .unwrap();
                        assert_eq!(
                            pair[1]["last_event_id"],
                            position(next_first - 1),
                            "{label}: listener {l}: markers {markers:?}"
                        );
                    }
                    assert_eq!(
                        markers.last().unwrap()["first_available"],
                        position(*offset),
                        "{label}: listener {l}: the last marker before {offset}: {markers:?}"
                    );
                    markers.clear();
                }
                prev = *offset;
            }
            Seen::TooSlow { .. } | Seen::Closed => {
                panic!("{label}: listener {l} got {item:?}")
            }
        }
    }
    assert!(markers.is_empty(), "{label}: listener {l} ended on markers");
}

#[test]
fn drop_oldest_reports_every_discard_and_marks_every_gap() {
    const LISTENERS: usize = 5;
    let discarded = Exercised::default();
    both_ways(
        "drop oldest",
        |defer| Plan {
            defer,
            channel_config: QueueConfig::unbounded(),
            configs: vec![QueueConfig::bounded(CAPACITY, OverflowPolicy::DropOldest); LISTENERS],
            ledger: None,
            pause_every: Some(128),
        },
        |outcome| {
            let label = &outcome.label;
            for report in outcome.all_reports() {
                assert_eq!(report.delivered, LISTENERS, "{label}: {report:?}");
                assert!(report.discarded <= LISTENERS, "{label}: {report:?}");
                assert_eq!(
                    (report.rejected, report.disconnected, report.too_slow),
                    (0, 0, 0),
                    "{label}: {report:?}"
                );
            }
            let mut dropped = 0;
            for (l, items) in outcome.seen.iter().enumerate() {
                let stats = outcome.listeners[l].stats();
                let got = offsets(items);
                assert_eq!(
                    got.len() as u64 + stats.dropped,
                    TOTAL,
                    "{label}: listener {l} ({:?}) got {}, dropped {}",
                    outcome.kinds[l],
                    got.len(),
                    stats.dropped
                );
                assert_eq!(stats.delivered, got.len() as u64, "{label}: listener {l}");
                // The last broadcast is queued whatever the queue held, and nothing
                // came after it to discard it.
                assert_eq!(got.last(), Some(&TOTAL), "{label}: listener {l}");
                if outcome.kinds[l].is_stream() {
                    check_gaps(label, l, items, &outcome.channel);
                } else {
                    assert_eq!(
                        got.len(),
                        items.len(),
                        "{label}: pull consumers get no marker"
                    );
                }
                dropped += stats.dropped;
            }
            assert_eq!(
                outcome.sum(|r| r.discarded),
                dropped,
                "{label}: reports' discarded"
            );
            discarded.add(dropped);
        },
    );
    discarded.assert_some("discarded a message");
}

/// A too_slow marker of a stream: where its stream stopped, and that what follows it
/// comes after what the cut discarded.
fn check_cuts(label: &str, l: usize, items: &[Seen], channel: &Channel<Identity>, bound: usize) {
    let position = |offset| Position::new(channel.epoch(), offset).to_string();
    let mut prev = 0;
    // Whether a message came since the last marker (or the start).
    let mut fresh = true;
    let mut last_marker = None;
    for item in items {
        match item {
            Seen::TooSlow { at, payload } => {
                assert_eq!(
                    payload["last_event_id"],
                    position(*at),
                    "{label}: {payload}"
                );
                assert_eq!(payload["max_lag_bytes"], bound, "{label}: {payload}");
                // The cut discarded a non-empty queue from its front, which follows
                // the last message the stream took out.
                if fresh {
                    assert_eq!(*at, prev, "{label}: listener {l}: {payload} after {prev}");
                } else {
                    assert!(
                        last_marker.is_some_and(|last| *at > last),
                        "{label}: listener {l}: {payload} after the marker at {last_marker:?}"
                    );
                }
                last_marker = Some(*at);
                fresh = false;
            }
            Seen::Message { offset, .. } => {
                match last_marker.filter(|_| !fresh) {
                    // The cut lost the queue's front and the message over the bound.
                    Some(at) => assert!(
                        *offset >= at + 3,
                        "{label}: listener {l}: {offset} right after the marker at {at}"
                    ),
                    None => assert_eq!(
                        *offset,
                        prev + 1,
                        "{label}: listener {l}'s stream skipped from {prev} with no marker"
                    ),
                }
                prev = *offset;
                fresh = true;
            }
            Seen::Gap { .. } | Seen::Closed => panic!("{label}: listener {l} got {item:?}"),
        }
    }
}

#[test]
fn byte_bound_cuts_are_counted_and_marked() {
    const LISTENERS: usize = 5;
    let bound = 4 * size();
    let cuts = Exercised::default();
    let losses = Arc::new(Mutex::new(Losses::default()));
    both_ways(
        "byte bound",
        |defer| {
            *losses.lock().unwrap() = Losses::default();
            let observed = Arc::clone(&losses);
            let ledger = QueueLedger::new(None).observe(move |_, lost| {
                let mut sum = observed.lock().unwrap();
                sum.discarded += lost.discarded;
                sum.too_slow += lost.too_slow;
                sum.too_slow_discarded += lost.too_slow_discarded;
            });
            // The channel's bound makes publishes measure their messages.
            let config = QueueConfig::unbounded().with_max_bytes(bound);
            Plan {
                defer,
                channel_config: config,
                configs: vec![config; LISTENERS],
                ledger: Some(Arc::new(ledger)),
                pause_every: Some(128),
            }
        },
        |outcome| {
            let label = &outcome.label;
            for report in outcome.all_reports() {
                assert!(
                    report.delivered + report.too_slow <= LISTENERS,
                    "{label}: {report:?}"
                );
                assert_eq!(
                    (report.rejected, report.discarded, report.disconnected),
                    (0, 0, 0),
                    "{label}: {report:?}"
                );
            }
            let (mut dropped, mut too_slow) = (0, 0);
            for (l, items) in outcome.seen.iter().enumerate() {
                let stats = outcome.listeners[l].stats();
                let got = offsets(items).len() as u64;
                // Each broadcast was queued and taken, or lost to a cut, counted.
                assert_eq!(
                    got + stats.dropped,
                    TOTAL,
                    "{label}: listener {l} ({:?}) got {got}, {stats:?}",
                    outcome.kinds[l]
                );
                assert_eq!(stats.delivered, got, "{label}: listener {l}");
                if outcome.kinds[l].is_stream() {
                    let markers = items.len() as u64 - got;
                    assert_eq!(markers, stats.too_slow, "{label}: listener {l}'s markers");
                    check_cuts(label, l, items, &outcome.channel, bound);
                } else {
                    assert_eq!(
                        got as usize,
                        items.len(),
                        "{label}: pull consumers get no marker"
                    );
                }
                dropped += stats.dropped;
                too_slow += stats.too_slow;
            }
            let lost = std::mem::take(&mut *losses.lock().unwrap());
            assert_eq!(
                outcome.sum(|r| r.too_slow),
                too_slow,
                "{label}: reports' too_slow"
            );
            assert_eq!(lost.too_slow, too_slow, "{label}: observed {lost:?}");
            assert_eq!(
                lost.too_slow_discarded, dropped,
                "{label}: observed {lost:?}"
            );
            assert_eq!(lost.discarded, 0, "{label}: observed {lost:?}");
            cuts.add(too_slow);
        },
    );
    cuts.assert_some("cut a queue");
}

/// A ledger's count after every queue was removed or drained must be zero; as it reads
/// a negative count as zero, one more message, queued once, must then count exactly its
/// size.
fn assert_ledger_empty(label: &str, channel: &Channel<Identity>, ledger: &QueueLedger) {
    assert_eq!(
        ledger.queued_bytes(),
        0,
        "{label}: bytes left counted in the ledger after every queue was removed"
    );
    let probe = channel.add_listener();
    channel.broadcast(message(0, 0));
    assert_eq!(
        ledger.queued_bytes(),
        size(),
        "{label}: the ledger counted below zero before this message"
    );
    channel.remove_listener(probe.id()).unwrap();
    assert_eq!(
        ledger.queued_bytes(),
        0,
        "{label}: a removed queue kept its bytes"
    );
}

fn removal_round(defer: bool, round: usize) {
    const LISTENERS: usize = 10;
    /// Removed while the publishers broadcast; the rest once their consumers wait.
    const EARLY: usize = 5;
    let label = format!("removal (defer_broadcasts({defer}), round {round})");
    // A budget makes every queue count its bytes in the ledger.
    let ledger = Arc::new(QueueLedger::new(Some(1 << 30)));
    let channel = Channel::builder(Identity)
        .ledger(Arc::clone(&ledger))
        .defer_broadcasts(defer)
        .build();
    let shared = Arc::new(Shared {
        done: AtomicBool::new(false),
        deadline: Instant::now() + LIMIT,
    });
    let start = Arc::new(Barrier::new(LISTENERS + PUBLISHERS as usize + 1 + 1));
    let consumers: Vec<_> = (0..LISTENERS)
        .map(|i| {
            let listener = channel.add_listener();
            listener.start();
            let kind = KINDS[(i + round) % KINDS.len()];
            spawn_consumer(
                &channel,
                &listener,
                kind,
                Until::Removed,
                None,
                &shared,
                &start,
            )
        })
        .collect();
    let published = Arc::new(AtomicU64::new(0));
    let remover = {
        let (channel, published, shared, start) = (
            channel.clone(),
            Arc::clone(&published),
            Arc::clone(&shared),
            Arc::clone(&start),
        );
        let ids: Vec<String> = consumers[..EARLY]
            .iter()
            .map(|c| c.listener.id().to_owned())
            .collect();
        thread::spawn(move || {
            start.wait();
            for (i, id) in ids.iter().enumerate() {
                let due = (i as u64 + 1) * TOTAL / (EARLY as u64 + 1);
                while published.load(Ordering::SeqCst) < due {
                    assert!(Instant::now() < shared.deadline, "publishers stalled");
                    thread::yield_now();
                }
                channel.remove_listener(id).unwrap();
            }
        })
    };
    let publishers = spawn_publishers(&channel, &start, &published);
    start.wait();
    let reports: Vec<Vec<BroadcastReport>> = publishers
        .into_iter()
        .map(|publisher| join_by(publisher, shared.deadline, "publisher"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{label}: {error}"));
    shared.done.store(true, Ordering::SeqCst);
    join_by(remover, shared.deadline, "remover").unwrap_or_else(|error| panic!("{label}: {error}"));

    // The rest are removed while their consumers wait (or spin) on empty queues.
    let until = Instant::now() + GRACE;
    for consumer in &consumers[EARLY..] {
        while !idle(consumer) {
            assert!(
                Instant::now() < until,
                "{label}: listener {} ({:?}) not idle after the last broadcast: {:?}",
                consumer.listener.id(),
                consumer.kind,
                consumer.listener.stats()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
    let mut errors = Vec::new();
    let mut seen = Vec::new();
    for (l, consumer) in consumers.into_iter().enumerate() {
        let _ = channel.remove_listener(consumer.listener.id());
        // Removal wakes a waiting consumer at once: GRACE is ample.
        let what = format!("consumer of removed listener {l} ({:?})", consumer.kind);
        match join_by(consumer.handle, Instant::now() + GRACE, &what) {
            Ok(Ok(items)) => seen.push((l, consumer.kind, consumer.listener, items)),
            Ok(Err(error)) => errors.push(format!("{what}: {error}")),
            Err(error) => errors.push(error),
        }
    }
    assert!(errors.is_empty(), "{label}:\n{}", errors.join("\n"));

    for (l, kind, listener, items) in &seen {
        let got = offsets(items);
        // Unbounded queues: a consumer gets every broadcast until its queue is
        // discarded with its listener.
        assert_eq!(
            got,
            (1..=got.len() as u64).collect::<Vec<_>>(),
            "{label}: listener {l} ({kind:?}) missed a broadcast"
        );
        if *l >= EARLY {
            assert_eq!(got.len() as u64, TOTAL, "{label}: listener {l} ({kind:?})");
        }
        let closed = items.iter().filter(|item| **item == Seen::Closed).count();
        if kind.is_stream() {
            assert_eq!(
                (closed, items.last()),
                (1, Some(&Seen::Closed)),
                "{label}: listener {l}'s stream must end with one closed item"
            );
        } else {
            assert_eq!(
                closed, 0,
                "{label}: listener {l}: pull consumers get no marker"
            );
        }
        assert_eq!(
            items.len(),
            got.len() + closed,
            "{label}: listener {l} got markers"
        );
        assert!(listener.is_removed(), "{label}: listener {l}");
        assert_eq!(
            listener.stats().queued,
            0,
            "{label}: listener {l} kept its queue"
        );
    }
    for (p, reports) in reports.iter().enumerate() {
        for pair in reports.windows(2) {
            // Listeners only leave: a later broadcast reaches no more of them.
            assert!(
                pair[1].delivered <= pair[0].delivered,
                "{label}: publisher {p}: {:?} after {:?}",
                pair[1],
                pair[0]
            );
        }
        for report in reports {
            assert!(report.delivered <= LISTENERS, "{label}: {report:?}");
            assert_eq!(
                (
                    report.rejected,
                    report.discarded,
                    report.disconnected,
                    report.too_slow
                ),
                (0, 0, 0, 0),
                "{label}: {report:?}"
            );
        }
    }
    assert_eq!(channel.listener_count(), 0, "{label}");
    assert_ledger_empty(&label, &channel, &ledger);
}

#[test]
fn removal_wakes_waiting_consumers_and_leaks_no_bytes() {
    for defer in [true, false] {
        for round in 0..ROUNDS {
            removal_round(defer, round);
        }
    }
}

/// A listener leaves its channel's set before it is marked removed, and only then
/// applies what was deferred to it (to discard it and give its bytes back). A broadcast
/// in between that trims the tail does not count it among the listeners that still need
/// their entries. Listeners that nobody consumes, added and removed while a publisher
/// broadcasts, are removed with deferred entries pending every time, so any trim in that
/// window would take their bytes out of reach.
fn churn_round(defer: bool) {
    let label = format!("churn (defer_broadcasts({defer}))");
    let ledger = Arc::new(QueueLedger::new(Some(1 << 30)));
    let channel = Channel::builder(Identity)
        .ledger(Arc::clone(&ledger))
        .defer_broadcasts(defer)
        .build();
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (channel, stop, published) =
            (channel.clone(), Arc::clone(&stop), Arc::clone(&published));
        thread::spawn(move || {
            let mut seq = 0;
            while !stop.load(Ordering::SeqCst) {
                channel.broadcast(message(0, seq));
                published.fetch_add(1, Ordering::SeqCst);
                seq += 1;
            }
        })
    };
    let until = Instant::now() + Duration::from_millis(300);
    let deadline = Instant::now() + LIMIT;
    let mut churned = 0;
    while Instant::now() < until {
        let listener = channel.add_listener();
        let from = published.load(Ordering::SeqCst);
        // At least one broadcast after the join, deferred to the listener.
        while published.load(Ordering::SeqCst) < from + 2 {
            assert!(Instant::now() < deadline, "{label}: the publisher stalled");
            thread::yield_now();
        }
        channel.remove_listener(listener.id()).unwrap();
        churned += 1;
    }
    stop.store(true, Ordering::SeqCst);
    join_by(publisher, deadline, "publisher").unwrap_or_else(|error| panic!("{label}: {error}"));
    assert!(churned > 0, "{label}: no listener came and went");
    assert_ledger_empty(
        &format!("{label} after {churned} listeners"),
        &channel,
        &ledger,
    );
}

#[test]
fn listeners_removed_during_broadcasts_leak_no_deferred_bytes() {
    for defer in [true, false] {
        churn_round(defer);
    }
}
