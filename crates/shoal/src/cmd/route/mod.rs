//! `shoal route`: the sharded HTTP router over replicated WebDAV storage nodes (photosrv's
//! job), and `shoal route --explain PATH`.
//!
//! Flags carry photosrv's names as aliases where they map cleanly (`--httpport`, `--dcname`,
//! `--rosterCheck`, `--migration`, `--migrationKey`, `--headtimeoutms`, `--debugport`); Go's
//! single-dash spelling needs a second dash here.

mod admin;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use shoal_router::{Quorum, ReadMode, RouteConfig, Router, Settings, server};

use crate::units::HumanDuration;

/// Arguments of `shoal route`.
#[derive(Debug, Args)]
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

    /// Address to serve on.
    #[arg(long, env = "SHOAL_ROUTE_LISTEN", default_value = "127.0.0.1:8888")]
    pub listen: SocketAddr,

    /// photosrv's -httpport: serve on 0.0.0.0:PORT (overrides --listen).
    #[arg(long, value_name = "PORT")]
    pub httpport: Option<u16>,

    /// Admin address: /healthz, /metrics, /status, /migration/{start,abort,finish}.
    #[arg(
        long,
        env = "SHOAL_ROUTE_ADMIN_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub admin_listen: SocketAddr,

    /// photosrv's -debugport: admin on 127.0.0.1:PORT (overrides --admin-listen).
    #[arg(long, value_name = "PORT")]
    pub debugport: Option<u16>,

    /// Roster file of live storage nodes (2nd column = host:port). Unset: no filtering.
    #[arg(long, env = "SHOAL_ROUTE_ROSTER", value_name = "FILE")]
    pub roster: Option<PathBuf>,

    /// How often the roster (and its symlink target) is checked for changes.
    #[arg(
        long,
        alias = "rosterCheck",
        env = "SHOAL_ROUTE_ROSTER_CHECK",
        default_value = "1s"
    )]
    pub roster_check: HumanDuration,

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

    /// Replica choice for reads: random, multi-head or hedged.
    #[arg(long, env = "SHOAL_ROUTE_CHOOSER_MODE", default_value = "hedged")]
    pub chooser_mode: String,

    /// Multi-HEAD timeout (photosrv's -headtimeoutms, which never worked there). With
    /// `--chooser-mode random`, a non-zero value switches to multi-head as photosrv intended.
    #[arg(long, env = "SHOAL_ROUTE_HEAD_TIMEOUT", default_value = "100ms")]
    pub head_timeout: HumanDuration,

    /// photosrv's -headtimeoutms in milliseconds: sets --head-timeout and multi-head mode.
    #[arg(long, value_name = "MS")]
    pub headtimeoutms: Option<u64>,

    /// Hedged mode: ask a second replica when the first has not answered after this.
    #[arg(long, env = "SHOAL_ROUTE_HEDGE_DELAY", default_value = "50ms")]
    pub hedge_delay: HumanDuration,

    /// Replicas that must store a PUT/DELETE: majority, all, or a number.
    #[arg(long, env = "SHOAL_ROUTE_WRITE_QUORUM", default_value = "majority")]
    pub write_quorum: String,

    /// Refuse PUT and DELETE (405), as photosrv did.
    #[arg(long, env = "SHOAL_ROUTE_READ_ONLY")]
    pub read_only: bool,

    /// Repair journal: replicas that missed a write, appended and fsync'd.
    #[arg(long, env = "SHOAL_ROUTE_JOURNAL", value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// TCP connect timeout to a storage node.
    #[arg(long, env = "SHOAL_ROUTE_CONNECT_TIMEOUT", default_value = "2s")]
    pub connect_timeout: HumanDuration,

    /// How long a read waits for a storage node's response headers.
    #[arg(long, env = "SHOAL_ROUTE_RESPONSE_TIMEOUT", default_value = "30s")]
    pub response_timeout: HumanDuration,

    /// How long one replica write (body and answer) may take.
    #[arg(long, env = "SHOAL_ROUTE_WRITE_TIMEOUT", default_value = "10m")]
    pub write_timeout: HumanDuration,

    /// Health-check period (HEAD / on every node); 0 disables health checks.
    #[arg(long, env = "SHOAL_ROUTE_HEALTH_INTERVAL", default_value = "2s")]
    pub health_interval: HumanDuration,

    /// Time a client has to send its request headers (photosrv's -readTimeout, roughly).
    #[arg(
        long,
        alias = "readTimeout",
        env = "SHOAL_ROUTE_HEADER_TIMEOUT",
        default_value = "30s"
    )]
    pub header_timeout: HumanDuration,

    /// Print where PATH goes (normalised path, shard, replicas) and exit.
    #[arg(long, value_name = "PATH")]
    pub explain: Option<String>,
}

