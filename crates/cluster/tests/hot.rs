//! Hot-cache promotion in a 3-node cluster, with the group's default promoter
//! (`QpsPromoter`): a non-owner does not promote a key on its first fetch, does on the
//! next, and then serves it from its hot cache without asking the owner again.

mod common;

use common::recorded::{default_group, start_recorded};
use common::{Counting, keys, value_of};
use shoal_cache::Source;
use shoal_cluster::Protocol;

#[tokio::test]
async fn a_hot_key_is_promoted_on_a_non_owner_and_then_served_from_memory() {
    for protocol in [Protocol::Native, Protocol::Grpc, Protocol::Groupcache] {
        let nodes = start_recorded(
            3,
            Counting::default,
            |b| b.protocol(protocol),
            default_group,
        )
        .await;
        let asker = &nodes[0];
        let key = keys("hot-", 100)
            .into_iter()
            .find(|k| asker.cluster.owner(k).as_deref() != Some(asker.url.as_str()))
            .unwrap();
        let owner_url = asker.cluster.owner(&key).unwrap();
        let owner = nodes.iter().find(|n| n.url == owner_url).unwrap();
        let third = nodes
            .iter()
            .find(|n| n.url != owner_url && n.url != asker.url)
            .unwrap();

        // First fetch: from the owner, not promoted (never seen before).
        let got = asker
            .group
            .get_with(&key, Default::default())
            .await
            .unwrap();
        assert_eq!((got.value, got.source), (value_of(&key), Source::Peer));
        let s = asker.group.stats();
        assert_eq!(
            (s.peer_loads, s.promotions, s.hot_items),
            (1, 0, 0),
            "{protocol}"
        );
        assert_eq!(owner.served("ok"), 1, "{protocol}");

        // Second fetch within the window: from the owner again, and now promoted.
        let got = asker
            .group
            .get_with(&key, Default::default())
            .await
            .unwrap();
        assert_eq!(got.source, Source::Peer, "{protocol}");
        let s = asker.group.stats();
        assert_eq!(
            (s.peer_loads, s.promotions, s.hot_items),
            (2, 1, 1),
            "{protocol}"
        );
        assert_eq!(owner.served("ok"), 2, "{protocol}");

        // From now on the hot cache answers: no peer request, no load anywhere.
        for _ in 0..20 {
            let got = asker
                .group
                .get_with(&key, Default::default())
                .await
                .unwrap();
            assert_eq!((got.value, got.source), (value_of(&key), Source::HotCache));
        }
        let s = asker.group.stats();
        assert_eq!(
            (s.hot_hits, s.peer_loads, s.main_hits),
            (20, 2, 0),
            "{protocol}"
        );
        assert_eq!(
            owner.served("ok"),
            2,
            "{protocol}: the owner was not asked again"
        );
        assert_eq!(third.served("ok"), 0, "{protocol}");
        assert_eq!(
            owner.loader.of(&key),
            1,
            "{protocol}: loaded once, by the owner"
        );
        assert_eq!(asker.loader.total() + third.loader.total(), 0, "{protocol}");
    }
}
