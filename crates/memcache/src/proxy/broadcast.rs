//! Requests for every server: `flush_all` and `stats` (merged with [`merge_stats`]), in both
//! protocols.

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::client::{Finish, Pending};
use super::dispatch::{Ctx, NOOP_OPAQUE};
use super::local;
use crate::ascii::{AsciiRequest, Response};
use crate::binary::{BinaryRequest, BinaryResponse, Opcode, Status, error_reply};
use crate::pool::{DownstreamError, DownstreamErrorKind, Expect, JobResult, Reply, Wire};
use crate::stats::{ProxyStats, merge_stats};

type Replies = Vec<oneshot::Receiver<JobResult>>;

pub(crate) async fn to_all(ctx: &Ctx<'_>, via: Wire, wire: Bytes, expect: Expect) -> Replies {
    ProxyStats::inc(&ctx.proxy.stats().tot_broadcast);
    let n = ctx.cluster.pool.servers().len();
    let mut rxs = Vec::with_capacity(n);
    for server in 0..n {
        rxs.push(ctx.send(server, via, wire.clone(), expect).await);
    }
    rxs
}

/// Gathers the replies in a task; `finish` turns them into the client's bytes, and `on_error`
/// writes the error if they do not come in time.
pub(crate) fn gather(
    rxs: Replies,
    on_error: Finish,
    finish: impl FnOnce(Vec<JobResult>) -> Bytes + Send + 'static,
) -> Pending {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut results = Vec::with_capacity(rxs.len());
        for r in rxs {
            results
                .push(r.await.unwrap_or_else(|_| {
                    Err(DownstreamError::new(DownstreamErrorKind::Closed, ""))
                }));
        }
        let _ = tx.send(finish(results).into());
    });
    Pending::Task(rx, on_error)
}

fn encode(els: &[Response]) -> Bytes {
    let mut out = BytesMut::new();
    els.iter().for_each(|e| e.encode(&mut out));
    out.freeze()
}

/// `flush_all` and `stats [args]` (`stats proxy` is answered locally).
pub(crate) async fn ascii(ctx: &Ctx<'_>, mut req: AsciiRequest) -> Pending {
    let mut silent = false;
    let expect = match &mut req {
        AsciiRequest::Stats(s) if s.args.first().is_some_and(|a| &a[..] == b"proxy") => {
            return local::stats_proxy(ctx);
        }
        AsciiRequest::FlushAll(f) => {
            silent = std::mem::replace(&mut f.noreply, false);
            Expect::One
        }
        // memcached ends some stats replies without an `END` (`stats sizes_enable`): a
        // `version` after the request marks where the reply ends.
        _ => Expect::UntilVersion,
    };
    let mut wire = BytesMut::new();
    req.encode(&mut wire);
    if expect == Expect::UntilVersion {
        wire.extend_from_slice(b"version\r\n");
    }
    let rxs = to_all(ctx, Wire::Ascii, wire.freeze(), expect).await;
    gather(rxs, Finish::Ascii { silent }, move |results| {
        if silent {
            return Bytes::new();
        }
        merge_ascii(results)
    })
}

