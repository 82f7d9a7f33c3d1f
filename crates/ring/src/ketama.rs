//! Weighted ketama: libmemcached's `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED` (moxi's default) and
//! twemproxy's `distribution: ketama` with any `hash:` ([`Ketama::twemproxy_with`]).
//!
//! The continuum, exactly as libmemcached 1.0.18/1.1.4 (`update_continuum`) and nutcracker
//! 0.5.0 (`ketama_update`) build it:
//! - each server gets `floor((float)(pct * 160 / 4 * (float)n + 0.0000000001)) * 4` points,
//!   `pct = (float)weight / (float)total_weight`, all in binary32 as the C code does. With
//!   equal weights that is 160, except for some server counts where the float product lands
//!   just below 40 (n = 25, 47, 50, 55, ... give 156): we reproduce that too;
//! - for `i` in `0..points/4`: `md5("<name>-<i>")` gives 4 points, its little-endian words;
//! - `<name>` is the host when the port is 11211, `host:port` otherwise (both systems);
//!   twemproxy uses the server's `name` instead when the config line has one;
//! - a key hashes to the first 4 bytes of `md5(key)`, little-endian (twemproxy: the pool's
//!   `hash:`, [`TwemproxyHash`]; the points stay MD5); its owner is the server of the first
//!   point `>=` that hash, wrapping.
//!
//! The two differ only where two servers share a point (see [`KetamaFlavor`]) and for the
//! empty key, which twemproxy hashes to 0 (a memcached key is never empty).

use crate::continuum::{Continuum, Tie};
use crate::hash::{md5_le, md5_words};
use crate::member::{Server, parse_servers, parse_twemproxy_servers};
use crate::{Member, RingError, TwemproxyHash, ring_by_index};

/// Whose ketama: the two build the same points and differ only in details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KetamaFlavor {
    /// libmemcached: servers stay in the order given, so of two servers on one point the one
    /// given first wins.
    #[default]
    Libmemcached,
    /// twemproxy (nutcracker): servers may carry a `name` (`host:port:weight name`) that
    /// replaces `host[:port]` in the point names; servers are sorted by name (shorter first,
    /// then bytewise, twemproxy's `string_compare`) while the config is validated, so of two
    /// servers on one point the one whose name sorts first wins; an empty key hashes to 0.
    Twemproxy,
}

/// Weighted ketama; see the module docs.
#[derive(Debug, Clone)]
pub struct Ketama {
    members: Vec<Member>,
    continuum: Continuum,
    flavor: KetamaFlavor,
    /// The key hash when `flavor` is twemproxy (`Md5` and unused for libmemcached).
    hash: TwemproxyHash,
}

/// Points per server, in binary32 exactly as libmemcached and twemproxy compute it.
pub(crate) fn weighted_points(weight: u32, total_weight: u64, live: usize) -> u32 {
    let pct = weight as f32 / total_weight as f32;
    let x = pct * 160.0f32 / 4.0f32 * live as f32;
    let x = (f64::from(x) + 0.000_000_000_1) as f32;
    (x.floor() as u32).saturating_mul(4)
}

/// The weighted continuum's points: `names[i]` is server `i`'s point-name prefix.
/// A weight of 0 counts as 1, as libmemcached's server init does.
pub(crate) fn weighted_items(
    names: &[String],
    weights: &[u32],
    order: &[usize],
) -> Vec<(u32, u32)> {
    let weights: Vec<u32> = weights.iter().map(|&w| w.max(1)).collect();
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let mut items = Vec::with_capacity(names.len() * 160);
    for &i in order {
        let points = weighted_points(weights[i], total, names.len());
        for p in 0..points / 4 {
            for w in md5_words(format!("{}-{}", names[i], p).as_bytes()) {
                items.push((w, i as u32));
            }
        }
    }
    items
}

