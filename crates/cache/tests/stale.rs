//! `stale_if_error`: an expired value answers when its refresh fails, and only then.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{GroupPeer, ScriptedPeer, all_to};
use parking_lot::Mutex;
use shoal_cache::{
    AlwaysPromote, FetchMode, GetOptions, Group, LoadError, Loaded, STALE_RETRY, Source, loader_fn,
};
use tokio::time::{Instant, advance};

const MIB: u64 = 1 << 20;
const TTL: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(60);

/// What the scripted origin answers next.
#[derive(Clone)]
enum Origin {
    /// This value, fresh for `TTL`.
    Value(&'static str),
    /// This value, expired `ago` ago (a copy the loader kept, as a disk tier does).
    Expired(&'static str, Duration),
    Down,
    Refused,
    Gone,
    Hangs,
}

struct Scripted {
    now: Mutex<Origin>,
    loads: AtomicUsize,
}

impl Scripted {
    fn set(&self, o: Origin) {
        *self.now.lock() = o;
    }
    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

fn group(grace: Duration) -> (Arc<Group>, Arc<Scripted>) {
    let origin = Arc::new(Scripted {
        now: Mutex::new(Origin::Value("v1")),
        loads: AtomicUsize::new(0),
    });
    let o = origin.clone();
    let g = Group::builder("meta", MIB)
        .stale_if_error(grace)
        .load_timeout(Duration::from_secs(30))
        .build(loader_fn(move |_key: Bytes| {
            o.loads.fetch_add(1, Ordering::SeqCst);
            let answer = o.now.lock().clone();
            async move {
                match answer {
                    Origin::Value(v) => Ok(Loaded::expiring(v, Instant::now() + TTL)),
                    Origin::Expired(v, ago) => {
                        Ok(Loaded::expiring(v, Instant::now() - ago).stale())
                    }
                    Origin::Down => Err(LoadError::loader("connection refused", true)),
                    Origin::Refused => Err(LoadError::loader("403 Forbidden", false)),
                    Origin::Gone => Err(LoadError::NotFound),
                    Origin::Hangs => std::future::pending().await,
                }
            }
        }));
    (g, origin)
}

async fn get(g: &Arc<Group>) -> Result<shoal_cache::Got, LoadError> {
    g.get_with(b"k", GetOptions::default()).await
}

/// Lets spawned background refreshes run to completion (time is paused).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_answers_with_the_stale_value_then_refreshes_in_the_background() {
    let (g, origin) = group(GRACE);
    assert_eq!(get(&g).await.unwrap().value, "v1");
    advance(TTL).await;

    origin.set(Origin::Down);
    let got = get(&g).await.unwrap();
    assert_eq!((&got.value[..], got.stale), (&b"v1"[..], true));
    assert_eq!(got.source, Source::MainCache);
    assert_eq!(origin.loads(), 2, "the expired value was refreshed first");

    // The origin just failed: the next gets do not wait on it again.
    for _ in 0..5 {
        assert!(get(&g).await.unwrap().stale);
    }
    assert_eq!(origin.loads(), 2);

    // Once STALE_RETRY has passed, one get starts a refresh but still answers at once.
    advance(STALE_RETRY).await;
    origin.set(Origin::Value("v2"));
    let got = get(&g).await.unwrap();
    assert_eq!((&got.value[..], got.stale), (&b"v1"[..], true));
    settle().await;
    assert_eq!(origin.loads(), 3);
    let got = get(&g).await.unwrap();
    assert_eq!((&got.value[..], got.stale), (&b"v2"[..], false));
    assert_eq!(got.source, Source::MainCache);
    let s = g.stats();
    assert_eq!((s.stale, s.load_errors), (7, 1));

    // Fresh again, and no longer failing: the next expiry waits for the refresh again.
    advance(TTL).await;
    origin.set(Origin::Value("v3"));
    assert_eq!(get(&g).await.unwrap().value, "v3");
}

#[tokio::test(start_paused = true)]
async fn a_background_refresh_that_fails_keeps_the_stale_value() {
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Down);
    assert!(get(&g).await.unwrap().stale);
    for round in 0..3 {
        advance(STALE_RETRY).await;
        assert!(get(&g).await.unwrap().stale, "round {round}");
        settle().await;
        assert_eq!(origin.loads(), 3 + round, "one refresh per STALE_RETRY");
    }
}

#[tokio::test(start_paused = true)]
async fn only_retryable_errors_within_the_grace_get_the_stale_value() {
    // A refusal (not retryable) is passed on.
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Refused);
    assert!(matches!(
        get(&g).await,
        Err(LoadError::Failed {
            retryable: false,
            ..
        })
    ));

