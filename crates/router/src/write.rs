//! PUT and DELETE: every replica of the shard (of both rings during a migration), in
//! parallel; success when each ring's shard reached its write quorum; misses journalled.
//!
//! A PUT body is read once from the client and fanned out through a bounded channel per
//! replica, so memory stays at a few chunks per replica whatever the size. A replica that
//! cannot take a chunk within the body timeout is cut off (its request aborted, so it never
//! stores a truncated file) and counted as failed; a client that stops sending its body for
//! as long gets 408 and nothing is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::body::{Body, BoxError, ChannelBody, empty};
use crate::idle::{self, Side};
use crate::journal::Entry;
use crate::metrics;
use crate::normalize::display_path;
use crate::replica::Replica;
use crate::router::{Inner, text};
use crate::settings::Quorum;
use crate::topology::Target;
use crate::upstream::{end_to_end, request, send};

/// One replica still taking the body: its index, its channel, and how to cut it off.
type Feed = (
    usize,
    mpsc::Sender<Result<Bytes, BoxError>>,
    tokio::task::AbortHandle,
);

/// How one replica's write ended.
#[derive(Debug)]
enum Outcome {
    Stored(StatusCode),
    /// A 4xx: the request itself is wrong; not a replica fault.
    Refused(StatusCode),
    Failed(String),
}

pub(crate) async fn write<B>(
    inner: &Arc<Inner>,
    req: Request<B>,
    path: &[u8],
    pq: &str,
    targets: &[Target],
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let method = req.method().clone();
    // The settings this write started with, for all of it: a reload cannot change its
    // quorum between the check before the body and the verdict after.
    let settings = inner.settings.load_full();
    // Every distinct replica once, with the rings it serves.
    let mut replicas: Vec<Arc<Replica>> = Vec::new();
    for t in targets {
        for r in &t.replicas {
            if !replicas.iter().any(|x| Arc::ptr_eq(x, r)) {
                replicas.push(r.clone());
            }
        }
    }
    let live: Vec<usize> = (0..replicas.len())
        .filter(|&i| replicas[i].usable())
        .collect();
    // Refuse before reading the body when some shard cannot reach its quorum anyway.
    for t in targets {
        let need = settings.write_quorum.of(t.replicas.len());
        let up = t.replicas.iter().filter(|r| r.usable()).count();
        if up < need {
            metrics::quorum_failure();
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "write refused, nothing stored: {} ({} ring) has {up} live replica(s) of {}, the write quorum is {need}\n",
                    t.shard,
                    t.ring,
                    t.replicas.len()
                ),
            );
        }
    }
    let mut outcomes: HashMap<usize, Outcome> = replicas
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.usable())
        .map(|(i, r)| {
            let why = if r.in_roster() {
                "unhealthy"
            } else {
                "not in the roster"
            };
            (i, Outcome::Failed(format!("{}: skipped, {why}", r.base())))
        })
        .collect();
    let (parts, body) = req.into_parts();
    let mut headers = end_to_end(&parts.headers);
    // nginx takes a PUT's Date for the file's mtime, its ETag and Last-Modified; without one
    // each replica uses the moment its last byte came, and replicas finishing in different
    // seconds would answer revalidations differently. One Date for all (the client's if set).
    if method == Method::PUT
        && !headers.contains_key(header::DATE)
        && let Ok(now) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now()))
    {
        headers.insert(header::DATE, now);
    }
    let len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let timeout = settings.write_timeout;
    let mut set = JoinSet::new();
    let mut senders = Vec::new();
    // Set once the client's body has ended whole; until then a closing channel aborts.
    let whole = Arc::new(AtomicBool::new(false));
    for &i in &live {
        let r = replicas[i].clone();
        let (tx, body) = if method == Method::PUT {
            let (tx, rx) = mpsc::channel::<Result<Bytes, BoxError>>(8);
            let body = ChannelBody::new(rx, len).whole(whole.clone());
            (Some(tx), body.boxed_unsync())
        } else {
            (None, empty())
        };
        match request(&r, method.clone(), pq, headers.clone(), body) {
            Ok(req) => {
                let client = inner.client();
                let abort = set.spawn(async move { (i, send(client, r, req, timeout).await) });
                if let Some(tx) = tx {
                    senders.push((i, tx, abort));
                }
            }
            Err(e) => {
                outcomes.insert(i, Outcome::Failed(e));
            }
        }
    }
    let mut cut_short = Vec::new();
    if method == Method::PUT
        && let Err((status, e)) = pump(
            inner,
            body,
            &whole,
            &mut senders,
            &mut outcomes,
            &mut cut_short,
            &replicas,
        )
        .await
    {
        set.abort_all();
        return text(status, format!("reading the request body: {e}\n"));
    }
    drop(senders);
    while let Some(joined) = set.join_next().await {
        let Ok((i, res)) = joined else { continue };
        let o = match res {
            // A success before the whole body was taken cannot be a whole file.
            Ok(resp) if resp.status().is_success() && cut_short.contains(&i) => {
                Outcome::Failed(format!(
                    "{}: answered {} before taking the whole body",
                    replicas[i].base(),
                    resp.status()
                ))
            }
            Ok(resp) if resp.status().is_success() => Outcome::Stored(resp.status()),
            // Nothing to delete is this replica's part done (the quorum counts it); the
            // client hears 404 only when no replica had the file.
            Ok(resp) if method == Method::DELETE && resp.status() == StatusCode::NOT_FOUND => {
                Outcome::Stored(StatusCode::NOT_FOUND)
            }
            Ok(resp) if resp.status().is_client_error() => Outcome::Refused(resp.status()),
            Ok(resp) => {
                Outcome::Failed(format!("{}: status {}", replicas[i].base(), resp.status()))
            }
            Err(e) => Outcome::Failed(e.message),
        };
        outcomes.entry(i).or_insert(o);
    }
    // A replica whose task ended without a result (it panicked) missed the write too.
    for &i in &live {
        outcomes.entry(i).or_insert_with(|| {
            Outcome::Failed(format!("{}: ended without a result", replicas[i].base()))
        });
    }
    let quorum = settings.write_quorum;
    finish(inner, &method, path, targets, &replicas, outcomes, quorum).await
}

