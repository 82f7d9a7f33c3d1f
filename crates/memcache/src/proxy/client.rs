//! One client connection: a reader that decodes and dispatches requests, and a writer that
//! writes their replies in order, batching whatever is ready into one write.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use super::Proxy;
use super::dispatch::{Ctx, dispatch};
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
const WRITE_AT: usize = 64 * 1024;

/// A reply in the making.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Bytes to write as they are (possibly none: `noreply`).
    Ready(Bytes),
    /// The reply of one downstream job, and how to turn it into bytes.
    Job(oneshot::Receiver<JobResult>, Finish),
    /// Bytes a gathering task will produce; if it produces none in time, the error is
    /// written as `Finish` writes errors (in the client's protocol).
    Task(oneshot::Receiver<Bytes>, Finish),
    /// Write what came before and these bytes, then close the connection.
    Close(Bytes),
    /// No reply: the writer signals once the replies before it are all in.
    Barrier(oneshot::Sender<()>),
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
        // return, so they must not be shorter than memcached's.
        if buf.capacity() - buf.len() < READ.saturating_sub(buf.len()) {
            buf.reserve(READ);
        }
    }
    drop(tx);
    let _ = writer.await;
    stats.curr_conns.fetch_sub(1, Ordering::Relaxed);
}

/// Writes replies in order; whatever is ready goes out in one write.
async fn write_replies(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Pending>, wait: Duration) {
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
                        Ok(bytes) => out.extend_from_slice(&bytes),
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

async fn flush(wr: &mut OwnedWriteHalf, out: &mut BytesMut) -> std::io::Result<()> {
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
