//! NOT_MY_VBUCKET: moxi's rule (the forward map, or the next server) and a bounded retry.

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::client::{Finish, Pending};
use super::dispatch::Ctx;
use crate::binary::{BinaryRequest, Status};
use crate::pool::{DownstreamError, DownstreamErrorKind, Expect, Job, Reply, Wire};
use crate::stats::ProxyStats;

/// Sends a (loud) binary request for vBucket `vb` to `server`; while the answer is
/// NOT_MY_VBUCKET, updates the map and tries the next master, at most twice per server
/// (moxi's `2 * nservers`). The last answer is the client's.
pub(crate) async fn retrying(ctx: &Ctx<'_>, b: BinaryRequest, server: usize, vb: u16) -> Pending {
    let mut wire = BytesMut::new();
    b.encode(&mut wire);
    let wire: Bytes = wire.freeze();
    let mut rx = ctx
        .send(server, Wire::Binary, wire.clone(), Expect::BinOne)
        .await;
    let cluster = ctx.cluster.clone();
    let proxy = ctx.proxy.clone();
    let slot = ctx.slot;
    let header = b.header;
    let (tx, out) = oneshot::channel();
    tokio::spawn(async move {
        let max = 2 * cluster.router.servers().len();
        let mut server = server;
        let mut tries = 0;
        loop {
            let result = match rx.await {
                Ok(r) => r,
                Err(_) => Err(DownstreamError::new(DownstreamErrorKind::Closed, "")),
            };
            let refused = matches!(&result, Ok(Reply::Binary(rs))
                if rs.first().is_some_and(|r| r.status() == Status::NOT_MY_VBUCKET));
            let next = if refused && tries < max {
                cluster.router.not_my_vbucket(vb, server)
            } else {
                None
            };
            let Some(next) = next else {
                let mut bytes = BytesMut::new();
                Finish::Binary(header).apply(result, &mut bytes);
                let _ = tx.send(bytes.freeze());
                return;
            };
            tries += 1;
            ProxyStats::inc(&proxy.stats().tot_retry_vbucket);
            tracing::debug!(vb, from = server, to = next, "not my vbucket: retrying");
            server = next;
            let (job, r) = Job::new(wire.clone(), Expect::BinOne);
            cluster.pool.send(server, Wire::Binary, slot, job).await;
            rx = r;
        }
    });
    Pending::Task(out)
}
