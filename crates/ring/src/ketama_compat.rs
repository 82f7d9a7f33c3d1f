//! libmemcached's non-weighted ketama (`MEMCACHED_BEHAVIOR_KETAMA`).
//!
//! 100 points per server, one hash per point: point `i` of a server is `hash("<name>-<i>")`,
//! `<name>` as in weighted ketama (host alone on port 11211). The point hash is the key hash
//! (libmemcached's `hashkit_digest` of the client's hash), so the setup decides:
//! - MD5 ([`KeyHash::Md5`], the default): moxi's `distribution:ketama`, and pylibmc
//!   `{'ketama': True, 'hash': 'md5'}`; a point is the first 4 bytes of the MD5, little-endian;
//! - one-at-a-time ([`KeyHash::OneAtATime`]): pylibmc `{'ketama': True}` alone keeps
//!   libmemcached's default hash for both keys and points.
//!
//! A server with weight > 1 switches libmemcached to the weighted continuum (160 MD5 points
//! per server, split by weight) while keys keep the configured hash: libmemcached 1.1.4 turns
//! weighting on whenever a server is added with a weight above 1, and pylibmc adds servers
//! after setting the behaviours. We do the same (pinned by the `compat_w112` vectors). A
//! client that sets `KETAMA` after adding weighted servers gets the 100-point continuum
//! instead (setting the distribution resets the flag); for such a client, give no weights.
//! Order matters in libmemcached in one more way: setting `KETAMA` before the MD5 hash builds
//! the points with the old hash and never rebuilds them; pylibmc sets the hash first.
//!
//! All of this was measured on real servers; see `scripts/ring-vectors/gen.py`.

use crate::continuum::{Continuum, Tie};
use crate::hash::{md5_le, one_at_a_time};
use crate::ketama::weighted_items;
use crate::member::{Server, parse_servers};
use crate::{Member, RingError, ring_by_index};

/// libmemcached's key hash for ketama without weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyHash {
    /// `MEMCACHED_HASH_MD5`: the first 4 bytes of `md5(key)`, little-endian.
    #[default]
    Md5,
    /// `MEMCACHED_HASH_DEFAULT`: Jenkins one-at-a-time, bytes sign-extended as libhashkit does.
    OneAtATime,
}

impl KeyHash {
    /// The hash of `data`.
    pub fn hash(self, data: &[u8]) -> u32 {
        match self {
            KeyHash::Md5 => md5_le(data),
            KeyHash::OneAtATime => one_at_a_time(data),
        }
    }
}

/// Non-weighted libmemcached ketama; see the module docs.
#[derive(Debug, Clone)]
pub struct KetamaCompat {
    members: Vec<Member>,
    continuum: Continuum,
    key_hash: KeyHash,
    weighted: bool,
}

impl KetamaCompat {
    /// Non-weighted ketama with MD5 over `host:port[:weight]` members.
    pub fn new(members: &[&str]) -> Result<Self, RingError> {
        Self::with_hash(members, KeyHash::Md5)
    }

    /// Non-weighted ketama with the given key (and point) hash.
    pub fn with_hash(members: &[&str], key_hash: KeyHash) -> Result<Self, RingError> {
        let (members, servers) = parse_servers(members)?;
        Ok(Self::from_servers(members, &servers, key_hash))
    }

    pub(crate) fn from_servers(
        members: Vec<Member>,
        servers: &[Server],
        key_hash: KeyHash,
    ) -> Self {
        let names: Vec<String> = servers.iter().map(Server::libmemcached_name).collect();
        let weighted = servers.iter().any(|s| s.weight > 1);
        let items = if weighted {
            let order: Vec<usize> = (0..names.len()).collect();
            let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
            weighted_items(&names, &weights, &order)
        } else {
            let mut items = Vec::with_capacity(names.len() * 100);
            for (i, name) in names.iter().enumerate() {
                for p in 0..100 {
                    items.push((key_hash.hash(format!("{name}-{p}").as_bytes()), i as u32));
                }
            }
            items
        };
        let continuum = Continuum::build(items, Tie::First, &[]);
        KetamaCompat {
            members,
            continuum,
            key_hash,
            weighted,
        }
    }

    /// The key hash in use.
    pub fn key_hash(&self) -> KeyHash {
        self.key_hash
    }

    /// True when a weight above 1 made libmemcached's rules switch to the weighted continuum.
    pub fn is_weighted(&self) -> bool {
        self.weighted
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        match self.members.len() {
            0 => None,
            1 => Some(0),
            _ => self.continuum.lookup(self.key_hash.hash(key)),
        }
    }

    /// Ring walk: the distinct servers met clockwise from the key's point.
    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        if self.members.len() == 1 {
            return if n == 0 { vec![] } else { vec![0] };
        }
        self.continuum
            .walk(self.key_hash.hash(key), n, self.members.len())
    }
}

ring_by_index!(KetamaCompat);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundred_points_per_server_unless_weighted() {
        let c = KetamaCompat::new(&["a:1", "b:2", "c:3"]).unwrap();
        assert_eq!(c.continuum.len(), 300);
        assert!(!c.is_weighted());
        let w = KetamaCompat::new(&["a:1", "b:2", "c:3:2"]).unwrap();
        assert!(w.is_weighted());
        assert_eq!(w.continuum.len(), 480);
        assert_eq!(
            KetamaCompat::with_hash(&["a:1"], KeyHash::OneAtATime)
                .unwrap()
                .key_hash(),
            KeyHash::OneAtATime
        );
    }
}
