//! The encoder: what it writes, and what it refuses.

use eric_sse::{DataMode, EncodeError, Encoder, Forbidden, SseEvent};
use serde_json::json;

fn encode_with(encoder: Encoder, event: &SseEvent) -> String {
    let mut buf = Vec::new();
    encoder.encode_event(event, &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

fn encode(event: &SseEvent) -> String {
    encode_with(Encoder::new(), event)
}

fn raw_text() -> Encoder {
    Encoder::new().with_data_mode(DataMode::RawText)
}

/// A buffer already holding an earlier event, to check that refusals leave it alone.
fn used_buffer() -> Vec<u8> {
    b"data: earlier\n\n".to_vec()
}

#[test]
fn an_event_is_id_event_data_then_a_blank_line() {
    let event = SseEvent::new("tick", json!({"n": 1})).with_id(12);
    assert_eq!(encode(&event), "id: 12\nevent: tick\ndata: {\"n\":1}\n\n");
}

#[test]
fn an_event_without_id_has_no_id_line() {
    assert_eq!(encode(&SseEvent::new("t", 1)), "event: t\ndata: 1\n\n");
}

#[test]
fn an_event_named_message_still_has_its_event_line() {
    assert_eq!(
        encode(&SseEvent::new("message", 1)),
        "event: message\ndata: 1\n\n"
    );
}

#[test]
fn an_empty_event_name_has_no_event_line() {
    assert_eq!(encode(&SseEvent::new("", 1)), "data: 1\n\n");
}

#[test]
fn encode_event_never_writes_retry() {
    assert!(!encode(&SseEvent::new("t", 1).with_retry(3000)).contains("retry"));
}

#[test]
fn encode_event_with_retry_writes_the_event_retry_in_the_block() {
    let mut buf = Vec::new();
    let event = SseEvent::new("t", 1).with_id(1).with_retry(3000);
    Encoder::new()
        .encode_event_with_retry(&event, &mut buf)
        .unwrap();
    assert_eq!(buf, b"id: 1\nevent: t\nretry: 3000\ndata: 1\n\n");
}

#[test]
fn json_data_is_one_line_whatever_the_payload_holds() {
    // Keys in sorted order: the output is the same whether serde_json keeps insertion
    // order (its `preserve_order` feature, which eric-socket turns on) or sorts.
    let event = SseEvent::new("t", json!({"null": null, "text": "a\nb\r\nc"}));
    assert_eq!(
        encode(&event),
        "event: t\ndata: {\"null\":null,\"text\":\"a\\nb\\r\\nc\"}\n\n"
    );
}

#[test]
fn json_mode_writes_a_string_payload_as_a_json_string() {
    assert_eq!(
        encode(&SseEvent::new("t", "hi")),
        "event: t\ndata: \"hi\"\n\n"
    );
}

#[test]
fn raw_text_mode_writes_one_data_line_per_line_of_text() {
    let event = SseEvent::new("t", "a\r\nb\rc\nd");
    assert_eq!(
        encode_with(raw_text(), &event),
        "event: t\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    );
}

#[test]
fn raw_text_mode_writes_the_empty_text_as_one_empty_data_line() {
    assert_eq!(
        encode_with(raw_text(), &SseEvent::new("t", "")),
        "event: t\ndata: \n\n"
    );
}

#[test]
fn raw_text_mode_keeps_a_trailing_line_break_as_an_empty_data_line() {
    assert_eq!(
        encode_with(raw_text(), &SseEvent::new("t", "a\n")),
        "event: t\ndata: a\ndata: \n\n"
    );
}

#[test]
fn raw_text_mode_writes_other_payloads_as_json() {
    let event = SseEvent::new("t", json!({"a": [1, 2]}));
    assert_eq!(
        encode_with(raw_text(), &event),
        "event: t\ndata: {\"a\":[1,2]}\n\n"
    );
}

#[test]
fn events_are_appended_to_the_buffer() {
    let mut buf = used_buffer();
    Encoder::new()
        .encode_event(&SseEvent::new("t", 1), &mut buf)
        .unwrap();
    assert_eq!(buf, b"data: earlier\n\nevent: t\ndata: 1\n\n");
}

#[test]
fn retry_is_a_line_and_a_blank_line() {
    let mut buf = Vec::new();
    Encoder::new().encode_retry(1500, &mut buf);
    assert_eq!(buf, b"retry: 1500\n\n");
}

#[test]
fn a_comment_is_one_colon_line_per_line_of_text() {
    let mut buf = Vec::new();
    Encoder::new().encode_comment("keep-alive", &mut buf);
    Encoder::new().encode_comment("two\r\nlines", &mut buf);
    assert_eq!(buf, b": keep-alive\n\n: two\n: lines\n\n");
}

#[test]
fn a_text_event_may_have_a_string_id() {
    let mut buf = Vec::new();
    Encoder::new()
        .encode_text_event("t", Some("abc-1"), "x\ny", &mut buf)
        .unwrap();
    assert_eq!(buf, b"id: abc-1\nevent: t\ndata: x\ndata: y\n\n");
}

// Refusals.

#[test]
fn refuses_lf_in_the_event_name_and_appends_nothing() {
    let mut buf = used_buffer();
    let error = Encoder::new()
        .encode_event(&SseEvent::new("a\nb", 1), &mut buf)
        .unwrap_err();
    assert!(matches!(
        &error,
        EncodeError::EventName { value, found: Forbidden::LineFeed } if value == "a\nb"
    ));
    assert_eq!(error.field(), "event");
    assert_eq!(buf, used_buffer());
}

#[test]
fn refuses_cr_in_the_event_name() {
    let error = Encoder::new()
        .encode_event(&SseEvent::new("a\rb", 1).with_id(3), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(
        error,
        EncodeError::EventName {
            found: Forbidden::CarriageReturn,
            ..
        }
    ));
}

#[test]
fn the_error_message_names_the_field_and_the_escaped_value() {
    let error = Encoder::new()
        .encode_event(&SseEvent::new("evil\r\nid: 9", 1), &mut Vec::new())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot encode SSE field `event`: the event name \"evil\\r\\nid: 9\" contains a \
         carriage return (CR)"
    );
}

#[test]
fn refuses_lf_cr_and_nul_in_a_string_id_and_appends_nothing() {
    for (id, found) in [
        ("1\n2", Forbidden::LineFeed),
        ("1\r", Forbidden::CarriageReturn),
        ("1\0", Forbidden::Nul),
    ] {
        let mut buf = used_buffer();
        let error = Encoder::new()
            .encode_text_event("t", Some(id), "x", &mut buf)
            .unwrap_err();
        assert!(
            matches!(&error, EncodeError::Id { value, found: f } if value == id && *f == found),
            "{error}"
        );
        assert_eq!(error.field(), "id");
        assert!(error
            .to_string()
            .starts_with("cannot encode SSE field `id`"));
        assert_eq!(buf, used_buffer());
    }
}

#[test]
fn refuses_a_line_break_in_the_name_of_a_text_event() {
    let mut buf = used_buffer();
    let error = Encoder::new()
        .encode_text_event("a\nb", Some("1"), "x", &mut buf)
        .unwrap_err();
    assert_eq!(error.field(), "event");
    assert_eq!(buf, used_buffer());
}

#[test]
fn data_is_never_refused() {
    let event = SseEvent::new("t", "\r\n\0\u{feff}:");
    assert!(Encoder::new().encode_event(&event, &mut Vec::new()).is_ok());
    assert!(raw_text().encode_event(&event, &mut Vec::new()).is_ok());
}
