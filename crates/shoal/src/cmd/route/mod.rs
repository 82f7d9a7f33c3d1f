//! `shoal route`: the sharded HTTP router over replicated WebDAV storage nodes (photosrv's
//! job), and `shoal route --explain PATH`.
//!
//! Flags carry photosrv's names as aliases where they map cleanly (`--httpport`, `--dcname`,
//! `--rosterCheck`, `--migration`, `--migrationKey`, `--headtimeoutms`, `--debugport`); Go's
//! single-dash spelling needs a second dash here. Every setting can also sit in the `[route]`
//! table of a TOML shard map ([`file`]); variables override the file and flags override both.

mod admin;
pub mod file;
mod runtimes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use shoal_router::{Quorum, ReadMode, RouteConfig, Router, Settings, server};

use crate::units::HumanDuration;

/// Arguments of `shoal route`.
#[derive(Debug, Clone, Args)]
pub struct RouteArgs {
    /// Shard map: photosrv's config file, or its TOML form (a name ending in `.toml`).
    #[arg(short = 'c', long, env = "SHOAL_ROUTE_CONFIG", value_name = "FILE")]
    pub config: PathBuf,

    /// Data centre block to use (photosrv's -dcname). Required.
    #[arg(
        long,
        alias = "dcname",
        env = "SHOAL_ROUTE_DC",
        value_name = "NAME",
        default_value = ""
    )]
    pub dc: String,

    /// Address to serve on. [default: 127.0.0.1:8888]
    #[arg(long, env = "SHOAL_ROUTE_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// photosrv's -httpport: serve on 0.0.0.0:PORT (overrides --listen).
    #[arg(long, value_name = "PORT")]
    pub httpport: Option<u16>,

    /// Admin address: /healthz, /metrics, /status, /migration/{start,abort,finish}; `off`
    /// for none (the migration switch then needs a restart). [default: 127.0.0.1:8080]
    #[arg(long, env = "SHOAL_ROUTE_ADMIN_LISTEN", value_name = "ADDR|off")]
    pub admin_listen: Option<AdminListen>,

    /// photosrv's -debugport: admin on 127.0.0.1:PORT (overrides --admin-listen).
    #[arg(long, value_name = "PORT")]
    pub debugport: Option<u16>,

    /// Roster file of live storage nodes (2nd column = host:port). Unset: no filtering.
    #[arg(long, env = "SHOAL_ROUTE_ROSTER", value_name = "FILE")]
    pub roster: Option<PathBuf>,

    /// How often the roster (and its symlink target) is checked for changes. [default: 1s]
    #[arg(long, alias = "rosterCheck", env = "SHOAL_ROUTE_ROSTER_CHECK")]
    pub roster_check: Option<HumanDuration>,

    /// File holding the migration state (photosrv's -migration). Unset: memory only.
    #[arg(
        long,
        alias = "migration",
        env = "SHOAL_ROUTE_MIGRATION_STATE",
        value_name = "FILE"
    )]
    pub migration_state: Option<PathBuf>,

    /// Key the migration endpoints require. Unset or empty: switching is refused.
    #[arg(
        long,
        alias = "migrationKey",
        env = "SHOAL_ROUTE_MIGRATION_KEY",
        hide_env_values = true
    )]
    pub migration_key: Option<String>,

    /// Replica choice for reads: random, multi-head or hedged. [default: hedged]
    #[arg(long, env = "SHOAL_ROUTE_CHOOSER_MODE")]
    pub chooser_mode: Option<String>,

    /// Multi-HEAD timeout (photosrv's -headtimeoutms, which never worked there). With
    /// `--chooser-mode random`, a non-zero value switches to multi-head as photosrv intended. [default: 100ms]
    #[arg(long, env = "SHOAL_ROUTE_HEAD_TIMEOUT")]
    pub head_timeout: Option<HumanDuration>,

    /// photosrv's -headtimeoutms in milliseconds: sets --head-timeout and multi-head mode.
    #[arg(long, value_name = "MS")]
    pub headtimeoutms: Option<u64>,

    /// Hedged mode: ask a second replica when the first has not answered after this. [default: 50ms]
    #[arg(long, env = "SHOAL_ROUTE_HEDGE_DELAY")]
    pub hedge_delay: Option<HumanDuration>,

    /// Replicas that must store a PUT/DELETE: majority, all, or a number. [default: majority]
    #[arg(long, env = "SHOAL_ROUTE_WRITE_QUORUM")]
    pub write_quorum: Option<String>,

    /// Refuse PUT and DELETE (405), as photosrv did.
    #[arg(long, env = "SHOAL_ROUTE_READ_ONLY")]
    pub read_only: bool,

    /// Repair journal: replicas that missed a write, appended and fsync'd.
    #[arg(long, env = "SHOAL_ROUTE_JOURNAL", value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// TCP connect timeout to a storage node. [default: 2s]
    #[arg(long, env = "SHOAL_ROUTE_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<HumanDuration>,

    /// How long a read waits for a storage node's response headers. [default: 30s]
    #[arg(long, env = "SHOAL_ROUTE_RESPONSE_TIMEOUT")]
    pub response_timeout: Option<HumanDuration>,

    /// How long one replica write (body and answer) may take. [default: 10m]
    #[arg(long, env = "SHOAL_ROUTE_WRITE_TIMEOUT")]
    pub write_timeout: Option<HumanDuration>,

    /// Longest wait for the next piece of a body already under way (a storage node's
    /// response, a node taking a PUT, a client sending one); a stalled response is cut off,
    /// a stalled node counts as a failed replica. [default: 30s]
    #[arg(long, env = "SHOAL_ROUTE_BODY_TIMEOUT")]
    pub body_timeout: Option<HumanDuration>,

    /// Health-check period (HEAD / on every node); 0 disables health checks. [default: 2s]
    #[arg(long, env = "SHOAL_ROUTE_HEALTH_INTERVAL")]
    pub health_interval: Option<HumanDuration>,

    /// How long one health check (connect and answer) may take before the node counts as
    /// failing it. [default: 1s]
    #[arg(long, env = "SHOAL_ROUTE_HEALTH_TIMEOUT")]
    pub health_timeout: Option<HumanDuration>,

    /// PEM file of CA certificates trusted for https:// storage nodes, besides the
    /// system's (a private CA).
    #[arg(long, env = "SHOAL_ROUTE_STORAGE_CA", value_name = "FILE")]
    pub storage_ca: Option<PathBuf>,

    /// Idle keep-alive connections kept per storage node (per runtime). [default: 64]
    #[arg(long, env = "SHOAL_ROUTE_POOL_IDLE_PER_HOST", value_name = "N")]
    pub pool_idle_per_host: Option<usize>,

    /// Time a client has to send its request headers (photosrv's -readTimeout, roughly). [default: 30s]
    #[arg(long, alias = "readTimeout", env = "SHOAL_ROUTE_HEADER_TIMEOUT")]
    pub header_timeout: Option<HumanDuration>,

    /// Serve with N single-threaded runtimes, one thread each, each with its own
    /// SO_REUSEPORT listener and storage-node connection pool (nginx's worker processes);
    /// 0: one multi-threaded runtime with a worker per CPU. [default: one per CPU]
    #[arg(long, env = "SHOAL_ROUTE_RUNTIMES", value_name = "N")]
    pub runtimes: Option<usize>,

    /// Append a line per request to FILE, in nginx's `combined` format; SIGUSR1 reopens it
    /// (log rotation). [default: none]
    #[arg(long, env = "SHOAL_ROUTE_ACCESS_LOG", value_name = "FILE")]
    pub access_log: Option<PathBuf>,

    /// Serve HTTPS (ALPN h2 and http/1.1) with this PEM certificate chain; needs --tls-key.
    /// A plain-HTTP client on the port gets a 400 saying to use https://. [default: HTTP]
    #[arg(long, env = "SHOAL_ROUTE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SHOAL_ROUTE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Print where PATH goes (normalised path, shard, replicas) and exit. PATH is a request
    /// path (`/a/caf%E9.jpg`) and may hold raw bytes that are not UTF-8.
    #[arg(long, value_name = "PATH")]
    pub explain: Option<std::ffi::OsString>,
}

