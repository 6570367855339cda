//! A listener that answers messages by name: the reference's
//! `SimpleDistributedApplicationListener`.

use crate::channel::{Adapter, Channel};
use crate::error::{Error, Result};
use crate::listener::Listener;
use crate::message::{Message, SignedMessage};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// What an action does with a message: the replies to send back to its sender.
pub type Action = Arc<dyn Fn(&Message) -> Vec<Message> + Send + Sync>;

/// The built-in actions, which [`DistributedListener::set_action`] refuses to replace.
pub const RESERVED_ACTIONS: [&str; 2] = ["stop", "remove"];

/// A listener for applications whose parts talk to each other through one channel.
///
/// Each message it receives names an action by its type. The action maps the message to
/// replies; each reply is signed with this listener's id (a [`SignedMessage`]) and
/// dispatched to the listener named by the `sender_id` of the incoming payload. Two
/// actions are built in: `stop` stops the listener, `remove` stops it and removes it from
/// the channel. An unknown action, a missing `sender_id` or a reply that cannot be
/// dispatched is logged (tracing) and skipped.
///
/// ```
/// use eric_core::{Channel, DistributedListener, Identity, Message, SignedMessage};
///
/// let channel = Channel::new(Identity);
/// let alice = DistributedListener::register(&channel).unwrap();
/// let bob = DistributedListener::register(&channel).unwrap();
/// alice.set_action("hello", |_| vec![Message::empty("hello_ack")]).unwrap();
/// alice.listener().start();
/// bob.listener().start();
///
/// channel.dispatch(alice.id(), SignedMessage::new(bob.id(), "hello", "hi")).unwrap();
/// let mut alice_stream = channel.message_stream(alice.listener());
/// assert_eq!(alice_stream.try_recv().unwrap().msg_type, "hello");
/// assert_eq!(channel.deliver_next(bob.id()).unwrap().msg_type, "hello_ack");
/// ```
pub struct DistributedListener {
    listener: Arc<Listener>,
    actions: Arc<RwLock<HashMap<String, Action>>>,
}

impl DistributedListener {
    /// Creates a listener with a generated id and registers it on `channel`.
    pub fn register<A: Adapter>(channel: &Channel<A>) -> Result<Self> {
        Self::register_as(channel, Listener::new())
    }

    /// Registers `listener` (its id and queue configuration are kept; a handler it has
    /// is replaced by the action dispatcher).
    pub fn register_as<A: Adapter>(channel: &Channel<A>, listener: Listener) -> Result<Self> {
        let actions: Arc<RwLock<HashMap<String, Action>>> = Arc::default();
        let weak_channel = channel.downgrade();
        let table = Arc::clone(&actions);
        let listener = listener.on_message(move |me, message| {
            let Some(channel) = weak_channel.upgrade() else {
                return;
            };
            run_action(&channel, &table, me, message);
        });
        let listener = channel.register_listener(listener)?;
        Ok(DistributedListener { listener, actions })
    }

    /// Hooks `action` to messages of type `name`. `stop` and `remove` are reserved.
    pub fn set_action<F>(&self, name: impl Into<String>, action: F) -> Result<()>
    where
        F: Fn(&Message) -> Vec<Message> + Send + Sync + 'static,
    {
        let name = name.into();
        if RESERVED_ACTIONS.contains(&name.as_str()) {
            return Err(Error::ReservedAction(name));
        }
        self.actions.write().insert(name, Arc::new(action));
        Ok(())
    }

    /// The underlying listener (to start, stop or stream it).
    pub fn listener(&self) -> &Arc<Listener> {
        &self.listener
    }

    /// The listener's id.
    pub fn id(&self) -> &str {
        self.listener.id()
    }
}

fn run_action<A: Adapter>(
    channel: &Channel<A>,
    actions: &RwLock<HashMap<String, Action>>,
    me: &Listener,
    message: &Message,
) {
    match message.msg_type.as_str() {
        "stop" => return me.stop(),
        "remove" => {
            me.stop();
            // Already removed is fine: the goal is reached.
            let _ = channel.remove_listener(me.id());
            return;
        }
        _ => {}
    }
    // Clone the action out so no lock is held while it runs (it may set actions).
    let Some(action) = actions.read().get(&message.msg_type).cloned() else {
        tracing::error!(listener = ?me.id(), action = ?message.msg_type, "unknown action");
        return;
    };
    let replies = action(message);
    if replies.is_empty() {
        return;
    }
    let Some(sender) = message.payload.get("sender_id").and_then(|s| s.as_str()) else {
        tracing::warn!(
            listener = ?me.id(),
            action = ?message.msg_type,
            "message has no sender_id in its payload: replies not sent"
        );
        return;
    };
    for reply in replies {
        let signed = SignedMessage::new(me.id(), reply.msg_type, reply.payload);
        if let Err(error) = channel.dispatch(sender, Message::from(signed)) {
            tracing::warn!(listener = ?me.id(), error = ?error, "reply not delivered");
        }
    }
}

impl fmt::Debug for DistributedListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedListener")
            .field("listener", &self.listener)
            .field("actions", &self.actions.read().keys().collect::<Vec<_>>())
            .finish()
    }
}