    // Past the grace the value is gone.
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL + GRACE).await;
    origin.set(Origin::Down);
    assert!(get(&g).await.is_err());

    // Without stale_if_error (the default) an expired value is never served.
    let (g, origin) = group(Duration::ZERO);
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Down);
    assert!(get(&g).await.is_err());
    assert_eq!(g.stats().stale, 0);
}

#[tokio::test(start_paused = true)]
async fn not_found_drops_the_stale_value() {
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Gone);
    assert!(matches!(get(&g).await, Err(LoadError::NotFound)));
    origin.set(Origin::Down);
    assert!(
        get(&g).await.is_err(),
        "the deleted object must not come back as stale"
    );
    assert_eq!(g.stats().main_items, 0);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_origin_delays_only_the_first_get() {
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Hangs);
    let started = Instant::now();
    assert!(get(&g).await.unwrap().stale);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "the load timeout"
    );
    // The next gets, the one that starts a background refresh included, answer at once.
    advance(STALE_RETRY).await;
    for _ in 0..3 {
        let started = Instant::now();
        assert!(get(&g).await.unwrap().stale);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
    settle().await;
    assert_eq!(origin.loads(), 3, "one background refresh, still hanging");
}

#[tokio::test(start_paused = true)]
async fn peek_gets_a_stale_value_only_once_a_refresh_failed() {
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL).await;
    let peek = GetOptions::new(FetchMode::Peek);
    assert!(matches!(
        g.get_with(b"k", peek).await,
        Err(LoadError::NotFound)
    ));
    assert!(g.peek(b"k").is_none(), "peek() gives fresh values only");
    origin.set(Origin::Down);
    get(&g).await.unwrap();
    advance(STALE_RETRY).await;
    assert!(g.get_with(b"k", peek).await.unwrap().stale);
    settle().await;
    assert_eq!(origin.loads(), 2, "a peek never starts a refresh");
    // ... nor takes the turn of the next get, which does.
    assert!(get(&g).await.unwrap().stale);
    settle().await;
    assert_eq!(origin.loads(), 3);
}

#[tokio::test(start_paused = true)]
async fn remove_forgets_the_stale_value() {
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Down);
    assert!(get(&g).await.unwrap().stale);
    assert!(g.remove(b"k"));
    assert!(get(&g).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_loader_may_answer_with_its_own_stale_copy() {
    let (g, origin) = group(GRACE);
    origin.set(Origin::Expired("disk", Duration::from_secs(5)));
    let got = get(&g).await.unwrap();
    assert_eq!((&got.value[..], got.stale), (&b"disk"[..], true));
    // Kept as a stale value that just failed to refresh: no reload before STALE_RETRY.
    let got = get(&g).await.unwrap();
    assert_eq!((got.source, got.stale), (Source::MainCache, true));
    assert_eq!(origin.loads(), 1);
    // A copy already past the grace is neither given nor kept.
    let (g, origin) = group(GRACE);
    origin.set(Origin::Expired("old", GRACE));
    assert!(get(&g).await.is_err());
    assert_eq!(g.stats().main_items, 0);
}

#[tokio::test(start_paused = true)]
async fn the_newest_stale_copy_answers() {
    // In memory v2; the loader's own copy (v1) expired earlier: v2 answers, and stays.
    let (g, origin) = group(GRACE);
    origin.set(Origin::Value("v2"));
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Expired("v1", Duration::from_secs(30)));
    let got = get(&g).await.unwrap();
    assert_eq!((&got.value[..], got.stale), (&b"v2"[..], true));
    assert_eq!(got.source, Source::MainCache);
    assert_eq!(get(&g).await.unwrap().value, "v2");
}

