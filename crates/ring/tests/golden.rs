//! Bit-compatibility: our placements against tables from the real systems.
//!
//! `tests/vectors/memcached.tsv` comes from libmemcached (pylibmc) and nutcracker (every
//! `hash:`, ketama and modula, `hash_tag:`) storing keys on real memcached servers,
//! `twemproxy_hashes.tsv` from nutcracker's own hashes, `models.tsv` from independent Python
//! models of the systems we cannot run here, `ties.tsv` from servers (ketama) and forged CRC-32
//! collisions (groupcache, galaxycache). `scripts/ring-vectors/gen.py` writes all four.

mod common;

use shoal_ring::{Ketama, LibvbucketKetama, Ring, TwemproxyHash};

#[test]
fn libmemcached_and_nutcracker_placements() {
    let report = common::check_table(&common::vectors_dir().join("memcached.tsv"));
    assert!(report.len() >= 39, "expected every column, got {report:?}");
    assert!(report.iter().all(|(_, n, _)| *n >= 6000));
    // Every twemproxy hash: with ketama, and modula and hash_tag columns.
    let names: Vec<&str> = report.iter().map(|(c, _, _)| c.as_str()).collect();
    for h in TwemproxyHash::ALL {
        let col = if h == TwemproxyHash::Md5 {
            "twemproxy".to_owned()
        } else {
            format!("twem_{h}")
        };
        assert!(names.contains(&col.as_str()), "no column {col}");
    }
    assert!(
        names
            .iter()
            .filter(|c| c.starts_with("twem_modula_"))
            .count()
            >= 4
    );
    assert!(names.iter().filter(|c| c.contains("_tag_")).count() >= 3);
}

/// `twemproxy_hashes.tsv`: each key's hash as the real nutcracker computed it (recovered by
/// gen.py from where modula pools of 113..128 servers sent the key), for every `hash:`. Keys
/// hold every byte from 0x21 to 0xff, alone and in keys of every tail length.
#[test]
fn twemproxy_hashes_match_nutcracker() {
    let path = common::vectors_dir().join("twemproxy_hashes.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(header[0], "key_hex");
    let hashes: Vec<TwemproxyHash> = header[1..].iter().map(|h| h.parse().unwrap()).collect();
    assert_eq!(hashes, TwemproxyHash::ALL);
    let mut rows = 0;
    let mut high = 0;
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let key: Vec<u8> = (0..f[0].len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&f[0][i..i + 2], 16).unwrap())
            .collect();
        high += usize::from(key.iter().any(|&b| b >= 0x80));
        for (h, want) in hashes.iter().zip(&f[1..]) {
            let want: u32 = want.parse().unwrap();
            assert_eq!(h.hash(&key), want, "{h} of {}", f[0]);
        }
        rows += 1;
    }
    assert!(rows >= 500, "{rows} rows");
    assert!(high >= 300, "{high} keys with a byte >= 0x80");
}

#[test]
fn groupcache_galaxycache_chash_jump_libvbucket_models() {
    let report = common::check_table(&common::vectors_dir().join("models.tsv"));
    assert!(report.len() >= 12, "expected every column, got {report:?}");
}

#[test]
fn ties_resolve_like_the_source_systems() {
    let text = std::fs::read_to_string(common::vectors_dir().join("ties.tsv")).unwrap();
    let mut rows = 0;
    for line in text
        .lines()
        .skip_while(|l| !l.starts_with("algo\t"))
        .skip(1)
    {
        let f: Vec<&str> = line.split('\t').collect();
        let members: Vec<String> = f[1].split(',').map(str::to_owned).collect();
        let (ring, _) = common::ring_for(f[0], &members);
        let want: usize = f[3].parse().unwrap();
        assert_eq!(ring.owner_index(f[2].as_bytes()), Some(want), "{line}");
        rows += 1;
    }
    assert_eq!(rows, 12);
}

fn keys(n: usize) -> impl Iterator<Item = Vec<u8>> {
    (0..n).map(|i| format!("key:{i}:{}", i.wrapping_mul(2654435761) % 9973).into_bytes())
}

/// libvbucket's ketama and libmemcached's weighted ketama build the same points when every
/// server has a port other than 11211, equal weights, and libmemcached's float math gives 160
/// points per server; given the servers already sorted, they must then agree on every key.
#[test]
fn libvbucket_ketama_agrees_with_libmemcached_where_it_must() {
    for n in [2, 3, 8, 10, 24, 64] {
        let mut servers: Vec<String> = (0..n)
            .map(|i| format!("10.1.{}.{}:11210", i / 7, i))
            .collect();
        servers.sort();
        let m: Vec<&str> = servers.iter().map(String::as_str).collect();
        let (vb, lm) = (LibvbucketKetama::new(&m).unwrap(), Ketama::new(&m).unwrap());
        assert_eq!(lm.points(), 160 * n);
        for k in keys(20_000) {
            assert_eq!(
                vb.owner_index(&k),
                lm.owner_index(&k),
                "n={n} key {:?}",
                String::from_utf8_lossy(&k)
            );
        }
    }
    // And where libmemcached's math gives fewer points (25 servers: 156 each), they differ.
    let servers: Vec<String> = (0..25).map(|i| format!("10.2.0.{i:03}:11210")).collect();
    let m: Vec<&str> = servers.iter().map(String::as_str).collect();
    let (vb, lm) = (LibvbucketKetama::new(&m).unwrap(), Ketama::new(&m).unwrap());
    assert_eq!(lm.points(), 156 * 25);
    assert!(keys(20_000).any(|k| vb.owner_index(&k) != lm.owner_index(&k)));
}

/// The 100,000-key run: `gen.py --keys 100000 --out DIR`, then
/// `SHOAL_RING_VECTORS=DIR cargo test -p shoal-ring --test golden -- --ignored --nocapture`.
#[test]
#[ignore = "needs SHOAL_RING_VECTORS pointing at tables made by gen.py --out"]
fn tables_from_shoal_ring_vectors_dir() {
    let dir = std::path::PathBuf::from(
        std::env::var("SHOAL_RING_VECTORS").expect("set SHOAL_RING_VECTORS"),
    );
    for file in ["memcached.tsv", "models.tsv"] {
        let path = dir.join(file);
        if !path.exists() {
            continue;
        }
        for (col, matched, total) in common::check_table(&path) {
            println!("{file} {col}: {matched}/{total} match");
        }
    }
}
