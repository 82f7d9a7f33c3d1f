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
