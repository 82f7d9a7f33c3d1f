//! `DELETE /cache/<path>` on `shoal serve`'s admin port: an object changed at the origin, or
//! created after a "not found" was remembered, is seen at once instead of after `meta_ttl`
//! or `negative_ttl`, on a single node with a disk tier and across a static cluster.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;
use common::origin::free_port;
use common::serve::Serve;

/// `METHOD path` over HTTP/1.1: the status, the head and the body.
fn call(addr: SocketAddr, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    (head[9..12].parse().unwrap(), head, raw[end + 4..].to_vec())
}

fn content_length(head: &str) -> u64 {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head}"))
}

fn purge(admin: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = call(admin, "DELETE", &format!("/cache{path}"));
    (status, serde_json::from_slice(&body).unwrap())
}

/// Metadata and "not found" trusted for an hour: only a purge makes the node ask again.
const TRUST: [&str; 4] = ["--meta-ttl", "1h", "--negative-ttl", "1h"];

#[test]
fn a_purge_forgets_metadata_in_memory_and_on_disk_and_a_remembered_not_found() {
    let origin = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(origin.path().join("a.txt"), "first").unwrap();
    let mut args = vec![
        "--admin-listen",
        "127.0.0.1:0",
        "--origin",
        origin.path().to_str().unwrap(),
        "--dir",
        cache.path().to_str().unwrap(),
    ];
    args.extend(TRUST);
    let s = common::serve::start(&args, &["admin on"]);
    let admin = s.admin.unwrap();

    let (status, head, _) = call(s.addr, "HEAD", "/a.txt");
    assert_eq!((status, content_length(&head)), (200, 5), "{head}");
    std::fs::write(origin.path().join("a.txt"), "second version").unwrap();
    let (_, head, _) = call(s.addr, "HEAD", "/a.txt");
    assert_eq!(content_length(&head), 5, "the metadata is trusted: {head}");

    let (status, body) = purge(admin, "/a.txt");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "a.txt");
    assert_eq!(body["in_memory"], true);
    // The metadata was on disk too: had only memory forgotten it, the disk tier would
    // bring the old size back.
    let (_, head, _) = call(s.addr, "HEAD", "/a.txt");
    assert_eq!(content_length(&head), 14, "{head}");
    assert_eq!(call(s.addr, "GET", "/a.txt").2, b"second version");

    assert_eq!(call(s.addr, "GET", "/b.txt").0, 404);
    std::fs::write(origin.path().join("b.txt"), "late").unwrap();
    assert_eq!(
        call(s.addr, "GET", "/b.txt").0,
        404,
        "not found is remembered"
    );
    let (status, body) = purge(admin, "//b.txt");
    assert_eq!((status, &body["path"]), (200, &"b.txt".into()), "{body}");
    assert_eq!(call(s.addr, "GET", "/b.txt").2, b"late");

    let (status, body) = purge(admin, "/never-asked.txt");
    assert_eq!((status, &body["in_memory"]), (200, &false.into()), "{body}");

    let (status, body) = purge(admin, "/x/%2e%2e/a.txt");
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("traversal"),
        "{body}"
    );
    assert_eq!(call(admin, "GET", "/cache/a.txt").0, 405);
    for empty in ["/cache", "/cache/", "/cache//"] {
        let (status, _, body) = call(admin, "DELETE", empty);
        assert_eq!(status, 400, "{empty}");
        assert!(
            String::from_utf8_lossy(&body).contains("no object path"),
            "{empty}"
        );
    }
}

/// `--purge-from off` turns purging off (403, saying so); a bad value is refused at start.
#[test]
fn purging_can_be_turned_off() {
    let origin = tempfile::tempdir().unwrap();
    let dir = origin.path().to_str().unwrap();
    let args = ["--admin-listen", "127.0.0.1:0", "--origin", dir];
    let s = common::serve::start(
        &[&args[..], &["--purge-from", "off"]].concat(),
        &["admin on"],
    );
    let (status, body) = purge(s.admin.unwrap(), "/a.txt");
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("purging is off"),
        "{body}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args([&args[..], &["--purge-from", "everyone"]].concat())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("purge_from") && err.contains("loopback, any or off"),
        "{err}"
    );
}

#[test]
fn a_purge_on_one_node_reaches_every_member() {
    let origin = tempfile::tempdir().unwrap();
    let files: Vec<String> = (0..10).map(|i| format!("/f{i}.txt")).collect();
    for f in &files {
        std::fs::write(origin.path().join(&f[1..]), "old").unwrap();
    }
    let peers: Vec<String> = (0..2)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let nodes: Vec<Serve> = peers
        .iter()
        .map(|me| {
            let mut args = vec![
                "--admin-listen",
                "127.0.0.1:0",
                "--origin",
                origin.path().to_str().unwrap(),
            ];
            args.extend(TRUST);
            let list = peers.join(",");
            args.extend(["--peers", &list, "--self", me]);
            common::serve::start(&args, &["admin on", "peers on"])
        })
        .collect();
    // Each file's metadata on its owner, and, asked for often enough, in the other's hot
    // cache.
    for f in &files {
        for n in &nodes {
            for _ in 0..3 {
                let (status, head, _) = call(n.addr, "HEAD", f);
                assert_eq!((status, content_length(&head)), (200, 3), "{f}: {head}");
            }
        }
    }
    for f in &files {
        std::fs::write(origin.path().join(&f[1..]), "new!").unwrap();
    }
    for f in &files {
        let (status, body) = purge(nodes[0].admin.unwrap(), f);
        assert_eq!(status, 200, "{f}: {body}");
        assert_eq!(
            body["members_confirmed"],
            serde_json::json!([peers[1]]),
            "{body}"
        );
        assert_eq!(body["members_failed"], serde_json::json!([]), "{body}");
    }
    for f in &files {
        for (i, n) in nodes.iter().enumerate() {
            let (_, head, _) = call(n.addr, "HEAD", f);
            assert_eq!(content_length(&head), 4, "node {i}, {f}: {head}");
        }
    }

    // A member that is down is named, and the purge is not reported as done.
    let mut nodes = nodes;
    drop(nodes.pop());
    let (status, body) = purge(nodes[0].admin.unwrap(), &files[0]);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["members_failed"][0]["member"], peers[1], "{body}");
    assert_eq!(body["members_confirmed"], serde_json::json!([]), "{body}");
}
