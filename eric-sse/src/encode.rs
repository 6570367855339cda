//! The `text/event-stream` encoder.
//!
//! The format is the one of the WHATWG HTML standard, section "Server-sent events": an
//! event is a block of `field: value` lines ended by a blank line; a line that starts
//! with `:` is a comment. This encoder writes `\n` line ends and always one space after
//! the colon (the parser drops exactly one, so a value that starts with a space survives).
//!
//! # What cannot be encoded
//!
//! A field value runs to the end of its line, so a CR or LF inside the event name or the
//! id would end the field early and let the rest be read as other fields; a client
//! ignores an id that contains NUL. The encoder refuses such input with an
//! [`EncodeError`] that names the field and the value, and appends nothing to the buffer:
//! it never writes a stream that would be read back differently. The data is never
//! refused: JSON text has no raw line breaks, and raw text is split into lines.

use std::fmt;

use bytes::Bytes;
use eric_core::Epoch;
use memchr::{memchr2, memchr3};
use serde_json::Value;

use crate::SseEvent;

/// How an event's data (the message payload, a JSON value) is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DataMode {
    /// One `data:` line holding the compact JSON encoding of the payload, so a browser
    /// reads it with `JSON.parse(event.data)`. The default.
    #[default]
    Json,
    /// A payload that is a JSON string is written as its text: each line of it (split on
    /// CRLF, CR or LF) becomes one `data:` line, and the client reads back the text with
    /// its line ends turned into LF. Any other payload is written as JSON, as in
    /// [`DataMode::Json`].
    RawText,
}

/// A character that a field value cannot hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forbidden {
    /// U+000D CARRIAGE RETURN: would end the line.
    CarriageReturn,
    /// U+000A LINE FEED: would end the line.
    LineFeed,
    /// U+0000 NULL: a client ignores an id that holds one.
    Nul,
}

impl Forbidden {
    fn of(byte: u8) -> Forbidden {
        match byte {
            b'\r' => Forbidden::CarriageReturn,
            b'\n' => Forbidden::LineFeed,
            _ => Forbidden::Nul,
        }
    }
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forbidden::CarriageReturn => "a carriage return (CR)",
            Forbidden::LineFeed => "a line feed (LF)",
            Forbidden::Nul => "a NUL character",
        })
    }
}

/// Why an event could not be encoded. Values are shown escaped (`{:?}`), so an error
/// message is always one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The event name holds a line break.
    #[error("cannot encode SSE field `event`: the event name {value:?} contains {found}")]
    EventName {
        /// The offending event name.
        value: String,
        /// What it contains.
        found: Forbidden,
    },
    /// The id holds a line break or a NUL.
    #[error("cannot encode SSE field `id`: the id {value:?} contains {found}")]
    Id {
        /// The offending id.
        value: String,
        /// What it contains.
        found: Forbidden,
    },
    /// The payload could not be written as JSON (not expected of a `serde_json::Value`;
    /// kept so that a failure is reported, never written half).
    #[error("cannot encode SSE field `data` of event {event:?} as JSON: {source}")]
    Json {
        /// The name of the event whose data failed.
        event: String,
        /// The serde_json error.
        source: serde_json::Error,
    },
}

impl EncodeError {
    /// The name of the field at fault: `"event"`, `"id"` or `"data"`.
    pub fn field(&self) -> &'static str {
        match self {
            EncodeError::EventName { .. } => "event",
            EncodeError::Id { .. } => "id",
            EncodeError::Json { .. } => "data",
        }
    }
}

/// Writes events, comments and reconnection times as `text/event-stream` bytes.
///
/// Every method appends to a caller's `Vec<u8>`, so one buffer can collect many events
/// (or be reused across frames); encoding an event makes no heap allocation of its own
/// beyond the growth of that buffer.
///
/// ```
/// use eric_sse::{Encoder, SseEvent};
/// use serde_json::json;
///
/// let mut buf = Vec::new();
/// let encoder = Encoder::new();
/// encoder.encode_retry(3000, &mut buf);
/// encoder.encode_event(&SseEvent::new("tick", json!({"n": 1})).with_id(1), &mut buf)?;
/// encoder.encode_comment("keep-alive", &mut buf);
/// assert_eq!(
///     buf,
///     b"retry: 3000\n\nid: 1\nevent: tick\ndata: {\"n\":1}\n\n: keep-alive\n\n"
/// );
/// # Ok::<(), eric_sse::EncodeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encoder {
    data_mode: DataMode,
}

impl Encoder {
    /// An encoder that writes data as JSON ([`DataMode::Json`]).
    pub const fn new() -> Self {
        Encoder {
            data_mode: DataMode::Json,
        }
    }

    /// This encoder with the data mode `mode`.
    #[must_use]
    pub const fn with_data_mode(mut self, mode: DataMode) -> Self {
        self.data_mode = mode;
        self
    }

    /// How this encoder writes data.
    pub const fn data_mode(&self) -> DataMode {
        self.data_mode
    }

