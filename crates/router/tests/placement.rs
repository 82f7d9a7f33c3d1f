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
            let e = router.explain(&format!("/{path}")).unwrap();
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
