//! A client of the command protocol: the reference's `SocketClient`, typed.

use crate::protocol::ACK;
use eric_sse::SseEvent;
use futures_core::Stream;
use serde_json::{json, Value};
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

/// Reads an error answer `Name('message')`, `Name("message")` or `Name()`.
fn parse_error_answer(answer: &str) -> Option<ClientError> {
    let open = answer.find('(')?;
    let name = &answer[..open];
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || !answer.ends_with(')')
    {
        return None;
    }
    let inner = &answer[open + 1..answer.len() - 1];
    let message = match inner.chars().next() {
        None => String::new(),
        Some(quote @ ('\'' | '"')) if inner.len() >= 2 && inner.ends_with(quote) => {
            unescape_python(&inner[1..inner.len() - 1])
        }
        Some(_) => inner.to_owned(),
    };
    Some(ClientError::Server {
        name: name.to_owned(),
        message,
    })
}

fn unescape_python(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
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
/// let mut events = client.watch(&channel).await?;
/// client.broadcast(&channel, "greeting", json!({"text": "hi"})).await?;
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

    async fn send(&self, command: &Value) -> Result<UnixStream, ClientError> {
        let mut stream = UnixStream::connect(&self.path)
            .await
            .map_err(|e| self.io_error(e))?;
        let bytes = serde_json::to_vec(command).expect("a JSON value always serialises");
        stream
            .write_all(&bytes)
            .await
            .map_err(|e| self.io_error(e))?;
        stream.shutdown().await.map_err(|e| self.io_error(e))?;
        Ok(stream)
    }

    /// Sends a raw command object and returns the whole answer, as the reference's
    /// `send_payload` does. Error answers are returned as text, not parsed.
    pub async fn send_payload(&self, command: &Value) -> Result<String, ClientError> {
        let mut stream = self.send(command).await?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .map_err(|e| self.io_error(e))?;
        Ok(answer)
    }

    async fn request(&self, command: Value) -> Result<String, ClientError> {
        let answer = self.send_payload(&command).await?;
        match parse_error_answer(&answer) {
            Some(error) => Err(error),
            None if answer.is_empty() => Err(ClientError::UnexpectedAnswer(answer)),
            None => Ok(answer),
        }
    }

    async fn expect_ack(&self, command: Value) -> Result<(), ClientError> {
        match self.request(command).await? {
            answer if answer == ACK => Ok(()),
            other => Err(ClientError::UnexpectedAnswer(other)),
        }
    }

    /// `c`: creates a channel and returns its id.
    pub async fn create_channel(&self) -> Result<String, ClientError> {
        self.request(json!({"v": "c"})).await
    }

    /// `r`: registers a new listener on `channel` and returns its id.
    pub async fn register(&self, channel: &str) -> Result<String, ClientError> {
        self.request(json!({"v": "r", "c": channel})).await
    }

    /// `d`: queues a message for one listener.
    pub async fn dispatch(
        &self,
        channel: &str,
        listener: &str,
        msg_type: &str,
        payload: Value,
    ) -> Result<(), ClientError> {
        self.expect_ack(json!({"v": "d", "c": channel, "r": listener, "t": msg_type, "p": payload}))
            .await
    }

    /// `b`: queues a message for every listener of `channel`.
    pub async fn broadcast(
        &self,
        channel: &str,
        msg_type: &str,
        payload: Value,
    ) -> Result<(), ClientError> {
        self.expect_ack(json!({"v": "b", "c": channel, "t": msg_type, "p": payload}))
            .await
    }

    /// `l`: starts `listener` and streams its queue.
    pub async fn listen(&self, channel: &str, listener: &str) -> Result<EventStream, ClientError> {
        self.open_stream(json!({"v": "l", "c": channel, "r": listener}))
            .await
    }

    /// `w`: streams a new listener of `channel`, removed when the stream is dropped.
    pub async fn watch(&self, channel: &str) -> Result<EventStream, ClientError> {
        self.open_stream(json!({"v": "w", "c": channel})).await
    }

    async fn open_stream(&self, command: Value) -> Result<EventStream, ClientError> {
        let stream = self.send(&command).await?;
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
        if let Ok(event) = serde_json::from_str::<SseEvent>(&line) {
            return Ok(event);
        }
        Err(parse_error_answer(&line).unwrap_or(ClientError::UnexpectedAnswer(line)))
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
        let Some(ClientError::Server { name, message }) =
            parse_error_answer("InvalidChannelException('No channel with id 9')")
        else {
            panic!("not parsed")
        };
        assert_eq!(
            (name.as_str(), message.as_str()),
            ("InvalidChannelException", "No channel with id 9")
        );
        assert!(matches!(
            parse_error_answer("InvalidListenerException()"),
            Some(ClientError::Server { message, .. }) if message.is_empty()
        ));
        assert!(matches!(
            parse_error_answer(r#"InvalidMessageFormat("it's")"#),
            Some(ClientError::Server { message, .. }) if message == "it's"
        ));
        assert!(parse_error_answer("12").is_none());
        assert!(parse_error_answer("ack").is_none());
    }
}
