//! One downstream connection as a task: it connects when the first job comes, writes jobs in
//! batches (one write per batch), and matches replies to jobs in order. A reply that does
//! not come in time closes the connection (moxi does the same) and fails the jobs on it; a
//! connection that closes fails the job whose reply had started and re-sends, once, the
//! jobs that had not seen a byte of reply.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

use super::ServerStats;
use super::merge::{InFlight, encode_batch};
use super::{DownstreamErrorKind, Expect, Job, Reply, Server, Wire};
use crate::ascii::{MetaCode, Response, decode_response};
use crate::binary::{BinaryResponse, Opcode, decode_binary_response};

/// Most jobs written in one batch.
const BATCH: usize = 256;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The pool is gone and every job was answered.
    Drained,
    /// The server closed the connection, or a read or write failed.
    Closed,
    /// A reply did not come in time.
    Timeout,
    /// The server sent something unreadable.
    Protocol,
}

/// The connection task: runs until the pool drops its sender and the last job is answered.
pub(super) async fn run(server: Arc<Server>, wire: Wire, mut rx: mpsc::Receiver<Job>) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    // Preconnecting, the first session starts before any job; later ones at a job.
    let mut eager = server.opts().preconnect == Some(wire);
    loop {
        if pending.is_empty() && !std::mem::take(&mut eager) {
            match next(&server, &mut rx).await {
                Some(j) => pending.push_back(j),
                None => return,
            }
        }
        if let Some(e) = server.unavailable() {
            fail_all(&server, &mut pending, &mut rx, |_| e.clone());
            continue;
        }
        let stream = match connect(&server).await {
            Ok(s) => s,
            Err(()) => {
                server.failed();
                let e = server.error(DownstreamErrorKind::Connect);
                fail_all(&server, &mut pending, &mut rx, |_| e.clone());
                continue;
            }
        };
        let (end, inflight) = session(&server, wire, stream, &mut pending, &mut rx).await;
        let stats = server.stats();
        stats.connections.fetch_sub(1, Ordering::Relaxed);
        let retry = server.opts().retry;
        let mut again = VecDeque::new();
        match end {
            End::Drained => return,
            End::Timeout => server.failed(),
            End::Closed | End::Protocol => {}
        }
        for f in inflight {
            left_the_wire(stats, &f);
            let touched = f.touched;
            for mut job in f.into_jobs() {
                let kind = match end {
                    End::Timeout => {
                        stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        DownstreamErrorKind::Timeout
                    }
                    End::Protocol => DownstreamErrorKind::Protocol,
                    _ if !touched && job.repeatable && job.retries < retry => {
                        job.retries += 1;
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        again.push_back(job);
                        continue;
                    }
                    _ => DownstreamErrorKind::Closed,
                };
                job.fail(server.error(kind));
            }
        }
        again.extend(pending.drain(..));
        pending = again;
    }
}

/// The next job of the connection's queue, waiting for one.
async fn next(server: &Server, rx: &mut mpsc::Receiver<Job>) -> Option<Job> {
    let job = rx.recv().await?;
    server.took(&job);
    Some(job)
}

/// The next job of the connection's queue if there is one.
fn try_next(server: &Server, rx: &mut mpsc::Receiver<Job>) -> Option<Job> {
    let job = rx.try_recv().ok()?;
    server.took(&job);
    Some(job)
}

/// A request written to the server is answered, or failed or re-queued with its connection.
fn left_the_wire(stats: &ServerStats, f: &InFlight) {
    stats.out_queue.fetch_sub(1, Ordering::Relaxed);
    stats
        .out_queue_bytes
        .fetch_sub(f.bytes as u64, Ordering::Relaxed);
}

/// Fails the pending jobs and those already queued, at once.
fn fail_all(
    server: &Server,
    pending: &mut VecDeque<Job>,
    rx: &mut mpsc::Receiver<Job>,
    err: impl Fn(&Job) -> super::DownstreamError,
) {
    while let Some(j) = try_next(server, rx) {
        pending.push_back(j);
    }
    for j in pending.drain(..) {
        let e = err(&j);
        j.fail(e);
    }
}

async fn connect(server: &Server) -> Result<TcpStream, ()> {
    let stats = server.stats();
    let authority = server.addr().authority();
    match timeout(
        server.opts().connect_timeout,
        TcpStream::connect(&authority),
    )
    .await
    {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            stats.connections.fetch_add(1, Ordering::Relaxed);
            if server.opts().tcp_keepalive {
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(super::KEEPALIVE_IDLE)
                    .with_interval(super::KEEPALIVE_INTERVAL)
                    .with_retries(super::KEEPALIVE_PROBES);
                if let Err(e) = socket2::SockRef::from(&s).set_tcp_keepalive(&keepalive) {
                    tracing::warn!(server = %authority, error = %e, "cannot set TCP keepalive");
                }
            }
            stats.connects.fetch_add(1, Ordering::Relaxed);
            Ok(s)
        }
        Ok(Err(e)) => {
            stats.connect_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(server = %authority, error = %e, "connect failed");
            Err(())
        }
        Err(_) => {
            stats.connect_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(server = %authority, "connect timed out");
            Err(())
        }
    }
}

