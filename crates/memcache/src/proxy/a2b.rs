//! Classic ascii commands sent to the servers as binary (`downstream_protocol=binary`, moxi's
//! a2b). Gets become GETKQ/GATKQ per key and one NOOP per server, with the key's index as
//! the opaque; the others one loud request each. With a vBucket map every request carries
//! its vBucket id and a NOT_MY_VBUCKET answer is retried as for binary clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::client::{Finish, Gathered, Pending};
use super::dispatch::{Ctx, NOOP_OPAQUE, error, no_server};
use super::values::Values;
use super::{Cluster, Proxy, broadcast, local, multiget, vbucket};
use crate::a2b::{self, encode_get, server_error};
use crate::ascii::{AsciiRequest, FlushAll, Get, Response, Stats, Value};
use crate::binary::{BinaryRequest, BinaryResponse, Opcode, Status};
use crate::pool::{DownstreamError, DownstreamErrorKind, Expect, JobResult, Reply, Wire};
use crate::stats::merge_stats;

/// Whether `req` goes downstream as binary (the rest keeps the ascii path: `version`,
/// `verbosity`, `quit` and `stats proxy` are answered locally).
pub(crate) fn handles(req: &AsciiRequest) -> bool {
    match req {
        AsciiRequest::Stats(s) => s.args.first().is_none_or(|a| &a[..] != b"proxy"),
        AsciiRequest::Version | AsciiRequest::Verbosity(_) | AsciiRequest::Quit => false,
        _ => true,
    }
}

pub(crate) async fn dispatch(ctx: &Ctx<'_>, req: AsciiRequest) -> Pending {
    match req {
        AsciiRequest::Get(g) => get(ctx, g).await,
        AsciiRequest::FlushAll(f) => flush(ctx, f).await,
        AsciiRequest::Stats(s) => stats(ctx, s).await,
        keyed => single(ctx, keyed).await,
    }
}

/// Storage commands, incr/decr, delete, touch.
async fn single(ctx: &Ctx<'_>, req: AsciiRequest) -> Pending {
    let Some((mut b, kind)) = a2b::request(&req) else {
        return local::ready(b"ERROR\r\n");
    };
    let finish = Finish::A2b {
        kind,
        silent: req.noreply(),
    };
    let Some(route) = ctx.cluster.router.route(&b.key, &ctx.cluster.pool) else {
        return error(finish, no_server());
    };
    b.header.vbucket_or_status = route.vbucket.unwrap_or(0);
    let mut wire = BytesMut::new();
    b.encode(&mut wire);
    if let Some(vb) = route.vbucket {
        return vbucket::retrying_wire(ctx, wire.freeze(), route.server, vb, finish).await;
    }
    let rx = ctx
        .send(route.server, Wire::Binary, wire.freeze(), Expect::BinOne)
        .await;
    Pending::Job(rx, finish)
}

/// One server's share of a get: the GETKQs of its keys.
struct Part {
    server: usize,
    wire: BytesMut,
}

/// What the gathering task needs to finish a get.
struct GetPlan {
    g: Get,
    /// The distinct keys, with their server and vBucket.
    keys: Vec<(Bytes, usize, Option<u16>)>,
    /// Per client key, its index in `keys`.
    order: Vec<usize>,
}

