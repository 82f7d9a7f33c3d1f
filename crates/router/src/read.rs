//! GET and HEAD: choose a replica (random, multi-HEAD or hedged), stream its answer, and move
//! on to another replica when one fails.
//!
//! A replica "fails" a read with a connect error, a timeout, a 5xx, or a 404 (another replica,
//! or in migration the other ring, may hold the file; a 404 is returned only when every
//! replica said so or failed). Reads carry no body, so every retry is safe.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, Response, StatusCode};
use rand::seq::SliceRandom;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::body::Body;
use crate::h1::{Dial, ReadBody, ReadRequest};
use crate::metrics;
use crate::replica::Replica;
use crate::router::{Inner, text};
use crate::settings::ReadMode;
use crate::topology::Target;
use crate::upstream::{SendError, relay, send_read};

/// Replicas in the order a read tries them: per ring (migration ring first), the usable ones
/// in random order, then the unhealthy ones (a stale health check should not cost a read).
/// Replicas not in the roster are never tried.
pub(crate) fn read_order(targets: &[Target]) -> Vec<Arc<Replica>> {
    let mut rng = rand::rng();
    let mut out: Vec<Arc<Replica>> = Vec::new();
    for t in targets {
        let fresh = |r: &&Arc<Replica>| r.in_roster() && !out.iter().any(|o| Arc::ptr_eq(o, r));
        let mut good: Vec<_> = t
            .replicas
            .iter()
            .filter(fresh)
            .filter(|r| r.healthy())
            .cloned()
            .collect();
        let mut sick: Vec<_> = t
            .replicas
            .iter()
            .filter(fresh)
            .filter(|r| !r.healthy())
            .cloned()
            .collect();
        good.shuffle(&mut rng);
        sick.shuffle(&mut rng);
        out.extend(good);
        out.extend(sick);
    }
    out
}

pub(crate) async fn read(
    inner: &Arc<Inner>,
    method: Method,
    headers: &HeaderMap,
    pq: &str,
    targets: &[Target],
) -> Response<Body> {
    let order = read_order(targets);
    if order.is_empty() {
        let shards: Vec<&str> = targets.iter().map(|t| t.shard.as_str()).collect();
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no replica of {} is in the roster\n", shards.join(", ")),
        );
    }
    // Copied out: a guard held across the multi-HEAD probe would pin an arc-swap slot.
    let mode = inner.settings.load().read_mode;
    let (order, hedge) = match mode {
        ReadMode::Random => (order, None),
        ReadMode::Hedged { delay } => (order, Some(delay)),
        ReadMode::MultiHead { timeout } => (multi_head(inner, order, pq, timeout).await, None),
    };
    let req = Arc::new(ReadRequest::new(method, pq.to_string(), headers));
    attempt(inner, req, order, hedge).await
}

/// How reads reach replicas, from the settings.
fn dial(inner: &Inner) -> Dial {
    let s = inner.settings.load();
    Dial {
        connect_timeout: s.connect_timeout,
        idle_per_host: s.pool_idle_per_host,
        tls: inner.storage_tls.clone(),
    }
}

/// photosrv's multi-HEAD: HEAD all replicas, keep those answering below 400 within `timeout`
/// (in random order), and put the rest after them.
async fn multi_head(
    inner: &Arc<Inner>,
    order: Vec<Arc<Replica>>,
    pq: &str,
    timeout: Duration,
) -> Vec<Arc<Replica>> {
    let deadline = Instant::now() + timeout;
    let mut set = JoinSet::new();
    let mut pending = vec![true; order.len()];
    let head = Arc::new(ReadRequest::new(
        Method::HEAD,
        pq.to_string(),
        &HeaderMap::new(),
    ));
    for (i, r) in order.iter().enumerate() {
        let (req, r, dial) = (head.clone(), r.clone(), dial(inner));
        // The round's deadline ends a HEAD that hangs (its task is dropped with the set);
        // a per-request timeout as long would race it, and a round ended by a hanging
        // replica could go uncounted.
        set.spawn(async move { (i, send_read(r, req, dial, timeout * 2).await) });
    }
    let mut good = Vec::new();
    let mut answered = |joined: Option<Result<Attempt, tokio::task::JoinError>>| match joined {
        None => false,
        Some(Ok((i, res))) => {
            pending[i] = false;
            if res.is_ok_and(|resp| resp.status().as_u16() < 400) {
                good.push(i);
            }
            true
        }
        Some(Err(_)) => true,
    };
    loop {
        tokio::select! {
            // An answer that is ready counts before the deadline does.
            biased;
            joined = set.join_next() => if !answered(joined) { break },
            _ = tokio::time::sleep_until(deadline) => {
                while let Some(joined) = set.try_join_next() {
                    answered(Some(joined));
                }
                if pending.contains(&true) {
                    metrics::multi_head_timeout();
                    for (i, _) in pending.iter().enumerate().filter(|(_, p)| **p) {
                        order[i].record(timeout, false);
                    }
                }
                break;
            }
        }
    }
    good.shuffle(&mut rand::rng());
    let mut out: Vec<Arc<Replica>> = good.iter().map(|&i| order[i].clone()).collect();
    out.extend(
        order
            .iter()
            .enumerate()
            .filter(|(i, _)| !good.contains(i))
            .map(|(_, r)| r.clone()),
    );
    out
}

