//! NOT_MY_VBUCKET: moxi's rule (the forward map, or the next server) and a bounded retry.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::client::{Finish, Pending};
use super::dispatch::Ctx;
use super::{Cluster, Proxy};
use crate::binary::{BinaryRequest, Status};
use crate::pool::{DownstreamError, DownstreamErrorKind, Expect, Job, JobResult, Reply, Wire};
use crate::stats::ProxyStats;

/// Sends a (loud) binary request for vBucket `vb` to `server`; while the answer is
/// NOT_MY_VBUCKET, updates the map and tries the next master, at most twice per server
/// (moxi's `2 * nservers`). The last answer is the client's.
pub(crate) async fn retrying(ctx: &Ctx<'_>, b: BinaryRequest, server: usize, vb: u16) -> Pending {
    let mut wire = BytesMut::new();
    b.encode(&mut wire);
    retrying_wire(ctx, wire.freeze(), server, vb, Finish::Binary(b.header)).await
}

/// [`retrying`] for a request already encoded; `finish` makes the client's bytes of the
/// last answer.
pub(crate) async fn retrying_wire(
    ctx: &Ctx<'_>,
    wire: Bytes,
    server: usize,
    vb: u16,
    finish: Finish,
) -> Pending {
    let rx = ctx
        .send(server, Wire::Binary, wire.clone(), Expect::BinOne)
        .await;
    let cluster = ctx.cluster.clone();
    let proxy = ctx.proxy.clone();
    let slot = ctx.slot;
    let (tx, out) = oneshot::channel();
    tokio::spawn(async move {
        let first = received(rx).await;
        let result = follow(&cluster, &proxy, slot, wire, vb, server, first).await;
        let mut bytes = BytesMut::new();
        finish.apply(result, &mut bytes);
        let _ = tx.send(bytes.freeze().into());
    });
    Pending::Task(out, finish)
}

/// A job's result, a lost job being a closed connection.
pub(crate) async fn received(rx: oneshot::Receiver<JobResult>) -> JobResult {
    rx.await
        .unwrap_or_else(|_| Err(DownstreamError::new(DownstreamErrorKind::Closed, "")))
}

/// Given `result`, `server`'s answer to `wire` (a loud request for vBucket `vb`): while it
/// is NOT_MY_VBUCKET, applies moxi's rule and re-sends, at most `2 * nservers` times.
/// Returns the last answer.
pub(crate) async fn follow(
    cluster: &Arc<Cluster>,
    proxy: &Arc<Proxy>,
    slot: usize,
    wire: Bytes,
    vb: u16,
    mut server: usize,
    mut result: JobResult,
) -> JobResult {
    let max = 2 * cluster.router.servers().len();
    let mut tries = 0;
    loop {
        let refused = matches!(&result, Ok(Reply::Binary(rs))
            if rs.first().is_some_and(|r| r.status() == Status::NOT_MY_VBUCKET));
        let next = if refused && tries < max {
            cluster.router.not_my_vbucket(vb, server)
        } else {
            None
        };
        let Some(next) = next else {
            return result;
        };
        tries += 1;
        ProxyStats::inc(&proxy.stats().tot_retry_vbucket);
        tracing::debug!(vb, from = server, to = next, "not my vbucket: retrying");
        server = next;
        let (job, r) = Job::new(wire.clone(), Expect::BinOne);
        cluster.pool.send(server, Wire::Binary, slot, job).await;
        result = received(r).await;
    }
}
