//! The full-size cluster test: three `shoal serve` processes joined by gossip, 200
//! concurrent clients spread over them reading the same cold 64 MiB object; the origin must
//! see exactly one range read per chunk.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;
use common::origin::{free_port, object, origin, read_and_check, wait_converged};

const SIZE: usize = 64 << 20;
const CHUNK: usize = 1 << 20;
const CLIENTS: usize = 200;

#[test]
fn two_hundred_clients_one_origin_read_per_chunk() {
    let data = object(SIZE);
    let o = origin(data.clone());
    let origin_url = format!("http://{}/", o.addr);
    let peers: Vec<String> = (0..3)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let start = |me: &str, seeds: Option<&str>| {
        let mut args = vec![
            "--admin-listen",
            "127.0.0.1:0",
            "--origin",
            &origin_url,
            "--self",
            me,
            "--gossip",
            "127.0.0.1:0",
        ];
        if let Some(s) = seeds {
            args.extend_from_slice(&["--seeds", s]);
        }
        common::serve::start(&args, &["admin on", "peers on"])
    };
    let first = start(&peers[0], None);
    let seed = first
        .lines
        .iter()
        .find(|l| l.contains("gossip on"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_owned();
    let nodes = [
        first,
        start(&peers[1], Some(&seed)),
        start(&peers[2], Some(&seed)),
    ];
    let admins: Vec<SocketAddr> = nodes.iter().map(|n| n.admin.unwrap()).collect();
    wait_converged(&admins, &peers, Duration::from_secs(30));

    let began = Instant::now();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let readers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (addr, want) = (addrs[i % addrs.len()], data.clone());
            std::thread::spawn(move || read_and_check(addr, &want))
        })
        .collect();
    let failed: Vec<String> = readers
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.join().unwrap().err().map(|e| format!("client {i}: {e}")))
        .collect();
    let took = began.elapsed();
    eprintln!(
        "{CLIENTS} clients read {} MiB each from 3 nodes in {took:.1?} ({:.0} MiB/s in all)",
        SIZE >> 20,
        (CLIENTS * SIZE) as f64 / (1 << 20) as f64 / took.as_secs_f64()
    );
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    o.seen.assert_one_read_per_chunk(SIZE, CHUNK);
}