/// Settings resolved from defaults, the `[route]` table, the environment and the flags.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The router's settings.
    pub settings: Settings,
    /// Front address.
    pub listen: SocketAddr,
    /// Admin address, if any.
    pub admin_listen: AdminListen,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Single-threaded runtimes to serve with (0: one multi-threaded runtime).
    pub runtimes: usize,
    /// `runtimes` as given by a flag, variable or the file; `None`: one per CPU, as counted
    /// when resolved (a count that may change under a running process: not a change asked for).
    pub runtimes_given: Option<usize>,
    /// Access log file, if any.
    pub access_log: Option<PathBuf>,
    /// HTTPS on the front with this certificate and key file, if configured.
    pub tls_files: Option<(PathBuf, PathBuf)>,
}

impl Resolved {
    /// The front settings that differ in `new`: a reload cannot change them, since the
    /// sockets, threads and files they name are open at start. (A reload reads the same
    /// certificate files again: [`shoal_tls::CertFiles`].)
    pub fn front_changes(&self, new: &Resolved) -> Vec<&'static str> {
        let (a, b) = (self, new);
        [
            ("listen", a.listen != b.listen),
            ("admin_listen", a.admin_listen != b.admin_listen),
            ("header_timeout", a.header_timeout != b.header_timeout),
            ("runtimes", a.runtimes_given != b.runtimes_given),
            ("access_log", a.access_log != b.access_log),
            ("tls_cert/tls_key", a.tls_files != b.tls_files),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
    }
}

