//! The parser, one WHATWG "interpreting an event stream" rule per test.

use eric_sse::parse::parse_all;
use eric_sse::{Item, ParsedEvent, Parser};

fn parse(stream: &str) -> Vec<ParsedEvent> {
    parse_all(stream.as_bytes())
}

/// Feeds each chunk in turn; returns the events dispatched so far (no EOF).
fn feed_chunks(chunks: &[&[u8]]) -> (Parser, Vec<ParsedEvent>) {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        events.extend(parser.events());
    }
    (parser, events)
}

fn event(event: &str, data: &str, last_event_id: &str) -> ParsedEvent {
    ParsedEvent {
        event: event.to_owned(),
        data: data.to_owned(),
        last_event_id: last_event_id.to_owned(),
    }
}

fn message(data: &str) -> ParsedEvent {
    event("message", data, "")
}

// Lines and line ends.

#[test]
fn lf_ends_a_line() {
    assert_eq!(parse("data: a\n\n"), [message("a")]);
}

#[test]
fn cr_ends_a_line() {
    assert_eq!(parse("data: a\r\r"), [message("a")]);
}

#[test]
fn crlf_ends_a_line() {
    assert_eq!(parse("data: a\r\n\r\n"), [message("a")]);
}

#[test]
fn mixed_line_ends_in_one_stream_are_all_line_ends() {
    assert_eq!(
        parse("data: a\rdata: b\ndata: c\r\n\r\n"),
        [message("a\nb\nc")]
    );
}

#[test]
fn crlf_split_across_chunks_is_one_line_end() {
    // Were the LF a second line end, it would be a blank line dispatching "a" early.
    let (_, events) = feed_chunks(&[b"data: a\r", b"\ndata: b\n\n"]);
    assert_eq!(events, [message("a\nb")]);
}

#[test]
fn cr_at_chunk_end_ends_the_line_at_once() {
    let (_, events) = feed_chunks(&[b"data: a\r\r"]);
    assert_eq!(events, [message("a")]);
}

#[test]
fn cr_at_chunk_end_followed_by_text_is_a_line_end() {
    let (_, events) = feed_chunks(&[b"data: a\r", b"data: b\r", b"\r"]);
    assert_eq!(events, [message("a\nb")]);
}

#[test]
fn cr_at_chunk_end_followed_by_an_empty_chunk_still_joins_a_following_lf() {
    let (_, events) = feed_chunks(&[b"data: a\r", b"", b"\n", b"\n"]);
    assert_eq!(events, [message("a")]);
}

#[test]
fn a_line_split_across_many_chunks_is_one_line() {
    let (_, events) = feed_chunks(&[b"da", b"ta", b":", b" a", b"b", b"\n", b"\n"]);
    assert_eq!(events, [message("ab")]);
}

#[test]
fn byte_by_byte_feeding_gives_the_same_events_as_one_chunk() {
    let stream = "\u{feff}id: 1\r\nevent: e\rdata: x\n\n: c\r\ndata: y\r\n\r\nretry: 7\n";
    let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
    let (_, events) = feed_chunks(&bytes);
    assert_eq!(events, parse(stream));
    assert_eq!(events, [event("e", "x", "1"), event("message", "y", "1")]);
}

// Byte order mark and decoding.

#[test]
fn one_leading_bom_is_stripped() {
    assert_eq!(parse("\u{feff}data: a\n\n"), [message("a")]);
}

#[test]
fn a_bom_split_across_chunks_is_stripped() {
    let (_, events) = feed_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]);
    assert_eq!(events, [message("a")]);
}

#[test]
fn only_one_leading_bom_is_stripped() {
    // The second BOM is part of the field name "\u{feff}data", which is unknown.
    assert_eq!(
        parse("\u{feff}\u{feff}data: a\n\ndata: b\n\n"),
        [message("b")]
    );
}

#[test]
fn a_bom_after_the_stream_start_is_kept() {
    assert_eq!(parse("data: \u{feff}a\n\n"), [message("\u{feff}a")]);
}

#[test]
fn a_partial_bom_followed_by_other_bytes_is_not_stripped() {
    // EF BB then "d": not a BOM; the lone bytes decode to U+FFFD in the field name.
    assert_eq!(parse_all(b"\xEF\xBBdata: a\n\ndata: b\n\n"), [message("b")]);
}

#[test]
fn invalid_utf8_is_decoded_lossily() {
    let events = parse_all(b"data: a\xFFb\xE2\x82\n\n");
    assert_eq!(events, [message("a\u{fffd}b\u{fffd}")]);
}

#[test]
fn multibyte_characters_split_across_chunks_are_decoded_whole() {
    let euro = "€".as_bytes();
    let (_, events) = feed_chunks(&[b"data: ", &euro[..1], &euro[1..], b"\n\n"]);
    assert_eq!(events, [message("€")]);
}

// Fields.

