//! The proxy: listeners, client connections, and what each request turns into.
//!
//! A client connection is two tasks. The reader decodes requests (ascii, meta or binary,
//! pipelined) and turns each into a [`Pending`](client::Pending) reply: ready at once
//! (`version`, `mn`, an error), the reply of one downstream job, or the result of a small
//! task that gathers several (a multi-key get split per server, a broadcast). The writer
//! writes those replies in the client's order, many per write; a get's values it streams,
//! each held once however often the get names its key (`values.rs`). While the replies a
//! client has not read pass its budget, the reader stops reading that client.
//!
//! The routing table and the server pool sit together in a [`Cluster`] behind an `ArcSwap`:
//! a reload builds a new one and swaps it in; connections keep running, and the old pool's
//! connections close once their requests are answered.

mod a2b;
mod broadcast;
mod client;
mod dispatch;
mod front;
mod local;
mod multiget;
mod values;
mod vbucket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use shoal_ring::RingError;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use front::{FrontCache, FrontCacheOptions};

use crate::Limits;
use crate::pool::{Pool, PoolOptions, ServerAddr, Wire};
use crate::route::{Distribution, Router};
use crate::stats::ProxyStats;

/// Where the servers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Servers {
    /// `host:port[:weight]` members hashed with a ring distribution.
    List {
        /// The members, as given.
        members: Vec<String>,
        /// The distribution.
        distribution: Distribution,
    },
    /// A vBucket map (moxi's JSON).
    VBucket(String),
    /// No servers yet (a REST-configured proxy before its first config): every key gets
    /// `SERVER_ERROR a server is not available`. A reload with `Pending` keeps the servers in
    /// force.
    Pending,
}

/// One proxy: a listener and the servers behind it.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// A name for logs and `stats proxy` (moxi uses the port).
    pub name: String,
    /// The servers.
    pub servers: Servers,
    /// twemproxy's `auto_eject_hosts`: re-shard over the servers that are not in their retry
    /// interval. Off by default: keys of a failing server get errors, nothing moves.
    pub eject: bool,
    /// Downstream connections and timeouts.
    pub pool: PoolOptions,
    /// Request size limits of the client side.
    pub limits: Limits,
    /// Most client connections at once (moxi `-c`, twemproxy `client_connections`); default
    /// 4096, `usize::MAX` for no limit. Past it, new connections are closed at once. Set when
    /// the proxy is built: a reload does not change it.
    pub max_conns: usize,
    /// What `version` answers; default `1.6.18-shoal` (clients parse the numbers).
    pub version: String,
    /// moxi's front cache; off by default.
    pub front_cache: FrontCacheOptions,
    /// The protocol classic ascii commands use downstream (moxi's `downstream_protocol`):
    /// ascii by default; binary ("a2b") carries vBucket ids, so that a vBucket map's
    /// NOT_MY_VBUCKET retry covers ascii clients too. Meta commands always go as ascii,
    /// binary requests as binary.
    pub downstream: crate::Protocol,
    /// Bytes a client connection may hold on its client's account (replies not written yet,
    /// requests whose replies are not in) before the proxy stops reading that client's
    /// requests, until the client reads or the servers answer; default
    /// [`DEFAULT_CLIENT_REPLY_BUDGET`]. A client that pipelines gets of large values and does
    /// not read, or large sets to a server that has stopped reading, would otherwise have the
    /// proxy hold up to 1,024 of them. A single reply larger than the budget still goes out
    /// (with 0, replies go one at a time).
    pub client_reply_budget: usize,
}

/// The default [`ProxyConfig::client_reply_budget`]: 8 MiB, eight replies of memcached's
/// largest item (1 MiB by default).
pub const DEFAULT_CLIENT_REPLY_BUDGET: usize = 8 << 20;

