//! The extension point for clustering: who owns a key, and how to ask them for it.
//!
//! This crate knows nothing about rings, membership or transports. `shoal-cluster`
//! implements [`Peers`] (a ring snapshot plus a client per member) and installs it on each
//! group with [`Group::set_peers`](crate::Group::set_peers); it can swap in a new one
//! whenever membership changes. A group reads its current `Peers` once per load.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::{BoxFuture, LoadError, Loaded};

/// Another cluster member that can be asked for a key.
pub trait Peer: Send + Sync {
    /// A stable identifier, for logs and error messages.
    fn id(&self) -> &str;

    /// Ask the peer for `key` in group `group`. The peer must serve it with
    /// [`FetchMode::LocalOnly`](crate::FetchMode::LocalOnly) semantics (load locally, never
    /// forward), so two members with different views of the ring cannot wait on each other.
    ///
    /// Return [`LoadError::NotFound`] when the peer says the key does not exist (the group
    /// then returns `NotFound` without loading locally), and any other error when the peer
    /// could not answer (the group counts it and loads locally). Bound the wait: the group
    /// does not time peer fetches out itself.
    fn fetch<'a>(&'a self, group: &'a str, key: Bytes) -> BoxFuture<'a, Result<Loaded, LoadError>>;
}

impl fmt::Debug for dyn Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Peer").field(&self.id()).finish()
    }
}

/// Picks the member that owns a key.
pub trait Peers: Send + Sync {
    /// The owner of `key`, or `None` when this node owns it (or has no peers). Called once
    /// per `Regular` get that misses memory, never on a cache hit.
    fn pick(&self, key: &[u8]) -> Option<Arc<dyn Peer>>;
}

impl fmt::Debug for dyn Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Peers")
    }
}
