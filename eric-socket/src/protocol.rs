//! The socket command protocol of eric-sse 0.6.0.3, as a typed command, its execution
//! against a [`ChannelContainer`], and the bytes of answers and errors.
//!
//! A client writes one JSON object and half-closes; the server answers and closes. See
//! `docs/socket-protocol.md` for the whole protocol. This module holds no I/O: the Unix
//! server feeds it the bytes it read and writes what it returns.
//!
//! It is the one definition of the wire, for both sides: each piece a server reads has
//! the writer a client uses beside it, and each piece a server writes has its reader.
//!
//! | on the wire | written by | read by |
//! |---|---|---|
//! | a command | [`Command::write_to`] (client) | [`parse`] (server) |
//! | a one-shot answer | [`answer_bytes`] (server) | [`parse_answer`] (client) |
//! | an error | [`ProtocolError::to_wire`] (server) | [`ProtocolError::from_wire`] (client) |
//! | a stream line | [`write_stream_line`] (server) | [`parse_stream_line`] (client) |

use crate::container::ChannelContainer;
use crate::metrics::PublishKind;
use crate::pyjson::{python_repr, python_unrepr, write_python_str, write_python_value};
use eric_core::{check_message_type, Error, Message, MessageStream};
use eric_sse::{SseAdapter, SseEvent};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::time::Instant;

/// One command of the protocol, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `c`: create a channel; answers its id.
    CreateChannel,
    /// `r`: register a new listener on a channel; answers its id.
    Register {
        /// Channel id.
        channel: String,
    },
    /// `d`: dispatch a message to one listener; answers `ack`.
    Dispatch {
        /// Channel id.
        channel: String,
        /// Listener id.
        receiver: String,
        /// The message (`t`, `p`).
        message: Message,
    },
    /// `b`: broadcast a message to every listener of a channel; answers `ack`.
    Broadcast {
        /// Channel id.
        channel: String,
        /// The message (`t`, `p`).
        message: Message,
    },
    /// `l`: start a listener and stream its queue.
    Listen {
        /// Channel id.
        channel: String,
        /// Listener id.
        receiver: String,
    },
    /// `w`: add a started listener to a channel and stream it; it is removed when the
    /// stream ends.
    Watch {
        /// Channel id.
        channel: String,
    },
}

impl Command {
    /// The verb of the command on the wire.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::CreateChannel => "c",
            Command::Register { .. } => "r",
            Command::Dispatch { .. } => "d",
            Command::Broadcast { .. } => "b",
            Command::Listen { .. } => "l",
            Command::Watch { .. } => "w",
        }
    }

    /// Appends the command as a client sends it, byte for byte what the reference's
    /// Python client writes: `json.dumps` of the object with its keys in the order
    /// `v`, `c`, `r`, `t`, `p` (`{"v": "d", "c": "1", "r": "2", "t": "hi", "p": null}`).
    /// [`parse`] reads it back into the same command, in its one pass.
    pub fn write_to(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"{\"v\": ");
        write_python_str(buf, self.verb());
        let field = |buf: &mut Vec<u8>, key: &[u8], text: &str| {
            buf.extend_from_slice(b", \"");
            buf.extend_from_slice(key);
            buf.extend_from_slice(b"\": ");
            write_python_str(buf, text);
        };
        let (channel, receiver, message) = match self {
            Command::CreateChannel => (None, None, None),
            Command::Register { channel } | Command::Watch { channel } => {
                (Some(channel), None, None)
            }
            Command::Listen { channel, receiver } => (Some(channel), Some(receiver), None),
            Command::Dispatch {
                channel,
                receiver,
                message,
            } => (Some(channel), Some(receiver), Some(message)),
            Command::Broadcast { channel, message } => (Some(channel), None, Some(message)),
        };
        if let Some(channel) = channel {
            field(buf, b"c", channel);
        }
        if let Some(receiver) = receiver {
            field(buf, b"r", receiver);
        }
        if let Some(message) = message {
            field(buf, b"t", &message.msg_type);
            buf.extend_from_slice(b", \"p\": ");
            write_python_value(buf, &message.payload);
        }
        buf.push(b'}');
    }

    /// The bytes of [`write_to`](Self::write_to).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64);
        self.write_to(&mut buf);
        buf
    }
}

