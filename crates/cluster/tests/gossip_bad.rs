//! Bad gossip input (garbage, packets with the wrong key, truncated payloads) is counted in
//! `shoal_gossip_bad_packets_total` and dropped; the node keeps working. One test in this
//! binary, so the global debugging recorder is ours alone.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use shoal_cluster::{GossipConfig, GossipMembership};

/// Counters since the last call (the debugging recorder's snapshot drains counters).
fn counters(s: &Snapshotter) -> Vec<(CompositeKey, DebugValue)> {
    s.snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect()
}

fn counter(snap: &[(CompositeKey, DebugValue)], name: &str, label: (&str, &str)) -> u64 {
    snap.iter()
        .filter(|(k, ..)| k.key().name() == name)
        .filter(|(k, ..)| {
            k.key()
                .labels()
                .any(|l| l.key() == label.0 && l.value() == label.1)
        })
        .map(|(.., v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_wrong_key_packets_are_counted_and_dropped() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    recorder.install().unwrap();

    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut a = GossipConfig::new(bind, "http://127.0.0.1:30001").fast();
    a.key = Some(b"k".to_vec());
    let a = GossipMembership::start(a).await.unwrap();

    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..3 {
        raw.send_to(b"definitely not gossip", a.local_addr())
            .await
            .unwrap();
    }
    // Right envelope, no tag: a packet from a node without the key.
    raw.send_to(b"SG\x01\x00payload", a.local_addr())
        .await
        .unwrap();
    // Right envelope, a tag that does not verify.
    let mut forged = b"SG\x01\x01".to_vec();
    forged.extend_from_slice(&[7u8; 32]);
    forged.extend_from_slice(b"payload");
    raw.send_to(&forged, a.local_addr()).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut garbage, mut bad_key, mut packets_in) = (0, 0, 0);
    loop {
        let now = counters(&snap);
        garbage += counter(
            &now,
            "shoal_gossip_bad_packets_total",
            ("reason", "garbage"),
        );
        bad_key += counter(
            &now,
            "shoal_gossip_bad_packets_total",
            ("reason", "bad_key"),
        );
        packets_in += counter(&now, "shoal_gossip_packets_total", ("direction", "in"));
        if garbage == 3 && bad_key == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "garbage={garbage} bad_key={bad_key}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(packets_in >= 5, "{packets_in}");

    // Still gossiping: a second keyed node joins it.
    let mut b = GossipConfig::new(bind, "http://127.0.0.1:30002").fast();
    b.key = Some(b"k".to_vec());
    b.seeds = vec![a.local_addr()];
    let b = GossipMembership::start(b).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.current().members.len() != 2 || b.current().members.len() != 2 {
        assert!(Instant::now() < deadline, "the node stopped gossiping");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