impl Ketama {
    /// libmemcached weighted ketama over `host:port[:weight]` members.
    pub fn new(members: &[&str]) -> Result<Self, RingError> {
        let (members, servers) = parse_servers(members)?;
        Ok(Self::from_servers(members, &servers))
    }

    pub(crate) fn from_servers(members: Vec<Member>, servers: &[Server]) -> Self {
        let names: Vec<String> = servers.iter().map(Server::libmemcached_name).collect();
        let order: Vec<usize> = (0..names.len()).collect();
        let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
        let continuum = Continuum::build(weighted_items(&names, &weights, &order), Tie::First, &[]);
        Ketama {
            members,
            continuum,
            flavor: KetamaFlavor::Libmemcached,
            hash: TwemproxyHash::Md5,
        }
    }

    /// twemproxy ketama with `hash: md5`: the same as
    /// [`twemproxy_with`](Self::twemproxy_with)`(servers, TwemproxyHash::Md5)`.
    pub fn twemproxy(servers: &[&str]) -> Result<Self, RingError> {
        Self::twemproxy_with(servers, TwemproxyHash::Md5)
    }

    /// twemproxy `distribution: ketama` with `hash: <hash>` over twemproxy server lines,
    /// `host:port[:weight] [name]` (twemproxy requires the weight; here it defaults to 1). Two
    /// lines with the same name (or, when unnamed, the same `host[:port]` point name) are
    /// rejected, as nutcracker does.
    ///
    /// nutcracker's `ketama_update` always builds the points with MD5 (`ketama_hash`); only
    /// the key goes through the pool's `hash:` (`server_pool_hash` → `pool->key_hash`), and an
    /// empty key hashes to 0. A `hash_tag:` is not applied here: cut the key with
    /// [`twemproxy_hash_tag`](crate::twemproxy_hash_tag) first.
    pub fn twemproxy_with(servers: &[&str], hash: TwemproxyHash) -> Result<Self, RingError> {
        let parsed = parse_twemproxy_servers(servers)?;
        let items = weighted_items(&parsed.names, &parsed.weights, &parsed.order);
        let continuum = Continuum::build(items, Tie::First, &[]);
        Ok(Ketama {
            members: parsed.members,
            continuum,
            flavor: KetamaFlavor::Twemproxy,
            hash,
        })
    }

    /// The twemproxy `hash:` keys go through: `None` for libmemcached's ketama (always MD5).
    pub fn twemproxy_hash(&self) -> Option<TwemproxyHash> {
        (self.flavor == KetamaFlavor::Twemproxy).then_some(self.hash)
    }

    /// Which system's rules this ring follows.
    pub fn flavor(&self) -> KetamaFlavor {
        self.flavor
    }

    /// The number of points on the continuum (160 per equally weighted server, usually).
    pub fn points(&self) -> usize {
        self.continuum.len()
    }

    #[inline]
    fn key_hash(&self, key: &[u8]) -> u32 {
        match self.flavor {
            KetamaFlavor::Libmemcached => md5_le(key),
            KetamaFlavor::Twemproxy => self.hash.key_hash(key),
        }
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        match self.members.len() {
            0 => None,
            1 => Some(0), // both systems skip hashing for a single server
            _ => self.continuum.lookup(self.key_hash(key)),
        }
    }

    /// Ring walk: the distinct servers met clockwise from the key's point.
    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        if self.members.len() == 1 {
            return if n == 0 { vec![] } else { vec![0] };
        }
        self.continuum
            .walk(self.key_hash(key), n, self.members.len())
    }
}

