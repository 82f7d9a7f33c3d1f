//! Groups with peers (in-process fakes): the get algorithm across members, and loop safety.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{GroupPeer, PrefixRoute, ScriptedPeer, all_to, calls, counting_loader, value_of};
use shoal_cache::{
    AlwaysPromote, FetchMode, GetOptions, Group, LoadError, Loaded, NeverPromote, Peer, Source,
};
use tokio::time::Instant;

const MIB: u64 = 1 << 20;
const SEC: Duration = Duration::from_secs(1);

fn regular() -> GetOptions {
    GetOptions::default()
}

#[tokio::test]
async fn a_key_owned_elsewhere_comes_from_the_peer_not_the_loader() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", 64 * MIB)
        .promoter(NeverPromote)
        .build(loader);
    let peer = ScriptedPeer::serving();
    g.set_peers(Arc::new(PrefixRoute {
        prefix: b"remote/",
        peer: peer.clone(),
    }));

    let got = g.get_with(b"remote/1", regular()).await.unwrap();
    assert_eq!(
        (got.source, got.value),
        (Source::Peer, value_of(b"remote/1"))
    );
    assert_eq!(calls(&n), 0);
    // Not promoted, and never put in the main cache: the next get asks the peer again.
    g.get(b"remote/1").await.unwrap();
    assert_eq!(peer.fetches(), 2);
    // A key this node owns is loaded locally.
    assert_eq!(
        g.get_with(b"local/1", regular()).await.unwrap().source,
        Source::Load
    );
    assert_eq!(peer.fetches(), 2);
    let s = g.stats();
    assert_eq!(
        (s.peer_loads, s.loads, s.main_items, s.hot_items),
        (2, 1, 1, 0)
    );
}

#[tokio::test]
async fn not_found_from_the_peer_is_final() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    let peer = ScriptedPeer::new(|_| Err(LoadError::NotFound));
    g.set_peers(all_to(peer.clone()));
    assert!(g.get(b"k").await.unwrap_err().is_not_found());
    assert_eq!(calls(&n), 0, "no local load after the owner said not found");
    let s = g.stats();
    assert_eq!((s.not_found, s.peer_errors, s.loads), (1, 0, 0));
}

#[tokio::test]
async fn a_failing_peer_is_counted_and_the_key_loaded_locally() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    let peer = ScriptedPeer::new(|_| Err(LoadError::peer("connection refused", true)));
    g.set_peers(all_to(peer.clone()));
    let got = g.get_with(b"k", regular()).await.unwrap();
    assert_eq!((got.source, got.value), (Source::Load, value_of(b"k")));
    assert_eq!(calls(&n), 1);
    // Stored in the main cache: the fallback does not ask the failing peer again.
    assert_eq!(
        g.get_with(b"k", regular()).await.unwrap().source,
        Source::MainCache
    );
    assert_eq!(peer.fetches(), 1);
    assert_eq!(g.stats().peer_errors, 1);
}

#[tokio::test]
async fn local_only_and_peek_never_ask_a_peer() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    let peer = ScriptedPeer::serving();
    g.set_peers(all_to(peer.clone()));
    let peek = g.get_with(b"k", GetOptions::new(FetchMode::Peek)).await;
    assert!(peek.unwrap_err().is_not_found());
    let local = g
        .get_with(b"k", GetOptions::new(FetchMode::LocalOnly))
        .await
        .unwrap();
    assert_eq!(local.source, Source::Load);
    assert_eq!((peer.fetches(), calls(&n)), (0, 1));
}

#[tokio::test]
async fn peers_can_be_swapped_and_cleared() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB)
        .promoter(NeverPromote)
        .build(loader);
    let (a, b) = (ScriptedPeer::serving(), ScriptedPeer::serving());
    g.set_peers(all_to(a.clone()));
    g.get(b"k1").await.unwrap();
    g.set_peers(all_to(b.clone()));
    g.get(b"k1").await.unwrap();
    g.clear_peers();
    g.get(b"k1").await.unwrap();
    assert_eq!((a.fetches(), b.fetches(), calls(&n)), (1, 1, 1));
}

