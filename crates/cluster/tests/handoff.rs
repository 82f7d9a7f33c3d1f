//! Warm handoff: a node joining the ring peeks at each key's previous owner before loading,
//! and so does the new owner of a key whose owner left (scale-down).
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::time::Duration;

use common::{Counting, GROUP, keys, listeners, start, value_of};
use shoal_cache::{Group, NeverPromote, Source};
use shoal_cluster::{Cluster, Handoff, Protocol};

async fn joining_node_takes_over_warm(protocol: Protocol, warm_time: Duration) -> (usize, usize) {
    let (mut ls, urls) = listeners(2, "http").await;
    let (a_url, b_url) = (urls[0].as_str(), urls[1].as_str());
    let handoff = Handoff {
        warm_time,
        peek_timeout: Duration::from_secs(1),
    };
    // A runs alone and fills its cache.
    let a = Cluster::builder(a_url)
        .protocol(protocol)
        .handoff(handoff)
        .build(&[a_url])
        .unwrap();
    let a_loads = Counting::default();
    let a_group = a
        .group(Group::builder(GROUP, 16 << 20), a_loads.clone())
        .unwrap();
    let _a_server = a.serve_on(ls.remove(0)).unwrap();
    let ks = keys("h", 40);
    for k in &ks {
        a_group.get(k).await.unwrap();
    }
    // B joins; A learns about B.
    let b = Cluster::builder(b_url)
        .protocol(protocol)
        .handoff(handoff)
        .build(&[a_url, b_url])
        .unwrap();
    let b_loads = Counting::default();
    let b_group = b
        .group(
            Group::builder(GROUP, 16 << 20).promoter(NeverPromote),
            b_loads.clone(),
        )
        .unwrap();
    let _b_server = b.serve_on(ls.remove(0)).unwrap();
    a.set_members(&[a_url, b_url]).unwrap();

    let moved: Vec<_> = ks
        .iter()
        .filter(|k| b.owner(k).as_deref() == Some(b_url))
        .collect();
    assert!(moved.len() >= 5, "too few keys moved: {}", moved.len());
    for k in &moved {
        let got = b_group.get_with(k, Default::default()).await.unwrap();
        assert_eq!((got.value, got.source), (value_of(k), Source::Load));
    }
    // Now in B's main cache either way.
    for k in &moved {
        assert_eq!(
            b_group
                .get_with(k, Default::default())
                .await
                .unwrap()
                .source,
            Source::MainCache
        );
    }
    (moved.len(), b_loads.total())
}

#[tokio::test]
async fn a_joining_owner_peeks_at_the_previous_owner() {
    for protocol in [Protocol::Native, Protocol::Grpc] {
        let (moved, loads) = joining_node_takes_over_warm(protocol, Duration::from_secs(60)).await;
        assert!(moved > 0);
        assert_eq!(
            loads, 0,
            "{protocol}: every moved key came from the previous owner"
        );
    }
}

#[tokio::test]
async fn no_peeks_after_the_warm_time_or_over_groupcache() {
    let (moved, loads) = joining_node_takes_over_warm(Protocol::Native, Duration::ZERO).await;
    assert_eq!(loads, moved, "warm time over: every moved key is loaded");
    let (moved, loads) =
        joining_node_takes_over_warm(Protocol::Groupcache, Duration::from_secs(60)).await;
    assert_eq!(
        loads, moved,
        "groupcache cannot peek: every moved key is loaded"
    );
}

#[tokio::test]
async fn a_bad_peek_timeout_is_refused() {
    let e = Cluster::builder("http://127.0.0.1:1")
        .handoff(Handoff {
            warm_time: Duration::from_secs(1),
            peek_timeout: Duration::from_micros(10),
        })
        .build(&["http://127.0.0.1:1"])
        .unwrap_err();
    assert!(e.to_string().contains("handoff peek timeout"), "{e}");
}

#[tokio::test]
async fn the_new_owner_asks_a_member_that_just_left() {
    let handoff = Handoff {
        warm_time: Duration::from_secs(60),
        peek_timeout: Duration::from_secs(1),
    };
    let nodes = start(3, Counting::default, |b| b.handoff(handoff)).await;
    let leaving = &nodes[2];
    // The leaving member loads its own keys; nobody else has them.
    let ks: Vec<_> = keys("s", 120)
        .into_iter()
        .filter(|k| leaving.cluster.owner(k).as_deref() == Some(leaving.url.as_str()))
        .collect();
    assert!(
        ks.len() >= 10,
        "too few keys on the leaving member: {}",
        ks.len()
    );
    for k in &ks {
        assert_eq!(leaving.group.get(k).await.unwrap(), value_of(k));
    }
    assert_eq!(leaving.loader.total(), ks.len());
    // It leaves the ring but still answers peers while it drains.
    let stay = [nodes[0].url.as_str(), nodes[1].url.as_str()];
    nodes[0].cluster.set_members(&stay).unwrap();
    nodes[1].cluster.set_members(&stay).unwrap();
    for k in &ks {
        for node in &nodes[..2] {
            assert_eq!(node.group.get(k).await.unwrap(), value_of(k));
        }
    }
    assert_eq!(
        nodes[0].loader.total() + nodes[1].loader.total(),
        0,
        "every key came from the member that left"
    );
    assert_eq!(
        leaving.loader.total(),
        ks.len(),
        "and it loaded nothing again"
    );
}
