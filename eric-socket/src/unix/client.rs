//! A client of the command protocol: the reference's `SocketClient`, typed. It writes
//! and reads the wire through [`crate::protocol`], the same definitions the server uses.

use crate::protocol::{self, Command, ProtocolError, ACK};
use crate::pyjson::write_python_json;
use eric_core::Message;
use eric_sse::SseEvent;
use futures_core::Stream;
use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;

/// What can go wrong talking to a server.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing listens at the path.
    #[error("no server at {}: start one with `eric serve`", path.display())]
    NoServer {
        /// The socket path tried.
        path: PathBuf,
    },
    /// The connection failed.
    #[error("talking to the server at {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The server refused the command; `name` is its exception name
    /// (`InvalidChannelException`, `InvalidListenerException`, `InvalidMessageFormat`, ...).
    #[error("{name}: {message}")]
    Server {
        /// Exception name.
        name: String,
        /// What the server said.
        message: String,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the server: {0:?}")]
    UnexpectedAnswer(String),
}

impl From<ProtocolError> for ClientError {
    fn from(error: ProtocolError) -> Self {
        ClientError::Server {
            name: error.name.into_owned(),
            message: error.message,
        }
    }
}

/// A client of an eric (or eric-sse 0.6.0.3) socket server.
///
/// Each call opens a connection, sends one command and half-closes, as the protocol asks.
///
/// ```no_run
/// # async fn demo() -> Result<(), eric_socket::ClientError> {
/// use eric_socket::SocketClient;
/// use serde_json::json;
///
/// let client = SocketClient::new("/tmp/eric.sock");
/// let channel = client.create_channel().await?;
/// let listener = client.register(&channel).await?;
/// client.broadcast(&channel, "greeting", json!({"text": "hi"})).await?;
/// let mut events = client.listen(&channel, &listener).await?;
/// let event = events.next_event().await.unwrap()?;
/// assert_eq!(event.event(), "greeting");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SocketClient {
    path: PathBuf,
}

