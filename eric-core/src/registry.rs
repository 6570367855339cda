//! The listeners of a channel, found by id.

use crate::listener::Listener;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// A channel's listeners, keyed by their id.
///
/// The table holds only the `Arc<Listener>`: the key is the listener's own id, so no
/// second copy of it is stored, and an entry is one pointer, which keeps a broadcast's
/// walk over the table short. `deliver_next` looks an id up once per message, so the
/// lookup is on the hot path: the id is hashed with a single `write` of its bytes (a
/// `str`'s `Hash` adds a terminator byte, a second round of the hasher, which only
/// matters for keys made of several fields; these keys are one string each).
#[derive(Default)]
pub(crate) struct ListenerSet {
    table: HashTable<Arc<Listener>>,
    hasher: ahash::RandomState,
}

/// The hash of a listener id: one `write` of its bytes.
fn hash_id(state: &ahash::RandomState, id: &str) -> u64 {
    let mut hasher = state.build_hasher();
    hasher.write(id.as_bytes());
    hasher.finish()
}

impl ListenerSet {
    fn hash(&self, id: &str) -> u64 {
        hash_id(&self.hasher, id)
    }

    /// The listener with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&Arc<Listener>> {
        self.table.find(self.hash(id), |l| l.id() == id)
    }

    /// Whether a listener has this id.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Adds a listener; one that had the same id is replaced and returned.
    pub(crate) fn insert(&mut self, listener: Arc<Listener>) -> Option<Arc<Listener>> {
        let hash = self.hash(listener.id());
        let state = &self.hasher;
        // The last closure rehashes entries when the table grows.
        match self.table.entry(
            hash,
            |l| l.id() == listener.id(),
            |l| hash_id(state, l.id()),
        ) {
            Entry::Occupied(mut entry) => Some(std::mem::replace(entry.get_mut(), listener)),
            Entry::Vacant(entry) => {
                entry.insert(listener);
                None
            }
        }
    }

    /// Removes and returns the listener with this id.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Arc<Listener>> {
        let hash = self.hash(id);
        let entry = self.table.find_entry(hash, |l| l.id() == id).ok()?;
        Some(entry.remove().0)
    }

    /// Every listener, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Listener>> {
        self.table.iter()
    }

    /// How many listeners there are.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}
