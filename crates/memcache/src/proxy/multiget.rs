//! Multi-key `get`/`gets`/`gat`/`gats` over several servers: one request per server with the
//! keys it owns (each key asked once), sent in parallel, answered in the client's key order
//! (a key named twice is answered twice, as memcached does).

use std::collections::{HashMap, HashSet};

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::client::Pending;
use super::dispatch::Ctx;
use crate::ascii::{Get, Response, Value};
use crate::pool::{DownstreamError, DownstreamErrorKind, JobResult, Reply};
use crate::stats::ProxyStats;

/// Splits `g` per server and gathers the replies.
pub(crate) async fn split(ctx: &Ctx<'_>, g: Get) -> Pending {
    let stats = ctx.proxy.stats();
    let cluster = &ctx.cluster;
    let mut per_server: Vec<(usize, Vec<Bytes>)> = Vec::new();
    let mut seen = HashSet::with_capacity(g.keys.len());
    let mut missing = false;
    for key in &g.keys {
        stats
            .tot_multiget_keys
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !seen.insert(key.clone()) {
            ProxyStats::inc(&stats.tot_multiget_keys_dedupe);
            continue;
        }
        let Some(route) = cluster.router.route(key, &cluster.pool) else {
            missing = true;
            continue;
        };
        match per_server.iter_mut().find(|(s, _)| *s == route.server) {
            Some((_, keys)) => keys.push(key.clone()),
            None => per_server.push((route.server, vec![key.clone()])),
        }
    }
    if missing {
        let e = DownstreamError::new(DownstreamErrorKind::NoServer, "");
        return Pending::Ready(Bytes::from(e.ascii_reply()));
    }
    let mut replies = Vec::with_capacity(per_server.len());
    for (server, keys) in per_server {
        let part = Get {
            cas: g.cas,
            touch: g.touch,
            keys,
        };
        let rx = ctx.send_get(server, part).await;
        replies.push(
            match cluster
                .front
                .as_ref()
                .filter(|_| !g.cas && g.touch.is_none())
            {
                Some(front) => super::dispatch::filling(front.clone(), rx),
                None => rx,
            },
        );
    }
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut results = Vec::with_capacity(replies.len());
        for r in replies {
            results
                .push(r.await.unwrap_or_else(|_| {
                    Err(DownstreamError::new(DownstreamErrorKind::Closed, ""))
                }));
        }
        let _ = tx.send(merge(&g.keys, results));
    });
    Pending::Task(rx)
}

/// The client's reply: the values in key order and `END`, or the first error.
fn merge(keys: &[Bytes], results: Vec<JobResult>) -> Bytes {
    let mut values: HashMap<Bytes, Value> = HashMap::new();
    for r in results {
        match r {
            Err(e) => return Bytes::from(e.ascii_reply()),
            Ok(Reply::Ascii(els)) => {
                for el in els {
                    match el {
                        Response::Value(v) => {
                            values.insert(v.key.clone(), v);
                        }
                        Response::End => {}
                        other => {
                            let mut out = BytesMut::new();
                            other.encode(&mut out);
                            return out.freeze();
                        }
                    }
                }
            }
            Ok(Reply::Binary(_)) => {
                let e = DownstreamError::new(DownstreamErrorKind::Protocol, "");
                return Bytes::from(e.ascii_reply());
            }
        }
    }
    let mut out = BytesMut::new();
    for k in keys {
        if let Some(v) = values.get(k) {
            Response::Value(v.clone()).encode(&mut out);
        }
    }
    out.extend_from_slice(b"END\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(k: &'static [u8], d: &'static [u8]) -> Response {
        Response::Value(Value {
            key: Bytes::from_static(k),
            flags: 0,
            cas: None,
            data: Bytes::from_static(d),
        })
    }

    #[test]
    fn answers_in_key_order_with_duplicates() {
        let keys: Vec<Bytes> = [&b"b"[..], b"a", b"c", b"b"]
            .iter()
            .map(|k| Bytes::copy_from_slice(k))
            .collect();
        let r1 = Ok(Reply::Ascii(vec![val(b"a", b"1"), Response::End]));
        let r2 = Ok(Reply::Ascii(vec![val(b"b", b"2"), Response::End]));
        let out = merge(&keys, vec![r1, r2]);
        assert_eq!(
            &out[..],
            b"VALUE b 0 1\r\n2\r\nVALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\n"
        );
    }

    #[test]
    fn one_failed_server_fails_the_get() {
        let keys = vec![Bytes::from_static(b"a")];
        let e = DownstreamError::new(DownstreamErrorKind::Timeout, "h");
        let out = merge(&keys, vec![Ok(Reply::Ascii(vec![Response::End])), Err(e)]);
        assert_eq!(&out[..], b"SERVER_ERROR proxy downstream timeout h\r\n");
    }
}
