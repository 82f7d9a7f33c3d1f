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
//! twemproxy's `distribution: modula` ([`Modula::twemproxy`]) differs: nutcracker's
//! `modula_update` builds a continuum where each server fills `weight` consecutive slots, in the
//! order it sorts its servers (by name, shorter first), and `modula_dispatch` takes slot
//! `hash % slots`, with the pool's `hash:` ([`TwemproxyHash`]) and an empty key hashing to 0.
//! Weights count there; with all weights 1 and servers given in name order it is `hash % n`.
//!
//! Adding or removing a server moves most keys: that is modula, not a bug.

use crate::hash::one_at_a_time;
use crate::member::{parse_servers, parse_twemproxy_servers};
use crate::{Member, RingError, TwemproxyHash, ring_by_index};

/// libmemcached or twemproxy modula; see the module docs.
#[derive(Debug, Clone)]
pub struct Modula {
    members: Vec<Member>,
    twemproxy: Option<Slots>,
}

/// twemproxy's modula continuum, one run of `weight` slots per server.
#[derive(Debug, Clone)]
struct Slots {
    hash: TwemproxyHash,
    /// `(end, member)`: the server's slots end (exclusive) at `end`; in nutcracker's order.
    runs: Vec<(u64, usize)>,
    total: u64,
}

impl Slots {
    /// The run (position in `runs`) that holds the key's slot.
    #[inline]
    fn run(&self, key: &[u8]) -> usize {
        let slot = u64::from(self.hash.key_hash(key)) % self.total;
        self.runs.partition_point(|&(end, _)| end <= slot)
    }
}

impl Modula {
    /// Builds over `host:port[:weight]` members (weights are accepted and ignored, as
    /// libmemcached's modula ignores them).
    pub fn new(members: &[&str]) -> Result<Self, RingError> {
        let (members, _) = parse_servers(members)?;
        Ok(Modula {
            members,
            twemproxy: None,
        })
    }

    /// twemproxy `distribution: modula` with `hash: <hash>` over twemproxy server lines,
    /// `host:port[:weight] [name]` (parsed as for [`Ketama::twemproxy_with`](crate::Ketama::twemproxy_with)).
    ///
    /// Reproduces nutcracker's `modula_update` (each server `weight` times, in its name-sorted
    /// order) and `modula_dispatch` (`continuum[hash % ncontinuum]`), with `server_pool_hash`'s
    /// empty key hashing to 0 and one server owning everything. A `hash_tag:` is not applied
    /// here: cut the key with [`twemproxy_hash_tag`](crate::twemproxy_hash_tag) first.
    pub fn twemproxy(servers: &[&str], hash: TwemproxyHash) -> Result<Self, RingError> {
        let parsed = parse_twemproxy_servers(servers)?;
        let mut runs = Vec::with_capacity(parsed.order.len());
        let mut total = 0u64;
        for &i in &parsed.order {
            total += u64::from(parsed.weights[i]);
            runs.push((total, i));
        }
        Ok(Modula {
            members: parsed.members,
            twemproxy: Some(Slots { hash, runs, total }),
        })
    }

    /// The twemproxy `hash:` keys go through: `None` for libmemcached's modula.
    pub fn twemproxy_hash(&self) -> Option<TwemproxyHash> {
        self.twemproxy.as_ref().map(|s| s.hash)
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        match (self.members.len(), &self.twemproxy) {
            (0, _) => None,
            (1, _) => Some(0),
            (n, None) => Some(one_at_a_time(key) as usize % n),
            (_, Some(slots)) => slots.runs.get(slots.run(key)).map(|&(_, i)| i),
        }
    }

    /// The owner, then the servers after it, wrapping: in list order for libmemcached (its own
    /// replication, `NUMBER_OF_REPLICAS`, also takes the next server index), in nutcracker's
    /// slot order for twemproxy (which has no replicas of its own).
    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        let len = self.members.len();
        match (&self.twemproxy, self.index(key)) {
            (_, None) => Vec::new(),
            (Some(slots), Some(_)) if len > 1 => {
                let first = slots.run(key);
                (0..n.min(len))
                    .map(|i| slots.runs[(first + i) % len].1)
                    .collect()
            }
            (_, Some(first)) => (0..n.min(len)).map(|i| (first + i) % len).collect(),
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

    #[test]
    fn twemproxy_slots_follow_weights_in_name_order() {
        // Names sort shorter first: eta, zeta, theta; slots [eta, zeta, zeta, theta x3].
        let lines = ["h:1:2 zeta", "h:2:1 eta", "h:3:3 theta"];
        let m = Modula::twemproxy(&lines, TwemproxyHash::Fnv1a_64).unwrap();
        assert_eq!(m.twemproxy_hash(), Some(TwemproxyHash::Fnv1a_64));
        assert_eq!(Modula::new(&["a:1"]).unwrap().twemproxy_hash(), None);
        let slots = [1, 0, 0, 2, 2, 2];
        for i in 0..2000 {
            let k = format!("key:{i}");
            let h = TwemproxyHash::Fnv1a_64.hash(k.as_bytes());
            let first = slots[h as usize % 6];
            assert_eq!(m.owner_index(k.as_bytes()), Some(first), "{k}");
            // Replicas: the next servers in slot order, wrapping (eta -> zeta -> theta).
            let next =
                |i: usize| [1, 0, 2][([1, 0, 2].iter().position(|&x| x == first).unwrap() + i) % 3];
            assert_eq!(
                m.owner_indices(k.as_bytes(), 5),
                vec![next(0), next(1), next(2)]
            );
        }
        // The empty key hashes to 0: slot 0, eta.
        assert_eq!(m.owner_index(b""), Some(1));
    }

    #[test]
    fn twemproxy_modula_with_equal_weights_in_order_is_hash_mod_n() {
        let lines = [
            "127.0.0.1:11411:1",
            "127.0.0.1:11412:1",
            "127.0.0.1:11413:1",
        ];
        let lib = Modula::new(&lines).unwrap();
        let one = Modula::twemproxy(&lines, TwemproxyHash::OneAtATime).unwrap();
        let only = Modula::twemproxy(&["h:1:5"], TwemproxyHash::Murmur).unwrap();
        for i in 0..2000 {
            let k = format!("key:{i}");
            assert_eq!(one.owner_index(k.as_bytes()), lib.owner_index(k.as_bytes()));
            assert_eq!(only.owner_indices(k.as_bytes(), 2), vec![0]);
        }
        assert!(Modula::twemproxy(&[], TwemproxyHash::Md5).is_err());
        assert!(Modula::twemproxy(&["h:1:1 a", "h:2:1 a"], TwemproxyHash::Md5).is_err());
    }
}
