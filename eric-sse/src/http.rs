//! A `text/event-stream` HTTP body for hyper 1.x (feature `http`).
//!
//! [`SseBody`] turns a stream of [`SseEvent`]s into an [`http_body::Body`]:
//!
//! - the first frame is `retry: <ms>` alone, written on the body's very first poll,
//!   whether an event is ready or not: [`SseBodyConfig::retry_ms`] raised to
//!   [`SseBodyConfig::retry_floor_ms`], or the floor itself (1 s by default: the
//!   reference's 5 ms would make a browser hammer the server). So a client has body bytes
//!   as soon as it has the headers, and knows the reconnection time even if the connection
//!   drops before the first event. It is written once per connection; events carry no
//!   `retry:` of their own (their [`retry`](SseEvent::retry) is for the JSON form);
//! - each event goes out as soon as the stream yields it; events that are ready together
//!   share a frame, up to [`SseBodyConfig::max_frame_bytes`];
//! - after [`SseBodyConfig::keep_alive`] without an event (15 s by default) a `: keep-alive`
//!   comment is sent, so proxies and browsers keep an idle connection open;
//! - when the event stream ends, the body ends.
//!
//! # Failure semantics
//! An event that cannot be encoded (an event name with a line break, see
//! [`EncodeError`](crate::EncodeError)) is skipped: in its place the body writes a comment
//! line naming the error (`: eric-sse: event skipped: ...`), which clients ignore, and
//! goes on with the next event. The stream is never corrupted and never cut for it.
//! Nothing is logged (this crate has no logging dependency): a server that wants to see
//! such events should check them before they reach the body.
//!
//! # Runtime
//! The keep-alive timer is a [`tokio::time::Sleep`]: with `keep_alive` set, the body must
//! be polled inside a tokio runtime with the time driver enabled (as hyper servers on
//! tokio are). With `keep_alive: None` the body needs no runtime.
//!
//! ```
//! use eric_sse::http::{sse_response, SseBody};
//! use eric_sse::SseEvent;
//!
//! fn handler<S>(events: S) -> http::Response<SseBody<S>>
//! where
//!     S: futures_core::Stream<Item = SseEvent> + Send + Unpin,
//! {
//!     sse_response(SseBody::new(events))
//! }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Body, Frame};
use tokio::time::{Instant, Sleep};

use crate::{Encoder, SseEvent};

/// How an [`SseBody`] writes its stream.
///
/// Set fields one by one, or chain the `with_` methods:
/// ```
/// use std::time::Duration;
/// use eric_sse::http::SseBodyConfig;
/// use eric_sse::{DataMode, Encoder};
///
/// let config = SseBodyConfig::default()
///     .with_keep_alive(Some(Duration::from_secs(30)))
///     .with_retry_floor_ms(2_000)
///     .with_encoder(Encoder::new().with_data_mode(DataMode::RawText));
/// assert_eq!(config.retry_floor_ms, 2_000);
///
/// let mut config = SseBodyConfig::default();
/// config.keep_alive = None;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SseBodyConfig {
    /// The least reconnection time written, in milliseconds. Default: 1,000.
    pub retry_floor_ms: u64,
    /// The reconnection time to write, in milliseconds, raised to `retry_floor_ms`; when
    /// `None` (the default), the floor. (It is written before any event is known, so the
    /// events' own [`retry`](SseEvent::retry) is not consulted.)
    pub retry_ms: Option<u64>,
    /// Silence after which a keep-alive comment is written; `None` for none.
    /// Default: 15 s.
    pub keep_alive: Option<Duration>,
    /// How events are encoded (data as JSON by default).
    pub encoder: Encoder,
    /// A frame takes more ready events while it is smaller than this. Default: 64 KiB.
    pub max_frame_bytes: usize,
}

impl Default for SseBodyConfig {
    fn default() -> Self {
        SseBodyConfig {
            retry_floor_ms: 1_000,
            retry_ms: None,
            keep_alive: Some(Duration::from_secs(15)),
            encoder: Encoder::new(),
            max_frame_bytes: 64 * 1024,
        }
    }
}

