//! One client connection: a reader that decodes and dispatches requests, and a writer that
//! writes their replies in order, batching whatever is ready into one write. The reader
//! stops while what the connection holds for its client (replies it has not read, requests
//! still out) passes its budget ([`Backlog`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};

use super::Proxy;
use super::dispatch::{Ctx, dispatch};
use super::values::Values;
use crate::ascii::{AsciiRequest, MetaCode, Response};
use crate::binary::{Header, error_reply};
use crate::meta::MetaKind;
use crate::pool::{DownstreamError, DownstreamErrorKind, JobResult, Reply};
use crate::stats::ProxyStats;
use crate::{Decoder, Request};

/// Replies waiting to be written, per connection, before the reader stops reading (the
/// [`Backlog`] usually stops it well before, by bytes).
const QUEUE: usize = 1024;
/// memcached's read buffer (`READ_BUFFER_SIZE`): the least a read of a client asks for.
const READ: usize = 16 * 1024;
/// Bytes gathered before a write even if more replies are ready.
pub(super) const WRITE_AT: usize = 64 * 1024;

/// A reply that may carry values and is not in yet counts as this many bytes until the
/// connection has had such a reply (half of memcached's default largest item): with the
/// default budget, 16 gets go out on a new connection before their sizes are known.
const FIRST_VALUES_GUESS: usize = 512 * 1024;
/// ... and never as fewer than this, however small the values: at most 256 gets per
/// connection wait on servers at once with the default budget.
const LEAST_VALUES_GUESS: usize = 32 * 1024;

/// The bytes a client connection holds on its client's account: replies the writer holds
/// unwritten, replies ready in its queue, replies to gets still to come (counted at the size
/// of the connection's recent ones: their size is not known until they come), and the other
/// requests still out, at their own size (a `set` holds its value until its reply is in: it
/// waits in a server connection's queue, and may be sent again). A client that does not read
/// its replies, or pipelines large `set`s to a server that has stopped reading, would
/// otherwise have the proxy hold up to [`QUEUE`] of them, of up to 1 MB each; memcached stops
/// reading a connection whose replies it cannot write, and the reader likewise waits
/// ([`Backlog::wait_for_room`]) while the connection owes its budget.
#[derive(Debug)]
struct Backlog {
    /// Bytes the writer holds and has not written: its buffer and the values it streams.
    writing: AtomicUsize,
    /// Bytes of ready replies (and closing words) queued for the writer.
    ready: AtomicUsize,
    /// Replies that may carry values, queued for the writer and not in yet.
    values_coming: AtomicUsize,
    /// Bytes of the other requests whose replies are queued for the writer and not taken.
    requests_out: AtomicUsize,
    /// What each of those is taken to cost: the size of the connection's last such reply,
    /// or less and less of a larger one before it (so a connection getting large values
    /// keeps few gets out, and one getting small values gets to pipeline).
    expected: AtomicUsize,
    /// The reader waits for `progress`; the writer signals only then.
    reader_waiting: AtomicBool,
    /// The writer has ended (the client closed, or a write failed): the reader must not wait.
    writer_gone: AtomicBool,
    progress: Notify,
}

/// How a queued reply is counted in the [`Backlog`] until the writer takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// Ready bytes, this many.
    Bytes(usize),
    /// A reply that may carry values, not in yet: counted as the expected size.
    Values,
    /// The reply to a request of this many bytes (its value included), not in yet.
    Request(usize),
    /// Not at all: a reply of a few bytes, or none (a barrier).
    Not,
}

impl Counted {
    /// How `p`, the reply to a request of `len` bytes that may bring values back (`values`)
    /// or not, counts.
    fn of(p: &Pending, values: bool, len: usize) -> Counted {
        match p {
            Pending::Ready(b) | Pending::Close(b) => Counted::Bytes(b.len()),
            Pending::Job(..) | Pending::Task(..) if values => Counted::Values,
            Pending::Job(..) | Pending::Task(..) => Counted::Request(len),
            Pending::Barrier(_) => Counted::Not,
        }
    }
}

/// Whether the reply to `req` may carry values (or other bulk: stats), so that it counts in
/// the [`Backlog`] before it comes.
fn may_bring_values(req: &Request) -> bool {
    use crate::binary::Opcode::*;
    match req {
        Request::Ascii(a) => matches!(a, AsciiRequest::Get(_) | AsciiRequest::Stats(_)),
        Request::Meta(m) => matches!(m.kind, MetaKind::Get | MetaKind::Debug),
        Request::Binary(b) => matches!(
            b.opcode(),
            Some(Get | GetQ | GetK | GetKQ | Gat | GatQ | GatK | GatKQ | Stat)
        ),
    }
}

