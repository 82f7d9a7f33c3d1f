//! Property: whatever is inserted, loaded, promoted or removed, main + hot never hold more
//! than the group's budget.

mod common;

use bytes::Bytes;
use common::{PrefixRoute, ScriptedPeer};
use proptest::prelude::*;
use shoal_cache::{AlwaysPromote, Group, Loaded, loader_fn};

#[derive(Debug, Clone)]
enum Op {
    /// Warm-handoff insert into the main cache.
    Insert(u8, usize),
    /// A get of a key this node owns (loaded locally, stored in main).
    GetLocal(u8, usize),
    /// A get of a key a peer owns (promoted into hot).
    GetRemote(u8, usize),
    Remove(u8, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![0usize..64, 0usize..4096, 0usize..200_000];
    prop_oneof![
        (any::<u8>(), len.clone()).prop_map(|(k, l)| Op::Insert(k, l)),
        (any::<u8>(), len.clone()).prop_map(|(k, l)| Op::GetLocal(k, l)),
        (any::<u8>(), len).prop_map(|(k, l)| Op::GetRemote(k, l)),
        (any::<u8>(), 0usize..64).prop_map(|(k, l)| Op::Remove(k, l)),
    ]
}

/// A key of `len`-byte value: the length is encoded in the key so loader and peer agree.
fn key(prefix: &str, k: u8, len: usize) -> Vec<u8> {
    format!("{prefix}{k}/{len}").into_bytes()
}

fn len_of(key: &[u8]) -> usize {
    let s = std::str::from_utf8(key).unwrap_or("");
    s.rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

proptest! {
    #[test]
    fn main_plus_hot_never_exceed_the_budget(
        budget in 0u64..2_000_000,
        hot_ratio in 0u64..10,
        max_entry in 64u64..300_000,
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let g = Group::builder("g", budget)
                .hot_ratio(hot_ratio)
                .max_entry_bytes(max_entry)
                .promoter(AlwaysPromote)
                .build(loader_fn(|key: Bytes| async move {
                    Ok(Loaded::new(vec![1u8; len_of(&key)]))
                }));
            let peer = ScriptedPeer::new(|key| Ok(Loaded::new(vec![2u8; len_of(key)])));
            g.set_peers(std::sync::Arc::new(PrefixRoute { prefix: b"r", peer }));
            for op in ops {
                match op {
                    Op::Insert(k, len) => {
                        g.insert_main(Bytes::from(key("l", k, len)), Loaded::new(vec![0u8; len]));
                    }
                    Op::GetLocal(k, len) => {
                        let v = g.get(&key("l", k, len)).await.unwrap();
                        prop_assert_eq!(v.len(), len);
                    }
                    Op::GetRemote(k, len) => {
                        let v = g.get(&key("r", k, len)).await.unwrap();
                        prop_assert_eq!(v.len(), len);
                    }
                    Op::Remove(k, len) => {
                        g.remove(&key("l", k, len));
                    }
                }
                let s = g.stats();
                prop_assert!(s.main_capacity + s.hot_capacity <= budget);
                prop_assert!(s.main_bytes <= s.main_capacity, "{:?}", s);
                prop_assert!(s.hot_bytes <= s.hot_capacity, "{:?}", s);
            }
            Ok(())
        })?;
    }
}
