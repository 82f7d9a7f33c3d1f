//! Keys written through the proxy land exactly where libmemcached (and nutcracker) put them:
//! the golden tables of `crates/ring/tests/vectors/memcached.tsv`, generated with pylibmc and
//! nutcracker, replayed against real memcached servers on the very addresses of each column
//! (port 11211 on 127.0.0.1-3 included, whose point names omit the port). The nutcracker
//! columns (`ketama-twemproxy[/hash=H][/hash_tag=T]`, `modula-twemproxy/...`) go through a
//! proxy placing keys as twemproxy does with the column's `hash:` and `hash_tag:`.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Mutex;

use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_memcache::route::{Distribution, Twemproxy};
use shoal_ring::{Ketama, Modula, Ring, TwemproxyHash, twemproxy_hash_tag};
use support::Memcached;
use support::shoal::{Client, Shoal};

/// The columns' servers listen on fixed ports: one test at a time starts them.
static PORTS: Mutex<()> = Mutex::new(());

struct Column {
    name: String,
    algo: String,
    members: Vec<String>,
    cells: Vec<usize>,
}

fn table() -> (Vec<Vec<u8>>, Vec<Column>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ring/tests/vectors/memcached.tsv");
    let text = std::fs::read(&path).unwrap();
    let mut cols: Vec<Column> = Vec::new();
    let mut keys = Vec::new();
    let mut header = false;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if header {
            let mut f = line.split(|b| *b == b'\t');
            keys.push(f.next().unwrap().to_vec());
            for c in &mut cols {
                let cell = std::str::from_utf8(f.next().unwrap()).unwrap();
                c.cells.push(cell.parse().unwrap_or(usize::MAX));
            }
        } else if let Some(rest) = line.strip_prefix(b"#col\t") {
            let rest = std::str::from_utf8(rest).unwrap();
            let mut f = rest.splitn(3, '\t');
            let name = f.next().unwrap().to_owned();
            let algo = f.next().unwrap().to_owned();
            let members = f.next().unwrap().split(',').map(str::to_owned).collect();
            cols.push(Column {
                name,
                algo,
                members,
                cells: Vec::new(),
            });
        } else if !line.starts_with(b"#") {
            header = true;
        }
    }
    (keys, cols)
}

/// Keys memcached's ascii protocol can carry.
fn usable(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= 250 && k.iter().all(|b| b.is_ascii_graphic())
}

