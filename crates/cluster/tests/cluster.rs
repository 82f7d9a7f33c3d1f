//! Three in-process nodes on loopback, for every protocol: one load per key for the whole
//! cluster, NotFound from the owner is final, a dead owner means a local load, and nodes
//! that disagree about the ring do not wait on each other.

mod common;

use std::time::Duration;

use common::{Counting, MISSING, keys, start, value_of, within};
use shoal_cache::{LoadError, Source};
use shoal_cluster::{Algorithm, Protocol};

const PROTOCOLS: [Protocol; 3] = [Protocol::Native, Protocol::Grpc, Protocol::Groupcache];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_is_loaded_once_in_the_whole_cluster() {
    for protocol in PROTOCOLS {
        let nodes = start(
            3,
            || Counting::slow(Duration::from_millis(20)),
            |b| b.protocol(protocol),
        )
        .await;
        let ks = keys("k", 30);
        // Every node asks for every key at the same time.
        let mut tasks = Vec::new();
        for node in &nodes {
            for k in &ks {
                let (g, k) = (node.group.clone(), k.clone());
                tasks.push(tokio::spawn(async move { (g.get(&k).await, k) }));
            }
        }
        within(20, "concurrent gets", async {
            for t in tasks {
                let (got, k) = t.await.unwrap();
                assert_eq!(got.unwrap(), value_of(&k), "{protocol}");
            }
        })
        .await;
        for k in &ks {
            let owner = nodes[0].cluster.owner(k).unwrap();
            for node in &nodes {
                let expect = usize::from(node.url == owner);
                assert_eq!(
                    node.loader.of(k),
                    expect,
                    "{protocol}: {} loads of {k:?}",
                    node.url
                );
            }
        }
        let total: usize = nodes.iter().map(|n| n.loader.total()).sum();
        assert_eq!(total, ks.len(), "{protocol}");
        // Every node owns something with 30 keys and 3 members.
        assert!(nodes.iter().all(|n| n.loader.total() > 0), "{protocol}");
    }
}

#[tokio::test]
async fn not_found_from_the_owner_is_final() {
    for protocol in PROTOCOLS {
        let nodes = start(3, Counting::default, |b| b.protocol(protocol)).await;
        let asker = &nodes[0];
        let key = (0..100)
            .map(|i| [MISSING, format!("{i}").as_bytes()].concat())
            .find(|k| asker.cluster.owner(k).unwrap() != asker.url)
            .unwrap();
        let owner = nodes
            .iter()
            .find(|n| Some(&n.url) == asker.cluster.owner(&key).as_ref())
            .unwrap();
        let got = asker.group.get(&key).await;
        assert!(
            matches!(got, Err(LoadError::NotFound)),
            "{protocol}: {got:?}"
        );
        assert_eq!(
            asker.loader.of(&key),
            0,
            "{protocol}: the asker must not load"
        );
        assert_eq!(owner.loader.of(&key), 1, "{protocol}");
        assert_eq!(asker.group.stats().peer_errors, 0, "{protocol}");
    }
}

