//! Requests the proxy answers itself: `version`, `verbosity`, `mn`, binary NOOP, VERSION and
//! QUIT, and `stats proxy`.

use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};

use super::client::Pending;
use super::dispatch::Ctx;
use crate::binary::{BinaryRequest, BinaryResponse, Status};
use crate::stats::ProxyStats;

/// A fixed reply.
pub(crate) fn ready(bytes: &'static [u8]) -> Pending {
    Pending::Ready(Bytes::from_static(bytes))
}

/// `VERSION <version>`.
pub(crate) fn version(ctx: &Ctx<'_>) -> Pending {
    ProxyStats::inc(&ctx.proxy.stats().tot_local);
    let v = &ctx.proxy.config().version;
    Pending::Ready(Bytes::from(format!("VERSION {v}\r\n")))
}

/// The binary NOOP, VERSION and QUIT replies.
pub(crate) fn binary(ctx: &Ctx<'_>, b: &BinaryRequest) -> Pending {
    ProxyStats::inc(&ctx.proxy.stats().tot_local);
    let value = if b.header.opcode == crate::binary::Opcode::Version as u8 {
        Bytes::from(ctx.proxy.config().version.clone())
    } else {
        Bytes::new()
    };
    let r = BinaryResponse::new(
        b.header.opcode,
        Status::NO_ERROR,
        b.header.opaque,
        Bytes::new(),
        Bytes::new(),
        value,
    );
    let mut out = BytesMut::new();
    r.encode(&mut out);
    Pending::Ready(out.freeze())
}

/// `stats proxy`: the proxy's counters, then each server's, as `STAT` lines.
pub(crate) fn stats_proxy(ctx: &Ctx<'_>) -> Pending {
    ProxyStats::inc(&ctx.proxy.stats().tot_local);
    let cfg = ctx.proxy.config();
    let name = &cfg.name;
    let mut out = BytesMut::new();
    let mut stat = |k: &str, v: &dyn std::fmt::Display| {
        out.put_slice(format!("STAT {k} {v}\r\n").as_bytes());
    };
    stat("basic:version", &cfg.version);
    stat(&format!("{name}:info:distribution"), &distribution(ctx));
    if let super::Servers::List { distribution, .. } = &cfg.servers
        && let Some(t) = distribution.twemproxy()
    {
        stat(&format!("{name}:info:hash"), &t.hash);
        if let Some(tag) = t.hash_tag {
            stat(
                &format!("{name}:info:hash_tag"),
                &String::from_utf8_lossy(&tag),
            );
        }
    }
    stat(
        &format!("{name}:behavior:downstream_timeout"),
        &cfg.pool.timeout.as_millis(),
    );
    stat(
        &format!("{name}:behavior:connect_timeout"),
        &cfg.pool.connect_timeout.as_millis(),
    );
    stat(
        &format!("{name}:behavior:downstream_conn_max"),
        &cfg.pool.conns,
    );
    let downstream = match cfg.downstream {
        crate::Protocol::Ascii => "ascii",
        crate::Protocol::Binary => "binary",
    };
    stat(&format!("{name}:behavior:downstream_protocol"), &downstream);
    stat(
        &format!("{name}:behavior:downstream_retry"),
        &cfg.pool.retry,
    );
    stat(
        &format!("{name}:behavior:connect_max_errors"),
        &cfg.pool.max_errors,
    );
    stat(
        &format!("{name}:behavior:connect_retry_interval"),
        &cfg.pool.retry_interval.as_millis(),
    );
    stat(
        &format!("{name}:behavior:client_reply_budget"),
        &cfg.client_reply_budget,
    );
    if let Some(front) = &ctx.cluster.front {
        stat(&format!("{name}:frontcache:size"), &front.len());
        stat(&format!("{name}:frontcache:max"), &front.options().max);
        let lifespan = front.options().lifespan.as_millis();
        stat(&format!("{name}:frontcache:lifespan"), &lifespan);
    }
    for (k, v) in ctx.proxy.stats().snapshot() {
        stat(&format!("{name}:pstd_stats:{k}"), &v);
    }
    for s in ctx.cluster.pool.servers() {
        let id = s.addr().authority();
        let st = s.stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        stat(&format!("{name}:server:{id}:requests"), &load(&st.requests));
        stat(&format!("{name}:server:{id}:errors"), &load(&st.errors));
        stat(&format!("{name}:server:{id}:timeouts"), &load(&st.timeouts));
        stat(&format!("{name}:server:{id}:retries"), &load(&st.retries));
        stat(&format!("{name}:server:{id}:connects"), &load(&st.connects));
        stat(
            &format!("{name}:server:{id}:connect_errors"),
            &load(&st.connect_errors),
        );
        stat(
            &format!("{name}:server:{id}:unavailable"),
            &load(&st.unavailable),
        );
        stat(&format!("{name}:server:{id}:down"), &u8::from(s.is_down()));
    }
    out.put_slice(b"END\r\n");
    Pending::Ready(out.freeze())
}

fn distribution(ctx: &Ctx<'_>) -> &'static str {
    match &ctx.proxy.config().servers {
        super::Servers::List { distribution, .. } => distribution.name(),
        super::Servers::VBucket(_) => "vbucket",
        super::Servers::Pending => "pending",
    }
}