async fn session(
    server: &Server,
    wire: Wire,
    stream: TcpStream,
    pending: &mut VecDeque<Job>,
    rx: &mut mpsc::Receiver<Job>,
) -> (End, VecDeque<InFlight>) {
    let (rd, wr) = stream.into_split();
    let (itx, mut irx) = mpsc::unbounded_channel();
    let mut inflight = VecDeque::new();
    let end = tokio::select! {
        // The writer queues in `pending` itself: jobs it took but had not written when the
        // reader ended the session stay there for the next connection, instead of being
        // dropped with its future (their clients would get `SERVER_ERROR` with no retry).
        e = write_loop(server, wr, pending, rx, itx) => e,
        e = read_loop(server, wire, rd, &mut irx, &mut inflight) => e,
    };
    while let Ok(f) = irx.try_recv() {
        inflight.push_back(f);
    }
    (end, inflight)
}

async fn write_loop(
    server: &Server,
    mut wr: OwnedWriteHalf,
    queue: &mut VecDeque<Job>,
    rx: &mut mpsc::Receiver<Job>,
    itx: mpsc::UnboundedSender<InFlight>,
) -> End {
    let timeout = server.opts().timeout;
    let mut out = BytesMut::new();
    loop {
        if queue.is_empty() {
            match next(server, rx).await {
                Some(j) => {
                    queue.push_back(j);
                    // Let the other ready tasks (clients with requests for this server) run
                    // first, so that one write carries all their requests.
                    tokio::task::yield_now().await;
                }
                None => {
                    // The pool is gone: let the reader finish what is in flight.
                    drop(itx);
                    return std::future::pending().await;
                }
            }
        }
        while queue.len() < BATCH {
            match try_next(server, rx) {
                Some(j) => queue.push_back(j),
                None => break,
            }
        }
        let deadline = Instant::now() + timeout;
        let n = queue.len();
        let sent = encode_batch(queue.drain(..), &mut out, deadline);
        let stats = server.stats();
        stats.requests.fetch_add(n as u64, Ordering::Relaxed);
        for f in sent {
            let (one, bytes) = (1, f.bytes as u64);
            if itx.send(f).is_err() {
                return End::Closed;
            }
            stats.out_queue.fetch_add(one, Ordering::Relaxed);
            stats.out_queue_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        let written = if out.is_empty() {
            Ok(())
        } else {
            wr.write_all(&out).await
        };
        stats
            .request_bytes
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        out.clear();
        if written.is_err() {
            stats.conn_errors.fetch_add(1, Ordering::Relaxed);
            return End::Closed;
        }
    }
}

async fn read_loop(
    server: &Server,
    wire: Wire,
    mut rd: OwnedReadHalf,
    irx: &mut mpsc::UnboundedReceiver<InFlight>,
    inflight: &mut VecDeque<InFlight>,
) -> End {
    let limits = &server.opts().limits;
    let max_body = limits.max_binary_body();
    let stats = server.stats();
    let protocol_error = || {
        stats.conn_errors.fetch_add(1, Ordering::Relaxed);
        End::Protocol
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut open = true;
    loop {
        while let Ok(f) = irx.try_recv() {
            inflight.push_back(f);
        }
        while let Some(front) = inflight.front_mut() {
            let done = match wire {
                Wire::Ascii => match decode_response(&mut buf, limits) {
                    Ok(Some(r)) => push_ascii(front, r),
                    Ok(None) => break,
                    Err(_) => return protocol_error(),
                },
                Wire::Binary => match decode_binary_response(&mut buf, max_body) {
                    Ok(Some(r)) => push_binary(front, r),
                    Ok(None) => break,
                    Err(_) => return protocol_error(),
                },
            };
            front.touched = true;
            if done && let Some(f) = inflight.pop_front() {
                server.succeeded();
                left_the_wire(stats, &f);
                stats.responses.fetch_add(1, Ordering::Relaxed);
                f.answer();
            }
        }
        if let Some(front) = inflight.front_mut() {
            front.touched |= !buf.is_empty();
        } else {
            if !buf.is_empty() {
                return protocol_error();
            }
            if !open {
                return End::Drained;
            }
        }
        let deadline = inflight.front().map(|f| f.deadline);
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => {
                    stats.eofs.fetch_add(1, Ordering::Relaxed);
                    return End::Closed;
                }
                Err(_) => {
                    stats.conn_errors.fetch_add(1, Ordering::Relaxed);
                    return End::Closed;
                }
                Ok(n) => {
                    stats.response_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            f = irx.recv(), if open => match f {
                Some(f) => inflight.push_back(f),
                None => open = false,
            },
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                return End::Timeout;
            }
        }
    }
}

/// Adds an ascii element to the front job; true when its reply is complete.
fn push_ascii(f: &mut InFlight, r: Response) -> bool {
    let done = match f.job.expect {
        Expect::UntilEnd => !matches!(
            r,
            Response::Value(_) | Response::Stat { .. } | Response::Listing(_)
        ),
        Expect::UntilMn => matches!(&r, Response::Meta(m) if m.code == MetaCode::Mn),
        Expect::UntilVersion => matches!(r, Response::Version(_)),
        _ => true,
    };
    if let Reply::Ascii(v) = &mut f.got {
        v.push(r);
    }
    done
}

/// Adds a binary response to the front job; true when its reply is complete.
fn push_binary(f: &mut InFlight, r: BinaryResponse) -> bool {
    let done = match f.job.expect {
        Expect::BinUntilNoop => r.header.opcode == Opcode::Noop as u8,
        _ => true,
    };
    if let Reply::Binary(v) = &mut f.got {
        v.push(r);
    }
    done
}