#[tokio::test]
async fn a_dead_owner_means_a_local_load() {
    for protocol in PROTOCOLS {
        let mut nodes = start(3, Counting::default, |b| {
            b.protocol(protocol).fetch_timeout(Duration::from_secs(2))
        })
        .await;
        nodes[2].kill().await;
        let dead = nodes[2].url.clone();
        let ks: Vec<_> = keys("dead", 200)
            .into_iter()
            .filter(|k| nodes[0].cluster.owner(k).unwrap() == dead)
            .take(5)
            .collect();
        assert_eq!(ks.len(), 5);
        within(10, "gets with a dead owner", async {
            for k in &ks {
                let got = nodes[0]
                    .group
                    .get_with(k, Default::default())
                    .await
                    .unwrap();
                assert_eq!(
                    (got.value, got.source),
                    (value_of(k), Source::Load),
                    "{protocol}"
                );
            }
        })
        .await;
        assert_eq!(nodes[0].loader.total(), 5, "{protocol}");
        assert_eq!(nodes[0].group.stats().peer_errors, 5, "{protocol}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disagreeing_rings_do_not_deadlock() {
    for protocol in PROTOCOLS {
        // Same members, different placement: some keys each node thinks the other owns.
        let nodes = common::start_two_rings(protocol).await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let crossed: Vec<_> = keys("x", 200)
            .into_iter()
            .filter(|k| {
                a.cluster.owner(k).unwrap() == b.url && b.cluster.owner(k).unwrap() == a.url
            })
            .take(10)
            .collect();
        assert!(
            crossed.len() >= 5,
            "too few crossed keys: {}",
            crossed.len()
        );
        let mut tasks = Vec::new();
        for k in &crossed {
            for node in [a, b] {
                let (g, k) = (node.group.clone(), k.clone());
                tasks.push(tokio::spawn(async move { g.get(&k).await.map(|v| (v, k)) }));
            }
        }
        within(10, "crossed gets", async {
            for t in tasks {
                let (v, k) = t.await.unwrap().unwrap();
                assert_eq!(v, value_of(&k));
            }
        })
        .await;
        // Each node's peer request was served locally by the other: at most two loads a key.
        for k in &crossed {
            assert!(a.loader.of(k) + b.loader.of(k) <= 2);
        }
    }
}

#[tokio::test]
async fn membership_changes_move_keys() {
    let nodes = start(3, Counting::default, |b| b).await;
    let a = &nodes[0];
    let owned_by_c: Vec<_> = keys("m", 300)
        .into_iter()
        .filter(|k| a.cluster.owner(k).unwrap() == nodes[2].url)
        .take(5)
        .collect();
    a.cluster
        .set_members(&[&nodes[0].url, &nodes[1].url])
        .unwrap();
    assert_eq!(
        a.cluster.members(),
        [nodes[0].url.clone(), nodes[1].url.clone()]
    );
    for k in &owned_by_c {
        assert_ne!(a.cluster.owner(k).unwrap(), nodes[2].url);
        a.group.get(k).await.unwrap();
    }
    assert_eq!(
        nodes[2].loader.total(),
        0,
        "the removed member is no longer asked"
    );
    assert!(a.cluster.set_members(&[]).is_err());
    assert!(a.cluster.set_members(&["http://a:1", "a:1"]).is_err());
    let _ = Algorithm::Groupcache;
}

/// `stale_if_error` across the wire: an owner whose refresh fails answers its peers with its
/// stale value, marked so; an asker whose own loader works loads the key itself, and one
/// whose loader fails too gets the owner's copy (except over the groupcache protocol).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_whose_refresh_fails_answers_with_its_stale_value() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use bytes::Bytes;
    use shoal_cache::{Group, Loaded, loader_fn};
    use shoal_cluster::Cluster;
    use tokio::time::Instant;

    const TTL: Duration = Duration::from_millis(300);
    for protocol in PROTOCOLS {
        let (listeners, urls) = common::listeners(2, "http").await;
        let members: Vec<&str> = urls.iter().map(String::as_str).collect();
        let mut nodes = Vec::new();
        let mut downs = Vec::new();
        for (l, url) in listeners.into_iter().zip(&urls) {
            let cluster = Cluster::builder(url.as_str())
                .protocol(protocol)
                .build(&members)
                .unwrap();
            let origin_down = Arc::new(AtomicBool::new(false));
            downs.push(origin_down.clone());
            let group = cluster
                .group(
                    Group::builder(common::GROUP, 1 << 20).stale_if_error(Duration::from_secs(60)),
                    loader_fn(move |key: Bytes| {
                        let down = origin_down.load(Ordering::SeqCst);
                        async move {
                            if down {
                                return Err(LoadError::loader("origin down", true));
                            }
                            Ok(Loaded::expiring(value_of(&key), Instant::now() + TTL))
                        }
                    }),
                )
                .unwrap();
            let server = cluster.serve_on(l).unwrap();
            nodes.push((cluster, group, server));
        }
        let asker = &nodes[0];
        let mut remote = keys("stale", 200)
            .into_iter()
            .filter(|k| asker.0.owner(k).as_deref() != Some(urls[0].as_str()));
        let (k1, k2) = (remote.next().unwrap(), remote.next().unwrap());
        for k in [&k1, &k2] {
            let got = asker.1.get_with(k, Default::default()).await.unwrap();
            assert_eq!((got.source, got.stale), (Source::Peer, false), "{protocol}");
        }
        tokio::time::sleep(TTL + Duration::from_millis(100)).await;

        // Only the owner's origin fails: its answer is marked stale, and the asker loads.
        downs[1].store(true, Ordering::SeqCst);
        let got = asker.1.get_with(&k1, Default::default()).await.unwrap();
        assert_eq!((got.source, got.stale), (Source::Load, false), "{protocol}");
        assert_eq!(nodes[1].1.stats().stale, 1, "{protocol}: the owner's");

        // Both fail: the owner's stale copy answers. The groupcache protocol cannot mark a
        // value stale, so there the owner answers with the failure instead.
        downs[0].store(true, Ordering::SeqCst);
        let got = asker.1.get_with(&k2, Default::default()).await;
        if protocol == Protocol::Groupcache {
            assert!(got.is_err(), "{protocol}: {got:?}");
            continue;
        }
        let got = got.unwrap();
        assert_eq!(got.value, value_of(&k2), "{protocol}");
        assert_eq!((got.source, got.stale), (Source::Peer, true), "{protocol}");
        // Its expiry crossed the wire as it was (it counts towards the grace here too).
        let expired = got.expires.unwrap();
        assert!(
            expired + Duration::from_millis(50) <= Instant::now(),
            "{protocol}: expired {:?} ago",
            Instant::now() - expired
        );
    }
}