    /// Appends `event` to `buf`: `id:` (when the event has one), `event:` (unless the
    /// name is empty: the client then uses `message`), the `data:` line(s) and the blank
    /// line that dispatches it.
    ///
    /// The event's [`retry`](SseEvent::retry) is not written: a reconnection time belongs
    /// to the connection, written once with [`encode_retry`](Self::encode_retry) (or use
    /// [`encode_event_with_retry`](Self::encode_event_with_retry)).
    ///
    /// An event with an id (an event of a channel) is encoded once per shared message:
    /// see [`encode_event_shared`](Self::encode_event_shared).
    ///
    /// # Errors
    /// [`EncodeError::EventName`] when the name holds CR or LF; nothing is appended then.
    pub fn encode_event(&self, event: &SseEvent, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self.shared_encoding(event) {
            Some(bytes) => {
                buf.extend_from_slice(bytes);
                Ok(())
            }
            None => self.encode(event, None, buf),
        }
    }

    /// The bytes [`encode_event`](Self::encode_event) appends, as a shared buffer.
    ///
    /// An event with an id (an event of a channel) is encoded once per shared message:
    /// the bytes are kept in the message (see
    /// [`Message::rendering`](eric_core::Message::rendering)) and handed to every later
    /// stream that writes the same event with an encoder like this one, so a message
    /// broadcast to N subscribers is turned into JSON once, not N times, and its bytes
    /// are not copied per subscriber.
    ///
    /// ```
    /// use eric_sse::{Encoder, SseEvent};
    ///
    /// let event = SseEvent::new("tick", 1).with_id(7);
    /// let for_alice = Encoder::new().encode_event_shared(&event).unwrap();
    /// let for_bob = Encoder::new().encode_event_shared(&event.clone()).unwrap();
    /// assert_eq!(&for_alice[..], b"id: 7\nevent: tick\ndata: 1\n\n");
    /// assert_eq!(for_alice.as_ptr(), for_bob.as_ptr(), "one encoding, shared");
    /// # Ok::<(), eric_sse::EncodeError>(())
    /// ```
    ///
    /// # Errors
    /// As [`encode_event`](Self::encode_event).
    // Inline, with the encoding out of line: a stream calls it for every event it
    // writes, and almost every call finds the shared bytes.
    #[inline]
    pub fn encode_event_shared(&self, event: &SseEvent) -> Result<Bytes, EncodeError> {
        match self.shared_encoding(event) {
            Some(shared) => Ok(shared.clone()),
            None => self.encode_event_alone(event),
        }
    }

    /// `event`'s bytes, made for this caller alone.
    #[inline(never)]
    fn encode_event_alone(&self, event: &SseEvent) -> Result<Bytes, EncodeError> {
        let mut buf = Vec::new();
        self.encode(event, None, &mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// The encoding of `event` kept in its message, made now if it has none; `None` for
    /// an event without an id, one that cannot be encoded, or one whose message keeps
    /// another encoding.
    #[inline]
    fn shared_encoding<'e>(&self, event: &'e SseEvent) -> Option<&'e Bytes> {
        event.id()?;
        event
            .message()
            .rendering(|| SharedEncoding::new(self, event))?
            .bytes_for(self, event)
    }

    /// Like [`encode_event`](Self::encode_event), with a `retry:` line holding the
    /// event's reconnection time inside the event block.
    ///
    /// # Errors
    /// As [`encode_event`](Self::encode_event).
    pub fn encode_event_with_retry(
        &self,
        event: &SseEvent,
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        self.encode(event, Some(event.retry()), buf)
    }

    fn encode(
        &self,
        event: &SseEvent,
        retry: Option<u64>,
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let name = event.event();
        check_event_name(name)?;
        let start = buf.len();
        if let Some(id) = event.id() {
            buf.extend_from_slice(b"id: ");
            if let Some(position) = event.position() {
                write_epoch(position.epoch, buf);
                buf.push(b'-');
            }
            buf.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
            buf.push(b'\n');
        }
        write_event_name(name, buf);
        if let Some(ms) = retry {
            write_retry_line(ms, buf);
        }
        match (self.data_mode, event.data()) {
            (DataMode::RawText, Value::String(text)) => write_text_data(text, buf),
            (_, payload) => {
                buf.extend_from_slice(b"data: ");
                if let Err(source) = serde_json::to_writer(&mut *buf, payload) {
                    buf.truncate(start);
                    return Err(EncodeError::Json {
                        event: name.to_owned(),
                        source,
                    });
                }
                buf.push(b'\n');
            }
        }
        buf.push(b'\n');
        Ok(())
    }

