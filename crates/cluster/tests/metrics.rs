//! The `shoal_peer_*` metrics, read through a debugging recorder installed for this test
//! binary (one test, so the global recorder is ours alone).

mod common;

use std::time::Duration;

use common::{Counting, GROUP, keys, listeners, start, value_of};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use shoal_cache::Group;
use shoal_cluster::{Cluster, Handoff, Secret};

fn sum(snapshot: &[(CompositeKey, DebugValue)], name: &str, labels: &[(&str, &str)]) -> f64 {
    snapshot
        .iter()
        .filter(|(k, _)| k.key().name() == name)
        .filter(|(k, _)| {
            labels
                .iter()
                .all(|(l, v)| k.key().labels().any(|x| x.key() == *l && x.value() == *v))
        })
        .map(|(_, v)| match v {
            DebugValue::Counter(c) => *c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        })
        .sum()
}

fn snapshot(snapshotter: &Snapshotter) -> Vec<(CompositeKey, DebugValue)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect()
}

#[tokio::test]
async fn peer_requests_auth_failures_and_liveness_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let secret = Secret::new("metrics-test-secret-0123").unwrap();
    let mut nodes = start(2, Counting::default, |b| {
        b.secret(secret.clone())
            .fetch_timeout(Duration::from_secs(2))
    })
    .await;
    let mut fetched_bytes = 0;
    for k in keys("m", 20) {
        nodes[0].group.get(&k).await.unwrap();
        if nodes[0].cluster.owner(&k).unwrap() == nodes[1].url {
            fetched_bytes += value_of(&k).len();
        }
    }
    assert!(fetched_bytes > 0, "some keys are owned by the other node");
    let outsider = Cluster::builder("http://127.0.0.1:1")
        .build(&["http://127.0.0.1:1", &nodes[1].url])
        .unwrap();
    assert!(
        outsider
            .client(&nodes[1].url)
            .unwrap()
            .fetch(GROUP, b"k")
            .await
            .is_err()
    );
    nodes[1].kill().await;
    let dead_key = keys("d", 100)
        .into_iter()
        .find(|k| nodes[0].cluster.owner(k).unwrap() == nodes[1].url)
        .unwrap();
    nodes[0].group.get(&dead_key).await.unwrap();

    let snap = snapshot(&snapshotter);
    let made_ok = sum(
        &snap,
        "shoal_peer_requests_total",
        &[("direction", "made"), ("result", "ok")],
    );
    let served_ok = sum(
        &snap,
        "shoal_peer_requests_total",
        &[("direction", "served"), ("result", "ok")],
    );
    assert!(
        made_ok > 0.0 && made_ok == served_ok,
        "made {made_ok}, served {served_ok}"
    );
    assert_eq!(
        sum(
            &snap,
            "shoal_peer_request_duration_seconds",
            &[("direction", "made")]
        ),
        made_ok + 2.0,
        "one latency sample per request made (2 failed ones included)"
    );
    for direction in ["made", "served"] {
        assert_eq!(
            sum(
                &snap,
                "shoal_peer_value_bytes_total",
                &[("direction", direction)]
            ),
            fetched_bytes as f64,
            "value bytes {direction}"
        );
    }
    assert_eq!(sum(&snap, "shoal_peer_auth_failures_total", &[]), 1.0);
    assert_eq!(
        sum(
            &snap,
            "shoal_peer_requests_total",
            &[("result", "connect_error")]
        ),
        1.0
    );
    assert_eq!(
        sum(&snap, "shoal_peer_up", &[("peer", nodes[1].url.as_str())]),
        0.0
    );
    assert!(sum(&snap, "shoal_peer_members", &[]) >= 2.0);

    // Warm handoff: B joins A; B's peeks at A find the keys A loaded (hits) and not a key
    // nobody loaded (a miss).
    let (mut ls, urls) = listeners(2, "http").await;
    let handoff = Handoff {
        warm_time: Duration::from_secs(60),
        peek_timeout: Duration::from_secs(1),
    };
    let node = |url: &str, members: &[&str]| {
        let c = Cluster::builder(url)
            .handoff(handoff)
            .build(members)
            .unwrap();
        let g = c
            .group(Group::builder("handoff", 16 << 20), Counting::default())
            .unwrap();
        (c, g)
    };
    let (a, a_group) = node(&urls[0], &[&urls[0]]);
    let _a_server = a.serve_on(ls.remove(0)).unwrap();
    let ks = keys("h", 40);
    for k in &ks {
        a_group.get(k).await.unwrap();
    }
    let (b, b_group) = node(&urls[1], &[&urls[0], &urls[1]]);
    let _b_server = b.serve_on(ls.remove(0)).unwrap();
    a.set_members(&[&urls[0], &urls[1]]).unwrap();
    let moved: Vec<_> = ks
        .iter()
        .filter(|k| b.owner(k).as_deref() == Some(urls[1].as_str()))
        .collect();
    assert!(!moved.is_empty());
    for k in &moved {
        b_group.get(k).await.unwrap();
    }
    let fresh = keys("never-loaded-", 100)
        .into_iter()
        .find(|k| b.owner(k).as_deref() == Some(urls[1].as_str()))
        .unwrap();
    b_group.get(&fresh).await.unwrap();
    let snap = snapshot(&snapshotter);
    let group = [("group", "handoff")];
    assert_eq!(
        sum(&snap, "shoal_peer_handoff_hits_total", &group),
        moved.len() as f64
    );
    assert_eq!(sum(&snap, "shoal_peer_handoff_misses_total", &group), 1.0);
}
