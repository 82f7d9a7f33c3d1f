//! A body that fails when its source sends nothing for too long, so a peer that stalls
//! mid-body cannot hold a request (and the client behind it) forever.
//!
//! Only time spent waiting on the source counts: when the consumer is slow and polls late,
//! the clock starts at the poll, not at the previous frame.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
use crate::router::Inner;

/// Which side stalled, as the `side` label of `shoal_route_body_timeouts_total`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// A replica stopped sending a response body.
    ReplicaResponse,
    /// A replica stopped taking a PUT body.
    ReplicaRequest,
    /// The client stopped sending its PUT body.
    ClientRequest,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::ReplicaResponse => "replica_response",
            Side::ReplicaRequest => "replica_request",
            Side::ClientRequest => "client_request",
        }
    }
}

/// Counts one body cut off for stalling.
pub(crate) fn count(inner: &Inner, side: Side) {
    inner.body_timeouts.fetch_add(1, Ordering::Relaxed);
    ::metrics::counter!("shoal_route_body_timeouts_total", "side" => side.label()).increment(1);
}

/// The error a stalled body ends with.
#[derive(Debug)]
pub(crate) struct Stalled(pub(crate) Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no body data for {:?}; gave up", self.0)
    }
}

impl std::error::Error for Stalled {}

/// `body`, ending with [`Stalled`] after `timeout` without a frame.
pub(crate) struct IdleTimeout<B> {
    body: B,
    timeout: Duration,
    /// Armed lazily and re-armed only when it fires early, so the per-frame cost is a clock
    /// read rather than a timer-wheel update.
    sleep: Option<Pin<Box<Sleep>>>,
    /// When the current wait for the source began; `None` while not waiting.
    waiting_since: Option<Instant>,
    on_stall: Option<(Arc<Inner>, Side)>,
}

impl<B> IdleTimeout<B> {
    pub(crate) fn new(body: B, timeout: Duration, inner: Arc<Inner>, side: Side) -> Self {
        IdleTimeout {
            body,
            timeout,
            sleep: None,
            waiting_since: None,
            on_stall: Some((inner, side)),
        }
    }
}

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(item) = Pin::new(&mut this.body).poll_frame(cx) {
            this.waiting_since = None;
            return Poll::Ready(item);
        }
        let now = Instant::now();
        let since = *this.waiting_since.get_or_insert(now);
        let due = since + this.timeout;
        loop {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            ready!(sleep.as_mut().poll(cx));
            // It fired: either for this wait, or for an earlier one that has since ended.
            if Instant::now() >= due {
                this.sleep = None;
                if let Some((inner, side)) = this.on_stall.take() {
                    count(&inner, side);
                }
                return Poll::Ready(Some(Err(Box::new(Stalled(this.timeout)))));
            }
            sleep.as_mut().reset(due);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
