//! The key of a listener id: what a lookup in a channel's listener set compares.
//!
//! It lives apart from both the listener (which stores its key) and the listener set
//! (which hashes and compares keys), so neither file depends on the other for it.

/// A listener id's length and bytes, packed in three words so that a lookup compares
/// them without leaving the listener (the id's bytes live in a heap block of their
/// own) and without a call to `bcmp` (whose call makes the probe loop save its
/// registers around it). Ids of up to 16 bytes, every generated id among them, are
/// wholly in the key; longer ones are compared in full once their keys match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdKey {
    /// The id's length in bytes.
    pub(crate) len: usize,
    /// The first and last (up to) eight bytes, little-endian.
    pub(crate) words: [u64; 2],
}

/// Ids at most this long are wholly in their [`IdKey`].
pub(crate) const INLINE_ID: usize = 16;

impl IdKey {
    /// The key of `id`: two words that cover its first and last bytes, overlapping when
    /// it is shorter than 16 bytes. For a given length they are a function of the bytes
    /// and determine them (up to 16), so equal keys mean equal short ids.
    #[inline]
    pub(crate) fn new(id: &str) -> IdKey {
        let b = id.as_bytes();
        let len = b.len();
        let words = if len >= 8 {
            [le_u64(&b[..8]), le_u64(&b[len - 8..])]
        } else if len >= 4 {
            [u64::from(le_u32(&b[..4])), u64::from(le_u32(&b[len - 4..]))]
        } else if len >= 2 {
            [u64::from(le_u16(&b[..2])), u64::from(b[len - 1])]
        } else if len == 1 {
            [u64::from(b[0]), 0]
        } else {
            [0, 0]
        };
        IdKey { len, words }
    }
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes(b.try_into().expect("2 bytes"))
}
