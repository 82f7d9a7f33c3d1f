//! Deadline propagation on the HTTP protocols: the client sends the time it still waits in
//! `X-Shoal-Deadline-Ms`, and the owner stops waiting for its (slow) load when it passes,
//! answering 504 while the load goes on in the background.

mod common;

use std::time::Duration;

use common::raw::http1;
use common::recorded::{default_group, start_recorded};
use common::{Counting, GROUP, within};
use shoal_cluster::{PeerError, Protocol};
use tokio::time::Instant;

/// Longer than any test waits: the owner's load never finishes in time.
const SLOW: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_owner_answers_504_when_the_propagated_deadline_passes() {
    let nodes = start_recorded(1, || Counting::slow(SLOW), |b| b, default_group).await;
    let n = &nodes[0];
    for (i, base) in ["_galaxycache", "_groupcache"].into_iter().enumerate() {
        let start = Instant::now();
        let target = format!("/{base}/{GROUP}/slow-{i}");
        let r = http1(&n.url, "GET", &target, &["X-Shoal-Deadline-Ms: 150"]).await;
        let took = start.elapsed();
        assert_eq!(r.status, 504, "{base}: {r:?}");
        assert!(String::from_utf8_lossy(&r.body).contains("deadline of 150 ms"));
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(5),
            "{base}: {took:?}"
        );
    }
    assert_eq!(n.served("deadline_exceeded"), 2);
    assert_eq!(n.loader.total(), 2, "the loads started (and go on)");
}

#[tokio::test]
async fn a_slow_owner_gives_the_caller_a_timely_error() {
    for protocol in [Protocol::Native, Protocol::Groupcache] {
        let nodes = start_recorded(
            2,
            || Counting::slow(SLOW),
            |b| {
                b.protocol(protocol)
                    .fetch_timeout(Duration::from_millis(500))
            },
            default_group,
        )
        .await;
        let owner = &nodes[1];
        let client = nodes[0].cluster.client(&owner.url).unwrap();
        let start = Instant::now();
        let e = within(5, "a fetch from a slow owner", client.fetch(GROUP, b"slow"))
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(2), "{protocol}: {took:?}");
        // Usually the owner's 504 (it was told 90% of our 500 ms); under heavy load our own
        // timeout may fire first. Either way the caller hears within its deadline.
        assert!(
            matches!(&e, PeerError::Status { status, .. } if status.starts_with("504"))
                || matches!(e, PeerError::Timeout { .. }),
            "{protocol}: {e:?}"
        );
        assert!(e.is_retryable(), "{protocol}");
        // The owner stopped waiting on its own, at the propagated deadline.
        within(5, "the owner to count the passed deadline", async {
            for _ in 0..200 {
                if owner.served("deadline_exceeded") == 1 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("{protocol}: the owner never gave up on its own");
        })
        .await;
        assert_eq!(owner.loader.of(b"slow"), 1, "{protocol}");
    }
}
