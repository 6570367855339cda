//! The scenarios of the reference's test suite (eric-sse 0.6.0.3), one test each, plus
//! the behaviours eric pins beyond it.

mod common;

use common::*;
use eric_core::{
    Channel, DistributedListener, Error, Identity, Listener, Message, OverflowPolicy, QueueConfig,
    SignedMessage, MESSAGE_TYPE_CLOSED,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[test]
fn start_stop_and_restart_flip_is_running() {
    let listener = Listener::new();
    assert!(!listener.is_running());
    listener.start();
    assert!(listener.is_running());
    listener.stop();
    assert!(!listener.is_running());
    listener.start();
    assert!(listener.is_running());
}

#[test]
fn listener_ids_are_consecutive_decimal_numbers_in_creation_order() {
    let channel = Channel::new(Identity);
    let first: u64 = channel.add_listener().id().parse().unwrap();
    let second: u64 = channel.add_listener().id().parse().unwrap();
    let third: u64 = Listener::new().id().parse().unwrap();
    // Other tests run in parallel and take ids too: the order is what is promised.
    assert!(first >= 1);
    assert!(second > first);
    assert!(third > second);
}

#[test]
fn caller_chosen_listener_ids_are_kept_and_duplicates_refused() {
    let channel = Channel::new(Identity);
    let listener = channel
        .register_listener(Listener::with_id("alice"))
        .unwrap();
    assert_eq!(listener.id(), "alice");
    assert_eq!(
        channel
            .register_listener(Listener::with_id("alice"))
            .unwrap_err(),
        Error::DuplicateId("alice".into())
    );
}

#[test]
fn broadcast_queues_in_every_listener_and_streaming_one_empties_only_its_queue() {
    let channel = Channel::new(sse_like);
    let first = channel.add_listener();
    let second = channel.add_listener();
    first.start();
    second.start();
    channel.broadcast(Message::new("test", json!({"a": 1})));
    assert_eq!(first.queue_len(), 1);
    assert_eq!(second.queue_len(), 1);

    let mut stream = channel.message_stream(&first);
    assert_eq!(
        stream.try_recv(),
        Some(json!({"event": "test", "retry": 5, "data": {"a": 1}}))
    );
    assert_eq!(first.queue_len(), 0);
    assert_eq!(second.queue_len(), 1);
}

#[test]
fn handler_that_stops_the_listener_after_two_messages_ends_the_stream_after_two() {
    let channel = Channel::new(Identity);
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let listener = channel
        .register_listener(Listener::new().on_message(move |me, _| {
            if counter.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                me.stop();
            }
        }))
        .unwrap();
    listener.start();
    for message in counters(2) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let received: Vec<_> = channel.message_stream(&listener).iter().collect();
    assert_eq!(received.len(), 2);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(listener.queue_len(), 0);
}

#[test]
fn messages_reach_the_handler_in_dispatch_order_with_exact_payloads() {
    let channel = Channel::new(Identity);
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let listener = channel
        .register_listener(Listener::new().on_message(move |_, message| {
            sink.lock().unwrap().push(message.payload.clone());
        }))
        .unwrap();
    listener.start();
    let payloads = [
        json!({"i": 0}),
        json!("text"),
        json!([1, 2]),
        json!(3.5),
        json!(null),
    ];
    for payload in &payloads {
        channel
            .dispatch(listener.id(), Message::new("t", payload.clone()))
            .unwrap();
    }
    channel.notify_end();
    let _: Vec<_> = channel.message_stream(&listener).iter().collect();
    let log = log.lock().unwrap();
    assert_eq!(&log[..payloads.len()], &payloads);
}

#[test]
fn a_stream_ended_by_stop_reopens_after_restart_and_delivers_the_rest() {
    let (channel, listener) = channel_with_started_listener();
    for message in counters(3) {
        channel.dispatch(listener.id(), message).unwrap();
    }
    let mut stream = channel.message_stream(&listener);
    assert_eq!(stream.try_recv().unwrap().payload, json!({"i": 0}));
    listener.stop();
    assert!(stream.recv().is_none());
    assert!(stream.is_finished());

    listener.start();
    let rest: Vec<_> = channel
        .message_stream(&listener)
        .iter()
        .take(2)
        .map(|d| d.payload.clone())
        .collect();
    assert_eq!(rest, vec![json!({"i": 1}), json!({"i": 2})]);
}

