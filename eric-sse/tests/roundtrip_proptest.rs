//! Property: whatever the encoder accepts, the parser reads back as the same event, for
//! any chunking of the bytes.

use eric_sse::fuzzing::spec_model;
use eric_sse::{DataMode, Encoder, ParsedEvent, Parser, SseEvent};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Characters that stress the wire format: line ends, NUL, BOM, colon, space, plus any.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        1 => prop::sample::select(vec!['\r', '\n', '\0', '\u{feff}', ':', ' ', 'a', 'é']),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..16).prop_map(String::from_iter)
}

/// An event name the encoder accepts: anything but CR and LF.
fn event_name() -> impl Strategy<Value = String> {
    text().prop_map(|name| name.replace(['\r', '\n'], ""))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn sse_event() -> impl Strategy<Value = SseEvent> {
    (event_name(), json_value(), any::<Option<u64>>()).prop_map(|(name, data, id)| {
        let event = SseEvent::new(name, data);
        match id {
            Some(id) => event.with_id(id),
            None => event,
        }
    })
}

/// Cuts `bytes` at the given points (taken modulo the length) and feeds the pieces.
fn parse_in_chunks(bytes: &[u8], cuts: &[usize]) -> Vec<ParsedEvent> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut parser = Parser::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        parser.feed(&bytes[start..cut]);
        start = cut;
    }
    parser.finish();
    parser.events().collect()
}

/// What a client should read for `events` sent in order with `data` as their data.
fn expected(events: &[SseEvent], data: impl Fn(&SseEvent) -> String) -> Vec<ParsedEvent> {
    let mut last_event_id = String::new();
    events
        .iter()
        .map(|event| {
            if let Some(id) = event.id() {
                last_event_id = id.to_string();
            }
            ParsedEvent {
                event: match event.event() {
                    "" => "message".to_owned(),
                    name => name.to_owned(),
                },
                data: data(event),
                last_event_id: last_event_id.clone(),
            }
        })
        .collect()
}

fn json_data(event: &SseEvent) -> String {
    serde_json::to_string(event.data()).unwrap()
}

/// Raw text as the client reads it: every CRLF or CR turned into LF.
fn raw_text_data(event: &SseEvent) -> String {
    match event.data() {
        Value::String(text) => text.replace("\r\n", "\n").replace('\r', "\n"),
        other => serde_json::to_string(other).unwrap(),
    }
}