/// A failed command, as the protocol reports it: `Name('message')`, with the exception
/// names of the reference so that scripts matching on them keep working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// The exception name, e.g. `InvalidChannelException`: a static name when a server
    /// raises it, the name read back when a client parses an answer.
    pub name: Cow<'static, str>,
    /// The human-readable message; empty writes `Name()`.
    pub message: String,
}

impl ProtocolError {
    /// An error named `name` (letters, digits and `_`, as a Python exception name).
    pub fn new(name: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ProtocolError {
            name: name.into(),
            message: message.into(),
        }
    }

    /// `InvalidMessageFormat`: the command is not what the protocol accepts.
    pub fn invalid_format(message: impl Into<String>) -> Self {
        ProtocolError::new("InvalidMessageFormat", message)
    }

    /// The bytes written to the client: the Python `repr` of the exception.
    pub fn to_wire(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Reads an error answer back, as [`to_wire`](Self::to_wire) writes it and as the
    /// reference writes its exceptions: `Name('message')`, `Name("message")` or
    /// `Name()`. `None` if `answer` is not one.
    pub fn from_wire(answer: &str) -> Option<ProtocolError> {
        let (name, rest) = answer.split_once('(')?;
        let inner = rest.strip_suffix(')')?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let message = match inner.chars().next() {
            None => String::new(),
            Some(quote @ ('\'' | '"')) if inner.len() >= 2 && inner.ends_with(quote) => {
                python_unrepr(&inner[1..inner.len() - 1])
            }
            Some(_) => inner.to_owned(),
        };
        Some(ProtocolError::new(name.to_owned(), message))
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}()", self.name)
        } else {
            write!(f, "{}({})", self.name, python_repr(&self.message))
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<Error> for ProtocolError {
    fn from(error: Error) -> Self {
        let name = match &error {
            Error::InvalidChannel(_) => "InvalidChannelException",
            Error::InvalidListener(_) | Error::DuplicateId(_) => "InvalidListenerException",
            Error::NoMessages(_) => "NoMessagesException",
            Error::QueueFull { .. } | Error::Disconnected { .. } | Error::Overloaded { .. } => {
                "QueueFullException"
            }
            // A type no SSE event can carry: the reference's name for a bad message.
            Error::InvalidMessageType { .. } => "InvalidMessageFormat",
            Error::Unavailable(_) => "EngineUnavailableException",
            Error::Engine(_) => "EngineException",
            _ => "InvalidMessageFormat",
        };
        ProtocolError::new(name, error.to_string())
    }
}

/// The message of Python's `JSONDecodeError` for a serde_json error, so that the most
/// common case reads as in the reference: `Expecting value: line 1 column 1 (char 0)`.
fn json_decode_error(raw: &[u8], error: &serde_json::Error) -> ProtocolError {
    let text = String::from_utf8_lossy(raw);
    let (line, column) = if error.classify() == serde_json::error::Category::Eof {
        // Python points just past the end of the input; serde_json at its last character.
        let last_line = text.rsplit('\n').next().unwrap_or_default();
        (
            text.matches('\n').count() + 1,
            last_line.chars().count() + 1,
        )
    } else {
        (error.line().max(1), error.column().max(1))
    };
    let char_offset: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(|l| l.chars().count())
        .sum::<usize>()
        + column
        - 1;
    let detail = error.to_string();
    let what = if detail.starts_with("expected value")
        || detail.starts_with("EOF while parsing a value")
    {
        "Expecting value".to_owned()
    } else if detail.starts_with("trailing characters") {
        "Extra data".to_owned()
    } else if detail.starts_with("key must be a string") {
        "Expecting property name enclosed in double quotes".to_owned()
    } else {
        // Keep serde_json's wording for the rarer cases, without its position suffix.
        let without_position = detail.split(" at line ").next().unwrap_or(&detail);
        let mut chars = without_position.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => "Invalid JSON".to_owned(),
        }
    };
    ProtocolError::new(
        "JSONDecodeError",
        format!("{what}: line {line} column {column} (char {char_offset})"),
    )
}

fn string_field(
    object: &Map<String, Value>,
    key: &str,
    what: &str,
    raw: &str,
) -> Result<Option<String>, ProtocolError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // Ids are strings, but a client that writes 7 for "7" means the same.
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(ProtocolError::invalid_format(format!(
            "key {key:?} ({what}) must be a string, got {other} in {raw}"
        ))),
    }
}

