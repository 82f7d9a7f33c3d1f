//! twemproxy's stats port: nutcracker (`-s 22222`) writes one JSON object to every
//! connection and closes it, and the monitoring built for twemproxy (its exporters, agent
//! checks, dashboards) reads that object. [`serve`] does the same over shoal's counters, so
//! those keep working when shoal takes nutcracker's place.
//!
//! The object, as nutcracker 0.5.0 writes it: `service`, `source` (the host name),
//! `version`, `uptime` and `timestamp` (seconds), `total_connections`, `curr_connections`,
//! then one object per pool (a listener; a nutcracker.yml pool's name) with `client_eof`,
//! `client_err`, `client_connections`, `server_ejects`, `forward_error`, `fragments`, and in
//! it one object per server, named as nutcracker names it (the name of a `host:port:weight
//! name` line, else `host:port`) with `server_eof`, `server_err`, `server_timedout`,
//! `server_connections`, `server_ejected_at` (µs since the epoch, 0 in service), `requests`,
//! `request_bytes`, `responses`, `response_bytes`, `in_queue`, `in_queue_bytes`,
//! `out_queue`, `out_queue_bytes`. `version` is `0.5.0-shoal`, as `version` over the memcached
//! protocol says `1.6.18-shoal`.
//!
//! Where the two proxies differ: nutcracker refreshes its numbers every `-i` interval
//! (30 s by default); these are read when asked. `total_connections` and `curr_connections`
//! count client and server connections (nutcracker's also count its listeners). A merged
//! get's reply counts once in `responses`; `fragments` counts the requests multi-key gets
//! were split into.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::pool::ServerAddr;
use crate::proxy::Proxy;

/// The `version` in the object.
pub const VERSION: &str = "0.5.0-shoal";

/// The stats object of `proxies` (one pool each), `uptime` after start, from host `source`.
pub fn render(proxies: &[Arc<Proxy>], source: &str, uptime: Duration) -> String {
    let mut top = Map::new();
    let (mut total, mut curr) = (0u64, 0u64);
    let mut pools = Vec::with_capacity(proxies.len());
    for p in proxies {
        let stats = p.stats();
        total += stats.tot_conns.load(Relaxed);
        curr += stats.curr_conns.load(Relaxed);
        let cluster = p.cluster();
        let mut pool = Map::new();
        let mut ejects = 0;
        let mut servers = Vec::new();
        for (member, server) in cluster.router.servers().iter().zip(cluster.pool.servers()) {
            let s = server.stats();
            total += s.connects.load(Relaxed);
            curr += s.connections.load(Relaxed);
            ejects += s.ejects.load(Relaxed);
            let server_stats = json!({
                "server_eof": s.eofs.load(Relaxed),
                "server_err": s.conn_errors.load(Relaxed) + s.connect_errors.load(Relaxed),
                "server_timedout": s.timeouts.load(Relaxed),
                "server_connections": s.connections.load(Relaxed),
                "server_ejected_at": s.ejected_at_us.load(Relaxed),
                "requests": s.requests.load(Relaxed),
                "request_bytes": s.request_bytes.load(Relaxed),
                "responses": s.responses.load(Relaxed),
                "response_bytes": s.response_bytes.load(Relaxed),
                "in_queue": s.in_queue.load(Relaxed),
                "in_queue_bytes": s.in_queue_bytes.load(Relaxed),
                "out_queue": s.out_queue.load(Relaxed),
                "out_queue_bytes": s.out_queue_bytes.load(Relaxed),
            });
            servers.push((server_name(member, server.addr()), server_stats));
        }
        pool.insert(
            "client_eof".into(),
            stats.tot_client_eof.load(Relaxed).into(),
        );
        pool.insert(
            "client_err".into(),
            stats.tot_client_conn_errors.load(Relaxed).into(),
        );
        pool.insert(
            "client_connections".into(),
            stats.curr_conns.load(Relaxed).into(),
        );
        pool.insert("server_ejects".into(), ejects.into());
        pool.insert(
            "forward_error".into(),
            stats.tot_downstream_errors.load(Relaxed).into(),
        );
        pool.insert(
            "fragments".into(),
            stats.tot_multiget_fragments.load(Relaxed).into(),
        );
        for (name, s) in servers {
            pool.insert(name, s);
        }
        pools.push((p.config().name.clone(), Value::Object(pool)));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    top.insert("service".into(), "nutcracker".into());
    top.insert("source".into(), source.into());
    top.insert("version".into(), VERSION.into());
    top.insert("uptime".into(), uptime.as_secs().into());
    top.insert("timestamp".into(), now.as_secs().into());
    top.insert("total_connections".into(), total.into());
    top.insert("curr_connections".into(), curr.into());
    for (name, pool) in pools {
        top.insert(name, pool);
    }
    Value::Object(top).to_string()
}

/// A server's key: the name of a twemproxy `host:port:weight name` line, else `host:port`.
fn server_name(member: &str, addr: &ServerAddr) -> String {
    match member.split_once(' ') {
        Some((_, name)) if !name.is_empty() => name.to_owned(),
        _ => addr.authority(),
    }
}

/// This host's name, as nutcracker's `source`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Writes the stats object to every connection on `listener` and closes it, until the task
/// is dropped. A client that does not read gets 5 s.
pub async fn serve(listener: TcpListener, proxies: Vec<Arc<Proxy>>) {
    let started = Instant::now();
    let source = host_name();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let body = render(&proxies, &source, started.elapsed());
        tokio::spawn(async move {
            let write = async {
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
        });
    }
}
