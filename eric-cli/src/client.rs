//! The client subcommands: channels, listeners, dispatch, broadcast and streams.

use crate::cli::{ChannelCommand, ListenerCommand, StreamOutput};
use crate::error::{CliError, Exit};
use crate::http_api::{HttpApi, HttpClient};
use crate::payload::read_payload;
use crate::signals;
use eric_socket::{EventStream, SocketClient};
use eric_sse::SseEvent;
use std::io::{self, Write};

/// Where the clients find the server.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The socket server.
    pub socket: SocketClient,
    /// The HTTP address (`host:port`).
    pub http: String,
    /// TLS and token for the HTTP verbs.
    pub http_client: HttpClient,
}

impl Endpoints {
    fn http(&self, verb: &'static str) -> HttpApi {
        HttpApi::new(&self.http, verb).with_client(self.http_client.clone())
    }
}

/// `eric channel ...`
pub async fn channel(endpoints: &Endpoints, command: ChannelCommand) -> Result<(), CliError> {
    match command {
        ChannelCommand::Create { id: None } => {
            let id = endpoints.socket.create_channel().await?;
            print_line(&id)
        }
        ChannelCommand::Create { id: Some(id) } => {
            let id = endpoints
                .http("channel create --id")
                .create_channel(&id)
                .await?;
            print_line(&id)
        }
        ChannelCommand::List {
            listeners: false,
            json,
        } => {
            let ids = endpoints.http("channel list").channels().await?;
            if json {
                print_line(&serde_json::to_string(&ids).expect("strings serialise"))
            } else {
                ids.iter().try_for_each(|id| print_line(id))
            }
        }
        ChannelCommand::List {
            listeners: true,
            json,
        } => {
            let snapshot = endpoints
                .http("channel list --listeners")
                .snapshot()
                .await?;
            if json {
                return print_line(&serde_json::to_string(&snapshot).expect("strings serialise"));
            }
            snapshot.iter().try_for_each(|(channel, listeners)| {
                if listeners.is_empty() {
                    print_line(&format!("{channel}:"))
                } else {
                    print_line(&format!("{channel}: {}", listeners.join(" ")))
                }
            })
        }
        ChannelCommand::Rm { channel } => {
            endpoints.http("channel rm").remove_channel(&channel).await
        }
    }
}

/// `eric listener ...`
pub async fn listener(endpoints: &Endpoints, command: ListenerCommand) -> Result<(), CliError> {
    match command {
        ListenerCommand::Add { channel } => {
            let id = endpoints.socket.register(&channel).await?;
            print_line(&id)
        }
        ListenerCommand::Rm { channel, listener } => {
            endpoints
                .http("listener rm")
                .remove_listener(&channel, &listener)
                .await
        }
    }
}

/// `eric dispatch CHANNEL LISTENER TYPE [PAYLOAD]`
pub async fn dispatch(
    endpoints: &Endpoints,
    channel: &str,
    listener: &str,
    msg_type: &str,
    payload: Option<&str>,
) -> Result<(), CliError> {
    let payload = read_payload(payload)?;
    endpoints
        .socket
        .dispatch(channel, listener, msg_type, payload)
        .await?;
    Ok(())
}

/// `eric broadcast CHANNEL TYPE [PAYLOAD]`
pub async fn broadcast(
    endpoints: &Endpoints,
    channel: &str,
    msg_type: &str,
    payload: Option<&str>,
) -> Result<(), CliError> {
    let payload = read_payload(payload)?;
    endpoints
        .socket
        .broadcast(channel, msg_type, payload)
        .await?;
    Ok(())
}

/// `eric listen CHANNEL LISTENER`
pub async fn listen(
    endpoints: &Endpoints,
    channel: &str,
    listener: &str,
    output: &StreamOutput,
) -> Result<(), CliError> {
    let termination = signals::install().await?;
    let events = endpoints.socket.listen(channel, listener).await?;
    print_stream(events, output, termination).await
}

/// `eric watch CHANNEL`
pub async fn watch(
    endpoints: &Endpoints,
    channel: &str,
    output: &StreamOutput,
) -> Result<(), CliError> {
    let termination = signals::install().await?;
    let events = endpoints.socket.watch(channel).await?;
    print_stream(events, output, termination).await
}

/// Prints events until the server ends the stream, `--count` events were printed,
/// stdout is closed, or a signal comes: each of these is a success.
async fn print_stream(
    mut events: EventStream,
    output: &StreamOutput,
    mut termination: signals::Termination,
) -> Result<(), CliError> {
    let mut printed = 0u64;
    let mut line = String::new();
    while output.count.is_none_or(|count| printed < count) {
        let event = tokio::select! {
            _ = &mut termination => return Ok(()),
            event = events.next_event() => event,
        };
        let Some(event) = event else {
            return Ok(());
        };
        line.clear();
        format_event(&mut line, &event?, output.json);
        match write_line(&line) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(error) => return Err(CliError::io("cannot write to stdout", error)),
        }
        printed += 1;
    }
    Ok(())
}

/// One line for an event: `EVENT DATA` (data as compact JSON), or the event's JSON line.
pub fn format_event(out: &mut String, event: &SseEvent, json: bool) {
    if json {
        out.push_str(&serde_json::to_string(event).expect("an event always serialises"));
    } else {
        out.push_str(event.event());
        out.push(' ');
        out.push_str(&event.data().to_string());
    }
}

fn write_line(line: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// Prints one line of a command's answer; a closed stdout is not worth a failure.
fn print_line(text: &str) -> Result<(), CliError> {
    match write_line(text) {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(CliError::new(
            Exit::Io,
            format!("cannot write to stdout: {error}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_reads_as_its_type_and_compact_json_data() {
        let mut line = String::new();
        format_event(
            &mut line,
            &SseEvent::new("greeting", json!({"hi": 1})),
            false,
        );
        assert_eq!(line, r#"greeting {"hi":1}"#);
    }

    #[test]
    fn with_json_an_event_is_its_wire_object() {
        let mut line = String::new();
        format_event(&mut line, &SseEvent::new("greeting", json!([1])), true);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], "greeting");
        assert_eq!(value["data"], json!([1]));
        assert!(value["retry"].is_u64());
    }
}