impl SocketClient {
    /// A client of the server at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SocketClient { path: path.into() }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NoServer {
                path: self.path.clone(),
            },
            _ => ClientError::Io {
                path: self.path.clone(),
                source,
            },
        }
    }

    /// Connects, writes `command` and half-closes, as the protocol asks.
    async fn send(&self, command: &[u8]) -> Result<UnixStream, ClientError> {
        let mut stream = UnixStream::connect(&self.path)
            .await
            .map_err(|e| self.io_error(e))?;
        stream
            .write_all(command)
            .await
            .map_err(|e| self.io_error(e))?;
        stream.shutdown().await.map_err(|e| self.io_error(e))?;
        Ok(stream)
    }

    /// Sends `command` and returns the whole answer as text.
    async fn exchange(&self, command: &[u8]) -> Result<String, ClientError> {
        let mut stream = self.send(command).await?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .map_err(|e| self.io_error(e))?;
        Ok(answer)
    }

    /// Sends a raw command object, written as Python's `json.dumps` writes it, and
    /// returns the whole answer, as the reference's `send_payload` does. Error answers
    /// are returned as text, not parsed.
    pub async fn send_payload(&self, command: &Value) -> Result<String, ClientError> {
        let mut bytes = Vec::new();
        write_python_json(&mut bytes, command).expect("a JSON value always serialises");
        self.exchange(&bytes).await
    }

    /// Sends `command` and reads its one-shot answer: an id or `ack`, or the server's
    /// error.
    async fn request(&self, command: Command) -> Result<String, ClientError> {
        let answer = self.exchange(&command.to_bytes()).await?;
        match protocol::parse_answer(&answer) {
            Err(error) => Err(error.into()),
            Ok("") => Err(ClientError::UnexpectedAnswer(answer)),
            Ok(_) => Ok(answer),
        }
    }

    async fn expect_ack(&self, command: Command) -> Result<(), ClientError> {
        match self.request(command).await? {
            answer if answer == ACK => Ok(()),
            other => Err(ClientError::UnexpectedAnswer(other)),
        }
    }

    /// `c`: creates a channel and returns its id.
    pub async fn create_channel(&self) -> Result<String, ClientError> {
        self.request(Command::CreateChannel).await
    }

    /// `r`: registers a new listener on `channel` and returns its id.
    pub async fn register(&self, channel: &str) -> Result<String, ClientError> {
        self.request(Command::Register {
            channel: channel.to_owned(),
        })
        .await
    }

    /// `d`: queues a message for one listener.
    pub async fn dispatch(
        &self,
        channel: &str,
        listener: &str,
        msg_type: &str,
        payload: Value,
    ) -> Result<(), ClientError> {
        self.expect_ack(Command::Dispatch {
            channel: channel.to_owned(),
            receiver: listener.to_owned(),
            message: Message::new(msg_type, payload),
        })
        .await
    }

    /// `b`: queues a message for every listener of `channel`.
    pub async fn broadcast(
        &self,
        channel: &str,
        msg_type: &str,
        payload: Value,
    ) -> Result<(), ClientError> {
        self.expect_ack(Command::Broadcast {
            channel: channel.to_owned(),
            message: Message::new(msg_type, payload),
        })
        .await
    }

    /// `l`: starts `listener` and streams its queue.
    pub async fn listen(&self, channel: &str, listener: &str) -> Result<EventStream, ClientError> {
        self.open_stream(Command::Listen {
            channel: channel.to_owned(),
            receiver: listener.to_owned(),
        })
        .await
    }

    /// `w`: streams a new listener of `channel`, removed when the stream is dropped.
    ///
    /// The protocol does not acknowledge `w`: this returns once the command is sent, and
    /// a broadcast sent right after may reach the server before the listener exists. To
    /// miss nothing, `register` a listener first and [`listen`](Self::listen) to it.
    pub async fn watch(&self, channel: &str) -> Result<EventStream, ClientError> {
        self.open_stream(Command::Watch {
            channel: channel.to_owned(),
        })
        .await
    }

    async fn open_stream(&self, command: Command) -> Result<EventStream, ClientError> {
        let stream = self.send(&command.to_bytes()).await?;
        Ok(EventStream {
            lines: BufReader::new(stream).lines(),
            path: self.path.clone(),
        })
    }
}

/// The events of an `l` or `w` stream, parsed from their JSON lines. An error answer
/// (unknown channel, ...) comes as the first item, an `Err`.
#[derive(Debug)]
pub struct EventStream {
    lines: Lines<BufReader<UnixStream>>,
    path: PathBuf,
}

impl EventStream {
    /// The next event; `None` when the server ends the stream.
    pub async fn next_event(&mut self) -> Option<Result<SseEvent, ClientError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    fn parse_line(&self, line: String) -> Result<SseEvent, ClientError> {
        match protocol::parse_stream_line(&line) {
            Some(Ok(event)) => Ok(event),
            Some(Err(error)) => Err(error.into()),
            None => Err(ClientError::UnexpectedAnswer(line)),
        }
    }
}

impl Stream for EventStream {
    type Item = Result<SseEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.lines).poll_next_line(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Ok(Some(line))) => Poll::Ready(Some(self.parse_line(line))),
            Poll::Ready(Err(source)) => Poll::Ready(Some(Err(ClientError::Io {
                path: self.path.clone(),
                source,
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_read_back_into_name_and_message() {
        fn server(answer: &str) -> Result<&str, ClientError> {
            protocol::parse_answer(answer).map_err(ClientError::from)
        }
        let Err(ClientError::Server { name, message }) =
            server("InvalidChannelException('No channel with id 9')")
        else {
            panic!("not parsed")
        };
        assert_eq!(
            (name.as_str(), message.as_str()),
            ("InvalidChannelException", "No channel with id 9")
        );
        assert!(matches!(
            server("InvalidListenerException()"),
            Err(ClientError::Server { message, .. }) if message.is_empty()
        ));
        assert!(matches!(
            server(r#"InvalidMessageFormat("it's")"#),
            Err(ClientError::Server { message, .. }) if message == "it's"
        ));
        assert!(matches!(server("12"), Ok("12")));
        assert!(matches!(server("ack"), Ok("ack")));
    }
}
