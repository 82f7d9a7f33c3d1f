//! A single group without peers: hits, flights, errors, expiry, negative caching, budgets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{calls, counting_loader, value_of};
use shoal_cache::{
    ErrorSource, FetchMode, GetOptions, Group, LoadError, Loaded, Source, loader_fn,
};
use tokio::time::{Instant, advance};

const MIB: u64 = 1 << 20;
const SEC: Duration = Duration::from_secs(1);

#[tokio::test]
async fn second_get_is_a_main_cache_hit() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", 64 * MIB).build(loader);
    let first = g.get_with(b"k", GetOptions::default()).await.unwrap();
    assert_eq!((first.source, first.joined), (Source::Load, false));
    let second = g.get_with(b"k", GetOptions::default()).await.unwrap();
    assert_eq!(second.source, Source::MainCache);
    assert_eq!(second.value, value_of(b"k"));
    assert_eq!(calls(&n), 1);
    let s = g.stats();
    assert_eq!((s.gets, s.main_hits, s.loads), (2, 1, 1));
    assert_eq!(s.main_items, 1);
    assert!(
        s.main_bytes > first.value.len() as u64,
        "charged key, value and overhead"
    );
}

#[tokio::test]
async fn hits_share_the_loaded_bytes() {
    let (loader, _) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    let a = g.get(b"k").await.unwrap();
    let b = g.get(b"k").await.unwrap();
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "a hit clones the handle, not the bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_gets_load_once() {
    let (loader, n) = counting_loader(SEC);
    let g = Group::builder("g", 64 * MIB).build(loader);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.get_with(b"k", GetOptions::default()).await })
        })
        .collect();
    let mut joined = 0;
    for t in tasks {
        let got = t.await.unwrap().unwrap();
        assert_eq!(got.value, value_of(b"k"));
        joined += usize::from(got.joined);
    }
    assert_eq!(calls(&n), 1);
    assert_eq!(joined, 999);
    let s = g.stats();
    assert_eq!((s.gets, s.loads, s.loads_joined), (1000, 1, 999));
}

#[tokio::test(start_paused = true)]
async fn a_failed_load_reaches_every_waiter_and_is_not_cached() {
    let (loader, n) = counting_loader(SEC);
    let g = Group::builder("g", 64 * MIB).build(loader);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.get(b"fail/1").await })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(e.source_kind(), Some(ErrorSource::Loader));
    }
    assert_eq!(calls(&n), 1);
    assert!(g.get(b"fail/1").await.is_err());
    assert_eq!(calls(&n), 2, "errors are not cached");
    let s = g.stats();
    assert_eq!((s.load_errors, s.not_found, s.main_items), (2, 0, 0));
}

#[tokio::test]
async fn cancelling_the_first_caller_does_not_starve_the_others() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let g = {
        let gate = gate.clone();
        Group::builder("g", MIB).build(loader_fn(move |key: Bytes| {
            let (gate, started) = (gate.clone(), started_tx.clone());
            async move {
                let _ = started.send(());
                gate.notified().await;
                Ok(Loaded::new(key))
            }
        }))
    };
    let first = tokio::spawn({
        let g = g.clone();
        async move { g.get(b"k").await }
    });
    started_rx.recv().await.unwrap();
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let second = tokio::spawn({
        let g = g.clone();
        async move { g.get_with(b"k", GetOptions::default()).await }
    });
    tokio::task::yield_now().await;
    gate.notify_one();
    let got = tokio::time::timeout(5 * SEC, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.value, Bytes::from_static(b"k"));
    assert!(got.joined, "joined the first caller's load");
    assert!(started_rx.try_recv().is_err(), "loaded once");
}

#[tokio::test]
async fn loads_of_different_keys_do_not_wait_for_each_other() {
    let never = Arc::new(tokio::sync::Notify::new());
    let g = {
        let never = never.clone();
        Group::builder("g", MIB).build(loader_fn(move |key: Bytes| {
            let never = never.clone();
            async move {
                if key.as_ref() == b"slow" {
                    never.notified().await;
                }
                Ok(Loaded::new(key))
            }
        }))
    };
    let slow = tokio::spawn({
        let g = g.clone();
        async move { g.get(b"slow").await }
    });
    tokio::task::yield_now().await;
    let fast = tokio::time::timeout(5 * SEC, g.get(b"fast")).await.unwrap();
    assert_eq!(fast.unwrap(), Bytes::from_static(b"fast"));
    slow.abort();
}

