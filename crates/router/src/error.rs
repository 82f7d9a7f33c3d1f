//! The router's errors: where each came from, and whether retrying can help.

use std::path::PathBuf;

/// Everything the router library can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// A line of a photosrv (Config::General) file is malformed or holds a bad value (a shard
    /// line's name, weight, replicas or a duplicate).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file (or `<string>`).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// The configuration is well-formed but not usable (bad shard name, no data center, ...).
    #[error("config: {0}")]
    Config(String),
    /// A file the router needs (config, roster, state, journal) could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Placement could not be built.
    #[error("placement: {0}")]
    Ring(#[from] shoal_ring::RingError),
    /// A migration switch was refused (bad key, no migration ring, unknown state).
    #[error("{0}")]
    Migration(String),
    /// Another repair is replaying this journal: it holds the journal's repair lock.
    #[error(
        "journal {}: another `shoal repair` is replaying it (it holds {}); try again once it has finished",
        journal.display(),
        lock.display()
    )]
    RepairRunning {
        /// The journal.
        journal: PathBuf,
        /// Its repair lock file.
        lock: PathBuf,
    },
}

impl RouteError {
    /// A [`RouteError::Config`] from anything printable.
    pub fn config(msg: impl Into<String>) -> Self {
        RouteError::Config(msg.into())
    }

    /// A [`RouteError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RouteError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether trying again later could succeed (I/O problems, a repair already running), as
    /// opposed to bad input.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RouteError::Io { .. } | RouteError::RepairRunning { .. }
        )
    }
}
