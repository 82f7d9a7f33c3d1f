//! Placement for shoal: which member owns a key.
//!
//! Pure functions over member lists, no I/O. Every algorithm is bit-compatible with the
//! system it comes from (libmemcached, libvbucket, golang/groupcache, galaxycache, photosrv)
//! and pinned by golden vectors generated with those systems.
#![warn(missing_docs)]

/// A member of a ring: the name exactly as the operator gave it, and a weight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The member as given (`host:port[:weight]`, a peer URL, a shard name, ...).
    pub name: String,
    /// Relative weight; 1 unless the member said otherwise.
    pub weight: u32,
}

/// Which member owns a key.
pub trait Ring: Send + Sync + std::fmt::Debug {
    /// The owner of `key`; `None` only when the ring is empty.
    fn owner(&self, key: &[u8]) -> Option<&Member>;
    /// The members of the ring, in the order they were given.
    fn members(&self) -> &[Member];
}
