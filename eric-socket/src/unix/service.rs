//! The command service of the Unix server: what serving a connection takes once it is
//! accepted, shared by the accept thread and the runtime's tasks.

use crate::container::ChannelContainer;
use crate::metrics::{DisconnectReason, Transport};
use crate::protocol::{self, Command, Outcome, ProtocolError};
use crate::shutdown::{ShutdownHandle, Undelivered};
use eric_core::MessageStream;
use eric_sse::SseAdapter;
use futures_core::Stream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// A command read until the client half-closes. `Ok(Err(_))` is a command refused for
/// its size.
pub(crate) type ReadCommand = io::Result<Result<Vec<u8>, ProtocolError>>;

/// What the client is sent for a command's outcome or refusal.
fn reply(outcome: Result<Outcome, ProtocolError>) -> Reply {
    match outcome {
        Ok(Outcome::Text(text)) => Reply::Bytes(protocol::answer_bytes(Ok(text))),
        Ok(Outcome::Stream(events)) => Reply::Stream(events),
        Err(error) => {
            tracing::debug!(error = ?error, "command refused");
            Reply::Bytes(protocol::answer_bytes(Err(error)))
        }
    }
}

/// The bytes of one command, bounded by the size limit.
pub(crate) struct CommandBuffer {
    raw: Vec<u8>,
    limit: usize,
}

impl CommandBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        CommandBuffer {
            raw: Vec::with_capacity(512),
            limit,
        }
    }

    /// Takes `read` bytes of `chunk`; `Some` once the command is complete or refused.
    fn absorb(&mut self, chunk: &[u8], read: usize) -> Option<ReadCommand> {
        if read == 0 {
            return Some(Ok(Ok(std::mem::take(&mut self.raw))));
        }
        if self.raw.len() + read > self.limit {
            return Some(Ok(Err(ProtocolError::invalid_format(format!(
                "command larger than {} bytes: refused",
                self.limit
            )))));
        }
        self.raw.extend_from_slice(&chunk[..read]);
        None
    }

    /// Reads until the command is complete or refused.
    async fn read_rest(&mut self, stream: &mut UnixStream) -> ReadCommand {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let read = stream.read(&mut chunk).await?;
            if let Some(done) = self.absorb(&chunk, read) {
                return done;
            }
        }
    }
}

/// What a connection's answer is, once its command is read.
pub(crate) enum Reply {
    /// Bytes to write before closing: an id, `ack`, an error.
    Bytes(Vec<u8>),
    /// An `l` or `w` stream.
    Stream(MessageStream<SseAdapter>),
}

/// What the runtime still has to do for a connection the accept thread could not finish.
pub(crate) enum Handoff {
    /// The command is not complete: read the rest, under the read timeout, and answer.
    Read(CommandBuffer),
    /// The command was executed: what is left of its answer (the part of an answer that
    /// did not fit the socket buffer, or a stream).
    Reply(Reply),
}

/// The service every connection of a Unix server shares: it executes commands against
/// the container and writes their answers and streams. Cloned into each task.
#[derive(Clone)]
pub(crate) struct CommandService {
    container: Arc<ChannelContainer>,
    shutdown: ShutdownHandle,
    read_timeout: Duration,
    max_command_bytes: usize,
    undelivered: Undelivered,
}

impl CommandService {
    /// A service over `container` that stops its streams when `shutdown` fires.
    pub(crate) fn new(
        container: Arc<ChannelContainer>,
        shutdown: ShutdownHandle,
        read_timeout: Duration,
        max_command_bytes: usize,
    ) -> Self {
        CommandService {
            container,
            shutdown,
            read_timeout,
            max_command_bytes,
            undelivered: Undelivered::default(),
        }
    }

    /// Logs the refusals by full queues that wait for their summary (the server stops).
    pub(crate) fn flush_refusals(&self) {
        self.container.flush_refusals();
    }

    /// What the streams could not deliver at shutdown.
    pub(crate) fn undelivered(&self) -> &Undelivered {
        &self.undelivered
    }

    /// The size limit of a command.
    pub(crate) fn max_command_bytes(&self) -> usize {
        self.max_command_bytes
    }

    /// Executes a command read whole, or turns a refused read into its error answer;
    /// `None` if the connection failed and gets no answer.
    pub(crate) fn answer(&self, read: ReadCommand) -> Option<Reply> {
        match read {
            Ok(Ok(raw)) => Some(self.execute(&raw)),
            Ok(Err(refused)) => Some(reply(Err(refused))),
            Err(error) => {
                tracing::debug!(%error, "connection failed while reading");
                None
            }
        }
    }

    /// Executes a whole command (at most `max_command_bytes` long). Once shutdown is
    /// asked for, `b` and `d` are refused: their message would be acknowledged, then
    /// lost with the queues, since the streams that could write it are ending.
    pub(crate) fn execute(&self, raw: &[u8]) -> Reply {
        let outcome = match self.shutdown.admit() {
            // Held while the command runs: the streams drain only after it queued its message.
            Some(_admitted) => protocol::handle(&self.container, raw),
            None if publishes(raw) => Err(ProtocolError::new(
                "ServerShuttingDownException",
                "the server is shutting down: the message was not queued",
            )),
            None => protocol::handle(&self.container, raw),
        };
        reply(outcome)
    }

