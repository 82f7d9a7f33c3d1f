//! `shoal serve --coord ETCD_URL --cluster DIR`: nodes that find each other through a real
//! etcd (Debian's etcd-server on loopback) load each chunk from the origin once.
#![cfg(feature = "etcd")]
// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

mod common;
use common::etcd::{Etcd, available};
use common::origin::{
    PATH, free_port, get, metric, object, origin, read_and_check, wait_converged, wait_until,
};

#[test]
fn two_nodes_join_through_etcd_and_load_each_chunk_once() {
    if !available() {
        return;
    }
    let mut etcd = Etcd::start();
    let data = object(6 << 20);
    let o = origin(data.clone());
    let origin_url = format!("http://{}/", o.addr);
    let coord = etcd.url();
    let peers: Vec<String> = (0..2)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let log_dir = tempfile::tempdir().unwrap();
    let log0 = log_dir.path().join("node0.log");
    let nodes: Vec<_> = peers
        .iter()
        .enumerate()
        .map(|(i, me)| {
            let log = if i == 0 {
                std::process::Stdio::from(std::fs::File::create(&log0).unwrap())
            } else {
                std::process::Stdio::null()
            };
            common::serve::start_logging_to(
                &[
                    "--admin-listen",
                    "127.0.0.1:0",
                    "--origin",
                    &origin_url,
                    "--self",
                    me,
                    "--coord",
                    &coord,
                    "--cluster",
                    "shoal-test",
                    // Long: a member seen gone within seconds left, it did not expire.
                    "--etcd-ttl",
                    "60s",
                ],
                &["admin on", "peers on"],
                log,
            )
        })
        .collect();
    let admins: Vec<SocketAddr> = nodes.iter().map(|n| n.admin.unwrap()).collect();
    wait_converged(&admins, &peers, Duration::from_secs(30));

    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let readers: Vec<_> = (0..10)
        .map(|i| {
            let (addr, want) = (addrs[i % addrs.len()], data.clone());
            std::thread::spawn(move || read_and_check(addr, &want))
        })
        .collect();
    for (i, r) in readers.into_iter().enumerate() {
        if let Err(e) = r.join().unwrap() {
            panic!("client {i}: {e}");
        }
    }
    o.seen.assert_one_read_per_chunk(data.len(), 1 << 20);
    let members = |admin| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&get(admin, "/members", "").1).unwrap();
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["url"].as_str().map(str::to_owned))
            .collect()
    };
    let mut sorted = peers.clone();
    sorted.sort();

    // A value that is not a peer URL, written twice: counted each time, logged once,
    // and the members stay as they are.
    let bad = ["shoal_membership_bad_values_total", "source=\"etcd\""];
    etcd.put("/shoal-test/junk", "not a url");
    etcd.put("/shoal-test/junk", "still not a url");
    wait_until("junk counted", Duration::from_secs(10), || {
        metric(admins[0], bad[0], &bad[1..]) >= 2.0
    });
    assert_eq!(members(admins[0]), sorted);
    let log = std::fs::read_to_string(&log0).unwrap();
    assert_eq!(
        log.matches("not a peer URL").count(),
        1,
        "logged once: {log}"
    );

    // etcd down: both nodes keep serving with the last member set, and count the errors.
    etcd.stop();
    wait_until("etcd errors counted", Duration::from_secs(20), || {
        metric(admins[0], "shoal_etcd_errors_total", &[]) > 0.0
    });
    for addr in &addrs {
        read_and_check(*addr, &data).unwrap();
    }
    assert_eq!(members(admins[0]), sorted, "the last view, kept");
    assert_eq!(members(admins[1]), sorted);
    o.seen.assert_one_read_per_chunk(data.len(), 1 << 20);

    // etcd back: the sessions reconnect and both registrations are there again.
    etcd.restart();
    wait_until("reconnected", Duration::from_secs(20), || {
        admins
            .iter()
            .all(|a| metric(*a, "shoal_etcd_reconnects_total", &[]) > 0.0)
    });
    wait_until("both registered again", Duration::from_secs(20), || {
        members(admins[0]) == sorted && members(admins[1]) == sorted
    });

    // Graceful leave: a reply in flight on node 1 when it gets SIGTERM still completes,
    // and node 0 drops node 1 at once (its lease is revoked), not after the 60 s TTL.
    let mut nodes = nodes;
    let mut s = std::net::TcpStream::connect(addrs[1]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {PATH} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 16 << 10];
    let n = s.read(&mut first).unwrap();
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first[..n.min(64)])
    );
    let left = std::time::Instant::now();
    nodes[1].sigterm();
    let mut reply = first[..n].to_vec();
    s.read_to_end(&mut reply).unwrap();
    assert!(nodes[1].wait_exit(Duration::from_secs(20)), "a clean exit");
    let body_at = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        reply[body_at..] == data[..],
        "the in-flight reply completed ({} of {} bytes)",
        reply.len() - body_at,
        data.len()
    );
    loop {
        let v: serde_json::Value =
            serde_json::from_slice(&get(admins[0], "/members", "").1).unwrap();
        let urls: Vec<&str> = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["url"].as_str())
            .collect();
        if urls == [peers[0].as_str()] {
            break;
        }
        assert!(
            left.elapsed() < Duration::from_secs(10),
            "node 1 still listed: {urls:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An etcd that does not answer never delays start-up: the node serves at once, alone, and
/// keeps trying in the background (counting the failures).
#[test]
fn an_unreachable_etcd_does_not_delay_start_up() {
    let data = object(1 << 20);
    let o = origin(data.clone());
    let origin_url = format!("http://{}/", o.addr);
    let me = format!("http://127.0.0.1:{}", free_port());
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let node = common::serve::start(
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--origin",
            &origin_url,
            "--self",
            &me,
            "--coord",
            &nowhere,
            "--cluster",
            "shoal-test",
        ],
        &["admin on", "peers on"],
    );
    read_and_check(node.addr, &data).unwrap();
    let admin = node.admin.unwrap();
    wait_until("etcd errors counted", Duration::from_secs(20), || {
        metric(admin, "shoal_etcd_errors_total", &[]) > 0.0
    });
    read_and_check(node.addr, &data).unwrap();
}
