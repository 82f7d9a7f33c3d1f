//! One client connection: a reader that decodes and dispatches requests, and a writer that
//! writes their replies in order, batching whatever is ready into one write.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::Proxy;
use super::dispatch::{Ctx, dispatch};
use super::values::Values;
use crate::Decoder;
use crate::ascii::{MetaCode, Response};
use crate::binary::{Header, error_reply};
use crate::pool::{DownstreamError, DownstreamErrorKind, JobResult, Reply};
use crate::stats::ProxyStats;

/// Replies waiting to be written, per connection, before the reader stops reading.
const QUEUE: usize = 1024;
/// memcached's read buffer (`READ_BUFFER_SIZE`): the least a read of a client asks for.
const READ: usize = 16 * 1024;
/// Bytes gathered before a write even if more replies are ready.
pub(super) const WRITE_AT: usize = 64 * 1024;

/// A reply in the making.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Bytes to write as they are (possibly none: `noreply`).
    Ready(Bytes),
    /// The reply of one downstream job, and how to turn it into bytes.
    Job(oneshot::Receiver<JobResult>, Finish),
    /// What a gathering task will produce; if it produces nothing in time, the error is
    /// written as `Finish` writes errors (in the client's protocol).
    Task(oneshot::Receiver<Gathered>, Finish),
    /// Write what came before and these bytes, then close the connection.
    Close(Bytes),
    /// No reply: the writer signals once the replies before it are all in.
    Barrier(oneshot::Sender<()>),
}

/// What a gathering task hands the writer.
#[derive(Debug)]
pub(crate) enum Gathered {
    /// Bytes to write as they are.
    Bytes(Bytes),
    /// A get's values, each held once however often the client named its key; the writer
    /// streams them.
    Values(Values),
}

impl From<Bytes> for Gathered {
    fn from(b: Bytes) -> Self {
        Gathered::Bytes(b)
    }
}

/// How a job's reply becomes the client's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish {
    /// Ascii elements as they are; nothing at all when `silent` (the client said `noreply`:
    /// the request went downstream without it, so that its completion is known).
    Ascii {
        /// Write nothing.
        silent: bool,
    },
    /// A quiet meta command sent with an `mn` after it: everything but the `MN`.
    MetaQuiet,
    /// Binary responses as they are.
    Binary(Header),
    /// A quiet binary command sent with a NOOP after it: everything but the NOOP's reply.
    BinaryQuiet(Header),
    /// A classic ascii command sent as binary: its reply read back as ascii; nothing at all
    /// when `silent` (`noreply`).
    A2b {
        /// What the command was.
        kind: crate::a2b::Kind,
        /// Write nothing.
        silent: bool,
    },
}

impl Finish {
    /// Appends the client's bytes for `result` to `out`.
    pub(crate) fn apply(&self, result: JobResult, out: &mut BytesMut) {
        let reply = match result {
            Ok(r) => r,
            Err(e) => return self.error(&e, out),
        };
        match (self, reply) {
            (Finish::Ascii { silent: true } | Finish::A2b { silent: true, .. }, _) => {}
            (Finish::A2b { kind, .. }, Reply::Binary(rs)) if !rs.is_empty() => {
                crate::a2b::reply(*kind, &rs[0]).encode(out)
            }
            (Finish::Ascii { .. }, Reply::Ascii(els)) => els.iter().for_each(|e| e.encode(out)),
            (Finish::MetaQuiet, Reply::Ascii(els)) => els
                .iter()
                .filter(|e| !matches!(e, Response::Meta(m) if m.code == MetaCode::Mn))
                .for_each(|e| e.encode(out)),
            (Finish::Binary(_), Reply::Binary(rs)) => rs.iter().for_each(|r| r.encode(out)),
            (Finish::BinaryQuiet(_), Reply::Binary(rs)) => {
                let keep = rs.len().saturating_sub(1);
                rs[..keep].iter().for_each(|r| r.encode(out));
            }
            _ => self.error(
                &DownstreamError::new(DownstreamErrorKind::Protocol, ""),
                out,
            ),
        }
    }