/// Copies the client's body to every replica still taking it. A client that sends nothing for
/// the body timeout gets 408. A replica whose request ended before the body did goes into
/// `cut_short`: whatever it answered, it has not stored the whole body.
async fn pump<B>(
    inner: &Inner,
    mut body: B,
    whole: &AtomicBool,
    senders: &mut Vec<Feed>,
    outcomes: &mut HashMap<usize, Outcome>,
    cut_short: &mut Vec<usize>,
    replicas: &[Arc<Replica>],
) -> Result<(), (StatusCode, String)>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let stall = inner.settings.load().body_timeout;
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => {
                whole.store(true, Ordering::Release);
                break;
            }
            Ok(Some(Err(e))) => return Err((StatusCode::BAD_REQUEST, e.into().to_string())),
            Err(_) => {
                idle::count(inner, Side::ClientRequest);
                return Err((
                    StatusCode::REQUEST_TIMEOUT,
                    format!("no data for {stall:?}"),
                ));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let mut k = 0;
        while k < senders.len() {
            let (i, tx, abort) = &senders[k];
            match tokio::time::timeout(stall, tx.send(Ok(data.clone()))).await {
                Ok(Ok(())) => k += 1,
                // The replica's request ended (refused, reset, answered early): its task's
                // result says why, and an early success is not taken for a stored file.
                Ok(Err(_)) => {
                    cut_short.push(*i);
                    senders.swap_remove(k);
                }
                Err(_) => {
                    abort.abort();
                    idle::count(inner, Side::ReplicaRequest);
                    outcomes.insert(
                        *i,
                        Outcome::Failed(format!(
                            "{}: took no body data for {stall:?}",
                            replicas[*i].base()
                        )),
                    );
                    senders.swap_remove(k);
                }
            }
        }
        if senders.is_empty() {
            break;
        }
    }
    Ok(())
}

