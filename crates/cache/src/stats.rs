//! Per-group counters: striped atomics so that the cores serving hits do not fight over one
//! cache line, summed only when someone asks for [`GroupStats`].

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A snapshot of one group's counters and tier sizes, for metrics and status pages.
///
/// Counters only grow. "Per get" counters count every caller; "per flight" counters count
/// one load however many callers shared it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Calls to `get`/`get_with` (per get).
    pub gets: u64,
    /// Values found in the main cache, including re-checks inside a flight.
    pub main_hits: u64,
    /// Values found in the hot cache, including re-checks inside a flight.
    pub hot_hits: u64,
    /// Values fetched from the owning peer (per flight).
    pub peer_loads: u64,
    /// Peer fetches that failed (other than `NotFound`) and fell back to a local load.
    pub peer_errors: u64,
    /// Calls to the group's loader (per flight).
    pub loads: u64,
    /// Gets that joined a flight another caller started instead of loading (per get).
    pub loads_joined: u64,
    /// Loader calls that failed (other than `NotFound`).
    pub load_errors: u64,
    /// Gets answered with `NotFound`, from the loader, a peer or a negative entry (per get).
    pub not_found: u64,
    /// Peer-fetched values promoted into the hot cache.
    pub promotions: u64,
    /// Values too large to be cached: returned to callers but not stored.
    pub oversize: u64,
    /// Entries found expired on lookup and removed.
    pub expired: u64,
    /// Gets answered with a stale value because a refresh failed (per get; see
    /// [`GroupBuilder::stale_if_error`](crate::GroupBuilder::stale_if_error)).
    pub stale: u64,
    /// Entries evicted from the main cache to make room.
    pub main_evictions: u64,
    /// Entries evicted from the hot cache to make room.
    pub hot_evictions: u64,
    /// Bytes charged to the main cache (keys, values and per-entry overhead).
    pub main_bytes: u64,
    /// Entries in the main cache.
    pub main_items: u64,
    /// Capacity of the main cache in bytes.
    pub main_capacity: u64,
    /// Bytes charged to the hot cache (keys, values and per-entry overhead).
    pub hot_bytes: u64,
    /// Entries in the hot cache.
    pub hot_items: u64,
    /// Capacity of the hot cache in bytes.
    pub hot_capacity: u64,
}

/// The counters a group bumps; an index into a stripe.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub(crate) enum Counter {
    Gets,
    MainHits,
    HotHits,
    PeerLoads,
    PeerErrors,
    Loads,
    LoadsJoined,
    LoadErrors,
    NotFound,
    Promotions,
    Oversize,
    Expired,
    Stale,
}

const COUNTERS: usize = Counter::Stale as usize + 1;

/// One stripe of counters, on its own cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Stripe([AtomicU64; COUNTERS]);

/// Striped counters: each thread bumps the stripe it was assigned, reads sum all stripes.
pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}

thread_local! {
    static THREAD_STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

/// This thread's stripe number (assigned round-robin on first use).
fn thread_stripe() -> usize {
    THREAD_STRIPE.with(|s| {
        let mut n = s.get();
        if n == usize::MAX {
            n = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed);
            s.set(n);
        }
        n
    })
}

impl Counters {
    pub(crate) fn new() -> Self {
        let n = crate::parallelism().next_power_of_two().min(64);
        Counters {
            stripes: (0..n).map(|_| Stripe::default()).collect(),
        }
    }

    #[inline]
    pub(crate) fn bump(&self, c: Counter) {
        let i = thread_stripe() & (self.stripes.len() - 1);
        self.stripes[i].0[c as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0[c as usize].load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up() {
        let c = Arc::new(Counters::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.bump(Counter::Gets);
                    }
                    c.bump(Counter::Expired);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(Counter::Gets), 8000);
        assert_eq!(c.get(Counter::Expired), 8);
        assert_eq!(c.get(Counter::Loads), 0);
    }
}
