//! What each request becomes: a local reply, one downstream job, or a gathering task.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::client::{Finish, Pending};
use super::{Cluster, FrontCache, Proxy, broadcast, local, multiget};
use crate::ascii::{AsciiRequest, Get};
use crate::binary::{BinaryRequest, Opcode, error_reply};
use crate::meta::{MetaKind, MetaRequest};
use crate::pool::{DownstreamError, DownstreamErrorKind, Expect, Job, Wire};
use crate::stats::ProxyStats;
use crate::{Request, binary::Status};

/// Opaque of the NOOP the proxy sends after a quiet binary command.
pub(crate) const NOOP_OPAQUE: u32 = 0x0411_F00D;

/// What a connection's requests need.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub proxy: &'a Arc<Proxy>,
    pub cluster: Arc<Cluster>,
    /// Which connection of each server this client uses (keeps its requests in order).
    pub slot: usize,
}

impl Ctx<'_> {
    /// Sends `wire` to server `server`; the reply comes through the returned receiver.
    pub(crate) async fn send(
        &self,
        server: usize,
        via: Wire,
        wire: Bytes,
        expect: Expect,
    ) -> tokio::sync::oneshot::Receiver<crate::pool::JobResult> {
        let (job, rx) = Job::new(wire, expect);
        self.cluster.pool.send(server, via, self.slot, job).await;
        rx
    }

    /// Sends a get to server `server` (ascii), where it may be merged with other gets.
    pub(crate) async fn send_get(
        &self,
        server: usize,
        g: Get,
    ) -> tokio::sync::oneshot::Receiver<crate::pool::JobResult> {
        let (job, rx) = Job::get(g);
        self.cluster
            .pool
            .send(server, Wire::Ascii, self.slot, job)
            .await;
        rx
    }
}

/// Turns one request into its pending reply.
pub(crate) async fn dispatch(ctx: &Ctx<'_>, req: Request) -> Pending {
    count(ctx.proxy.stats(), &req);
    if let Some(front) = &ctx.cluster.front {
        invalidate(front, &req);
    }
    match req {
        Request::Ascii(a) => ascii(ctx, a).await,
        Request::Meta(m) => meta(ctx, m).await,
        Request::Binary(b) => binary(ctx, b).await,
    }
}

/// The per-command counter of `req`.
fn count(st: &ProxyStats, req: &Request) {
    use crate::ascii::{ArithKind, StoreKind};
    let c = match req {
        Request::Meta(_) => &st.cmd_meta,
        Request::Binary(_) => &st.cmd_binary,
        Request::Ascii(a) => match a {
            AsciiRequest::Get(g) if g.touch.is_some() => &st.cmd_gat,
            AsciiRequest::Get(g) if g.cas => &st.cmd_gets,
            AsciiRequest::Get(_) => &st.cmd_get,
            AsciiRequest::Store(s) => match s.kind {
                StoreKind::Set => &st.cmd_set,
                StoreKind::Add => &st.cmd_add,
                StoreKind::Replace => &st.cmd_replace,
                StoreKind::Append => &st.cmd_append,
                StoreKind::Prepend => &st.cmd_prepend,
                StoreKind::Cas(_) => &st.cmd_cas,
            },
            AsciiRequest::Arith(x) => match x.kind {
                ArithKind::Incr => &st.cmd_incr,
                ArithKind::Decr => &st.cmd_decr,
            },
            AsciiRequest::Delete(_) => &st.cmd_delete,
            AsciiRequest::Touch(_) => &st.cmd_touch,
            AsciiRequest::FlushAll(_) => &st.cmd_flush_all,
            AsciiRequest::Stats(_) => &st.cmd_stats,
            AsciiRequest::Version | AsciiRequest::Verbosity(_) | AsciiRequest::Quit => {
                &st.cmd_other
            }
        },
    };
    ProxyStats::inc(c);
}