    /// Serves the rest of a connection the accept thread handed off. The connection
    /// closes when the stream is dropped, which ends the client's read as a shutdown
    /// would, one system call cheaper.
    pub(crate) async fn finish(self, stream: std::os::unix::net::UnixStream, handoff: Handoff) {
        let mut stream = match UnixStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot register the connection");
                return;
            }
        };
        let reply = match handoff {
            Handoff::Reply(reply) => reply,
            Handoff::Read(mut command) => {
                // The read timeout is armed only here, for a command still arriving.
                let read = tokio::time::timeout(self.read_timeout, command.read_rest(&mut stream))
                    .await
                    .unwrap_or_else(|_| Ok(Err(self.timeout_error())));
                match self.answer(read) {
                    Some(reply) => reply,
                    None => return,
                }
            }
        };
        let result = match reply {
            Reply::Bytes(bytes) => stream.write_all(&bytes).await,
            Reply::Stream(events) => self.stream(stream, events).await,
        };
        if let Err(error) = result {
            tracing::debug!(%error, "connection ended with an error");
        }
    }

    fn timeout_error(&self) -> ProtocolError {
        ProtocolError::new(
            "TimeoutError",
            format!(
                "no complete command within {:?}: write one JSON object, then half-close the connection (shutdown SHUT_WR)",
                self.read_timeout
            ),
        )
    }

    /// Writes the stream's events, one JSON line each, until the stream ends or the
    /// client goes away; at shutdown, until what its queue holds is written.
    async fn stream(
        &self,
        stream: UnixStream,
        events: MessageStream<SseAdapter>,
    ) -> io::Result<()> {
        let (stream, watcher) = split_watcher(stream)?;
        let mut stream = stream;
        let metrics = self.container.metrics();
        metrics.stream_opened(Transport::Socket, events.channel().id());
        let mut out = Outgoing {
            events,
            unwritten: 0,
            shutdown: &self.shutdown,
            undelivered: &self.undelivered,
            container: &self.container,
        };
        let client_gone = client_gone(&watcher);
        tokio::pin!(client_gone);
        let settled = self.shutdown.settled();
        tokio::pin!(settled);
        let mut draining = false;
        let mut buf = Vec::with_capacity(16 * 1024);
        loop {
            let event = if draining {
                // Nothing more is published once shutdown has settled: the queue only shrinks.
                match out.events.try_recv() {
                    Some(event) => event,
                    None => break,
                }
            } else {
                let event = tokio::select! {
                    biased;
                    _ = &mut settled => {
                        draining = true;
                        metrics.disconnected(DisconnectReason::Shutdown);
                        continue;
                    }
                    _ = &mut client_gone => {
                        tracing::debug!(listener = ?out.events.listener().id(), "stream client left");
                        return Ok(());
                    }
                    event = next_event(&mut out.events) => event,
                };
                match event {
                    Some(event) => event,
                    None => break,
                }
            };
            protocol::write_stream_line(&mut buf, &event);
            out.unwritten = 1;
            // Write what else is ready in the same system call.
            while buf.len() < 64 * 1024 {
                match out.events.try_recv() {
                    Some(event) => {
                        protocol::write_stream_line(&mut buf, &event);
                        out.unwritten += 1;
                    }
                    None => break,
                }
            }
            stream.write_all(&buf).await?;
            metrics.delivered(Transport::Socket, out.unwritten as u64);
            out.unwritten = 0;
            buf.clear();
        }
        stream.shutdown().await
    }
}

/// A stream's events, and the lines taken from them but not written yet: what is left
/// when a stream ends during shutdown (its client left, or the grace period ran out) is
/// counted as not delivered.
struct Outgoing<'a> {
    events: MessageStream<SseAdapter>,
    unwritten: usize,
    shutdown: &'a ShutdownHandle,
    undelivered: &'a Undelivered,
    /// Where the stream is counted as open until it ends.
    container: &'a ChannelContainer,
}

impl Drop for Outgoing<'_> {
    fn drop(&mut self) {
        if self.shutdown.is_shutdown() {
            self.undelivered.add(self.unwritten + self.events.pending());
        }
        self.container
            .metrics()
            .stream_closed(Transport::Socket, self.events.channel().id());
    }
}

/// Whether `raw` is a command that publishes a message (`b`, `d`).
fn publishes(raw: &[u8]) -> bool {
    matches!(
        protocol::parse(raw),
        Ok(Command::Broadcast { .. } | Command::Dispatch { .. })
    )
}

async fn next_event(events: &mut MessageStream<SseAdapter>) -> Option<eric_sse::SseEvent> {
    std::future::poll_fn(|cx| Pin::new(&mut *events).poll_next(cx)).await
}

/// A second handle on the connection's socket, only to notice a hang-up: the client
/// half-closed long ago, so reading cannot tell it left; its full close shows as
/// `EPOLLHUP`, which this handle waits for without disturbing the writer's readiness.
fn split_watcher(stream: UnixStream) -> io::Result<(UnixStream, UnixStream)> {
    let std_stream = stream.into_std()?;
    let watcher = std_stream.try_clone()?;
    Ok((
        UnixStream::from_std(std_stream)?,
        UnixStream::from_std(watcher)?,
    ))
}

async fn client_gone(watcher: &UnixStream) {
    loop {
        match watcher.ready(Interest::WRITABLE).await {
            Ok(ready) if ready.is_write_closed() => return,
            Ok(_) => {
                // Consume this readiness so the next wait is for a new event.
                let _ = watcher.try_io(Interest::WRITABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
            Err(_) => return,
        }
    }
}