#[test]
fn signed_message_payload_wraps_sender_and_payload() {
    let signed = SignedMessage::new("1", "greet", "hi");
    assert_eq!(signed.payload(), json!({"sender_id": "1", "payload": "hi"}));
    let message = Message::from(signed);
    assert_eq!(message.msg_type, "greet");
    assert_eq!(message.payload, json!({"sender_id": "1", "payload": "hi"}));
}

#[test]
fn distributed_alice_and_bob_exchange_hello_and_stop() {
    let channel = Channel::new(Identity);
    let alice = DistributedListener::register(&channel).unwrap();
    let bob = DistributedListener::register(&channel).unwrap();
    alice
        .set_action("hello", |_| vec![Message::empty("hello_ack")])
        .unwrap();
    bob.set_action("hello_ack", |_| Vec::new()).unwrap();
    alice.listener().start();
    bob.listener().start();

    channel
        .dispatch(alice.id(), SignedMessage::new(bob.id(), "hello", "hi"))
        .unwrap();
    channel
        .dispatch(
            alice.id(),
            SignedMessage::new(bob.id(), "stop", json!(null)),
        )
        .unwrap();
    let alice_saw: Vec<_> = channel.message_stream(alice.listener()).iter().collect();
    assert_eq!(types(&alice_saw), ["hello", "stop"]);

    channel
        .dispatch(
            bob.id(),
            SignedMessage::new(alice.id(), "stop", json!(null)),
        )
        .unwrap();
    let bob_saw: Vec<_> = channel.message_stream(bob.listener()).iter().collect();
    assert_eq!(types(&bob_saw), ["hello_ack", "stop"]);
    assert_eq!(
        bob_saw[0].payload,
        json!({"sender_id": alice.id(), "payload": null})
    );
}

#[test]
fn set_action_refuses_the_reserved_names() {
    let channel = Channel::new(Identity);
    let listener = DistributedListener::register(&channel).unwrap();
    for name in ["stop", "remove"] {
        assert_eq!(
            listener.set_action(name, |_| Vec::new()).unwrap_err(),
            Error::ReservedAction(name.into())
        );
    }
}

#[test]
fn remove_action_takes_the_listener_off_the_channel() {
    let channel = Channel::new(Identity);
    let listener = DistributedListener::register(&channel).unwrap();
    listener.listener().start();
    channel
        .dispatch(listener.id(), Message::empty("remove"))
        .unwrap();
    channel.deliver_next(listener.id()).unwrap();
    assert!(channel.get_listener(listener.id()).is_err());
}

#[test]
fn unknown_action_and_missing_sender_are_skipped_without_panic() {
    let channel = Channel::new(Identity);
    let listener = DistributedListener::register(&channel).unwrap();
    listener
        .set_action("ask", |_| vec![Message::empty("answer")])
        .unwrap();
    listener.listener().start();
    channel
        .dispatch(listener.id(), Message::empty("nobody-knows"))
        .unwrap();
    channel
        .dispatch(listener.id(), Message::new("ask", "no sender"))
        .unwrap();
    assert_eq!(
        channel.deliver_next(listener.id()).unwrap().msg_type,
        "nobody-knows"
    );
    assert_eq!(channel.deliver_next(listener.id()).unwrap().msg_type, "ask");
    assert_eq!(channel.listener_count(), 1);
}

#[test]
fn deliver_next_on_a_stopped_listener_or_empty_queue_is_no_messages() {
    let channel = Channel::new(Identity);
    let listener = channel.add_listener();
    channel
        .dispatch(listener.id(), Message::empty("t"))
        .unwrap();
    assert_eq!(
        channel.deliver_next(listener.id()).unwrap_err(),
        Error::NoMessages(listener.id().into())
    );
    listener.start();
    channel.deliver_next(listener.id()).unwrap();
    assert_eq!(
        channel.deliver_next(listener.id()).unwrap_err(),
        Error::NoMessages(listener.id().into())
    );
}