/// Drops from the front cache what `req` may change.
fn invalidate(front: &FrontCache, req: &Request) {
    use Opcode::*;
    match req {
        Request::Ascii(AsciiRequest::FlushAll(_)) => front.clear(),
        Request::Ascii(AsciiRequest::Get(g)) if g.touch.is_none() => {}
        Request::Ascii(a) => a.keys().iter().for_each(|k| front.invalidate(k)),
        Request::Meta(m) => match m.kind {
            MetaKind::Set | MetaKind::Delete | MetaKind::Arithmetic => {
                front.invalidate(&m.item_key().unwrap_or_else(|| m.key.clone()))
            }
            MetaKind::Get | MetaKind::Noop | MetaKind::Debug => {}
        },
        Request::Binary(b) => match b.opcode() {
            Some(Flush | FlushQ) => front.clear(),
            Some(Get | GetQ | GetK | GetKQ | Noop | Version | Stat | Quit | QuitQ) | None => {}
            Some(_) if !b.key.is_empty() => front.invalidate(&b.key),
            Some(_) => {}
        },
    }
}

pub(crate) fn no_server() -> DownstreamError {
    DownstreamError::new(DownstreamErrorKind::NoServer, "")
}

async fn ascii(ctx: &Ctx<'_>, req: AsciiRequest) -> Pending {
    if ctx.cluster.a2b && super::a2b::handles(&req) {
        return super::a2b::dispatch(ctx, req).await;
    }
    match req {
        AsciiRequest::Get(g) => get(ctx, g).await,
        AsciiRequest::FlushAll(_) | AsciiRequest::Stats(_) => broadcast::ascii(ctx, req).await,
        AsciiRequest::Version => local::version(ctx),
        AsciiRequest::Verbosity(v) => local::ready(if v.noreply { &b""[..] } else { b"OK\r\n" }),
        AsciiRequest::Quit => Pending::Close(Bytes::new()),
        mut keyed => {
            let silent = strip_noreply(&mut keyed);
            let Some(key) = keyed.keys().first() else {
                return local::ready(b"ERROR\r\n");
            };
            let Some(route) = ctx.cluster.router.route(key, &ctx.cluster.pool) else {
                return error(Finish::Ascii { silent }, no_server());
            };
            let mut wire = BytesMut::new();
            keyed.encode(&mut wire);
            let rx = ctx
                .send(route.server, Wire::Ascii, wire.freeze(), Expect::One)
                .await;
            Pending::Job(rx, Finish::Ascii { silent })
        }
    }
}

/// Clears `noreply` (the proxy needs the reply to know the request is done) and says
/// whether it was set.
fn strip_noreply(req: &mut AsciiRequest) -> bool {
    let flag = match req {
        AsciiRequest::Store(s) => &mut s.noreply,
        AsciiRequest::Arith(a) => &mut a.noreply,
        AsciiRequest::Delete(d) => &mut d.noreply,
        AsciiRequest::Touch(t) => &mut t.noreply,
        _ => return false,
    };
    std::mem::replace(flag, false)
}

async fn get(ctx: &Ctx<'_>, g: Get) -> Pending {
    // A key named again (`get k k k ...`, up to a 1 MiB line) would cost a copy of its value
    // per mention, in the front cache's answer or the one server's reply; split asks for
    // each key once and answers every mention from that one copy.
    if g.keys.len() > 1 && multiget::has_repeats(&g.keys) {
        return multiget::split(ctx, g).await;
    }
    let cluster = &ctx.cluster;
    let mut servers = g
        .keys
        .iter()
        .map(|k| cluster.router.route(k, &cluster.pool));
    let first = match servers.next() {
        None => return local::ready(b"END\r\n"),
        Some(None) => return error(Finish::Ascii { silent: false }, no_server()),
        Some(Some(r)) => r.server,
    };
    let one_server = servers.all(|r| r.is_some_and(|r| r.server == first));
    let front = cluster
        .front
        .as_ref()
        .filter(|_| !g.cas && g.touch.is_none());
    if let Some(front) = front
        && let Some(hit) = front.answer(&g.keys, ctx.proxy.stats())
    {
        return Pending::Ready(hit);
    }
    if !one_server || multiget::too_long(&g) {
        return multiget::split(ctx, g).await;
    }
    let rx = ctx.send_get(first, g).await;
    let rx = match front {
        Some(front) => filling(front.clone(), rx),
        None => rx,
    };
    Pending::Job(rx, Finish::Ascii { silent: false })
}

