//! Process-wide id counters.
//!
//! As in the reference, channel ids and listener ids come from two separate counters
//! that start at 1 and are written as decimal strings (`"1"`, `"2"`, ...). Callers may
//! choose their own ids instead; generated ids are never reused within a process.

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_CHANNEL_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_LISTENER_ID: AtomicU64 = AtomicU64::new(1);

/// The next channel id of this process.
pub fn next_channel_id() -> String {
    NEXT_CHANNEL_ID.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The next listener id of this process.
pub fn next_listener_id() -> String {
    NEXT_LISTENER_ID.fetch_add(1, Ordering::Relaxed).to_string()
}
