//! `shoal serve`: the chunked caching reverse proxy (shoal-proxy) as a process.
//!
//! `shoal serve --origin ./dir` alone is a working single-node cache: clients on
//! 127.0.0.1:8080, admin (`/metrics`, `/status` with chunkproxy's `/stats` counters under
//! `stats`, `/healthz`) on 127.0.0.1:9090. The bound addresses are printed on stdout once
//! both ports listen, so scripts (and tests) can use port 0.
//!
//! With `--peers URL,... --self URL` the node joins a static cluster: its metadata and
//! chunk groups ask each key's owner (one hop) and answer the other nodes on the peer port
//! (`--peer-listen`, default the host:port of `--self`). Live sources (gossip, etcd, a
//! members file, DNS) and peer security are in `live.rs` (flags, checks) and `join.rs`.

mod config;
mod join;
mod live;
mod purge;

use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};
use shoal_cache::{Group, GroupStats};
use shoal_proxy::origin::{ObjectStoreConfig, ObjectStoreOrigin};
use shoal_proxy::{
    DirOrigin, DiskTier, DynOrigin, FileStore, HttpOrigin, HttpOriginConfig, Proxy, ProxyConfig,
    ServerConfig, Store, StoreConfig,
};
use tokio::net::TcpListener;

pub use self::config::{ServeArgs, ServeFile, ServeSettings};
use crate::{admin::Admin, group_metrics, shutdown::Shutdown, telemetry};

/// Runs `shoal serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(serve(settings))
}

fn origin(s: &ServeSettings) -> anyhow::Result<Arc<dyn DynOrigin>> {
    let o = s.origin.trim();
    let is_http = o.starts_with("http://") || o.starts_with("https://");
    if !s.origin_ca.trim().is_empty() && !o.starts_with("https://") {
        anyhow::bail!("origin_ca is for https:// origins, not {o:?}");
    }
    if !s.origin_endpoint.trim().is_empty() && (is_http || !o.contains("://")) {
        anyhow::bail!("origin_endpoint is for s3:// and az:// origins, not {o:?}");
    }
    if is_http {
        let mut c = HttpOriginConfig::default();
        c.timeout = s.origin_timeout.get();
        c.connect_timeout = s.connect_timeout.get();
        if !s.origin_ca.trim().is_empty() {
            let ca = std::path::Path::new(s.origin_ca.trim());
            let roots = shoal_proxy::tls::origin_roots(Some(ca)).context("origin_ca")?;
            let tls =
                shoal_proxy::tls::origin_client_config(roots).context("TLS for the origin")?;
            c.tls = Some(tls);
        }
        return Ok(Arc::new(HttpOrigin::new(o, c)?));
    }
    if o.contains("://") {
        let mut c = ObjectStoreConfig::default();
        c.timeout = s.origin_timeout.get();
        c.connect_timeout = s.connect_timeout.get();
        if !s.origin_endpoint.trim().is_empty() {
            c.endpoint = Some(s.origin_endpoint.trim().to_owned());
        }
        return Ok(Arc::new(ObjectStoreOrigin::from_url(o, &c)?));
    }
    let dir = DirOrigin::new(o).with_context(|| format!("origin directory {o:?}"))?;
    Ok(Arc::new(dir))
}

