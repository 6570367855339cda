//! The listeners of a channel, found by id.

use crate::id_key::{IdKey, INLINE_ID};
use crate::listener::Listener;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// How many listeners ahead [`ListenerSet::iter_prefetching`] prefetches: far
/// enough for a line to come from memory while the pushes between run, near enough
/// that it is still in the cache when its push comes (6 and 8 measured alike, 16 worse).
const PREFETCH_DISTANCE: usize = 8;

/// A channel's listeners, keyed by their id.
///
/// The table holds only the `Arc<Listener>`: the key is the listener's own id, so no
/// second copy of it is stored, and an entry is one pointer, which keeps a broadcast's
/// walk over the table short. `deliver_next` looks an id up once per message, so the
/// lookup is on the hot path: see [`IdKey`] and [`IdHasher`].
#[derive(Default)]
pub(crate) struct ListenerSet {
    table: HashTable<Arc<Listener>>,
    hasher: IdHasher,
}

/// Hashes listener ids with seeds random per set, so that callers who choose ids
/// cannot aim them at one bucket.
///
/// An id of up to 16 bytes is hashed from its [`IdKey`], which the lookup computes anyway:
/// two folded multiplies, inline, instead of a call that reads the bytes again
/// (ahash's `write`). Longer ids
/// go through ahash, one `write` of their bytes (a `str`'s `Hash` would add a
/// terminator byte, a second round of the hasher, needless for keys of one string).
struct IdHasher {
    long: ahash::RandomState,
    seeds: [u64; 3],
}

impl Default for IdHasher {
    fn default() -> Self {
        let long = ahash::RandomState::new();
        // ahash's own random state yields the seeds: no second source of randomness.
        let seeds = [1u64, 2, 3].map(|i| long.hash_one(i));
        IdHasher { long, seeds }
    }
}

impl IdHasher {
    #[inline(always)]
    fn hash(&self, key: &IdKey, id: &str) -> u64 {
        if key.len > INLINE_ID {
            return self.hash_long(id);
        }
        let [first, last] = key.words;
        let [s0, s1, s2] = self.seeds;
        // The length goes in too: a short key's words alone repeat across lengths.
        let mixed = folded_multiply(first ^ s0, last ^ s1);
        folded_multiply(mixed ^ key.len as u64, s2)
    }

    #[inline(never)]
    fn hash_long(&self, id: &str) -> u64 {
        let mut hasher = self.long.build_hasher();
        hasher.write(id.as_bytes());
        hasher.finish()
    }
}

/// The two halves of the full product of `a` and `b`, xored: every bit of either factor
/// reaches most bits of the result.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Whether `listener` has the id whose key is `key`.
#[inline]
fn has_id(listener: &Listener, key: &IdKey, id: &str) -> bool {
    listener.id_key() == key && (key.len <= INLINE_ID || listener.id() == id)
}

impl ListenerSet {
    /// The listener with this id.
    #[inline(always)]
    pub(crate) fn get(&self, id: &str) -> Option<&Arc<Listener>> {
        let key = IdKey::new(id);
        let hash = self.hasher.hash(&key, id);
        self.table.find(hash, |l| has_id(l, &key, id))
    }

    /// Whether a listener has this id.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Adds a listener; one that had the same id is replaced and returned.
    pub(crate) fn insert(&mut self, listener: Arc<Listener>) -> Option<Arc<Listener>> {
        let hasher = &self.hasher;
        let key = *listener.id_key();
        let hash = hasher.hash(&key, listener.id());
        // The last closure rehashes entries when the table grows.
        match self.table.entry(
            hash,
            |l| has_id(l, &key, listener.id()),
            |l| hasher.hash(l.id_key(), l.id()),
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
        let key = IdKey::new(id);
        let hash = self.hasher.hash(&key, id);
        let entry = self.table.find_entry(hash, |l| has_id(l, &key, id)).ok()?;
        Some(entry.remove().0)
    }

    /// Every listener, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Listener>> {
        self.table.iter()
    }

    /// Every listener, as [`iter`](Self::iter), for a walk that touches each: a few
    /// listeners ahead of the one yielded, it calls `prefetch` on the next one (which
    /// asks the CPU to fetch what the walk will touch, as
    /// [`Listener::prefetch_queue`] does), so that a broadcast to thousands of
    /// listeners waits for their cache lines a few at a time instead of one after the
    /// other (docs/benchmarks.md, "Prefetching the queues").
    pub(crate) fn iter_prefetching(
        &self,
        prefetch: impl Fn(&Listener),
    ) -> impl Iterator<Item = &Arc<Listener>> {
        let mut ahead = self.table.iter().skip(PREFETCH_DISTANCE);
        self.table.iter().inspect(move |_| {
            if let Some(listener) = ahead.next() {
                prefetch(listener);
            }
        })
    }

    /// How many listeners there are.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids around every length at which the key changes how it reads the bytes, and ids
    /// that share their first and last bytes, so that a key that missed a byte would
    /// find the wrong listener.
    fn tricky_ids() -> Vec<String> {
        let mut ids = vec![String::new()];
        for len in 1..=40 {
            let base: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            for middle in 0..len {
                let mut bytes = base.clone().into_bytes();
                bytes[middle] = b'#';
                ids.push(String::from_utf8(bytes).unwrap());
            }
            ids.push(base);
        }
        ids
    }

    #[test]
    fn finds_every_id_and_only_it() {
        let ids = tricky_ids();
        let mut set = ListenerSet::default();
        for id in &ids {
            assert!(set
                .insert(Arc::new(Listener::with_id(id.as_str())))
                .is_none());
        }
        assert_eq!(set.len(), ids.len());
        for id in &ids {
            assert_eq!(set.get(id).map(|l| l.id()), Some(id.as_str()));
        }
        // Each id with one byte changed to one no id has.
        for id in ids.iter().filter(|id| !id.is_empty()) {
            for at in 0..id.len() {
                let mut absent = id.clone().into_bytes();
                absent[at] = b'!';
                let absent = String::from_utf8(absent).unwrap();
                assert!(!set.contains(&absent), "{absent:?}");
            }
        }
        for id in &ids {
            assert_eq!(set.remove(id).map(|l| l.id().to_owned()), Some(id.clone()));
            assert!(!set.contains(id));
        }
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn keys_of_short_ids_differ_when_the_ids_do() {
        let ids = tricky_ids();
        for a in ids.iter().filter(|id| id.len() <= INLINE_ID) {
            for b in ids.iter().filter(|id| id.len() <= INLINE_ID) {
                assert_eq!(IdKey::new(a) == IdKey::new(b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