    /// Appends the client's bytes for a failed job.
    pub(crate) fn error(&self, e: &DownstreamError, out: &mut BytesMut) {
        match self {
            Finish::Ascii { silent: true } | Finish::A2b { silent: true, .. } => {}
            Finish::Ascii { .. } | Finish::MetaQuiet | Finish::A2b { .. } => {
                out.extend_from_slice(&e.ascii_reply())
            }
            Finish::Binary(h) | Finish::BinaryQuiet(h) => {
                out.extend_from_slice(&error_reply(h, e.binary_status()))
            }
        }
    }
}

/// Serves one client until it closes, says `quit`, or sends what memcached closes on.
pub(crate) async fn serve(proxy: Arc<Proxy>, stream: TcpStream, id: usize) {
    let stats = proxy.stats();
    ProxyStats::inc(&stats.tot_conns);
    ProxyStats::inc(&stats.curr_conns);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(QUEUE);
    let cfg = proxy.config();
    let wait = cfg.pool.connect_timeout + cfg.pool.timeout * 2;
    let writer = tokio::spawn(write_replies(wr, rx, wait));
    let mut decoder = Decoder::new(cfg.limits.clone());
    let mut buf = BytesMut::with_capacity(READ);
    let mut pool = proxy.cluster().pool.clone();
    'conn: loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let ctx = Ctx {
            proxy: &proxy,
            cluster: proxy.cluster(),
            slot: id,
        };
        if !Arc::ptr_eq(&pool, &ctx.cluster.pool) {
            // A reload brought new server connections. This client's earlier requests may
            // still wait on the old ones: the next must not overtake them at the servers,
            // which run each connection's requests in order.
            let (done, all_in) = oneshot::channel();
            if tx.send(Pending::Barrier(done)).await.is_err() {
                break;
            }
            let _ = all_in.await;
            pool = ctx.cluster.pool.clone();
        }
        loop {
            let pending = match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(req)) => {
                    ProxyStats::inc(&stats.tot_requests);
                    dispatch(&ctx, req).await
                }
                Err(e) => {
                    ProxyStats::inc(&stats.tot_client_errors);
                    if e.is_close() {
                        let _ = tx.send(Pending::Close(e.reply().clone())).await;
                        break 'conn;
                    }
                    Pending::Ready(e.reply().clone())
                }
            };
            let close = matches!(pending, Pending::Close(_));
            if tx.send(pending).await.is_err() || close {
                break 'conn;
            }
        }
        // memcached reads into a 16 KiB buffer holding what is left of an unfinished
        // command, and closes the connection if that unfinished line is then over 2048
        // bytes (unless it is a get); the decoder does the same with what the reads here
        // return, so they must not be shorter than memcached's. Past that (a large value
        // coming in), reads still get room for a few KiB at a time.
        let room = READ.saturating_sub(buf.len()).max(4096);
        if buf.capacity() - buf.len() < room {
            buf.reserve(READ);
        }
    }
    drop(tx);
    let _ = writer.await;
    stats.curr_conns.fetch_sub(1, Ordering::Relaxed);
}

/// Writes replies in order; whatever is ready goes out in one write.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Pending>,
    wait: Duration,
) {
    let mut out = BytesMut::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(p) = next.take() {
            match p {
                Pending::Close(last) => {
                    out.extend_from_slice(&last);
                    let _ = wr.write_all(&out).await;
                    let _ = wr.shutdown().await;
                    return;
                }
                Pending::Ready(b) => out.extend_from_slice(&b),
                Pending::Barrier(done) => {
                    let _ = done.send(());
                }
                Pending::Job(mut job, finish) => {
                    let result = match job.try_recv() {
                        Ok(r) => r,
                        Err(oneshot::error::TryRecvError::Closed) => Err(lost()),
                        Err(oneshot::error::TryRecvError::Empty) => {
                            if !out.is_empty() && flush(&mut wr, &mut out).await.is_err() {
                                return;
                            }
                            match tokio::time::timeout(wait, job).await {
                                Ok(Ok(r)) => r,
                                Ok(Err(_)) => Err(lost()),
                                Err(_) => Err(timed_out()),
                            }
                        }
                    };
                    finish.apply(result, &mut out);
                }
                Pending::Task(mut task, finish) => {
                    let result = match task.try_recv() {
                        Ok(b) => Ok(b),
                        Err(oneshot::error::TryRecvError::Closed) => Err(lost()),
                        Err(oneshot::error::TryRecvError::Empty) => {
                            if !out.is_empty() && flush(&mut wr, &mut out).await.is_err() {
                                return;
                            }
                            match tokio::time::timeout(wait, task).await {
                                Ok(Ok(b)) => Ok(b),
                                Ok(Err(_)) => Err(lost()),
                                Err(_) => Err(timed_out()),
                            }
                        }
                    };
                    match result {
                        Ok(Gathered::Bytes(bytes)) => out.extend_from_slice(&bytes),
                        Ok(Gathered::Values(v)) => {
                            if v.write_to(&mut wr, &mut out).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => finish.error(&e, &mut out),
                    }
                }
            }
            if out.len() >= WRITE_AT && flush(&mut wr, &mut out).await.is_err() {
                return;
            }
            next = rx.try_recv().ok();
        }
        if !out.is_empty() && flush(&mut wr, &mut out).await.is_err() {
            return;
        }
    }
}

