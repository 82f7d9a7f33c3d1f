//! The command line: `shoal <door> [flags]`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// shoal: a distributed cache for immutable data.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The door or tool to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The doors and operator tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show which member owns each key (ketama, vbucket, groupcache, jump, chash, ...)
    Hash(cmd::hash::HashArgs),
    /// Chunked caching reverse proxy over a directory or an HTTP origin
    Serve(Box<cmd::serve::ServeArgs>),
    /// memcached proxy (moxi/twemproxy compatible) in front of memcached servers
    Memcache(Box<cmd::memcache::MemcacheArgs>),
    /// Sharded HTTP router over replicated WebDAV storage nodes (photosrv-compatible)
    Route(Box<cmd::route::RouteArgs>),
    /// Show a running node's members, their state and key-space share (from its admin API)
    Members(cmd::members::MembersArgs),
    /// Bring every replica of a shard to the same files (journal replay or PROPFIND listing)
    Repair(cmd::repair::RepairArgs),
    /// Bulk PUT of URLs or local files (or DELETE of keys) into a `shoal route` cluster
    Upload(Box<cmd::upload::UploadArgs>),
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
/// Errors are printed as one line on stderr: `shoal: error: ...`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(args) => cmd::hash::run(args),
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Memcache(args) => cmd::memcache::run(*args),
        Command::Route(args) => cmd::route::run(*args),
        Command::Repair(args) => cmd::repair::run(args),
        Command::Upload(args) => cmd::upload::run(*args),
        Command::Members(args) => cmd::members::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("shoal: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
