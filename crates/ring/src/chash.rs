//! photosrv's `chooser chash` (go-shardedkv's `chash`, "compatible with dgryski/libchash").
//!
//! A golang/groupcache-style ring: 160 points per shard, point `i` is
//! `leveldb_bloom("<i><shard>")` (decimal `i`, the shard name as configured), the key's owner
//! is the shard of the first point `>= leveldb_bloom(key)`, wrapping; on a shared point the
//! shard added last wins. photosrv hashes the normalised path without its leading `/`; that
//! is the caller's key. [`Ring::owners`](crate::Ring::owners) walks the ring clockwise.

use crate::continuum::{Continuum, Tie};
use crate::groupcache::go_ring;
use crate::hash::leveldb_bloom;
use crate::member::parse_names;
use crate::{Member, RingError, ring_by_index};

/// photosrv chash; see the module docs.
#[derive(Debug, Clone)]
pub struct Chash {
    members: Vec<Member>,
    continuum: Continuum,
}

impl Chash {
    /// Points per shard in go-shardedkv's chash.
    pub const DEFAULT_REPLICAS: usize = 160;

    /// The ring over shard names, in shard order, with 160 points per shard.
    pub fn new(shards: &[&str]) -> Result<Self, RingError> {
        Self::with_replicas(shards, Self::DEFAULT_REPLICAS)
    }

    /// The ring with `replicas` points per shard (1 to 10,000).
    pub fn with_replicas(shards: &[&str], replicas: usize) -> Result<Self, RingError> {
        let members = parse_names(shards, "a shard name")?;
        let continuum = go_ring(&members, replicas, leveldb_bloom, Tie::Last)?;
        Ok(Chash { members, continuum })
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        self.continuum.lookup(leveldb_bloom(key))
    }

    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        self.continuum
            .walk(leveldb_bloom(key), n, self.members.len())
    }
}

ring_by_index!(Chash);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ring;

    #[test]
    fn every_shard_gets_its_points() {
        let c = Chash::new(&["s1", "s2", "s3"]).unwrap();
        assert_eq!(c.continuum.len(), 480);
        assert_eq!(c.owners(b"images/hello.jpg", 3).len(), 3);
    }
}
