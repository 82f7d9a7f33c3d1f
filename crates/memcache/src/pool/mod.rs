//! Downstream memcached servers: a few persistent connections per server, each carrying
//! many pipelined requests, with connect and request timeouts, one retry on a connection
//! that closed before replying, and a retry interval for failing servers (moxi's
//! `connect_max_errors` / `connect_retry_interval`).
//!
//! A request becomes a [`Job`]: its wire bytes, how its reply is framed ([`Expect`]) and a
//! one-shot channel for the reply. Each connection is one task ([`conn`]) that writes jobs in
//! batches and matches replies to jobs in order, as memcached answers them.

mod conn;
mod error;
mod merge;
mod repeat;
mod server;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::Limits;
use crate::ascii::{Get, Response};
use crate::binary::BinaryResponse;

pub use error::{DownstreamError, DownstreamErrorKind};
pub use server::{Server, ServerAddr, ServerStats};

/// Connection and failure settings of a pool (moxi's `-Z` names in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Timeout of a TCP connect (`connect_timeout`); default 400 ms.
    pub connect_timeout: Duration,
    /// Time a request may wait for its reply once written (`downstream_timeout`); default
    /// 5 s. On expiry the connection is closed and its requests get
    /// `SERVER_ERROR proxy downstream timeout`.
    pub timeout: Duration,
    /// Connections per server and protocol (`downstream_conn_max`); default 4. A client
    /// connection always uses the same one per server, so its requests stay in order.
    pub conns: usize,
    /// Retries of a request whose connection closed before any byte of its reply
    /// (`downstream_retry`); default 1. Only requests that may run twice are retried
    /// (see `pool/repeat.rs`).
    pub retry: u32,
    /// Consecutive errors (failed connects, timeouts) after which a server is left alone for
    /// `retry_interval` (`connect_max_errors`); default 5, 0 = never.
    pub max_errors: u32,
    /// How long a failing server is left alone (`connect_retry_interval`); default 30 s.
    pub retry_interval: Duration,
    /// Jobs queued per connection before senders wait; default 4096.
    pub queue: usize,
    /// Reply size limits.
    pub limits: Limits,
    /// Connect these connections of every server when the pool starts rather than at their
    /// first request (nutcracker's `preconnect`); default `None`. A failed connect is counted
    /// as any other, and the connection is then made at its first request.
    pub preconnect: Option<Wire>,
    /// TCP keepalive on server connections (nutcracker's `tcpkeepalive`): a server host that
    /// vanished without closing them is noticed within [`KEEPALIVE_IDLE`] plus
    /// [`KEEPALIVE_PROBES`] × [`KEEPALIVE_INTERVAL`] of silence, and the connection is closed
    /// (its requests in flight fail, or are sent again when they may run twice); default off.
    pub tcp_keepalive: bool,
}

/// Silence on a server connection before the first keepalive probe: 60 s (Linux's default,
/// two hours, would leave a dead connection in the pool long after anyone cares).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time between keepalive probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered keepalive probes before the kernel closes the connection.
pub const KEEPALIVE_PROBES: u32 = 3;

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(400),
            timeout: Duration::from_secs(5),
            conns: 4,
            retry: 1,
            max_errors: 5,
            retry_interval: Duration::from_secs(30),
            queue: 4096,
            limits: Limits::default(),
            preconnect: None,
            tcp_keepalive: false,
        }
    }
}

/// How the reply to a job is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One ascii reply element.
    One,
    /// `VALUE`s or `STAT`s up to `END`, or any other single element (an error, `RESET`).
    UntilEnd,
    /// Everything up to and including a meta `MN` (a quiet meta command followed by `mn`).
    UntilMn,
    /// Everything up to and including a `VERSION` line: a `stats` sent with a `version`
    /// after it, since some stats replies have no `END` (`stats sizes_enable`).
    UntilVersion,
    /// One binary response.
    BinOne,
    /// Binary responses up to and including one to a NOOP (quiet commands, or a STAT, then
    /// a NOOP).
    BinUntilNoop,
}

/// A reply, element by element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Ascii or meta elements.
    Ascii(Vec<Response>),
    /// Binary responses.
    Binary(Vec<BinaryResponse>),
}

