//! The pool at work: real parallelism, completion order, panics, early drop, the
//! window, the async Stream.

mod common;

use common::*;
use eric_core::{Listener, Message};
use eric_processing::{DataProcessingChannel, ProcessingError};
use futures::StreamExt;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn two_workers_run_handlers_in_parallel() {
    let channel = channel(2);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let listener = {
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        channel
            .register_listener(Listener::new().on_message(move |_, msg| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // The first two messages, taken one by each worker, stay until two
                // handlers have run at once: run one after the other, they would wait
                // in vain and the test fail.
                if msg.payload.as_i64() < Some(2) {
                    wait_until("two handlers running at once", || {
                        peak.load(Ordering::SeqCst) >= 2
                    });
                }
                running.fetch_sub(1, Ordering::SeqCst);
            }))
            .unwrap()
    };
    dispatch_counters(&channel, &listener, 20);
    let count = channel.process_queue(&listener).into_iter().count();
    assert_eq!(count, 20);
    // Two at once, and never more than the pool's two workers.
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[test]
fn results_come_as_they_complete() {
    let channel = channel(2);
    let received = Arc::new(AtomicUsize::new(0));
    let listener = {
        let received = Arc::clone(&received);
        channel
            .register_listener(Listener::new().on_message(move |_, msg| {
                if msg.payload == json!(0) {
                    // The first message finishes only once the consumer has the nine
                    // others: results must not wait for those taken before them.
                    wait_until("the nine other results yielded", || {
                        received.load(Ordering::SeqCst) == 9
                    });
                }
            }))
            .unwrap()
    };
    dispatch_counters(&channel, &listener, 10);
    let order: Vec<i64> = channel
        .process_queue(&listener)
        .into_iter()
        .map(|result| {
            received.fetch_add(1, Ordering::SeqCst);
            value(result)
        })
        .collect();
    assert_eq!(order.len(), 10);
    assert_eq!(
        *order.last().unwrap(),
        0,
        "the slow first message finishes last: {order:?}"
    );
}

#[test]
fn the_ordered_variant_yields_in_queue_order() {
    let channel = channel(2);
    let listener = channel
        .register_listener(Listener::new().on_message(|_, msg| {
            // Early messages are the slowest, so they complete out of order.
            let i = msg.payload.as_u64().unwrap();
            std::thread::sleep(Duration::from_millis((12 - i) * 3));
        }))
        .unwrap();
    dispatch_counters(&channel, &listener, 12);
    let order: Vec<i64> = channel
        .process_queue_ordered(&listener)
        .into_iter()
        .map(value)
        .collect();
    assert_eq!(order, (0..12).collect::<Vec<_>>());
}

#[test]
fn a_panicking_handler_is_reported_and_the_others_go_on() {
    let channel = channel(2);
    let listener = channel
        .register_listener(Listener::with_id("fragile").on_message(|_, msg| {
            if msg.payload == json!(3) {
                panic!("boom on {}", msg.payload);
            }
        }))
        .unwrap();
    dispatch_counters(&channel, &listener, 10);

    let mut stream = channel.process_queue_ordered(&listener);
    let results: Vec<_> = stream.iter().collect();
    assert_eq!(results.len(), 10);
    for (i, result) in results.iter().enumerate() {
        if i == 3 {
            let err = result.as_ref().unwrap_err();
            assert!(err.is_panic());
            assert_eq!(
                *err,
                ProcessingError::HandlerPanicked {
                    listener: "fragile".into(),
                    event: "counter".into(),
                    id: 4,
                    message: "boom on 3".into(),
                }
            );
        } else {
            assert_eq!(result.as_ref().unwrap().data(), &json!(i));
        }
    }
    assert_eq!(stream.panicked(), 1);
    assert_eq!(channel.stats().panicked, 1);

    // The pool survived: the next call works on both threads.
    dispatch_counters(&channel, &listener, 2);
    assert_eq!(channel.process_queue(&listener).into_iter().count(), 2);
}

#[test]
fn a_panicking_adapter_is_reported_too() {
    let channel = DataProcessingChannel::with_adapter(2, |d: &eric_core::Delivery| {
        assert_ne!(d.msg_type, "bad", "cannot adapt");
        d.id
    })
    .unwrap();
    let listener = channel.add_listener();
    channel
        .dispatch(listener.id(), Message::empty("good"))
        .unwrap();
    channel
        .dispatch(listener.id(), Message::empty("bad"))
        .unwrap();
    let results: Vec<_> = channel
        .process_queue_ordered(&listener)
        .into_iter()
        .collect();
    assert_eq!(results[0], Ok(1));
    assert!(matches!(
        &results[1],
        Err(ProcessingError::AdapterPanicked { event, id: 2, .. }) if event == "bad"
    ));
}

