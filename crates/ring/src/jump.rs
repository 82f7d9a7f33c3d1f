//! photosrv's `chooser jump`: Jump Consistent Hash (Lamping & Veach) over SipHash-2-4.
//!
//! `shard = JumpConsistentHash(siphash24(k0 = 0, k1 = 0, key), shards)`, computed exactly as
//! dgryski/go-jump does, float64 arithmetic included. Members are shards in shard order;
//! jump can only grow or shrink at the end of that list.
//!
//! [`Ring::owners`](crate::Ring::owners) follows go-shardedkv's jump `ChooseReplicas`: after a
//! shard is chosen it is removed from the candidate list and the hash is re-keyed with
//! xorshift-multiply (`h ^= h >> 12; h ^= h << 25; h ^= h >> 27; h *= 2685821657736338717`)
//! before jumping again over the remaining shards. (photosrv itself never asks for replicas.)

use crate::hash::siphash24_zero;
use crate::member::parse_names;
use crate::{Member, RingError, ring_by_index};

/// go-jump's `Hash(key, buckets)`: the bucket in `0..buckets` for `key`; `None` for 0 buckets.
pub fn jump_hash(mut key: u64, buckets: usize) -> Option<usize> {
    if buckets == 0 {
        return None;
    }
    let n = buckets as i64;
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < n {
        b = j;
        key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    usize::try_from(b).ok()
}

/// photosrv jump; see the module docs.
#[derive(Debug, Clone)]
pub struct Jump {
    members: Vec<Member>,
}

impl Jump {
    /// The chooser over shard names, in shard order.
    pub fn new(shards: &[&str]) -> Result<Self, RingError> {
        Ok(Jump {
            members: parse_names(shards, "a shard name")?,
        })
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        jump_hash(siphash24_zero(key), self.members.len())
    }

    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        let want = n.min(self.members.len());
        let mut out = Vec::with_capacity(want);
        let mut left: Vec<usize> = (0..self.members.len()).collect();
        let mut h = siphash24_zero(key);
        while out.len() < want {
            let Some(b) = jump_hash(h, left.len()) else {
                break;
            };
            out.push(left.remove(b));
            h ^= h >> 12;
            h ^= h << 25;
            h ^= h >> 27;
            h = h.wrapping_mul(2685821657736338717);
        }
        out
    }
}

ring_by_index!(Jump);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ring;

    #[test]
    fn go_jump_vectors() {
        let one: Vec<usize> = (1..20).filter_map(|n| jump_hash(1, n)).collect();
        assert_eq!(
            one,
            [0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17]
        );
        let dead: Vec<usize> = (1..20).filter_map(|n| jump_hash(0xdeadbeef, n)).collect();
        assert_eq!(
            dead,
            [0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16]
        );
        let guava: Vec<usize> = (0..20).filter_map(|i| jump_hash(i, 100)).collect();
        assert_eq!(
            guava,
            [
                0, 55, 62, 8, 45, 59, 86, 97, 82, 59, 73, 37, 17, 56, 86, 21, 90, 37, 38, 83
            ]
        );
        assert_eq!(jump_hash(7, 0), None);
    }

    #[test]
    fn photosrv_paths() {
        let shards: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
        for (path, want) in [
            ("images/hello.jpg", [0, 0, 0, 3, 3]),
            ("images/hotel/max500/hello.jpg", [0, 0, 0, 0, 8]),
        ] {
            let got: Vec<usize> = [1, 2, 3, 4, 10]
                .iter()
                .map(|&n| {
                    let names: Vec<&str> = shards[..n].iter().map(String::as_str).collect();
                    Jump::new(&names)
                        .unwrap()
                        .owner_index(path.as_bytes())
                        .unwrap()
                })
                .collect();
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn owners_start_with_the_owner_and_are_distinct() {
        let j = Jump::new(&["a", "b", "c", "d", "e"]).unwrap();
        for i in 0..500 {
            let k = format!("k{i}");
            let all = j.owner_indices(k.as_bytes(), 9);
            assert_eq!(all.len(), 5);
            assert_eq!(Some(all[0]), j.owner_index(k.as_bytes()));
            let mut s = all.clone();
            s.sort_unstable();
            assert_eq!(s, [0, 1, 2, 3, 4]);
        }
    }
}
