//! The names of the keys the engine writes, and the scripts that write them.
//!
//! Every key of a channel carries the hash tag `{<prefix>:<channel>}`, so a channel's
//! keys live on one slot of a Redis Cluster and a script may touch all of them:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p:c}:meta` | hash | `e` epoch (16 hex digits), `s` last offset, `r` entries retained for resume, `a` their age bound in seconds (0: none) |
//! | `{p:c}:log` | stream | one entry per publish, id `<offset>-0`, fields `t` type, `p` payload (JSON), `to` the listener of a dispatch |
//! | `{p:c}:listeners` | hash | listener id → `{"joined": offset, "cursor": offset}` |
//! | `{p:c}:notify` | PUB/SUB channel | `<offset>\n<to>\n<type>\n<payload>` per publish, `x` on removal, `u\n<id>` when a listener goes |
//!
//! Outside the channels: `p:channels` (set of channel ids, so listing needs no SCAN),
//! `p:next_channel` and `p:next_listener` (counters of generated ids).

/// The keys of one channel.
#[derive(Clone, Debug)]
pub(crate) struct ChannelKeys {
    pub(crate) meta: String,
    pub(crate) log: String,
    pub(crate) listeners: String,
    pub(crate) notify: String,
}

impl ChannelKeys {
    pub(crate) fn new(prefix: &str, channel: &str) -> Self {
        let tag = format!("{{{prefix}:{channel}}}");
        ChannelKeys {
            meta: format!("{tag}:meta"),
            log: format!("{tag}:log"),
            listeners: format!("{tag}:listeners"),
            notify: format!("{tag}:notify"),
        }
    }
}

/// The channel id of a notification channel's name, if it is one of this prefix's.
pub(crate) fn channel_of_notify<'a>(prefix: &str, name: &'a str) -> Option<&'a str> {
    name.strip_prefix('{')?
        .strip_prefix(prefix)?
        .strip_prefix(':')?
        .strip_suffix("}:notify")
}

/// Makes a channel unless it exists. KEYS: meta. ARGV: epoch, retained entries, age.
/// Returns 1 if made, 0 if the id is taken.
pub(crate) const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', 0, 'r', ARGV[2], 'a', ARGV[3])
return 1
";

/// Appends one entry to a channel's log and notifies the nodes, atomically: the one
/// round trip of a publish. KEYS: meta, log, listeners. ARGV: the listener of a
/// dispatch ('' for a broadcast), type, payload, the log's length bound, the
/// notification channel. Returns the offset taken.
pub(crate) const PUBLISH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOCHANNEL') end
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  return redis.error_reply('NOLISTENER')
end
local offset = redis.call('HINCRBY', KEYS[1], 's', 1)
local id = offset .. '-0'
if ARGV[1] == '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], id, 't', ARGV[2], 'p', ARGV[3])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], id, 't', ARGV[2], 'p', ARGV[3], 'to', ARGV[1])
end
redis.call('PUBLISH', ARGV[5], offset .. '\n' .. ARGV[1] .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return offset
";

/// Registers a listener at the channel's current offset. KEYS: meta, listeners. ARGV:
/// the listener id. Returns the offset it joined at.
pub(crate) const SUBSCRIBE: &str = r#"
local last = redis.call('HGET', KEYS[1], 's')
if not last then return redis.error_reply('NOCHANNEL') end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return redis.error_reply('DUPLICATE') end
redis.call('HSET', KEYS[2], ARGV[1], '{"joined":' .. last .. ',"cursor":' .. last .. '}')
return tonumber(last)
"#;

/// Removes a listener and tells the nodes. KEYS: listeners. ARGV: id, notification
/// channel. Returns 1 if it existed.
pub(crate) const UNSUBSCRIBE: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[2], 'u\n' .. ARGV[1])
return 1
";

/// Removes a channel's keys and tells the nodes. KEYS: meta, log, listeners. ARGV: the
/// notification channel. Returns 1 if it existed.
pub(crate) const REMOVE: &str = r"
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[1], 'x')
return 1
";

/// Moves a listener's cursor forward (never back: another node may have consumed
/// further). KEYS: listeners. ARGV: id, cursor. Returns 0 if the listener is gone.
pub(crate) const CURSOR: &str = r#"
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
local ok, value = pcall(cjson.decode, record)
if not ok or type(value) ~= 'table' or type(value.cursor) ~= 'number' then
  return redis.error_reply('BADVALUE ' .. KEYS[1] .. ' field ' .. ARGV[1])
end
local cursor = tonumber(ARGV[2])
if cursor > value.cursor then
  redis.call('HSET', KEYS[1], ARGV[1], '{"joined":' .. string.format('%d', value.joined) .. ',"cursor":' .. ARGV[2] .. '}')
end
return 1
"#;

/// What waits for a listener, with the log's top, read together. KEYS: meta, log. ARGV:
/// the first offset wanted. Returns `{entries, top}` (`top` false if the channel is
/// gone).
pub(crate) const READ_QUEUE: &str = r"
local entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+')
local top = redis.call('HGET', KEYS[1], 's')
return {entries, top}
";