impl RouteArgs {
    /// Overlays the flags (and `SHOAL_ROUTE_*` variables, which clap has already read) on the
    /// config file's `[route]` table and the defaults.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        let f = file::load(&self.config)?;
        let dur = |flag: Option<HumanDuration>, file: Option<HumanDuration>, default: u64| {
            flag.or(file)
                .map_or(Duration::from_millis(default), HumanDuration::get)
        };
        let mode = self
            .chooser_mode
            .clone()
            .or(f.chooser_mode)
            .unwrap_or_else(|| "hedged".into());
        let read_mode = match (mode.as_str(), self.headtimeoutms) {
            (_, Some(ms)) if ms > 0 => ReadMode::MultiHead {
                timeout: Duration::from_millis(ms),
            },
            ("random", _) => ReadMode::Random,
            ("multi-head", _) => ReadMode::MultiHead {
                timeout: dur(self.head_timeout, f.head_timeout, 100),
            },
            ("hedged", _) => ReadMode::Hedged {
                delay: dur(self.hedge_delay, f.hedge_delay, 50),
            },
            (other, _) => {
                bail!("invalid --chooser-mode {other:?}: expected random, multi-head or hedged")
            }
        };
        let health = dur(self.health_interval, f.health_interval, 2_000);
        let quorum = self
            .write_quorum
            .clone()
            .or(f.write_quorum)
            .unwrap_or_else(|| "majority".into());
        let settings = Settings {
            read_mode,
            write_quorum: quorum.parse::<Quorum>().map_err(anyhow::Error::msg)?,
            read_only: self.read_only || f.read_only.unwrap_or(false),
            connect_timeout: dur(self.connect_timeout, f.connect_timeout, 2_000),
            response_timeout: dur(self.response_timeout, f.response_timeout, 30_000),
            write_timeout: dur(self.write_timeout, f.write_timeout, 600_000),
            body_timeout: dur(self.body_timeout, f.body_timeout, 30_000),
            health_interval: (!health.is_zero()).then_some(health),
            health_timeout: dur(self.health_timeout, f.health_timeout, 1_000),
            pool_idle_per_host: self
                .pool_idle_per_host
                .or(f.pool_idle_per_host)
                .unwrap_or(64),
            roster: self.roster.clone().or(f.roster),
            roster_check: dur(self.roster_check, f.roster_check, 1_000),
            migration_state: self.migration_state.clone().or(f.migration_state),
            migration_key: self
                .migration_key
                .clone()
                .or(f.migration_key)
                .filter(|k| !k.is_empty()),
            journal: self.journal.clone().or(f.journal),
            storage_ca: self.storage_ca.clone().or(f.storage_ca),
        };
        let listen = match self.httpport {
            Some(p) => SocketAddr::from(([0, 0, 0, 0], p)),
            None => self
                .listen
                .or(f.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8888))),
        };
        let admin_listen = match self.debugport {
            Some(p) => AdminListen::At(SocketAddr::from(([127, 0, 0, 1], p))),
            None => self
                .admin_listen
                .or(f.admin_listen)
                .unwrap_or(AdminListen::At(SocketAddr::from(([127, 0, 0, 1], 8080)))),
        };
        let tls_files = match (
            self.tls_cert.clone().or(f.tls_cert),
            self.tls_key.clone().or(f.tls_key),
        ) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            (Some(_), None) => bail!("--tls-cert needs --tls-key (tls_key in [route])"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert (tls_cert in [route])"),
        };
        Ok(Resolved {
            settings,
            tls_files,
            listen,
            admin_listen,
            header_timeout: dur(self.header_timeout, f.header_timeout, 30_000),
            access_log: self.access_log.clone().or(f.access_log),
            // One per CPU by default: in docs/route.md's benchmark the router on its own core
            // kept 0.92-0.97 of nginx's throughput this way, and had 0.53 runs with one
            // multi-threaded runtime.
            runtimes: self.runtimes.or(f.runtimes).unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            }),
            runtimes_given: self.runtimes.or(f.runtimes),
        })
    }
}