impl SseBodyConfig {
    /// This configuration with [`retry_floor_ms`](Self::retry_floor_ms) set.
    #[must_use]
    pub fn with_retry_floor_ms(mut self, ms: u64) -> Self {
        self.retry_floor_ms = ms;
        self
    }

    /// This configuration with [`retry_ms`](Self::retry_ms) set.
    #[must_use]
    pub fn with_retry_ms(mut self, ms: Option<u64>) -> Self {
        self.retry_ms = ms;
        self
    }

    /// This configuration with [`keep_alive`](Self::keep_alive) set.
    #[must_use]
    pub fn with_keep_alive(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive = interval;
        self
    }

    /// This configuration with [`encoder`](Self::encoder) set.
    #[must_use]
    pub fn with_encoder(mut self, encoder: Encoder) -> Self {
        self.encoder = encoder;
        self
    }

    /// This configuration with [`max_frame_bytes`](Self::max_frame_bytes) set.
    #[must_use]
    pub fn with_max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }
}

/// The comment written after `keep_alive` of silence.
pub const KEEP_ALIVE_COMMENT: &str = "keep-alive";

/// An HTTP body that streams events as `text/event-stream`; see the
/// [module documentation](self) for what it writes and when.
///
/// Build the response with [`sse_response`], which sets the headers a stream needs.
#[derive(Debug)]
pub struct SseBody<S> {
    /// `None` once the event stream has ended.
    events: Option<S>,
    writer: Writer,
}

/// The part of the body that writes; apart from the stream, so both can be borrowed.
#[derive(Debug)]
struct Writer {
    config: SseBodyConfig,
    /// Whether the opening `retry:` frame has been returned.
    retry_sent: bool,
    /// Created on the first idle poll (it needs the runtime's timer).
    keep_alive: Option<Pin<Box<Sleep>>>,
    /// When the last frame went out, once the timer exists. A frame notes the time
    /// and leaves the timer be; when the timer fires it moves itself on to this time
    /// plus the interval, if a frame went out since it was set. Resetting a tokio timer
    /// takes the timer wheel's lock and moves its entry, too much to do per frame.
    last_frame: Option<Instant>,
}

impl<S> SseBody<S> {
    /// A body for `events` with the default configuration.
    pub fn new(events: S) -> Self {
        SseBody::with_config(events, SseBodyConfig::default())
    }

    /// A body for `events` written as `config` says.
    pub fn with_config(events: S, config: SseBodyConfig) -> Self {
        SseBody {
            events: Some(events),
            writer: Writer {
                config,
                retry_sent: false,
                keep_alive: None,
                last_frame: None,
            },
        }
    }

    /// The configuration of this body.
    pub fn config(&self) -> &SseBodyConfig {
        &self.writer.config
    }
}

/// A stream of events that can hand over every event ready at once, which
/// [`SseBody::poll_batched_pieces`] writes without one poll per event.
///
/// [`MessageStream`](eric_core::MessageStream)s of an [`SseChannel`](crate::SseChannel)
/// are such streams.
pub trait EventBatches: Stream<Item = SseEvent> + Unpin {
    /// Hands the events ready now to `each`, in order, until `each` breaks, none is
    /// ready or the stream ends; the same events as [`poll_next`](Stream::poll_next)
    /// called in a loop. `Ready(Some(n))` when it handed over `n >= 1` events,
    /// `Ready(None)` once the stream has ended, `Pending` when none is ready.
    fn poll_each(
        &mut self,
        cx: &mut Context<'_>,
        each: impl FnMut(SseEvent) -> ControlFlow<()>,
    ) -> Poll<Option<usize>>;
}

impl EventBatches for eric_core::MessageStream<crate::SseAdapter> {
    fn poll_each(
        &mut self,
        cx: &mut Context<'_>,
        each: impl FnMut(SseEvent) -> ControlFlow<()>,
    ) -> Poll<Option<usize>> {
        eric_core::MessageStream::poll_each(self, cx, each)
    }
}