/// What a job's sender receives.
pub type JobResult = Result<Reply, DownstreamError>;

/// One request (or a few, sent together) for one server.
#[derive(Debug)]
pub struct Job {
    /// The bytes to write.
    pub wire: Bytes,
    /// How the reply is framed.
    pub expect: Expect,
    /// Where the reply goes.
    pub tx: oneshot::Sender<JobResult>,
    /// Retries done so far.
    pub retries: u32,
    /// Whether the request may run twice, so that it can be re-sent after its connection
    /// closed with no reply (see `pool/repeat.rs`).
    pub repeatable: bool,
    /// A plain `get`/`gets`: its keys, so that the connection can merge it with the gets
    /// queued next to it into one request (`wire` is then unused).
    pub get: Option<Get>,
}

impl Job {
    /// Its size as queued: its bytes, or its get line's when it carries keys only.
    pub(crate) fn queued_bytes(&self) -> usize {
        if !self.wire.is_empty() {
            return self.wire.len();
        }
        self.get.as_ref().map_or(0, |g| {
            g.name().len() + 2 + g.keys.iter().map(|k| k.len() + 1).sum::<usize>()
        })
    }

    /// A job and the receiver of its reply.
    pub fn new(wire: Bytes, expect: Expect) -> (Job, oneshot::Receiver<JobResult>) {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            repeatable: repeat::repeatable(&wire),
            wire,
            expect,
            tx,
            retries: 0,
            get: None,
        };
        (job, rx)
    }

    /// A `get`/`gets`/`gat`/`gats` job (only `get` and `gets` are merged).
    pub fn get(g: Get) -> (Job, oneshot::Receiver<JobResult>) {
        let wire = if g.touch.is_some() {
            merge::encode_get(&g)
        } else {
            Bytes::new()
        };
        let (mut job, rx) = Job::new(wire, Expect::UntilEnd);
        job.get = Some(g);
        (job, rx)
    }

    /// Answers the job with an error.
    pub fn fail(self, e: DownstreamError) {
        let _ = self.tx.send(Err(e));
    }
}

/// Which connections of a server a job goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Ascii (classic and meta) connections.
    Ascii,
    /// Binary connections.
    Binary,
}

/// The servers of one proxy, with their connections. Dropping the pool ends its connection
/// tasks once their in-flight requests are answered.
#[derive(Debug)]
pub struct Pool {
    servers: Vec<Arc<Server>>,
    senders: Vec<[Vec<mpsc::Sender<Job>>; 2]>,
}

impl Pool {
    /// Starts (lazily connecting) connection tasks for `servers`. Needs a tokio runtime.
    pub fn new(servers: Vec<ServerAddr>, opts: &PoolOptions) -> Pool {
        let opts = Arc::new(opts.clone());
        let conns = opts.conns.max(1);
        let mut out = Vec::new();
        let mut senders = Vec::new();
        for addr in servers {
            let server = Arc::new(Server::new(addr, opts.clone()));
            let mut per = [Vec::new(), Vec::new()];
            for (w, wire) in [Wire::Ascii, Wire::Binary].into_iter().enumerate() {
                for _ in 0..conns {
                    let (tx, rx) = mpsc::channel(opts.queue.max(1));
                    tokio::spawn(conn::run(server.clone(), wire, rx));
                    per[w].push(tx);
                }
            }
            out.push(server);
            senders.push(per);
        }
        Pool {
            servers: out,
            senders,
        }
    }

    /// The servers, in configuration order.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// Queues `job` on connection `slot % conns` of server `index` (waits while that
    /// connection's queue is full). A job for a server that does not exist is failed.
    pub async fn send(&self, index: usize, wire: Wire, slot: usize, job: Job) {
        let Some(per) = self.senders.get(index) else {
            job.fail(DownstreamError::new(DownstreamErrorKind::NoServer, ""));
            return;
        };
        let conns = &per[wire as usize];
        let tx = &conns[slot % conns.len()];
        let server = &self.servers[index];
        server.queued(&job);
        if let Err(mpsc::error::SendError(job)) = tx.send(job).await {
            server.took(&job);
            let host = server.addr().host.clone();
            job.fail(DownstreamError::new(DownstreamErrorKind::Closed, host));
        }
    }
}