impl Backlog {
    fn new() -> Backlog {
        Backlog {
            writing: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
            values_coming: AtomicUsize::new(0),
            requests_out: AtomicUsize::new(0),
            expected: AtomicUsize::new(FIRST_VALUES_GUESS),
            reader_waiting: AtomicBool::new(false),
            writer_gone: AtomicBool::new(false),
            progress: Notify::new(),
        }
    }

    /// What the connection owes its client, in bytes.
    fn owed(&self) -> usize {
        // SeqCst throughout: with `reader_waiting`, either the reader sees the writer's
        // progress or the writer sees that the reader waits (no lost wake-up).
        let each = self.expected.load(Ordering::SeqCst).max(LEAST_VALUES_GUESS);
        let coming = self.values_coming.load(Ordering::SeqCst);
        self.writing
            .load(Ordering::SeqCst)
            .saturating_add(self.ready.load(Ordering::SeqCst))
            .saturating_add(self.requests_out.load(Ordering::SeqCst))
            .saturating_add(coming.saturating_mul(each))
    }

    /// Waits while the connection owes `budget` or more (a reply larger than the budget
    /// still goes out: it only keeps the next request waiting). False once the writer is
    /// gone.
    async fn wait_for_room(&self, budget: usize) -> bool {
        if self.owed() < budget {
            return true;
        }
        self.reader_waiting.store(true, Ordering::SeqCst);
        let open = loop {
            if self.writer_gone.load(Ordering::SeqCst) {
                break false;
            }
            // Owing nothing, a request goes out whatever the budget (even 0).
            let owed = self.owed();
            if owed < budget || owed == 0 {
                break true;
            }
            // A signal sent since the checks above is kept for this wait (Notify's permit).
            self.progress.notified().await;
        };
        self.reader_waiting.store(false, Ordering::SeqCst);
        open
    }

    /// Counts a reply about to be queued for the writer.
    fn queued(&self, counted: Counted) {
        match counted {
            Counted::Bytes(n) => {
                self.ready.fetch_add(n, Ordering::SeqCst);
            }
            Counted::Request(n) => {
                self.requests_out.fetch_add(n, Ordering::SeqCst);
            }
            Counted::Values => {
                self.values_coming.fetch_add(1, Ordering::SeqCst);
            }
            Counted::Not => {}
        }
    }

    /// The writer took a queued reply, counted as `counted`, which came with `size` bytes;
    /// it now holds `holding` bytes unwritten.
    fn took(&self, counted: Counted, size: usize, holding: usize) {
        // What the writer holds first, so that the reply never counts for nothing.
        self.writing.store(holding, Ordering::SeqCst);
        match counted {
            Counted::Bytes(n) => {
                self.ready.fetch_sub(n, Ordering::SeqCst);
            }
            Counted::Request(n) => {
                self.requests_out.fetch_sub(n, Ordering::SeqCst);
            }
            Counted::Values => {
                // Only the writer changes `expected`: no lost update.
                let was = self.expected.load(Ordering::Relaxed);
                self.expected
                    .store(size.max(was - was / 8), Ordering::SeqCst);
                self.values_coming.fetch_sub(1, Ordering::SeqCst);
            }
            Counted::Not => {}
        }
        self.signal();
    }

    /// The writer holds `holding` bytes unwritten (after a write, or before streaming values).
    fn holding(&self, holding: usize) {
        self.writing.store(holding, Ordering::SeqCst);
        self.signal();
    }

    fn signal(&self) {
        if self.reader_waiting.load(Ordering::SeqCst) {
            self.progress.notify_one();
        }
    }
}

/// Marks the writer gone when it ends, however it ends, and wakes the reader.
struct WriterGone<'a>(&'a Backlog);

