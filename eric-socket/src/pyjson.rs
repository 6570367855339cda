//! JSON written the way Python's `json.dumps` writes it with its defaults, and Python's
//! `repr` of a string: what the reference's socket server puts on the wire.

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};
use std::io::{self, Write};

/// `json.dumps` defaults: `", "` and `": "` separators, and `ensure_ascii`: every
/// character outside ASCII written as `\uXXXX` (surrogate pairs above U+FFFF).
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            if ch.is_ascii() {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..index])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = index + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        // Python writes the control characters without a short form as \u00XX in
        // lower-case hex; the others as serde_json does.
        match escape {
            CharEscape::AsciiControl(byte) => write!(writer, "\\u{byte:04x}"),
            other => serde_json::ser::CompactFormatter.write_char_escape(writer, other),
        }
    }
}

/// Appends `value` to `buf` as Python's `json.dumps(value)` would write it.
pub fn write_python_json<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> serde_json::Result<()> {
    let mut serializer = Serializer::with_formatter(buf, PythonFormatter);
    value.serialize(&mut serializer)
}

/// Python's `repr()` of a string: single quotes unless the text holds a single quote and
/// no double quote; backslash, the quote, and control characters escaped.
pub fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dumps(value: &serde_json::Value) -> String {
        let mut buf = Vec::new();
        write_python_json(&mut buf, value).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn separators_are_those_of_json_dumps() {
        assert_eq!(
            dumps(&json!({"a": [1, 2], "b": null})),
            r#"{"a": [1, 2], "b": null}"#
        );
    }

    #[test]
    fn non_ascii_is_escaped_like_ensure_ascii() {
        assert_eq!(dumps(&json!("é😀")), r#""\u00e9\ud83d\ude00""#);
    }

    #[test]
    fn control_characters_are_escaped_in_lower_case_hex() {
        assert_eq!(dumps(&json!("a\u{1}\n")), r#""a\u0001\n""#);
    }

    #[test]
    fn repr_picks_the_quote_python_picks() {
        assert_eq!(
            python_repr("No channel with id 9"),
            "'No channel with id 9'"
        );
        assert_eq!(python_repr("it's"), "\"it's\"");
        assert_eq!(python_repr(r#"{"v": "x"}"#), r#"'{"v": "x"}'"#);
        assert_eq!(python_repr("both ' and \""), r#"'both \' and "'"#);
        assert_eq!(python_repr("a\\b\n"), r"'a\\b\n'");
    }
}
