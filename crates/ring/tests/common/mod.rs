//! Reading the vector tables in `tests/vectors/` (written by `scripts/ring-vectors/gen.py`,
//! or by `tests/backwards_compat.rs` for our own output).

// Test helpers: a panic here is the test failing, with the message saying why.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use shoal_ring::{
    Chash, GroupcacheRing, Jump, Ketama, KetamaCompat, KeyHash, LibvbucketKetama, Modula, Ring,
    TwemproxyHash, twemproxy_hash_tag,
};

/// One column of a table: an algorithm over members, and the expected cell per key.
#[derive(Debug)]
pub struct Column {
    pub name: String,
    pub algo: String,
    pub members: Vec<String>,
    pub cells: Vec<String>,
}

#[derive(Debug)]
pub struct Table {
    pub keys: Vec<Vec<u8>>,
    pub columns: Vec<Column>,
}

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
}

/// Parses `#col\tname\talgo\tm1,m2,...` lines, a `key\t...` header and `key\tcell...` rows.
pub fn read_table(path: &Path) -> Table {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut columns: Vec<Column> = Vec::new();
    let mut keys = Vec::new();
    let mut header_seen = false;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // Comments and column lines come before the header; a key may start with '#'.
        if header_seen {
            let mut f = line.split(|&b| b == b'\t');
            keys.push(f.next().unwrap().to_vec());
            for c in &mut columns {
                c.cells
                    .push(std::str::from_utf8(f.next().unwrap()).unwrap().to_owned());
            }
        } else if let Some(col) = line.strip_prefix(b"#col\t") {
            let col = std::str::from_utf8(col).unwrap();
            let mut f = col.splitn(3, '\t');
            let (name, algo, members) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            columns.push(Column {
                name: name.into(),
                algo: algo.into(),
                members: members.split(',').map(str::to_owned).collect(),
                cells: Vec::new(),
            });
        } else if !line.starts_with(b"#") {
            header_seen = true;
        }
    }
    assert!(!keys.is_empty(), "{}: no rows", path.display());
    Table { keys, columns }
}

/// A ring that cuts keys with twemproxy's `hash_tag:` before placing them, as nutcracker's
/// `server_pool_idx` does.
#[derive(Debug)]
struct HashTagged {
    inner: Box<dyn Ring>,
    tag: [u8; 2],
}

impl Ring for HashTagged {
    fn owner(&self, key: &[u8]) -> Option<&shoal_ring::Member> {
        self.inner.owner(twemproxy_hash_tag(key, self.tag))
    }
    fn members(&self) -> &[shoal_ring::Member] {
        self.inner.members()
    }
    fn owners(&self, key: &[u8], n: usize) -> Vec<&shoal_ring::Member> {
        self.inner.owners(twemproxy_hash_tag(key, self.tag), n)
    }
}

/// The ring a column's algorithm names, and how many owners a cell lists. An algorithm is a
/// base name and `/option=value`s: `owners=N` (cells list N owners), and for the twemproxy
/// bases `hash=NAME` (nutcracker's `hash:`, md5 when absent) and `hash_tag=XY`.
pub fn ring_for(algo: &str, members: &[String]) -> (Box<dyn Ring>, Option<usize>) {
    let m: Vec<&str> = members.iter().map(String::as_str).collect();
    let mut parts = algo.split('/');
    let base = parts.next().unwrap();
    let (mut owners, mut hash, mut tag) = (None, TwemproxyHash::Md5, None);
    for opt in parts {
        match opt.split_once('=').unwrap() {
            ("owners", n) => owners = Some(n.parse().unwrap()),
            ("hash", h) => hash = h.parse().unwrap(),
            ("hash_tag", t) => tag = Some(<[u8; 2]>::try_from(t.as_bytes()).unwrap()),
            (k, _) => panic!("unknown option {k} in algorithm {algo}"),
        }
    }
    let ring: Box<dyn Ring> = match base {
        "ketama" => Box::new(Ketama::new(&m).unwrap()),
        "ketama-twemproxy" => Box::new(Ketama::twemproxy_with(&m, hash).unwrap()),
        "modula-twemproxy" => Box::new(Modula::twemproxy(&m, hash).unwrap()),
        "ketama-compat" => Box::new(KetamaCompat::new(&m).unwrap()),
        "ketama-compat-oaat" => Box::new(KetamaCompat::with_hash(&m, KeyHash::OneAtATime).unwrap()),
        "modula" => Box::new(Modula::new(&m).unwrap()),
        "libvbucket-ketama" => Box::new(LibvbucketKetama::new(&m).unwrap()),
        "groupcache" => Box::new(GroupcacheRing::new(&m).unwrap()),
        "galaxycache" => Box::new(GroupcacheRing::galaxycache(&m).unwrap()),
        "chash" => Box::new(Chash::new(&m).unwrap()),
        "jump" => Box::new(Jump::new(&m).unwrap()),
        "vbucket" => {
            Box::new(shoal_ring::VBucketMap::from_json(&vbucket_json(members, 1024)).unwrap())
        }
        other => shoal_ring::build(other.parse().unwrap(), &m).unwrap(),
    };
    let ring = match tag {
        Some(tag) => Box::new(HashTagged { inner: ring, tag }),
        None => ring,
    };
    (ring, owners)
}

/// What the ring says for `key`, in the table's cell format.
pub fn cell(ring: &dyn Ring, owners: Option<usize>, key: &[u8]) -> String {
    match owners {
        Some(n) => ring
            .owner_indices(key, n)
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        None => ring
            .owner_index(key)
            .map_or_else(|| "-".to_owned(), |i| i.to_string()),
    }
}

/// Compares every column of a table; returns (matches, total) per column, panicking with the
/// first few mismatches if any.
pub fn check_table(path: &Path) -> Vec<(String, usize, usize)> {
    let t = read_table(path);
    let mut report = Vec::new();
    for c in &t.columns {
        let (ring, owners) = ring_for(&c.algo, &c.members);
        let mut bad = Vec::new();
        for (k, want) in t.keys.iter().zip(&c.cells) {
            let got = cell(ring.as_ref(), owners, k);
            if &got != want {
                bad.push(format!(
                    "{:?}: want {want}, got {got}",
                    String::from_utf8_lossy(k)
                ));
            }
        }
        assert!(
            bad.is_empty(),
            "{}: column {} ({}): {} of {} keys differ, e.g. {:?}",
            path.display(),
            c.name,
            c.algo,
            bad.len(),
            t.keys.len(),
            &bad[..bad.len().min(5)]
        );
        report.push((c.name.clone(), t.keys.len(), t.keys.len()));
    }
    report
}

/// A deterministic vBucket map over `members` for tests: `vbuckets` entries, one replica,
/// master `vb % n`, replica `(vb + 1) % n`.
pub fn vbucket_json(members: &[String], vbuckets: usize) -> String {
    let n = members.len();
    let rows: Vec<String> = (0..vbuckets)
        .map(|vb| format!("[{},{}]", vb % n, (vb + 1) % n))
        .collect();
    let servers: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    format!(
        r#"{{"numReplicas":1,"serverList":[{}],"vBucketMap":[{}]}}"#,
        servers.join(","),
        rows.join(",")
    )
}