#[tokio::test]
async fn two_in_process_nodes_load_each_key_once_at_its_owner() {
    let (loader_a, loads_a) = counting_loader(Duration::ZERO);
    let (loader_b, loads_b) = counting_loader(Duration::ZERO);
    let a = Group::builder("chunks", MIB)
        .promoter(NeverPromote)
        .build(loader_a);
    let b = Group::builder("chunks", MIB)
        .promoter(NeverPromote)
        .build(loader_b);
    // Keys starting with "b/" belong to b; the rest to a. Both nodes agree.
    a.set_peers(Arc::new(PrefixRoute {
        prefix: b"b/",
        peer: Arc::new(GroupPeer {
            id: "b".into(),
            group: b.clone(),
        }),
    }));
    for _ in 0..3 {
        assert_eq!(a.get(b"b/x").await.unwrap(), value_of(b"b/x"));
        assert_eq!(a.get(b"a/x").await.unwrap(), value_of(b"a/x"));
    }
    assert_eq!((calls(&loads_a), calls(&loads_b)), (1, 1));
    assert_eq!(
        b.stats().main_hits,
        2,
        "the owner served repeats from memory"
    );
    assert_eq!(a.stats().peer_loads, 3);
}

#[tokio::test(start_paused = true)]
async fn members_that_disagree_on_the_owner_do_not_deadlock() {
    // a thinks b owns every key and b thinks a does (a ring change in progress). Both get
    // the same key at once: each Regular flight forwards to the other, which must serve it
    // LocalOnly in a separate flight rather than wait on its own forwarding flight.
    let (loader_a, loads_a) = counting_loader(SEC);
    let (loader_b, loads_b) = counting_loader(SEC);
    let a = Group::builder("g", MIB).build(loader_a);
    let b = Group::builder("g", MIB).build(loader_b);
    let to_b: Arc<dyn Peer> = Arc::new(GroupPeer {
        id: "b".into(),
        group: b.clone(),
    });
    let to_a: Arc<dyn Peer> = Arc::new(GroupPeer {
        id: "a".into(),
        group: a.clone(),
    });
    a.set_peers(all_to(to_b));
    b.set_peers(all_to(to_a));
    let (ra, rb) = tokio::time::timeout(60 * SEC, async { tokio::join!(a.get(b"k"), b.get(b"k")) })
        .await
        .expect("no distributed deadlock");
    assert_eq!((ra.unwrap(), rb.unwrap()), (value_of(b"k"), value_of(b"k")));
    assert_eq!((calls(&loads_a), calls(&loads_b)), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn peer_expiry_is_capped_and_respected() {
    let (loader, _) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB)
        .max_ttl(10 * SEC, Duration::ZERO)
        .promoter(AlwaysPromote)
        .build(loader);
    let peer =
        ScriptedPeer::new(|key| Ok(Loaded::expiring(value_of(key), Instant::now() + 3600 * SEC)));
    g.set_peers(all_to(peer.clone()));
    let got = g.get_with(b"k", regular()).await.unwrap();
    assert_eq!(got.expires, Some(Instant::now() + 10 * SEC));
    assert_eq!(
        g.get_with(b"k", regular()).await.unwrap().source,
        Source::HotCache
    );
    tokio::time::advance(10 * SEC).await;
    assert_eq!(
        g.get_with(b"k", regular()).await.unwrap().source,
        Source::Peer
    );
    assert_eq!(peer.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_gets_of_a_remote_key_make_one_peer_request() {
    let (loader, _) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    let peer = ScriptedPeer::slow(SEC, |key| Ok(Loaded::new(value_of(key))));
    g.set_peers(all_to(peer.clone()));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.get(b"k").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), value_of(b"k"));
    }
    assert_eq!(peer.fetches(), 1);
    assert_eq!(g.stats().loads_joined, 99);
}

#[tokio::test(start_paused = true)]
async fn an_owner_loads_once_when_its_callers_and_its_peers_ask_together() {
    // Regression: a Regular get of an owned key and a peer's LocalOnly request for it ran
    // in separate flights, so the owner loaded the key twice.
    let (loader, n) = counting_loader(SEC);
    let g = Group::builder("g", MIB).build(loader);
    let (own, served) = tokio::join!(
        g.get_with(b"k", regular()),
        g.get_with(b"k", GetOptions::new(FetchMode::LocalOnly)),
    );
    assert_eq!(
        (own.unwrap().value, served.unwrap().value),
        (value_of(b"k"), value_of(b"k"))
    );
    assert_eq!(calls(&n), 1);
}
