//! JSON written the way Python's `json.dumps` writes it with its defaults, and Python's
//! `repr` of a string: what the reference's socket server puts on the wire.

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};
use serde_json::{Number, Value};
use std::io::{self, Write};

/// `json.dumps` defaults: `", "` and `": "` separators, and `ensure_ascii`: DEL and every
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
        // DEL is ASCII, but `ensure_ascii` escapes it too (it keeps only ' ' to '~'),
        // and serde_json passes it through as it is.
        if fragment.bytes().all(|byte| byte < 0x7f) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            if ch < '\u{7f}' {
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

    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let mut buf = Vec::with_capacity(24);
        write_python_float(&mut buf, value);
        writer.write_all(&buf)
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

/// Appends `value` to `buf` as Python's `json.dumps(value)` would write it: the same
/// bytes as [`write_python_json`], written straight from the tree with no serializer in
/// between, because every line of a stream goes through here.
pub(crate) fn write_python_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => buf.extend_from_slice(b"null"),
        Value::Bool(true) => buf.extend_from_slice(b"true"),
        Value::Bool(false) => buf.extend_from_slice(b"false"),
        Value::Number(number) => write_number(buf, number),
        Value::String(text) => write_python_str(buf, text),
        Value::Array(items) => {
            buf.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    buf.extend_from_slice(b", ");
                }
                // Recursion is bounded: serde_json parses at most 128 levels.
                write_python_value(buf, item);
            }
            buf.push(b']');
        }
        Value::Object(map) => {
            buf.push(b'{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    buf.extend_from_slice(b", ");
                }
                write_python_str(buf, key);
                buf.extend_from_slice(b": ");
                write_python_value(buf, item);
            }
            buf.push(b'}');
        }
    }
}

fn write_number(buf: &mut Vec<u8>, number: &Number) {
    if let Some(n) = number.as_u64() {
        buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    } else if let Some(n) = number.as_i64() {
        buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    } else if let Some(n) = number.as_f64() {
        write_python_float(buf, n);
    } else {
        // Only with serde_json's arbitrary precision, which eric does not enable.
        buf.extend_from_slice(number.to_string().as_bytes());
    }
}

/// Appends `value` as Python's `repr(float)` writes it (which `json.dumps` uses): the
/// shortest digits that read back to the same value, as fixed-point with at least one
/// decimal (`100.0`, `0.0001`) when the decimal exponent is from -4 to 15, otherwise in
/// exponent form with a sign and at least two exponent digits (`1e+16`, `1.5e-05`).
/// Rust's own shortest form chooses other bounds and writes `1e16`.
pub(crate) fn write_python_float(buf: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        // JSON values cannot hold these; Python would write `NaN` or `Infinity`.
        let text = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        buf.extend_from_slice(text.as_bytes());
        return;
    }
    if value.is_sign_negative() {
        buf.push(b'-');
    }
    let mut shortest = ryu::Buffer::new();
    let text = shortest.format_finite(value.abs());
    // ryu writes `d.ddd`, `d.ddde-x` or `de+x`: take its digits and decimal exponent.
    let (mantissa, exponent) = match text.split_once('e') {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // ryu writes at most 22 digits (17 significant ones after `0.0000`): kept on the
    // stack.
    let mut all_digits = [0u8; 32];
    let mut count = 0;
    for digit in integer.bytes().chain(fraction.bytes()) {
        all_digits[count] = digit;
        count += 1;
    }
    let leading_zeros = all_digits[..count]
        .iter()
        .take_while(|&&d| d == b'0')
        .count();
    let significant = &all_digits[leading_zeros..count];
    let end = significant
        .iter()
        .rposition(|&d| d != b'0')
        .map_or(0, |last| last + 1);
    let digits = &significant[..end];
    if digits.is_empty() {
        buf.extend_from_slice(b"0.0");
        return;
    }
    // The value is 0.DIGITS x 10^point.
    let point = integer.len() as i32 - leading_zeros as i32 + exponent;
    if (-3..=16).contains(&point) {
        if point <= 0 {
            buf.extend_from_slice(b"0.");
            buf.resize(buf.len() + point.unsigned_abs() as usize, b'0');
            buf.extend_from_slice(digits);
        } else if point as usize >= digits.len() {
            buf.extend_from_slice(digits);
            buf.resize(buf.len() + (point as usize - digits.len()), b'0');
            buf.extend_from_slice(b".0");
        } else {
            let (whole, part) = digits.split_at(point as usize);
            buf.extend_from_slice(whole);
            buf.push(b'.');
            buf.extend_from_slice(part);
        }
    } else {
        buf.push(digits[0]);
        if digits.len() > 1 {
            buf.push(b'.');
            buf.extend_from_slice(&digits[1..]);
        }
        let exponent = point - 1;
        buf.push(b'e');
        buf.push(if exponent < 0 { b'-' } else { b'+' });
        if exponent.abs() < 10 {
            buf.push(b'0');
        }
        buf.extend_from_slice(itoa::Buffer::new().format(exponent.abs()).as_bytes());
    }
}

