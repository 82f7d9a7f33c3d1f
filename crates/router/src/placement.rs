//! Which shard a path belongs to: photosrv's choosers, plus the weights photosrv parsed but
//! never used.
//!
//! When every shard has weight 1 the ring is built over the shard names exactly as photosrv
//! builds it, so placement is bit-identical. When any weight differs, each shard of weight `w`
//! becomes the `w` buckets `name#0 .. name#(w-1)` over the same chooser, which is what
//! go-shardedkv's `weighted` chooser (the one photosrv meant to use) does; weight 0 drains a
//! shard. Note for jump: buckets are numbered in shard order, so changing a weight moves keys
//! of every later shard too; with chash only the re-weighted shard's share moves.

use shoal_ring::{Chash, Jump, Ring};

use crate::RouteError;
use crate::config::{Chooser, RingSpec};

/// The largest shard weight: each unit is a ring member, so a weight of billions would
/// exhaust memory building the ring.
pub const MAX_WEIGHT: u32 = 10_000;

/// A ring of shards: `shard(key)` is the index of the owning shard in [`RingSpec::shards`].
#[derive(Debug)]
pub struct ShardRing {
    ring: Box<dyn Ring>,
    /// For each ring member, the shard it stands for.
    bucket_shard: Vec<usize>,
}

impl ShardRing {
    /// Builds the ring for `spec`.
    pub fn new(spec: &RingSpec) -> Result<Self, RouteError> {
        if let Some(s) = spec.shards.iter().find(|s| s.weight > MAX_WEIGHT) {
            return Err(RouteError::config(format!(
                "shard {} has weight {}: at most {MAX_WEIGHT}",
                s.name, s.weight
            )));
        }
        let weighted = spec.shards.iter().any(|s| s.weight != 1);
        let mut names = Vec::new();
        let mut bucket_shard = Vec::new();
        for (i, s) in spec.shards.iter().enumerate() {
            if weighted {
                for j in 0..s.weight {
                    names.push(format!("{}#{j}", s.name));
                    bucket_shard.push(i);
                }
            } else {
                names.push(s.name.clone());
                bucket_shard.push(i);
            }
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let ring: Box<dyn Ring> = match spec.chooser {
            Chooser::Jump => Box::new(Jump::new(&refs)?),
            Chooser::Chash => Box::new(Chash::new(&refs)?),
        };
        Ok(ShardRing { ring, bucket_shard })
    }

    /// The shard owning `key` (a normalised path without its leading `/`).
    pub fn shard(&self, key: &[u8]) -> usize {
        self.ring
            .owner_index(key)
            .and_then(|b| self.bucket_shard.get(b).copied())
            .unwrap_or(0)
    }

    /// The number of buckets (the sum of weights, or the shard count when unweighted).
    pub fn buckets(&self) -> usize {
        self.bucket_shard.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShardSpec;

    fn spec(chooser: Chooser, weights: &[u32]) -> RingSpec {
        RingSpec {
            chooser,
            shards: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| ShardSpec {
                    name: format!("shard{}", i + 1),
                    index: i as i64 + 1,
                    weight: w,
                    replicas: vec!["http://x".into()],
                })
                .collect(),
        }
    }

    #[test]
    fn photosrv_jump_vectors() {
        for (path, want) in [
            ("images/hello.jpg", [0, 0, 0, 3, 3]),
            ("images/hotel/max500/hello.jpg", [0, 0, 0, 0, 8]),
        ] {
            for (n, w) in [1, 2, 3, 4, 10].into_iter().zip(want) {
                let r = ShardRing::new(&spec(Chooser::Jump, &vec![1; n])).unwrap();
                assert_eq!(r.shard(path.as_bytes()), w, "{path} n={n}");
            }
        }
    }

    #[test]
    fn weight_zero_drains_and_weights_scale() {
        let r = ShardRing::new(&spec(Chooser::Chash, &[1, 0, 3])).unwrap();
        assert_eq!(r.buckets(), 4);
        let mut counts = [0usize; 3];
        for i in 0..4000 {
            counts[r.shard(format!("p/{i}.jpg").as_bytes())] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(counts[2] > 2 * counts[0], "{counts:?}");
    }
}