async fn get(ctx: &Ctx<'_>, g: Get) -> Pending {
    let cluster = &ctx.cluster;
    if g.keys.is_empty() {
        return local::ready(b"END\r\n");
    }
    let front = cluster
        .front
        .clone()
        .filter(|_| !g.cas && g.touch.is_none());
    // The cache's answer copies a value per mention: a key named again (`get k k k ...`)
    // is answered below, from one copy.
    if let Some(front) = &front
        && !(g.keys.len() > 1 && multiget::has_repeats(&g.keys))
        && let Some(hit) = front.answer(&g.keys, ctx.proxy.stats())
    {
        return Pending::Ready(hit);
    }
    let mut index: HashMap<&Bytes, usize> = HashMap::with_capacity(g.keys.len());
    let mut keys = Vec::with_capacity(g.keys.len());
    let mut order = Vec::with_capacity(g.keys.len());
    let mut parts: Vec<Part> = Vec::new();
    for key in &g.keys {
        if let Some(i) = index.get(key) {
            order.push(*i);
            continue;
        }
        let Some(route) = cluster.router.route(key, &cluster.pool) else {
            return error(Finish::Ascii { silent: false }, no_server());
        };
        let i = keys.len();
        index.insert(key, i);
        order.push(i);
        keys.push((key.clone(), route.server, route.vbucket));
        let part = match parts.iter_mut().position(|p| p.server == route.server) {
            Some(at) => &mut parts[at],
            None => {
                parts.push(Part {
                    server: route.server,
                    wire: BytesMut::new(),
                });
                let last = parts.len() - 1;
                &mut parts[last]
            }
        };
        let vb = route.vbucket.unwrap_or(0);
        encode_get(&g, key, i as u32, true, vb, &mut part.wire);
    }
    let asked = g.keys.len() as u64;
    let repeated = asked - keys.len() as u64;
    if parts.len() > 1 || repeated > 0 {
        // As the ascii path counts a get it splits over servers or de-duplicates
        // (`multiget::split`).
        let stats = ctx.proxy.stats();
        stats.tot_multiget_keys.fetch_add(asked, Ordering::Relaxed);
        stats
            .tot_multiget_keys_dedupe
            .fetch_add(repeated, Ordering::Relaxed);
    }
    let mut rxs = Vec::with_capacity(parts.len());
    for mut part in parts {
        let mut noop =
            BinaryRequest::new(Opcode::Noop as u8, Bytes::new(), Bytes::new(), Bytes::new());
        noop.header.opaque = NOOP_OPAQUE;
        noop.encode(&mut part.wire);
        let rx = ctx
            .send(
                part.server,
                Wire::Binary,
                part.wire.freeze(),
                Expect::BinUntilNoop,
            )
            .await;
        rxs.push((part.server, rx));
    }
    let plan = GetPlan { g, keys, order };
    let (cluster, proxy, slot) = (ctx.cluster.clone(), ctx.proxy.clone(), ctx.slot);
    let generation = front.as_ref().map(|f| f.generation());
    let (tx, out) = oneshot::channel();
    tokio::spawn(async move {
        let reply = match gather_get(&cluster, &proxy, slot, &plan, rxs).await {
            Ok(values) => {
                if let (Some(front), Some(generation)) = (&front, generation) {
                    front.fill_values(&values.found, generation);
                }
                Gathered::Values(values)
            }
            Err(e) => {
                let mut bytes = BytesMut::new();
                e.encode(&mut bytes);
                Gathered::Bytes(bytes.freeze())
            }
        };
        let _ = tx.send(reply);
    });
    Pending::Task(out, Finish::Ascii { silent: false })
}

/// The get's values (each once, in the client's key order), or the one error element the
/// client gets instead.
async fn gather_get(
    cluster: &Arc<Cluster>,
    proxy: &Arc<Proxy>,
    slot: usize,
    plan: &GetPlan,
    rxs: Vec<(usize, oneshot::Receiver<JobResult>)>,
) -> Result<Values, Response> {
    let mut hits: Vec<Option<Value>> = vec![None; plan.keys.len()];
    let mut refused = Vec::new();
    for (server, rx) in rxs {
        for r in responses(vbucket::received(rx).await)? {
            if r.header.opcode == Opcode::Noop as u8 {
                continue;
            }
            let i = r.header.opaque as usize;
            let Some((key, _, vb)) = plan.keys.get(i) else {
                return Err(protocol());
            };
            match r.status() {
                Status::NO_ERROR => hits[i] = Some(a2b::value(&r, key, plan.g.cas)),
                Status::KEY_NOT_FOUND => {}
                Status::NOT_MY_VBUCKET if vb.is_some() => refused.push((i, server)),
                other => return Err(server_error(other)),
            }
        }
    }
    for (i, server) in refused {
        let (key, _, vb) = &plan.keys[i];
        let vb = vb.unwrap_or(0);
        let mut wire = BytesMut::new();
        encode_get(&plan.g, key, i as u32, false, vb, &mut wire);
        let refusal = Ok(Reply::Binary(vec![BinaryResponse::new(
            Opcode::GetK as u8,
            Status::NOT_MY_VBUCKET,
            i as u32,
            Bytes::new(),
            Bytes::new(),
            Bytes::new(),
        )]));
        let result = vbucket::follow(cluster, proxy, slot, wire.freeze(), vb, server, refusal);
        let rs = responses(result.await)?;
        match rs.first() {
            Some(r) if r.status() == Status::NO_ERROR => {
                hits[i] = Some(a2b::value(r, key, plan.g.cas))
            }
            Some(r) if r.status() == Status::KEY_NOT_FOUND => {}
            Some(r) => return Err(server_error(r.status())),
            None => return Err(protocol()),
        }
    }
    // Per distinct key, where its value is in `found`.
    let mut at: Vec<Option<u32>> = Vec::with_capacity(hits.len());
    let mut found = Vec::new();
    for hit in hits {
        at.push(hit.map(|v| {
            found.push(v);
            (found.len() - 1) as u32
        }));
    }
    let order = plan.order.iter().filter_map(|i| at[*i]).collect();
    Ok(Values { found, order })
}