/// Loads the shard map and builds the router; every config problem surfaces here.
pub fn build(args: &RouteArgs, settings: Settings) -> anyhow::Result<Router> {
    let cfg = RouteConfig::load(&args.config, &args.dc)
        .with_context(|| format!("config {}", args.config.display()))?;
    for d in &cfg.dropped_rewrites {
        tracing::warn!(prefix = %d.prefix, replacement = %d.replacement, "rewrite ignored: {}", d.why);
    }
    Ok(Router::new(&cfg, settings)?)
}

/// Runs `shoal route`.
pub fn run(args: RouteArgs) -> anyhow::Result<()> {
    crate::telemetry::init();
    // The router resolves its metric handles when it is built: the recorder must exist first.
    crate::telemetry::metrics();
    let started = args.resolve()?;
    let Resolved {
        settings,
        listen,
        admin_listen,
        header_timeout,
        runtimes,
        access_log,
        tls_files,
        runtimes_given: _,
    } = started.clone();
    let certs = match &tls_files {
        Some((cert, key)) => {
            Some(shoal_tls::CertFiles::load(cert, key).context("--tls-cert/--tls-key")?)
        }
        None => None,
    };
    let tls = certs
        .as_ref()
        .map(shoal_tls::CertFiles::server_config)
        .transpose()
        .context("--tls-cert/--tls-key")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let router = build(&args, settings)?;
    if let Some(path) = &args.explain {
        return explain(&router, path);
    }
    let reload_source = ReloadSource {
        args,
        started,
        certs,
    };
    // The front's limits but for the access log, which is opened on the runtime.
    let front_limits = server::ServerLimits {
        header_timeout,
        tls,
        ..Default::default()
    };
    if runtimes > 0 {
        return run_runtimes(
            router,
            (listen, admin_listen),
            front_limits,
            access_log,
            reload_source,
            runtimes,
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let front = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let admin_l = admin_listen.bind().await?;
        tracing::info!(listen = %front.local_addr()?, %scheme, admin = %bound(admin_l.as_ref()), state = %router.migration_state(), "shoal route serving");
        let shutdown = crate::shutdown::Shutdown::on_signals();
        let mut tasks = router.spawn_background();
        tasks.push(reload_on_hup(reload_source.clone(), router.clone()));
        let admin_task = tokio::spawn(serve_admin(admin_l, router.clone(), shutdown.clone()));
        let access_log = crate::access_log::open(access_log.as_deref())?;
        let limits = server::ServerLimits {
            access_log: access_log.clone(),
            ..front_limits
        };
        let s3 = shutdown.clone();
        server::serve(front, router, limits, async move { s3.wait().await }).await?;
        crate::access_log::flush(access_log).await;
        shutdown.trigger();
        for t in tasks {
            t.abort();
        }
        admin_task.await.context("admin server")?
    })
}

