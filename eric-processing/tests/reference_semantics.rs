//! The behaviour of the reference's `DataProcessingChannel`, and what eric adds to it:
//! the end-of-stream message, messages that arrive while processing, construction errors.

mod common;

use common::*;
use eric_core::{Delivery, Listener, Message};
use eric_processing::{DataProcessingChannel, ProcessingError};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

#[test]
fn processes_three_messages_with_two_workers_like_the_reference() {
    let channel = channel(2);
    let listener = channel.add_listener();
    for event in ["test1", "test2", "test3"] {
        channel
            .dispatch(listener.id(), Message::new(event, json!({})))
            .unwrap();
    }
    let events: BTreeSet<String> = channel
        .process_queue(&listener)
        .into_iter()
        .map(|r| r.unwrap().to_json()["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        BTreeSet::from(["test1".into(), "test2".into(), "test3".into()])
    );
}

#[test]
fn results_have_the_reference_shape() {
    let channel = channel(1);
    let listener = channel.add_listener();
    channel
        .dispatch(listener.id(), Message::new("test", json!({"a": 1})))
        .unwrap();
    let result = channel
        .process_queue(&listener)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(result.to_json(), json!({"event": "test", "data": {"a": 1}}));
    assert_eq!(
        serde_json::to_value(&result).unwrap(),
        json!({"event": "test", "data": {"a": 1}})
    );
}

#[test]
fn every_message_runs_the_listener_handler_once() {
    let channel = channel(2);
    let (listener, calls) = counting_listener(&channel);
    dispatch_counters(&channel, &listener, 50);
    assert_eq!(channel.process_queue(&listener).into_iter().count(), 50);
    assert_eq!(calls.load(Ordering::SeqCst), 50);
    assert_eq!(listener.queue_len(), 0);
}

#[test]
fn a_stopped_listener_is_processed_too_as_in_the_reference() {
    let channel = channel(2);
    let listener = channel.add_listener();
    assert!(!listener.is_running());
    dispatch_counters(&channel, &listener, 3);
    assert_eq!(channel.process_queue(&listener).into_iter().count(), 3);
}

#[test]
fn an_empty_queue_gives_an_empty_stream() {
    let channel = channel(2);
    let listener = channel.add_listener();
    let mut stream = channel.process_queue(&listener);
    assert!(stream.recv().is_none());
    assert!(stream.is_finished());
    assert!(!stream.met_closed());
}

#[test]
fn the_closed_message_ends_the_stream_without_being_handled_or_yielded() {
    let channel = channel(2);
    let (listener, calls) = counting_listener(&channel);
    dispatch_counters(&channel, &listener, 2);
    channel.notify_end();
    channel
        .dispatch(listener.id(), Message::new("after", json!(null)))
        .unwrap();

    let mut stream = channel.process_queue(&listener);
    let values: BTreeSet<i64> = stream.iter().map(value).collect();
    assert_eq!(values, BTreeSet::from([0, 1]));
    assert!(stream.met_closed());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the closed message is not handled"
    );
    // The closed message was consumed; what came after it waits for the next call.
    assert_eq!(listener.queue_len(), 1);
    let rest: Vec<_> = channel.process_queue(&listener).into_iter().collect();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].as_ref().unwrap().event(), "after");
}

#[test]
fn messages_that_arrive_during_processing_are_processed() {
    let channel = channel(2);
    let weak = channel.channel().downgrade();
    let listener = channel
        .register_listener(Listener::with_id("echo").on_message(move |me, msg| {
            // Each "ask" queues an "answer" into the same queue while the stream runs.
            if msg.msg_type == "ask" {
                let channel = weak.upgrade().unwrap();
                channel
                    .dispatch(me.id(), Message::new("answer", msg.payload.clone()))
                    .unwrap();
            }
        }))
        .unwrap();
    for i in 0..10 {
        channel
            .dispatch(listener.id(), Message::new("ask", json!(i)))
            .unwrap();
    }
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for result in channel.process_queue(&listener) {
        *counts
            .entry(result.unwrap().event().to_owned())
            .or_default() += 1;
    }
    assert_eq!(counts["ask"], 10);
    assert_eq!(counts["answer"], 10);
}

#[test]
fn zero_workers_is_an_error() {
    assert_eq!(
        DataProcessingChannel::new(0).unwrap_err(),
        ProcessingError::ZeroWorkers
    );
}

#[test]
fn a_zero_window_is_an_error() {
    let err = DataProcessingChannel::builder(2)
        .window(0)
        .build()
        .unwrap_err();
    assert_eq!(err, ProcessingError::ZeroWindow);
}

#[test]
fn a_user_adapter_shapes_the_results() {
    let channel = DataProcessingChannel::with_adapter(2, |d: &Delivery| {
        format!("{}={}", d.msg_type, d.payload)
    })
    .unwrap();
    let listener = channel.add_listener();
    channel
        .dispatch(listener.id(), Message::new("x", json!(1)))
        .unwrap();
    let results: Vec<String> = channel
        .process_queue(&listener)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results, ["x=1"]);
}

#[test]
fn the_inner_channel_is_a_plain_eric_core_channel() {
    let channel = DataProcessingChannel::builder(1)
        .id("jobs")
        .build()
        .unwrap();
    let listener = channel.add_listener();
    listener.start();
    channel.broadcast(Message::empty("ping"));
    // Streaming the usual way still works, and runs the handler on the consumer thread.
    let mut stream = channel.message_stream(&listener);
    assert_eq!(stream.try_recv().unwrap().event(), "ping");
    assert_eq!(channel.channel().id(), "jobs");
}
