//! Bounded queues, overflow policies, resume history, concurrency and runtime-free async.

mod common;

use common::*;
use eric_core::{
    message_size, Channel, Error, Identity, Listener, Losses, Message, OverflowPolicy, QueueConfig,
    QueueLedger, Retention, StreamDelay, Timer, MESSAGE_TYPE_CLOSED, MESSAGE_TYPE_ERROR,
};
use futures::StreamExt;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn bounded_listener(
    channel: &Channel<Identity>,
    capacity: usize,
    policy: OverflowPolicy,
) -> Arc<Listener> {
    let listener = channel
        .register_listener(Listener::new().queue_config(QueueConfig::bounded(capacity, policy)))
        .unwrap();
    listener.start();
    listener
}

#[test]
fn reject_policy_refuses_the_new_message_and_counts_it() {
    let channel = Channel::new(Identity);
    let listener = bounded_listener(&channel, 2, OverflowPolicy::Reject);
    for message in counters(2) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let error = channel
        .dispatch(listener.id(), Message::empty("t"))
        .unwrap_err();
    assert_eq!(
        error,
        Error::QueueFull {
            listener: listener.id().into(),
            capacity: 2
        }
    );
    let report = channel.broadcast(Message::empty("b"));
    assert_eq!((report.delivered, report.rejected), (0, 1));
    assert_eq!(listener.stats().dropped, 2);
    assert_eq!(
        channel.deliver_next(listener.id()).unwrap().payload,
        json!({"i": 0})
    );
}

#[test]
fn drop_oldest_policy_keeps_the_newest_messages() {
    let channel = Channel::new(Identity);
    let listener = bounded_listener(&channel, 2, OverflowPolicy::DropOldest);
    for message in counters(5) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let kept: Vec<_> = (0..2)
        .map(|_| channel.deliver_next(listener.id()).unwrap().payload.clone())
        .collect();
    assert_eq!(kept, [json!({"i": 3}), json!({"i": 4})]);
    assert_eq!(listener.stats().dropped, 3);
}

#[test]
fn drop_oldest_policy_discards_queued_messages_and_the_log_keeps_them() {
    let channel = Channel::builder(Identity)
        .retention(Retention::entries(3))
        .build();
    let config = QueueConfig::bounded(2, OverflowPolicy::DropOldest);
    let listener = channel
        .register_listener(Listener::new().queue_config(config))
        .unwrap();
    listener.start();
    let deliver = || channel.deliver_next(listener.id()).unwrap().id;
    for message in counters(2) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    assert_eq!(deliver(), 1);
    // 2 and 3 are queued; 4 pushes 2 out, not the delivered 1.
    for message in counters(2) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    assert_eq!((listener.queue_len(), listener.stats().dropped), (2, 1));
    assert_eq!((deliver(), deliver()), (3, 4));
    channel
        .dispatch(listener.id(), Message::empty("t"))
        .unwrap();
    assert_eq!(deliver(), 5);
    // The log retains the last three published: 3, 4, 5.
    let mut resumed = channel.message_stream_after(&listener, &at(&channel, 0));
    let marker = resumed.try_recv().unwrap();
    assert_eq!(
        marker.payload,
        json!({"error": "history_gap", "last_event_id": at(&channel, 0),
               "first_available": at(&channel, 3), "reason": "trimmed"})
    );
    assert_eq!(
        marker.id, 2,
        "the marker stands right before what follows it"
    );
    let ids: Vec<u64> = std::iter::from_fn(|| resumed.try_recv().map(|d| d.id)).collect();
    assert_eq!(ids, [3, 4, 5]);
    assert_eq!(listener.queue_len(), 0);
}

