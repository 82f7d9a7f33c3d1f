//! Warm handoff beyond the last ring: the two cases behind the rolling restart's extra
//! origin reads (see crates/cluster/src/handoff.rs and `View::earlier_owner`).
//!
//! - An owner that was not asked for a key before the next membership change: the last
//!   ring says it owned the key itself, so it must look further back.
//! - A key that is warm only on a member that never owned it under any remembered ring
//!   (a former owner's copy, a hot cache): the earlier owner has nothing, the others are
//!   asked.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Counting, GROUP, listeners, value_of};
use shoal_cache::{Group, NeverPromote, Source};
use shoal_cluster::{Cluster, Handoff, PeerServer};
use shoal_ring::Algorithm;

fn owner(members: &[&str], key: &[u8]) -> String {
    shoal_ring::build(Algorithm::Groupcache, members)
        .unwrap()
        .owner(key)
        .unwrap()
        .name
        .clone()
}

/// A key whose owners under the three member lists are the given ones.
fn key_where(cases: &[(&[&str], &str)]) -> Vec<u8> {
    (0..100_000)
        .map(|i| format!("hist-{i}").into_bytes())
        .find(|k| cases.iter().all(|(m, o)| owner(m, k) == *o))
        .unwrap()
}

struct Node {
    cluster: Cluster,
    group: Arc<Group>,
    loads: Counting,
    _server: PeerServer,
}

fn node(url: &str, members: &[&str], listener: tokio::net::TcpListener) -> Node {
    let cluster = Cluster::builder(url)
        .handoff(Handoff {
            warm_time: Duration::from_secs(60),
            peek_timeout: Duration::from_secs(1),
        })
        .build(members)
        .unwrap();
    let loads = Counting::default();
    let group = cluster
        .group(
            Group::builder(GROUP, 16 << 20).promoter(NeverPromote),
            loads.clone(),
        )
        .unwrap();
    let server = cluster.serve_on(listener).unwrap();
    Node {
        cluster,
        group,
        loads,
        _server: server,
    }
}

#[tokio::test]
async fn an_owner_not_asked_before_the_next_change_still_finds_the_key_warm() {
    let (mut ls, urls) = listeners(3, "http").await;
    let (a, b, c) = (urls[0].as_str(), urls[1].as_str(), urls[2].as_str());
    // A held the key while B was away; B came back and owns it, but nobody asked B for it
    // before C left. B's last ring ({A,B,C}) says B owned it: look further back.
    let key = key_where(&[(&[a, c], a), (&[a, b, c], b), (&[a, b], b)]);
    let na = node(a, &[a, c], ls.remove(0));
    let _nc = node(c, &[a, c], ls.remove(1));
    na.group.get(&key).await.unwrap();
    assert_eq!(na.loads.total(), 1);

    let nb = node(b, &[b], ls.remove(0)); // starts alone, then joins
    nb.cluster.set_members(&[a, b, c]).unwrap();
    na.cluster.set_members(&[a, b, c]).unwrap();
    nb.cluster.set_members(&[a, b]).unwrap(); // C leaves before anyone asks B
    na.cluster.set_members(&[a, b]).unwrap();

    let got = nb.group.get_with(&key, Default::default()).await.unwrap();
    assert_eq!(got.value, value_of(&key));
    assert_eq!(got.source, Source::Load, "B got it through its loader");
    assert_eq!(nb.loads.total(), 0, "B peeked at A instead of the origin");
}

#[tokio::test]
async fn a_key_warm_only_on_a_member_that_never_owned_it_is_found_by_asking_the_others() {
    let (mut ls, urls) = listeners(3, "http").await;
    let (a, b, c) = (urls[0].as_str(), urls[1].as_str(), urls[2].as_str());
    // B joins {A,C}: the key was A's, but only C has it (C loaded it while alone).
    let key = key_where(&[(&[a, c], a), (&[a, b, c], b)]);
    let nc = node(c, &[c], ls.remove(2));
    nc.group.get(&key).await.unwrap();
    assert_eq!(nc.loads.total(), 1);
    let na = node(a, &[a, b, c], ls.remove(0));
    nc.cluster.set_members(&[a, b, c]).unwrap();
    let nb = node(b, &[b], ls.remove(0));
    nb.cluster.set_members(&[a, b, c]).unwrap();

    let got = nb.group.get_with(&key, Default::default()).await.unwrap();
    assert_eq!(got.value, value_of(&key));
    assert_eq!(nb.loads.total(), 0, "B found the key on C");
    assert_eq!(na.loads.total(), 0);
}
