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
use common::origin::{PATH, free_port, get, object, origin, read_and_check, wait_converged};

#[test]
fn two_nodes_join_through_etcd_and_load_each_chunk_once() {
    if !available() {
        return;
    }
    let etcd = Etcd::start();
    let data = object(6 << 20);
    let o = origin(data.clone());
    let origin_url = format!("http://{}/", o.addr);
    let coord = etcd.url();
    let peers: Vec<String> = (0..2)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let nodes: Vec<_> = peers
        .iter()
        .map(|me| {
            common::serve::start(
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