#[test]
fn a_stream_marks_every_run_of_drop_oldest_discards_before_the_next_message() {
    let channel = Channel::builder(Identity)
        .retention(Retention::entries(100))
        .build();
    let listener = bounded_listener(&channel, 2, OverflowPolicy::DropOldest);
    let mut stream = channel.message_stream(&listener);
    channel.broadcast(Message::empty("t"));
    assert_eq!(stream.try_recv().unwrap().id, 1);
    // 2..=6 published: 2, 3 and 4 are discarded, 5 and 6 kept.
    let mut discarded = 0;
    for message in counters(5) {
        discarded += channel.broadcast(message).discarded;
    }
    assert_eq!((listener.stats().dropped, discarded), (3, 3));
    let marker = stream.try_recv().unwrap();
    assert_eq!(marker.msg_type, MESSAGE_TYPE_ERROR);
    assert_eq!(
        marker.id, 1,
        "the position before the first message discarded"
    );
    assert_eq!(
        marker.payload,
        json!({"error": "history_gap", "last_event_id": at(&channel, 1),
               "first_available": at(&channel, 5), "reason": "dropped", "dropped": 3})
    );
    assert_eq!(stream.try_recv().unwrap().id, 5);
    // One more discard between two items: its own marker.
    for message in counters(2) {
        channel.broadcast(message);
    }
    let marker = stream.try_recv().unwrap();
    assert_eq!(
        (
            marker.id,
            &marker.payload["dropped"],
            &marker.payload["first_available"]
        ),
        (5, &json!(1), &json!(at(&channel, 7)))
    );
    let ids: Vec<u64> = std::iter::from_fn(|| stream.try_recv().map(|d| d.id)).collect();
    assert_eq!(ids, [7, 8]);
    assert_eq!(listener.stats().dropped, 4);
}

