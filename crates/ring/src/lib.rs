//! Placement for shoal: which member owns a key.
//!
//! Pure functions over member lists, no I/O. Every algorithm is bit-compatible with the
//! system it comes from (libmemcached, twemproxy, libvbucket, moxi, golang/groupcache,
//! galaxycache, photosrv) and pinned by golden vectors generated with those systems
//! (`scripts/ring-vectors/`, `tests/vectors/`).
//!
//! | [`Algorithm`] | type | compatible with |
//! |---|---|---|
//! | `ketama` | [`Ketama`] | libmemcached `KETAMA_WEIGHTED` (moxi's default); twemproxy `md5`+`ketama` via [`Ketama::twemproxy`] |
//! | `ketama-compat` | [`KetamaCompat`] | libmemcached `KETAMA` + MD5 hash (100 points per server) |
//! | `libvbucket-ketama` | [`LibvbucketKetama`] | libvbucket's `"nodeLocator":"ketama"` |
//! | `vbucket` | [`VBucketMap`] | moxi/libvbucket vBucket maps (built with [`VBucketMap::from_json`]) |
//! | `modula` | [`Modula`] | libmemcached `MODULA` with its default one-at-a-time hash |
//! | `groupcache` | [`GroupcacheRing`] | golang/groupcache `consistenthash` (crc32, 50 replicas) |
//! | `galaxycache` | [`GroupcacheRing::galaxycache`] | vimeo/galaxycache `consistenthash` |
//! | `jump` | [`Jump`] | photosrv `chooser jump` (SipHash-2-4 + go-jump) |
//! | `chash` | [`Chash`] | photosrv `chooser chash` (go-shardedkv, leveldb hash, 160 replicas) |
//! | `rendezvous` | [`Rendezvous`] | shoal's own weighted HRW over xxh3 |
//!
//! twemproxy (nutcracker 0.5.0) pools: [`Ketama::twemproxy_with`] (`distribution: ketama`) and
//! [`Modula::twemproxy`] (`distribution: modula`) with any of its twelve `hash:` functions
//! ([`TwemproxyHash`]), and [`twemproxy_hash_tag`] for `hash_tag:`. They are not [`Algorithm`]s:
//! a member list alone does not say which hash (nor which hash tag) to use.
//!
//! [`BoundedLoad`] wraps any [`Ring`] with consistent hashing with bounded loads.
//!
//! ```
//! use shoal_ring::{build, Algorithm, Ring};
//!
//! let ring = build(Algorithm::Ketama, &["127.0.0.1:11411", "127.0.0.1:11412", "127.0.0.1:11413:2"])?;
//! let owner = ring.owner(b"user:42").expect("a non-empty ring has an owner");
//! assert!(ring.members().contains(owner));
//! // Preference order for two replicas: the owner first, then the next distinct member.
//! let replicas = ring.owners(b"user:42", 2);
//! assert_eq!(replicas[0], owner);
//! assert_ne!(replicas[0], replicas[1]);
//! # Ok::<(), shoal_ring::RingError>(())
//! ```
#![warn(missing_docs)]

mod algorithm;
mod bounded;
mod chash;
mod continuum;
mod error;
mod groupcache;
pub mod hash;
mod jump;
mod ketama;
mod ketama_compat;
mod libvbucket;
mod member;
mod modula;
mod rendezvous;
mod twemproxy;
mod vbucket;

use std::sync::Arc;

pub use algorithm::{Algorithm, build};
pub use bounded::{BoundedLoad, LoadGuard};
pub use chash::Chash;
pub use error::RingError;
pub use groupcache::GroupcacheRing;
pub use jump::{Jump, jump_hash};
pub use ketama::{Ketama, KetamaFlavor};
pub use ketama_compat::{KetamaCompat, KeyHash};
pub use libvbucket::LibvbucketKetama;
pub use modula::Modula;
pub use rendezvous::Rendezvous;
pub use twemproxy::{TwemproxyHash, twemproxy_hash_tag};
pub use vbucket::{VBucketMap, vbucket_of};