/// Which bytes of a string need more than a copy: the quote, the backslash, control
/// characters, DEL, and every byte of a non-ASCII character (`ensure_ascii`).
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] =
            byte < 0x20 || byte == b'"' as usize || byte == b'\\' as usize || byte >= 0x7f;
        byte += 1;
    }
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_unicode_escape(buf: &mut Vec<u8>, unit: u16) {
    buf.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[usize::from(unit >> 12)],
        HEX[usize::from((unit >> 8) & 0xf)],
        HEX[usize::from((unit >> 4) & 0xf)],
        HEX[usize::from(unit & 0xf)],
    ]);
}

/// A JSON string as `json.dumps` writes it: runs of plain ASCII copied at once, the
/// rest escaped as [`PythonFormatter`] does.
pub(crate) fn write_python_str(buf: &mut Vec<u8>, text: &str) {
    buf.reserve(text.len() + 2);
    buf.push(b'"');
    // `done` is always at a character boundary: only whole characters are passed.
    let mut done = 0;
    while let Some(found) = text.as_bytes()[done..]
        .iter()
        .position(|&byte| ESCAPED[usize::from(byte)])
    {
        let at = done + found;
        buf.extend_from_slice(&text.as_bytes()[done..at]);
        let byte = text.as_bytes()[at];
        done = at + 1;
        match byte {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0x08 => buf.extend_from_slice(b"\\b"),
            0x0c => buf.extend_from_slice(b"\\f"),
            control if control < 0x80 => push_unicode_escape(buf, u16::from(control)),
            _ => {
                let ch = text[at..].chars().next().expect("a character starts here");
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    push_unicode_escape(buf, *unit);
                }
                done = at + ch.len_utf8();
            }
        }
    }
    buf.extend_from_slice(&text.as_bytes()[done..]);
    buf.push(b'"');
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