#[test]
fn a_client_that_resumes_from_a_drop_marker_gets_the_discarded_messages_from_the_log() {
    let channel = Channel::builder(Identity)
        .retention(Retention::entries(100))
        .build();
    let listener = bounded_listener(&channel, 2, OverflowPolicy::DropOldest);
    for message in counters(5) {
        channel.broadcast(message);
    }
    let marker = channel.message_stream(&listener).try_recv().unwrap();
    assert_eq!(marker.payload["reason"], "dropped");
    // The client reconnects with the marker's id: the log still holds 1, 2 and 3.
    let mut resumed = channel.message_stream_after(&listener, &marker.position().to_string());
    let items: Vec<_> = std::iter::from_fn(|| resumed.try_recv()).collect();
    assert_eq!(
        items.iter().map(|d| d.id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(
        types(&items).iter().all(|t| t == "t"),
        "{:?}",
        types(&items)
    );

    // A resume while a marker is due: the log covers the discards, no marker follows.
    for message in counters(4) {
        channel.broadcast(message);
    }
    let mut resumed = channel.message_stream_after(&listener, &at(&channel, 5));
    let ids: Vec<u64> = std::iter::from_fn(|| resumed.try_recv().map(|d| d.id)).collect();
    assert_eq!(ids, [6, 7, 8, 9]);
}

#[test]
fn pull_consumers_get_no_drop_marker_and_a_later_stream_none_for_their_gap() {
    let channel = Channel::new(Identity);
    let listener = bounded_listener(&channel, 1, OverflowPolicy::DropOldest);
    for message in counters(3) {
        channel.broadcast(message);
    }
    assert_eq!(channel.deliver_next(listener.id()).unwrap().id, 3);
    channel.broadcast(Message::empty("t"));
    assert_eq!(
        channel.message_stream(&listener).try_recv().unwrap().id,
        4,
        "the gap went to the pull consumer, who saw the ids jump"
    );
}

#[test]
fn a_drop_oldest_dispatch_is_reported_to_the_ledger_observer() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let observed = Arc::clone(&seen);
    let ledger = QueueLedger::new(None).observe(move |channel, losses| {
        observed.lock().unwrap().push((channel.to_owned(), losses));
    });
    let channel = Channel::builder(Identity)
        .id("c")
        .ledger(Arc::new(ledger))
        .build();
    let listener = bounded_listener(&channel, 1, OverflowPolicy::DropOldest);
    for message in counters(3) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let discarded = Losses {
        discarded: 1,
        ..Losses::default()
    };
    assert_eq!(
        *seen.lock().unwrap(),
        [("c".to_owned(), discarded), ("c".to_owned(), discarded)]
    );
}

/// A channel that retains its last 100 messages and whose queues may fall at most three
/// of `message` (1 KB) behind, counted by a ledger with no budget; one started listener.
fn three_messages_behind_at_most() -> (Channel<Identity>, Arc<QueueLedger>, Arc<Listener>, Message)
{
    let message = Message::new("t", "x".repeat(1000));
    let ledger = Arc::new(QueueLedger::new(Some(usize::MAX)));
    let channel = Channel::builder(Identity)
        .retention(Retention::entries(100))
        .queue_config(QueueConfig::unbounded().with_max_bytes(message_size(&message) * 3))
        .ledger(Arc::clone(&ledger))
        .build();
    let listener = channel.add_listener();
    listener.start();
    (channel, ledger, listener, message)
}

#[test]
fn a_queue_over_its_byte_bound_ends_its_stream_as_too_slow_and_the_log_resumes_it() {
    let (channel, ledger, listener, message) = three_messages_behind_at_most();
    let size = message_size(&message);
    let mut stream = channel.message_stream(&listener);
    channel.broadcast(message.clone());
    assert_eq!(stream.try_recv().unwrap().id, 1);
    assert_eq!(
        ledger.queued_bytes(),
        0,
        "an empty queue gave its bytes back"
    );
    for _ in 0..3 {
        channel.broadcast(message.clone());
    }
    assert_eq!(listener.stats().queued_bytes, size * 3);
    assert_eq!(ledger.queued_bytes(), size * 3);
    // The fourth unread message is one too many: the queue is cut, and stays empty.
    let report = channel.broadcast(message.clone());
    assert_eq!((report.delivered, report.too_slow), (0, 1));
    for _ in 0..9 {
        channel.broadcast(message.clone());
    }
    let stats = listener.stats();
    assert_eq!(
        (stats.queued, stats.queued_bytes, stats.too_slow),
        (0, 0, 1)
    );
    assert_eq!(stats.dropped, 3 + 10);
    assert_eq!(ledger.queued_bytes(), 0);
    let marker = stream.try_recv().unwrap();
    assert_eq!(marker.msg_type, MESSAGE_TYPE_ERROR);
    assert_eq!(marker.payload["error"], "too_slow");
    assert_eq!(marker.payload["last_event_id"], at(&channel, 1));
    assert_eq!(marker.payload["max_lag_bytes"], size * 3);
    assert_eq!(marker.id, 1);
    assert!(stream.try_recv().is_none());
    assert!(stream.is_finished());
    // The queue takes messages again; a resume from the marker gets all it missed.
    channel.broadcast(message.clone());
    assert_eq!(listener.queue_len(), 1);
    let mut resumed = channel.message_stream_after(&listener, &marker.position().to_string());
    let ids: Vec<u64> = std::iter::from_fn(|| resumed.try_recv().map(|d| d.id)).collect();
    assert_eq!(ids, (2..=15).collect::<Vec<_>>());
    assert_eq!(ledger.queued_bytes(), 0);
}

#[test]
fn a_watch_over_its_byte_bound_is_removed_when_its_stream_ends() {
    let message = Message::new("t", "x".repeat(100));
    let bound = message_size(&message) * 2;
    let channel = Channel::builder(Identity)
        .queue_config(QueueConfig::unbounded().with_max_bytes(bound))
        .build();
    let mut watch = channel.watch();
    for _ in 0..5 {
        channel.broadcast(message.clone());
    }
    let items: Vec<_> = watch.iter().collect();
    assert_eq!(types(&items), [MESSAGE_TYPE_ERROR]);
    drop(watch);
    assert_eq!(channel.listener_count(), 0);
}

#[test]
fn a_ledger_budget_refuses_publishes_while_the_queues_hold_it_and_admits_them_after() {
    let message = Message::new("t", "x".repeat(1000));
    let size = message_size(&message);
    let ledger = Arc::new(QueueLedger::new(Some(size * 2)));
    let make = || {
        Channel::builder(Identity)
            .ledger(Arc::clone(&ledger))
            .build()
    };
    let (a, b) = (make(), make());
    let (la, lb) = (a.add_listener(), b.add_listener());
    la.start();
    lb.start();
    assert!(ledger.admit().is_ok());
    a.broadcast(message.clone());
    assert!(ledger.admit().is_ok());
    b.broadcast(message.clone());
    assert_eq!(ledger.queued_bytes(), size * 2);
    assert_eq!(
        ledger.admit(),
        Err(Error::Overloaded {
            queued: size * 2,
            limit: size * 2
        })
    );
    a.deliver_next(la.id()).unwrap();
    assert!(ledger.admit().is_ok(), "a reader made room");
    // A removed listener gives back what it held.
    b.remove_listener(lb.id()).unwrap();
    assert_eq!(ledger.queued_bytes(), 0);
}

#[test]
fn removal_discards_the_queue_but_not_the_log() {
    let (channel, listener) = started_listener_with_history(8);
    for message in counters(3) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    channel.deliver_next(listener.id()).unwrap();
    channel.remove_listener(listener.id()).unwrap();
    assert_eq!(listener.queue_len(), 0);
    let mut resumed = channel.message_stream_after(&listener, &at(&channel, 0));
    let items: Vec<_> = std::iter::from_fn(|| resumed.try_recv()).collect();
    assert_eq!(
        items.iter().map(|d| d.id).collect::<Vec<_>>(),
        [1, 2, 3, 0],
        "what the log holds for it, then the closed item of the removed listener"
    );
    assert_eq!(items[3].msg_type, MESSAGE_TYPE_CLOSED);
}

#[test]
fn disconnect_policy_removes_the_listener_and_ends_its_stream() {
    let channel = Channel::new(Identity);
    let listener = bounded_listener(&channel, 1, OverflowPolicy::Disconnect);
    let mut stream = channel.message_stream(&listener);
    channel
        .dispatch(listener.id(), Message::empty("first"))
        .unwrap();
    let error = channel
        .dispatch(listener.id(), Message::empty("second"))
        .unwrap_err();
    assert!(matches!(error, Error::Disconnected { .. }), "{error}");
    assert_eq!(
        listener.stats().dropped,
        2,
        "the refused message and the one it left in the queue"
    );
    assert!(channel.get_listener(listener.id()).is_err());
    let items: Vec<_> = stream.iter().collect();
    assert_eq!(types(&items), [MESSAGE_TYPE_CLOSED]);

    let other = bounded_listener(&channel, 1, OverflowPolicy::Disconnect);
    channel.broadcast(Message::empty("a"));
    let report = channel.broadcast(Message::empty("b"));
    assert_eq!(report.disconnected, 1);
    assert!(other.is_removed());
}

#[test]
fn resume_replays_the_messages_after_the_last_seen_id_without_duplicates() {
    let (channel, listener) = started_listener_with_history(100);
    for message in counters(5) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let mut first = channel.message_stream(&listener);
    let seen: Vec<u64> = (0..3).map(|_| first.try_recv().unwrap().id).collect();
    assert_eq!(seen, [1, 2, 3]);
    // The consumer only processed up to 2 before its connection broke.
    drop(first);
    channel
        .dispatch(listener.id(), Message::empty("late"))
        .unwrap();
    let mut resumed = channel.message_stream_after(&listener, &at(&channel, 2));
    let ids: Vec<u64> = (0..4).map(|_| resumed.try_recv().unwrap().id).collect();
    assert_eq!(ids, [3, 4, 5, 6]);
    assert!(resumed.try_recv().is_none());
}

#[test]
fn resume_from_before_the_history_starts_with_a_gap_marker() {
    let (channel, listener) = started_listener_with_history(2);
    for message in counters(5) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    for _ in 0..5 {
        channel.deliver_next(listener.id()).unwrap();
    }
    let mut resumed = channel.message_stream_after(&listener, &at(&channel, 1));
    assert!(resumed.starts_with_gap());
    let marker = resumed.try_recv().unwrap();
    assert!(!resumed.starts_with_gap());
    assert_eq!(marker.msg_type, MESSAGE_TYPE_ERROR);
    assert_eq!(marker.id, 3);
    assert_eq!(
        marker.payload,
        json!({"error": "history_gap", "last_event_id": at(&channel, 1),
               "first_available": at(&channel, 4), "reason": "trimmed"})
    );
    let ids: Vec<u64> = (0..2).map(|_| resumed.try_recv().unwrap().id).collect();
    assert_eq!(ids, [4, 5]);
}

#[test]
fn resume_from_the_latest_id_replays_nothing() {
    let (channel, listener) = started_listener_with_history(8);
    channel
        .dispatch(listener.id(), Message::empty("a"))
        .unwrap();
    channel.deliver_next(listener.id()).unwrap();
    let mut latest = channel.message_stream_after(&listener, &at(&channel, 1));
    assert!(!latest.starts_with_gap());
    assert!(latest.try_recv().is_none());
    let mut future = channel.message_stream_after(&listener, &at(&channel, 99));
    assert_eq!(future.try_recv().unwrap().payload["reason"], "future");
    assert!(future.try_recv().is_none());
}

#[test]
fn recv_timeout_times_out_on_an_idle_stream_and_returns_when_a_message_comes() {
    let (channel, listener) = channel_with_started_listener();
    let mut stream = channel.message_stream(&listener);
    assert_eq!(
        stream.recv_timeout(Duration::from_millis(20)).unwrap_err(),
        eric_core::RecvTimeoutError::Timeout
    );
    let producer = {
        let channel = channel.clone();
        let id = listener.id().to_owned();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            channel.dispatch(&id, Message::empty("wake")).unwrap();
        })
    };
    let item = stream.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(item.msg_type, "wake");
    producer.join().unwrap();
}

