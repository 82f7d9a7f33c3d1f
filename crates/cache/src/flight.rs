//! Flights (singleflight): at most one load per key in progress, however many callers want it.
//!
//! The first caller of a key (the leader) registers a flight and **spawns** the work on the
//! tokio runtime; every caller, the leader included, then waits for the flight's result on a
//! `watch` channel. Because the work runs in its own task, a caller that goes away (its
//! future dropped: a client disconnected, a timeout fired) never cancels the load the other
//! callers are waiting for. The flight's entry is removed when the task ends, including by
//! panic, in which case the waiters get [`Abandoned`] instead of hanging.
//!
//! The map is sharded by key hash; each shard's `parking_lot` mutex is held only to look up,
//! insert or remove one entry, never across an `.await`.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use quick_cache::DefaultHashBuilder;
use tokio::sync::watch;

/// The result slot of one flight: `None` until the work finishes.
type Slot<T> = watch::Receiver<Option<T>>;

type Shard<T> = Mutex<HashMap<Bytes, Slot<T>, DefaultHashBuilder>>;

/// Whether a caller started the flight or joined one in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// This caller registered the flight and spawned its work.
    Leader,
    /// This caller found the flight in progress and waited for it.
    Follower,
}

/// The flight's task ended without producing a result (it panicked, or the runtime is
/// shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Abandoned;

/// In-progress loads, keyed by key.
pub(crate) struct Flights<T> {
    shards: Box<[Shard<T>]>,
    hasher: DefaultHashBuilder,
}

