//! Placement through the whole config path matches the pinned vectors from the independent
//! Python models (scripts/route-vectors/gen.py), and matches shoal-ring's choosers directly.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use shoal_ring::{Chash, Jump, Ring};
use shoal_router::{RouteConfig, Router, Settings, placement::ShardRing, simpleconf};

struct RingVectors {
    name: String,
    chooser: String,
    weights: Vec<u32>,
    rows: Vec<(String, usize)>,
}

fn vectors() -> Vec<RingVectors> {
    let text = include_str!("vectors/placement.tsv");
    let mut out: Vec<RingVectors> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        if f[0] == "@ring" {
            out.push(RingVectors {
                name: f[1].into(),
                chooser: f[2].into(),
                weights: f[3].split(',').map(|w| w.parse().unwrap()).collect(),
                rows: Vec::new(),
            });
        } else {
            out.last_mut()
                .unwrap()
                .rows
                .push((f[0].into(), f[1].parse().unwrap()));
        }
    }
    out
}

/// A photosrv config file for the ring, written as an operator would.
fn photosrv_config(chooser: &str, weights: &[u32]) -> String {
    let mut s = format!("<photosrv>\n  chooser {chooser}\n  <earth>\n    <shards>\n");
    for (i, w) in weights.iter().enumerate() {
        let weight = if weights.iter().all(|&w| w == 1) {
            String::new()
        } else {
            format!(",{w}")
        };
        s.push_str(&format!(
            "      shard{}{weight} http://10.0.{i}.1:80 http://10.0.{i}.2:80\n",
            i + 1
        ));
    }
    s.push_str("    </shards>\n  </earth>\n</photosrv>\n");
    s
}

#[test]
fn config_path_matches_pinned_vectors() {
    let all = vectors();
    assert_eq!(all.len(), 9);
    for v in &all {
        assert!(v.rows.len() > 1000, "{}", v.name);
        let root = simpleconf::parse(&photosrv_config(&v.chooser, &v.weights), Path::new("t.cfg"))
            .unwrap();
        let cfg = RouteConfig::from_photosrv(&root, "EARTH").unwrap();
        let router = Router::new(&cfg, Settings::default()).unwrap();
        for (path, want) in &v.rows {
            let e = router.explain(format!("/{path}")).unwrap();
            assert_eq!(e.key, *path);
            assert_eq!(
                e.targets[0].shard,
                format!("shard{}", want + 1),
                "{} {path}",
                v.name
            );
        }
    }
}

#[test]
fn unweighted_rings_are_shoal_ring_choosers_and_weights_are_named_buckets() {
    for v in vectors() {
        let spec = RouteConfig::from_photosrv(
            &simpleconf::parse(&photosrv_config(&v.chooser, &v.weights), Path::new("t.cfg"))
                .unwrap(),
            "earth",
        )
        .unwrap()
        .primary;
        let ring = ShardRing::new(&spec).unwrap();
        let (names, owner): (Vec<String>, Vec<usize>) = if v.weights.iter().all(|&w| w == 1) {
            (
                (1..=v.weights.len()).map(|i| format!("shard{i}")).collect(),
                (0..v.weights.len()).collect(),
            )
        } else {
            v.weights
                .iter()
                .enumerate()
                .flat_map(|(i, &w)| (0..w).map(move |j| (format!("shard{}#{j}", i + 1), i)))
                .unzip()
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let direct: Box<dyn Ring> = if v.chooser == "jump" {
            Box::new(Jump::new(&refs).unwrap())
        } else {
            Box::new(Chash::new(&refs).unwrap())
        };
        for (path, want) in &v.rows {
            let d = owner[direct.owner_index(path.as_bytes()).unwrap()];
            assert_eq!(d, *want, "{} {path}", v.name);
            assert_eq!(ring.shard(path.as_bytes()), d, "{} {path}", v.name);
        }
    }
}

/// photosrv decoded a path with Go's `url.QueryUnescape`, whose result is any bytes (Go
/// strings need not be UTF-8), and hashed those bytes: a Latin-1 name such as `caf%E9.jpg`
/// (the single byte 0xE9) is placed by SipHash-2-4 (key 0) and jump over exactly those
/// bytes, never refused and never re-encoded as UTF-8. The expected shards are pinned from
/// the independent Python model (scripts/ring-vectors/models.py) and recomputed here from
/// shoal-ring's own functions.
#[test]
fn a_path_that_is_not_utf8_once_decoded_is_placed_by_its_raw_bytes() {
    let raw_key: &[u8] = b"x/caf\xe9.jpg";
    let utf8_key = "x/caf\u{e9}.jpg".as_bytes();
    assert_eq!(
        shoal_ring::hash::siphash24_zero(raw_key),
        0xde79_43b3_2e91_0135
    );
    // n → the shard of the raw bytes (pinned), and of the UTF-8 spelling, which differs.
    for (n, pinned, utf8_shard) in [(3, 0, 1), (10, 8, 6)] {
        let cfg = RouteConfig::from_photosrv(
            &simpleconf::parse(&photosrv_config("jump", &vec![1; n]), Path::new("t.cfg")).unwrap(),
            "earth",
        )
        .unwrap();
        let router = Router::new(&cfg, Settings::default()).unwrap();
        let want = shoal_ring::jump_hash(shoal_ring::hash::siphash24_zero(raw_key), n).unwrap();
        assert_eq!(want, pinned, "n={n}");
        let utf8 = shoal_ring::jump_hash(shoal_ring::hash::siphash24_zero(utf8_key), n).unwrap();
        assert_eq!(utf8, utf8_shard, "n={n}");
        // Encoded once (as a client sends it) and twice (photosrv decodes again on a `%`).
        for raw in ["/x/caf%E9.jpg", "/x/caf%25E9.jpg", "/x//caf%e9.jpg"] {
            let e = router
                .explain(raw)
                .unwrap_or_else(|why| panic!("{raw} refused: {why}"));
            assert_eq!(
                e.targets[0].shard,
                format!("shard{}", want + 1),
                "{raw} n={n}"
            );
        }
        assert_eq!(
            router.explain("/x/caf%C3%A9.jpg").unwrap().targets[0].shard,
            format!("shard{}", utf8 + 1),
        );
    }
    // chash hashes the same bytes.
    let names: Vec<String> = (1..=5).map(|i| format!("shard{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let direct = Chash::new(&refs).unwrap().owner_index(raw_key).unwrap();
    let cfg = RouteConfig::from_photosrv(
        &simpleconf::parse(&photosrv_config("chash", &[1; 5]), Path::new("t.cfg")).unwrap(),
        "earth",
    )
    .unwrap();
    let e = Router::new(&cfg, Settings::default())
        .unwrap()
        .explain("/x/caf%E9.jpg")
        .unwrap();
    assert_eq!(e.targets[0].shard, format!("shard{}", direct + 1));
}