async fn finish(
    inner: &Inner,
    method: &Method,
    path: &[u8],
    targets: &[Target],
    replicas: &[Arc<Replica>],
    outcomes: HashMap<usize, Outcome>,
    quorum: Quorum,
) -> Response<Body> {
    let idx = |r: &Arc<Replica>| replicas.iter().position(|x| Arc::ptr_eq(x, r));
    let mut short = Vec::new();
    for t in targets {
        let need = quorum.of(t.replicas.len());
        let stored = t
            .replicas
            .iter()
            .filter(|r| {
                matches!(
                    idx(r).and_then(|i| outcomes.get(&i)),
                    Some(Outcome::Stored(_))
                )
            })
            .count();
        if stored < need {
            short.push(format!(
                "{} ({} ring): {stored} of {} replicas, quorum {need}",
                t.shard,
                t.ring,
                t.replicas.len()
            ));
        }
    }
    let total: usize = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::Stored(_)))
        .count();
    // A refusal is the request's fault only if no replica took it; one that refused what
    // others stored (a directory where the file goes, say) has missed the write, and repair
    // must bring it in line.
    let missed: Vec<(usize, String)> = outcomes
        .iter()
        .filter_map(|(&i, o)| match o {
            Outcome::Failed(m) => Some((i, m.clone())),
            Outcome::Refused(s) if total > 0 => {
                Some((i, format!("{}: refused with {s}", replicas[i].base())))
            }
            _ => None,
        })
        .collect();
    let refused = outcomes.values().find_map(|o| match o {
        Outcome::Refused(s) => Some(*s),
        _ => None,
    });
    // Record every replica that missed the write, whatever the answer, before answering.
    let entries: Vec<Entry> = missed
        .iter()
        .map(|(i, _)| Entry::now(method.as_str(), replicas[*i].base(), path))
        .collect();
    let mut journal_err = None;
    if !entries.is_empty() {
        for (_, m) in &missed {
            tracing::warn!(path = %display_path(path), op = %method, "replica missed a write: {m}");
        }
        metrics::journaled(entries.len());
        if let Some(j) = &inner.journal
            && let Err(e) = j.record(entries).await
        {
            journal_err = Some(e);
        }
    }
    if !short.is_empty() {
        if missed.is_empty()
            && let Some(s) = refused
        {
            return text(s, format!("every replica refused the {method}: {s}\n"));
        }
        metrics::quorum_failure();
        let why: Vec<&str> = missed.iter().map(|(_, m)| m.as_str()).collect();
        return text(
            StatusCode::BAD_GATEWAY,
            format!(
                "write quorum not reached, the {method} is not stored: {}; failures: {}\n",
                short.join("; "),
                why.join("; ")
            ),
        );
    }
    if let Some(e) = journal_err {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "stored on a quorum, but the repair journal could not record the replicas that missed it: {e}\n"
            ),
        );
    }
    // One answer whatever order the replicas finished in: the lowest 2xx (201 Created when
    // the file is new on some replica); 404 for a DELETE only when every replica said it had
    // nothing to delete (one that missed it may have had the file).
    let status = outcomes
        .values()
        .filter_map(|o| match o {
            Outcome::Stored(s) => Some(*s),
            _ => None,
        })
        .min_by_key(|s| (!s.is_success(), s.as_u16()))
        .filter(|s| s.is_success() || missed.is_empty())
        .unwrap_or(StatusCode::NO_CONTENT);
    let mut r = text(status, "");
    if let Ok(v) = HeaderValue::from_str(&format!("{total}/{}", replicas.len())) {
        r.headers_mut().insert("x-shoal-stored", v);
    }
    r
}