#[test]
fn many_producers_and_consumers_lose_duplicate_and_reorder_nothing() {
    const PRODUCERS: usize = 8;
    const PER_PRODUCER: usize = 10_000;
    const LISTENERS: usize = 4;
    let channel = Channel::new(Identity);
    let listeners: Vec<_> = (0..LISTENERS)
        .map(|_| {
            let listener = channel.add_listener();
            listener.start();
            listener
        })
        .collect();
    let consumers: Vec<_> = listeners
        .iter()
        .map(|listener| {
            let mut stream = channel.message_stream(listener);
            std::thread::spawn(move || {
                let mut next_expected = [0u64; PRODUCERS];
                let mut count = 0;
                while count < PRODUCERS * PER_PRODUCER {
                    let delivery = stream.recv().expect("stream ended early");
                    let producer = delivery.payload["p"].as_u64().unwrap() as usize;
                    let seq = delivery.payload["i"].as_u64().unwrap();
                    assert_eq!(seq, next_expected[producer], "producer {producer}");
                    next_expected[producer] += 1;
                    count += 1;
                }
                assert!(stream.try_recv().is_none());
                count
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let channel = channel.clone();
            let ids: Vec<String> = listeners.iter().map(|l| l.id().to_owned()).collect();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    let message = Arc::new(Message::new("t", json!({"p": p, "i": i})));
                    if i % 2 == 0 {
                        channel.broadcast(Arc::clone(&message));
                    } else {
                        for id in &ids {
                            channel.dispatch(id, Arc::clone(&message)).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    for consumer in consumers {
        assert_eq!(consumer.join().unwrap(), PRODUCERS * PER_PRODUCER);
    }
}

#[test]
fn the_async_stream_runs_on_a_non_tokio_executor() {
    let (channel, listener) = channel_with_started_listener();
    let producer = {
        let channel = channel.clone();
        let id = listener.id().to_owned();
        std::thread::spawn(move || {
            for message in counters(100) {
                channel.dispatch(&id, message).unwrap();
                std::thread::yield_now();
            }
            channel.notify_end();
        })
    };
    let stream = channel.message_stream(&listener);
    let items: Vec<_> = futures::executor::block_on(stream.collect());
    producer.join().unwrap();
    assert_eq!(items.len(), 101);
    assert_eq!(items[99].payload, json!({"i": 99}));
    assert_eq!(items[100].msg_type, MESSAGE_TYPE_CLOSED);
}

#[test]
fn stopping_a_listener_wakes_and_ends_a_waiting_async_stream() {
    let (channel, listener) = channel_with_started_listener();
    let stopper = {
        let listener = Arc::clone(&listener);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            listener.stop();
        })
    };
    let mut stream = channel.message_stream(&listener);
    assert!(futures::executor::block_on(stream.next()).is_none());
    stopper.join().unwrap();
}

/// A timer that sleeps a helper thread: enough for a test, without a runtime.
struct ThreadTimer;

impl Timer for ThreadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            let _ = tx.send(());
        });
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[test]
fn stream_delay_paces_async_and_blocking_streams() {
    let delay = Duration::from_millis(30);
    let channel = Channel::builder(Identity)
        .stream_delay(StreamDelay::new(delay, Arc::new(ThreadTimer)))
        .build();
    let listener = channel.add_listener();
    listener.start();
    for message in counters(3) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    channel.notify_end();
    let started = Instant::now();
    let items: Vec<_> =
        futures::executor::block_on(channel.message_stream(&listener).collect::<Vec<_>>());
    assert_eq!(items.len(), 4);
    assert!(started.elapsed() >= delay * 3, "{:?}", started.elapsed());

    for message in counters(3) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let started = Instant::now();
    let mut stream = channel.message_stream(&listener);
    for _ in 0..3 {
        stream.recv().unwrap();
    }
    assert!(started.elapsed() >= delay * 2, "{:?}", started.elapsed());
}

#[test]
fn a_replayed_end_of_stream_ends_the_resumed_stream_like_the_original() {
    let (channel, listener) = started_listener_with_history(8);
    channel
        .dispatch(listener.id(), Message::empty("a"))
        .unwrap();
    channel.notify_end();
    channel
        .dispatch(listener.id(), Message::empty("after the end"))
        .unwrap();
    let first: Vec<_> = channel.message_stream(&listener).iter().collect();
    assert_eq!(types(&first), ["a", MESSAGE_TYPE_CLOSED]);

    let replayed: Vec<_> = channel
        .message_stream_after(&listener, &at(&channel, 0))
        .iter()
        .collect();
    assert_eq!(types(&replayed), ["a", MESSAGE_TYPE_CLOSED]);
    assert_eq!(listener.queue_len(), 1);
}

#[test]
fn dispatch_to_refuses_a_listener_of_another_channel_and_names_both() {
    let here = Channel::builder(Identity).id("here").build();
    let there = Channel::builder(Identity).id("there").build();
    // The same id on both channels: the check must be on the listener, not its id.
    let ours = here.register_listener(Listener::with_id("same")).unwrap();
    let theirs = there.register_listener(Listener::with_id("same")).unwrap();
    let message = Arc::new(Message::empty("t"));

    let error = here.dispatch_to(&theirs, &message).unwrap_err();
    assert_eq!(
        error,
        Error::ForeignListener {
            listener: "same".into(),
            channel: "here".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "Listener same is not a listener of channel here"
    );
    assert_eq!(
        theirs.queue_len(),
        0,
        "the other channel's queue is untouched"
    );
    assert_eq!(
        ours.queue_len(),
        0,
        "nor is the same-id listener of this channel"
    );

    // A listener made by the channel, and one not registered anywhere.
    let made_there = there.add_listener();
    assert!(here.dispatch_to(&made_there, &message).is_err());
    assert_eq!(made_there.queue_len(), 0);
    let unregistered = Arc::new(Listener::with_id("loose"));
    assert!(here.dispatch_to(&unregistered, &message).is_err());
    assert_eq!(unregistered.queue_len(), 0);

    // Its own listeners are still served.
    here.dispatch_to(&ours, &message).unwrap();
    there.dispatch_to(&theirs, &message).unwrap();
    assert_eq!((ours.queue_len(), theirs.queue_len()), (1, 1));
}

/// Polls an async stream once, as an executor would, with a waker that does nothing.
fn poll_once<S: futures::Stream + Unpin>(stream: &mut S) -> Option<Option<S::Item>> {
    use futures::FutureExt;
    stream.next().now_or_never()
}

fn ids<S: futures::Stream<Item = eric_core::Delivery> + Unpin>(stream: &mut S) -> Vec<u64> {
    std::iter::from_fn(|| poll_once(stream).flatten().map(|d| d.id)).collect()
}

#[test]
fn an_async_stream_takes_the_queue_at_once_and_gives_back_what_it_did_not_yield() {
    let (channel, listener) = channel_with_started_listener();
    for message in counters(5) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let mut stream = channel.message_stream(&listener);
    assert_eq!(poll_once(&mut stream).flatten().unwrap().id, 1);
    assert_eq!((stream.held(), listener.queue_len()), (4, 0));
    assert_eq!(listener.stats().delivered, 5);
    assert_eq!(poll_once(&mut stream).flatten().unwrap().id, 2);
    drop(stream);
    // The three it held go back to the front, before what came meanwhile.
    channel
        .dispatch(listener.id(), Message::empty("later"))
        .unwrap();
    assert_eq!(listener.queue_len(), 4);
    assert_eq!(listener.stats().delivered, 2);
    let mut next = channel.message_stream(&listener);
    assert_eq!(ids(&mut next), [3, 4, 5, 6]);
}

#[test]
fn a_stopped_listener_keeps_what_its_stream_held() {
    let (channel, listener) = channel_with_started_listener();
    for message in counters(4) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let mut stream = channel.message_stream(&listener);
    assert_eq!(poll_once(&mut stream).flatten().unwrap().id, 1);
    listener.stop();
    assert_eq!(
        poll_once(&mut stream),
        Some(None),
        "the stream ends at once"
    );
    assert_eq!(listener.queue_len(), 3);
    listener.start();
    let mut next = channel.message_stream(&listener);
    assert_eq!(ids(&mut next), [2, 3, 4]);
}

#[test]
fn what_a_stream_holds_counts_against_the_byte_bound_until_it_comes_back() {
    let (channel, ledger, listener, message) = three_messages_behind_at_most();
    let size = message_size(&message);
    let mut stream = channel.message_stream(&listener);
    for _ in 0..3 {
        channel.broadcast(message.clone());
    }
    assert_eq!(poll_once(&mut stream).flatten().unwrap().id, 1);
    assert_eq!(stream.held(), 2);
    assert_eq!(listener.stats().queued_bytes, size * 2, "held, not yielded");
    // One more fits beside the two held; the next is over the bound and cuts the queue.
    assert_eq!(channel.broadcast(message.clone()).too_slow, 0);
    assert_eq!(channel.broadcast(message.clone()).too_slow, 1);
    let mut items = Vec::new();
    while let Some(Some(item)) = poll_once(&mut stream) {
        items.push(item);
    }
    assert_eq!(items.iter().map(|d| d.id).collect::<Vec<_>>(), [2, 3, 3]);
    assert_eq!(items[2].payload["error"], "too_slow");
    assert_eq!(items[2].payload["last_event_id"], at(&channel, 3));
    assert!(stream.is_finished());
    assert_eq!(listener.stats().queued_bytes, 0);
    assert_eq!(ledger.queued_bytes(), 0, "every byte given back");
}

#[test]
fn what_a_stream_held_joins_the_gap_of_a_later_drop_oldest_discard() {
    let (channel, listener) = started_listener_with_history(100);
    let listener = {
        let _ = channel.remove_listener(listener.id());
        bounded_listener(&channel, 3, OverflowPolicy::DropOldest)
    };
    for message in counters(3) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let mut stream = channel.message_stream(&listener);
    assert_eq!(poll_once(&mut stream).flatten().unwrap().id, 1);
    for message in counters(4) {
        let _ = channel.dispatch(listener.id(), message);
    }
    // 4, 5, 6 queued, then 7 discarded 4; the stream held 2 and 3 when it ended.
    drop(stream);
    let mut next = channel.message_stream(&listener);
    let marker = poll_once(&mut next).flatten().unwrap();
    assert_eq!(marker.msg_type, MESSAGE_TYPE_ERROR);
    assert_eq!(marker.payload["last_event_id"], at(&channel, 1));
    assert_eq!(marker.payload["dropped"], 3);
    assert_eq!(ids(&mut next), [5, 6, 7]);
    assert_eq!(listener.stats().dropped, 3);
}
