//! `shoal serve` as a static cluster: three real processes in front of one counting HTTP
//! origin, on loopback.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::Ordering;

mod common;
use common::origin::{PATH, free_port, get, metric, object, origin};
use common::serve::Serve as Node;

/// Starts a clustered `shoal serve` and waits until its client and peer ports listen.
fn start(args: &[String]) -> Node {
    let mut all = vec!["--admin-listen", "127.0.0.1:0"];
    all.extend(args.iter().map(String::as_str));
    common::serve::start(&all, &["admin on", "peers on"])
}

#[test]
fn three_nodes_load_each_chunk_from_the_origin_once() {
    let data = object(8 << 20);
    let o = origin(data.clone());
    let peers: Vec<String> = (0..3)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let nodes: Vec<Node> = peers
        .iter()
        .map(|me| {
            start(&[
                "--chunk-size".into(),
                "1MiB".into(),
                "--origin".into(),
                format!("http://{}/", o.addr),
                "--peers".into(),
                peers.join(","),
                "--self".into(),
                me.clone(),
            ])
        })
        .collect();

    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let clients: Vec<_> = (0..30)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            std::thread::spawn(move || get(addr, PATH, ""))
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let (status, body) = c.join().unwrap();
        assert_eq!(status, 200, "client {i}");
        assert!(
            body == data,
            "client {i}: body of {} bytes differs",
            body.len()
        );
    }

    o.seen.assert_one_read_per_chunk(data.len(), 1 << 20);
    let heads = o.seen.heads.load(Ordering::SeqCst);
    assert!((1..=3).contains(&heads), "{heads} HEADs");
    // Peer metrics of a static cluster are on /metrics (their handles are made when the
    // cluster is built, before the admin port exists).
    let sum = |labels: &[&str]| -> f64 {
        nodes
            .iter()
            .map(|n| metric(n.admin.unwrap(), "shoal_peer_requests_total", labels))
            .sum()
    };
    let made = sum(&["direction=\"made\"", "result=\"ok\""]);
    let served = sum(&["direction=\"served\"", "result=\"ok\""]);
    assert!(made > 0.0 && made == served, "made {made}, served {served}");
    drop(nodes);
}

#[test]
fn self_not_in_peers_is_one_error_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "serve",
            "--origin",
            "http://127.0.0.1:1/",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--peers",
            "http://127.0.0.1:7071,http://127.0.0.1:7072",
            "--self",
            "http://127.0.0.1:7073",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("shoal: error: ")
            && err.lines().count() == 1
            && err.contains("\"http://127.0.0.1:7073\" is not in the peer list"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing was bound or printed");

    // --pooladdr without a matching --poolpeers entry is the same error.
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "serve",
            "--origin",
            "http://127.0.0.1:1/",
            "--poolpeers",
            "127.0.0.1:7071",
            "--pooladdr",
            "127.0.0.1:7072",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("shoal: error: ") && err.contains("not in the peer list"),
        "{err}"
    );
}