/// The text of a Python string literal's body (without its quotes): the inverse of
/// [`python_repr`], and of the escapes Python's own `repr` writes (`\xNN`, `\uNNNN`,
/// `\UNNNNNNNN`). An escape it does not know is kept as it is.
pub(crate) fn python_unrepr(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let escaped = chars.next();
        let hex_digits = match escaped {
            Some('x') => 2,
            Some('u') => 4,
            Some('U') => 8,
            _ => 0,
        };
        if hex_digits > 0 {
            let digits: String = chars.clone().take(hex_digits).collect();
            let code = (digits.len() == hex_digits)
                .then(|| u32::from_str_radix(&digits, 16).ok())
                .flatten()
                .and_then(char::from_u32);
            if let Some(code) = code {
                out.push(code);
                chars.nth(hex_digits - 1);
                continue;
            }
        }
        match escaped {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(quoted @ ('\\' | '\'' | '"')) => out.push(quoted),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn floats_are_written_as_python_repr_writes_them() {
        // The right-hand sides are Python 3.11's `repr` of each value.
        for (value, python) in [
            (0.0_f64, "0.0"),
            (-0.0_f64, "-0.0"),
            (1.5_f64, "1.5"),
            (-2.25_f64, "-2.25"),
            (100.0_f64, "100.0"),
            (0.1_f64, "0.1"),
            (0.0001_f64, "0.0001"),
            (1e-05_f64, "1e-05"),
            (1.5e-05_f64, "1.5e-05"),
            (123456.789_f64, "123456.789"),
            (1000000000000000.0_f64, "1000000000000000.0"),
            (1e+16_f64, "1e+16"),
            (1.2345678901234568e+16_f64, "1.2345678901234568e+16"),
            (-1e+16_f64, "-1e+16"),
            (1e+100_f64, "1e+100"),
            (1e-100_f64, "1e-100"),
            (5e-324_f64, "5e-324"),
            (1.7976931348623157e+308_f64, "1.7976931348623157e+308"),
            (0.3333333333333333_f64, "0.3333333333333333"),
            (2.5e-07_f64, "2.5e-07"),
            (1.2345678901234567e+19_f64, "1.2345678901234567e+19"),
            (0.5_f64, "0.5"),
            (9999999999999998.0_f64, "9999999999999998.0"),
        ] {
            let mut direct = Vec::new();
            super::write_python_float(&mut direct, value);
            assert_eq!(String::from_utf8(direct).unwrap(), python, "{value:?}");
            let mut via_serde = Vec::new();
            super::write_python_json(&mut via_serde, &value).unwrap();
            assert_eq!(String::from_utf8(via_serde).unwrap(), python, "{value:?}");
        }
    }

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
        // What Python writes: json.dumps("a\x7fb") == '"a\\u007fb"'.
        assert_eq!(dumps(&json!("a\u{7f}b")), r#""a\u007fb""#);
        let mut direct = Vec::new();
        write_python_value(&mut direct, &json!("a\u{7f}b"));
        assert_eq!(direct, br#""a\u007fb""#);
    }

    /// A small deterministic generator, enough to cover the escapes.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn text(&mut self) -> String {
            const PALETTE: &[char] = &[
                'a',
                'Z',
                ' ',
                '~',
                '"',
                '\\',
                '/',
                '\n',
                '\r',
                '\t',
                '\u{8}',
                '\u{c}',
                '\u{0}',
                '\u{1f}',
                '\u{7f}',
                '\u{80}',
                'é',
                '\u{2028}',
                '\u{ffff}',
                '😀',
                '\u{10ffff}',
            ];
            let len = self.below(12);
            (0..len)
                .map(|_| PALETTE[self.below(PALETTE.len() as u64) as usize])
                .collect()
        }

        fn value(&mut self, depth: u32) -> Value {
            match self.below(if depth > 3 { 6 } else { 8 }) {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 0),
                2 => json!(self.below(u64::MAX)),
                3 => json!(-(self.below(1 << 62) as i64)),
                4 => json!(self.below(1 << 40) as f64 / 7.0),
                5 => Value::String(self.text()),
                6 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
                _ => Value::Object(
                    (0..self.below(4))
                        .map(|_| (self.text(), self.value(depth + 1)))
                        .collect(),
                ),
            }
        }
    }

    #[test]
    fn the_direct_writer_writes_what_the_serializer_writes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5_000 {
            let value = rng.value(0);
            let mut direct = Vec::new();
            write_python_value(&mut direct, &value);
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                dumps(&value),
                "{value:?}"
            );
        }
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

    #[test]
    fn unrepr_reads_back_what_repr_writes() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..5_000 {
            let text = rng.text();
            let repr = python_repr(&text);
            assert_eq!(python_unrepr(&repr[1..repr.len() - 1]), text, "{repr}");
        }
    }

    #[test]
    fn unrepr_reads_the_escapes_of_python_own_repr() {
        assert_eq!(python_unrepr(r"a\x7f\u2028\U0001f600"), "a\u{7f}\u{2028}😀");
        assert_eq!(python_unrepr(r#"it\'s \"q\""#), "it's \"q\"");
        // Not an escape Python writes: kept as it came.
        assert_eq!(python_unrepr(r"\q \x4"), r"\q \x4");
        assert_eq!(python_unrepr("end\\"), "end\\");
    }
}
