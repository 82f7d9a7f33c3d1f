//! photosrv's config grammar, its TOML twin, and the errors a bad file gets.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use shoal_router::{Chooser, RouteConfig, RouteError, simpleconf};

const ADVANCED: &str = "\
# photosrv's config/photosrv-advanced.cfg, plus rewrites and quirks
<photosrv>
        <earth>
            <shards>
                    shard2 http://node2 \"http://node2b:81\"
                    Shard1 http://node1 \\
                           http://node1b
            </shards>
        </earth>
        <migration>
            chooser = jump
            <lhr4>
                <shards>
                    shard1,10 http://node1
                    shard2,20 http://node2
                </shards>
            </lhr4>
        </migration>
        <prefix_rewrite>
            /images/hotel/org/      /images/hotel/max500/   # a comment
            /broken/ #just no
            /with\\#hash/ /x/
        </prefix_rewrite>
</photosrv>
";

fn parse(text: &str, dc: &str) -> Result<RouteConfig, RouteError> {
    RouteConfig::from_photosrv(&simpleconf::parse(text, Path::new("photosrv.cfg"))?, dc)
}

#[test]
fn photosrv_advanced_config() {
    let c = parse(ADVANCED, "earth").unwrap();
    assert_eq!(c.primary.chooser, Chooser::Chash);
    let names: Vec<_> = c.primary.shards.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["shard1", "shard2"]);
    assert_eq!(
        c.primary.shards[0].replicas,
        ["http://node1", "http://node1b"]
    );
    assert_eq!(
        c.primary.shards[1].replicas,
        ["http://node2", "\"http://node2b:81\""]
    );
    assert!(c.migration.is_none(), "earth has no migration ring");
    assert_eq!(
        c.rewrites.apply("/images/hotel/org/a.jpg"),
        b"/images/hotel/max500/a.jpg"
    );
    assert_eq!(c.rewrites.apply("/with#hash/a"), b"/x/a");
    assert_eq!(c.dropped_rewrites.len(), 1);

    let m = parse(ADVANCED, "LHR4").unwrap_err();
    assert!(m.to_string().contains("lhr4"), "{m}");
}

#[test]
fn migration_ring_with_weights() {
    let text = ADVANCED
        .replace("<lhr4>", "<earth>")
        .replace("</lhr4>", "</earth>");
    let c = parse(&text, "earth").unwrap();
    let m = c.migration.unwrap();
    assert_eq!(m.chooser, Chooser::Jump);
    assert_eq!(
        m.shards.iter().map(|s| s.weight).collect::<Vec<_>>(),
        [10, 20]
    );
}

#[test]
fn missing_or_empty_dc_is_an_error_not_a_panic() {
    let e = parse(ADVANCED, "").unwrap_err().to_string();
    assert!(e.contains("--dc"), "{e}");
    let e = parse(ADVANCED, "mars").unwrap_err().to_string();
    assert!(e.contains("mars") && e.contains("earth"), "{e}");
}

#[test]
fn malformed_lines_are_named() {
    for (text, line, what) in [
        ("<photosrv>\n<earth\n</photosrv>\n", 2, "unterminated"),
        ("<photosrv>\n</earth>\n", 2, "closes <photosrv>"),
        ("<photosrv>\n<earth>\n", 2, "never closed"),
        ("</photosrv>\n", 1, "closes nothing"),
        ("<photosrv>\nkey <<EOF\nno end\n", 2, "never ends"),
    ] {
        let e = simpleconf::parse(text, Path::new("p.cfg")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("p.cfg:{line}: ")), "{msg}");
        assert!(msg.contains(what), "{msg}");
    }
}

#[test]
fn bad_shards_are_refused() {
    let with = |shards: &str| {
        parse(
            &format!(
                "<photosrv>\nchooser jump\n<e>\n<shards>\n{shards}\n</shards>\n</e>\n</photosrv>\n"
            ),
            "e",
        )
        .unwrap_err()
        .to_string()
    };
    // The shard lines start on line 5 of the file; each error names the file and its line.
    for (shards, line, what) in [
        ("node1 http://a", 5, "must begin with `shard`"),
        ("shardx http://a", 5, "bad shard index"),
        (
            "shard1 http://a\nshard2,heavy http://b",
            6,
            "bad weight \"heavy\"",
        ),
        (
            "shard1 http://a\nshard1 http://b",
            6,
            "shard1 is listed twice (first on line 5)",
        ),
        (
            "shard1 http://a\nshard2 http://c\nshard01 http://b",
            7,
            "shard01 repeats index 1 of shard shard1 (line 5)",
        ),
        ("shard1 http://a\nshard2", 6, "shard2 has no replicas"),
        (
            "shard1,10001 http://a",
            5,
            "bad weight \"10001\" for shard e>shard1: expected 0 to 10000",
        ),
    ] {
        let e = with(shards);
        assert!(
            e.starts_with(&format!("photosrv.cfg:{line}: ")),
            "{shards:?}: {e}"
        );
        assert!(e.contains(what), "{shards:?}: {e}");
    }
    let e = parse("<photosrv>\nchooser ketama\n<e>\n<shards>\nshard1 http://a\n</shards>\n</e>\n</photosrv>\n", "e")
        .unwrap_err()
        .to_string();
    assert!(e.contains("ketama"), "{e}");
}

