//! etcd membership against a real etcd 3.4 (Debian's `etcd-server`) on loopback:
//! registration and discovery, etcd stopped (last view kept), restarted (registrations
//! come back), compaction, a value that is not a URL, a revoked lease (registered again)
//! and a graceful leave (dropped at once).
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::etcd::{Etcd, available};
use etcd_client::Client;
use shoal_cluster::{EtcdConfig, EtcdMembership, MemberSet};

fn config(etcd: &Etcd, port: u16) -> EtcdConfig {
    let mut c = EtcdConfig::new(vec![etcd.url()], format!("http://127.0.0.1:{port}"));
    c.prefix = "/test/members".into();
    c.ttl = Duration::from_secs(2);
    c.max_backoff = Duration::from_millis(500);
    c
}

async fn wait_for(what: &str, within: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn urls(set: &Arc<MemberSet>) -> Vec<String> {
    set.members.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_discover_and_survive_etcd_restarts_and_compaction() {
    if !available() {
        return;
    }
    let mut etcd = Etcd::start();
    let a = EtcdMembership::start(config(&etcd, 41001));
    let b = EtcdMembership::start(config(&etcd, 41002));
    let both = ["http://127.0.0.1:41001", "http://127.0.0.1:41002"];
    wait_for("discovery", Duration::from_secs(10), || {
        urls(&a.current()) == both && urls(&b.current()) == both
    })
    .await;

    // A value that is not a URL: counted and ignored.
    let mut client = Client::connect([etcd.url()], None).await.unwrap();
    client
        .put("/test/members/junk", "not a url", None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(urls(&a.current()), both);

    // etcd stopped: the last view stays.
    etcd.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        urls(&a.current()),
        both,
        "last view kept while etcd is down"
    );
    assert_eq!(urls(&b.current()), both);

    // etcd back: a new node registers and everyone sees it (sessions were re-made).
    etcd.restart();
    let c = EtcdMembership::start(config(&etcd, 41003));
    let all = [both[0], both[1], "http://127.0.0.1:41003"];
    wait_for(
        "re-registration after restart",
        Duration::from_secs(15),
        || urls(&a.current()) == all && urls(&b.current()) == all && urls(&c.current()) == all,
    )
    .await;

    // Compaction of the whole history: the watches keep working (or are re-made).
    let mut client = Client::connect([etcd.url()], None).await.unwrap();
    for i in 0..20 {
        client.put(format!("/other/{i}"), "x", None).await.unwrap();
    }
    let rev = client
        .get("/other/0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client.compact(rev, None).await.unwrap();
    drop(c);
    // c's lease (2 s TTL) expires: the others drop it.
    wait_for("expiry after compaction", Duration::from_secs(10), || {
        urls(&a.current()) == both && urls(&b.current()) == both
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_registers_again_and_a_leaving_node_goes_at_once() {
    if !available() {
        return;
    }
    let etcd = Etcd::start();
    // A long TTL: anything seen within a few seconds is not the TTL at work.
    let long = |port| {
        let mut c = config(&etcd, port);
        c.prefix = "/test/leave".into();
        c.ttl = Duration::from_secs(60);
        c
    };
    let a = EtcdMembership::start(long(41011));
    let b = EtcdMembership::start(long(41012));
    let both = ["http://127.0.0.1:41011", "http://127.0.0.1:41012"];
    wait_for("discovery", Duration::from_secs(10), || {
        urls(&a.current()) == both && urls(&b.current()) == both
    })
    .await;

    // Someone revokes B's lease (an operator, or etcd after a long partition): B's key is
    // gone, A drops B, and B registers again under a new lease.
    let mut client = Client::connect([etcd.url()], None).await.unwrap();
    let lease_of = |resp: etcd_client::GetResponse| resp.kvs().first().map(|kv| kv.lease());
    let key_b = "/test/leave/127.0.0.1:41012";
    let lease = lease_of(client.get(key_b, None).await.unwrap()).unwrap();
    client.lease_revoke(lease).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let new_lease = loop {
        let now = lease_of(client.get(key_b, None).await.unwrap());
        if let Some(l) = now.filter(|l| *l != lease) {
            break l;
        }
        assert!(Instant::now() < deadline, "B did not register again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(new_lease, 0);
    wait_for("A sees B again", Duration::from_secs(5), || {
        urls(&a.current()) == both
    })
    .await;

    // A leaves gracefully: its lease is revoked and B drops it at once, not after 60 s.
    a.leave(Duration::from_secs(2)).await;
    wait_for("B drops A", Duration::from_secs(5), || {
        urls(&b.current()) == [both[1]]
    })
    .await;
    assert!(
        client
            .get("/test/leave/127.0.0.1:41011", None)
            .await
            .unwrap()
            .kvs()
            .is_empty()
    );
}

/// chunkproxy's flags on real processes: two nodes with `--coord URL --cluster DIR` find each
/// other through etcd, and a key is loaded once for both.
#[test]
fn processes_join_through_etcd_with_chunkproxy_flags() {
    use common::process::{Guard, free_port, hex, http_get, wait_http};
    use std::net::SocketAddr;
    use std::process::Command;
    if !available() {
        return;
    }
    let etcd = Etcd::start();
    let mut nodes: Vec<(String, SocketAddr, Guard)> = Vec::new();
    for _ in 0..2 {
        let url = format!("http://127.0.0.1:{}", free_port());
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut g = Guard::spawn(
            &url,
            Command::new(env!("CARGO_BIN_EXE_shoal-cluster-node"))
                .args(["--self", &url, "--admin", &admin.to_string()])
                .args([
                    "--coord",
                    &etcd.url(),
                    "--cluster",
                    "procs",
                    "--etcd-ttl",
                    "2",
                ]),
        );
        wait_http(admin, "/health", Duration::from_secs(20), &mut g);
        nodes.push((url, admin, g));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = nodes.iter().all(|(_, admin, _)| {
            let body = http_get(*admin, "/members")
                .map(|(_, b)| b)
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            nodes.iter().all(|(u, ..)| text.contains(u.as_str()))
        });
        if seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not find each other through etcd"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let key = hex(b"through-etcd");
    for (_, admin, _) in &nodes {
        assert_eq!(http_get(*admin, &format!("/get?hex={key}")).unwrap().0, 200);
    }
    let loads: usize = nodes
        .iter()
        .map(|(_, a, _)| {
            let (_, b) = http_get(*a, "/loads").unwrap();
            String::from_utf8(b).unwrap().parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(loads, 1, "one load for the cluster");
}
