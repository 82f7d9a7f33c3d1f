//! The error every load, peer fetch and `get` returns.
//!
//! `NotFound` is an ordinary outcome, not a fault: it is never retried, never counted as a
//! load error, and never cached as data (unless a group opts in to negative caching). Every
//! other variant says where it came from ([`ErrorSource`]) and whether retrying can help
//! ([`LoadError::is_retryable`]). All variants are cheap to clone, because one failed flight
//! hands the same error to every caller that joined it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Where a failure came from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorSource {
    /// The group's [`Loader`](crate::Loader): the origin of truth (a database, an origin
    /// server, a disk).
    Loader,
    /// Another cluster member asked through [`Peers`](crate::Peers).
    Peer,
    /// This crate itself (a load task that ended without a result).
    Cache,
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorSource::Loader => "loader",
            ErrorSource::Peer => "peer",
            ErrorSource::Cache => "cache",
        })
    }
}

/// Why a value could not be produced.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The key does not exist at its origin (HTTP 404, memcached miss). Not a fault.
    #[error("not found")]
    NotFound,
    /// A loader or peer failed.
    #[error("{from} failed: {message}")]
    Failed {
        /// Where the failure happened.
        from: ErrorSource,
        /// Whether trying again later may succeed (a timeout, a refused connection) or not
        /// (a malformed key, a permission error).
        retryable: bool,
        /// What went wrong, shared by every waiter of the flight.
        message: Arc<str>,
    },
    /// A loader or peer did not answer in time.
    #[error("{from} timed out after {after:?}")]
    Timeout {
        /// Where the time ran out.
        from: ErrorSource,
        /// How long we waited.
        after: Duration,
    },
    /// The task running a load ended without a result (it panicked, or the runtime shut
    /// down). Reported to every caller that was waiting on that flight.
    #[error("load ended without a result: {0}")]
    Aborted(Arc<str>),
}

impl LoadError {
    /// A failure of the loader (the origin of truth).
    pub fn loader(message: impl Into<Arc<str>>, retryable: bool) -> Self {
        LoadError::Failed {
            from: ErrorSource::Loader,
            retryable,
            message: message.into(),
        }
    }

    /// A failure to fetch from a peer.
    pub fn peer(message: impl Into<Arc<str>>, retryable: bool) -> Self {
        LoadError::Failed {
            from: ErrorSource::Peer,
            retryable,
            message: message.into(),
        }
    }

    /// Whether this is [`LoadError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, LoadError::NotFound)
    }

    /// Whether trying again may help. `NotFound` never is: it is an answer, not a fault.
    pub fn is_retryable(&self) -> bool {
        match self {
            LoadError::NotFound => false,
            LoadError::Failed { retryable, .. } => *retryable,
            LoadError::Timeout { .. } => true,
            // A panicking loader is a bug; a runtime shutting down will not come back.
            LoadError::Aborted(_) => false,
        }
    }

    /// Where the failure came from; `None` for `NotFound`.
    pub fn source_kind(&self) -> Option<ErrorSource> {
        match self {
            LoadError::NotFound => None,
            LoadError::Failed { from, .. } | LoadError::Timeout { from, .. } => Some(*from),
            LoadError::Aborted(_) => Some(ErrorSource::Cache),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_neither_a_fault_nor_retryable() {
        let e = LoadError::NotFound;
        assert!(e.is_not_found());
        assert!(!e.is_retryable());
        assert_eq!(e.source_kind(), None);
    }

    #[test]
    fn failures_carry_source_and_retry_hint() {
        let e = LoadError::loader("db down", true);
        assert!(e.is_retryable());
        assert!(!e.is_not_found());
        assert_eq!(e.source_kind(), Some(ErrorSource::Loader));
        assert_eq!(e.to_string(), "loader failed: db down");

        let e = LoadError::peer("bad reply", false);
        assert!(!e.is_retryable());
        assert_eq!(e.source_kind(), Some(ErrorSource::Peer));

        let e = LoadError::Timeout {
            from: ErrorSource::Loader,
            after: Duration::from_secs(2),
        };
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "loader timed out after 2s");
        assert_eq!(
            LoadError::Aborted("panic".into()).source_kind(),
            Some(ErrorSource::Cache)
        );
    }

    #[test]
    fn clones_share_the_message() {
        let e = LoadError::loader(String::from("x").repeat(1000), true);
        let c = e.clone();
        match (&e, &c) {
            (LoadError::Failed { message: a, .. }, LoadError::Failed { message: b, .. }) => {
                assert!(Arc::ptr_eq(a, b));
            }
            _ => panic!("clone changed the variant"),
        }
    }
}