ring_by_index!(Ketama);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ring;

    #[test]
    fn points_per_server_follow_the_float_math() {
        assert_eq!(weighted_points(1, 3, 3), 160);
        assert_eq!([1, 1, 2].map(|w| weighted_points(w, 4, 3)), [120, 120, 240]);
        // The libmemcached quirk: 25 equal servers get 156 points each, not 160.
        assert_eq!(weighted_points(1, 25, 25), 156);
        assert_eq!(weighted_points(1, 24, 24), 160);
        assert_eq!(weighted_points(1, 1000, 1000), 160);
    }

    #[test]
    fn a_tiny_weight_can_get_no_points_and_then_owns_nothing() {
        let k = Ketama::new(&["a:1:1", "b:1:1000"]).unwrap();
        assert_eq!(k.points(), 316);
        assert!((0..1000).all(|i| k.owner_index(format!("k{i}").as_bytes()) == Some(1)));
        assert_eq!(k.owners(b"x", 2).len(), 1);
    }

    #[test]
    fn twemproxy_names_replace_the_address() {
        let named =
            Ketama::twemproxy(&["127.0.0.1:11411:1 alpha", "127.0.0.1:11412:1 beta"]).unwrap();
        assert_eq!(named.members()[0].name, "127.0.0.1:11411:1 alpha");
        assert_eq!(named.flavor(), KetamaFlavor::Twemproxy);
        let dup = Ketama::twemproxy(&["127.0.0.1:1:1 a", "127.0.0.1:2:1 a"]).unwrap_err();
        assert_eq!(dup, RingError::DuplicateMember { member: "a".into() });
        assert!(Ketama::twemproxy(&["127.0.0.1:1:1  a"]).is_err());
        assert!(Ketama::twemproxy(&["127.0.0.1:1:0 a"]).is_err());
    }

    #[test]
    fn twemproxy_hashes_the_empty_key_to_zero() {
        let t = Ketama::twemproxy(&["a:1:1", "b:2:1", "c:3:1"]).unwrap();
        let l = Ketama::new(&["a:1", "b:2", "c:3"]).unwrap();
        assert_eq!(t.owner_index(b""), Some(t.continuum.owner_at(0)));
        assert_eq!(l.owner_index(b""), l.continuum.lookup(md5_le(b"")));
    }

    #[test]
    fn twemproxy_is_twemproxy_with_md5() {
        let lines = [
            "127.0.0.1:11411:1",
            "127.0.0.1:11412:1",
            "127.0.0.1:11413:2 big",
        ];
        let md5 = Ketama::twemproxy(&lines).unwrap();
        let with = Ketama::twemproxy_with(&lines, TwemproxyHash::Md5).unwrap();
        assert_eq!(md5.twemproxy_hash(), Some(TwemproxyHash::Md5));
        assert_eq!(Ketama::new(&["a:1"]).unwrap().twemproxy_hash(), None);
        for i in 0..5000 {
            let k = format!("key:{i}");
            assert_eq!(
                md5.owner_indices(k.as_bytes(), 3),
                with.owner_indices(k.as_bytes(), 3)
            );
        }
    }

    #[test]
    fn twemproxy_points_are_md5_whatever_the_key_hash() {
        let lines = [
            "127.0.0.1:11411:1",
            "127.0.0.1:11412:1",
            "127.0.0.1:11413:1",
        ];
        let md5 = Ketama::twemproxy(&lines).unwrap();
        for h in TwemproxyHash::ALL {
            let k = Ketama::twemproxy_with(&lines, h).unwrap();
            assert_eq!(k.points(), md5.points());
            assert_eq!(k.twemproxy_hash(), Some(h));
            for i in 0..200 {
                let key = format!("k{i}");
                let want = md5.continuum.lookup(h.hash(key.as_bytes()));
                assert_eq!(k.owner_index(key.as_bytes()), want, "{h} {key}");
            }
            // The empty key hashes to 0 with every hash, as server_pool_hash does.
            assert_eq!(k.owner_index(b""), Some(k.continuum.owner_at(0)), "{h}");
        }
    }

    #[test]
    fn single_server_owns_everything() {
        let k = Ketama::new(&["only:11211"]).unwrap();
        assert_eq!(k.owner(b"anything").unwrap().name, "only:11211");
        assert_eq!(k.owners(b"anything", 3).len(), 1);
        assert!(k.owners(b"anything", 0).is_empty());
    }
}
