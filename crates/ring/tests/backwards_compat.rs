//! A test against our own previous output (pingora-ketama's `backwards_compat.rs` habit):
//! `tests/vectors/own.tsv` holds what every algorithm placed, and the owners it listed, when
//! the table was written. Placement must never change silently; if a change is intended, say
//! why in the commit and rewrite the table with
//! `SHOAL_RING_BLESS=1 cargo test -p shoal-ring --test backwards_compat`.

mod common;

use std::fmt::Write as _;

use shoal_ring::Algorithm;

const SERVERS: [&str; 5] = [
    "10.0.0.1:11211",
    "10.0.0.2:11211:2",
    "cache-3:11300",
    "[::1]:11400",
    "cache-5:11211:3",
];
const PEERS: [&str; 4] = [
    "http://10.0.0.1:8080",
    "http://10.0.0.2:8080",
    "https://peer-c.example:8443",
    "http://[::1]:9000",
];
const SHARDS: [&str; 6] = ["shard1", "shard2", "shard3", "shard4", "shard5", "shard6"];

/// 500 keys: printable ASCII of varied length, some with spaces and bytes >= 0x80 (which
/// one-at-a-time sign-extends), never a tab or newline.
fn keys() -> Vec<Vec<u8>> {
    let mut x: u64 = 0x5eed_0b0b;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..500)
        .map(|i| {
            let len = 1 + (next() % 48) as usize;
            (0..len)
                .map(|_| {
                    let r = next();
                    if i % 10 == 0 && r % 7 == 0 {
                        0x80 + (r >> 8) as u8 % 0x80
                    } else {
                        0x20 + (r % 95) as u8
                    }
                })
                .collect()
        })
        .collect()
}

fn columns() -> Vec<(String, String, Vec<String>)> {
    let mut cols = Vec::new();
    for alg in Algorithm::ALL {
        let members: &[&str] = match alg {
            Algorithm::Groupcache | Algorithm::Galaxycache => &PEERS,
            Algorithm::Jump | Algorithm::Chash => &SHARDS,
            Algorithm::Vbucket => &SERVERS[..3],
            _ => &SERVERS,
        };
        let members: Vec<String> = members.iter().map(|s| (*s).to_owned()).collect();
        cols.push((
            alg.name().to_owned(),
            alg.name().to_owned(),
            members.clone(),
        ));
        cols.push((format!("{alg}_owners3"), format!("{alg}/owners=3"), members));
    }
    cols
}

fn render() -> Vec<u8> {
    let keys = keys();
    let cols = columns();
    let mut head =
        String::from("# Our own placements; see tests/backwards_compat.rs. Cells: owner index.\n");
    for (name, algo, members) in &cols {
        let _ = writeln!(head, "#col\t{name}\t{algo}\t{}", members.join(","));
    }
    head.push_str("key");
    for (name, _, _) in &cols {
        let _ = write!(head, "\t{name}");
    }
    head.push('\n');
    let mut out = head.into_bytes();
    let rings: Vec<_> = cols
        .iter()
        .map(|(_, algo, members)| common::ring_for(algo, members))
        .collect();
    for k in &keys {
        out.extend_from_slice(k);
        for (ring, owners) in &rings {
            out.push(b'\t');
            out.extend_from_slice(common::cell(ring.as_ref(), *owners, k).as_bytes());
        }
        out.push(b'\n');
    }
    out
}

#[test]
fn placements_match_our_previous_output() {
    let path = common::vectors_dir().join("own.tsv");
    if std::env::var_os("SHOAL_RING_BLESS").is_some() {
        std::fs::write(&path, render()).unwrap();
        return;
    }
    assert!(
        path.exists(),
        "{} is missing: run with SHOAL_RING_BLESS=1 once",
        path.display()
    );
    let report = common::check_table(&path);
    assert_eq!(report.len(), columns().len());
}
