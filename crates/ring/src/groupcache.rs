//! golang/groupcache's and vimeo/galaxycache's `consistenthash.Map`.
//!
//! Both: `replicas` points per peer (50 by default, as `HTTPPool` uses), point `i` of a peer is
//! `crc32("<i><peer>")` with `i` in decimal (Go's `strconv.Itoa(i) + key`), the peer string
//! exactly as given to `HTTPPool.Set` / galaxycache's peer ID; a key's owner is the peer of the
//! first point `>= crc32(key)`, wrapping. They differ when two peers share a point:
//! golang/groupcache's `hashMap[point] = peer` lets the peer added last win; galaxycache keeps
//! the peer whose ID is greater (bytewise), whatever the order (see `tests/vectors/ties.tsv`,
//! built from forged CRC-32 collisions).
//!
//! [`Ring::owners`](crate::Ring::owners): groupcache has no replica rule, so it walks the ring
//! clockwise; galaxycache follows `GetReplicated`: replica 0 hashes the key, replica `i > 0`
//! hashes `key ‖ 0xAA 0xAA ‖ uvarint(i)`, and a peer already chosen is skipped by walking on
//! to the next point.

use std::fmt::Write as _;

use crate::continuum::{Continuum, Seen, Tie};
use crate::hash::crc32;
use crate::member::parse_names;
use crate::{Member, RingError, ring_by_index};

/// The most points per member any of these rings accepts (a guard against a typo allocating
/// gigabytes).
pub(crate) const MAX_REPLICAS: usize = 10_000;

/// Builds a Go-style ring: point `i` of member `m` is `hash("<i><m.name>")`.
pub(crate) fn go_ring(
    members: &[Member],
    replicas: usize,
    hash: fn(&[u8]) -> u32,
    tie: Tie,
) -> Result<Continuum, RingError> {
    if replicas == 0 || replicas > MAX_REPLICAS {
        return Err(RingError::BadReplicas(replicas));
    }
    let mut items = Vec::with_capacity(members.len().saturating_mul(replicas));
    let mut buf = String::new();
    for (idx, m) in members.iter().enumerate() {
        for i in 0..replicas {
            buf.clear();
            let _ = write!(buf, "{i}{}", m.name);
            items.push((hash(buf.as_bytes()), idx as u32));
        }
    }
    let names: Vec<&[u8]> = members.iter().map(|m| m.name.as_bytes()).collect();
    Ok(Continuum::build(items, tie, &names))
}

/// What a groupcache peer looks like, for error messages.
const PEER: &str = "a peer URL such as \"http://10.0.0.1:8080\"";

/// golang/groupcache's or galaxycache's ring; see the module docs.
#[derive(Debug, Clone)]
pub struct GroupcacheRing {
    members: Vec<Member>,
    continuum: Continuum,
    galaxycache: bool,
    replicas: usize,
}

impl GroupcacheRing {
    /// Points per peer in `HTTPPool` (groupcache) and galaxycache's default.
    pub const DEFAULT_REPLICAS: usize = 50;

    /// golang/groupcache's ring with 50 replicas.
    pub fn new(peers: &[&str]) -> Result<Self, RingError> {
        Self::with_replicas(peers, Self::DEFAULT_REPLICAS)
    }

    /// golang/groupcache's ring with `replicas` points per peer (1 to 10,000).
    pub fn with_replicas(peers: &[&str], replicas: usize) -> Result<Self, RingError> {
        Self::build(peers, replicas, false)
    }

    /// galaxycache's ring with 50 replicas.
    pub fn galaxycache(peers: &[&str]) -> Result<Self, RingError> {
        Self::galaxycache_with_replicas(peers, Self::DEFAULT_REPLICAS)
    }

    /// galaxycache's ring with `replicas` points per peer (1 to 10,000).
    pub fn galaxycache_with_replicas(peers: &[&str], replicas: usize) -> Result<Self, RingError> {
        Self::build(peers, replicas, true)
    }

    fn build(peers: &[&str], replicas: usize, galaxycache: bool) -> Result<Self, RingError> {
        let members = parse_names(peers, PEER)?;
        let tie = if galaxycache {
            Tie::Greatest
        } else {
            Tie::Last
        };
        let continuum = go_ring(&members, replicas, crc32, tie)?;
        Ok(GroupcacheRing {
            members,
            continuum,
            galaxycache,
            replicas,
        })
    }

    /// True for galaxycache's rules, false for golang/groupcache's.
    pub fn is_galaxycache(&self) -> bool {
        self.galaxycache
    }

    /// Points per peer.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        self.continuum.lookup(crc32(key))
    }

    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        if !self.galaxycache {
            return self.continuum.walk(crc32(key), n, self.members.len());
        }
        let want = n.min(self.members.len());
        let mut out = Vec::with_capacity(want);
        let mut seen = Seen::new(self.members.len());
        let len = self.continuum.len();
        for i in 0..want {
            let Some(mut pos) = self.continuum.position(replica_hash(key, i)) else {
                break;
            };
            let mut owner = self.continuum.owner_at(pos);
            let mut steps = 0;
            while !seen.insert(owner) {
                steps += 1;
                if steps >= len {
                    return out; // every peer on the ring is taken (some peer lost all its points)
                }
                pos = (pos + 1) % len;
                owner = self.continuum.owner_at(pos);
            }
            out.push(owner);
        }
        out
    }
}

/// galaxycache's `idxedKeyReplica`: `crc32(key)` for replica 0, else
/// `crc32(key ‖ 0xAA 0xAA ‖ uvarint(replica))`.
fn replica_hash(key: &[u8], replica: usize) -> u32 {
    if replica == 0 {
        return crc32(key);
    }
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(&[0xaa, 0xaa]);
    let mut v = replica as u64;
    while v >= 0x80 {
        h.update(&[(v as u8 & 0x7f) | 0x80]);
        v >>= 7;
    }
    h.update(&[v as u8]);
    h.finalize()
}

ring_by_index!(GroupcacheRing);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ring;

    const PEERS: [&str; 3] = [
        "http://10.0.0.1:8080",
        "http://10.0.0.2:8080",
        "http://10.0.0.3:8080",
    ];

    #[test]
    fn reference_sample_foo_bar_baz() {
        // The reference's Python-modelled sample, re-derived by scripts/ring-vectors/models.py.
        for ring in [
            GroupcacheRing::new(&PEERS).unwrap(),
            GroupcacheRing::galaxycache(&PEERS).unwrap(),
        ] {
            let owner = |k: &str| ring.owner(k.as_bytes()).unwrap().name.clone();
            assert_eq!(owner("foo"), PEERS[0]);
            assert_eq!(owner("bar"), PEERS[1]);
            assert_eq!(owner("baz"), PEERS[2]);
        }
    }

    #[test]
    fn replica_hash_appends_separator_and_uvarint() {
        assert_eq!(replica_hash(b"k", 0), crc32(b"k"));
        assert_eq!(replica_hash(b"k", 1), crc32(b"k\xaa\xaa\x01"));
        assert_eq!(replica_hash(b"k", 300), crc32(b"k\xaa\xaa\xac\x02"));
    }

    #[test]
    fn replicas_are_bounded() {
        assert_eq!(
            GroupcacheRing::with_replicas(&PEERS, 0).unwrap_err(),
            RingError::BadReplicas(0)
        );
        assert!(GroupcacheRing::with_replicas(&PEERS, MAX_REPLICAS + 1).is_err());
        assert_eq!(
            GroupcacheRing::with_replicas(&PEERS, 3).unwrap().replicas(),
            3
        );
        assert!(GroupcacheRing::new(&[""]).is_err());
    }
}
