//! The one body type of every answer: a whole JSON document or an event stream.

use super::stream::LiveEvents;
use bytes::Bytes;
use eric_sse::http::SseBody;
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What the server answers: a body known in full, or an SSE stream. An enum rather than
/// a boxed body: no allocation and no dynamic call per frame.
// The stream variant is the large one and the long-lived one: boxing it would cost every
// stream an allocation and save memory only for short JSON answers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// A whole body (`None` once written, or for an empty body).
    Full(Option<Bytes>),
    /// A `text/event-stream`.
    Sse(SseBody<LiveEvents>),
}

impl ResponseBody {
    pub(crate) fn empty() -> Self {
        ResponseBody::Full(None)
    }

    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Sse(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Sse(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Sse(body) => body.size_hint(),
        }
    }
}
