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
use std::ops::Range;

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
///
/// Dispatched events wait in the parser until taken; take them after each `feed` (the
/// space they hold is reused once all are taken).
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
    ready: Queue,
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
        self.ready.pop_event()
    }

    /// The next event or (with [`with_comments`](Self::with_comments)) comment, if any.
    pub fn next_item(&mut self) -> Option<Item> {
        self.ready.pop()
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
        // Decode once per chunk: a line inside the valid prefix is a slice of it (line
        // ends are ASCII, so always character boundaries). Other lines (crossing a chunk
        // boundary, or holding invalid bytes) are decoded on their own, lossily; decoding
        // a line whole or field by field is the same, as `:` and ` ` are ASCII too.
        let valid = match std::str::from_utf8(chunk) {
            Ok(text) => text,
            Err(error) => std::str::from_utf8(&chunk[..error.valid_up_to()]).unwrap_or(""),
        };
        let mut start = 0;
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                start = 1;
            }
        }
        while let Some(found) = memchr2(b'\r', b'\n', &chunk[start..]) {
            let end = start + found;
            if !self.line.is_empty() {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[start..end]);
                self.line_done(&String::from_utf8_lossy(&line));
                line.clear();
                self.line = line;
            } else if let Some(line) = valid.get(start..end) {
                self.line_done(line);
            } else {
                self.line_done(&String::from_utf8_lossy(&chunk[start..end]));
            }
            if chunk[end] == b'\r' {
                match chunk.get(end + 1) {
                    Some(b'\n') => start = end + 2,
                    Some(_) => start = end + 1,
                    None => {
                        self.after_cr = true;
                        return;
                    }
                }
            } else {
                start = end + 1;
            }
        }
        self.line.extend_from_slice(&chunk[start..]);
    }

    fn line_done(&mut self, line: &str) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        // Field names are short: a plain scan finds the colon sooner than a SIMD search.
        let (name, value) = match line.bytes().position(|b| b == b':') {
            Some(0) => {
                self.comment(&line[1..]);
                return;
            }
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match name {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            // An id holding NUL is ignored.
            "id" if !value.contains('\0') => {
                self.id_buffer.clear();
                self.id_buffer.push_str(value);
            }
            // A retry that is not all ASCII digits is ignored.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                let ms = value.bytes().fold(0u64, |ms, digit| {
                    ms.saturating_mul(10)
                        .saturating_add(u64::from(digit - b'0'))
                });
                self.retry = Some(ms);
            }
            // Any other field, and the ignored values above.
            _ => {}
        }
    }

    fn comment(&mut self, text: &str) {
        self.comments += 1;
        if self.emit_comments {
            let text = text.strip_prefix(' ').unwrap_or(text);
            self.ready.push_comment(text);
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
        self.ready
            .push_event(&self.event_type, &self.data, &self.last_event_id);
        self.data.clear();
        self.event_type.clear();
    }
}

/// The dispatched items not taken yet, held as ranges of one shared text.
///
/// A chunk of many small events is parsed at once, and its events are taken one by
/// one: holding them as owned strings would make one burst of allocations at parse time
/// and another of frees, which allocators serve slowly. Here they cost a copy into the
/// shared text; each event's strings are allocated when it is taken (and, dropped before
/// the next is taken, are recycled at once). The text is cleared whenever the queue
/// runs empty. Event types and ids, which repeat, are shared between items.
#[derive(Debug, Default)]
struct Queue {
    text: String,
    items: VecDeque<Queued>,
    /// Where `text` holds the last event type and the last id pushed.
    last_type: Range<usize>,
    last_id: Range<usize>,
}

#[derive(Debug)]
enum Queued {
    /// An event; an empty `event` range stands for `message`.
    Event {
        event: Range<usize>,
        data: Range<usize>,
        id: Range<usize>,
    },
    Comment(Range<usize>),
}

impl Queue {
    fn push_text(&mut self, text: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(text);
        start..self.text.len()
    }

    fn push_event(&mut self, event_type: &str, data: &str, id: &str) {
        if !event_type.is_empty() && self.text[self.last_type.clone()] != *event_type {
            self.last_type = self.push_text(event_type);
        }
        let event = if event_type.is_empty() {
            0..0
        } else {
            self.last_type.clone()
        };
        if self.text[self.last_id.clone()] != *id {
            self.last_id = self.push_text(id);
        }
        let id = self.last_id.clone();
        let data = self.push_text(data);
        self.items.push_back(Queued::Event { event, data, id });
    }

    fn push_comment(&mut self, text: &str) {
        let text = self.push_text(text);
        self.items.push_back(Queued::Comment(text));
    }

    fn pop(&mut self) -> Option<Item> {
        let item = match self.items.pop_front()? {
            Queued::Event { event, data, id } => Item::Event(self.event(event, data, id)),
            Queued::Comment(text) => Item::Comment(self.text[text].to_owned()),
        };
        self.clear_when_empty();
        Some(item)
    }

    fn pop_event(&mut self) -> Option<ParsedEvent> {
        let mut event = None;
        while let Some(item) = self.items.pop_front() {
            if let Queued::Event { event: e, data, id } = item {
                event = Some(self.event(e, data, id));
                break;
            }
        }
        self.clear_when_empty();
        event
    }

    fn event(&self, event: Range<usize>, data: Range<usize>, id: Range<usize>) -> ParsedEvent {
        ParsedEvent {
            event: if event.is_empty() {
                String::from("message")
            } else {
                self.text[event].to_owned()
            },
            data: self.text[data].to_owned(),
            last_event_id: self.text[id].to_owned(),
        }
    }

    fn clear_when_empty(&mut self) {
        if self.items.is_empty() {
            self.text.clear();
            self.last_type = 0..0;
            self.last_id = 0..0;
        }
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
