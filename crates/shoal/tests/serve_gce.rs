//! `shoal serve --gce-config cachecluster.ini`: two nodes on 127.0.0.1 and 127.0.0.2 find
//! each other through a local stand-in for the Compute API (gce-cache-cluster's discovery),
//! gossip on the ini's `[cluster] port`, and read each chunk from the origin once.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

mod common;
use common::origin::{free_port, object, origin, read_and_check, wait_converged};

/// Answers every request with `body` as JSON, on a thread that lives as long as the test.
fn compute_api(body: String) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// A UDP port free on both loopback addresses.
fn gossip_port() -> u16 {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.2", port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn gce_discovery_seeds_gossip_and_each_chunk_is_read_once() {
    let port = gossip_port();
    let api = compute_api(
        r#"{"items":[
            {"name":"a","tags":{"items":["cache"]},"networkInterfaces":[{"name":"nic0","networkIP":"127.0.0.1"}]},
            {"name":"b","tags":{"items":["cache"]},"networkInterfaces":[{"name":"nic0","networkIP":"127.0.0.2"}]},
            {"name":"untagged","networkInterfaces":[{"name":"nic0","networkIP":"127.0.0.9"}]}
        ]}"#
        .to_owned(),
    );
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("cachecluster.ini");
    std::fs::write(
        &ini,
        format!(
            "[cache]\nport = 9080\n[cluster]\nport = {port}\n\
             [match]\nproject = p\nzone = z\nnetwork_interface = nic0\ntags = cache\n"
        ),
    )
    .unwrap();
    let data = object(4 << 20);
    let o = origin(data.clone());
    let origin_url = format!("http://{}/", o.addr);
    let endpoint = format!("http://{api}");
    let peers = [
        format!("http://127.0.0.1:{}", free_port()),
        format!("http://127.0.0.2:{}", free_port()),
    ];
    let nodes: Vec<_> = peers
        .iter()
        .zip(["127.0.0.1", "127.0.0.2"])
        .map(|(me, ip)| {
            let gossip = format!("{ip}:{port}");
            common::serve::start(
                &[
                    "--admin-listen",
                    "127.0.0.1:0",
                    "--origin",
                    &origin_url,
                    "--self",
                    me,
                    "--gossip",
                    &gossip,
                    "--gce-config",
                    ini.to_str().unwrap(),
                    "--gce-endpoint",
                    &endpoint,
                    "--gce-metadata",
                    "none",
                ],
                &["admin on", "peers on"],
            )
        })
        .collect();
    let admins: Vec<SocketAddr> = nodes.iter().map(|n| n.admin.unwrap()).collect();
    wait_converged(&admins, &peers, Duration::from_secs(30));
    let readers: Vec<_> = (0..8)
        .map(|i| {
            let (addr, want) = (nodes[i % 2].addr, data.clone());
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

/// A Compute API that does not answer never delays start-up: the node serves at once, alone,
/// and keeps listing in the background.
#[test]
fn an_unreachable_compute_api_does_not_delay_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("cachecluster.ini");
    std::fs::write(
        &ini,
        "[cluster]\nport = 0\n[match]\nproject = p\nzone = z\ntags = cache\n",
    )
    .unwrap();
    let data = object(1 << 20);
    let o = origin(data.clone());
    let origin_url = format!("http://{}/", o.addr);
    let me = format!("http://127.0.0.1:{}", free_port());
    let gossip = format!("127.0.0.1:{}", free_port());
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let node = common::serve::start(
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--origin",
            &origin_url,
            "--self",
            &me,
            "--gossip",
            &gossip,
            "--gce-config",
            ini.to_str().unwrap(),
            "--gce-endpoint",
            &nowhere,
            "--gce-metadata",
            "none",
        ],
        &["admin on", "peers on"],
    );
    read_and_check(node.addr, &data).unwrap();
    wait_converged(&[node.admin.unwrap()], &[me], Duration::from_secs(10));
}