/// `--runtimes N`: the front on N threads ([`runtimes`]); admin and background work on a
/// single-threaded runtime on this thread.
fn run_runtimes(
    router: Router,
    (listen, admin_listen): (SocketAddr, AdminListen),
    front_limits: server::ServerLimits,
    access_log: Option<PathBuf>,
    reload_source: ReloadSource,
    n: usize,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let listeners = runtimes::bind(listen, n)?;
        let admin_l = admin_listen.bind().await?;
        let front = listeners[0].local_addr()?;
        let scheme = if front_limits.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(listen = %front, %scheme, admin = %bound(admin_l.as_ref()), runtimes = n, state = %router.migration_state(), "shoal route serving");
        let shutdown = crate::shutdown::Shutdown::on_signals();
        let mut tasks = router.spawn_background();
        tasks.push(reload_on_hup(reload_source, router.clone()));
        let access_log = crate::access_log::open(access_log.as_deref())?;
        let limits = server::ServerLimits {
            access_log: access_log.clone(),
            ..front_limits
        };
        let threads = runtimes::serve(listeners, &router, &limits, &shutdown)?;
        let admin = serve_admin(admin_l, router.clone(), shutdown.clone()).await;
        shutdown.trigger();
        for t in tasks {
            t.abort();
        }
        for t in threads {
            match tokio::task::spawn_blocking(move || t.join()).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "a front runtime failed"),
                _ => tracing::error!("a front runtime thread panicked"),
            }
        }
        crate::access_log::flush(access_log).await;
        admin
    })
}

/// What SIGHUP reloads from: the arguments (flags and variables as read at start) and the
/// config file as it is now; the settings resolved at start, for the front's fixed ones; and
/// the front's certificate files, read again.
#[derive(Clone)]
struct ReloadSource {
    args: RouteArgs,
    started: Resolved,
    certs: Option<Arc<shoal_tls::CertFiles>>,
}

/// SIGHUP: re-reads the config file and puts its shard map ([`Router::reload`]) and its
/// `[route]` settings ([`Router::update_settings`]) in force, and the TLS certificate files,
/// each on its own: a map that does not load or that the router refuses is logged and the old
/// one kept, and so are settings that do not resolve or that change one fixed at start, and
/// certificate files that do not load. Flags and variables keep overriding the file as they
/// did at start.
fn reload_on_hup(source: ReloadSource, router: Router) -> tokio::task::JoinHandle<()> {
    crate::shutdown::on_hangup(move || {
        reload_settings(&source, &router);
        if let Some(certs) = &source.certs {
            certs.reload_and_log();
        }
        // Last: a map change seen on /status says the whole SIGHUP has been handled.
        reload_shard_map(&source.args, &router);
    })
}

fn reload_shard_map(args: &RouteArgs, router: &Router) {
    let config = &args.config;
    let cfg = match RouteConfig::load(config, &args.dc) {
        Ok(cfg) => cfg,
        Err(e) => {
            tracing::error!(config = %config.display(), error = %e, "reload failed; keeping the old shard map");
            return;
        }
    };
    for d in &cfg.dropped_rewrites {
        tracing::warn!(prefix = %d.prefix, replacement = %d.replacement, "rewrite ignored: {}", d.why);
    }
    match router.reload(&cfg) {
        Ok(r) => tracing::info!(
            config = %config.display(),
            shards = r.shards,
            migration_shards = ?r.migration_shards,
            replicas_added = r.replicas_added,
            replicas_removed = r.replicas_removed,
            completed_migration = r.completed_migration,
            "shard map reloaded"
        ),
        Err(e) => {
            tracing::error!(config = %config.display(), error = %e, "reload failed; keeping the old shard map")
        }
    }
}