/// A duplicate shard whose first line is in an included file: the error names that file.
#[test]
fn a_duplicate_from_an_included_file_names_that_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("more.cfg"), "shard1 http://a\n").unwrap();
    let main = dir.path().join("main.cfg");
    std::fs::write(
        &main,
        "<photosrv>\n<e>\n<shards>\ninclude more.cfg\nshard1 http://b\n</shards>\n</e>\n</photosrv>\n",
    )
    .unwrap();
    let e = RouteConfig::load(&main, "e").unwrap_err().to_string();
    assert!(
        e.contains("main.cfg:5: shard shard1 is listed twice (first on "),
        "{e}"
    );
    assert!(e.contains("more.cfg:1)"), "{e}");
}

#[test]
fn yes_no_quotes_and_dollars() {
    let b = simpleconf::parse("a yes\nb = \"no\"\nc \\$HOME\nd = x = y\n", Path::new("x")).unwrap();
    let items: Vec<_> = b.items().map(|(k, v, at)| (k, v, at.line)).collect();
    assert_eq!(
        items,
        [
            ("a", "1", 1),
            ("b", "0", 2),
            ("c", "$HOME", 3),
            ("d", "x = y", 4)
        ]
    );
}

#[test]
fn include_reads_relative_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shards.inc"),
        "shard1 http://a:1\nshard2 http://b:2\n",
    )
    .unwrap();
    let main = dir.path().join("photosrv.cfg");
    std::fs::write(
        &main,
        "<photosrv>\n<earth>\n<shards>\ninclude shards.inc\n</shards>\n</earth>\n</photosrv>\n",
    )
    .unwrap();
    let c = RouteConfig::load(&main, "earth").unwrap();
    assert_eq!(c.primary.shards.len(), 2);
}

#[test]
fn toml_twin_places_like_the_photosrv_file() {
    let toml = r#"
chooser = "jump"
[prefix_rewrite]
"/images/hotel/org/" = "/images/hotel/max500/"
[[dc.earth.shards]]
name = "shard2"
replicas = ["http://node2"]
[[dc.earth.shards]]
name = "shard1"
replicas = ["http://node1", "http://node1b"]
[migration]
chooser = "chash"
[[migration.dc.earth.shards]]
name = "shard1"
weight = 2
replicas = ["http://node1"]
"#;
    let t = RouteConfig::from_toml(toml, "earth").unwrap();
    let p = parse(
        &ADVANCED.replace("<photosrv>\n", "<photosrv>\nchooser jump\n"),
        "earth",
    )
    .unwrap();
    assert_eq!(t.primary.chooser, p.primary.chooser);
    assert_eq!(t.primary.shards[0].name, "shard1");
    assert_eq!(t.rewrites.rules()[0], p.rewrites.rules()[0]);
    assert_eq!(t.migration.unwrap().shards[0].weight, 2);
    let e = RouteConfig::from_toml("chooser = \"jump\"\nshardz = 1\n", "earth").unwrap_err();
    assert!(e.to_string().contains("shardz"), "{e}");
}