impl Drop for WriterGone<'_> {
    fn drop(&mut self) {
        self.0.writer_gone.store(true, Ordering::SeqCst);
        self.0.progress.notify_one();
    }
}

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
    let backlog = Arc::new(Backlog::new());
    let settings = proxy.clone();
    let reply_wait = move || settings.reply_wait();
    let writer = tokio::spawn(write_replies(wr, rx, reply_wait, backlog.clone()));
    let mut decoder = Decoder::new(cfg.limits.clone());
    let mut buf = BytesMut::with_capacity(READ);
    let mut pool = proxy.cluster().pool.clone();
    'conn: loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                ProxyStats::inc(&stats.tot_client_eof);
                break;
            }
            Err(_) => {
                ProxyStats::inc(&stats.tot_client_conn_errors);
                break;
            }
            Ok(_) => {}
        }
        let ctx = Ctx {
            proxy: &proxy,
            cluster: proxy.cluster(),
            slot: id,
        };
        // Read once per read, not per request: a reload changes it for the next read.
        let budget = proxy.cfg.load().client_reply_budget;
        if !Arc::ptr_eq(&pool, &ctx.cluster.pool) {
            // A reload brought new server connections. This client's earlier requests may
            // still wait on the old ones: the next must not overtake them at the servers,
            // which run each connection's requests in order.
            let (done, all_in) = oneshot::channel();
            if tx
                .send((Pending::Barrier(done), Counted::Not))
                .await
                .is_err()
            {
                break;
            }
            let _ = all_in.await;
            pool = ctx.cluster.pool.clone();
        }
        loop {
            // A client that does not read its replies stops being read here, its requests
            // left in its socket, until it has read enough of them.
            if !backlog.wait_for_room(budget).await {
                break 'conn;
            }
            let unread = buf.len();
            let (pending, values) = match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(req)) => {
                    ProxyStats::inc(&stats.tot_requests);
                    let values = may_bring_values(&req);
                    (dispatch(&ctx, req).await, values)
                }
                Err(e) => {
                    ProxyStats::inc(&stats.tot_client_errors);
                    if e.is_close() {
                        let last = Pending::Close(e.reply().clone());
                        let _ = tx.send((last, Counted::Not)).await;
                        break 'conn;
                    }
                    (Pending::Ready(e.reply().clone()), false)
                }
            };
            let close = matches!(pending, Pending::Close(_));
            let counted = Counted::of(&pending, values, unread - buf.len());
            backlog.queued(counted);
            if tx.send((pending, counted)).await.is_err() || close {
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

/// Writes replies in order; whatever is ready goes out in one write. Tells `backlog` what it
/// takes and what it still holds, so that the reader stops while the client does not read.
/// A reply not in after `reply_wait()` (asked each time, so that a reload reaches open
/// connections) is answered with a timeout error.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<(Pending, Counted)>,
    reply_wait: impl Fn() -> Duration,
    backlog: Arc<Backlog>,
) {
    let _gone = WriterGone(&backlog);
    let mut out = BytesMut::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some((p, counted)) = next.take() {
            // The bytes the reply came with.
            let size = match p {
                Pending::Close(last) => {
                    out.extend_from_slice(&last);
                    let _ = wr.write_all(&out).await;
                    let _ = wr.shutdown().await;
                    return;
                }
                Pending::Ready(b) => {
                    out.extend_from_slice(&b);
                    b.len()
                }
                Pending::Barrier(done) => {
                    let _ = done.send(());
                    0
                }
                Pending::Job(mut job, finish) => {
                    let result = match job.try_recv() {
                        Ok(r) => r,
                        Err(oneshot::error::TryRecvError::Closed) => Err(lost()),
                        Err(oneshot::error::TryRecvError::Empty) => {
                            if !out.is_empty()
                                && flush_counted(&mut wr, &mut out, &backlog).await.is_err()
                            {
                                return;
                            }
                            match tokio::time::timeout(reply_wait(), job).await {
                                Ok(Ok(r)) => r,
                                Ok(Err(_)) => Err(lost()),
                                Err(_) => Err(timed_out()),
                            }
                        }
                    };
                    let before = out.len();
                    finish.apply(result, &mut out);
                    out.len() - before
                }
                Pending::Task(mut task, finish) => {
                    let result = match task.try_recv() {
                        Ok(b) => Ok(b),
                        Err(oneshot::error::TryRecvError::Closed) => Err(lost()),
                        Err(oneshot::error::TryRecvError::Empty) => {
                            if !out.is_empty()
                                && flush_counted(&mut wr, &mut out, &backlog).await.is_err()
                            {
                                return;
                            }
                            match tokio::time::timeout(reply_wait(), task).await {
                                Ok(Ok(b)) => Ok(b),
                                Ok(Err(_)) => Err(lost()),
                                Err(_) => Err(timed_out()),
                            }
                        }
                    };
                    match result {
                        Ok(Gathered::Bytes(bytes)) => {
                            out.extend_from_slice(&bytes);
                            bytes.len()
                        }
                        Ok(Gathered::Values(v)) => {
                            // Held whole until the last mention is written.
                            let held = v.held_bytes();
                            backlog.holding(out.len() + held);
                            if v.write_to(&mut wr, &mut out).await.is_err() {
                                return;
                            }
                            held
                        }
                        Err(e) => {
                            let before = out.len();
                            finish.error(&e, &mut out);
                            out.len() - before
                        }
                    }
                }
            };
            backlog.took(counted, size, out.len());
            if out.len() >= WRITE_AT && flush_counted(&mut wr, &mut out, &backlog).await.is_err() {
                return;
            }
            next = rx.try_recv().ok();
        }
        if !out.is_empty() && flush_counted(&mut wr, &mut out, &backlog).await.is_err() {
            return;
        }
    }
}