fn reload_settings(source: &ReloadSource, router: &Router) {
    let config = &source.args.config;
    let new = match source.args.resolve() {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(config = %config.display(), error = %format!("{e:#}"), "settings not reloaded; keeping the old ones");
            return;
        }
    };
    let mut fixed = source.started.front_changes(&new);
    let router_fixed = router.settings().changes(&new.settings);
    fixed.extend(router_fixed.iter().filter(|c| !c.live).map(|c| c.name));
    if !fixed.is_empty() {
        tracing::error!(
            config = %config.display(),
            settings = %fixed.join(", "),
            "settings not reloaded: these can change only with a restart; keeping the old ones"
        );
        return;
    }
    match router.update_settings(new.settings) {
        Ok(changed) if changed.is_empty() => {}
        Ok(changed) => {
            tracing::info!(config = %config.display(), changed = %changed.join(", "), "settings reloaded")
        }
        Err(e) => {
            tracing::error!(config = %config.display(), error = %e, "keeping the old settings")
        }
    }
}

/// `--admin-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum AdminListen {
    /// No admin port.
    Off,
    /// The admin port's address.
    At(SocketAddr),
}

impl std::str::FromStr for AdminListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(AdminListen::Off);
        }
        s.parse()
            .map(AdminListen::At)
            .map_err(|_| format!("{s:?} is neither an address (host:port) nor `off`"))
    }
}

impl TryFrom<String> for AdminListen {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for AdminListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminListen::Off => f.write_str("off"),
            AdminListen::At(a) => a.fmt(f),
        }
    }
}

impl AdminListen {
    /// The bound admin listener, or `None` when `off`.
    async fn bind(self) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        let AdminListen::At(addr) = self else {
            return Ok(None);
        };
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (admin)"))?;
        Ok(Some(l))
    }
}

/// The admin listener's bound address (port 0 resolved), or `off`.
fn bound(l: Option<&tokio::net::TcpListener>) -> String {
    l.and_then(|l| l.local_addr().ok())
        .map_or_else(|| "off".to_string(), |a| a.to_string())
}

/// Serves the admin API on `listener` until `shutdown`; without one, just waits for it.
async fn serve_admin(
    listener: Option<tokio::net::TcpListener>,
    router: Router,
    shutdown: crate::shutdown::Shutdown,
) -> anyhow::Result<()> {
    let Some(listener) = listener else {
        shutdown.wait().await;
        return Ok(());
    };
    let s2 = shutdown.clone();
    axum::serve(listener, admin::app(router))
        .with_graceful_shutdown(async move { s2.wait().await })
        .await
        .context("admin server")
}