#[tokio::test(start_paused = true)]
async fn stale_when_refuses_values_that_may_not_be_served_stale() {
    let origin = Arc::new(AtomicUsize::new(0));
    let o = origin.clone();
    let g = Group::builder("meta", MIB)
        .stale_if_error(GRACE)
        .stale_when(|v| v != b"strict")
        .build(loader_fn(move |_key: Bytes| {
            let n = o.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Ok(Loaded::expiring("strict", Instant::now() + TTL)),
                    _ => Err(LoadError::loader("down", true)),
                }
            }
        }));
    get(&g).await.unwrap();
    advance(TTL).await;
    assert!(get(&g).await.is_err());
    assert!(get(&g).await.is_err(), "not failing: each get tries again");
    assert_eq!(origin.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_remove_during_a_refresh_is_not_undone_by_its_stale_copy() {
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Down);
    assert!(get(&g).await.unwrap().stale);
    // A background refresh starts and hangs; the key is purged meanwhile.
    origin.set(Origin::Hangs);
    advance(STALE_RETRY).await;
    assert!(get(&g).await.unwrap().stale);
    settle().await;
    assert!(g.remove(b"k"));
    // This get joins the refresh under way; when it times out, the purged copy is not given.
    assert!(get(&g).await.is_err());
    assert!(get(&g).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_stale_answer_from_the_owner_is_a_fallback_for_the_askers_own_load() {
    let (owner, origin) = group(GRACE);
    let asker_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let down = asker_down.clone();
    let asker = Group::builder("meta", MIB)
        .stale_if_error(GRACE)
        .promoter(AlwaysPromote)
        .build(loader_fn(move |_key: Bytes| {
            let down = down.load(Ordering::SeqCst);
            async move {
                match down {
                    true => Err(LoadError::loader("the asker's origin is down", true)),
                    false => Ok(Loaded::expiring("asker's", Instant::now() + TTL)),
                }
            }
        }));
    asker.set_peers(all_to(Arc::new(GroupPeer {
        id: "owner".into(),
        group: owner.clone(),
    })));
    let got = get(&asker).await.unwrap();
    assert_eq!((got.source, got.stale), (Source::Peer, false));
    assert_eq!(asker.stats().hot_items, 1, "promoted");
    advance(TTL).await;

    // Only the owner's origin fails: the asker loads the key itself.
    origin.set(Origin::Down);
    let got = get(&asker).await.unwrap();
    assert_eq!((&got.value[..], got.stale), (&b"asker's"[..], false));
    assert_eq!(got.source, Source::Load);
    assert_eq!(
        owner.stats().stale,
        1,
        "the owner answered with its stale copy"
    );

    // Both fail: the newest stale copy (the asker's own, loaded last) answers, then at once.
    asker_down.store(true, Ordering::SeqCst);
    advance(TTL).await;
    let got = get(&asker).await.unwrap();
    assert_eq!((&got.value[..], got.stale), (&b"asker's"[..], true));
    let got = get(&asker).await.unwrap();
    assert_eq!((got.source, got.stale), (Source::MainCache, true));

    // A node that has no copy of its own keeps the owner's stale answer in its hot cache.
    let fresh_asker = Group::builder("meta", MIB)
        .stale_if_error(GRACE)
        .build(loader_fn(|_key: Bytes| async {
            Err::<Loaded, _>(LoadError::loader("down", true))
        }));
    fresh_asker.set_peers(all_to(Arc::new(GroupPeer {
        id: "owner".into(),
        group: owner.clone(),
    })));
    let got = get(&fresh_asker).await.unwrap();
    assert_eq!(
        (&got.value[..], got.source, got.stale),
        (&b"v1"[..], Source::Peer, true)
    );
    let down = ScriptedPeer::new(|_| Err(LoadError::peer("connection refused", true)));
    fresh_asker.set_peers(all_to(down.clone()));
    let got = get(&fresh_asker).await.unwrap();
    assert_eq!((got.source, got.stale), (Source::HotCache, true));
    assert_eq!(down.fetches(), 0, "failing: answered at once");
}

#[tokio::test(start_paused = true)]
async fn removing_another_key_does_not_stop_a_fallback() {
    let (g, origin) = group(GRACE);
    get(&g).await.unwrap();
    advance(TTL).await;
    origin.set(Origin::Hangs);
    let waiting = {
        let g = g.clone();
        tokio::spawn(async move { get(&g).await })
    };
    settle().await;
    assert!(!g.remove(b"another key"));
    // The refresh times out (the clock runs on while every task waits): the stale copy.
    let got = waiting.await.unwrap().unwrap();
    assert_eq!((&got.value[..], got.stale), (&b"v1"[..], true));
}
