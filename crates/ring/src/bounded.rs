//! Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, 2017) over any
//! [`Ring`].
//!
//! Each member may hold at most `capacity = ceil(c × (total + 1) / n)` of the `total` keys
//! currently placed (`n` members, `c >= 1`, typically 1.25). [`BoundedLoad::acquire`] walks
//! the ring's preference order ([`Ring::owners`]) and takes the first member below capacity;
//! the returned [`LoadGuard`] holds that load until it is dropped. Loads are atomic counters:
//! no lock is taken. Two racing acquires can both see room in the same member and overshoot
//! its capacity by the number of racers; that is bounded and harmless for load spreading.
//!
//! The walk is asked for in growing prefixes (1, 2, 4, ... members), relying on the prefix
//! property of [`Ring::owners`], so the common case (the owner has room) costs one lookup.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::{Member, Ring, RingError};

/// A ring with bounded loads; see the module docs.
#[derive(Debug)]
pub struct BoundedLoad<R> {
    ring: R,
    c: f64,
    loads: Vec<AtomicUsize>,
    total: AtomicUsize,
}

/// One unit of load on a member, released when dropped.
#[derive(Debug)]
#[must_use = "the load is released as soon as the guard is dropped"]
pub struct LoadGuard<'a> {
    member: &'a Member,
    index: usize,
    loads: &'a [AtomicUsize],
    total: &'a AtomicUsize,
}

impl<'a> LoadGuard<'a> {
    /// The member carrying this load.
    pub fn member(&self) -> &'a Member {
        self.member
    }

    /// Its index in the ring's members.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        if let Some(l) = self.loads.get(self.index) {
            l.fetch_sub(1, Relaxed);
        }
        self.total.fetch_sub(1, Relaxed);
    }
}

impl<R: Ring> BoundedLoad<R> {
    /// Wraps `ring`; `c` is the balance factor, a finite number >= 1 (1.25 is usual; 1 means
    /// perfectly even, at the cost of many keys leaving their owner).
    pub fn new(ring: R, c: f64) -> Result<Self, RingError> {
        if !c.is_finite() || c < 1.0 {
            return Err(RingError::BadLoadFactor(c.to_string()));
        }
        let loads = (0..ring.members().len())
            .map(|_| AtomicUsize::new(0))
            .collect();
        Ok(BoundedLoad {
            ring,
            c,
            loads,
            total: AtomicUsize::new(0),
        })
    }

    /// The wrapped ring.
    pub fn ring(&self) -> &R {
        &self.ring
    }

    /// The balance factor `c`.
    pub fn factor(&self) -> f64 {
        self.c
    }

    /// The current load of member `index` (0 for an index out of range).
    pub fn load(&self, index: usize) -> usize {
        self.loads.get(index).map_or(0, |l| l.load(Relaxed))
    }

    /// The total load over all members.
    pub fn total(&self) -> usize {
        self.total.load(Relaxed)
    }

    /// The capacity a member has for the next key: `ceil(c × (total + 1) / n)`.
    pub fn capacity(&self) -> usize {
        let n = self.loads.len().max(1) as f64;
        (self.c * (self.total() as f64 + 1.0) / n).ceil() as usize
    }

    /// Places one unit of load for `key` on the first member of its walk that is below
    /// capacity; `None` only when the ring has no owner for the key. If every member of the
    /// walk is full (only possible under racing acquires), the key's owner takes it anyway.
    pub fn acquire(&self, key: &[u8]) -> Option<LoadGuard<'_>> {
        let n = self.loads.len();
        let cap = self.capacity();
        let mut asked = 1;
        let mut checked = 0;
        let mut first = None;
        loop {
            let walk = self.ring.owner_indices(key, asked);
            first = first.or(walk.first().copied());
            for &i in walk.iter().skip(checked) {
                let Some(load) = self.loads.get(i) else {
                    continue;
                };
                if load
                    .fetch_update(Relaxed, Relaxed, |l| (l < cap).then_some(l + 1))
                    .is_ok()
                {
                    return Some(self.guard(i));
                }
            }
            if walk.len() < asked || asked >= n {
                break;
            }
            checked = walk.len();
            asked = (asked * 2).min(n);
        }
        let i = first?;
        self.loads.get(i)?.fetch_add(1, Relaxed);
        Some(self.guard(i))
    }

    fn guard(&self, index: usize) -> LoadGuard<'_> {
        self.total.fetch_add(1, Relaxed);
        LoadGuard {
            member: &self.ring.members()[index],
            index,
            loads: &self.loads,
            total: &self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, build};

    #[test]
    fn rejects_bad_factors() {
        let ring = build(Algorithm::Rendezvous, &["a:1"]).unwrap();
        assert!(BoundedLoad::new(ring, 0.9).is_err());
        let ring = build(Algorithm::Rendezvous, &["a:1"]).unwrap();
        assert!(BoundedLoad::new(ring, f64::NAN).is_err());
    }

    #[test]
    fn no_member_exceeds_capacity_and_guards_release() {
        let members: Vec<String> = (0..8).map(|i| format!("10.0.0.{i}:11211")).collect();
        let names: Vec<&str> = members.iter().map(String::as_str).collect();
        for alg in Algorithm::ALL
            .into_iter()
            .filter(|a| *a != Algorithm::Vbucket)
        {
            let b = BoundedLoad::new(build(alg, &names).unwrap(), 1.25).unwrap();
            let mut held = Vec::new();
            for i in 0..4000 {
                let cap = b.capacity();
                let g = b.acquire(format!("key-{i}").as_bytes()).unwrap();
                assert!(b.load(g.index()) <= cap, "{alg}: load over capacity");
                held.push(g);
            }
            let max = (0..8).map(|i| b.load(i)).max().unwrap();
            assert!(
                max <= (1.25f64 * 4000.0 / 8.0).ceil() as usize,
                "{alg}: max load {max}"
            );
            drop(held);
            assert_eq!(b.total(), 0);
            assert!((0..8).all(|i| b.load(i) == 0));
        }
    }

    #[test]
    fn the_owner_takes_the_key_when_it_has_room() {
        let ring = build(Algorithm::Ketama, &["a:1", "b:1", "c:1"]).unwrap();
        let owner = ring.owner_index(b"k").unwrap();
        let b = BoundedLoad::new(ring, 1.25).unwrap();
        assert_eq!(b.acquire(b"k").unwrap().index(), owner);
    }
}