fn explain(router: &Router, path: &std::ffi::OsStr) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let e = router
        .explain(path.as_bytes())
        .map_err(|why| anyhow::anyhow!("path {path:?} is refused: {why}"))?;
    println!("path\t{}", e.path);
    println!("key\t{}", e.key);
    println!("state\t{}", e.state);
    for t in &e.targets {
        println!("{}\t{}\t{}", t.ring, t.shard, t.replicas.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(file: &std::path::Path, extra: &[&str]) -> RouteArgs {
        let mut v = vec!["shoal", "route", "-c", file.to_str().unwrap()];
        v.extend(extra);
        match crate::cli::Cli::try_parse_from(v).unwrap().command {
            crate::cli::Command::Route(a) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    const SHARDS: &str =
        "[[dc.x.shards]]\nname = \"shard1\"\nreplicas = [\"http://127.0.0.1:1\"]\n";

    #[test]
    fn the_route_table_sets_settings_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("map.toml");
        std::fs::write(
            &p,
            format!(
                "[route]\nwrite_quorum = \"all\"\nhedge_delay = \"20ms\"\nlisten = \"127.0.0.1:9999\"\n\
                 read_only = true\nhealth_interval = \"0s\"\njournal = \"/tmp/j\"\n\
                 health_timeout = \"3s\"\npool_idle_per_host = 5\n{SHARDS}"
            ),
        )
        .unwrap();
        let r = args(&p, &["--write-quorum", "1", "--dc", "x"])
            .resolve()
            .unwrap();
        assert_eq!(r.settings.write_quorum, Quorum::Count(1));
        assert_eq!(
            r.settings.read_mode,
            ReadMode::Hedged {
                delay: Duration::from_millis(20)
            }
        );
        assert_eq!(r.listen, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(r.admin_listen, "127.0.0.1:8080".parse().unwrap());
        assert!(r.settings.read_only);
        assert_eq!(r.settings.health_interval, None);
        assert_eq!(r.settings.health_timeout, Duration::from_secs(3));
        assert_eq!(r.settings.pool_idle_per_host, 5);
        let flags = args(&p, &["--dc", "x", "--health-timeout", "250ms"]);
        let flagged = flags.resolve().unwrap();
        assert_eq!(flagged.settings.health_timeout, Duration::from_millis(250));
        assert_eq!(r.settings.journal, Some(PathBuf::from("/tmp/j")));
        assert_eq!(r.header_timeout, Duration::from_secs(30));
        // The shard map beside it still loads.
        build(&args(&p, &["--dc", "x"]), r.settings.clone()).unwrap();

        // What a reload compares: the default runtime count is not a change asked for (the
        // CPU count may differ between two reads); a runtimes key is, and listen too.
        let again = args(&p, &["--write-quorum", "1", "--dc", "x"])
            .resolve()
            .unwrap();
        let unchanged = Resolved {
            runtimes: r.runtimes + 1,
            ..again.clone()
        };
        assert!(r.front_changes(&unchanged).is_empty());
        std::fs::write(
            &p,
            format!("[route]\nruntimes = 3\nlisten = \"127.0.0.1:9998\"\n{SHARDS}"),
        )
        .unwrap();
        let moved = args(&p, &["--dc", "x"]).resolve().unwrap();
        assert_eq!(r.front_changes(&moved), ["listen", "runtimes"]);
    }

    #[test]
    fn admin_listen_takes_an_address_or_off() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("map.toml");
        std::fs::write(&p, format!("[route]\nadmin_listen = \"off\"\n{SHARDS}")).unwrap();
        assert_eq!(
            args(&p, &[]).resolve().unwrap().admin_listen,
            AdminListen::Off
        );
        let r = args(&p, &["--admin-listen", "127.0.0.1:9"])
            .resolve()
            .unwrap();
        assert_eq!(r.admin_listen, "127.0.0.1:9".parse().unwrap());
        std::fs::write(&p, format!("[route]\nadmin_listen = \"of\"\n{SHARDS}")).unwrap();
        let e = format!("{:#}", args(&p, &[]).resolve().unwrap_err());
        assert!(e.contains("\"of\" is neither an address"), "{e}");
        let e = crate::cli::Cli::try_parse_from([
            "shoal",
            "route",
            "-c",
            "f",
            "--admin-listen",
            "nope",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"nope\" is neither an address"), "{e}");
    }

    #[test]
    fn unknown_route_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("map.toml");
        std::fs::write(&p, format!("[route]\nwrite_qorum = \"all\"\n{SHARDS}")).unwrap();
        let e = args(&p, &[]).resolve().unwrap_err().to_string();
        assert!(e.contains("write_qorum") && e.contains("map.toml"), "{e}");
    }

    #[test]
    fn photosrv_files_give_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("photosrv.cfg");
        std::fs::write(&p, "<photosrv>\n</photosrv>\n").unwrap();
        let r = args(&p, &[]).resolve().unwrap();
        assert_eq!(r.settings.write_quorum, Quorum::Majority);
        assert_eq!(r.listen, "127.0.0.1:8888".parse().unwrap());
        assert_eq!(r.settings.health_interval, Some(Duration::from_secs(2)));
    }
}