async fn serve(s: ServeSettings) -> anyhow::Result<()> {
    telemetry::init();
    let origin = origin(&s)?;
    let certs = if s.tls_cert.trim().is_empty() {
        None
    } else {
        let cert = std::path::Path::new(s.tls_cert.trim());
        let key = std::path::Path::new(s.tls_key.trim());
        Some(shoal_proxy::tls::CertFiles::load(cert, key).context("tls_cert/tls_key")?)
    };
    let tls = certs
        .as_ref()
        .map(shoal_proxy::tls::CertFiles::server_config)
        .transpose()
        .context("tls_cert/tls_key")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut sc = StoreConfig::default();
    sc.chunk_size = s.chunk_size.bytes();
    sc.memory = s.memory.bytes();
    sc.meta_memory = s.meta_memory.bytes();
    sc.meta_ttl = s.meta_ttl.get();
    sc.negative_ttl = s.negative_ttl.get();
    sc.stale_if_error = s.stale_if_error.get();
    // The origin's own deadline fires first; this one also bounds a stuck loader.
    sc.load_timeout = s.origin_timeout.get() + s.connect_timeout.get();
    sc.max_origin_reads = s.max_origin_reads;
    let disk = if s.dir.trim().is_empty() {
        None
    } else {
        let d = FileStore::open(s.dir.trim(), s.disk.bytes())
            .with_context(|| format!("disk tier directory {:?}", s.dir))?;
        Some(d)
    };
    let tier = disk.clone().map(|d| Arc::new(d) as Arc<dyn DiskTier>);
    // In a cluster every node asks a chunk's (and an object's metadata's) owner, so the
    // origin sees each chunk once cluster-wide. Live sources start with this node alone:
    // it serves at once and joins in the background.
    let joining = match s.plan()? {
        Some(p) => Some(join::prepare(p, &s)?),
        None => None,
    };
    let store = match &joining {
        Some(j) => Store::with_groups(origin, &sc, tier, &join::ClusterGroups(&j.cluster))?,
        None => Store::with_disk(origin, &sc, tier),
    };
    let mut pc = ProxyConfig::default();
    pc.max_parallel_chunks = s.max_parallel_chunks;
    pc.readahead_chunks = s.readahead_chunks;
    let proxy = Proxy::new(store.clone(), pc);
    let mut server = ServerConfig::default();
    server.header_read_timeout = s.header_timeout.get();
    server.send_timeout = s.send_timeout.get();
    server.max_header_bytes = usize::try_from(s.max_header_size.bytes()).unwrap_or(usize::MAX);
    server.max_connections = s.max_connections;
    server.tls = tls;
    let log_path = s.access_log.trim();
    let access_log =
        crate::access_log::open((!log_path.is_empty()).then(|| std::path::Path::new(log_path)))?;
    server.access_log = access_log.clone();

    let joined = match joining {
        Some(j) => Some(j.start().await?),
        None => None,
    };

    let listen = config::parse_addr("listen", &s.listen)?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let admin = if s.admin_listen == "off" {
        None
    } else {
        let addr = config::parse_addr("admin_listen", &s.admin_listen)?;
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (admin)"))?;
        Some(l)
    };
    let shutdown = Shutdown::on_signals();
    let peer_tls = joined
        .as_ref()
        .filter(|_| !s.peer_tls_cert.trim().is_empty())
        .map(|j| PeerTlsFiles {
            cluster: j.cluster.clone(),
            ca: s.peer_tls_ca.trim().into(),
            cert: s.peer_tls_cert.trim().into(),
            key: s.peer_tls_key.trim().into(),
        });
    // SIGHUP's default action would end the process, and operators send it by habit.
    crate::shutdown::on_hangup(move || {
        tracing::info!(
            "SIGHUP: shoal serve re-reads the front's TLS certificate (tls_cert, tls_key), the \
             peer TLS files (peer_tls_cert, peer_tls_key, peer_tls_ca) and its members file \
             (members_file) where it has them, nothing else; SIGTERM stops it"
        );
        if let Some(c) = &certs {
            c.reload_and_log();
        }
        if let Some(p) = &peer_tls {
            p.reload_and_log();
        }
    });
    let admin_task = match admin {
        Some(l) => {
            let addr = l.local_addr()?;
            println!("shoal serve: admin on http://{addr}");
            let cluster = joined.as_ref().map(|j| j.cluster.clone());
            let mut app = admin_server(&store, disk.clone(), &s)
                .router()
                .merge(purge::router(
                    store.clone(),
                    cluster,
                    purge::PurgeFrom::parse(&s.purge_from),
                ));
            if let Some(j) = &joined {
                app = app.merge(j.members_router());
            }
            let stop = shutdown.clone();
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let serve =
                axum::serve(l, app).with_graceful_shutdown(async move { stop.wait().await });
            Some(tokio::spawn(async move { serve.await }))
        }
        None => None,
    };
    println!(
        "shoal serve: listening on {scheme}://{bound} (origin {})",
        store.origin_name()
    );
    tracing::info!(%bound, origin = store.origin_name(), "serving");
    // When this node left: its peer port answers the new owners' handoff questions until
    // `peer_drain` after that, even when no client reply is in flight.
    let (left_tx, left_rx) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
    if let Some(j) = &joined {
        // Tell the others at once that this node is going, while it still drains.
        let (source, stop) = (j.source.clone(), shutdown.clone());
        tokio::spawn(async move {
            stop.wait().await;
            let _ = left_tx.send(tokio::time::Instant::now());
            source.leave().await;
        });
    }
    let stop = shutdown.clone();
    shoal_proxy::serve::serve(listener, proxy, server, async move { stop.wait().await })
        .await
        .context("serving")?;
    crate::access_log::flush(access_log).await;
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    if let Some(j) = joined {
        if j.handoff
            && let Ok(left) = left_rx.await
        {
            tokio::time::sleep_until(left + s.peer_drain.get()).await;
        }
        j.server.shutdown().await;
    }
    Ok(())
}