/// A member of a ring: the name exactly as the operator gave it, and a weight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The member as given (`host:port[:weight]`, a peer URL, a shard name, ...).
    pub name: String,
    /// Relative weight; 1 unless the member said otherwise.
    pub weight: u32,
}

/// Which member owns a key.
///
/// `owners(key, n)` has the prefix property every implementation here keeps: the first `k`
/// entries of `owners(key, n)` are `owners(key, k)`, and the first is `owner(key)`.
/// [`BoundedLoad`] relies on it.
pub trait Ring: Send + Sync + std::fmt::Debug {
    /// The owner of `key`; `None` only when the ring is empty (and, for a [`VBucketMap`], when
    /// the key's vBucket has no master, `-1`).
    fn owner(&self, key: &[u8]) -> Option<&Member>;
    /// The members of the ring, in the order they were given.
    fn members(&self) -> &[Member];
    /// Up to `n` distinct members in preference order, the owner first: for replicas, and for
    /// [`BoundedLoad`]'s walk. Fewer than `n` when the ring has fewer members that can own
    /// anything. Each algorithm documents its rule.
    fn owners(&self, key: &[u8], n: usize) -> Vec<&Member>;
    /// The index in [`members`](Ring::members) of the owner of `key`.
    fn owner_index(&self, key: &[u8]) -> Option<usize> {
        let m = self.owner(key)?;
        self.members().iter().position(|x| std::ptr::eq(x, m))
    }
    /// The indices in [`members`](Ring::members) of [`owners`](Ring::owners)`(key, n)`.
    fn owner_indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        let all = self.members();
        self.owners(key, n)
            .into_iter()
            .filter_map(|m| all.iter().position(|x| std::ptr::eq(x, m)))
            .collect()
    }
}

impl<R: Ring + ?Sized> Ring for Box<R> {
    fn owner(&self, key: &[u8]) -> Option<&Member> {
        (**self).owner(key)
    }
    fn members(&self) -> &[Member] {
        (**self).members()
    }
    fn owners(&self, key: &[u8], n: usize) -> Vec<&Member> {
        (**self).owners(key, n)
    }
    fn owner_index(&self, key: &[u8]) -> Option<usize> {
        (**self).owner_index(key)
    }
    fn owner_indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        (**self).owner_indices(key, n)
    }
}

impl<R: Ring + ?Sized> Ring for Arc<R> {
    fn owner(&self, key: &[u8]) -> Option<&Member> {
        (**self).owner(key)
    }
    fn members(&self) -> &[Member] {
        (**self).members()
    }
    fn owners(&self, key: &[u8], n: usize) -> Vec<&Member> {
        (**self).owners(key, n)
    }
    fn owner_index(&self, key: &[u8]) -> Option<usize> {
        (**self).owner_index(key)
    }
    fn owner_indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        (**self).owner_indices(key, n)
    }
}

/// Implements [`Ring`] for a type with a `members: Vec<Member>` field and inherent
/// `index(&self, &[u8]) -> Option<usize>` and `indices(&self, &[u8], usize) -> Vec<usize>`.
macro_rules! ring_by_index {
    ($t:ty) => {
        impl $crate::Ring for $t {
            #[inline]
            fn owner(&self, key: &[u8]) -> Option<&$crate::Member> {
                self.index(key).and_then(|i| self.members.get(i))
            }
            fn members(&self) -> &[$crate::Member] {
                &self.members
            }
            fn owners(&self, key: &[u8], n: usize) -> Vec<&$crate::Member> {
                self.indices(key, n)
                    .into_iter()
                    .filter_map(|i| self.members.get(i))
                    .collect()
            }
            #[inline]
            fn owner_index(&self, key: &[u8]) -> Option<usize> {
                self.index(key)
            }
            fn owner_indices(&self, key: &[u8], n: usize) -> Vec<usize> {
                self.indices(key, n)
            }
        }
    };
}
pub(crate) use ring_by_index;
