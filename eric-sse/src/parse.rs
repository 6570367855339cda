//! The incremental `text/event-stream` parser.
//!
//! [`Parser`] follows the WHATWG HTML algorithm "interpreting an event stream" to the
//! letter, whatever the chunking of its input:
//!
//! - lines end with CRLF, CR or LF; a CRLF split across two chunks is one line end, and a
//!   CR at the end of a chunk ends its line at once;
//! - one leading UTF-8 byte order mark is dropped; invalid UTF-8 is decoded lossily
//!   (each maximal invalid sequence becomes U+FFFD, as the spec's "UTF-8 decode");
//! - a line starting with `:` is a comment; otherwise the field name runs to the first
//!   colon (a line with no colon is a field name with an empty value) and one space after
//!   the colon is dropped;
//! - `event` sets the event type (`message` when empty), `data` appends its value and an
//!   LF to the data buffer, `id` sets the last event id unless it holds NUL, `retry` sets
//!   the reconnection time when it is all ASCII digits; other fields are ignored;
//! - a blank line dispatches the event: the trailing LF of the data is removed, and an
//!   event whose data buffer is empty is not dispatched (its id still counts);
//! - at the end of the stream ([`Parser::finish`]) an unterminated event is discarded.

use std::collections::VecDeque;

use memchr::memchr2;
use serde::de::DeserializeOwned;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A dispatched event, as a client (a browser's `EventSource`) sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ParsedEvent {
    /// The event type: the last `event` field of the block, or `message`.
    pub event: String,
    /// The `data` lines of the block joined with LF.
    pub data: String,
    /// The last event id at dispatch: the last `id` seen on the stream so far, in this
    /// block or an earlier one (empty when none).
    pub last_event_id: String,
}

impl ParsedEvent {
    /// The data decoded as JSON (the encoder's default data mode writes JSON).
    ///
    /// # Errors
    /// When the data is not JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.data)
    }
}

/// What the parser yields, in stream order, from [`Parser::next_item`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// A dispatched event.
    Event(ParsedEvent),
    /// A comment line: the text after the colon, less one leading space. Yielded only
    /// by a parser made with [`Parser::with_comments`]`(true)`.
    Comment(String),
}

