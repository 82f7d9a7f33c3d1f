//! The errors of this crate: [`ClusterError`] for setting a cluster up, [`PeerError`] for one
//! request to a peer.
//!
//! Both say where they came from and whether a retry can help, as every shoal error does.
//! `PeerError::NotFound` is an answer, not a fault: it becomes
//! [`LoadError::NotFound`](shoal_cache::LoadError::NotFound) and the group does not load the
//! key locally.

use std::sync::Arc;
use std::time::Duration;

use shoal_cache::{ErrorSource, LoadError};

/// Where a [`ClusterError`] came from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The configuration (member list, self, protocol, TLS files): fix it, then restart.
    Config,
    /// The operating system (binding a port, reading a file).
    Io,
    /// Placement: the ring could not be built from the member list.
    Ring,
}

/// Why a cluster could not be set up or changed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A member list with no members.
    #[error("config: the peer list is empty; give at least this node's own URL")]
    NoPeers,
    /// This node's own URL is not one of the members.
    #[error(
        "config: self {self_id:?} is not in the peer list [{peers}]; it must be exactly one of \
         them{hint}"
    )]
    SelfNotInPeers {
        /// The self URL given.
        self_id: String,
        /// The peer list given, comma-separated.
        peers: String,
        /// A "did you mean" suffix when a member differs only in spelling.
        hint: String,
    },
    /// A peer URL that is not `[http://|https://]host:port`.
    #[error("config: bad peer URL {url:?}: {why}")]
    BadPeerUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The same peer twice.
    #[error("config: peer {url:?} appears twice in the peer list")]
    DuplicatePeer {
        /// The repeated URL.
        url: String,
    },
    /// A value that does not parse (a protocol or algorithm name, a size).
    #[error("config: bad value {value:?} for {key}: expected {expected}")]
    BadValue {
        /// The setting.
        key: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// TLS material that could not be used.
    #[error("config: tls {what}: {message}")]
    Tls {
        /// Which part (`ca`, `cert`, `key`, `server config`, ...).
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The ring could not be built.
    #[error("ring: {0}")]
    Ring(#[from] shoal_ring::RingError),
    /// A group with this name is already registered.
    #[error("config: group {0:?} is already registered with this cluster")]
    DuplicateGroup(String),
    /// No group of this name was added to this node.
    #[error("no such group {0:?}")]
    UnknownGroup(String),
    /// An I/O failure (binding the peer port).
    #[error("io: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ClusterError {
    /// Where the error came from.
    pub fn origin(&self) -> Origin {
        match self {
            ClusterError::Io { .. } => Origin::Io,
            ClusterError::Ring(_) => Origin::Ring,
            _ => Origin::Config,
        }
    }

    /// Whether trying the same thing again may succeed (only an I/O failure, such as a port
    /// still in use, may).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClusterError::Io { .. })
    }

    pub(crate) fn tls(what: &'static str, e: impl std::fmt::Display) -> Self {
        ClusterError::Tls {
            what,
            message: e.to_string(),
        }
    }
}

/// Why one request to a peer did not produce a value.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// The peer says the key does not exist. An answer, not a fault.
    #[error("not found")]
    NotFound,
    /// No connection could be made (refused, reset, TLS handshake failed).
    #[error("peer {peer}: connect: {message}")]
    Connect {
        /// The peer's id.
        peer: Arc<str>,
        /// What failed.
        message: String,
    },
    /// The peer did not answer within the fetch timeout.
    #[error("peer {peer}: no answer within {after:?}")]
    Timeout {
        /// The peer's id.
        peer: Arc<str>,
        /// The timeout.
        after: Duration,
    },
    /// The peer refused our credentials (shared secret or client certificate).
    #[error("peer {peer}: unauthorized")]
    Unauthorized {
        /// The peer's id.
        peer: Arc<str>,
    },
    /// The peer does not serve this group.
    #[error("peer {peer}: no such group {group:?}")]
    UnknownGroup {
        /// The peer's id.
        peer: Arc<str>,
        /// The group asked for.
        group: String,
    },
    /// The peer answered with an error.
    #[error("peer {peer}: status {status}: {message}")]
    Status {
        /// The peer's id.
        peer: Arc<str>,
        /// The HTTP status or gRPC code, as text.
        status: String,
        /// The error text the peer sent (truncated).
        message: String,
        /// Whether the peer's answer suggests trying again later.
        retryable: bool,
    },
    /// The key is longer than any peer accepts ([`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES));
    /// nothing was sent.
    #[error("key of {len} bytes is longer than peers accept")]
    KeyTooLong {
        /// The key's length.
        len: usize,
    },
    /// The peer's answer could not be understood (bad protobuf, bad `Expires`, too large).
    #[error("peer {peer}: bad reply: {message}")]
    BadReply {
        /// The peer's id.
        peer: Arc<str>,
        /// What is wrong with it.
        message: String,
    },
}

impl PeerError {
    /// Whether this is [`PeerError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, PeerError::NotFound)
    }

    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            PeerError::Connect { .. } | PeerError::Timeout { .. } => true,
            PeerError::Status { retryable, .. } => *retryable,
            PeerError::NotFound
            | PeerError::Unauthorized { .. }
            | PeerError::UnknownGroup { .. }
            | PeerError::BadReply { .. }
            | PeerError::KeyTooLong { .. } => false,
        }
    }

    /// A short label for metrics (`result="..."`).
    pub fn label(&self) -> &'static str {
        match self {
            PeerError::NotFound => "not_found",
            PeerError::Connect { .. } => "connect_error",
            PeerError::Timeout { .. } => "timeout",
            PeerError::Unauthorized { .. } => "unauthorized",
            PeerError::UnknownGroup { .. } => "unknown_group",
            PeerError::Status { .. } => "error",
            PeerError::BadReply { .. } => "bad_reply",
            PeerError::KeyTooLong { .. } => "key_too_long",
        }
    }
}

impl From<PeerError> for LoadError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::NotFound => LoadError::NotFound,
            PeerError::Timeout { after, .. } => LoadError::Timeout {
                from: ErrorSource::Peer,
                after,
            },
            other => {
                let retryable = other.is_retryable();
                LoadError::peer(other.to_string(), retryable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_errors_map_onto_load_errors() {
        assert!(LoadError::from(PeerError::NotFound).is_not_found());
        let t = LoadError::from(PeerError::Timeout {
            peer: "p".into(),
            after: Duration::from_millis(5),
        });
        assert!(t.is_retryable());
        assert_eq!(t.source_kind(), Some(ErrorSource::Peer));
        let c = LoadError::from(PeerError::Connect {
            peer: "p".into(),
            message: "refused".into(),
        });
        assert!(c.is_retryable());
        assert_eq!(c.to_string(), "peer failed: peer p: connect: refused");
        let u = LoadError::from(PeerError::Unauthorized { peer: "p".into() });
        assert!(!u.is_retryable());
    }

    #[test]
    fn config_errors_are_not_retryable() {
        let e = ClusterError::NoPeers;
        assert_eq!(e.origin(), Origin::Config);
        assert!(!e.is_retryable());
    }
}