impl ProxyConfig {
    /// A config with defaults for `servers`.
    pub fn new(name: impl Into<String>, servers: Servers) -> Self {
        Self {
            name: name.into(),
            servers,
            eject: false,
            pool: PoolOptions::default(),
            limits: Limits::default(),
            max_conns: 4096,
            version: "1.6.18-shoal".to_owned(),
            front_cache: FrontCacheOptions::default(),
            downstream: crate::Protocol::Ascii,
            client_reply_budget: DEFAULT_CLIENT_REPLY_BUDGET,
        }
    }
}

/// Why a proxy could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The server list or the vBucket map is not valid.
    #[error("servers: {0}")]
    Ring(#[from] RingError),
    /// A server is not `host[:port][:weight]`.
    #[error("bad server {0:?}: expected host[:port][:weight]")]
    BadServer(String),
}

/// The routing table and its pool, swapped together on reload.
#[derive(Debug)]
pub struct Cluster {
    /// Which server a key goes to.
    pub router: Router,
    /// The servers' connections (shared by the next cluster when the server list stays).
    pub pool: Arc<Pool>,
    /// The front cache, when on; a new (empty) one with every reconfiguration, as in moxi.
    pub front: Option<Arc<FrontCache>>,
    /// Classic ascii commands go downstream as binary (`downstream_protocol=binary`).
    pub a2b: bool,
}

impl Cluster {
    /// Builds the router and starts the pool. Needs a tokio runtime.
    pub fn new(cfg: &ProxyConfig) -> Result<Cluster, ProxyError> {
        let router = Self::router(cfg)?;
        let pool = Arc::new(Self::pool(&router, cfg)?);
        let front = FrontCache::new(&cfg.front_cache).map(Arc::new);
        Ok(Cluster {
            router,
            pool,
            front,
            a2b: cfg.downstream == crate::Protocol::Binary,
        })
    }

    fn router(cfg: &ProxyConfig) -> Result<Router, ProxyError> {
        Ok(match &cfg.servers {
            Servers::List {
                members,
                distribution,
            } => {
                let m: Vec<&str> = members.iter().map(String::as_str).collect();
                Router::new(*distribution, &m, cfg.eject)?
            }
            Servers::VBucket(json) => Router::vbucket(json)?,
            Servers::Pending => Router::none(),
        })
    }