/// An incremental `text/event-stream` parser: [`feed`](Parser::feed) it byte chunks as
/// they arrive, then pull the events it completed.
///
/// ```
/// use eric_sse::Parser;
///
/// let mut parser = Parser::new();
/// parser.feed(b"id: 1\nevent: tick\ndata: {\"n\"");
/// assert_eq!(parser.next_event(), None); // the event is not complete yet
/// parser.feed(b":1}\n\n");
/// let event = parser.next_event().unwrap();
/// assert_eq!(event.event, "tick");
/// assert_eq!(event.last_event_id, "1");
/// assert_eq!(event.json::<serde_json::Value>()?["n"], 1);
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// The parser keeps, across events and across [`finish`](Parser::finish), what a client
/// keeps across reconnections: the last event id ([`last_event_id`](Parser::last_event_id),
/// what to send as `Last-Event-ID`) and the reconnection time
/// ([`reconnection_time`](Parser::reconnection_time)).
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not ended yet (and, at stream start, of a possible BOM).
    line: Vec<u8>,
    /// Whether the stream start (and its BOM) is behind us.
    started: bool,
    /// The previous chunk ended with CR: an LF starting the next chunk ends no line.
    after_cr: bool,
    data: String,
    event_type: String,
    /// The last event ID buffer of the spec: set by `id` fields.
    id_buffer: String,
    /// The last event ID string of the spec: the buffer's value at the last dispatch.
    last_event_id: String,
    retry: Option<u64>,
    emit_comments: bool,
    comments: u64,
    ready: VecDeque<Item>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Parser::default()
    }

    /// This parser, starting from the last event id `id` (as if a previous connection
    /// had ended on it): events without an `id` field carry it.
    #[must_use]
    pub fn with_last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = id.into();
        self.id_buffer.clone_from(&self.last_event_id);
        self
    }

    /// This parser, yielding comments as [`Item::Comment`] from
    /// [`next_item`](Self::next_item) when `yes` (comments are only counted otherwise).
    #[must_use]
    pub fn with_comments(mut self, yes: bool) -> Self {
        self.emit_comments = yes;
        self
    }

    /// Parses `chunk`, the next bytes of the stream; the events it completes become
    /// available from [`next_event`](Self::next_event) and [`next_item`](Self::next_item).
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.started {
            self.lines(chunk);
            return;
        }
        // At the start of a stream, hold bytes back until we know whether they open
        // with a byte order mark (which may arrive one byte per chunk).
        self.line.extend_from_slice(chunk);
        let held = self.line.len().min(BOM.len());
        if self.line[..held] != BOM[..held] {
            self.started = true;
        } else if held == BOM.len() {
            self.started = true;
            self.line.drain(..BOM.len());
        } else {
            return;
        }
        let pending = std::mem::take(&mut self.line);
        self.lines(&pending);
    }

    /// Ends the stream (EOF): an unterminated line and an event not yet dispatched are
    /// discarded, as the spec says. The last event id, the reconnection time and the
    /// events already dispatched are kept; the parser may then be fed the stream of a new
    /// connection (which may open with a byte order mark again).
    pub fn finish(&mut self) {
        self.line.clear();
        self.started = false;
        self.after_cr = false;
        self.data.clear();
        self.event_type.clear();
        self.id_buffer.clone_from(&self.last_event_id);
    }

    /// The next dispatched event, if any (comments before it are skipped).
    pub fn next_event(&mut self) -> Option<ParsedEvent> {
        while let Some(item) = self.ready.pop_front() {
            if let Item::Event(event) = item {
                return Some(event);
            }
        }
        None
    }

    /// The next event or (with [`with_comments`](Self::with_comments)) comment, if any.
    pub fn next_item(&mut self) -> Option<Item> {
        self.ready.pop_front()
    }

    /// An iterator that takes the events dispatched so far.
    pub fn events(&mut self) -> Events<'_> {
        Events { parser: self }
    }

    /// The last event id: the one of the last dispatched block (empty when none). This
    /// is what a reconnecting client sends as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time in milliseconds set by the last valid `retry` field, if any.
    /// A value beyond `u64::MAX` saturates.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.retry
    }

    /// How many comment lines the parser has read so far.
    pub fn comment_count(&self) -> u64 {
        self.comments
    }

    fn lines(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(at) = memchr2(b'\r', b'\n', rest) {
            if self.line.is_empty() {
                self.line_done(&rest[..at]);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..at]);
                self.line_done(&line);
                line.clear();
                self.line = line;
            }
            if rest[at] == b'\r' {
                match rest.get(at + 1) {
                    Some(b'\n') => rest = &rest[at + 2..],
                    Some(_) => rest = &rest[at + 1..],
                    None => {
                        self.after_cr = true;
                        return;
                    }
                }
            } else {
                rest = &rest[at + 1..];
            }
        }
        self.line.extend_from_slice(rest);
    }

    fn line_done(&mut self, line: &[u8]) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        // Field names are short: a plain scan finds the colon sooner than a SIMD search.
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => {
                self.comment(&line[1..]);
                return;
            }
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                push_lossy(&mut self.data, value);
                self.data.push('\n');
            }
            b"event" => {
                self.event_type.clear();
                push_lossy(&mut self.event_type, value);
            }
            // An id holding NUL is ignored.
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                push_lossy(&mut self.id_buffer, value);
            }
            // A retry that is not all ASCII digits is ignored.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |ms, digit| {
                    ms.saturating_mul(10)
                        .saturating_add(u64::from(digit - b'0'))
                });
                self.retry = Some(ms);
            }
            // Any other field, and the ignored values above.
            _ => {}
        }
    }

    fn comment(&mut self, text: &[u8]) {
        self.comments += 1;
        if self.emit_comments {
            let text = text.strip_prefix(b" ").unwrap_or(text);
            self.ready
                .push_back(Item::Comment(String::from_utf8_lossy(text).into_owned()));
        }
    }

    fn dispatch(&mut self) {
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        self.data.pop(); // the data buffer always ends with the LF of its last line
        let data = self.data.clone();
        self.data.clear();
        let event = if self.event_type.is_empty() {
            String::from("message")
        } else {
            let event = self.event_type.clone();
            self.event_type.clear();
            event
        };
        self.ready.push_back(Item::Event(ParsedEvent {
            event,
            data,
            last_event_id: self.last_event_id.clone(),
        }));
    }
}

/// Appends `bytes` decoded as UTF-8 to `out`, each maximal invalid sequence replaced by
/// U+FFFD (the spec's "UTF-8 decode"). Valid input, the common case, takes the fast
/// validator and no allocation.
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// Parses a whole stream: feeds `bytes`, ends the stream, returns its events.
///
/// ```
/// let events = eric_sse::parse::parse_all(b"data: a\ndata: b\n\n");
/// assert_eq!(events[0].data, "a\nb");
/// ```
pub fn parse_all(bytes: &[u8]) -> Vec<ParsedEvent> {
    let mut parser = Parser::new();
    parser.feed(bytes);
    parser.finish();
    parser.events().collect()
}

/// An iterator over the events a [`Parser`] has dispatched so far; see
/// [`Parser::events`].
#[derive(Debug)]
pub struct Events<'a> {
    parser: &'a mut Parser,
}

impl Iterator for Events<'_> {
    type Item = ParsedEvent;

    fn next(&mut self) -> Option<ParsedEvent> {
        self.parser.next_event()
    }
}
