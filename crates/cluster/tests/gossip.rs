//! SWIM gossip over real UDP on loopback, with fast timings (`GossipConfig::fast`: probe
//! every 200 ms, 100 ms probe RTT, 600 ms suspicion).
//!
//! Stated times: 5 nodes converge within 5 s (typically well under 1 s); a crashed node is
//! marked down by every other node within 5 s (bound: 5 × 200 ms until probed + 100 ms +
//! 600 ms suspicion + gossip, about 2 s); a node that leaves is dropped within 1 s.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shoal_cluster::{GossipConfig, GossipMembership, MemberState, Membership};

fn config(n: usize, seeds: Vec<SocketAddr>, key: Option<&[u8]>) -> GossipConfig {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut c = GossipConfig::new(bind, format!("http://127.0.0.1:{}", 20000 + n)).fast();
    c.seeds = seeds;
    c.key = key.map(<[u8]>::to_vec);
    c
}

async fn cluster(n: usize, key: Option<&[u8]>) -> Vec<GossipMembership> {
    let first = GossipMembership::start(config(0, vec![], key))
        .await
        .unwrap();
    let seed = first.local_addr();
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(
            GossipMembership::start(config(i, vec![seed], key))
                .await
                .unwrap(),
        );
    }
    nodes
}

/// Poll until every node in `nodes` sees exactly `want` members, or panic after `within`.
async fn converge(nodes: &[&GossipMembership], want: usize, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if nodes.iter().all(|n| n.current().members.len() == want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "no convergence on {want} members within {within:?}: {:?}",
            nodes
                .iter()
                .map(|n| n.current().members.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_then_detect_a_crash() {
    let mut nodes = cluster(5, None).await;
    let took = converge(&nodes.iter().collect::<Vec<_>>(), 5, Duration::from_secs(5)).await;
    eprintln!("5 nodes converged in {took:?}");
    let first = nodes[0].current();
    assert!(
        nodes.iter().all(|n| n.current().members == first.members),
        "same view everywhere"
    );

    // Crash: drop the task (no leave message).
    let dead = nodes.pop().unwrap();
    let dead_url = "http://127.0.0.1:20004";
    drop(dead);
    let took = converge(&nodes.iter().collect::<Vec<_>>(), 4, Duration::from_secs(5)).await;
    eprintln!("crash detected by all 4 in {took:?}");
    for n in &nodes {
        assert!(!n.current().members.iter().any(|m| m == dead_url));
        let st = n.states();
        let s = st.iter().find(|i| i.url == dead_url).map(|i| i.state);
        assert_eq!(s, Some(MemberState::Down), "{st:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_is_dropped_at_once() {
    let nodes = cluster(3, Some(b"shared-gossip-key")).await;
    converge(&nodes.iter().collect::<Vec<_>>(), 3, Duration::from_secs(5)).await;
    nodes[2].leave(Duration::from_secs(1)).await;
    // Far less than a suspicion cycle would take (probing + 600 ms).
    let took = converge(&[&nodes[0], &nodes[1]], 2, Duration::from_secs(1)).await;
    eprintln!("leave seen by both in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_key_never_joins() {
    let nodes = cluster(2, Some(b"right")).await;
    converge(&nodes.iter().collect::<Vec<_>>(), 2, Duration::from_secs(5)).await;
    let outsider = GossipMembership::start(config(9, vec![nodes[0].local_addr()], Some(b"wrong")))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(outsider.current().members.len(), 1);
    assert!(nodes.iter().all(|n| n.current().members.len() == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_seeds_do_not_delay_start_and_are_retried() {
    // A seed that is not there yet: the node starts at once, alone.
    let later = SocketAddr::from(([127, 0, 0, 1], shoal_testkit::free_port()));
    let start = Instant::now();
    let node = GossipMembership::start(config(1, vec![later], None))
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(node.current().members, ["http://127.0.0.1:20001"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The seed comes up on that port: the retry finds it.
    let mut c = config(0, vec![], None);
    c.bind = later;
    let seed = GossipMembership::start(c).await.unwrap();
    converge(&[&node, &seed], 2, Duration::from_secs(15)).await;
}