#[test]
fn deliver_next_runs_the_handler_like_the_reference() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let channel = Channel::new(Identity);
    let listener = channel
        .register_listener(Listener::new().on_message(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
    listener.start();
    channel
        .dispatch(listener.id(), Message::empty("t"))
        .unwrap();
    channel.deliver_next(listener.id()).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn dispatch_to_an_unknown_listener_names_it() {
    let channel = Channel::new(Identity);
    let error = channel.dispatch("ghost", Message::empty("t")).unwrap_err();
    assert_eq!(error, Error::InvalidListener("ghost".into()));
    assert_eq!(error.to_string(), "Invalid listener ghost");
}

#[test]
fn removing_a_listener_ends_its_stream_with_one_closed_item() {
    let (channel, listener) = channel_with_started_listener();
    let mut stream = channel.message_stream(&listener);
    let remover = {
        let channel = channel.clone();
        let id = listener.id().to_owned();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            channel.remove_listener(&id).unwrap();
        })
    };
    let items: Vec<_> = stream.iter().collect();
    remover.join().unwrap();
    assert_eq!(types(&items), [MESSAGE_TYPE_CLOSED]);
    assert_eq!(items[0].id, 0);
}

#[test]
fn notify_end_ends_every_stream_after_the_queued_messages() {
    let (channel, listener) = channel_with_started_listener();
    channel
        .dispatch(listener.id(), Message::empty("a"))
        .unwrap();
    channel.notify_end();
    channel
        .dispatch(listener.id(), Message::empty("after"))
        .unwrap();
    let items: Vec<_> = channel.message_stream(&listener).iter().collect();
    assert_eq!(types(&items), ["a", MESSAGE_TYPE_CLOSED]);
    assert_eq!(listener.queue_len(), 1, "what follows the end stays queued");
}

#[test]
fn a_stream_of_a_listener_that_is_not_running_ends_at_once() {
    let channel = Channel::new(Identity);
    let listener = channel.add_listener();
    channel
        .dispatch(listener.id(), Message::empty("t"))
        .unwrap();
    assert_eq!(channel.message_stream(&listener).recv(), None);
    assert_eq!(listener.queue_len(), 1);
}

#[test]
fn a_handler_that_dispatches_into_its_own_channel_does_not_deadlock() {
    let channel = Channel::new(Identity);
    let echo_target = channel.add_listener();
    let weak = channel.downgrade();
    let target = echo_target.id().to_owned();
    let listener = channel
        .register_listener(Listener::new().on_message(move |me, message| {
            let channel = weak.upgrade().unwrap();
            channel.broadcast(Message::new("echo", message.payload.clone()));
            channel.dispatch(&target, Message::empty("direct")).unwrap();
            me.stop();
        }))
        .unwrap();
    listener.start();
    channel
        .dispatch(listener.id(), Message::new("t", 1))
        .unwrap();
    let items: Vec<_> = channel.message_stream(&listener).iter().collect();
    assert_eq!(types(&items), ["t"]);
    assert_eq!(echo_target.queue_len(), 2);
    assert_eq!(listener.queue_len(), 1, "its own echo is queued");
}

#[test]
fn watch_adds_a_started_listener_and_removes_it_when_dropped() {
    let channel = Channel::new(Identity);
    let stream = channel.watch();
    let id = stream.listener().id().to_owned();
    assert!(channel.get_listener(&id).unwrap().is_running());
    drop(stream);
    assert!(channel.get_listener(&id).is_err());
}

#[test]
fn a_watch_listener_keeps_the_queue_bounds() {
    let config = QueueConfig::bounded(8, OverflowPolicy::DropOldest);
    let channel = Channel::builder(Identity).queue_config(config).build();
    let stream = channel.watch();
    assert_eq!(stream.listener().config(), config);
}

#[test]
fn event_ids_are_offsets_in_the_channel_log() {
    let (channel, listener) = channel_with_started_listener();
    let other = channel.add_listener();
    other.start();
    channel.dispatch(other.id(), Message::empty("x")).unwrap();
    channel.broadcast(Message::empty("a"));
    channel.broadcast(Message::empty("b"));
    let ids: Vec<u64> = (0..2)
        .map(|_| channel.deliver_next(listener.id()).unwrap().id)
        .collect();
    assert_eq!(ids, [2, 3], "offset 1 went to the other listener");
    assert_eq!(other.stats().last_event_id, 3);
}