/// Passes a get's reply on, caching its values in the front cache on the way.
pub(crate) fn filling(
    front: Arc<FrontCache>,
    rx: tokio::sync::oneshot::Receiver<crate::pool::JobResult>,
) -> tokio::sync::oneshot::Receiver<crate::pool::JobResult> {
    let generation = front.generation();
    let (tx, out) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = rx
            .await
            .unwrap_or_else(|_| Err(DownstreamError::new(DownstreamErrorKind::Closed, "")));
        front.fill(&result, generation);
        let _ = tx.send(result);
    });
    out
}

async fn meta(ctx: &Ctx<'_>, m: MetaRequest) -> Pending {
    if m.kind == MetaKind::Noop {
        return local::ready(b"MN\r\n");
    }
    let key = m.item_key().unwrap_or_else(|| m.key.clone());
    let quiet = m.is_quiet();
    let finish = if quiet {
        Finish::MetaQuiet
    } else {
        Finish::Ascii { silent: false }
    };
    let Some(route) = ctx.cluster.router.route(&key, &ctx.cluster.pool) else {
        return error(finish, no_server());
    };
    let mut wire = BytesMut::new();
    m.encode(&mut wire);
    let expect = if quiet {
        wire.extend_from_slice(b"mn\r\n");
        Expect::UntilMn
    } else {
        Expect::One
    };
    let rx = ctx
        .send(route.server, Wire::Ascii, wire.freeze(), expect)
        .await;
    Pending::Job(rx, finish)
}

async fn binary(ctx: &Ctx<'_>, mut b: BinaryRequest) -> Pending {
    use Opcode::*;
    let Some(op) = b.opcode() else {
        return Pending::Ready(error_reply(&b.header, Status::UNKNOWN_COMMAND));
    };
    match op {
        Noop | Version => return local::binary(ctx, &b),
        Quit => {
            return match local::binary(ctx, &b) {
                Pending::Ready(bytes) => Pending::Close(bytes),
                other => other,
            };
        }
        QuitQ => return Pending::Close(Bytes::new()),
        // memcached 1.6.18 does not serve VERBOSITY: it answers UNKNOWN_COMMAND and then
        // skips 4 bytes past the frame. On a shared connection those bytes belong to the next
        // request, and the rest is read as requests nobody sent (whose replies go to other
        // clients), so it is answered here, as for opcodes memcached does not know.
        Verbosity => return Pending::Ready(error_reply(&b.header, Status::UNKNOWN_COMMAND)),
        Flush | FlushQ | Stat => return broadcast::binary(ctx, b).await,
        _ => {}
    }
    let keyed = !matches!(op, SaslListMechs | SaslAuth | SaslStep | Quit | QuitQ);
    let route = if keyed {
        ctx.cluster.router.route(&b.key, &ctx.cluster.pool)
    } else {
        Some(crate::route::Route {
            server: 0,
            vbucket: None,
        })
    };
    let quiet = op.is_quiet();
    let finish = if quiet {
        Finish::BinaryQuiet(b.header)
    } else {
        Finish::Binary(b.header)
    };
    let Some(route) = route else {
        return error(finish, no_server());
    };
    if let Some(vb) = route.vbucket {
        b.header.vbucket_or_status = vb;
        if !quiet {
            return super::vbucket::retrying(ctx, b, route.server, vb).await;
        }
    }
    let mut wire = BytesMut::new();
    b.encode(&mut wire);
    let expect = if quiet {
        let mut noop = BinaryRequest::new(Noop as u8, Bytes::new(), Bytes::new(), Bytes::new());
        noop.header.opaque = NOOP_OPAQUE;
        noop.encode(&mut wire);
        Expect::BinUntilNoop
    } else {
        Expect::BinOne
    };
    let rx = ctx
        .send(route.server, Wire::Binary, wire.freeze(), expect)
        .await;
    Pending::Job(rx, finish)
}

/// A reply that is an error from the start.
pub(crate) fn error(finish: Finish, e: DownstreamError) -> Pending {
    let mut out = BytesMut::new();
    finish.error(&e, &mut out);
    Pending::Ready(out.freeze())
}