impl RouteArgs {
    /// The router's settings from the flags.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let read_mode = match (self.chooser_mode.as_str(), self.headtimeoutms) {
            (_, Some(ms)) if ms > 0 => ReadMode::MultiHead {
                timeout: std::time::Duration::from_millis(ms),
            },
            ("random", _) => ReadMode::Random,
            ("multi-head", _) => ReadMode::MultiHead {
                timeout: self.head_timeout.get(),
            },
            ("hedged", _) => ReadMode::Hedged {
                delay: self.hedge_delay.get(),
            },
            (other, _) => {
                bail!("invalid --chooser-mode {other:?}: expected random, multi-head or hedged")
            }
        };
        let health = self.health_interval.get();
        Ok(Settings {
            read_mode,
            write_quorum: self
                .write_quorum
                .parse::<Quorum>()
                .map_err(anyhow::Error::msg)?,
            read_only: self.read_only,
            connect_timeout: self.connect_timeout.get(),
            response_timeout: self.response_timeout.get(),
            write_timeout: self.write_timeout.get(),
            health_interval: (!health.is_zero()).then_some(health),
            roster: self.roster.clone(),
            roster_check: self.roster_check.get(),
            migration_state: self.migration_state.clone(),
            migration_key: self.migration_key.clone().filter(|k| !k.is_empty()),
            journal: self.journal.clone(),
            ..Settings::default()
        })
    }
}

/// Loads the shard map and builds the router; every config problem surfaces here.
pub fn build(args: &RouteArgs) -> anyhow::Result<Router> {
    let cfg = RouteConfig::load(&args.config, &args.dc)
        .with_context(|| format!("config {}", args.config.display()))?;
    for d in &cfg.dropped_rewrites {
        tracing::warn!(prefix = %d.prefix, replacement = %d.replacement, "rewrite ignored: {}", d.why);
    }
    Ok(Router::new(&cfg, args.settings()?)?)
}

/// Runs `shoal route`.
pub fn run(args: RouteArgs) -> anyhow::Result<()> {
    crate::telemetry::init_logging();
    // The router resolves its metric handles when it is built: the recorder must exist first.
    crate::telemetry::metrics();
    let router = build(&args)?;
    if let Some(path) = &args.explain {
        return explain(&router, path);
    }
    let listen = args
        .httpport
        .map_or(args.listen, |p| SocketAddr::from(([0, 0, 0, 0], p)));
    let admin_listen = args
        .debugport
        .map_or(args.admin_listen, |p| SocketAddr::from(([127, 0, 0, 1], p)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let front = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let admin_l = tokio::net::TcpListener::bind(admin_listen)
            .await
            .with_context(|| format!("cannot listen on {admin_listen} (admin)"))?;
        tracing::info!(listen = %front.local_addr()?, admin = %admin_l.local_addr()?, state = %router.migration_state(), "shoal route serving");
        let shutdown = crate::shutdown::Shutdown::on_signals();
        let tasks = router.spawn_background();
        let admin_app = admin::app(router.clone());
        let s2 = shutdown.clone();
        let admin_task = tokio::spawn(async move {
            axum::serve(admin_l, admin_app)
                .with_graceful_shutdown(async move { s2.wait().await })
                .await
        });
        let limits = server::ServerLimits {
            header_timeout: args.header_timeout.get(),
            ..Default::default()
        };
        let s3 = shutdown.clone();
        server::serve(front, router, limits, async move { s3.wait().await }).await?;
        shutdown.trigger();
        for t in tasks {
            t.abort();
        }
        let _ = admin_task.await;
        Ok(())
    })
}

fn explain(router: &Router, path: &str) -> anyhow::Result<()> {
    let e = router
        .explain(path)
        .map_err(|why| anyhow::anyhow!("path {path:?} is refused: {why}"))?;
    println!("path\t{}", e.path);
    println!("key\t{}", e.key);
    println!("state\t{}", e.state);
    for t in &e.targets {
        println!("{}\t{}\t{}", t.ring, t.shard, t.replicas.join(" "));
    }
    Ok(())
}