type Attempt = (usize, Result<Response<ReadBody>, SendError>);

/// Tries `order` until one replica answers well. With `hedge`, a replica that has not
/// answered after the delay gets company: the next replica is asked too, first answer wins.
///
/// The first attempt runs inline in the request's task, unboxed: most reads end with it, and
/// a task of its own would cost an allocation and a wake-up. Hedges and retries run as tasks
/// beside it.
async fn attempt(
    inner: &Arc<Inner>,
    req: Arc<ReadRequest>,
    order: Vec<Arc<Replica>>,
    hedge: Option<Duration>,
) -> Response<Body> {
    let timeout = inner.settings.load().response_timeout;
    let dial = dial(inner);
    let mut errors: Vec<String> = Vec::new();
    let mut fallback: Option<Response<ReadBody>> = None;
    let make = |next: &mut usize| {
        let i = *next;
        let r = order.get(i)?.clone();
        *next += 1;
        let (req, dial) = (req.clone(), dial.clone());
        Some(async move { (i, send_read(r, req, dial, timeout).await) })
    };
    let mut next = 0;
    let Some(first) = make(&mut next) else {
        return text(StatusCode::BAD_GATEWAY, "no replica to read from\n");
    };
    let mut first = pin!(first);
    let mut first_running = true;
    let mut set: JoinSet<Attempt> = JoinSet::new();
    let mut last_launch = Instant::now();
    while first_running || !set.is_empty() {
        let hedge_at = hedge
            .filter(|_| next < order.len())
            .map(|d| last_launch + d);
        // A retry starts only when nothing else is running (a hedge already is one).
        tokio::select! {
            (_, res) = &mut first, if first_running => {
                first_running = false;
                if let Some(resp) = judge(res, &mut fallback, &mut errors) {
                    return relay(resp, inner);
                }
                if set.is_empty() && let Some(f) = make(&mut next) {
                    set.spawn(f);
                    metrics::retry();
                    last_launch = Instant::now();
                }
            }
            Some(joined) = set.join_next(), if !set.is_empty() => {
                let Ok((_, res)) = joined else { continue };
                if let Some(resp) = judge(res, &mut fallback, &mut errors) {
                    return relay(resp, inner);
                }
                if set.is_empty() && !first_running && let Some(f) = make(&mut next) {
                    set.spawn(f);
                    metrics::retry();
                    last_launch = Instant::now();
                }
            }
            _ = sleep_until(hedge_at) => {
                if let Some(f) = make(&mut next) {
                    set.spawn(f);
                    metrics::hedge();
                }
                last_launch = Instant::now();
            }
        }
    }
    match fallback {
        Some(resp) => relay(resp, inner),
        None => text(
            StatusCode::BAD_GATEWAY,
            format!("every replica failed: {}\n", errors.join("; ")),
        ),
    }
}

/// A good answer is returned; a 404 or 5xx is kept as the fallback answer (a 404 over a
/// 5xx) and the next replica is tried; a failure is noted.
fn judge(
    res: Result<Response<ReadBody>, SendError>,
    fallback: &mut Option<Response<ReadBody>>,
    errors: &mut Vec<String>,
) -> Option<Response<ReadBody>> {
    match res {
        Ok(resp) if resp.status() != StatusCode::NOT_FOUND && !resp.status().is_server_error() => {
            return Some(resp);
        }
        Ok(resp) => {
            if resp.status().is_server_error() {
                errors.push(format!("status {}", resp.status()));
            }
            let better = match fallback {
                None => true,
                Some(f) => f.status().is_server_error() && resp.status() == StatusCode::NOT_FOUND,
            };
            if better {
                *fallback = Some(resp);
            }
        }
        Err(e) => errors.push(e.message),
    }
    None
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
