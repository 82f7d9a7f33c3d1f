//! The `shoal route`, `--explain` and `shoal repair` commands against real nginx WebDAV nodes
//! (2 shards × 3 replicas): a PUT through the router with one replica down lands where
//! `--explain` says and is journalled; `shoal repair --journal` then completes the replica
//! that missed it, and `shoal repair --list` (with `--dry-run` first) copies a file found on
//! one replica only to the others.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use common::route::{Route, request};
use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};

fn shoal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run shoal")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn explain_route_and_repair_from_the_journal_and_by_listing() {
    if !nginx_or_skip("route_cli") {
        return;
    }
    let nodes: Vec<Node> = (0..6).map(|_| Node::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("photosrv.conf");
    let urls = |r: std::ops::Range<usize>| nodes[r].iter().map(Node::url).collect::<Vec<_>>();
    std::fs::write(
        &cfg,
        photosrv_config("jump", &[urls(0..3), urls(3..6)], None),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();

    // --explain names the shard and its replicas.
    let path = "/photos/2026/a.jpg";
    let out = stdout(&shoal(&[
        "route",
        "-c",
        cfg_s,
        "--dc",
        "test",
        "--explain",
        path,
    ]));
    let line = out
        .lines()
        .find(|l| l.contains("\tshard"))
        .expect("a ring line");
    let shard = if line.contains("\tshard1\t") { 0 } else { 3 };
    let replicas = &nodes[shard..shard + 3];
    for r in replicas {
        assert!(line.contains(&r.url()), "{line}");
    }
    assert!(out.contains("key\tphotos/2026/a.jpg"), "{out}");

    // A PUT with one replica of that shard down: quorum (2 of 3), the miss journalled,
    // and the file is exactly where --explain said.
    let journal = dir.path().join("journal");
    let body = b"jpeg bytes, or so".repeat(1000);
    let mut replicas: Vec<Node> = Vec::new();
    let mut nodes = nodes;
    for _ in 0..3 {
        replicas.push(nodes.remove(shard));
    }
    let others = nodes;
    replicas[2].stop();
    {
        let r = Route::start(
            &cfg,
            &[
                "--health-interval",
                "0",
                "--journal",
                journal.to_str().unwrap(),
            ],
        );
        assert_eq!(request(r.front, "PUT", path, &body).0, 201);
    }
    assert!(replicas[0].has(path) && replicas[1].has(path));
    assert!(!replicas[2].has(path));
    assert!(others.iter().all(|n| !n.has(path)), "only on its own shard");

    // `shoal repair --journal`: the replica that missed the write gets it.
    replicas[2].restart();
    let j = journal.to_str().unwrap();
    let out = stdout(&shoal(&[
        "repair",
        "-c",
        cfg_s,
        "--dc",
        "test",
        "--journal",
        j,
    ]));
    assert!(
        out.contains(&format!("copy\t{}", replicas[2].url())),
        "{out}"
    );
    assert_eq!(replicas[2].read(path).as_deref(), Some(&body[..]));

    // A file that only one replica has: `--list --dry-run` says what it would copy and
    // copies nothing; `--list` copies it.
    let lone = "/lone/b.txt";
    std::fs::create_dir_all(replicas[0].root().join("lone")).unwrap();
    std::fs::write(replicas[0].root().join("lone/b.txt"), b"only here").unwrap();
    let out = stdout(&shoal(&[
        "repair",
        "-c",
        cfg_s,
        "--dc",
        "test",
        "--list",
        "--dry-run",
    ]));
    for r in &replicas[1..] {
        assert!(
            out.contains(&format!("would copy\t{}\t{lone}", r.url())),
            "{out}"
        );
        assert!(!r.has(lone), "a dry run copies nothing");
    }
    let out = stdout(&shoal(&["repair", "-c", cfg_s, "--dc", "test", "--list"]));
    assert!(!out.contains("failed"), "{out}");
    for r in &replicas[1..] {
        assert_eq!(r.read(lone).as_deref(), Some(&b"only here"[..]));
    }
}

/// `shoal repair --list --cleanup` follows the ring of the migration state it is given. With a
/// `<migration>` ring configured and no `--migration-state`, it took the state to be `old`
/// and cleaned the new ring's nodes of every file, while the routers served the new ring: it
/// must refuse instead.
#[test]
fn cleanup_with_a_migration_ring_needs_the_migration_state() {
    if !nginx_or_skip("route_cli cleanup") {
        return;
    }
    let (old, new) = (Node::start(), Node::start());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("photosrv.cfg");
    std::fs::write(
        &cfg,
        photosrv_config(
            "jump",
            &[vec![old.url()]],
            Some(&[vec![old.url()], vec![new.url()]]),
        ),
    )
    .unwrap();
    let files: Vec<String> = (0..10).map(|i| format!("/n/{i}.jpg")).collect();
    std::fs::create_dir_all(new.root().join("n")).unwrap();
    for f in &files {
        std::fs::write(new.root().join(f.trim_start_matches('/')), f).unwrap();
    }
    let cfg_s = cfg.to_str().unwrap();
    let o = shoal(&["repair", "-c", cfg_s, "--dc", "test", "--list", "--cleanup"]);
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--migration-state"), "{err}");
    for f in &files {
        assert!(new.has(f), "{f} cleaned off the new ring's node");
    }
    // With the state the routers run, the clean-up goes ahead.
    let state = dir.path().join("state");
    std::fs::write(&state, "msNewConfig").unwrap();
    let st = state.to_str().unwrap();
    let out = stdout(&shoal(&[
        "repair",
        "-c",
        cfg_s,
        "--dc",
        "test",
        "--migration-state",
        st,
        "--list",
        "--cleanup",
    ]));
    for f in &files {
        assert!(new.has(f) || old.has(f), "{f} lost: {out}");
    }
}
