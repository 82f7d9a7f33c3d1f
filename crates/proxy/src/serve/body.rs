//! The response body: empty, one buffer, or a stream of chunk slices fed by a producer task.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// A body stream ended before its last byte (the origin failed or the object changed
/// mid-response). hyper then closes the connection (HTTP/1.1) or resets the stream (h2), so
/// the client sees a truncated reply, never wrong bytes.
#[derive(Debug, Clone, thiserror::Error)]
#[error("response aborted: {0}")]
pub struct BodyError(pub String);

/// What the proxy answers with.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Parts {
        parts: VecDeque<Bytes>,
        remaining: u64,
    },
    Stream {
        rx: mpsc::Receiver<Result<Bytes, BodyError>>,
        remaining: u64,
    },
}

impl ProxyBody {
    /// No body.
    pub fn empty() -> Self {
        ProxyBody {
            kind: Kind::Full(None),
        }
    }

    /// One buffer.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ProxyBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// Buffers already in memory (slices of cached chunks), sent in order.
    pub(crate) fn parts(parts: VecDeque<Bytes>) -> Self {
        let remaining = parts.iter().map(|b| b.len() as u64).sum();
        ProxyBody {
            kind: Kind::Parts { parts, remaining },
        }
    }

    /// `len` bytes arriving on `rx`.
    pub(crate) fn stream(rx: mpsc::Receiver<Result<Bytes, BodyError>>, len: u64) -> Self {
        ProxyBody {
            kind: Kind::Stream { rx, remaining: len },
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Parts { parts, remaining } => Poll::Ready(parts.pop_front().map(|b| {
                *remaining -= b.len() as u64;
                Ok(Frame::data(b))
            })),
            Kind::Stream { rx, remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                match rx.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(Ok(bytes))) => {
                        *remaining = remaining.saturating_sub(bytes.len() as u64);
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => Poll::Ready(Some(Err(BodyError(
                        "the body's producer stopped early".into(),
                    )))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Parts { parts, .. } => parts.is_empty(),
            Kind::Stream { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Parts { remaining, .. } => SizeHint::with_exact(*remaining),
            Kind::Stream { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}