/// Replica URLs name storage nodes: scheme and host in any case, the default port written or
/// not, a trailing slash, user info (which photosrv never sent), an IPv6 address in any of its
/// spellings are one node, and one replica wherever they appear. A base path stays part of
/// the node's name, case and all.
#[test]
fn one_node_spelled_many_ways_is_one_replica() {
    let cfg = parse(
        "<photosrv>\n chooser jump\n <e>\n  <shards>\n   \
         shard1 http://127.0.0.1:80 HTTP://Node1.Example:8080/ http://[0:0::1]:8080 http://user@h:1 http://h:2/base/\n  \
         </shards>\n </e>\n <migration>\n  chooser jump\n  <e>\n   <shards>\n    \
         shard1 http://127.0.0.1 http://node1.example:08080 http://[::1]:8080 http://h:1/ http://H:2/base http://h:2/Base\n   \
         </shards>\n  </e>\n </migration>\n</photosrv>\n",
        "e",
    )
    .unwrap();
    let topo = shoal_router::topology::Topology::new(&cfg).unwrap();
    let bases: Vec<&str> = topo.all.iter().map(|r| r.base()).collect();
    assert_eq!(
        bases,
        [
            "http://127.0.0.1:80",
            "http://node1.example:8080",
            "http://[::1]:8080",
            "http://h:1",
            "http://h:2/base",
            "http://h:2/Base",
        ]
    );
    let migration = topo.migration.as_ref().unwrap();
    for (i, r) in topo.primary.replicas[0].iter().enumerate() {
        assert!(std::sync::Arc::ptr_eq(r, &migration.replicas[0][i]), "{i}");
    }
    // A port that is not one is refused, not taken for port 80.
    for bad in ["http://h:99999", "http://h:0", "http://h:8o", "http://:80"] {
        let cfg = parse(
            &format!(
                "<photosrv>\n <e>\n  <shards>\n   shard1 {bad}\n  </shards>\n </e>\n</photosrv>\n"
            ),
            "e",
        )
        .unwrap();
        let e = shoal_router::topology::Topology::new(&cfg)
            .unwrap_err()
            .to_string();
        assert!(e.contains(bad), "{bad}: {e}");
    }
}

/// A shard line that names one node twice is read as naming it once (photosrv ran such
/// files; the router counts distinct nodes toward the write quorum), and the file's line is
/// named in a notice the router logs at start. The TOML twin does the same.
#[test]
fn a_node_named_twice_in_a_shard_counts_once_and_the_line_is_named() {
    let cfg = parse(
        "<photosrv>\n <e>\n  <shards>\n   shard1 http://a:1 http://b:1\n   \
         shard2 http://c:1 HTTP://C:1/ http://d:1 http://c:01\n  </shards>\n </e>\n</photosrv>\n",
        "e",
    )
    .unwrap();
    assert_eq!(cfg.primary.shards[1].replicas, ["http://c:1", "http://d:1"]);
    assert_eq!(
        cfg.duplicate_replicas.len(),
        1,
        "{:?}",
        cfg.duplicate_replicas
    );
    let notice = &cfg.duplicate_replicas[0];
    assert!(notice.starts_with("photosrv.cfg:5: "), "{notice}");
    assert!(
        notice.contains("HTTP://C:1/") && notice.contains("http://c:01"),
        "{notice}"
    );
    let toml = RouteConfig::from_toml(
        "[[dc.e.shards]]\nname = \"shard1\"\nreplicas = [\"http://a:1\", \"http://A:1/\"]\n",
        "e",
    )
    .unwrap();
    assert_eq!(toml.primary.shards[0].replicas, ["http://a:1"]);
    assert_eq!(toml.duplicate_replicas.len(), 1);
}

/// photosrv matched the roster's `host:port` against the replica URL's host as written; a node
/// written without a port (`http://10.0.0.1`) matches a roster line with or without `:80`,
/// and host names match in any case.
#[test]
fn the_roster_matches_a_node_however_its_port_and_host_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster");
    std::fs::write(
        &roster,
        "n1 127.0.0.1:80\nn2 NODE2.example:8080\nn3 127.0.0.3\nn4 [0::1]:9\n",
    )
    .unwrap();
    let cfg = parse(
        "<photosrv>\n <e>\n  <shards>\n   shard1 http://127.0.0.1 http://node2.example:8080 \
         http://127.0.0.3:80 http://[::1]:9 http://127.0.0.5\n  </shards>\n </e>\n</photosrv>\n",
        "e",
    )
    .unwrap();
    let settings = shoal_router::Settings {
        roster: Some(roster),
        ..shoal_router::Settings::default()
    };
    let router = shoal_router::Router::new(&cfg, settings).unwrap();
    let allowed: Vec<(String, bool)> = router.status().rings[0].shards[0]
        .replicas
        .iter()
        .map(|r| (r.url.clone(), r.in_roster))
        .collect();
    assert_eq!(
        allowed,
        [
            ("http://127.0.0.1:80".to_string(), true),
            ("http://node2.example:8080".into(), true),
            ("http://127.0.0.3:80".into(), true),
            ("http://[::1]:9".into(), true),
            ("http://127.0.0.5:80".into(), false),
        ]
    );
}