#[test]
fn dropping_the_stream_early_returns_at_once_and_leaves_the_rest_queued() {
    let channel = channel(2);
    let gate = Gate::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let gave_up = Arc::new(AtomicUsize::new(0));
    let listener = {
        let (gate, calls) = (gate.clone(), Arc::clone(&calls));
        let (entered, gave_up) = (Arc::clone(&entered), Arc::clone(&gave_up));
        channel
            .register_listener(Listener::new().on_message(move |_, msg| {
                // Every message but the first waits at the gate, which the test opens
                // only once `drop` has returned.
                if msg.payload != json!(0) {
                    entered.fetch_add(1, Ordering::SeqCst);
                    if !gate.wait() {
                        gave_up.fetch_add(1, Ordering::SeqCst);
                    }
                }
                calls.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap()
    };
    dispatch_counters(&channel, &listener, 12);

    let mut stream = channel.process_queue(&listener);
    assert!(stream.recv().unwrap().is_ok());
    wait_until("both workers inside a handler", || {
        entered.load(Ordering::SeqCst) == 2
    });
    // Two messages are in progress. A drop that waited for them would return only
    // after they gave up waiting at the gate.
    drop(stream);
    gate.open();

    // Taken but never yielded: at most the window. Everything else stays queued.
    let discarded = channel.stats().discarded;
    assert!(discarded <= channel.window() as u64, "{discarded}");
    let queued = listener.queue_len() as u64;
    assert_eq!(1 + discarded + queued, 12);

    // The messages in progress finish on the pool; nothing more is taken.
    wait_until("the messages in progress finished", || {
        calls.load(Ordering::SeqCst) as u64 == 1 + discarded
    });
    assert_eq!(
        gave_up.load(Ordering::SeqCst),
        0,
        "drop must not wait for the messages in progress"
    );
    // Time for a stream that went on after its drop to take a message and be caught.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(listener.queue_len() as u64, queued);
    assert_eq!(calls.load(Ordering::SeqCst) as u64, 1 + discarded);

    // A later call picks up where the dropped one stopped.
    let rest = channel.process_queue(&listener).into_iter().count() as u64;
    assert_eq!(rest, queued);
}

#[test]
fn a_slow_consumer_holds_at_most_the_window() {
    let channel = DataProcessingChannel::builder(2).window(4).build().unwrap();
    let listener = channel.add_listener();
    dispatch_counters(&channel, &listener, 30);

    let mut stream = channel.process_queue(&listener);
    let mut yielded = 0;
    while let Some(result) = stream.recv() {
        result.unwrap();
        yielded += 1;
        std::thread::sleep(Duration::from_millis(2)); // the workers are much faster
        assert!(stream.in_flight() <= 4);
        assert!(
            listener.queue_len() + 4 + yielded >= 30,
            "took too far ahead"
        );
    }
    assert_eq!(yielded, 30);
}

#[test]
fn the_async_stream_works_without_a_runtime() {
    let channel = channel(2);
    let listener = sleepy_listener(&channel, 5);
    dispatch_counters(&channel, &listener, 20);
    let mut values: Vec<i64> =
        futures::executor::block_on(channel.process_queue(&listener).map(value).collect());
    values.sort_unstable();
    assert_eq!(values, (0..20).collect::<Vec<_>>());
}

#[test]
fn the_async_ordered_stream_keeps_order() {
    let channel = channel(2);
    let listener = sleepy_listener(&channel, 1);
    dispatch_counters(&channel, &listener, 50);
    let values: Vec<i64> = futures::executor::block_on(
        channel
            .process_queue_ordered(&listener)
            .map(value)
            .collect(),
    );
    assert_eq!(values, (0..50).collect::<Vec<_>>());
}

#[test]
fn two_streams_share_the_pool() {
    let channel = channel(2);
    let a = sleepy_listener(&channel, 2);
    let b = sleepy_listener(&channel, 2);
    dispatch_counters(&channel, &a, 100);
    dispatch_counters(&channel, &b, 100);
    let other = {
        let channel = channel.clone();
        let b = Arc::clone(&b);
        std::thread::spawn(move || channel.process_queue(&b).into_iter().count())
    };
    assert_eq!(channel.process_queue(&a).into_iter().count(), 100);
    assert_eq!(other.join().unwrap(), 100);
    assert_eq!(channel.stats().yielded, 200);
}
