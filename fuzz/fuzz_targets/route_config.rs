//! shoal route's inputs from files and clients, as arbitrary text: photosrv's config
//! (Config::General) and its TOML twin, the roster file, storage node URLs and request
//! paths. Never a panic; an accepted config builds its rings and every path lands on a
//! shard that has replicas and a weight; a roster admits the nodes it names; a node's
//! canonical name is canonical (parsing it again gives it back); normalisation refuses every
//! `/.`, is idempotent where the module says it is, and what goes upstream decodes back to
//! the routed path.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shoal_router::MigrationState;
use shoal_router::normalize::{
    Rewrites, display_path, encode_path, normalize, normalize_request_path, unescape,
};
use shoal_router::replica::NodeName;
use shoal_router::roster::Roster;
use shoal_router::simpleconf::{self, Node};
use shoal_router::topology::Topology;
use shoal_router::{RouteConfig, placement::MAX_WEIGHT};

/// The file the config claims to be read from: in a directory that does not exist, so a
/// relative `include` (even `../../x`) cannot reach a real file.
const CFG: &str = "/nonexistent-shoal-fuzz/dir/fuzz.cfg";

/// simpleconf's comment rule, to see every key it could read.
fn strip_comment(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'#') => {
                out.push('#');
                chars.next();
            }
            '#' => break,
            c => out.push(c),
        }
    }
    out
}

/// Whether the parser could see an `include` (it reads files): the word anywhere in the
/// text that comments leave, with the spaces, backslashes and line ends that continuation
/// lines remove taken out.
fn may_include(text: &str) -> bool {
    let kept: String = text
        .lines()
        .map(strip_comment)
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\\')
        .collect();
    kept.to_lowercase().contains("include")
}

fn node_name(url: &str) {
    if let Ok(n) = NodeName::parse(url) {
        let again = NodeName::parse(n.as_str());
        assert_eq!(again.as_ref().ok(), Some(&n), "{url:?} -> {n}");
        assert!(n.authority().rsplit_once(':').is_some(), "{n}");
        let _ = n.host();
        let _ = n.path();
    }
}

const PATHS: [&[u8]; 5] = [
    b"/images/hello.jpg",
    b"/",
    b"",
    b"/caf\xe9.jpg",
    b"/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p",
];

fn check_config(cfg: &RouteConfig, paths: &[&[u8]]) {
    check_rewrites(&cfg.rewrites, paths);
    for ring in std::iter::once(&cfg.primary).chain(cfg.migration.as_ref()) {
        assert!(!ring.shards.is_empty());
        assert!(ring.shards.iter().any(|s| s.weight > 0));
        assert!(ring.shards.windows(2).all(|w| w[0].index < w[1].index));
        for s in &ring.shards {
            assert!(!s.replicas.is_empty(), "{s:?}");
            for r in &s.replicas {
                node_name(r);
            }
        }
    }
    // Building a ring with thousands of weighted buckets is slow and proves nothing more.
    let weight = |r: &shoal_router::RingSpec| -> u64 {
        r.shards
            .iter()
            .map(|s| u64::from(s.weight.min(MAX_WEIGHT + 1)))
            .sum()
    };
    if weight(&cfg.primary) + cfg.migration.as_ref().map_or(0, weight) > 2000 {
        return;
    }
    let Ok(topo) = Topology::new(cfg) else { return };
    for state in [
        MigrationState::Old,
        MigrationState::Both,
        MigrationState::New,
    ] {
        for p in paths.iter().chain(&PATHS) {
            let Ok(path) = normalize_request_path(p, &topo.rewrites) else {
                continue;
            };
            for t in topo.targets(&path, state) {
                assert!(!t.replicas.is_empty(), "{t:?}");
                let layer = match t.ring {
                    "migration" => topo.migration.as_ref().expect("a migration ring"),
                    _ => &topo.primary,
                };
                let shard = layer.spec.shards.iter().find(|s| s.name == t.shard);
                let shard = shard.expect("the target is one of the ring's shards");
                assert!(shard.weight > 0, "a path placed on drained shard {t:?}");
            }
        }
    }
}

