//! The Redis engine of eric: several `eric serve` nodes share every channel through a
//! Redis, and nothing acknowledged is lost when they restart.
//!
//! [`RedisEngine`] implements [`eric_socket::Engine`]; a
//! [`ChannelContainer`](eric_socket::ChannelContainer) made with it is what the
//! transports use, unchanged. Each node keeps local [`SseChannel`](eric_sse::SseChannel)s as the delivery
//! fabric (streams, queues and wake-ups are those of the in-memory engine) and Redis is
//! the source of truth:
//!
//! - a channel (its epoch, its retention) and its listeners exist in Redis, so any node
//!   serves any of them, and they outlive every node;
//! - a publish is one Lua script, one round trip: it takes the channel's next offset,
//!   appends the entry to the channel's log (a Redis stream) and notifies the nodes
//!   (PUBLISH); it is acknowledged only once Redis answered;
//! - each node applies the entries of the channels it serves to its local channels in
//!   offset order, filling any gap from the log, so `Last-Event-ID` from one node
//!   resumes on another;
//! - a named listener's queue is a cursor over the log: a node that streams it queues
//!   the log's entries after the cursor, and stores the cursor as they are consumed.
//!
//! See [`keys`](crate#keys) for what is stored where.
//!
//! ```no_run
//! use eric_redis::{RedisConfig, RedisEngine};
//! use eric_socket::{ChannelContainer, ChannelSettings};
//! use std::sync::Arc;
//!
//! let engine = RedisEngine::connect(RedisConfig::new("redis://127.0.0.1:6379")).unwrap();
//! let container = ChannelContainer::with_engine(ChannelSettings::default(), Arc::new(engine));
//! let channel = container.add_with(Some("news"), container.settings().retention).unwrap();
//! let listener = container.subscribe(&channel).unwrap();
//! # let _ = listener;
//! ```
//!
//! # Keys
//! Every key of a channel carries the hash tag `{<prefix>:<channel>}`, so that a
//! channel's keys share one slot of a Redis Cluster. `<tag>:meta` (hash: epoch `e`, last
//! offset `s`, retention `r`/`a`), `<tag>:log` (stream, entry id `<offset>-0`),
//! `<tag>:listeners` (hash: id → `{"joined", "cursor"}`), `<tag>:notify` (the PUB/SUB
//! channel); `<prefix>:channels` lists the channel ids.

mod engine;
mod keys;
mod parse;
#[doc(hidden)]
pub mod testing;

pub use engine::{RedisConfig, RedisEngine, RedisTls};

/// How long a Redis operation may take before the engine answers
/// [`Unavailable`](eric_core::Error::Unavailable).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The prefix of every key when none is given.
pub const DEFAULT_PREFIX: &str = "eric";
