//! `Cluster::remove`: a key removed on one node is gone from every member's memory (the
//! owner's main cache, the others' hot caches, members that just left), over each
//! protocol, and the next get loads it again, once, on the owner; a member that is down or
//! refuses the credentials is reported.

mod common;

use common::{Counting, GROUP, keys, start, value_of};
use shoal_cache::{AlwaysPromote, Group, Source};
use shoal_cluster::{ClusterError, PeerError, Protocol};

#[tokio::test]
async fn a_remove_reaches_every_member_and_the_next_get_loads_once() {
    for protocol in [Protocol::Native, Protocol::Groupcache, Protocol::Grpc] {
        let nodes = start(3, Counting::default, |b| b.protocol(protocol)).await;
        let key = keys("gone-", 100)
            .into_iter()
            .find(|k| nodes[0].cluster.owner(k).as_deref() != Some(nodes[0].url.as_str()))
            .unwrap();
        let owner = nodes
            .iter()
            .position(|n| Some(n.url.as_str()) == nodes[0].cluster.owner(&key).as_deref())
            .unwrap();
        let other = 3 - owner; // neither node 0 nor the owner
        for n in &nodes {
            assert_eq!(
                n.group.get(&key).await.unwrap(),
                value_of(&key),
                "{protocol}"
            );
        }
        assert_eq!(nodes[owner].loader.of(&key), 1, "{protocol}: loaded once");
        assert!(nodes[owner].group.peek(&key).is_some(), "{protocol}");

        let removal = nodes[other].cluster.remove(GROUP, &key).await.unwrap();
        assert!(
            removal.failed.is_empty(),
            "{protocol}: {:?}",
            removal.failed
        );
        let mut told: Vec<&str> = removal.confirmed.iter().map(String::as_str).collect();
        told.sort_unstable();
        let mut expected: Vec<&str> = nodes
            .iter()
            .filter(|n| n.url != nodes[other].url)
            .map(|n| n.url.as_str())
            .collect();
        expected.sort_unstable();
        assert_eq!(told, expected, "{protocol}");
        for (i, n) in nodes.iter().enumerate() {
            assert_eq!(
                n.group.peek(&key),
                None,
                "{protocol}: node {i} still has it"
            );
        }

        let again = nodes[0]
            .group
            .get_with(&key, Default::default())
            .await
            .unwrap();
        assert_eq!((again.value, again.source), (value_of(&key), Source::Peer));
        assert_eq!(
            nodes[owner].loader.of(&key),
            2,
            "{protocol}: loaded again, once"
        );
    }
}

/// Hot caches hold a key only on non-owners; with `AlwaysPromote` each non-owner's get puts
/// it there, and the remove must take it out of each.
#[tokio::test]
async fn a_remove_empties_hot_caches() {
    let nodes = start(3, Counting::default, |b| b).await;
    let extra: Vec<_> = nodes
        .iter()
        .map(|n| {
            n.cluster
                .group(
                    Group::builder("hot", 16 << 20).promoter(AlwaysPromote),
                    n.loader.clone(),
                )
                .unwrap()
        })
        .collect();
    let key = b"promoted".to_vec();
    for g in &extra {
        g.get(&key).await.unwrap();
    }
    let hot_items = |g: &Group| g.stats().hot_items;
    assert_eq!(
        extra.iter().map(|g| hot_items(g)).sum::<u64>(),
        2,
        "both non-owners"
    );
    let removal = nodes[0].cluster.remove("hot", &key).await.unwrap();
    assert_eq!(removal.confirmed.len(), 2);
    assert_eq!(extra.iter().map(|g| hot_items(g)).sum::<u64>(), 0);
    assert!(extra.iter().all(|g| g.peek(&key).is_none()));
}

#[tokio::test]
async fn a_member_that_is_down_is_reported_and_the_rest_still_remove() {
    let mut nodes = start(3, Counting::default, |b| b).await;
    let key = b"k".to_vec();
    for n in &nodes {
        n.group.get(&key).await.unwrap();
    }
    let down = nodes[2].url.clone();
    nodes[2].kill().await;
    let removal = nodes[0].cluster.remove(GROUP, &key).await.unwrap();
    assert_eq!(removal.confirmed, vec![nodes[1].url.clone()]);
    assert_eq!(removal.failed.len(), 1);
    assert_eq!(removal.failed[0].0, down);
    assert!(
        matches!(removal.failed[0].1, PeerError::Connect { .. }),
        "{:?}",
        removal.failed[0].1
    );
    assert!(nodes[0].group.peek(&key).is_none() && nodes[1].group.peek(&key).is_none());

    let unknown = nodes[0].cluster.remove("no-such-group", &key).await;
    assert!(matches!(unknown, Err(ClusterError::UnknownGroup(g)) if g == "no-such-group"));
}

/// A remove needs the same credentials as a fetch: a node with another secret is refused,
/// and the key stays where it was.
#[tokio::test]
async fn a_remove_without_the_secret_is_refused() {
    use shoal_cluster::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = AtomicUsize::new(0);
    let nodes = start(2, Counting::default, |b| {
        let secret = if n.fetch_add(1, Ordering::SeqCst) == 0 {
            "the-secret-of-node-0-ab"
        } else {
            "the-secret-of-node-1-cd"
        };
        b.secret(Secret::new(secret).unwrap())
    })
    .await;
    // Owned by node 1, which loads it into its main cache.
    let key = keys("kept-", 100)
        .into_iter()
        .find(|k| nodes[1].cluster.owner(k).as_deref() == Some(nodes[1].url.as_str()))
        .unwrap();
    nodes[1].group.get(&key).await.unwrap();
    let removal = nodes[0].cluster.remove(GROUP, &key).await.unwrap();
    assert!(removal.confirmed.is_empty());
    assert!(
        matches!(removal.failed[..], [(ref m, PeerError::Unauthorized { .. })] if *m == nodes[1].url),
        "{:?}",
        removal.failed
    );
    assert!(nodes[1].group.peek(&key).is_some());
}

/// With warm handoff, a member that left within the warm time may still be asked for the
/// key by its new owner: the remove reaches it too.
#[tokio::test]
async fn a_remove_reaches_members_that_just_left() {
    let nodes = start(3, Counting::default, |b| {
        b.handoff(shoal_cluster::Handoff::default())
    })
    .await;
    let key = b"left-behind".to_vec();
    let owner = nodes[0].cluster.owner(&key).unwrap();
    let leaver = nodes.iter().position(|n| n.url == owner).unwrap();
    nodes[leaver].group.get(&key).await.unwrap();
    assert!(nodes[leaver].group.peek(&key).is_some());

    // Everyone else drops the owner from its list; it still runs and holds the key.
    let stay: Vec<&str> = nodes
        .iter()
        .filter(|n| n.url != owner)
        .map(|n| n.url.as_str())
        .collect();
    let asker = nodes.iter().position(|n| n.url != owner).unwrap();
    for n in nodes.iter().filter(|n| n.url != owner) {
        n.cluster.set_members(&stay).unwrap();
    }
    let removal = nodes[asker].cluster.remove(GROUP, &key).await.unwrap();
    assert!(removal.failed.is_empty(), "{:?}", removal.failed);
    assert!(
        removal.confirmed.contains(&owner),
        "{:?}",
        removal.confirmed
    );
    assert!(
        nodes[leaver].group.peek(&key).is_none(),
        "the member that left still has it"
    );
}