#[tokio::test(start_paused = true)]
async fn zero_budget_caches_nothing_but_still_dedups() {
    let (loader, n) = counting_loader(SEC);
    let g = Group::builder("g", 0).build(loader);
    g.get(b"k").await.unwrap();
    g.get(b"k").await.unwrap();
    assert_eq!(calls(&n), 2);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.get(b"k").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(calls(&n), 3);
    let s = g.stats();
    assert_eq!(
        (s.main_capacity, s.hot_capacity, s.main_items, s.oversize),
        (0, 0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn expired_values_are_reloaded() {
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let g = {
        let n = n.clone();
        Group::builder("g", MIB).build(loader_fn(move |key: Bytes| {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok(Loaded::expiring(key, Instant::now() + 10 * SEC)) }
        }))
    };
    g.get(b"k").await.unwrap();
    advance(9 * SEC).await;
    assert_eq!(
        g.get_with(b"k", GetOptions::default())
            .await
            .unwrap()
            .source,
        Source::MainCache
    );
    advance(SEC).await;
    assert_eq!(
        g.get_with(b"k", GetOptions::default())
            .await
            .unwrap()
            .source,
        Source::Load
    );
    assert_eq!(calls(&n), 2);
    assert_eq!(g.stats().expired, 1);
}

#[tokio::test(start_paused = true)]
async fn max_ttl_caps_values_that_never_expire() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB)
        .max_ttl(60 * SEC, Duration::ZERO)
        .build(loader);
    let got = g.get_with(b"k", GetOptions::default()).await.unwrap();
    assert_eq!(got.expires, Some(Instant::now() + 60 * SEC));
    advance(59 * SEC).await;
    g.get(b"k").await.unwrap();
    assert_eq!(calls(&n), 1);
    advance(SEC).await;
    g.get(b"k").await.unwrap();
    assert_eq!(calls(&n), 2);
}

#[tokio::test(start_paused = true)]
async fn not_found_is_not_cached_by_default() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    for _ in 0..2 {
        assert!(g.get(b"missing/1").await.unwrap_err().is_not_found());
    }
    assert_eq!(calls(&n), 2);
    let s = g.stats();
    assert_eq!((s.not_found, s.load_errors, s.main_items), (2, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn negative_ttl_caches_not_found_briefly() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).negative_ttl(5 * SEC).build(loader);
    for _ in 0..3 {
        assert!(g.get(b"missing/1").await.unwrap_err().is_not_found());
    }
    assert_eq!(calls(&n), 1);
    assert_eq!(
        g.peek(b"missing/1"),
        None,
        "a negative entry is not a value"
    );
    advance(5 * SEC).await;
    assert!(g.get(b"missing/1").await.unwrap_err().is_not_found());
    assert_eq!(calls(&n), 2);
    assert_eq!(g.stats().not_found, 4);
    assert_eq!(g.stats().load_errors, 0);
}

#[tokio::test]
async fn values_too_large_to_cache_are_served_and_counted() {
    let g = Group::builder("g", 10_000).build(loader_fn(|_key: Bytes| async {
        Ok(Loaded::new(vec![0u8; 20_000]))
    }));
    for _ in 0..2 {
        assert_eq!(g.get(b"big").await.unwrap().len(), 20_000);
    }
    let s = g.stats();
    assert_eq!(
        (s.loads, s.oversize, s.main_items, s.main_evictions),
        (2, 2, 0, 0)
    );
}

#[tokio::test]
async fn the_budget_holds_and_evictions_are_counted() {
    let g = Group::builder("g", 256 * 1024)
        .max_entry_bytes(4096)
        .build(loader_fn(|_key: Bytes| async {
            Ok(Loaded::new(vec![1u8; 1000]))
        }));
    for i in 0..2000 {
        g.get(format!("key{i}").as_bytes()).await.unwrap();
    }
    let s = g.stats();
    assert!(s.main_evictions > 0);
    assert!(s.main_bytes <= s.main_capacity);
    assert!(s.main_capacity + s.hot_capacity <= 256 * 1024);
    assert_eq!(s.main_items + s.main_evictions, 2000);
}

