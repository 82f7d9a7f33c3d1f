//! `shoal repair`: bring every replica of a shard to the same files, from the journal
//! (`--journal FILE`) or by listing the nodes with PROPFIND (`--list`, with `--cleanup` to
//! remove files that no longer hash to a node's shard after a migration).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use shoal_router::{RouteConfig, Router, Settings};

/// Arguments of `shoal repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Shard map (as for `shoal route`).
    #[arg(short = 'c', long, env = "SHOAL_ROUTE_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Data centre.
    #[arg(long, alias = "dcname", env = "SHOAL_ROUTE_DC", default_value = "")]
    pub dc: String,
    /// The router's migration state file, so repair uses the ring the router serves.
    #[arg(long, alias = "migration", env = "SHOAL_ROUTE_MIGRATION_STATE")]
    pub migration_state: Option<PathBuf>,
    /// Replay this repair journal (written by `shoal route --journal`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// List every node (WebDAV PROPFIND) and copy files to replicas that lack them.
    #[arg(long)]
    pub list: bool,
    /// With --list: delete files from nodes outside their home shard (after a migration).
    #[arg(long, requires = "list")]
    pub cleanup: bool,
    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// PEM CA certificates trusted for https:// storage nodes besides the system's.
    #[arg(long, env = "SHOAL_ROUTE_STORAGE_CA", value_name = "FILE")]
    pub storage_ca: Option<PathBuf>,
}

/// Runs `shoal repair`.
pub fn run(args: RepairArgs) -> anyhow::Result<()> {
    crate::telemetry::init_logging();
    if args.journal.is_none() && !args.list {
        bail!("say what to repair from: --journal FILE and/or --list");
    }
    let cfg = RouteConfig::load(&args.config, &args.dc)
        .with_context(|| format!("config {}", args.config.display()))?;
    // Clean-up deletes what does not hash to the ring the state names; without the routers'
    // state it would take `old` and empty the new ring's nodes mid-migration or after it.
    if args.cleanup && cfg.migration.is_some() && args.migration_state.is_none() {
        bail!(
            "--cleanup with a <migration> ring needs the routers' --migration-state file, so \
             that it cleans up for the ring they serve"
        );
    }
    let settings = Settings {
        health_interval: None,
        migration_state: args.migration_state.clone(),
        storage_ca: args.storage_ca.clone(),
        ..Settings::default()
    };
    let router = Router::new(&cfg, settings)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut failed = 0;
    let verb = if args.dry_run { "would " } else { "" };
    rt.block_on(async {
        let mut reports = Vec::new();
        if let Some(j) = &args.journal {
            reports.push(router.repair_journal(j, args.dry_run).await?);
        }
        if args.list {
            reports.push(router.repair_by_listing(args.dry_run, args.cleanup).await?);
        }
        for r in reports {
            for (replica, path) in &r.copied {
                println!("{verb}copy\t{replica}\t{path}");
            }
            for (replica, path) in &r.deleted {
                println!("{verb}delete\t{replica}\t{path}");
            }
            for f in &r.failed {
                println!("failed\t{f}");
            }
            failed += r.failed.len();
        }
        anyhow::Ok(())
    })?;
    if failed > 0 {
        bail!("{failed} repair(s) failed; journal entries behind them were kept");
    }
    Ok(())
}
