//! Client connection wrappers: a write deadline, and `sendfile` of cached chunks.
//!
//! A write deadline for client connections: a client that stops reading (its receive window
//! full, the socket not writable) for longer than `send_timeout` gets its connection closed,
//! so it cannot hold a connection slot and a reply's buffers forever. This is nginx's
//! `send_timeout`: the limit is on the time between two successful writes, not on the whole
//! reply, so slow but live clients are fine.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Sleep, sleep};

use crate::arena::Arena;

/// `T` with a deadline on stalled writes.
pub(crate) struct SendTimeout<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> SendTimeout<T> {
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        SendTimeout {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// After a write returned `Pending`: fail once the stall has lasted `timeout`.
    fn check<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let stall = self.stalled.get_or_insert_with(|| Box::pin(sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A plain TCP client connection that sends slices of the chunk [`Arena`] with `sendfile`
/// from its memory file instead of copying them (see `crate::arena`). Everything else is
/// written as usual; the bytes before an arena slice go out with `MSG_MORE`, so a reply's
/// head and body still leave in full segments.
pub(crate) struct Sendfile {
    stream: TcpStream,
    arena: Arc<Arena>,
}

impl Sendfile {
    pub(crate) fn new(stream: TcpStream, arena: Arc<Arena>) -> Self {
        Sendfile { stream, arena }
    }

    /// Runs a non-blocking write on the socket once it is writable.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self
                .stream
                .try_io(Interest::WRITABLE, || send(&self.stream))
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        mut offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let polled = self.poll_send(cx, |s| {
            Ok(rustix::fs::sendfile(
                s,
                self.arena.fd(),
                Some(&mut offset),
                len,
            )?)
        });
        if let Poll::Ready(Ok(n)) = polled {
            metrics::counter!("shoal_http_sendfile_bytes_total").increment(n as u64);
        }
        polled
    }
}

impl AsyncRead for Sendfile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sendfile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.arena.locate(buf) {
            Some(offset) => self.poll_sendfile(cx, offset, buf.len()),
            None => Pin::new(&mut self.stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().position(|b| self.arena.locate(b).is_some());
        match first {
            None => Pin::new(&mut self.stream).poll_write_vectored(cx, bufs),
            Some(0) => {
                let offset = self.arena.locate(&bufs[0]).unwrap_or_default();
                self.poll_sendfile(cx, offset, bufs[0].len())
            }
            Some(i) => self.poll_send(cx, |s| {
                let mut no_ancillary = SendAncillaryBuffer::default();
                Ok(sendmsg(
                    s,
                    &bufs[..i],
                    &mut no_ancillary,
                    SendFlags::MORE | SendFlags::NOSIGNAL,
                )?)
            }),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