#[tokio::test(start_paused = true)]
async fn a_slow_loader_times_out_with_a_retryable_error() {
    let (loader, _) = counting_loader(10 * SEC);
    let g = Group::builder("g", MIB).load_timeout(SEC).build(loader);
    let e = g.get(b"k").await.unwrap_err();
    assert!(matches!(e, LoadError::Timeout { from: ErrorSource::Loader, after } if after == SEC));
    assert!(e.is_retryable());
    assert_eq!(g.stats().load_errors, 1);
}

#[tokio::test]
async fn a_panicking_loader_fails_the_flight_without_hanging() {
    let g = Group::builder("g", MIB).build(loader_fn(|key: Bytes| async move {
        assert!(key.is_empty(), "loader bug");
        Ok(Loaded::new(key))
    }));
    let e = g.get(b"k").await.unwrap_err();
    assert!(matches!(e, LoadError::Aborted(_)), "{e:?}");
    assert_eq!(
        g.get(b"").await.unwrap(),
        Bytes::new(),
        "the group still works"
    );
}

#[tokio::test]
async fn remove_peek_and_insert_main() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    assert!(g.insert_main(Bytes::from_static(b"warm"), Loaded::new("handed off")));
    assert_eq!(g.peek(b"warm").unwrap().value, "handed off");
    assert_eq!(
        g.get_with(b"warm", GetOptions::default())
            .await
            .unwrap()
            .source,
        Source::MainCache
    );
    assert_eq!(calls(&n), 0);

    assert!(g.remove(b"warm"));
    assert!(!g.remove(b"warm"));
    assert_eq!(g.peek(b"warm"), None);
    assert_eq!(g.get(b"warm").await.unwrap(), value_of(b"warm"));
    assert_eq!(calls(&n), 1);
    assert_eq!(g.stats().gets, 2, "peek and insert_main are not gets");
}

/// A loader that keeps its own copy (a disk tier) is told of each remove, so the next get
/// does not find the removed value there.
#[tokio::test]
async fn remove_tells_the_loader_to_forget() {
    use std::sync::Mutex;
    struct Kept(Arc<Mutex<Vec<Vec<u8>>>>);
    impl shoal_cache::Loader for Kept {
        async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
            Ok(Loaded::new(key))
        }
        fn forget(&self, key: &[u8]) {
            self.0.lock().unwrap().push(key.to_vec());
        }
    }
    let forgotten = Arc::new(Mutex::new(Vec::new()));
    let g = Group::builder("g", MIB).build(Kept(forgotten.clone()));
    g.get(b"a").await.unwrap();
    assert!(g.remove(b"a"));
    assert!(!g.remove(b"never-loaded"), "not in memory");
    assert_eq!(
        *forgotten.lock().unwrap(),
        vec![b"a".to_vec(), b"never-loaded".to_vec()],
        "the loader hears of every remove, in memory or not"
    );
}

#[tokio::test]
async fn peek_mode_never_loads() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    let peek = GetOptions::new(FetchMode::Peek);
    assert!(g.get_with(b"k", peek).await.unwrap_err().is_not_found());
    g.get(b"k").await.unwrap();
    assert_eq!(
        g.get_with(b"k", peek).await.unwrap().source,
        Source::MainCache
    );
    assert_eq!(calls(&n), 1);
}

#[tokio::test]
async fn keys_need_not_be_utf8() {
    let (loader, _) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", MIB).build(loader);
    let key = [0xff, 0x00, 0xfe];
    assert_eq!(g.get(&key).await.unwrap(), value_of(&key));
    assert_eq!(g.peek(&key).unwrap().value, value_of(&key));
}

#[tokio::test]
async fn absurd_settings_do_not_overflow() {
    let (loader, n) = counting_loader(Duration::ZERO);
    let g = Group::builder("g", u64::MAX)
        .max_entry_bytes(u64::MAX)
        .max_ttl(Duration::MAX, Duration::MAX)
        .negative_ttl(Duration::MAX)
        .load_timeout(Duration::MAX)
        .build(loader);
    assert_eq!(g.get(b"k").await.unwrap(), value_of(b"k"));
    assert_eq!(
        g.get_with(b"k", GetOptions::default())
            .await
            .unwrap()
            .source,
        Source::MainCache
    );
    for _ in 0..2 {
        assert!(g.get(b"missing/1").await.unwrap_err().is_not_found());
    }
    assert_eq!(calls(&n), 2, "the negative entry was cached");
}
