//! Hot-cache promotion with the default promoter, under paused time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{ScriptedPeer, all_to, counting_loader};
use shoal_cache::{GetOptions, Group, Loaded, Probabilistic, Source};
use tokio::time::advance;

const SEC: Duration = Duration::from_secs(1);
const VALUE: usize = 2000;

/// A group whose hot cache holds exactly two of the peer's 2000-byte values, and a peer
/// that owns every key.
fn two_slot_hot_cache() -> (Arc<Group>, Arc<ScriptedPeer>) {
    let (loader, _) = counting_loader(Duration::ZERO);
    // hot = 40_000 / 8 = 5000 bytes; each value costs 2000 + key + 192.
    let g = Group::builder("g", 40_000)
        .max_entry_bytes(2500)
        .build(loader);
    let peer = ScriptedPeer::new(|_| Ok(Loaded::new(Bytes::from(vec![9u8; VALUE]))));
    g.set_peers(all_to(peer.clone()));
    (g, peer)
}

async fn source(g: &Arc<Group>, key: &[u8]) -> Source {
    g.get_with(key, GetOptions::default())
        .await
        .expect("get")
        .source
}

#[tokio::test(start_paused = true)]
async fn a_first_fetch_is_not_promoted_a_repeated_one_is() {
    let (g, peer) = two_slot_hot_cache();
    // galaxycache would promote the very first fetch into an empty hot cache (0 >= 0).
    assert_eq!(source(&g, b"a").await, Source::Peer);
    assert_eq!(g.stats().hot_items, 0);
    advance(SEC / 10).await;
    assert_eq!(source(&g, b"a").await, Source::Peer);
    assert_eq!(g.stats().promotions, 1);
    assert_eq!(source(&g, b"a").await, Source::HotCache);
    assert_eq!(peer.fetches(), 2);
    let s = g.stats();
    assert_eq!((s.hot_hits, s.hot_items, s.main_items), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn fetches_spread_beyond_the_idle_window_do_not_promote() {
    let (g, _) = two_slot_hot_cache();
    for _ in 0..3 {
        assert_eq!(source(&g, b"a").await, Source::Peer);
        advance(61 * SEC).await;
    }
    assert_eq!(g.stats().promotions, 0);
}

#[tokio::test(start_paused = true)]
async fn cold_keys_do_not_push_out_hot_ones() {
    let (g, peer) = two_slot_hot_cache();
    for key in [b"a", b"b"] {
        source(&g, key).await;
        source(&g, key).await;
        assert_eq!(source(&g, key).await, Source::HotCache);
    }
    // a and b are popular: 50 hits each within the next second.
    for _ in 0..50 {
        advance(SEC / 50).await;
        source(&g, b"a").await;
        source(&g, b"b").await;
    }
    advance(SEC).await;
    // c is requested twice, five seconds apart: 0.2 requests/s, far colder than a and b.
    assert_eq!(source(&g, b"c").await, Source::Peer);
    advance(5 * SEC).await;
    assert_eq!(source(&g, b"c").await, Source::Peer);
    assert_eq!(source(&g, b"c").await, Source::Peer, "c was not promoted");
    assert_eq!(source(&g, b"a").await, Source::HotCache);
    assert_eq!(source(&g, b"b").await, Source::HotCache);
    assert_eq!(g.stats().promotions, 2);

    // Once a and b go idle their rates read as zero, and a new key may take a slot.
    advance(61 * SEC).await;
    source(&g, b"d").await;
    advance(SEC / 10).await;
    source(&g, b"d").await;
    assert_eq!(source(&g, b"d").await, Source::HotCache);
    let s = g.stats();
    assert_eq!((s.promotions, s.hot_items), (3, 2));
    assert_eq!(s.hot_evictions, 1);
    assert!(s.hot_bytes <= s.hot_capacity);
    assert_eq!(peer.fetches(), 2 + 2 + 3 + 2);
}

#[tokio::test(start_paused = true)]
async fn hot_ratio_zero_means_no_hot_cache() {
    let (loader, _) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", 1 << 20).hot_ratio(0).build(loader);
    g.set_peers(all_to(ScriptedPeer::serving()));
    for _ in 0..5 {
        assert_eq!(source(&g, b"a").await, Source::Peer);
    }
    let s = g.stats();
    assert_eq!((s.hot_capacity, s.promotions), (0, 0));
    assert_eq!(s.main_capacity, 1 << 20);
}

#[tokio::test]
async fn probabilistic_promotion_promotes_some_fetches() {
    let (loader, _) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", 64 << 20)
        .promoter(Probabilistic(2))
        .build(loader);
    g.set_peers(all_to(ScriptedPeer::serving()));
    for i in 0..200 {
        source(&g, format!("k{i}").as_bytes()).await;
    }
    let promoted = g.stats().promotions;
    assert!(
        (50..150).contains(&promoted),
        "1 in 2 of 200 promoted {promoted}"
    );
}
