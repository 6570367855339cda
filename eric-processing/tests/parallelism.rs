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
use std::time::{Duration, Instant};

#[test]
fn two_workers_run_handlers_in_parallel() {
    let channel = channel(2);
    let listener = sleepy_listener(&channel, 50);
    dispatch_counters(&channel, &listener, 20);
    let started = Instant::now();
    let count = channel.process_queue(&listener).into_iter().count();
    let elapsed = started.elapsed();
    assert_eq!(count, 20);
    // Serially it would take 1 s; two workers need 500 ms.
    assert!(elapsed < Duration::from_millis(800), "took {elapsed:?}");
}

#[test]
fn results_come_as_they_complete() {
    let channel = channel(2);
    let listener = channel
        .register_listener(Listener::new().on_message(|_, msg| {
            if msg.payload == json!(0) {
                std::thread::sleep(Duration::from_millis(300));
            }
        }))
        .unwrap();
    dispatch_counters(&channel, &listener, 10);
    let order: Vec<i64> = channel
        .process_queue(&listener)
        .into_iter()
        .map(value)
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
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let listener = channel
        .register_listener(Listener::new().on_message(move |_, _| {
            std::thread::sleep(Duration::from_millis(200));
            counter.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
    dispatch_counters(&channel, &listener, 12);

    let mut stream = channel.process_queue(&listener);
    assert!(stream.recv().unwrap().is_ok());
    let started = Instant::now();
    drop(stream); // two messages are in progress, for up to 200 ms
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "drop must not wait for the messages in progress"
    );

    // Taken but never yielded: at most the window. Everything else stays queued.
    let discarded = channel.stats().discarded;
    assert!(discarded <= channel.window() as u64, "{discarded}");
    let queued = listener.queue_len() as u64;
    assert_eq!(1 + discarded + queued, 12);

    // The messages in progress finish on the pool; nothing more is taken.
    std::thread::sleep(Duration::from_millis(500));
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
