//! Body types: one boxed body for everything the router sends or answers, and a channel body
//! that carries one upload to several replicas at once.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use tokio::sync::mpsc;

/// Any error a body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request the router sends and every response it gives.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body fed through a bounded channel; an `Err` item aborts the request it is sent in.
///
/// A channel that closes before the body is whole (fewer than `len` bytes, or, without a
/// length, before [`ChannelBody::whole`] was set) also ends it with an error: a chunked
/// request would otherwise end with its last chunk, and the storage node would keep the part
/// it got as the whole file.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
    len: Option<u64>,
    sent: u64,
    whole: Option<Arc<AtomicBool>>,
}

impl ChannelBody {
    /// A body of `len` bytes (if known) arriving on `rx`.
    pub fn new(rx: mpsc::Receiver<Result<Bytes, BoxError>>, len: Option<u64>) -> Self {
        ChannelBody {
            rx,
            len,
            sent: 0,
            whole: None,
        }
    }

    /// Without a length, the body is whole only once `whole` is true when the channel closes.
    pub fn whole(mut self, whole: Arc<AtomicBool>) -> Self {
        self.whole = Some(whole);
        self
    }

    fn torn(&self) -> Option<BoxError> {
        match (self.len, &self.whole) {
            (Some(len), _) if self.sent != len => {
                Some(format!("body ended after {} of {len} bytes", self.sent).into())
            }
            (None, Some(w)) if !w.load(Ordering::Acquire) => {
                Some(format!("body ended after {} bytes, before its end", self.sent).into())
            }
            _ => None,
        }
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => {
                self.sent += data.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(self.torn().map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.len
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
