//! Nothing in this crate panics on any input: arbitrary member strings, algorithm names,
//! keys, owner counts and vBucket JSON either work or return a `RingError`.

use proptest::prelude::*;
use serde_json::{Value, json};
use shoal_ring::{
    Algorithm, BoundedLoad, Chash, GroupcacheRing, Ketama, KetamaCompat, KeyHash, Modula, Ring,
    TwemproxyHash, VBucketMap, build, twemproxy_hash_tag,
};

fn exercise(ring: &dyn Ring, key: &[u8], n: usize) {
    let owner = ring.owner(key);
    let owners = ring.owners(key, n);
    assert!(owners.len() <= n.min(ring.members().len()));
    if let (Some(o), Some(first)) = (owner, owners.first()) {
        assert_eq!(o, *first);
    }
    let _ = ring.owner_indices(key, n);
}

/// Member strings that are often almost valid: mixes of hosts, colons, brackets, digits,
/// spaces and anything else.
fn member() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "[a-z0-9\\[\\]:. -]{0,24}",
        (
            "[a-z0-9.-]{0,8}",
            "[0-9+-]{0,7}",
            proptest::option::of("[0-9x -]{0,12}")
        )
            .prop_map(|(h, p, w)| match w {
                Some(w) => format!("{h}:{p}:{w}"),
                None => format!("{h}:{p}"),
            }),
    ]
}

fn vbucket_json() -> impl Strategy<Value = String> {
    let row = prop::collection::vec(-3i64..6, 0..4);
    let rows = prop::collection::vec(row, 0..9);
    (
        -2i64..7,
        prop::collection::vec("[a-z:0-9]{0,8}", 0..4),
        rows.clone(),
        proptest::option::of(rows),
        any::<bool>(),
    )
        .prop_map(|(nr, servers, map, fwd, envelope)| {
            let mut v = json!({"numReplicas": nr, "serverList": servers, "vBucketMap": map});
            if let Some(f) = fwd {
                v["vBucketMapForward"] = json!(f);
            }
            if envelope {
                json!({"name": "default", "vBucketServerMap": v})
            } else {
                v
            }
            .to_string()
        })
}

proptest! {
    #[test]
    fn members_never_panic(members in prop::collection::vec(member(), 0..6), key in prop::collection::vec(any::<u8>(), 0..300), n in prop_oneof![0usize..8, Just(usize::MAX)]) {
        let m: Vec<&str> = members.iter().map(String::as_str).collect();
        for alg in Algorithm::ALL {
            if let Ok(ring) = build(alg, &m) {
                exercise(ring.as_ref(), &key, n);
                if let Ok(b) = BoundedLoad::new(ring, 1.25) {
                    drop(b.acquire(&key));
                }
            }
        }
        if let Ok(r) = Ketama::twemproxy(&m) { exercise(&r, &key, n); }
        for h in TwemproxyHash::ALL {
            let _ = h.hash(&key);
            if let Ok(r) = Ketama::twemproxy_with(&m, h) { exercise(&r, &key, n); }
            if let Ok(r) = Modula::twemproxy(&m, h) { exercise(&r, &key, n); }
        }
        if let Ok(r) = KetamaCompat::with_hash(&m, KeyHash::OneAtATime) { exercise(&r, &key, n); }
    }

    #[test]
    fn names_and_sizes_never_panic(name in ".{0,20}", replicas in prop_oneof![0usize..70, Just(usize::MAX)], factor in any::<f64>()) {
        let _ = name.parse::<Algorithm>();
        let _ = name.parse::<TwemproxyHash>();
        let _ = GroupcacheRing::with_replicas(&["a", "b"], replicas);
        let _ = Chash::with_replicas(&["a", "b"], replicas);
        let _ = BoundedLoad::new(build(Algorithm::Jump, &["a"]).unwrap(), factor);
    }

    #[test]
    fn hash_tags_never_panic(key in prop::collection::vec(any::<u8>(), 0..40), tag in any::<[u8; 2]>()) {
        let cut = twemproxy_hash_tag(&key, tag);
        // The whole key, or a non-empty part of it.
        prop_assert!(cut == key.as_slice() || (!cut.is_empty() && key.windows(cut.len()).any(|w| w == cut)));
    }

    #[test]
    fn arbitrary_text_as_vbucket_json_never_panics(text in ".{0,200}") {
        let _ = VBucketMap::from_json(&text);
    }

    #[test]
    fn vbucket_shaped_json_never_panics(json in vbucket_json(), key in prop::collection::vec(any::<u8>(), 0..40), vb in any::<u16>(), wrong in any::<usize>()) {
        if let Ok(mut map) = VBucketMap::from_json(&json) {
            exercise(&map, &key, 3);
            let _ = map.master(vb);
            let _ = map.replica(vb, wrong);
            let _ = map.found_incorrect_master(vb, wrong);
            let v = map.vbucket_of(&key);
            let _ = map.found_incorrect_master(v, wrong % 4);
            exercise(&map, &key, usize::MAX);
        }
    }

    #[test]
    fn json_values_never_panic(v in any_json()) {
        let _ = VBucketMap::from_json(&v.to_string());
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,10}".prop_map(Value::from),
        prop_oneof![Just("numReplicas"), Just("serverList"), Just("vBucketMap")]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("numReplicas".to_owned()),
                    Just("serverList".to_owned()),
                    Just("vBucketMap".to_owned()),
                    Just("vBucketMapForward".to_owned()),
                    Just("vBucketServerMap".to_owned()),
                    ".{0,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