fn required(
    value: Option<String>,
    key: &str,
    what: &str,
    raw: &str,
) -> Result<String, ProtocolError> {
    value.ok_or_else(|| {
        ProtocolError::invalid_format(format!("missing key {key:?} ({what}) in {raw}"))
    })
}

/// Parses the bytes a client sent into a [`Command`].
pub fn parse(raw: &[u8]) -> Result<Command, ProtocolError> {
    match parse_well_formed(raw) {
        Some(command) => Ok(command),
        None => parse_any(raw),
    }
}

/// The common case in one pass: an object whose `v`, `c`, `r` and `t` are strings and
/// whose verb has every key it needs. No tree is built for the command itself, only
/// for its payload. Anything else is `None`, and [`parse_any`] decides, so that one
/// function words every error.
pub(crate) fn parse_well_formed(raw: &[u8]) -> Option<Command> {
    let WireCommand {
        verb,
        channel,
        receiver,
        msg_type,
        payload,
    } = serde_json::from_slice(raw).ok()?;
    let message = |msg_type: Option<Cow<'_, str>>, payload: Option<Value>| {
        Some(Message::new(msg_type?, payload.unwrap_or(Value::Null)))
    };
    let command = match verb?.as_ref() {
        "c" => Command::CreateChannel,
        "r" => Command::Register {
            channel: channel?.into_owned(),
        },
        "d" => Command::Dispatch {
            channel: channel?.into_owned(),
            receiver: receiver?.into_owned(),
            message: message(msg_type, payload)?,
        },
        "b" => Command::Broadcast {
            channel: channel?.into_owned(),
            message: message(msg_type, payload)?,
        },
        "l" => Command::Listen {
            channel: channel?.into_owned(),
            receiver: receiver?.into_owned(),
        },
        "w" => Command::Watch {
            channel: channel?.into_owned(),
        },
        _ => return None,
    };
    Some(command)
}

/// What [`parse_well_formed`] reads from a command: the keys the protocol knows, the
/// last of each when one repeats (as Python's `json.loads` keeps it). Deserialising
/// fails on any of `v`, `c`, `r`, `t` that is not a string.
#[derive(Default)]
struct WireCommand<'a> {
    verb: Option<Cow<'a, str>>,
    channel: Option<Cow<'a, str>>,
    receiver: Option<Cow<'a, str>>,
    msg_type: Option<Cow<'a, str>>,
    payload: Option<Value>,
}

impl<'de> Deserialize<'de> for WireCommand<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = WireCommand<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut command = WireCommand::default();
                while let Some(key) = map.next_key::<WireStr<'de>>()? {
                    let field = match key.0.as_ref() {
                        "v" => &mut command.verb,
                        "c" => &mut command.channel,
                        "r" => &mut command.receiver,
                        "t" => &mut command.msg_type,
                        "p" => {
                            command.payload = Some(map.next_value()?);
                            continue;
                        }
                        _ => {
                            // Read as a value, not skipped: skipping checks less (a
                            // number out of range passes), and both parses must fail alike.
                            map.next_value::<Value>()?;
                            continue;
                        }
                    };
                    *field = Some(map.next_value::<WireStr<'de>>()?.0);
                }
                Ok(command)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A JSON string, borrowed from the command when it holds no escape.
