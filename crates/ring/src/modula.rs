//! libmemcached's `MEMCACHED_DISTRIBUTION_MODULA`, its default distribution.
//!
//! `server = hash(key) % n` with libmemcached's default hash, Jenkins one-at-a-time
//! (`hashkit_one_at_a_time`, bytes sign-extended); one server owns everything without hashing.
//! Measured with pylibmc on real servers for both `{}` (the default) and
//! `{'distribution': 'modula'}`. moxi's `distribution:modula` (its `lmc_create`) sets
//! `MEMCACHED_BEHAVIOR_KETAMA` to 0, which in the libmemcached 0.x it bundles resets both hashes
//! to the default and selects modula: the same ring (read from moxi's source; there is no moxi
//! binary here to run). Only moxi's ketama modes switch to MD5.
//!
//! Adding or removing a server moves most keys: that is modula, not a bug.

use crate::hash::one_at_a_time;
use crate::member::parse_servers;
use crate::{Member, RingError, ring_by_index};

/// libmemcached modula; see the module docs.
#[derive(Debug, Clone)]
pub struct Modula {
    members: Vec<Member>,
}

impl Modula {
    /// Builds over `host:port[:weight]` members (weights are accepted and ignored, as
    /// libmemcached's modula ignores them).
    pub fn new(members: &[&str]) -> Result<Self, RingError> {
        let (members, _) = parse_servers(members)?;
        Ok(Modula { members })
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        match self.members.len() {
            0 => None,
            1 => Some(0),
            n => Some(one_at_a_time(key) as usize % n),
        }
    }

    /// The owner, then the servers after it in list order, wrapping (libmemcached's own
    /// replication, `NUMBER_OF_REPLICAS`, also takes the next server index).
    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        let len = self.members.len();
        match self.index(key) {
            Some(first) => (0..n.min(len)).map(|i| (first + i) % len).collect(),
            None => Vec::new(),
        }
    }
}

ring_by_index!(Modula);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ring;

    #[test]
    fn owners_are_the_next_servers() {
        let m = Modula::new(&["a:1", "b:1", "c:1"]).unwrap();
        let first = m.owner_index(b"foo").unwrap();
        assert_eq!(first, 596015325 % 3);
        assert_eq!(
            m.owner_indices(b"foo", 5),
            vec![first, (first + 1) % 3, (first + 2) % 3]
        );
    }
}