fn check_column(col: &Column, dist: Distribution, keys: &[Vec<u8>]) {
    let mut servers = Vec::new();
    for m in &col.members {
        let addr = m.split(' ').next().unwrap(); // a twemproxy line may end in a name
        let mut p = addr.split(':');
        let host = p.next().unwrap();
        let port: u16 = p.next().unwrap().parse().unwrap();
        let Some(s) = Memcached::start_on(host, Some(port)) else {
            return;
        };
        servers.push(s);
    }
    let mut cfg = ProxyConfig::new(
        &col.name,
        Servers::List {
            members: col.members.clone(),
            distribution: dist,
        },
    );
    cfg.pool.conns = 1;
    let shoal = Shoal::start(cfg);
    let mut c = shoal.client();
    let mut req = Vec::new();
    let mut n = 0;
    for (i, k) in keys.iter().enumerate() {
        if !usable(k) || col.cells[i] == usize::MAX {
            continue;
        }
        req.extend_from_slice(b"set ");
        req.extend_from_slice(k);
        req.extend_from_slice(b" 0 0 1 noreply\r\nx\r\n");
        n += 1;
    }
    assert!(c.call(&req).is_empty());
    assert!(n > 4000, "{n} keys");
    // Ask each server directly for the keys it should hold.
    let mut direct: Vec<Client> = servers
        .iter()
        .map(|s| Client::connect_to(&s.host, s.port))
        .collect();
    let mut held = vec![0usize; servers.len()];
    for (i, k) in keys.iter().enumerate() {
        if !usable(k) || col.cells[i] == usize::MAX {
            continue;
        }
        let owner = col.cells[i];
        let mut get = b"get ".to_vec();
        get.extend_from_slice(k);
        get.extend_from_slice(b"\r\n");
        let reply = direct[owner].call(&get);
        assert!(
            reply.starts_with(b"VALUE "),
            "{}: key {:?} is not on {} as the golden table says",
            col.name,
            String::from_utf8_lossy(k),
            col.members[owner]
        );
        held[owner] += 1;
    }
    let total: usize = held.iter().sum();
    let mut stored = 0;
    for d in &mut direct {
        let stats = String::from_utf8(d.call(b"stats\r\n")).unwrap();
        let items: usize = stats
            .lines()
            .find_map(|l| l.strip_prefix("STAT curr_items "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        stored += items;
    }
    assert_eq!(stored, total, "{}: a key landed twice or nowhere", col.name);
    eprintln!(
        "{}: {total} keys placed as the golden table says: {held:?}",
        col.name
    );
}

#[test]
fn keys_land_where_libmemcached_puts_them() {
    if !Memcached::available() {
        return;
    }
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let (keys, cols) = table();
    for (name, dist) in [
        ("ketama", Distribution::Ketama),
        ("ketama_w112", Distribution::Ketama),
        ("ketama_11211", Distribution::Ketama),
        ("ketama_11211_w123", Distribution::Ketama),
        ("compat", Distribution::KetamaCompat),
        ("modula_11211", Distribution::Modula),
        ("twemproxy_w112", Distribution::Ketama),
    ] {
        let col = cols.iter().find(|c| c.name == name).unwrap();
        check_column(col, dist, &keys);
    }
}

/// A column's twemproxy placement, from its algorithm (`ketama-twemproxy` alone is `hash: md5`,
/// the hash those columns were generated with): the distribution, and whether it is modula.
fn twemproxy_of(algo: &str) -> Option<(Distribution, bool)> {
    let mut parts = algo.split('/');
    let modula = match parts.next().unwrap() {
        "ketama-twemproxy" => false,
        "modula-twemproxy" => true,
        _ => return None,
    };
    let mut t = Twemproxy {
        hash: TwemproxyHash::Md5,
        hash_tag: None,
    };
    for p in parts {
        match p.split_once('=').unwrap() {
            ("hash", h) => t.hash = h.parse().unwrap(),
            ("hash_tag", tag) => t.hash_tag = Some(tag.as_bytes().try_into().unwrap()),
            other => panic!("unknown column option {other:?} in {algo}"),
        }
    }
    let dist = if modula {
        Distribution::TwemproxyModula(t)
    } else {
        Distribution::TwemproxyKetama(t)
    };
    Some((dist, modula))
}

/// Every nutcracker column: all twelve hashes, weights, names, modula, and hash tags.
#[test]
fn keys_land_where_nutcracker_puts_them() {
    if !Memcached::available() {
        return;
    }
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let (keys, cols) = table();
    let mut seen = 0;
    let mut tagged = 0;
    for col in &cols {
        let Some((dist, modula)) = twemproxy_of(&col.algo) else {
            continue;
        };
        let t = dist.twemproxy().unwrap();
        if let Some(tag) = t.hash_tag {
            // The column is a real test of the tag: many of its keys would land elsewhere if
            // the whole key were hashed.
            let m: Vec<&str> = col.members.iter().map(String::as_str).collect();
            let ring: Box<dyn Ring> = if modula {
                Box::new(Modula::twemproxy(&m, t.hash).unwrap())
            } else {
                Box::new(Ketama::twemproxy_with(&m, t.hash).unwrap())
            };
            let moved = keys
                .iter()
                .enumerate()
                .filter(|(i, k)| usable(k) && col.cells[*i] != usize::MAX)
                .filter(|(i, k)| {
                    let whole = ring.owner_index(k);
                    whole != Some(col.cells[*i])
                        && whole != ring.owner_index(twemproxy_hash_tag(k, tag))
                })
                .count();
            assert!(
                moved > 50,
                "{}: only {moved} keys test the hash tag",
                col.name
            );
            tagged += 1;
        }
        check_column(col, dist, &keys);
        seen += 1;
    }
    assert!(
        seen >= 25 && tagged >= 3,
        "{seen} nutcracker columns, {tagged} with a tag"
    );
}
