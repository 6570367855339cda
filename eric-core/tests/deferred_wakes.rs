//! Who a deferring broadcast wakes, one step at a time.
//!
//! A broadcast that defers its message wakes the tasks on its channel's list of
//! waiters by their wakers, without locking their queues, and a stream's waker goes on
//! the list once per round of the list. These tests poll streams by hand with wakers
//! that count their wakes, and hold each step to what a stream's task must see: woken
//! after every broadcast it waits for, also when it moved to another task, and its
//! message ready when it is polled.

use eric_core::{Channel, Identity, Listener, Message, MessageStream};
use futures::task::ArcWake;
use futures::Stream;
use serde_json::json;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl ArcWake for Counter {
    fn wake_by_ref(counter: &Arc<Self>) {
        counter.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counter {
    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn poll(stream: &mut MessageStream<Identity>, task: &Arc<Counter>) -> Poll<Option<u64>> {
    let waker = futures::task::waker(Arc::clone(task));
    let mut cx = Context::from_waker(&waker);
    Pin::new(stream)
        .poll_next(&mut cx)
        .map(|item| item.map(|delivery| delivery.message.payload["n"].as_u64().unwrap()))
}

fn deferring_channel() -> Channel<Identity> {
    Channel::builder(Identity).defer_broadcasts(true).build()
}

fn running_listener(channel: &Channel<Identity>) -> Arc<Listener> {
    let listener = channel.add_listener();
    listener.start();
    listener
}

/// A deferring channel with one running listener, and the listener's stream.
fn one_stream() -> (Channel<Identity>, Arc<Listener>, MessageStream<Identity>) {
    let channel = deferring_channel();
    let listener = running_listener(&channel);
    let stream = channel.message_stream(&listener);
    (channel, listener, stream)
}

fn broadcast(channel: &Channel<Identity>, n: u64) {
    let report = channel.broadcast(Message::new("m", json!({ "n": n })));
    assert_eq!(
        report.delivered, 1,
        "the broadcast of {n} reached the listener"
    );
}

/// Polls `stream` as `task` with nothing queued (it waits), broadcasts `n`, and holds
/// that the broadcast woke the task once and that the stream then yields `n`.
fn woken_once_for(
    channel: &Channel<Identity>,
    stream: &mut MessageStream<Identity>,
    task: &Arc<Counter>,
    n: u64,
) {
    assert_eq!(poll(stream, task), Poll::Pending);
    let before = task.wakes();
    broadcast(channel, n);
    assert_eq!(
        task.wakes(),
        before + 1,
        "broadcast {n} woke the waiting task once"
    );
    assert_eq!(poll(stream, task), Poll::Ready(Some(n)));
}

#[test]
fn a_waiting_stream_is_woken_by_every_broadcast_it_waits_for() {
    let (channel, _listener, mut stream) = one_stream();
    let task = Arc::new(Counter::default());
    for n in 0..5 {
        woken_once_for(&channel, &mut stream, &task, n);
    }
}

#[test]
fn a_stream_polled_again_without_a_broadcast_is_still_woken_by_the_next() {
    let (channel, _listener, mut stream) = one_stream();
    let task = Arc::new(Counter::default());
    // Polled three times while nothing came (woken by something else, say a timer):
    // it stays on the list once, and the broadcast wakes it.
    for _ in 0..3 {
        assert_eq!(poll(&mut stream, &task), Poll::Pending);
    }
    broadcast(&channel, 7);
    assert_eq!(task.wakes(), 1);
    assert_eq!(poll(&mut stream, &task), Poll::Ready(Some(7)));
}

#[test]
fn a_stream_that_moved_to_another_task_wakes_the_new_one() {
    let (channel, _listener, mut stream) = one_stream();
    let first = Arc::new(Counter::default());
    let second = Arc::new(Counter::default());
    assert_eq!(poll(&mut stream, &first), Poll::Pending);
    // The same round of the list: only a waker registered anew goes on it again.
    assert_eq!(poll(&mut stream, &second), Poll::Pending);
    broadcast(&channel, 1);
    assert_eq!(
        second.wakes(),
        1,
        "the task polling the stream now was woken"
    );
    assert_eq!(poll(&mut stream, &second), Poll::Ready(Some(1)));
    // And back: the first task, which the stream left, polls it again.
    woken_once_for(&channel, &mut stream, &first, 2);
}

#[test]
fn a_task_that_got_its_message_is_not_woken_by_a_dispatch_it_does_not_wait_for() {
    let (channel, listener, mut stream) = one_stream();
    let task = Arc::new(Counter::default());
    assert_eq!(poll(&mut stream, &task), Poll::Pending);
    broadcast(&channel, 1);
    assert_eq!(poll(&mut stream, &task), Poll::Ready(Some(1)));
    // Running, it forgot its registration: a push to its queue (not deferred) finds
    // nobody to wake, and the task finds the message at its next poll.
    let wakes = task.wakes();
    channel
        .dispatch(listener.id(), Message::new("m", json!({ "n": 2 })))
        .unwrap();
    assert_eq!(task.wakes(), wakes);
    assert_eq!(poll(&mut stream, &task), Poll::Ready(Some(2)));
}

#[test]
fn many_streams_on_one_channel_are_each_woken_once_per_broadcast() {
    let channel = deferring_channel();
    let mut streams: Vec<_> = (0..50)
        .map(|_| {
            let listener = running_listener(&channel);
            (
                channel.message_stream(&listener),
                Arc::new(Counter::default()),
            )
        })
        .collect();
    for n in 0..3 {
        for (stream, task) in &mut streams {
            assert_eq!(poll(stream, task), Poll::Pending);
        }
        let report = channel.broadcast(Message::new("m", json!({ "n": n })));
        assert_eq!(report.delivered, 50);
        for (stream, task) in &mut streams {
            assert_eq!(task.wakes() as u64, n + 1);
            assert_eq!(poll(stream, task), Poll::Ready(Some(n)));
        }
    }
}