impl<T> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// An empty flight map with one shard per few cores.
    pub(crate) fn new() -> Self {
        let n = (crate::parallelism() * 4).next_power_of_two().min(64);
        Flights {
            shards: (0..n).map(|_| Mutex::new(HashMap::default())).collect(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn shard(&self, key: &[u8]) -> &Shard<T> {
        let h = self.hasher.hash_one(key) as usize;
        &self.shards[h & (self.shards.len() - 1)]
    }

    /// Run `work` for `key` unless a flight for `key` is already in progress, and wait for
    /// the result of whichever flight serves this call.
    ///
    /// `work` is called (with an owned copy of the key) only by the leader, and the future it
    /// returns is spawned, so it runs to completion even if every caller stops waiting. Must
    /// be called within a tokio runtime.
    pub(crate) async fn run<F, Fut>(
        self: &Arc<Self>,
        key: &[u8],
        work: F,
    ) -> (Result<T, Abandoned>, Role)
    where
        F: FnOnce(Bytes) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (mut slot, role) = self.join_or_start(key, work);
        let result = match slot.wait_for(Option::is_some).await {
            Ok(value) => value.clone().ok_or(Abandoned),
            Err(_closed) => Err(Abandoned),
        };
        (result, role)
    }

    fn join_or_start<F, Fut>(self: &Arc<Self>, key: &[u8], work: F) -> (Slot<T>, Role)
    where
        F: FnOnce(Bytes) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = {
            let mut map = self.shard(key).lock();
            if let Some(slot) = map.get(key) {
                return (slot.clone(), Role::Follower);
            }
            let (tx, rx) = watch::channel(None);
            map.insert(Bytes::copy_from_slice(key), rx.clone());
            (tx, rx)
        };
        // From here on the entry must go away whatever happens, even if `work` panics.
        let landing = Landing {
            flights: Arc::clone(self),
            key: Bytes::copy_from_slice(key),
            slot: rx.clone(),
        };
        let fut = work(landing.key.clone());
        tokio::spawn(async move {
            let value = fut.await;
            // Publish first, then unregister: a caller arriving in between joins and gets
            // the value at once; one arriving after starts a new flight (which re-checks
            // the cache the finished work filled).
            tx.send_replace(Some(value));
            drop(landing);
        });
        (rx, Role::Leader)
    }

    /// Number of flights in progress.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// Unregisters a flight when its task ends (normally, by panic or by runtime shutdown).
struct Landing<T> {
    flights: Arc<Flights<T>>,
    key: Bytes,
    slot: Slot<T>,
}

impl<T> Drop for Landing<T> {
    fn drop(&mut self) {
        let shard = {
            let h = self.flights.hasher.hash_one(&self.key[..]) as usize;
            &self.flights.shards[h & (self.flights.shards.len() - 1)]
        };
        let mut map = shard.lock();
        // Only ever our own entry: no other flight for this key can register while ours is
        // in the map, but check anyway rather than remove a stranger's.
        if map
            .get(&self.key[..])
            .is_some_and(|s| s.same_channel(&self.slot))
        {
            map.remove(&self.key[..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::{Notify, oneshot};

    type Res = Result<u64, &'static str>;

    fn flights() -> Arc<Flights<Res>> {
        Arc::new(Flights::new())
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_concurrent_callers_share_one_run() {
        let f = flights();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (f, runs) = (f.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                f.run(b"k", |_key| async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Paused time only advances once every caller is parked.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(7)
                })
                .await
            }));
        }
        let mut leaders = 0;
        for t in tasks {
            let (res, role) = t.await.unwrap();
            assert_eq!(res, Ok(Ok(7)));
            leaders += usize::from(role == Role::Leader);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert_eq!(f.len(), 0, "finished flights are unregistered");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_reaches_every_waiter_and_is_not_kept() {
        let f = flights();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (f, runs) = (f.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                f.run(b"k", |_| async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Err("origin down")
                })
                .await
                .0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(Err("origin down")));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The failure is not remembered: the next call runs again.
        let (res, role) = f.run(b"k", |_| async { Ok(1) }).await;
        assert_eq!((res, role), (Ok(Ok(1)), Role::Leader));
    }

    #[tokio::test]
    async fn cancelling_the_leader_does_not_starve_followers() {
        let f = flights();
        let gate = Arc::new(Notify::new());
        let (started_tx, started_rx) = oneshot::channel();
        let leader = {
            let (f, gate) = (f.clone(), gate.clone());
            tokio::spawn(async move {
                f.run(b"k", move |_| async move {
                    let _ = started_tx.send(());
                    gate.notified().await;
                    Ok(42)
                })
                .await
            })
        };
        started_rx.await.unwrap();
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());

        let follower = {
            let f = f.clone();
            tokio::spawn(async move { f.run(b"k", |_| async { Ok(0) }).await })
        };
        tokio::task::yield_now().await;
        gate.notify_one();
        let (res, role) = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            res,
            Ok(Ok(42)),
            "the follower got the leader's value, not its own run"
        );
        assert_eq!(role, Role::Follower);
    }

    #[tokio::test]
    async fn different_keys_do_not_block_each_other() {
        let f = flights();
        let never = Arc::new(Notify::new());
        let stuck = {
            let (f, never) = (f.clone(), never.clone());
            tokio::spawn(async move {
                f.run(b"slow", move |_| async move {
                    never.notified().await;
                    Ok(1)
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        let other =
            tokio::time::timeout(Duration::from_secs(5), f.run(b"fast", |_| async { Ok(2) })).await;
        assert_eq!(other.unwrap(), (Ok(Ok(2)), Role::Leader));
        assert_eq!(f.len(), 1, "the slow flight is still registered");
        stuck.abort();
    }

    #[tokio::test]
    async fn a_panicking_run_wakes_waiters_and_unregisters() {
        let f = flights();
        let (res, role) = f
            .run(b"k", |_| async {
                if true {
                    panic!("loader bug");
                }
                Ok(0)
            })
            .await;
        assert_eq!((res, role), (Err(Abandoned), Role::Leader));
        assert_eq!(f.len(), 0);
        let (res, _) = f.run(b"k", |_| async { Ok(3) }).await;
        assert_eq!(res, Ok(Ok(3)));
    }

    #[tokio::test]
    async fn work_gets_an_owned_copy_of_the_key() {
        let f: Arc<Flights<Bytes>> = Arc::new(Flights::new());
        let key = vec![0xff, 0x00, b'k'];
        let (res, _) = f.run(&key, |k| async move { k }).await;
        assert_eq!(res.unwrap(), Bytes::from(key));
    }
}
