//! Multi-key `get`/`gets`/`gat`/`gats` over several servers: one request per server with the
//! keys it owns (each key asked once), sent in parallel, answered in the client's key order
//! (a key named twice is answered twice, as memcached does, from one copy of its value).

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::client::{Finish, Gathered, Pending};
use super::dispatch::Ctx;
use super::values::Values;
use crate::ascii::{Get, Response, Value};
use crate::pool::{DownstreamError, DownstreamErrorKind, JobResult, Reply};
use crate::stats::ProxyStats;

/// Longest `gat`/`gats` line sent to a server. memcached closes a connection whose read
/// buffer ends in an unfinished line of more than 2048 bytes, unless it is a `get`/`gets`
/// (dropping the replies it has not sent yet, to requests it has run); a longer `gat`
/// pipelined behind other requests can end up there.
const MAX_GAT_LINE: usize = 2048;

/// The length of the `gat`/`gats` line of `g` with no keys, and with the keys; 0 for a
/// `get`/`gets`, whose lines may be of any length.
fn gat_line(g: &Get) -> (usize, usize) {
    let Some(t) = g.touch else { return (0, 0) };
    let bare = g.name().len() + format!(" {t}").len() + 2;
    (
        bare,
        bare + g.keys.iter().map(|k| k.len() + 1).sum::<usize>(),
    )
}

/// Whether a key of `keys` is named twice. Such a get goes through [`split`] even when its
/// keys are on one server: the server would send a value per mention, all held at once.
pub(crate) fn has_repeats(keys: &[Bytes]) -> bool {
    // Short lists, the common multi-get, are cheaper to compare than to hash.
    if keys.len() <= 16 {
        return keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k));
    }
    let mut seen = HashSet::with_capacity(keys.len());
    !keys.iter().all(|k| seen.insert(&k[..]))
}

/// Whether `g` must be split even when its keys are on one server.
pub(crate) fn too_long(g: &Get) -> bool {
    gat_line(g).1 > MAX_GAT_LINE
}

/// Splits `g` per server (and a long `gat` in lines of at most [`MAX_GAT_LINE`]) and
/// gathers the replies.
pub(crate) async fn split(ctx: &Ctx<'_>, g: Get) -> Pending {
    let stats = ctx.proxy.stats();
    let cluster = &ctx.cluster;
    let (bare, _) = gat_line(&g);
    // Per request: its server, its keys and (for a gat) its line length.
    let mut per_server: Vec<(usize, Vec<Bytes>, usize)> = Vec::new();
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
        let more = key.len() + 1;
        let part = per_server
            .iter_mut()
            .rev()
            .find(|(s, _, _)| *s == route.server);
        match part {
            Some((_, keys, len)) if bare == 0 || *len + more <= MAX_GAT_LINE => {
                keys.push(key.clone());
                *len += more;
            }
            _ => per_server.push((route.server, vec![key.clone()], bare + more)),
        }
    }
    if missing {
        let e = DownstreamError::new(DownstreamErrorKind::NoServer, "");
        return Pending::Ready(Bytes::from(e.ascii_reply()));
    }
    stats.tot_multiget_fragments.fetch_add(
        per_server.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut replies = Vec::with_capacity(per_server.len());
    for (server, keys, _) in per_server {
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
    Pending::Task(rx, Finish::Ascii { silent: false })
}

/// The client's reply: the values in key order and `END`, or the first error.
fn merge(keys: &[Bytes], results: Vec<JobResult>) -> Gathered {
    // Each key was asked once, so each value comes once; a server answering a key twice
    // still leaves one value for it.
    let mut found: Vec<Value> = Vec::new();
    for r in results {
        match r {
            Err(e) => return Gathered::Bytes(Bytes::from(e.ascii_reply())),
            Ok(Reply::Ascii(els)) => {
                for el in els {
                    match el {
                        Response::Value(v) => found.push(v),
                        Response::End => {}
                        other => {
                            let mut out = BytesMut::new();
                            other.encode(&mut out);
                            return Gathered::Bytes(out.freeze());
                        }
                    }
                }
            }
            Ok(Reply::Binary(_)) => {
                let e = DownstreamError::new(DownstreamErrorKind::Protocol, "");
                return Gathered::Bytes(Bytes::from(e.ascii_reply()));
            }
        }
    }
    Gathered::Values(Values::for_keys(keys, found))
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
        let Gathered::Values(out) = merge(&keys, vec![r1, r2]) else {
            panic!("not values");
        };
        assert_eq!(out.found.len(), 2, "one copy of b");
        assert_eq!(
            out.to_vec(),
            b"VALUE b 0 1\r\n2\r\nVALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\n"
        );
    }

    #[test]
    fn repeats_found_only_when_a_key_comes_again() {
        let ks = |n: usize, again: Option<usize>| -> Vec<Bytes> {
            let mut v: Vec<Bytes> = (0..n).map(|i| Bytes::from(format!("k{i}"))).collect();
            if let Some(i) = again {
                v.push(v[i].clone());
            }
            v
        };
        for n in [1, 2, 16, 17, 100] {
            assert!(!has_repeats(&ks(n, None)), "{n}");
            assert!(has_repeats(&ks(n, Some(0))), "{n}");
            assert!(has_repeats(&ks(n, Some(n - 1))), "{n}");
        }
    }

    #[test]
    fn one_failed_server_fails_the_get() {
        let keys = vec![Bytes::from_static(b"a")];
        let e = DownstreamError::new(DownstreamErrorKind::Timeout, "h");
        let out = merge(&keys, vec![Ok(Reply::Ascii(vec![Response::End])), Err(e)]);
        let Gathered::Bytes(out) = out else {
            panic!("not bytes");
        };
        assert_eq!(&out[..], b"SERVER_ERROR proxy downstream timeout h\r\n");
    }
}