/// All servers' stats merged, or all servers' `ITEM`/`PREFIX` lines one after the other;
/// otherwise the first server's reply if every server gave the same one (`OK`, `RESET`),
/// else the first that differs (an error).
fn merge_ascii(results: Vec<JobResult>) -> Bytes {
    let mut lists = Vec::new();
    let mut listing = Vec::new();
    let mut first_err: Option<Bytes> = None;
    let mut other: Option<Vec<Response>> = None;
    for r in results {
        match r {
            Err(e) => {
                first_err.get_or_insert_with(|| Bytes::from(e.ascii_reply()));
            }
            Ok(Reply::Ascii(mut els)) => {
                if matches!(els.last(), Some(Response::Version(_))) {
                    els.pop();
                }
                let is_stats = els.last() == Some(&Response::End)
                    && els[..els.len() - 1]
                        .iter()
                        .all(|e| matches!(e, Response::Stat { .. }));
                let is_listing = els.last() == Some(&Response::End)
                    && els[..els.len() - 1]
                        .iter()
                        .all(|e| matches!(e, Response::Listing(_)));
                if is_listing && els.len() > 1 {
                    listing.extend(els.into_iter().filter(|e| *e != Response::End));
                } else if is_stats && els.len() > 1 {
                    lists.push(
                        els.into_iter()
                            .filter_map(|e| match e {
                                Response::Stat { name, value } => Some((name, value)),
                                _ => None,
                            })
                            .collect::<Vec<_>>(),
                    );
                } else {
                    match &other {
                        None => other = Some(els),
                        Some(o) if *o == els => {}
                        Some(_) => {
                            first_err.get_or_insert_with(|| encode(&els));
                        }
                    }
                }
            }
            Ok(Reply::Binary(_)) => {}
        }
    }
    if !lists.is_empty() {
        let mut out = BytesMut::new();
        for (name, value) in merge_stats(&lists) {
            Response::Stat { name, value }.encode(&mut out);
        }
        out.extend_from_slice(b"END\r\n");
        return out.freeze();
    }
    if !listing.is_empty() {
        listing.push(Response::End);
        return encode(&listing);
    }
    match (first_err, other) {
        (Some(e), _) => e,
        (None, Some(els)) => encode(&els),
        (None, None) => Bytes::from_static(b"END\r\n"),
    }
}

/// Binary FLUSH(Q) and STAT.
pub(crate) async fn binary(ctx: &Ctx<'_>, mut b: BinaryRequest) -> Pending {
    let header = b.header;
    let quiet = b.is_quiet();
    let stat = b.header.opcode == Opcode::Stat as u8;
    if quiet {
        b.header.opcode = Opcode::Flush as u8;
    }
    let mut wire = BytesMut::new();
    b.encode(&mut wire);
    let expect = if stat {
        // memcached ends some STAT replies without the empty STAT (`sizes_enable`): a NOOP
        // after the request marks where the reply ends.
        let mut noop =
            BinaryRequest::new(Opcode::Noop as u8, Bytes::new(), Bytes::new(), Bytes::new());
        noop.header.opaque = NOOP_OPAQUE;
        noop.encode(&mut wire);
        Expect::BinUntilNoop
    } else {
        Expect::BinOne
    };
    let rxs = to_all(ctx, Wire::Binary, wire.freeze(), expect).await;
    gather(rxs, Finish::Binary(header), move |results| {
        let mut lists = Vec::new();
        let mut last: Option<BinaryResponse> = None;
        for r in results {
            let rs = match r {
                Ok(Reply::Binary(mut rs)) => {
                    if stat {
                        rs.pop(); // the NOOP's
                    }
                    rs
                }
                Ok(Reply::Ascii(_)) => return error_reply(&header, Status::INTERNAL_ERROR),
                Err(e) => return error_reply(&header, e.binary_status()),
            };
            if let Some(bad) = rs.iter().find(|r| r.status() != Status::NO_ERROR) {
                let mut out = BytesMut::new();
                bad.encode(&mut out);
                return out.freeze();
            }
            if stat {
                lists.push(
                    rs.iter()
                        .filter(|r| !r.key.is_empty())
                        .map(|r| (r.key.clone(), r.value.clone()))
                        .collect::<Vec<_>>(),
                );
            }
            // The empty STAT that ends a stats reply, when the servers sent one.
            last = rs
                .into_iter()
                .last()
                .filter(|r| !stat || r.key.is_empty())
                .or(last);
        }
        let mut out = BytesMut::new();
        if stat {
            for (k, v) in merge_stats(&lists) {
                BinaryResponse::new(
                    header.opcode,
                    Status::NO_ERROR,
                    header.opaque,
                    Bytes::new(),
                    k,
                    v,
                )
                .encode(&mut out);
            }
        }
        if quiet {
            return out.freeze();
        }
        match last {
            Some(mut r) => {
                r.header.opaque = header.opaque;
                r.header.opcode = header.opcode;
                r.encode(&mut out);
            }
            None if stat && !lists.iter().all(Vec::is_empty) => {}
            None => BinaryResponse::new(
                header.opcode,
                Status::NO_ERROR,
                header.opaque,
                Bytes::new(),
                Bytes::new(),
                Bytes::new(),
            )
            .encode(&mut out),
        }
        out.freeze()
    })
}
