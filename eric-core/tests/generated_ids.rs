//! Generated listener ids next to caller-chosen ones. A file of its own: this process's
//! id counter is touched by this test alone, so the ids it expects to collide do.

use eric_core::{Channel, Identity, Listener, Message};
use std::sync::Arc;

#[test]
fn a_generated_id_skips_ids_that_callers_registered_ahead_of_the_counter() {
    let channel = Channel::new(Identity);
    let last: u64 = channel.add_listener().id().parse().unwrap();
    // The next five ids the counter would hand out, taken by the caller first.
    let chosen: Vec<Arc<Listener>> = (last + 1..=last + 5)
        .map(|id| {
            channel
                .register_listener(Listener::with_id(id.to_string()))
                .unwrap()
        })
        .collect();

    let generated = channel.add_listener();
    assert_eq!(generated.id(), (last + 6).to_string());

    for listener in &chosen {
        let found = channel.get_listener(listener.id()).unwrap();
        assert!(
            Arc::ptr_eq(&found, listener),
            "{} was replaced",
            listener.id()
        );
        listener.start();
        channel
            .dispatch(listener.id(), Message::empty("still here"))
            .unwrap();
        assert_eq!(
            channel
                .deliver_next(listener.id())
                .unwrap()
                .message
                .msg_type,
            "still here"
        );
    }
    // The channel's `watch` takes generated ids the same way.
    let watcher = channel.watch();
    assert_eq!(watcher.listener().id(), (last + 7).to_string());
}