/// Writes `out` and tells `backlog` that the writer holds nothing more.
async fn flush_counted<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut BytesMut,
    backlog: &Backlog,
) -> std::io::Result<()> {
    flush(wr, out).await?;
    backlog.holding(0);
    Ok(())
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
        let backlog = Arc::new(Backlog::new());
        for p in replies {
            let counted = Counted::of(&p, true, 0);
            backlog.queued(counted);
            tx.send((p, counted))
                .await
                .unwrap_or_else(|_| panic!("queue"));
        }
        drop(tx);
        let mut w = Writes::default();
        write_replies(&mut w, rx, || Duration::from_secs(1), backlog.clone()).await;
        assert_eq!(backlog.owed(), 0, "every reply counted out");
        w
    }

    /// Whether `wait_for_room` lets the reader on within a moment.
    async fn has_room(b: &Backlog, budget: usize) -> Option<bool> {
        tokio::time::timeout(Duration::from_millis(50), b.wait_for_room(budget))
            .await
            .ok()
    }

    #[tokio::test]
    async fn the_reader_waits_while_the_budget_is_owed_and_not_once_the_writer_is_gone() {
        let b = Backlog::new();
        let budget = 1 << 20;
        // One reply past the budget goes out; the next request waits until it is written.
        b.queued(Counted::Bytes(budget + 1));
        assert_eq!(has_room(&b, budget).await, None);
        b.took(Counted::Bytes(budget + 1), budget + 1, budget + 1);
        assert_eq!(has_room(&b, budget).await, None, "taken, not yet written");
        b.holding(0);
        assert_eq!(has_room(&b, budget).await, Some(true));
        // Gets not answered yet count as 512 KiB until one was, then as the last one
        // (a larger one before it decaying by 1/8 per reply), never as less than 32 KiB.
        b.queued(Counted::Values);
        assert_eq!(b.owed(), FIRST_VALUES_GUESS);
        assert_eq!(has_room(&b, budget).await, Some(true));
        b.queued(Counted::Values);
        assert_eq!(has_room(&b, budget).await, None);
        b.took(Counted::Values, 100, 0);
        assert_eq!(b.owed(), FIRST_VALUES_GUESS / 8 * 7);
        b.took(Counted::Values, 100, 0);
        assert_eq!(b.owed(), 0);
        for _ in 0..40 {
            b.queued(Counted::Values);
            b.took(Counted::Values, 100, 0);
        }
        b.queued(Counted::Values);
        assert_eq!(b.owed(), LEAST_VALUES_GUESS);
        b.took(Counted::Values, 3 << 20, 0);
        b.queued(Counted::Values);
        assert_eq!(b.owed(), 3 << 20);
        b.took(Counted::Values, 100, 0);
        // Other requests count at their own size until their reply is taken.
        b.queued(Counted::Request(budget - 10));
        assert_eq!(has_room(&b, budget).await, Some(true));
        b.queued(Counted::Request(10));
        assert_eq!(has_room(&b, budget).await, None);
        b.took(Counted::Request(budget - 10), 8, 0);
        assert_eq!(b.owed(), 10);
        b.took(Counted::Request(10), 8, 0);
        // Barriers count for nothing, and a budget of 0 still lets one through.
        b.queued(Counted::Not);
        assert_eq!(b.owed(), 0);
        assert_eq!(has_room(&b, 0).await, Some(true));
        // A reader waiting when the writer ends is let go, and told so.
        b.queued(Counted::Bytes(budget));
        let (open, ()) = tokio::join!(b.wait_for_room(budget), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(WriterGone(&b));
        });
        assert!(!open);
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
