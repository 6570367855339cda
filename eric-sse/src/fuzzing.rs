//! The checks the fuzz targets run (`fuzz/` at the repository root), kept here so that
//! the stable tests replay the committed corpus through the very same code.
//!
//! Not part of the API: hidden from the docs, and free to change in any release.

use crate::parse::{Item, ParsedEvent, Parser};
use std::path::{Path, PathBuf};

/// Runs `check` on every file of the committed corpus of `target`
/// (`fuzz/corpus/<target>/` under `workspace`), which must hold at least ten: how the
/// stable tests of each crate replay what the fuzzers found.
///
/// # Panics
/// When the corpus cannot be read or is too small, or `check` panics on a file (naming it).
pub fn replay_corpus(workspace: &Path, target: &str, check: fn(&[u8])) {
    let dir = workspace.join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{} holds {} seeds",
        dir.display(),
        files.len()
    );
    for file in files {
        let input = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&input));
        assert!(outcome.is_ok(), "{} fails its check", file.display());
    }
}

/// What a stream parses to by the letter of the spec.
#[derive(Debug, Default)]
pub struct Model {
    /// The dispatched events and the comment lines, in stream order.
    pub items: Vec<Item>,
    /// The last event id when the stream ended.
    pub last_event_id: String,
    /// The reconnection time set by the last valid `retry` field, if any.
    pub retry: Option<u64>,
}

impl Model {
    /// The dispatched events alone.
    pub fn events(&self) -> Vec<ParsedEvent> {
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Event(event) => Some(event.clone()),
                Item::Comment(_) => None,
            })
            .collect()
    }
}

/// The WHATWG algorithm "interpreting an event stream" written as plainly as possible,
/// on a whole stream: decode (UTF-8 decode drops one BOM), split into lines, process each
/// line, drop the unterminated tail. `last_event_id` is where a previous connection left
/// it (empty for a first one).
pub fn spec_model(bytes: &[u8], last_event_id: &str) -> Model {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut line));
            }
            '\n' => lines.push(std::mem::take(&mut line)),
            c => line.push(c),
        }
    }
    // `line` is now the unterminated tail: discarded.
    let (mut data, mut event_type) = (String::new(), String::new());
    let mut id_buffer = last_event_id.to_owned();
    let mut model = Model {
        last_event_id: last_event_id.to_owned(),
        ..Model::default()
    };
    for line in lines {
        if line.is_empty() {
            model.last_event_id = id_buffer.clone();
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            model.items.push(Item::Event(ParsedEvent {
                event: if event_type.is_empty() {
                    "message".into()
                } else {
                    event_type.clone()
                },
                data: std::mem::take(&mut data),
                last_event_id: model.last_event_id.clone(),
            }));
            event_type.clear();
            continue;
        }
        if let Some(comment) = line.strip_prefix(':') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            model.items.push(Item::Comment(comment.to_owned()));
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id_buffer = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                model.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }
    model
}

/// Splits fuzz input into cut points and the stream: the first byte (modulo 9) says how
/// many little-endian `u16` cut points follow; the rest is the stream.
fn cuts_and_stream(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return (Vec::new(), &[]);
    };
    let header = (usize::from(count) % 9 * 2).min(rest.len());
    let (cuts, stream) = rest.split_at(header);
    let mut cuts: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    (cuts, stream)
}

/// Feeds `stream` to `parser` in pieces ending at `cuts` (sorted), then ends it.
fn feed_in_pieces(parser: &mut Parser, stream: &[u8], cuts: &[usize]) {
    let mut start = 0;
    for &cut in cuts.iter().chain([&stream.len()]) {
        parser.feed(&stream[start..cut]);
        start = cut;
    }
    parser.finish();
}

/// The SSE parser target: the incremental [`Parser`] reads fuzz input as [`spec_model`]
/// does, events, comments, last event id and reconnection time alike, whether the bytes
/// come whole, one at a time or cut where the input says; and a second connection fed
/// the same bytes after [`Parser::finish`] starts from the id the first left. Panics on
/// any difference.
pub fn check_parser(data: &[u8]) {
    let (cuts, stream) = cuts_and_stream(data);
    let first = spec_model(stream, "");
    let second = spec_model(stream, &first.last_event_id);
    let expected_items: Vec<Item> = first.items.iter().chain(&second.items).cloned().collect();
    let comments = expected_items
        .iter()
        .filter(|item| matches!(item, Item::Comment(_)))
        .count() as u64;
    let one_at_a_time: Vec<usize> = (1..stream.len()).collect();
    for (how, cuts) in [
        ("whole", &[][..]),
        ("one byte at a time", &one_at_a_time[..]),
        ("cut as the input says", &cuts[..]),
    ] {
        let mut with_comments = Parser::new().with_comments(true);
        let mut events_only = Parser::new();
        for parser in [&mut with_comments, &mut events_only] {
            feed_in_pieces(parser, stream, cuts);
            feed_in_pieces(parser, stream, cuts);
            assert_eq!(parser.last_event_id(), second.last_event_id, "{how}");
            assert_eq!(
                parser.reconnection_time(),
                second.retry.or(first.retry),
                "{how}"
            );
            assert_eq!(parser.comment_count(), comments, "{how}");
        }
        let items: Vec<Item> = std::iter::from_fn(|| with_comments.next_item()).collect();
        assert_eq!(items, expected_items, "{how}: {stream:?}");
        let events: Vec<ParsedEvent> = events_only.events().collect();
        let expected_events: Vec<ParsedEvent> =
            first.events().into_iter().chain(second.events()).collect();
        assert_eq!(events, expected_events, "{how}: {stream:?}");
    }
}