    fn pool(router: &Router, cfg: &ProxyConfig) -> Result<Pool, ProxyError> {
        let addrs = router
            .servers()
            .iter()
            .map(|s| ServerAddr::parse(s).ok_or_else(|| ProxyError::BadServer(s.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut opts = cfg.pool.clone();
        // Preconnecting opens the connections ascii clients' requests take.
        if opts.preconnect.is_some() {
            opts.preconnect = Some(match cfg.downstream {
                crate::Protocol::Ascii => Wire::Ascii,
                crate::Protocol::Binary => Wire::Binary,
            });
        }
        Ok(Pool::new(addrs, &opts))
    }
}

/// A running proxy: its config, cluster and counters.
#[derive(Debug)]
pub struct Proxy {
    cfg: ArcSwap<ProxyConfig>,
    cluster: ArcSwap<Cluster>,
    /// Held by a reconfiguration from its read of the config to its swap, so a SIGHUP
    /// reload and a streamed REST update at the same moment cannot lose one of the two.
    updating: parking_lot::Mutex<()>,
    stats: ProxyStats,
    next_client: AtomicUsize,
    conns: Arc<Semaphore>,
}

impl Proxy {
    /// Builds a proxy (its pool connects lazily). Needs a tokio runtime.
    pub fn new(cfg: ProxyConfig) -> Result<Arc<Proxy>, ProxyError> {
        let cluster = Cluster::new(&cfg)?;
        Ok(Arc::new(Proxy {
            conns: Arc::new(Semaphore::new(
                cfg.max_conns.clamp(1, Semaphore::MAX_PERMITS),
            )),
            cfg: ArcSwap::from_pointee(cfg),
            cluster: ArcSwap::from_pointee(cluster),
            updating: parking_lot::Mutex::new(()),
            stats: ProxyStats::default(),
            next_client: AtomicUsize::new(0),
        }))
    }

    /// Swaps in a new server list (and timeouts) without touching client connections.
    /// A config whose servers are [`Servers::Pending`] keeps the servers in force. When the
    /// servers (in order) and the pool's settings stay the same, so do the downstream
    /// connections and their counters, as in [`Proxy::set_servers`]; a SIGHUP that changed
    /// something else does not reconnect every server.
    pub fn reload(&self, mut cfg: ProxyConfig) -> Result<(), ProxyError> {
        let _one_at_a_time = self.updating.lock();
        let was = self.config();
        if cfg.servers == Servers::Pending {
            cfg.servers = was.servers.clone();
        }
        let router = Cluster::router(&cfg)?;
        let old = self.cluster();
        let pool = if router.servers() == old.router.servers() && cfg.pool == was.pool {
            old.pool.clone()
        } else {
            Arc::new(Cluster::pool(&router, &cfg)?)
        };
        self.swap(cfg, router, pool);
        Ok(())
    }

    /// Swaps in new servers (a streamed REST config) without touching client connections.
    /// When the new server list is the old one, in the same order, the downstream
    /// connections are kept (moxi's stable update) and only the routing table changes.
    /// Returns whether they were kept.
    pub fn set_servers(&self, servers: Servers) -> Result<bool, ProxyError> {
        let _one_at_a_time = self.updating.lock();
        let mut cfg = (*self.config()).clone();
        cfg.servers = servers;
        let router = Cluster::router(&cfg)?;
        let old = self.cluster();
        let kept = router.servers() == old.router.servers();
        let pool = if kept {
            old.pool.clone()
        } else {
            Arc::new(Cluster::pool(&router, &cfg)?)
        };
        self.swap(cfg, router, pool);
        Ok(kept)
    }

    /// Puts `cfg` in force with its router and pool, and a new (empty) front cache.
    fn swap(&self, cfg: ProxyConfig, router: Router, pool: Arc<Pool>) {
        let front = FrontCache::new(&cfg.front_cache).map(Arc::new);
        self.cluster.store(Arc::new(Cluster {
            router,
            pool,
            front,
            a2b: cfg.downstream == crate::Protocol::Binary,
        }));
        self.cfg.store(Arc::new(cfg));
    }

    /// The config in force.
    pub fn config(&self) -> Arc<ProxyConfig> {
        self.cfg.load_full()
    }

    /// How long a client connection waits for a reply before answering with a timeout error
    /// itself: the connect timeout and twice the request timeout of the config in force now.
    /// Asked whenever a connection starts such a wait (not once per connection), so that a
    /// reload that changes the timeouts reaches connections already open; a load of the
    /// config's `ArcSwap`, no lock.
    pub(crate) fn reply_wait(&self) -> std::time::Duration {
        let cfg = self.cfg.load();
        cfg.pool.connect_timeout + cfg.pool.timeout * 2
    }

    /// The cluster in force.
    pub fn cluster(&self) -> Arc<Cluster> {
        self.cluster.load_full()
    }

    /// The proxy's counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    /// Accepts clients on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => return,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let Ok(permit) = self.conns.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many client connections; closing");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let id = self.next_client.fetch_add(1, Ordering::Relaxed);
            let proxy = self.clone();
            tokio::spawn(async move {
                client::serve(proxy, stream, id).await;
                drop(permit);
            });
        }
    }
}

/// Binds `addr` and serves `cfg` on it until `shutdown` resolves; for tests and embedding.
pub async fn bind(
    cfg: ProxyConfig,
    addr: SocketAddr,
) -> std::io::Result<(Arc<Proxy>, TcpListener)> {
    let proxy = Proxy::new(cfg).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    Ok((proxy, listener))
}