/// photosrv's rule checks hold for every kept rule, longest prefix first, and a path is
/// rewritten by its longest matching prefix, once.
fn check_rewrites(rewrites: &Rewrites, paths: &[&[u8]]) {
    let rules = rewrites.rules();
    for (i, (p, r)) in rules.iter().enumerate() {
        assert!(p.starts_with('/') && r.starts_with('/'), "{p:?} -> {r:?}");
        assert_eq!(p.ends_with('/'), r.ends_with('/'), "{p:?} -> {r:?}");
        assert!(
            rules[i + 1..]
                .iter()
                .all(|(q, _)| q != p && q.len() <= p.len())
        );
    }
    for path in paths {
        let got = rewrites.apply(path.to_vec());
        match rules.iter().find(|(p, _)| path.starts_with(p.as_bytes())) {
            Some((p, r)) => assert_eq!(got, [r.as_bytes(), &path[p.len()..]].concat()),
            None => assert_eq!(&got, path),
        }
    }
}

fn check_paths(raw: &[u8], rewrites: &Rewrites) {
    let _ = display_path(raw);
    assert_eq!(unescape(encode_path(raw), false).as_deref(), Ok(raw));
    if let Ok(once) = normalize(raw) {
        assert!(!once.windows(2).any(|w| w == b"/."), "{raw:?} -> {once:?}");
        assert!(!once.contains(&b'?'), "{raw:?} -> {once:?}");
        // Idempotent, but for photosrv's quirks: a `%` left after decoding is decoded
        // again, and `//` collapses one pass at a time.
        if !once.contains(&b'%') && !once.windows(2).any(|w| w == b"//") {
            assert_eq!(normalize(&once).as_ref(), Ok(&once), "{raw:?}");
            let upstream = encode_path(&once);
            let none = Rewrites::default();
            assert_eq!(
                normalize_request_path(&upstream, &none).as_ref(),
                Ok(&once),
                "{raw:?} goes upstream as {upstream:?}"
            );
        }
    }
    if let Ok(p) = normalize_request_path(raw, &Rewrites::default()) {
        assert!(!p.windows(2).any(|w| w == b"/."), "{raw:?} -> {p:?}");
    }
    let _ = normalize_request_path(raw, rewrites);
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let (rules, _) = Rewrites::new([("/a/", "/b/"), ("/a/x/", "/c/"), ("/x", "/y")]);
    check_paths(data, &rules);
    for l in &lines {
        check_paths(l, &rules);
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let paths: Vec<&[u8]> = lines.iter().copied().take(8).collect();
    // Rewrite rules, one `prefix replacement` a line.
    let pairs = text
        .lines()
        .take(16)
        .map(|l| l.split_once(' ').unwrap_or((l, "")));
    let (rewrites, dropped) = Rewrites::new(pairs);
    assert_eq!(
        rewrites.rules().len() + dropped.len(),
        text.lines().take(16).count()
    );
    check_rewrites(&rewrites, &paths);

    if !may_include(text)
        && let Ok(root) = simpleconf::parse(text, Path::new(CFG))
    {
        let mut dcs = vec!["earth".to_string()];
        if let Some(top) = root.block("photosrv") {
            for (k, n) in &top.entries {
                if matches!(n, Node::Block(_)) && dcs.len() < 4 {
                    dcs.push(k.clone());
                }
            }
        }
        for dc in &dcs {
            if let Ok(cfg) = RouteConfig::from_photosrv(&root, dc) {
                check_config(&cfg, &paths);
            }
        }
    }
    if let Ok(cfg) = RouteConfig::from_toml(text, "earth") {
        check_config(&cfg, &paths);
    }

    let roster = Roster::parse(text);
    for host in &roster.hosts {
        assert!(roster.allows(host), "{host:?}");
        for scheme in ["http", "https"] {
            // A field that is a `host:port` (no path, query or fragment).
            if !host.contains(['/', '?', '#'])
                && let Ok(n) = NodeName::parse(&format!("{scheme}://{host}"))
            {
                assert!(roster.allows_node(&n), "roster {host:?} refuses {n}");
            }
        }
    }
    for line in text.lines() {
        node_name(line);
        node_name(&format!("http://{line}"));
    }
});
