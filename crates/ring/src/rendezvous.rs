//! Weighted rendezvous (highest-random-weight) hashing over xxh3: shoal's own placement.
//!
//! The exact formula, which must never change (it decides where data lives):
//!
//! ```text
//! h     = xxh3_64(key ‖ id)                      // XXH3 64-bit, seed 0, plain concatenation
//! u     = ((h >> 11) as f64 + 0.5) / 2^53        // top 53 bits, strictly inside (0, 1)
//! score = -weight / ln(u)                         // f64; weight >= 1
//! ```
//!
//! The owner is the member with the highest score; equal scores go to the member listed first.
//! `id` is the member's identity without its weight: the `host:port` part as given for
//! `host:port[:weight]` members (so changing a weight moves only the keys the new weight
//! should move), the name itself for [`Rendezvous::from_weighted`]. This is the logarithmic
//! method for weighted HRW (Schindelhauer & Schomaker): member `i` wins a key with probability
//! `weight_i / Σ weight`, adding a member moves keys only to it, and removing one moves only
//! its keys.
//!
//! [`Ring::owners`](crate::Ring::owners) is the members by descending score. `ln` is the
//! platform's `f64::ln`; libms differ by at most an ulp, which could only flip a key whose two
//! best scores agree to about 1e-16, so placement is the same everywhere in practice.

use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

use crate::member::parse_servers;
use crate::{Member, RingError, ring_by_index};

/// Weighted rendezvous hashing; see the module docs.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    members: Vec<Member>,
    ids: Vec<String>,
}

/// `xxh3_64(key ‖ id)` without allocating.
#[inline]
fn hash_pair(key: &[u8], id: &[u8]) -> u64 {
    let mut buf = [0u8; 256];
    let len = key.len() + id.len();
    if len <= buf.len() {
        buf[..key.len()].copy_from_slice(key);
        buf[key.len()..len].copy_from_slice(id);
        xxh3_64(&buf[..len])
    } else {
        let mut h = Xxh3Default::new();
        h.update(key);
        h.update(id);
        h.digest()
    }
}

/// The score of `id` with `weight` for `key`; see the module docs.
#[inline]
pub(crate) fn score(key: &[u8], id: &[u8], weight: u32) -> f64 {
    const TWO_POW_53: f64 = (1u64 << 53) as f64;
    let u = ((hash_pair(key, id) >> 11) as f64 + 0.5) / TWO_POW_53;
    -f64::from(weight.max(1)) / u.ln()
}

impl Rendezvous {
    /// Builds over `host:port[:weight]` members.
    pub fn new(members: &[&str]) -> Result<Self, RingError> {
        let (members, servers) = parse_servers(members)?;
        let ids = servers.into_iter().map(|s| s.id).collect();
        Ok(Rendezvous { members, ids })
    }

    /// Builds over arbitrary names (peer IDs, URLs) with weights; a weight of 0 is rejected.
    pub fn from_weighted(members: &[(&str, u32)]) -> Result<Self, RingError> {
        let names: Vec<&str> = members.iter().map(|&(n, _)| n).collect();
        let mut parsed = crate::member::parse_names(&names, "a non-empty member name")?;
        for (m, &(name, weight)) in parsed.iter_mut().zip(members) {
            if weight == 0 {
                return Err(RingError::BadWeight {
                    member: name.to_owned(),
                    weight: "0".into(),
                });
            }
            m.weight = weight;
        }
        Ok(Rendezvous {
            ids: names.iter().map(|&n| n.to_owned()).collect(),
            members: parsed,
        })
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, (m, id)) in self.members.iter().zip(&self.ids).enumerate() {
            let s = score(key, id.as_bytes(), m.weight);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best.map(|(i, _)| i)
    }

    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        let mut scored: Vec<(usize, f64)> = self
            .members
            .iter()
            .zip(&self.ids)
            .enumerate()
            .map(|(i, (m, id))| (i, score(key, id.as_bytes(), m.weight)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(n).map(|(i, _)| i).collect()
    }
}

ring_by_index!(Rendezvous);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ring;

    #[test]
    fn long_keys_hash_like_short_ones() {
        let long = vec![b'x'; 300];
        let mut cat = long.clone();
        cat.extend_from_slice(b"10.0.0.1:11211");
        assert_eq!(hash_pair(&long, b"10.0.0.1:11211"), xxh3_64(&cat));
        assert_eq!(hash_pair(b"k", b"id"), xxh3_64(b"kid"));
    }

    #[test]
    fn weight_changes_do_not_change_identity() {
        let a = Rendezvous::new(&["10.0.0.1:11211", "10.0.0.2:11211"]).unwrap();
        let b = Rendezvous::new(&["10.0.0.1:11211:1", "10.0.0.2:11211:3"]).unwrap();
        assert_eq!(a.ids, b.ids);
        // with a heavier second member, keys only move towards it
        for i in 0..2000 {
            let k = format!("k{i}");
            let (x, y) = (a.owner_index(k.as_bytes()), b.owner_index(k.as_bytes()));
            assert!(x == y || y == Some(1));
        }
    }

    #[test]
    fn from_weighted_rejects_zero() {
        assert!(Rendezvous::from_weighted(&[("a", 0)]).is_err());
        let r = Rendezvous::from_weighted(&[("a", 1), ("b", 2)]).unwrap();
        assert_eq!(r.members()[1].weight, 2);
        assert_eq!(r.owners(b"k", 5).len(), 2);
    }
}