impl<S> SseBody<S>
where
    S: Stream<Item = SseEvent> + Unpin,
{
    /// Polls for the body's next frame as shared buffers: appends to `pieces` what
    /// [`poll_frame`](Body::poll_frame) would return as one frame, in pieces. An event's
    /// piece is the same buffer for every body that writes that event of a channel (see
    /// [`Encoder::encode_event_shared`]), so a server writing one event to many
    /// subscribers can hand each connection the same bytes in a vectored write, copying
    /// nothing.
    ///
    /// `Ready(Some(()))` when pieces were appended, `Ready(None)` once the body ended.
    pub fn poll_pieces(
        &mut self,
        cx: &mut Context<'_>,
        pieces: &mut Vec<Bytes>,
    ) -> Poll<Option<()>> {
        self.poll_pieces_with(cx, pieces, |events, cx, each| loop {
            match Pin::new(&mut *events).poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    if each(event).is_break() {
                        return false;
                    }
                }
                Poll::Ready(None) => return true,
                Poll::Pending => return false,
            }
        })
    }

    /// Appends to `pieces` what goes out next: the opening `retry:`, the events ready
    /// now up to the frame's bound, or a keep-alive. `pull` hands the events ready now
    /// to its sink until the sink breaks, and says whether the stream has ended.
    fn poll_pieces_with(
        &mut self,
        cx: &mut Context<'_>,
        pieces: &mut Vec<Bytes>,
        pull: impl FnOnce(&mut S, &mut Context<'_>, &mut dyn FnMut(SseEvent) -> ControlFlow<()>) -> bool,
    ) -> Poll<Option<()>> {
        let writer = &mut self.writer;
        let Some(events) = self.events.as_mut() else {
            return Poll::Ready(None);
        };
        if !writer.retry_sent {
            // Its own frame, before the stream is polled: the client learns the
            // reconnection time now, not with the first event or keep-alive.
            pieces.push(writer.retry());
            return Poll::Ready(Some(()));
        }
        let max_frame_bytes = writer.config.max_frame_bytes;
        let mut len = 0;
        let mut add = |event: SseEvent| {
            let piece = writer.event(&event);
            len += piece.len();
            pieces.push(piece);
            if len < max_frame_bytes {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        };
        let ended = pull(events, cx, &mut add);
        if ended {
            self.events = None;
            writer.keep_alive = None;
        }
        if len > 0 {
            writer.wrote();
            return Poll::Ready(Some(()));
        }
        if ended {
            return Poll::Ready(None);
        }
        match writer.poll_keep_alive(cx) {
            Poll::Ready(comment) => {
                pieces.push(comment);
                writer.wrote();
                Poll::Ready(Some(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: EventBatches> SseBody<S> {
    /// [`poll_pieces`](Self::poll_pieces) for a stream that hands over what is ready at
    /// once: the same pieces, without one poll of the stream per event.
    pub fn poll_batched_pieces(
        &mut self,
        cx: &mut Context<'_>,
        pieces: &mut Vec<Bytes>,
    ) -> Poll<Option<()>> {
        self.poll_pieces_with(cx, pieces, |events, cx, each| {
            matches!(events.poll_each(cx, each), Poll::Ready(None))
        })
    }
}

impl Writer {
    /// The opening `retry:` line.
    fn retry(&mut self) -> Bytes {
        let config = &self.config;
        let ms = config.retry_ms.unwrap_or(0).max(config.retry_floor_ms);
        let mut buf = Vec::new();
        config.encoder.encode_retry(ms, &mut buf);
        self.retry_sent = true;
        Bytes::from(buf)
    }

    #[inline]
    fn event(&mut self, event: &SseEvent) -> Bytes {
        let encoder = self.config.encoder;
        match encoder.encode_event_shared(event) {
            Ok(bytes) => bytes,
            Err(error) => skipped_event(encoder, &error),
        }
    }

    /// Notes that a frame went out: the keep-alive silence starts again.
    fn wrote(&mut self) {
        if self.keep_alive.is_some() {
            self.last_frame = Some(Instant::now());
        }
    }

    /// Polls the keep-alive timer; when it fires, the comment to write.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> Poll<Bytes> {
        let Some(interval) = self.config.keep_alive else {
            return Poll::Pending;
        };
        let sleep = self
            .keep_alive
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer was set before the last frame: the silence is shorter.
            match self.last_frame.take() {
                Some(last) if last + interval > sleep.deadline() => {
                    sleep.as_mut().reset(last + interval);
                }
                _ => break,
            }
        }
        let mut buf = Vec::new();
        self.config
            .encoder
            .encode_comment(KEEP_ALIVE_COMMENT, &mut buf);
        Poll::Ready(Bytes::from(buf))
    }
}

impl<S> Body for SseBody<S>
where
    S: Stream<Item = SseEvent> + Unpin,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let mut pieces = Vec::new();
        match self.get_mut().poll_pieces(cx, &mut pieces) {
            Poll::Ready(Some(())) => {
                let data = match pieces.len() {
                    1 => pieces.swap_remove(0),
                    _ => Bytes::from(pieces.concat()),
                };
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_none()
    }
}

/// The comment written in place of an event that cannot be encoded.
#[cold]
fn skipped_event(encoder: Encoder, error: &crate::EncodeError) -> Bytes {
    let mut buf = Vec::new();
    encoder.encode_comment(&format!("eric-sse: event skipped: {error}"), &mut buf);
    Bytes::from(buf)
}

/// A `200 OK` response streaming `body`, with the headers an event stream needs:
/// `Content-Type: text/event-stream`, `Cache-Control: no-cache` and
/// `X-Accel-Buffering: no` (which stops nginx from buffering the stream).
pub fn sse_response<S>(body: SseBody<S>) -> http::Response<SseBody<S>> {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Parser;
    use http_body_util::BodyExt;
    use serde_json::json;
    use std::collections::VecDeque;
    use tokio::sync::mpsc;

    /// A stream of events already there, then the end.
    struct Ready(VecDeque<SseEvent>);

    impl Stream for Ready {
        type Item = SseEvent;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<SseEvent>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    /// The receiving end of a channel, as a stream.
    struct Rx(mpsc::UnboundedReceiver<SseEvent>);

    impl Stream for Rx {
        type Item = SseEvent;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SseEvent>> {
            self.0.poll_recv(cx)
        }
    }

    fn channel_body(config: SseBodyConfig) -> (mpsc::UnboundedSender<SseEvent>, SseBody<Rx>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, SseBody::with_config(Rx(rx), config))
    }

    fn no_keep_alive() -> SseBodyConfig {
        SseBodyConfig::default().with_keep_alive(None)
    }

    async fn next_frame<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Option<String>
    where
        B::Error: std::fmt::Debug,
    {
        let frame = body.frame().await?.unwrap();
        let data = frame.into_data().unwrap();
        Some(String::from_utf8(data.to_vec()).unwrap())
    }

    fn ready(events: impl IntoIterator<Item = SseEvent>) -> Ready {
        Ready(events.into_iter().collect())
    }

    #[tokio::test]
    async fn the_first_frame_is_the_retry_floor_alone_even_with_an_event_ready() {
        let mut body = SseBody::with_config(ready([SseEvent::new("a", 1)]), no_keep_alive());
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            "event: a\ndata: 1\n\n"
        );
        assert_eq!(next_frame(&mut body).await, None);
    }

    #[tokio::test]
    async fn configured_retry_is_raised_to_the_floor_and_the_events_retry_is_not_consulted() {
        let event = SseEvent::new("a", 1).with_retry(2_500);
        let retry_of = |config: SseBodyConfig| {
            let mut body = SseBody::with_config(ready([event.clone()]), config);
            async move { next_frame(&mut body).await.unwrap() }
        };
        assert_eq!(retry_of(no_keep_alive()).await, "retry: 1000\n\n");
        let config = no_keep_alive().with_retry_ms(Some(4_000));
        assert_eq!(retry_of(config).await, "retry: 4000\n\n");
        let config = no_keep_alive().with_retry_ms(Some(5));
        assert_eq!(retry_of(config).await, "retry: 1000\n\n");
        let config = no_keep_alive().with_retry_floor_ms(0);
        assert_eq!(retry_of(config).await, "retry: 0\n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_gets_the_retry_at_once_and_an_empty_one_still_gets_it() {
        let (tx, mut body) = channel_body(SseBodyConfig::default());
        let start = Instant::now();
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(!body.is_end_stream());
        drop(tx);
        assert_eq!(next_frame(&mut body).await, None);

        let mut body = SseBody::new(ready([]));
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        assert_eq!(next_frame(&mut body).await, None);
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn ready_events_share_one_frame_and_the_body_ends_with_the_stream() {
        let events = (1..=3).map(|i| SseEvent::new("n", i).with_id(i));
        let mut body = SseBody::with_config(ready(events), no_keep_alive());
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            "id: 1\nevent: n\ndata: 1\n\nid: 2\nevent: n\ndata: 2\n\n\
             id: 3\nevent: n\ndata: 3\n\n"
        );
        assert!(body.is_end_stream());
        assert_eq!(next_frame(&mut body).await, None);
    }

    #[tokio::test]
    async fn a_frame_stops_taking_events_past_max_frame_bytes() {
        let config = no_keep_alive().with_max_frame_bytes(1);
        let mut body = SseBody::with_config(ready([1, 2].map(|i| SseEvent::new("n", i))), config);
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            "event: n\ndata: 1\n\n"
        );
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            "event: n\ndata: 2\n\n"
        );
        assert_eq!(next_frame(&mut body).await, None);
    }

    /// One of `SseBody`'s ways to poll for pieces.
    type PollPieces<S> = fn(&mut SseBody<S>, &mut Context<'_>, &mut Vec<Bytes>) -> Poll<Option<()>>;

    /// The frames a body writes with `poll`, until no event is ready.
    fn frames_now<S: Stream<Item = SseEvent> + Unpin>(
        body: &mut SseBody<S>,
        poll: PollPieces<S>,
    ) -> Vec<String> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut frames = Vec::new();
        let mut pieces = Vec::new();
        while let Poll::Ready(Some(())) = poll(body, &mut cx, &mut pieces) {
            frames.push(String::from_utf8(pieces.concat()).unwrap());
            pieces.clear();
        }
        frames
    }

    #[tokio::test]
    async fn batched_pieces_are_the_frames_of_one_event_at_a_time() {
        let channel = crate::SseChannel::new();
        let (one, batched) = (channel.add_listener(), channel.add_listener());
        one.start();
        batched.start();
        for i in 0..40 {
            channel.broadcast(eric_core::Message::new("n", "x".repeat(i)));
        }
        // Frames end past 200 bytes, so the 40 events make several of them.
        let config = no_keep_alive().with_max_frame_bytes(200);
        let mut by_one = SseBody::with_config(channel.message_stream(&one), config.clone());
        let mut by_batch = SseBody::with_config(channel.message_stream(&batched), config);
        let expected = frames_now(&mut by_one, SseBody::poll_pieces);
        assert!(expected.len() > 3, "{expected:?}");
        assert_eq!(
            frames_now(&mut by_batch, SseBody::poll_batched_pieces),
            expected
        );

        channel.broadcast(eric_core::Message::new("n", "last"));
        batched.stop();
        let frames = frames_now(&mut by_batch, SseBody::poll_batched_pieces);
        assert!(
            frames.is_empty(),
            "a stopped listener's stream wrote {frames:?}"
        );
        assert!(by_batch.is_end_stream());
    }

    #[tokio::test]
    async fn each_event_is_its_own_frame_as_it_comes_and_retry_is_written_once() {
        let (tx, mut body) = channel_body(no_keep_alive());
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        tx.send(SseEvent::new("a", 1)).unwrap();
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            "event: a\ndata: 1\n\n"
        );
        tx.send(SseEvent::new("b", 2)).unwrap();
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            "event: b\ndata: 2\n\n"
        );
        drop(tx);
        assert_eq!(next_frame(&mut body).await, None);
    }

    #[tokio::test]
    async fn an_event_that_cannot_be_encoded_becomes_a_comment_and_the_stream_goes_on() {
        let events = [SseEvent::new("bad\nname", 1), SseEvent::new("good", 2)];
        let mut body = SseBody::with_config(ready(events), no_keep_alive());
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        let text = next_frame(&mut body).await.unwrap();
        assert_eq!(
            text,
            ": eric-sse: event skipped: cannot encode SSE field `event`: \
             the event name \"bad\\nname\" contains a line feed (LF)\n\n\
             event: good\ndata: 2\n\n"
        );
        let mut parser = Parser::new();
        parser.feed(text.as_bytes());
        let parsed: Vec<_> = parser.events().collect();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].event, "good");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_brings_a_keep_alive_comment_every_interval() {
        let (tx, mut body) = channel_body(SseBodyConfig::default());
        let start = Instant::now();
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        assert_eq!(next_frame(&mut body).await.unwrap(), ": keep-alive\n\n");
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        assert_eq!(next_frame(&mut body).await.unwrap(), ": keep-alive\n\n");
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_resets_the_keep_alive_timer() {
        let config = SseBodyConfig::default().with_keep_alive(Some(Duration::from_secs(10)));
        let (tx, mut body) = channel_body(config);
        let start = Instant::now();
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        // Start the timer with an idle poll, then send an event 6 s later.
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(6)).await;
            tx.send(SseEvent::new("a", 1)).unwrap();
            tx
        });
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            "event: a\ndata: 1\n\n"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(6));
        assert_eq!(next_frame(&mut body).await.unwrap(), ": keep-alive\n\n");
        assert_eq!(start.elapsed(), Duration::from_secs(16));
        drop(sender.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_keep_alive_comes_an_interval_after_the_last_of_many_events() {
        let config = SseBodyConfig::default().with_keep_alive(Some(Duration::from_secs(10)));
        let (tx, mut body) = channel_body(config);
        let start = Instant::now();
        assert_eq!(next_frame(&mut body).await.unwrap(), "retry: 1000\n\n");
        // Events at 4, 8, 12 and 16 s: each inside the silence the one before started.
        let sender = tokio::spawn(async move {
            for n in 1..=4 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tx.send(SseEvent::new("a", n)).unwrap();
            }
            tx
        });
        for n in 1..=4 {
            let frame = next_frame(&mut body).await.unwrap();
            assert_eq!(frame, format!("event: a\ndata: {n}\n\n"));
            assert_eq!(start.elapsed(), Duration::from_secs(4 * n));
        }
        assert_eq!(next_frame(&mut body).await.unwrap(), ": keep-alive\n\n");
        assert_eq!(start.elapsed(), Duration::from_secs(26));
        assert_eq!(next_frame(&mut body).await.unwrap(), ": keep-alive\n\n");
        assert_eq!(start.elapsed(), Duration::from_secs(36));
        drop(sender.await.unwrap());
    }

    #[test]
    fn sse_response_sets_the_stream_headers() {
        let response = sse_response(SseBody::new(ready([])));
        assert_eq!(response.status(), http::StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["x-accel-buffering"], "no");
    }

    /// Through a real hyper server and client, over an in-memory connection.
    #[tokio::test]
    async fn hyper_serves_the_body_and_a_parser_reads_the_events_back() {
        use hyper_util::rt::TokioIo;
        use std::sync::{Arc, Mutex};

        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(Some(Rx(rx))));
        let service = hyper::service::service_fn(move |_request| {
            let events = rx.lock().unwrap().take().expect("one request");
            async move {
                Ok::<_, Infallible>(sse_response(SseBody::with_config(events, no_keep_alive())))
            }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), service),
        );
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(client_io))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::get("/stream")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();

        let mut parser = Parser::new();
        // The retry arrives before any event is sent.
        parser.feed(next_frame(&mut body).await.unwrap().as_bytes());
        assert_eq!(parser.reconnection_time(), Some(1000));
        assert_eq!(parser.next_event(), None);
        for i in 1..=3u64 {
            tx.send(SseEvent::new("n", json!({"i": i})).with_id(i))
                .unwrap();
            // Each event arrives on its own, before the next is sent: nothing waits in a buffer.
            parser.feed(next_frame(&mut body).await.unwrap().as_bytes());
            let event = parser.next_event().expect("a whole event per frame");
            assert_eq!(event.json::<serde_json::Value>().unwrap(), json!({"i": i}));
            assert_eq!(event.last_event_id, i.to_string());
        }
        drop(tx);
        assert_eq!(next_frame(&mut body).await, None);
    }
}