pub(super) async fn flush<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    let r = wr.write_all(out).await;
    out.clear();
    r
}

fn lost() -> DownstreamError {
    DownstreamError::new(DownstreamErrorKind::Closed, "")
}

fn timed_out() -> DownstreamError {
    DownstreamError::new(DownstreamErrorKind::Timeout, "")
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::ascii::Value;

    /// Keeps each write apart, to see what was copied into the output buffer and what was
    /// written from its own.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn task(g: Gathered) -> Pending {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(g);
        Pending::Task(rx, Finish::Ascii { silent: false })
    }

    async fn written(replies: Vec<Pending>) -> Writes {
        let (tx, rx) = mpsc::channel(QUEUE);
        for p in replies {
            tx.send(p).await.unwrap_or_else(|_| panic!("queue"));
        }
        drop(tx);
        let mut w = Writes::default();
        write_replies(&mut w, rx, Duration::from_secs(1)).await;
        w
    }

    #[tokio::test]
    async fn values_stream_in_order_between_other_replies() {
        let big = Bytes::from(vec![b'x'; 100 * 1024]);
        let found = vec![
            Value {
                key: Bytes::from_static(b"big"),
                flags: 1,
                cas: Some(9),
                data: big.clone(),
            },
            Value {
                key: Bytes::from_static(b"s"),
                flags: 0,
                cas: Some(10),
                data: Bytes::from_static(b"hi"),
            },
        ];
        let mentions: usize = 50;
        let order: Vec<u32> = (0..mentions).map(|i| (i % 2) as u32).collect();
        let w = written(vec![
            Pending::Ready(Bytes::from_static(b"STORED\r\n")),
            task(Gathered::Values(Values { found, order })),
            task(Gathered::Values(Values::default())),
            task(Bytes::from_static(b"OK\r\n").into()),
        ])
        .await;
        let mut want = b"STORED\r\n".to_vec();
        for i in 0..mentions {
            if i % 2 == 0 {
                want.extend_from_slice(b"VALUE big 1 102400 9\r\n");
                want.extend_from_slice(&big);
                want.extend_from_slice(b"\r\n");
            } else {
                want.extend_from_slice(b"VALUE s 0 2 10\r\nhi\r\n");
            }
        }
        want.extend_from_slice(b"END\r\nEND\r\nOK\r\n");
        assert_eq!(w.0.concat(), want);
        // The big value went out from its own buffer every time, never copied into a
        // write with other bytes, and no write held more than one value's worth.
        let whole = w.0.iter().filter(|b| b.len() == big.len()).count();
        assert_eq!(whole, mentions.div_ceil(2));
        assert!(w.0.iter().all(|b| b.len() <= big.len()));
    }

    #[tokio::test]
    async fn small_values_gather_until_write_at() {
        let data = Bytes::from(vec![b'v'; 1000]);
        let found = vec![Value {
            key: Bytes::from_static(b"k"),
            flags: 0,
            cas: None,
            data,
        }];
        let order = vec![0; 1000];
        let w = written(vec![task(Gathered::Values(Values { found, order }))]).await;
        let total: usize = w.0.iter().map(Vec::len).sum();
        assert_eq!(total, 1000 * (b"VALUE k 0 1000\r\n".len() + 1002) + 5);
        assert!(w.0.len() > 1, "one write of {total} bytes");
        assert!(w.0.iter().all(|b| b.len() < WRITE_AT + 1100));
        assert!(w.0.concat().ends_with(b"END\r\n"));
    }
}