/// A job's binary responses, or the error element for the client.
fn responses(result: JobResult) -> Result<Vec<BinaryResponse>, Response> {
    match result {
        Ok(Reply::Binary(rs)) => Ok(rs),
        Ok(Reply::Ascii(_)) => Err(protocol()),
        Err(e) => Err(as_element(&e)),
    }
}

fn as_element(e: &DownstreamError) -> Response {
    let line = e.ascii_reply();
    let text = line
        .strip_prefix(b"SERVER_ERROR ")
        .and_then(|t| t.strip_suffix(b"\r\n"))
        .unwrap_or(&line);
    Response::ServerError(Bytes::copy_from_slice(text))
}

fn protocol() -> Response {
    as_element(&DownstreamError::new(DownstreamErrorKind::Protocol, ""))
}

/// `flush_all [delay] [noreply]` as a FLUSH to every server.
async fn flush(ctx: &Ctx<'_>, f: FlushAll) -> Pending {
    let extras = match f.delay {
        Some(d) if d > 0 => Bytes::copy_from_slice(&(d as u32).to_be_bytes()),
        _ => Bytes::new(),
    };
    let b = BinaryRequest::new(Opcode::Flush as u8, extras, Bytes::new(), Bytes::new());
    let mut wire = BytesMut::new();
    b.encode(&mut wire);
    let rxs = broadcast::to_all(ctx, Wire::Binary, wire.freeze(), Expect::BinOne).await;
    let silent = f.noreply;
    broadcast::gather(rxs, Finish::Ascii { silent }, move |results| {
        let mut out = BytesMut::new();
        let el = first_failure(results, |_| Ok(()))
            .err()
            .unwrap_or(Response::Ok);
        if !silent {
            el.encode(&mut out);
        }
        out.freeze()
    })
}

/// The first error among `results`, else `each` applied to every server's responses.
fn first_failure(
    results: Vec<JobResult>,
    mut each: impl FnMut(Vec<BinaryResponse>) -> Result<(), Response>,
) -> Result<(), Response> {
    for r in results {
        let rs = responses(r)?;
        if let Some(bad) = rs.iter().find(|r| r.status() != Status::NO_ERROR) {
            // A stats group the server does not have: memcached's ascii answer is ERROR.
            return Err(if bad.status() == Status::KEY_NOT_FOUND {
                Response::Error
            } else {
                server_error(bad.status())
            });
        }
        each(rs)?;
    }
    Ok(())
}

/// `stats [group]` as a STAT to every server, merged as for ascii stats.
async fn stats(ctx: &Ctx<'_>, s: Stats) -> Pending {
    let group = s.args.join(&b' ');
    let reset = group == b"reset";
    let b = BinaryRequest::new(
        Opcode::Stat as u8,
        Bytes::new(),
        Bytes::from(group),
        Bytes::new(),
    );
    let mut wire = BytesMut::new();
    b.encode(&mut wire);
    // memcached ends some STAT replies without the empty STAT (`sizes_enable`): a NOOP after
    // the request marks where the reply ends (its response has an empty key, so it is not
    // taken for a stat below).
    let mut noop = BinaryRequest::new(Opcode::Noop as u8, Bytes::new(), Bytes::new(), Bytes::new());
    noop.header.opaque = NOOP_OPAQUE;
    noop.encode(&mut wire);
    let rxs = broadcast::to_all(ctx, Wire::Binary, wire.freeze(), Expect::BinUntilNoop).await;
    broadcast::gather(rxs, Finish::Ascii { silent: false }, move |results| {
        let mut lists = Vec::new();
        let mut out = BytesMut::new();
        let r = first_failure(results, |rs| {
            lists.push(
                rs.into_iter()
                    .filter(|r| !r.key.is_empty())
                    .map(|r| (r.key, r.value))
                    .collect::<Vec<_>>(),
            );
            Ok(())
        });
        match r {
            Err(el) => el.encode(&mut out),
            Ok(()) if reset => Response::Reset.encode(&mut out),
            Ok(()) => {
                for (name, value) in merge_stats(&lists) {
                    Response::Stat { name, value }.encode(&mut out);
                }
                Response::End.encode(&mut out);
            }
        }
        out.freeze()
    })
}