fn encode_all(encoder: Encoder, events: &[SseEvent], retry: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    encoder.encode_retry(retry, &mut bytes);
    for (i, event) in events.iter().enumerate() {
        encoder.encode_event(event, &mut bytes).unwrap();
        if i % 2 == 0 {
            encoder.encode_comment("keep-alive\nsecond line", &mut bytes);
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn json_events_read_back_the_same_for_any_chunking(
        events in prop::collection::vec(sse_event(), 0..6),
        retry in any::<u64>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let bytes = encode_all(Encoder::new(), &events, retry);
        let parsed = parse_in_chunks(&bytes, &cuts);
        prop_assert_eq!(parsed, expected(&events, json_data));
        for (event, parsed) in events.iter().zip(parse_in_chunks(&bytes, &cuts)) {
            let value: Value = parsed.json().unwrap();
            // Floats may differ in the last bit through serde_json's default parser;
            // everything else reads back equal.
            if !contains_float(event.data()) {
                prop_assert_eq!(&value, event.data());
            }
        }
    }

    #[test]
    fn raw_text_events_read_back_the_same_for_any_chunking(
        events in prop::collection::vec(
            (event_name(), prop_oneof![text().prop_map(Value::from), json_value()], any::<Option<u64>>())
                .prop_map(|(name, data, id)| {
                    let event = SseEvent::new(name, data);
                    if let Some(id) = id { event.with_id(id) } else { event }
                }),
            0..6,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let encoder = Encoder::new().with_data_mode(DataMode::RawText);
        let bytes = encode_all(encoder, &events, 1000);
        prop_assert_eq!(parse_in_chunks(&bytes, &cuts), expected(&events, raw_text_data));
    }

    #[test]
    fn the_retry_written_is_the_reconnection_time_read(retry in any::<u64>()) {
        let mut bytes = Vec::new();
        Encoder::new().encode_retry(retry, &mut bytes);
        let mut parser = Parser::new();
        parser.feed(&bytes);
        prop_assert_eq!(parser.reconnection_time(), Some(retry));
    }

    #[test]
    fn text_events_with_string_ids_read_back_the_same(
        name in event_name(),
        id in text().prop_map(|id| id.replace(['\r', '\n', '\0'], "")),
        data in text(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        Encoder::new().encode_text_event(&name, Some(&id), &data, &mut bytes).unwrap();
        let parsed = parse_in_chunks(&bytes, &cuts);
        prop_assert_eq!(parsed.len(), 1);
        prop_assert_eq!(&parsed[0].event, if name.is_empty() { "message" } else { &name });
        prop_assert_eq!(&parsed[0].last_event_id, &id);
        prop_assert_eq!(&parsed[0].data, &data.replace("\r\n", "\n").replace('\r', "\n"));
    }

    #[test]
    fn names_with_line_breaks_are_refused_and_nothing_is_written(
        name in text().prop_filter("has a line break", |n| n.contains(['\r', '\n'])),
        data in json_value(),
    ) {
        let mut bytes = b"data: before\n\n".to_vec();
        let result = Encoder::new().encode_event(&SseEvent::new(name, data), &mut bytes);
        prop_assert!(result.is_err());
        prop_assert_eq!(&bytes[..], &b"data: before\n\n"[..]);
    }

    /// Streams of lines with every kind of line end (CR, LF, CRLF), cut anywhere: the
    /// cuts do not change the events (a CRLF cut in two is still one line end).
    #[test]
    fn chunking_never_changes_what_mixed_line_ends_parse_to(
        lines in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "data: x", "data", "data:", "id: 1", "id", "event: e", ": c", "", "retry: 5",
                    "\u{feff}data: y",
                ]),
                prop::sample::select(vec!["\r", "\n", "\r\n"]),
            ),
            0..40,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let stream: String = lines.iter().flat_map(|(line, end)| [*line, *end]).collect();
        let bytes = stream.as_bytes();
        prop_assert_eq!(parse_in_chunks(bytes, &cuts), parse_in_chunks(bytes, &[]));
    }

    /// The incremental parser agrees with a plain transcription of the spec
    /// ([`spec_model`], shared with the fuzz target) on arbitrary bytes: events, last event id, reconnection time.
    #[test]
    fn the_parser_agrees_with_a_line_by_line_model_of_the_spec(
        bom in any::<bool>(),
        tokens in prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(vec![
                    &b"data"[..], b"event", b"id", b"retry", b":", b" ", b"x", b"42", b"\0",
                    b"\r", b"\n", b"\r\n", b"\n\n", "\u{feff}".as_bytes(), "\u{e9}".as_bytes(),
                    b"\xE2\x82", b"\xFF",
                ]).prop_map(<[u8]>::to_vec),
                1 => any::<u8>().prop_map(|b| vec![b]),
            ],
            0..80,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
        bytes.extend(tokens.concat());
        let mut cut_sorted: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cut_sorted.sort_unstable();
        let mut parser = Parser::new();
        let mut start = 0;
        for cut in cut_sorted.into_iter().chain([bytes.len()]) {
            parser.feed(&bytes[start..cut]);
            start = cut;
        }
        parser.finish();
        let model = spec_model(&bytes, "");
        prop_assert_eq!(parser.events().collect::<Vec<_>>(), model.events());
        prop_assert_eq!(parser.last_event_id(), model.last_event_id);
        prop_assert_eq!(parser.reconnection_time(), model.retry);
    }

    /// Any bytes at all: the parser does not panic, and chunking does not change the result.
    #[test]
    fn chunking_never_changes_what_arbitrary_bytes_parse_to(
        bytes in prop::collection::vec(
            prop_oneof![
                any::<u8>(),
                prop::sample::select(b"\r\n:dataeventidretry \xEF\xBB\xBF".to_vec()),
            ],
            0..200,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assert_eq!(parse_in_chunks(&bytes, &cuts), parse_in_chunks(&bytes, &[]));
    }
}

fn contains_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(contains_float),
        Value::Object(map) => map.values().any(contains_float),
        _ => false,
    }
}