#[test]
fn a_line_with_no_colon_is_a_field_name_with_an_empty_value() {
    // "data" appends "" and an LF: the event is dispatched with empty data.
    assert_eq!(parse("data\n\n"), [message("")]);
    assert_eq!(parse("event: e\nevent\ndata: x\n\n"), [message("x")]);
}

#[test]
fn one_space_after_the_colon_is_removed() {
    assert_eq!(parse("data: a\n\n"), [message("a")]);
    assert_eq!(parse("data:a\n\n"), [message("a")]);
}

#[test]
fn only_one_space_after_the_colon_is_removed() {
    assert_eq!(parse("data:  a \n\n"), [message(" a ")]);
}

#[test]
fn a_tab_after_the_colon_is_kept() {
    assert_eq!(parse("data:\ta\n\n"), [message("\ta")]);
}

#[test]
fn colons_after_the_first_belong_to_the_value() {
    assert_eq!(parse("data: a: b:c\n\n"), [message("a: b:c")]);
}

#[test]
fn field_names_are_case_sensitive() {
    assert_eq!(parse("Data: a\nDATA: b\ndata: c\n\n"), [message("c")]);
}

#[test]
fn unknown_fields_are_ignored() {
    assert_eq!(parse("foo: bar\ndata: a\nretryx: 1\n\n"), [message("a")]);
}

// Comments.

#[test]
fn lines_starting_with_a_colon_are_comments_and_are_ignored() {
    assert_eq!(parse(": hello\ndata: a\n:\n\n"), [message("a")]);
}

#[test]
fn comments_are_counted() {
    let mut parser = Parser::new();
    parser.feed(b": keep-alive\n\n: keep-alive\n\n");
    assert_eq!(parser.comment_count(), 2);
    assert_eq!(parser.next_event(), None);
}

#[test]
fn comments_are_items_in_stream_order_when_asked_for() {
    let mut parser = Parser::new().with_comments(true);
    parser.feed(b": one\ndata: a\n\n:two\n\n");
    let items: Vec<Item> = std::iter::from_fn(|| parser.next_item()).collect();
    assert_eq!(
        items,
        [
            Item::Comment("one".into()),
            Item::Event(message("a")),
            Item::Comment("two".into()),
        ]
    );
}

#[test]
fn next_event_skips_comment_items() {
    let mut parser = Parser::new().with_comments(true);
    parser.feed(b": one\ndata: a\n\n");
    assert_eq!(parser.next_event(), Some(message("a")));
    assert_eq!(parser.next_item(), None);
}

// event.

#[test]
fn event_type_defaults_to_message() {
    assert_eq!(parse("data: a\n\n")[0].event, "message");
}

#[test]
fn event_field_sets_the_type_of_its_event_only() {
    assert_eq!(
        parse("event: e\ndata: a\n\ndata: b\n\n"),
        [event("e", "a", ""), message("b")]
    );
}

#[test]
fn the_last_event_field_of_a_block_wins() {
    assert_eq!(parse("event: a\nevent: b\ndata: x\n\n")[0].event, "b");
}

#[test]
fn an_empty_event_field_means_message() {
    assert_eq!(parse("event:\ndata: x\n\n")[0].event, "message");
}

// data.

#[test]
fn data_lines_are_joined_with_lf() {
    assert_eq!(parse("data: a\ndata: b\ndata: c\n\n"), [message("a\nb\nc")]);
}

#[test]
fn only_the_final_trailing_lf_of_the_data_is_removed() {
    assert_eq!(parse("data: a\ndata\n\n"), [message("a\n")]);
    assert_eq!(parse("data\ndata\n\n"), [message("\n")]);
}

#[test]
fn an_event_with_an_empty_data_buffer_is_not_dispatched() {
    assert_eq!(parse("event: e\n\ndata: a\n\n"), [message("a")]);
    assert!(parse("id: 1\n\n").is_empty());
}

#[test]
fn a_blank_line_dispatches_the_event() {
    let (_, events) = feed_chunks(&[b"data: a\n"]);
    assert!(events.is_empty());
    let (_, events) = feed_chunks(&[b"data: a\n", b"\n"]);
    assert_eq!(events, [message("a")]);
}

#[test]
fn consecutive_blank_lines_dispatch_nothing_more() {
    assert_eq!(parse("data: a\n\n\n\n"), [message("a")]);
}

// id.

#[test]
fn id_sets_the_last_event_id_of_the_event() {
    assert_eq!(parse("id: 7\ndata: a\n\n")[0].last_event_id, "7");
}

#[test]
fn last_event_id_is_kept_across_events() {
    assert_eq!(
        parse("id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n"),
        [
            event("message", "a", "7"),
            event("message", "b", "7"),
            event("message", "c", "8")
        ]
    );
}

#[test]
fn id_with_nul_is_ignored() {
    assert_eq!(
        parse("id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n"),
        [event("message", "a", "1"), event("message", "b", "1")]
    );
}

