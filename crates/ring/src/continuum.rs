//! The sorted point list every hash ring here shares: ketama's continuum, groupcache's
//! `keys`/`hashMap`, photosrv's chash.
//!
//! Lookup is a binary search (`partition_point`) for the first point `>= hash`, wrapping to the
//! first point, with no allocation. Points and owners are kept in two parallel arrays so the
//! search touches only the 4-byte points.
//!
//! Two members can land on the same point. Each system settles that differently, so the
//! builder takes a [`Tie`] rule and keeps one owner per point value:
//! - libmemcached sorts with glibc's `qsort`, a merge sort (stable) at these sizes, and its
//!   lower-bound search finds the first of equal points: the point inserted first wins
//!   ([`Tie::First`], verified against libmemcached and nutcracker in `tests/vectors/ties.tsv`);
//! - golang/groupcache writes `hashMap[point] = owner` in insertion order: the last wins
//!   ([`Tie::Last`]);
//! - galaxycache keeps the owner whose name is greatest ([`Tie::Greatest`]).

use std::cmp::Ordering;

/// How two members on one point are settled; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tie {
    First,
    Last,
    Greatest,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Continuum {
    points: Vec<u32>,
    owners: Vec<u32>,
}

impl Continuum {
    /// `items` are `(point, member index)` in insertion order; `names` are the members' names,
    /// used by [`Tie::Greatest`].
    pub fn build(mut items: Vec<(u32, u32)>, tie: Tie, names: &[&[u8]]) -> Self {
        items.sort_by_key(|&(p, _)| p); // stable: equal points keep insertion order
        let mut points = Vec::with_capacity(items.len());
        let mut owners: Vec<u32> = Vec::with_capacity(items.len());
        for (p, o) in items {
            if points.last() == Some(&p) {
                let last = owners.len() - 1;
                let keep = match tie {
                    Tie::First => owners[last],
                    Tie::Last => o,
                    Tie::Greatest => {
                        let name = |i: u32| names.get(i as usize).copied().unwrap_or_default();
                        match name(o).cmp(name(owners[last])) {
                            Ordering::Greater => o,
                            _ => owners[last],
                        }
                    }
                };
                owners[last] = keep;
            } else {
                points.push(p);
                owners.push(o);
            }
        }
        Continuum { points, owners }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// The position of the first point `>= hash`, wrapping to 0; `None` when empty.
    #[inline]
    pub fn position(&self, hash: u32) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|&p| p < hash);
        Some(if i == self.points.len() { 0 } else { i })
    }

    /// The owner at a position returned by [`position`](Self::position).
    #[inline]
    pub fn owner_at(&self, pos: usize) -> usize {
        self.owners[pos] as usize
    }

    /// The owner of `hash`: the member of the first point `>= hash`, wrapping.
    #[inline]
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        self.position(hash).map(|i| self.owner_at(i))
    }

    /// Walks clockwise from the owner of `hash` and collects up to `n` distinct owners, in the
    /// order met. `members` is the number of members (owner indices are below it).
    pub fn walk(&self, hash: u32, n: usize, members: usize) -> Vec<usize> {
        let want = n.min(members);
        let mut out = Vec::with_capacity(want);
        let Some(start) = self.position(hash) else {
            return out;
        };
        let mut seen = Seen::new(members);
        let len = self.points.len();
        for step in 0..len {
            if out.len() == want {
                break;
            }
            let o = self.owner_at((start + step) % len);
            if seen.insert(o) {
                out.push(o);
            }
        }
        out
    }
}

/// A set of member indices: a bitmap, one allocation.
pub(crate) struct Seen(Vec<u64>);

impl Seen {
    pub fn new(members: usize) -> Self {
        Seen(vec![0; members.div_ceil(64)])
    }

    /// Adds `i`; false if it was already there.
    pub fn insert(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        match self.0.get_mut(w) {
            Some(word) if *word & b == 0 => {
                *word |= b;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_first_point_at_or_after_with_wrap() {
        let c = Continuum::build(vec![(100, 0), (200, 1), (300, 2)], Tie::First, &[]);
        assert_eq!(c.lookup(0), Some(0));
        assert_eq!(c.lookup(100), Some(0));
        assert_eq!(c.lookup(101), Some(1));
        assert_eq!(c.lookup(300), Some(2));
        assert_eq!(c.lookup(301), Some(0));
        assert_eq!(c.lookup(u32::MAX), Some(0));
        assert_eq!(Continuum::default().lookup(5), None);
    }

    #[test]
    fn ties_follow_the_rule() {
        let items = vec![(7, 1), (5, 0), (7, 0), (9, 2)];
        let names: [&[u8]; 3] = [b"b", b"a", b"c"];
        assert_eq!(
            Continuum::build(items.clone(), Tie::First, &names).lookup(6),
            Some(1)
        );
        assert_eq!(
            Continuum::build(items.clone(), Tie::Last, &names).lookup(6),
            Some(0)
        );
        assert_eq!(
            Continuum::build(items, Tie::Greatest, &names).lookup(6),
            Some(0)
        );
    }

    #[test]
    fn walk_returns_distinct_owners_clockwise() {
        let c = Continuum::build(
            vec![(10, 0), (20, 0), (30, 1), (40, 2), (50, 1)],
            Tie::First,
            &[],
        );
        assert_eq!(c.walk(15, 3, 3), vec![0, 1, 2]);
        assert_eq!(c.walk(45, 3, 3), vec![1, 0, 2]);
        assert_eq!(c.walk(45, 9, 3), vec![1, 0, 2]);
        assert_eq!(c.walk(45, 0, 3), Vec::<usize>::new());
        assert_eq!(c.len(), 5);
    }
}
