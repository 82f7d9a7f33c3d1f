//! `shoal upload`: bulk PUT (or DELETE) into a `shoal route` cluster, photosrv's
//! `shardsprites`. The router library places and writes each item in process (the same
//! shards, quorum writes and journal as `shoal route`), so no router has to run.
//!
//! Input lines come from `-f FILE` or stdin. A progress bar with rate and ETA goes to stderr
//! when it is a terminal; otherwise (a log file) a progress line at most every
//! `--progress-interval`, so that slow uploads of large files show progress too. Every failed
//! line is printed on stdout, as read, so `shoal upload ... > failed.txt` then
//! `-f failed.txt` retries them. Lines are bytes, not text: `find` prints file names as the
//! file system holds them, and a name that is not UTF-8 (Latin-1, say) is uploaded under its
//! own bytes and, if it fails, printed back byte for byte.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shoal_router::upload::{self, Mode, Outcome, UploadOptions};
use shoal_router::{Quorum, ReadMode, RouteConfig, Router, Settings};

use crate::units::HumanDuration;

/// Arguments of `shoal upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Shard map (as for `shoal route`).
    #[arg(short = 'c', long, env = "SHOAL_ROUTE_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Data centre.
    #[arg(long, alias = "dcname", env = "SHOAL_ROUTE_DC", default_value = "")]
    pub dc: String,
    /// Input, one item per line; stdin when absent.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Items are local file paths (key: the path, `./` stripped, `//` → `/`), not URLs.
    #[arg(long, conflicts_with = "delete")]
    pub local: bool,
    /// Items are keys to delete from every replica.
    #[arg(long)]
    pub delete: bool,
    /// Items worked on at once (photosrv's -w).
    #[arg(short = 'w', long, default_value_t = 4)]
    pub workers: usize,
    /// HEAD each key first and skip it when present (200).
    #[arg(long)]
    pub check: bool,
    /// Write to the `<migration>` ring only (photosrv's -migration).
    #[arg(long, conflicts_with = "migration_state")]
    pub migration: bool,
    /// Follow the router's migration state file (in `both`, write to both rings).
    #[arg(long, env = "SHOAL_ROUTE_MIGRATION_STATE", value_name = "FILE")]
    pub migration_state: Option<PathBuf>,
    /// Repair journal for replicas that miss a write (share the router's).
    #[arg(long, env = "SHOAL_ROUTE_JOURNAL", value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Replicas that must store each item: majority, all, or a number.
    #[arg(long, env = "SHOAL_ROUTE_WRITE_QUORUM", default_value = "majority")]
    pub write_quorum: String,
    /// TCP connect timeout to a storage node or source.
    #[arg(long, default_value = "2s")]
    pub connect_timeout: HumanDuration,
    /// Wait for a source's or a node's response headers.
    #[arg(long, default_value = "30s")]
    pub response_timeout: HumanDuration,
    /// How long one item may take, source fetch and every replica's write included.
    #[arg(long, default_value = "10m")]
    pub write_timeout: HumanDuration,
    /// When stderr is not a terminal: a progress line at most this often (0s: after every
    /// item).
    #[arg(long, default_value = "10s")]
    pub progress_interval: HumanDuration,
    /// PEM CA certificates trusted for https:// storage nodes and source URLs besides the
    /// system's.
    #[arg(long, env = "SHOAL_ROUTE_STORAGE_CA", value_name = "FILE")]
    pub storage_ca: Option<PathBuf>,
}

/// Runs `shoal upload`.
pub fn run(args: UploadArgs) -> anyhow::Result<()> {
    crate::telemetry::init_logging();
    if args.workers == 0 || args.workers > 1024 {
        bail!("invalid --workers {}: expected 1 to 1024", args.workers);
    }
    let mut cfg = RouteConfig::load(&args.config, &args.dc)
        .with_context(|| format!("config {}", args.config.display()))?;
    if args.migration {
        cfg.primary = cfg.migration.take().with_context(|| {
            format!(
                "--migration: data centre {} has no <migration> ring",
                cfg.dc
            )
        })?;
    }
    let settings = Settings {
        // One replica per HEAD for --check, the next only when it fails.
        read_mode: ReadMode::Random,
        write_quorum: args
            .write_quorum
            .parse::<Quorum>()
            .map_err(anyhow::Error::msg)?,
        connect_timeout: args.connect_timeout.get(),
        response_timeout: args.response_timeout.get(),
        write_timeout: args.write_timeout.get(),
        health_interval: None,
        migration_state: args.migration_state.clone(),
        journal: args.journal.clone(),
        storage_ca: args.storage_ca.clone(),
        ..Settings::default()
    };
    let router = Router::new(&cfg, settings)?;
    let lines = read_lines(args.file.as_deref())?;
    let opts = UploadOptions {
        mode: match (args.local, args.delete) {
            (_, true) => Mode::Delete,
            (true, _) => Mode::Local,
            _ => Mode::Urls,
        },
        workers: args.workers,
        check: args.check,
        local_root: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let tally = rt.block_on(go(&router, lines, &opts, args.progress_interval.get()));
    if tally.failed > 0 {
        bail!(
            "{} of {} item(s) failed; they are listed on stdout for a retry",
            tally.failed,
            tally.total
        );
    }
    Ok(())
}

/// The input's non-blank lines, trimmed of ASCII white space (a `\r` included), as bytes.
fn read_lines(file: Option<&std::path::Path>) -> anyhow::Result<Vec<Vec<u8>>> {
    let reader: Box<dyn BufRead> = match file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("input {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = Vec::new();
    for line in reader.split(b'\n') {
        let line = line.context("reading the input")?;
        let line = line.trim_ascii();
        if !line.is_empty() {
            out.push(line.to_vec());
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Tally {
    total: usize,
    done: u64,
    stored: u64,
    present: u64,
    missing: u64,
    failed: u64,
}

async fn go(
    router: &Router,
    lines: Vec<Vec<u8>>,
    opts: &UploadOptions,
    progress_interval: Duration,
) -> Tally {
    let mut t = Tally {
        total: lines.len(),
        ..Tally::default()
    };
    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(Some(lines.len() as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let start = Instant::now();
    let mut last_line = start;
    upload::run(router, lines, opts, |line, out| {
        t.done += 1;
        match out {
            Outcome::Stored { .. } | Outcome::Deleted => t.stored += 1,
            Outcome::Present => t.present += 1,
            Outcome::SourceMissing => t.missing += 1,
            Outcome::Failed(why) => {
                t.failed += 1;
                // The line on stdout for a retry, byte for byte; why on stderr.
                bar.suspend(|| {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(line).and_then(|()| out.write_all(b"\n"));
                    let _ = out.flush();
                    eprintln!("shoal upload: {}: {why}", String::from_utf8_lossy(line));
                });
            }
        }
        bar.inc(1);
        if t.failed > 0 {
            bar.set_message(format!("{} failed", t.failed));
        }
        if !tty && last_line.elapsed() >= progress_interval {
            last_line = Instant::now();
            eprintln!(
                "shoal upload: {}/{} done, {:.0}/s, ETA {}s",
                t.done,
                t.total,
                bar.per_sec(),
                bar.eta().as_secs()
            );
        }
    })
    .await;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let verb = if opts.mode == Mode::Delete {
        "deleted"
    } else {
        "stored"
    };
    eprintln!(
        "shoal upload: {} {verb}, {} already present, {} missing at the source, {} failed, in {secs:.1}s ({:.0}/s)",
        t.stored,
        t.present,
        t.missing,
        t.failed,
        t.done as f64 / secs.max(1e-6)
    );
    t
}
