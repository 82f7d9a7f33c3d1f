//! Three `shoal-cluster-node` processes on loopback, over each protocol: one load per key
//! across processes under concurrent gets from every node,
//! a killed owner's keys are loaded by whoever asks, and a bad member list is refused at
//! start-up with a clear message.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{Guard, free_port, hex, http_get, wait_http};
use common::{keys, value_of};

const NODE: &str = env!("CARGO_BIN_EXE_shoal-cluster-node");

struct Proc {
    admin: SocketAddr,
    guard: Guard,
}

fn start(n: usize, protocol: &str) -> Vec<Proc> {
    let urls: Vec<String> = (0..n)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let peers = urls.join(",");
    let mut procs: Vec<Proc> = urls
        .iter()
        .map(|url| {
            let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let guard = Guard::spawn(
                url,
                Command::new(NODE)
                    .args(["--self", url, "--peers", &peers, "--protocol", protocol])
                    .arg("--admin")
                    .arg(admin.to_string()),
            );
            Proc { admin, guard }
        })
        .collect();
    for p in &mut procs {
        wait_http(p.admin, "/health", Duration::from_secs(20), &mut p.guard);
    }
    procs
}

fn get(p: &Proc, key: &[u8]) -> (u16, Vec<u8>) {
    http_get(p.admin, &format!("/get?hex={}", hex(key))).expect("the node answers")
}

fn loads(p: &Proc) -> usize {
    let (_, body) = http_get(p.admin, "/loads").expect("the node answers");
    String::from_utf8(body).unwrap().parse().unwrap()
}

#[test]
fn three_processes_load_each_key_once_and_survive_a_dead_owner() {
    for protocol in ["native", "grpc", "groupcache"] {
        let mut procs = start(3, protocol);
        let ks = keys("proc-", 30);
        // Four clients per node at once, each through every key from its own starting
        // point: the same key is missed on several nodes at the same time.
        let admins: Vec<SocketAddr> = procs.iter().map(|p| p.admin).collect();
        let clients: Vec<_> = (0..admins.len() * 4)
            .map(|c| {
                let (admin, ks) = (admins[c % admins.len()], ks.clone());
                std::thread::spawn(move || {
                    for i in 0..ks.len() {
                        let k = &ks[(i + c * 7) % ks.len()];
                        let got = http_get(admin, &format!("/get?hex={}", hex(k)));
                        assert_eq!(
                            got,
                            Some((200, value_of(k).to_vec())),
                            "{protocol} via {admin}"
                        );
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        assert_eq!(
            procs.iter().map(loads).sum::<usize>(),
            ks.len(),
            "{protocol}"
        );
        let owned: Vec<usize> = procs.iter().map(loads).collect();
        assert!(
            owned.iter().all(|&n| n > 0),
            "{protocol}: every node owns some keys: {owned:?}"
        );

        // Kill the third node: its keys are now loaded by the node that asks.
        let dead = procs.pop().unwrap();
        let dead_loads = owned[2];
        drop(dead);
        let before = loads(&procs[0]);
        for k in &ks {
            assert_eq!(get(&procs[0], k), (200, value_of(k).to_vec()), "{protocol}");
        }
        assert!(
            loads(&procs[0]) <= before + dead_loads,
            "{protocol}: only the dead node's keys are loaded again"
        );
        // NotFound crosses processes too.
        assert_eq!(get(&procs[1], b"missing/x").0, 404, "{protocol}");
    }
}

#[test]
fn a_node_not_in_its_peer_list_refuses_to_start() {
    let out = Command::new(NODE)
        .args([
            "--self",
            "http://127.0.0.1:1",
            "--peers",
            "http://127.0.0.1:2,http://127.0.0.1:3",
            "--admin",
            "127.0.0.1:4",
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not in the peer list"), "{err}");
}