    /// Appends an event given as text: `id:` when `id` is given, `event:` unless `event`
    /// is empty, one `data:` line per line of `data` (split on CRLF, CR or LF) and a
    /// blank line. For relaying events whose ids are strings (a parsed
    /// [`ParsedEvent`](crate::ParsedEvent), an upstream server's).
    ///
    /// # Errors
    /// [`EncodeError::EventName`] when `event` holds CR or LF, [`EncodeError::Id`] when
    /// `id` holds CR, LF or NUL; nothing is appended then.
    pub fn encode_text_event(
        &self,
        event: &str,
        id: Option<&str>,
        data: &str,
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        check_event_name(event)?;
        if let Some(id) = id {
            if let Some(at) = memchr3(b'\r', b'\n', 0, id.as_bytes()) {
                return Err(EncodeError::Id {
                    value: id.to_owned(),
                    found: Forbidden::of(id.as_bytes()[at]),
                });
            }
            buf.extend_from_slice(b"id: ");
            buf.extend_from_slice(id.as_bytes());
            buf.push(b'\n');
        }
        write_event_name(event, buf);
        write_text_data(data, buf);
        buf.push(b'\n');
        Ok(())
    }

    /// Appends a `retry: <ms>` line and a blank line: the client's reconnection time for
    /// this connection, in milliseconds.
    pub fn encode_retry(&self, ms: u64, buf: &mut Vec<u8>) {
        write_retry_line(ms, buf);
        buf.push(b'\n');
    }

    /// Appends a comment: each line of `text` (split on CRLF, CR or LF) as a line
    /// starting with `: `, then a blank line. A client ignores comments; they keep idle
    /// connections open through proxies.
    pub fn encode_comment(&self, text: &str, buf: &mut Vec<u8>) {
        for_each_line(text, |line| {
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(line);
            buf.push(b'\n');
        });
        buf.push(b'\n');
    }
}

fn check_event_name(name: &str) -> Result<(), EncodeError> {
    match memchr2(b'\r', b'\n', name.as_bytes()) {
        Some(at) => Err(EncodeError::EventName {
            value: name.to_owned(),
            found: Forbidden::of(name.as_bytes()[at]),
        }),
        None => Ok(()),
    }
}

fn write_event_name(name: &str, buf: &mut Vec<u8>) {
    if !name.is_empty() {
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'\n');
    }
}

fn write_retry_line(ms: u64, buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"retry: ");
    buf.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
    buf.push(b'\n');
}

fn write_text_data(text: &str, buf: &mut Vec<u8>) {
    for_each_line(text, |line| {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(line);
        buf.push(b'\n');
    });
}

/// Calls `f` with each line of `text`, split on CRLF, CR or LF. The empty text is one
/// empty line; a text ending in a line break ends with an empty line.
fn for_each_line(text: &str, mut f: impl FnMut(&[u8])) {
    let mut rest = text.as_bytes();
    loop {
        match memchr2(b'\r', b'\n', rest) {
            None => {
                f(rest);
                return;
            }
            Some(at) => {
                f(&rest[..at]);
                let crlf = rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n');
                rest = &rest[at + if crlf { 2 } else { 1 }..];
            }
        }
    }
}

/// Writes an epoch as [`Epoch`](eric_core::Epoch)'s `Display` does (16 lowercase hex
/// digits), without the formatting machinery: it is on every event of a channel.
fn write_epoch(epoch: eric_core::Epoch, buf: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let value = epoch.as_u64();
    buf.extend(
        (0..16)
            .rev()
            .map(|i| HEX[((value >> (i * 4)) & 0xf) as usize]),
    );
}

/// An event's bytes, made once by [`Encoder::encode_event`] and kept in its shared
/// message, with what they were made from: a reader checks that before copying them.
struct SharedEncoding {
    id: Option<u64>,
    epoch: Option<Epoch>,
    encoder: Encoder,
    /// `None` when the event cannot be encoded: the reader encodes it and gets the error.
    bytes: Option<Bytes>,
}

impl SharedEncoding {
    #[inline(never)]
    fn new(encoder: &Encoder, event: &SseEvent) -> Self {
        let mut bytes = Vec::new();
        let encoded = encoder.encode(event, None, &mut bytes).is_ok();
        SharedEncoding {
            id: event.id(),
            epoch: event.position().map(|position| position.epoch),
            encoder: *encoder,
            bytes: encoded.then(|| Bytes::from(bytes)),
        }
    }

    /// The bytes, if they are what `encoder` writes for `event`.
    fn bytes_for(&self, encoder: &Encoder, event: &SseEvent) -> Option<&Bytes> {
        let fits = self.encoder == *encoder
            && self.id == event.id()
            && self.epoch == event.position().map(|position| position.epoch);
        fits.then_some(self.bytes.as_ref()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_line(text, |l| out.push(String::from_utf8(l.to_vec()).unwrap()));
        out
    }

    #[test]
    fn splits_on_crlf_cr_and_lf() {
        assert_eq!(lines(""), [""]);
        assert_eq!(lines("a"), ["a"]);
        assert_eq!(lines("a\r\nb\rc\nd"), ["a", "b", "c", "d"]);
        assert_eq!(lines("a\n"), ["a", ""]);
        assert_eq!(lines("\r\r\n\n"), ["", "", "", ""]);
    }
}