#[test]
fn an_empty_id_resets_the_last_event_id() {
    assert_eq!(
        parse("id: 1\ndata: a\n\nid\ndata: b\n\n"),
        [event("message", "a", "1"), event("message", "b", "")]
    );
}

#[test]
fn an_id_in_an_event_that_is_not_dispatched_still_updates_the_last_event_id() {
    let mut parser = Parser::new();
    parser.feed(b"id: 5\n\ndata: a\n\n");
    assert_eq!(parser.last_event_id(), "5");
    assert_eq!(parser.next_event(), Some(event("message", "a", "5")));
}

#[test]
fn last_event_id_of_the_parser_changes_only_on_a_blank_line() {
    let mut parser = Parser::new();
    parser.feed(b"id: 5\n");
    assert_eq!(parser.last_event_id(), "");
    parser.feed(b"\n");
    assert_eq!(parser.last_event_id(), "5");
}

#[test]
fn a_parser_may_start_from_a_known_last_event_id() {
    let mut parser = Parser::new().with_last_event_id("41");
    parser.feed(b"data: a\n\n");
    assert_eq!(parser.next_event(), Some(event("message", "a", "41")));
}

// retry.

#[test]
fn retry_with_only_digits_sets_the_reconnection_time() {
    let mut parser = Parser::new();
    assert_eq!(parser.reconnection_time(), None);
    parser.feed(b"retry: 3000\n");
    assert_eq!(parser.reconnection_time(), Some(3000));
    parser.feed(b"retry: 0\n");
    assert_eq!(parser.reconnection_time(), Some(0));
}

#[test]
fn retry_with_non_digit_is_ignored() {
    let mut parser = Parser::new();
    parser.feed(b"retry: 1000\nretry: 12a\nretry: -5\nretry: 1.5\nretry:  7\nretry: \n");
    assert_eq!(parser.reconnection_time(), Some(1000));
}

#[test]
fn retry_takes_effect_without_a_blank_line_and_dispatches_nothing() {
    let mut parser = Parser::new();
    parser.feed(b"retry: 10\n\n");
    assert_eq!(parser.reconnection_time(), Some(10));
    assert_eq!(parser.next_event(), None);
}

#[test]
fn retry_beyond_u64_saturates() {
    let mut parser = Parser::new();
    parser.feed(b"retry: 99999999999999999999999\n");
    assert_eq!(parser.reconnection_time(), Some(u64::MAX));
}

// End of stream.

#[test]
fn unterminated_final_event_is_discarded_at_eof() {
    assert_eq!(parse("data: a\n\ndata: b\n"), [message("a")]);
    assert_eq!(parse("data: a\n\ndata: b"), [message("a")]);
}

#[test]
fn an_unterminated_final_line_is_discarded_at_eof() {
    let mut parser = Parser::new();
    parser.feed(b"data: a\n\nid: 9");
    parser.finish();
    parser.feed(b"\n");
    assert_eq!(parser.last_event_id(), "");
}

#[test]
fn finish_keeps_last_event_id_and_retry_for_the_next_connection() {
    let mut parser = Parser::new();
    parser.feed(b"retry: 500\nid: 3\ndata: a\n\nid: 4\ndata: b\n");
    parser.finish();
    parser.feed(b"\xEF\xBB\xBFdata: c\n\n");
    let events: Vec<_> = parser.events().collect();
    assert_eq!(
        events,
        [event("message", "a", "3"), event("message", "c", "3")]
    );
    assert_eq!(parser.reconnection_time(), Some(500));
}

// Output.

#[test]
fn json_decodes_the_data() {
    let parsed = &parse("data: {\"i\": 1}\n\n")[0];
    assert_eq!(parsed.json::<serde_json::Value>().unwrap()["i"], 1);
    assert!(message("not json").json::<serde_json::Value>().is_err());
}

#[test]
fn events_taken_between_feeds_keep_their_own_type_data_and_id() {
    let mut parser = Parser::new().with_comments(true);
    parser.feed(b"id: 1\nevent: a\ndata: x\n\nevent: a\ndata: y\n\n");
    assert_eq!(parser.next_event(), Some(event("a", "x", "1")));
    parser.feed(b": note\nid: 2\nevent: b\ndata: z\n\ndata: w\n\n");
    let items: Vec<Item> = std::iter::from_fn(|| parser.next_item()).collect();
    assert_eq!(
        items,
        [
            Item::Event(event("a", "y", "1")),
            Item::Comment("note".into()),
            Item::Event(event("b", "z", "2")),
            Item::Event(event("message", "w", "2")),
        ]
    );
    // Everything taken: the parser starts afresh and still remembers type-less ids.
    parser.feed(b"event: b\ndata: v\n\nid\ndata: u\n\n");
    assert_eq!(parser.next_event(), Some(event("b", "v", "2")));
    assert_eq!(parser.next_event(), Some(event("message", "u", "")));
    assert_eq!(parser.next_event(), None);
}
