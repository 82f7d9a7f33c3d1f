//! `shoal serve --coord ETCD_URL --cluster DIR`: nodes that find each other through a real
//! etcd (Debian's etcd-server on loopback) load each chunk from the origin once.
#![cfg(feature = "etcd")]
// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

mod common;
use common::etcd::{Etcd, available};
use common::origin::{free_port, object, origin, read_and_check, wait_converged};

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
                    "--etcd-ttl",
                    "5s",
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
}
