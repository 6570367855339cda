//! The payload of `dispatch` and `broadcast`: JSON from the command line or stdin.

use crate::error::CliError;
use serde_json::Value;
use std::io::Read;

/// Reads the payload argument: absent is `null`, `-` reads stdin, anything else must be
/// JSON text.
pub fn read_payload(argument: Option<&str>) -> Result<Value, CliError> {
    match argument {
        None => Ok(Value::Null),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| CliError::io("cannot read the payload from stdin", error))?;
            parse_payload(&text, "the payload read from stdin")
        }
        Some(text) => parse_payload(text, &format!("the payload `{}`", abbreviate(text))),
    }
}

/// Parses JSON text; the error names `what` and tells how to write a string.
pub fn parse_payload(text: &str, what: &str) -> Result<Value, CliError> {
    serde_json::from_str(text).map_err(|error| {
        CliError::invalid_input(format!(
            "{what} is not JSON ({error}); write JSON, e.g. '{{\"a\":1}}', or quote a string: '\"text\"'"
        ))
    })
}

/// The first 60 characters of `text`, to quote it in an error.
fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;
    use serde_json::json;

    #[test]
    fn an_absent_payload_is_null() {
        assert_eq!(read_payload(None).unwrap(), Value::Null);
    }

    #[test]
    fn any_json_value_is_a_payload() {
        assert_eq!(read_payload(Some(r#"{"hi":1}"#)).unwrap(), json!({"hi": 1}));
        assert_eq!(read_payload(Some("[1,2]")).unwrap(), json!([1, 2]));
        assert_eq!(read_payload(Some(r#""text""#)).unwrap(), json!("text"));
        assert_eq!(read_payload(Some("-5")).unwrap(), json!(-5));
    }

    #[test]
    fn invalid_json_is_invalid_input_naming_the_payload() {
        let error = read_payload(Some("hello")).unwrap_err();
        assert_eq!(error.exit, Exit::InvalidInput);
        assert!(error.message.contains("`hello`"), "{error}");
        assert!(error.message.contains("quote a string"), "{error}");
    }

    #[test]
    fn long_payloads_are_abbreviated_in_errors() {
        let long = "x".repeat(500);
        let error = read_payload(Some(&long)).unwrap_err();
        assert!(error.message.len() < 300, "{error}");
    }
}