/// The peer TLS files, read again on SIGHUP (certificates renewed, or a new CA).
struct PeerTlsFiles {
    cluster: shoal_cluster::Cluster,
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl PeerTlsFiles {
    fn reload_and_log(&self) {
        let reloaded = shoal_cluster::TlsConfig::from_files(&self.ca, &self.cert, &self.key)
            .and_then(|tls| self.cluster.reload_tls(&tls));
        shoal_tls::count_reload("peer", reloaded.is_ok());
        match reloaded {
            Ok(()) => tracing::info!(
                cert = %self.cert.display(),
                "peer TLS certificates reloaded; new peer connections use them"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "peer TLS certificates not reloaded; the ones in force stay"
            ),
        }
    }
}

fn admin_server(store: &Arc<Store>, disk: Option<FileStore>, s: &ServeSettings) -> Admin {
    let (meta, chunks) = (store.meta_group().clone(), store.chunk_group().clone());
    let (m, c) = (meta.clone(), chunks.clone());
    let origin = store.origin_name().to_owned();
    let chunk_size = s.chunk_size.bytes();
    let (d, gauges) = (disk.clone(), disk);
    Admin::new("serve")
        .with_status(move || {
            json!({
                "origin": origin,
                "chunk_size": chunk_size,
                // chunkproxy's /stats, per group, and the disk tier's.
                "stats": {
                    "meta": group_json(&m),
                    "chunks": group_json(&c),
                    "disk": d.as_ref().map(disk_json),
                },
            })
        })
        .with_collector(group_metrics::collector(meta))
        .with_collector(group_metrics::collector(chunks))
        .with_collector(move || {
            if let Some(d) = &gauges {
                let st = d.stats();
                metrics::gauge!("shoal_disk_bytes").set(st.bytes as f64);
                metrics::gauge!("shoal_disk_items").set(st.items as f64);
            }
        })
}

fn disk_json(d: &FileStore) -> Value {
    let s = d.stats();
    json!({
        "hits": s.hits, "misses": s.misses, "writes": s.writes, "evictions": s.evictions,
        "corruptions": s.corruptions, "write_errors": s.write_errors,
        "bytes": s.bytes, "items": s.items, "limit": s.limit,
    })
}

fn group_json(g: &Group) -> Value {
    let s: GroupStats = g.stats();
    json!({
        "gets": s.gets, "loads": s.loads, "loads_joined": s.loads_joined, "stale": s.stale,
        "load_errors": s.load_errors, "not_found": s.not_found,
        "peer_loads": s.peer_loads, "peer_errors": s.peer_errors,
        "main_cache": { "hits": s.main_hits, "bytes": s.main_bytes, "items": s.main_items,
                        "evictions": s.main_evictions, "capacity": s.main_capacity },
        "hot_cache": { "hits": s.hot_hits, "bytes": s.hot_bytes, "items": s.hot_items,
                       "evictions": s.hot_evictions, "capacity": s.hot_capacity },
    })
}