struct WireStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for WireStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = WireStr<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(WireStr(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(WireStr(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Parses any input, and words the error when it is not a command as the reference
/// does.
pub(crate) fn parse_any(raw: &[u8]) -> Result<Command, ProtocolError> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| json_decode_error(raw, &e))?;
    let raw_text = String::from_utf8_lossy(raw);
    let Value::Object(mut object) = value else {
        return Err(ProtocolError::invalid_format(format!(
            "a command is a JSON object, got {}",
            raw_text.trim()
        )));
    };
    // Missing verb: the reference answers InvalidMessageFormat('<the raw command>').
    let verb = match object.remove("v") {
        None => return Err(ProtocolError::invalid_format(raw_text)),
        Some(Value::String(verb)) => verb,
        Some(other) => {
            return Err(ProtocolError::invalid_format(format!(
                "verb \"v\" must be a string, got {other}"
            )))
        }
    };
    let channel = string_field(&object, "c", "channel id", &raw_text)?;
    let receiver = string_field(&object, "r", "listener id", &raw_text)?;
    // The type and payload move out of the parsed object: a 1 MiB payload is not copied.
    let mut message = || -> Result<Message, ProtocolError> {
        match object.remove("t") {
            Some(Value::String(t)) => {
                Ok(Message::new(t, object.remove("p").unwrap_or(Value::Null)))
            }
            // As the reference: a message verb without a type is the raw command, refused.
            None => Err(ProtocolError::invalid_format(raw_text.clone())),
            Some(other) => Err(ProtocolError::invalid_format(format!(
                "message type \"t\" must be a string, got {other}"
            ))),
        }
    };
    match verb.as_str() {
        "c" => Ok(Command::CreateChannel),
        "r" => Ok(Command::Register {
            channel: required(channel, "c", "channel id", &raw_text)?,
        }),
        "d" => {
            let message = message()?;
            Ok(Command::Dispatch {
                channel: required(channel, "c", "channel id", &raw_text)?,
                receiver: required(receiver, "r", "listener id", &raw_text)?,
                message,
            })
        }
        "b" => {
            let message = message()?;
            Ok(Command::Broadcast {
                channel: required(channel, "c", "channel id", &raw_text)?,
                message,
            })
        }
        "l" => Ok(Command::Listen {
            channel: required(channel, "c", "channel id", &raw_text)?,
            receiver: required(receiver, "r", "listener id", &raw_text)?,
        }),
        "w" => Ok(Command::Watch {
            channel: required(channel, "c", "channel id", &raw_text)?,
        }),
        other => Err(ProtocolError::invalid_format(format!(
            "unknown verb {other:?}: expected one of c, r, d, b, l, w"
        ))),
    }
}

/// What executing a command produced: the text of a one-shot answer, or a stream.
#[derive(Debug)]
pub enum Outcome {
    /// A one-shot answer: an id or `ack`.
    Text(String),
    /// A stream to write line by line with [`write_stream_line`] until it ends.
    Stream(MessageStream<SseAdapter>),
}

/// The answer to `d` and `b`.
pub const ACK: &str = "ack";

/// Executes `command` against `container`. A message of `d` or `b` is refused, as HTTP
/// refuses it, if its type cannot be an SSE event name
/// ([`check_message_type`]); what full queues refuse is
/// counted and logged as a summary, as HTTP's refusals are.
pub fn execute(container: &ChannelContainer, command: Command) -> Result<Outcome, ProtocolError> {
    Ok(match command {
        Command::CreateChannel => Outcome::Text(
            container
                .add_with(None, container.settings().retention)?
                .id()
                .to_owned(),
        ),
        Command::Register { channel } => {
            Outcome::Text(container.subscribe(&container.get(&channel)?)?)
        }
        Command::Dispatch {
            channel: channel_id,
            receiver,
            message,
        } => {
            let channel = container.get(&channel_id)?;
            check_message_type(&message.msg_type)?;
            container.admit_publish(&channel_id)?;
            let started = Instant::now();
            container
                .dispatch(&channel, &receiver, message)
                .inspect_err(|error| container.note_refused(&channel_id, error))?;
            container
                .metrics()
                .published(PublishKind::Dispatch, started.elapsed());
            Outcome::Text(ACK.to_owned())
        }
        Command::Broadcast {
            channel: channel_id,
            message,
        } => {
            let channel = container.get(&channel_id)?;
            check_message_type(&message.msg_type)?;
            container.admit_publish(&channel_id)?;
            let started = Instant::now();
            let report = container.broadcast(&channel, message)?;
            container
                .metrics()
                .published(PublishKind::Broadcast, started.elapsed());
            container.note_refusals(&channel_id, report.rejected, report.disconnected);
            Outcome::Text(ACK.to_owned())
        }
        Command::Listen { channel, receiver } => {
            let channel = container.get(&channel)?;
            let listener = container.listener(&channel, &receiver)?;
            // The reference (0.6.0.3) forgets to start the listener; later versions do.
            listener.start();
            Outcome::Stream(channel.message_stream(&listener))
        }
        Command::Watch { channel } => {
            Outcome::Stream(container.watch(&container.get(&channel)?, None)?)
        }
    })
}

/// Parses and executes in one step.
pub fn handle(container: &ChannelContainer, raw: &[u8]) -> Result<Outcome, ProtocolError> {
    execute(container, parse(raw)?)
}

/// The bytes of a one-shot answer: the text of an id or `ack` as it is, an error in its
/// wire form. [`parse_answer`] reads them back.
pub fn answer_bytes(answer: Result<String, ProtocolError>) -> Vec<u8> {
    match answer {
        Ok(text) => text.into_bytes(),
        Err(error) => error.to_wire(),
    }
}

/// Reads a one-shot answer as [`answer_bytes`] writes it: an error answer is the `Err`,
/// any other text (an id, `ack`) the `Ok`.
pub fn parse_answer(answer: &str) -> Result<&str, ProtocolError> {
    match ProtocolError::from_wire(answer) {
        Some(error) => Err(error),
        None => Ok(answer),
    }
}

/// Reads one line of an `l` or `w` stream, without its line feed, as
/// [`write_stream_line`] writes it: an event, or the error answer that a failed command
/// sends instead of its stream. `None` if the line is neither.
pub fn parse_stream_line(line: &str) -> Option<Result<SseEvent, ProtocolError>> {
    match serde_json::from_str::<SseEvent>(line) {
        Ok(event) => Some(Ok(event)),
        Err(_) => ProtocolError::from_wire(line).map(Err),
    }
}

/// Appends one stream line: the event as `json.dumps` writes it (`{"event": <type>,
/// "retry": <ms>, "data": <payload>}`, the serde form of [`SseEvent`]), then a line feed.
pub fn write_stream_line(buf: &mut Vec<u8>, event: &SseEvent) {
    // Written field by field rather than through serde: this runs once per streamed
    // line, and the serializer's indirections cost more than the bytes.
    buf.extend_from_slice(b"{\"event\": ");
    write_python_str(buf, event.event());
    buf.extend_from_slice(b", \"retry\": ");
    buf.extend_from_slice(itoa::Buffer::new().format(event.retry()).as_bytes());
    buf.extend_from_slice(b", \"data\": ");
    write_python_value(buf, event.data());
    buf.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Keys as a client may write them: the protocol's, escaped spellings of them,
    /// and keys the protocol ignores.
    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "v", "c", "r", "t", "p", "x", "\\u0076", "\\u0063", "vv", "",
        ])
        .prop_map(str::to_owned)
    }

    /// Strings a command's fields hold: verbs, ids, escapes.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["c", "r", "d", "b", "l", "w", "x", "1", "42", "load"])
                .prop_map(|s| format!("{s:?}")),
            prop::sample::select(vec![r#""\u0064""#, r#""a\"b""#, r#""é\n""#, r#""""#])
                .prop_map(str::to_owned),
        ]
    }

    /// Values of every JSON kind.
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            text(),
            prop::sample::select(vec!["null", "true", "7", "-1", "2.5", "1e400"])
                .prop_map(str::to_owned),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
                prop::collection::vec((key(), inner), 0..4).prop_map(|fields| {
                    let fields: Vec<String> = fields
                        .iter()
                        .map(|(k, v)| format!(r#""{k}": {v}"#))
                        .collect();
                    format!("{{{}}}", fields.join(", "))
                }),
            ]
        })
    }

    /// A command's fields: mostly strings, sometimes anything.
    fn field() -> impl Strategy<Value = (String, String)> {
        (key(), prop_oneof![4 => text(), 1 => value()])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8192))]

        /// The one-pass parse accepts only what the full parse accepts, as the same
        /// command; repeated keys, escaped keys and ids that are numbers included.
        #[test]
        fn the_one_pass_parse_agrees_with_the_full_parse(
            verb in prop::option::of(prop::sample::select(vec!["c", "r", "d", "b", "l", "w"])),
            fields in prop::collection::vec(field(), 0..7),
            compact in any::<bool>(),
        ) {
            let separator = if compact { "," } else { ", " };
            // A known verb up front in most cases, so that many commands are well formed;
            // a later "v" among `fields` may still replace it.
            let fields: Vec<String> = verb
                .map(|verb| format!(r#""v": "{verb}""#))
                .into_iter()
                .chain(fields.iter().map(|(k, v)| format!(r#""{k}": {v}"#)))
                .collect();
            let raw = format!("{{{}}}", fields.join(separator));
            if let Some(command) = parse_well_formed(raw.as_bytes()) {
                prop_assert_eq!(Ok(command), parse_any(raw.as_bytes()), "{}", raw);
            }
        }
    }

    /// Strings as ids and message types may hold them: escapes, quotes, non-ASCII,
    /// characters outside the BMP.
    fn wire_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["1", "42", "load", "", "a\"b", "\\", "é\n\u{7f}"])
                .prop_map(str::to_owned),
            any::<String>(),
        ]
    }

    /// Payloads of every JSON kind; floats exact in binary, so that the comparison does
    /// not depend on how closely serde_json reads decimals.
    fn payload() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i32>().prop_map(|n| Value::from(f64::from(n) / 64.0)),
            wire_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((wire_text(), inner), 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    fn message() -> impl Strategy<Value = Message> {
        (wire_text(), payload()).prop_map(|(t, p)| Message::new(t, p))
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            Just(Command::CreateChannel),
            wire_text().prop_map(|channel| Command::Register { channel }),
            (wire_text(), wire_text(), message()).prop_map(|(channel, receiver, message)| {
                Command::Dispatch {
                    channel,
                    receiver,
                    message,
                }
            }),
            (wire_text(), message())
                .prop_map(|(channel, message)| Command::Broadcast { channel, message }),
            (wire_text(), wire_text())
                .prop_map(|(channel, receiver)| Command::Listen { channel, receiver }),
            wire_text().prop_map(|channel| Command::Watch { channel }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// What a client writes, the server reads back as the same command, in one pass.
        #[test]
        fn every_command_reads_back_from_its_bytes(command in command()) {
            let bytes = command.to_bytes();
            prop_assert_eq!(parse_well_formed(&bytes), Some(command.clone()));
            prop_assert_eq!(parse(&bytes), Ok(command));
        }

        /// What a server answers, the client reads back: ids, `ack`, and errors whatever
        /// their message holds.
        #[test]
        fn every_answer_reads_back_from_its_bytes(
            id in "[0-9]{1,12}|ack",
            name in prop::sample::select(vec![
                "InvalidChannelException",
                "InvalidListenerException",
                "InvalidMessageFormat",
                "JSONDecodeError",
                "TimeoutError",
            ]),
            message in wire_text(),
        ) {
            let bytes = answer_bytes(Ok(id.clone()));
            prop_assert_eq!(parse_answer(std::str::from_utf8(&bytes).unwrap()), Ok(id.as_str()));
            let error = ProtocolError::new(name, message);
            let bytes = answer_bytes(Err(error.clone()));
            prop_assert_eq!(parse_answer(std::str::from_utf8(&bytes).unwrap()), Err(error));
        }
    }

    #[test]
    fn commands_are_written_as_the_reference_client_writes_them() {
        // The right-hand sides are the bytes the reference's Python client (eric-sse
        // 0.6.0.3 `SocketClient`: create_channel, register, broadcast_message,
        // send_payload) and the interop script (tests/interop) write for these commands.
        let message = |t: &str, p: Value| Message::new(t, p);
        for (command, python) in [
            (Command::CreateChannel, r#"{"v": "c"}"#),
            (
                Command::Register {
                    channel: "1".into(),
                },
                r#"{"v": "r", "c": "1"}"#,
            ),
            (
                Command::Dispatch {
                    channel: "1".into(),
                    receiver: "2".into(),
                    message: message("hello", json!({"to": "you"})),
                },
                r#"{"v": "d", "c": "1", "r": "2", "t": "hello", "p": {"to": "you"}}"#,
            ),
            (
                Command::Broadcast {
                    channel: "1".into(),
                    message: message(
                        "h\u{e9}llo",
                        json!({"to": "you", "n": [1, 2.5, null, "\u{2603}"]}),
                    ),
                },
                r#"{"v": "b", "c": "1", "t": "h\u00e9llo", "p": {"to": "you", "n": [1, 2.5, null, "\u2603"]}}"#,
            ),
            (
                Command::Broadcast {
                    channel: "1".into(),
                    message: Message::empty("no-payload"),
                },
                r#"{"v": "b", "c": "1", "t": "no-payload", "p": null}"#,
            ),
            (
                Command::Listen {
                    channel: "1".into(),
                    receiver: "2".into(),
                },
                r#"{"v": "l", "c": "1", "r": "2"}"#,
            ),
            (
                Command::Watch {
                    channel: "1".into(),
                },
                r#"{"v": "w", "c": "1"}"#,
            ),
        ] {
            assert_eq!(String::from_utf8(command.to_bytes()).unwrap(), python);
            let mut dumped = Vec::new();
            crate::pyjson::write_python_json(
                &mut dumped,
                &serde_json::from_str::<Value>(python).unwrap(),
            )
            .unwrap();
            assert_eq!(
                String::from_utf8(dumped).unwrap(),
                python,
                "json.dumps form"
            );
        }
    }

    #[test]
    fn stream_lines_read_back_as_events_or_errors() {
        let event = SseEvent::new("t\u{e9}", json!({"a": [1, "x"]})).with_retry(7);
        let mut line = Vec::new();
        write_stream_line(&mut line, &event);
        let line = std::str::from_utf8(&line).unwrap().trim_end_matches('\n');
        assert_eq!(parse_stream_line(line), Some(Ok(event)));
        let error = ProtocolError::from(Error::InvalidListener("7".into()));
        let wire = String::from_utf8(error.to_wire()).unwrap();
        assert_eq!(parse_stream_line(&wire), Some(Err(error)));
        assert_eq!(parse_stream_line("not a line"), None);
    }

    #[test]
    fn well_formed_commands_take_the_one_pass_parse() {
        for raw in [
            r#"{"v": "c"}"#,
            r#"{"v": "b", "c": "1", "t": "load", "p": {"seq": 5}}"#,
            r#"{"v": "d", "c": "1", "r": "2", "t": "t\u00e9", "p": [1, "x"], "z": {}}"#,
            r#"{"v": "l", "c": "1", "r": "2"}"#,
        ] {
            let fast = parse_well_formed(raw.as_bytes());
            assert!(fast.is_some(), "{raw}");
            assert_eq!(fast.map(Ok), Some(parse_any(raw.as_bytes())), "{raw}");
        }
        // Numbers as ids, a null channel, a missing key, and a number out of range under
        // a key the protocol ignores (which the full parse refuses): left to the full parse.
        for raw in [
            r#"{"v": "r", "c": 1}"#,
            r#"{"v": "c", "c": null}"#,
            r#"{"v": "r"}"#,
            r#"{"v": "w", "c": "c", "vv": {"v": 1e400}}"#,
        ] {
            assert!(parse_well_formed(raw.as_bytes()).is_none(), "{raw}");
        }
    }

    fn error(raw: &str) -> String {
        parse(raw.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn not_json_is_the_reference_json_decode_error() {
        assert_eq!(
            error(""),
            "JSONDecodeError('Expecting value: line 1 column 1 (char 0)')"
        );
        assert_eq!(
            error("hello"),
            "JSONDecodeError('Expecting value: line 1 column 1 (char 0)')"
        );
    }

    #[test]
    fn input_that_ends_too_early_is_located_past_its_end_as_python_does() {
        assert_eq!(
            error("   "),
            "JSONDecodeError('Expecting value: line 1 column 4 (char 3)')"
        );
        assert_eq!(
            error(r#"{"v": "b", "c": "1", "t": "#),
            "JSONDecodeError('Expecting value: line 1 column 27 (char 26)')"
        );
        assert_eq!(
            error("[1,\n\n"),
            "JSONDecodeError('Expecting value: line 3 column 1 (char 5)')"
        );
    }

    #[test]
    fn missing_verb_or_type_is_the_raw_command() {
        assert_eq!(
            error(r#"{"c": "1"}"#),
            r#"InvalidMessageFormat('{"c": "1"}')"#
        );
        assert_eq!(
            error(r#"{"v": "b", "c": "1"}"#),
            r#"InvalidMessageFormat('{"v": "b", "c": "1"}')"#
        );
    }

    #[test]
    fn unknown_verb_is_named() {
        assert_eq!(
            error(r#"{"v": "x", "t": "a"}"#),
            r#"InvalidMessageFormat('unknown verb "x": expected one of c, r, d, b, l, w')"#
        );
    }

    #[test]
    fn a_payload_may_be_any_json_and_defaults_to_null() {
        let command =
            parse(br#"{"v": "b", "c": "1", "t": "t", "p": {"deep": [1, {"x": null}]}}"#).unwrap();
        assert_eq!(
            command,
            Command::Broadcast {
                channel: "1".into(),
                message: Message::new("t", json!({"deep": [1, {"x": null}]}))
            }
        );
        let command = parse(br#"{"v": "d", "c": "1", "r": "2", "t": "t"}"#).unwrap();
        assert!(matches!(command, Command::Dispatch { message, .. } if message.payload.is_null()));
    }

    #[test]
    fn stream_lines_are_the_serde_form_of_the_event() {
        for event in [
            SseEvent::new("t", json!({"a": "é", "b": [1, -2, 2.5, null, true]})),
            SseEvent::new("quote\"d\u{1}", json!("x")).with_retry(123_456),
            SseEvent::new("", Value::Null),
        ] {
            let mut line = Vec::new();
            write_stream_line(&mut line, &event);
            let mut serialised = Vec::new();
            crate::pyjson::write_python_json(&mut serialised, &event).unwrap();
            serialised.push(b'\n');
            assert_eq!(line, serialised);
        }
    }

    #[test]
    fn payload_floats_pass_through_unchanged() {
        // Python's shortest repr of each double; serde_json's default parse read the first
        // one 1 ulp off, so a listener got other digits than the publisher sent.
        for text in [
            "8.59031950253993e+183",
            "0.1",
            "5e-324",
            "1.7976931348623157e+308",
        ] {
            let raw = format!(r#"{{"v": "b", "c": "1", "t": "t", "p": [{text}]}}"#);
            let Ok(Command::Broadcast { message, .. }) = parse(raw.as_bytes()) else {
                panic!("{raw} does not parse");
            };
            let float = text.parse::<f64>().unwrap();
            assert_eq!(
                message.payload[0].as_f64().map(f64::to_bits),
                Some(float.to_bits())
            );
            let mut line = Vec::new();
            write_stream_line(&mut line, &SseEvent::new("t", message.payload));
            let line = String::from_utf8(line).unwrap();
            assert!(line.contains(&format!("[{text}]")), "{line}");
        }
    }

    #[test]
    fn payload_keys_keep_the_order_they_came_in_as_in_python() {
        // Python's dicts keep insertion order, and so does json.dumps.
        let payload: Value =
            serde_json::from_str(r#"{"zeta": 1, "alpha": {"b": 1e16, "a": 0.5}}"#).unwrap();
        let mut buf = Vec::new();
        write_stream_line(&mut buf, &SseEvent::new("t", payload));
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"event\": \"t\", \"retry\": 5, \"data\": {\"zeta\": 1, \"alpha\": {\"b\": 1e+16, \"a\": 0.5}}}\n"
        );
    }

    #[test]
    fn stream_lines_are_written_as_json_dumps_writes_them() {
        let mut buf = Vec::new();
        write_stream_line(&mut buf, &SseEvent::new("t", json!({"a": "é"})));
        assert_eq!(
            buf,
            b"{\"event\": \"t\", \"retry\": 5, \"data\": {\"a\": \"\\u00e9\"}}\n"
        );
    }
}
