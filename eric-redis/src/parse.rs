//! Reading what Redis holds: every value that does not parse is an error naming its key.

use eric_core::{Epoch, Error, Message, Result, Retention};
use redis::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One entry of a channel's log.
pub(crate) struct Entry {
    pub(crate) offset: u64,
    pub(crate) to: Option<String>,
    pub(crate) message: Arc<Message>,
}

/// What a channel's meta hash holds.
pub(crate) struct Meta {
    pub(crate) epoch: Epoch,
    pub(crate) last: u64,
    pub(crate) retention: Retention,
}

fn bad(key: &str, what: impl std::fmt::Display) -> Error {
    Error::Engine(format!("{key}: {what}"))
}

fn number(key: &str, field: &str, text: Option<&String>) -> Result<u64> {
    let text = text.ok_or_else(|| bad(key, format_args!("field {field} is missing")))?;
    text.parse().map_err(|_| {
        bad(
            key,
            format_args!("field {field} is not a whole number: {text:?}"),
        )
    })
}

/// Reads a meta hash (empty: the channel does not exist).
pub(crate) fn meta(key: &str, hash: &HashMap<String, String>) -> Result<Meta> {
    let epoch = hash
        .get("e")
        .ok_or_else(|| bad(key, "field e is missing"))?;
    let epoch = (epoch.len() == 16)
        .then(|| u64::from_str_radix(epoch, 16).ok())
        .flatten()
        .ok_or_else(|| bad(key, format_args!("field e is not 16 hex digits: {epoch:?}")))?;
    let last = number(key, "s", hash.get("s"))?;
    let entries = number(key, "r", hash.get("r"))?;
    let age = number(key, "a", hash.get("a"))?;
    let mut retention = Retention::entries(usize::try_from(entries).unwrap_or(usize::MAX));
    if age > 0 {
        retention = retention.max_age(Duration::from_secs(age));
    }
    Ok(Meta {
        epoch: Epoch::from_u64(epoch),
        last,
        retention,
    })
}

/// Reads a listener's record: the offsets it joined at and consumed through.
pub(crate) fn listener(key: &str, id: &str, record: &str) -> Result<(u64, u64)> {
    let value: serde_json::Value = serde_json::from_str(record)
        .map_err(|e| bad(key, format_args!("listener {id}: not JSON ({e})")))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                bad(
                    key,
                    format_args!("listener {id}: {name} is not a whole number in {record}"),
                )
            })
    };
    Ok((field("joined")?, field("cursor")?))
}

fn text(key: &str, value: &Value) -> Result<String> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|_| bad(key, "a value is not UTF-8"))
        }
        Value::SimpleString(text) => Ok(text.clone()),
        other => Err(bad(key, format_args!("expected a string, got {other:?}"))),
    }
}

/// The offset of a stream entry id `<offset>-0`.
fn offset(key: &str, id: &str) -> Result<u64> {
    id.strip_suffix("-0")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad(key, format_args!("entry id {id:?} is not <offset>-0")))
}

/// Builds a message from its type and its payload's JSON text.
pub(crate) fn message(key: &str, at: u64, msg_type: &str, payload: &str) -> Result<Arc<Message>> {
    let payload: serde_json::Value = serde_json::from_str(payload)
        .map_err(|e| bad(key, format_args!("entry {at}: payload is not JSON ({e})")))?;
    Ok(Arc::new(Message::new(msg_type, payload)))
}

/// Reads the reply of XRANGE / XREVRANGE.
pub(crate) fn entries(key: &str, reply: &Value) -> Result<Vec<Entry>> {
    let Value::Array(items) = reply else {
        return Err(bad(
            key,
            format_args!("expected stream entries, got {reply:?}"),
        ));
    };
    items
        .iter()
        .map(|item| {
            let Value::Array(pair) = item else {
                return Err(bad(key, "an entry is not [id, fields]"));
            };
            let [id, fields] = pair.as_slice() else {
                return Err(bad(key, "an entry is not [id, fields]"));
            };
            let at = offset(key, &text(key, id)?)?;
            let Value::Array(fields) = fields else {
                return Err(bad(key, format_args!("entry {at}: fields are not a list")));
            };
            let (mut msg_type, mut payload, mut to) = (None, None, None);
            for pair in fields.chunks(2) {
                let [name, value] = pair else {
                    return Err(bad(key, format_args!("entry {at}: odd field list")));
                };
                let value = text(key, value)?;
                match text(key, name)?.as_str() {
                    "t" => msg_type = Some(value),
                    "p" => payload = Some(value),
                    "to" => to = Some(value),
                    _ => {}
                }
            }
            let msg_type =
                msg_type.ok_or_else(|| bad(key, format_args!("entry {at}: field t is missing")))?;
            let payload =
                payload.ok_or_else(|| bad(key, format_args!("entry {at}: field p is missing")))?;
            Ok(Entry {
                offset: at,
                to,
                message: message(key, at, &msg_type, &payload)?,
            })
        })
        .collect()
}

/// What a notification says.
pub(crate) enum Notice {
    /// An entry was published.
    Entry(Entry),
    /// The channel was removed.
    Removed,
    /// The listener was removed.
    ListenerRemoved(String),
}

/// Reads a notification: `<offset>\n<to>\n<type>\n<payload>`, `x` or `u\n<id>`.
pub(crate) fn notice(key: &str, payload: &str) -> Result<Notice> {
    if payload == "x" {
        return Ok(Notice::Removed);
    }
    if let Some(id) = payload.strip_prefix("u\n") {
        return Ok(Notice::ListenerRemoved(id.to_owned()));
    }
    let mut parts = payload.splitn(4, '\n');
    let (Some(at), Some(to), Some(msg_type), Some(body)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            key,
            "a notification is not <offset>\\n<to>\\n<type>\\n<payload>",
        ));
    };
    let at: u64 = at.parse().map_err(|_| {
        bad(
            key,
            format_args!("notification offset {at:?} is not a number"),
        )
    })?;
    Ok(Notice::Entry(Entry {
        offset: at,
        to: (!to.is_empty()).then(|| to.to_owned()),
        message: message(key, at, msg_type, body)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        let mut hash = HashMap::new();
        hash.insert("e".to_owned(), "zz".to_owned());
        let error = meta("{eric:news}:meta", &hash).err().unwrap().to_string();
        assert!(
            error.contains("{eric:news}:meta") && error.contains("field e"),
            "{error}"
        );
        let error = listener("{eric:news}:listeners", "7", "nope")
            .unwrap_err()
            .to_string();
        assert!(error.contains("{eric:news}:listeners") && error.contains("listener 7"));
        let error = notice("{eric:news}:notify", "1\n\nt\n{oops")
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("{eric:news}:notify") && error.contains("payload"),
            "{error}"
        );
    }

    #[test]
    fn notices_read_back() {
        let Notice::Entry(entry) = notice("k", "12\n7\nping\n{\"a\":1}").unwrap() else {
            panic!("an entry");
        };
        assert_eq!((entry.offset, entry.to.as_deref()), (12, Some("7")));
        assert_eq!(entry.message.payload["a"], 1);
        assert!(matches!(notice("k", "x").unwrap(), Notice::Removed));
        assert!(matches!(notice("k", "u\n3").unwrap(), Notice::ListenerRemoved(id) if id == "3"));
    }
}
