//! Hot-cache promotion: which values fetched from a peer are worth a copy on this node.
//!
//! The group keeps windowed request rates per key (galaxycache's `windowedAvgQPS`): for keys
//! it fetched from peers, in a bounded candidate list; for keys in the hot cache, with the
//! entry (touched on every hot hit). On each peer fetch it asks the group's [`Promoter`],
//! passing the key's numbers and the hot cache's ([`PromoteStats`]).
//!
//! The default, [`QpsPromoter`], is galaxycache's rule without its cold-start bug: galaxycache
//! promotes when `key_qps >= least_recent_qps`, which is `0 >= 0` for every first fetch while
//! the hot cache is empty. Here a key must have been fetched before within the window
//! (`key_hits > 0`), and must either fit in the hot cache's free space or be at least as
//! popular as the coldest entries there.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::tier::{Entry, Tier};

/// Decides whether a value fetched from its owning peer is copied into the hot cache.
pub trait Promoter: Send + Sync + 'static {
    /// Whether to keep `value` (of `key`) in the hot cache.
    fn should_promote(&self, key: &[u8], value: &Bytes, stats: &PromoteStats) -> bool;
}

/// What a [`Promoter`] knows about a key at the moment it was fetched from a peer.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromoteStats {
    /// Earlier fetches of this key within the stats window (0 on the first fetch).
    pub key_hits: u64,
    /// The key's request rate: earlier fetches over the time since the window started (at
    /// least 100 ms), so a second fetch right after the first gives 10.0.
    pub key_qps: f64,
    /// Bytes the value would be charged in the hot cache.
    pub weight: u64,
    /// The hot cache's state.
    pub hot: HotStats,
}

impl PromoteStats {
    /// Build stats by hand (for testing promoters).
    pub fn new(key_hits: u64, key_qps: f64, weight: u64, hot: HotStats) -> Self {
        PromoteStats {
            key_hits,
            key_qps,
            weight,
            hot,
        }
    }
}

/// The hot cache's state, as seen by a [`Promoter`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotStats {
    /// The lowest request rate among a sample of hot-cache entries (0 when it is empty).
    /// Recomputed at most once a second.
    pub coldest_qps: f64,
    /// Bytes not yet used in the hot cache.
    pub free_bytes: u64,
    /// The hot cache's capacity in bytes.
    pub capacity_bytes: u64,
}

impl HotStats {
    /// Build stats by hand (for testing promoters).
    pub fn new(coldest_qps: f64, free_bytes: u64, capacity_bytes: u64) -> Self {
        HotStats {
            coldest_qps,
            free_bytes,
            capacity_bytes,
        }
    }
}

/// The default promoter: promote a key seen before within the window (`key_hits > 0`) when
/// it fits in the free space or is at least as popular as the coldest hot entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct QpsPromoter;

impl Promoter for QpsPromoter {
    fn should_promote(&self, _key: &[u8], _value: &Bytes, s: &PromoteStats) -> bool {
        s.key_hits > 0 && (s.weight <= s.hot.free_bytes || s.key_qps >= s.hot.coldest_qps)
    }
}

/// Never promote (no hot cache in effect).
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverPromote;

impl Promoter for NeverPromote {
    fn should_promote(&self, _: &[u8], _: &Bytes, _: &PromoteStats) -> bool {
        false
    }
}

/// Promote every peer-fetched value (mailgun/groupcache v2's choice).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysPromote;

impl Promoter for AlwaysPromote {
    fn should_promote(&self, _: &[u8], _: &Bytes, _: &PromoteStats) -> bool {
        true
    }
}

/// Promote one fetch in `n`, at random (groupcache's rule with `n = 10`). `n = 0` never
/// promotes.
#[derive(Debug, Clone, Copy)]
pub struct Probabilistic(pub u32);

impl Default for Probabilistic {
    /// groupcache's 1 in 10.
    fn default() -> Self {
        Probabilistic(10)
    }
}

impl Promoter for Probabilistic {
    fn should_promote(&self, _: &[u8], _: &Bytes, _: &PromoteStats) -> bool {
        self.0 != 0 && rand::random_range(0..self.0) == 0
    }
}

/// Request-rate statistics of one key. Updated with relaxed atomics: under races a touch can
/// be lost or a window reset twice, which only makes an estimate slightly rougher.
#[derive(Debug)]
pub(crate) struct KeyStats {
    /// Start of the current window, in nanoseconds since the tracker's base.
    epoch: AtomicU64,
    last_ref: AtomicU64,
    count: AtomicU64,
}

const MIN_AGE: Duration = Duration::from_millis(100);

impl KeyStats {
    fn new(now: u64) -> Self {
        KeyStats {
            epoch: AtomicU64::new(now),
            last_ref: AtomicU64::new(now),
            count: AtomicU64::new(0),
        }
    }

    /// Count one request at `now`; a key idle for longer than `idle` starts a new window.
    fn touch(&self, now: u64, idle: u64) {
        if now.saturating_sub(self.last_ref.load(Ordering::Relaxed)) > idle {
            self.epoch.store(now, Ordering::Relaxed);
            self.count.store(1, Ordering::Relaxed);
        } else {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        self.last_ref.fetch_max(now, Ordering::Relaxed);
    }

    /// `(requests, requests per second)` in the current window; `(0, 0.0)` once idle.
    fn val(&self, now: u64, idle: u64) -> (u64, f64) {
        if now.saturating_sub(self.last_ref.load(Ordering::Relaxed)) > idle {
            return (0, 0.0);
        }
        let count = self.count.load(Ordering::Relaxed);
        let age = now
            .saturating_sub(self.epoch.load(Ordering::Relaxed))
            .max(MIN_AGE.as_nanos() as u64);
        (
            count,
            count as f64 / Duration::from_nanos(age).as_secs_f64(),
        )
    }
}

/// How many hot entries to look at when estimating the coldest rate.
const HOT_SAMPLE: usize = 64;
const GAUGE_PERIOD: Duration = Duration::from_secs(1);

/// A group's promotion bookkeeping: the candidate list and the hot cache's coldest rate.
pub(crate) struct Tracker {
    base: Instant,
    idle: u64,
    candidates: Option<quick_cache::sync::Cache<Bytes, Arc<KeyStats>>>,
    /// When `coldest` was last computed.
    gauged: Mutex<Option<Instant>>,
    /// `f64` bits.
    coldest: AtomicU64,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("idle_ns", &self.idle)
            .field(
                "candidates",
                &self.candidates.as_ref().map_or(0, |c| c.len()),
            )
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// Track up to `max_candidates` keys; stats of keys idle for `idle` reset.
    pub(crate) fn new(max_candidates: usize, idle: Duration) -> Self {
        Tracker {
            base: Instant::now(),
            idle: idle.as_nanos().min(u64::MAX as u128) as u64,
            candidates: (max_candidates > 0).then(|| quick_cache::sync::Cache::new(max_candidates)),
            gauged: Mutex::new(None),
            coldest: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// Count a hot-cache hit.
    #[inline]
    pub(crate) fn touch(&self, stats: &KeyStats, now: Instant) {
        stats.touch(self.nanos(now), self.idle);
    }

    /// Count a peer fetch of `key`: its stats (created on first sight), and its
    /// `(hits, qps)` before this fetch.
    pub(crate) fn fetched(&self, key: &Bytes, now: Instant) -> (Arc<KeyStats>, u64, f64) {
        let now = self.nanos(now);
        let stats = match &self.candidates {
            Some(c) => c.get(key).unwrap_or_else(|| {
                let s = Arc::new(KeyStats::new(now));
                c.insert(key.clone(), s.clone());
                s
            }),
            None => Arc::new(KeyStats::new(now)),
        };
        let (hits, qps) = stats.val(now, self.idle);
        stats.touch(now, self.idle);
        (stats, hits, qps)
    }

    /// Keys evicted from the hot cache go back to the candidate list with their stats.
    pub(crate) fn requeue(&self, evicted: Vec<(Bytes, Entry)>) {
        let Some(c) = &self.candidates else { return };
        for (key, entry) in evicted {
            if let Some(stats) = entry.stats {
                c.insert(key, stats);
            }
        }
    }

    /// The lowest rate among a sample of `hot`'s entries, recomputed at most once a second.
    pub(crate) fn coldest_qps(&self, hot: &Tier, now: Instant) -> f64 {
        if let Some(mut gauged) = self.gauged.try_lock()
            && gauged.is_none_or(|at| now.saturating_duration_since(at) >= GAUGE_PERIOD)
        {
            let (at, idle) = (self.nanos(now), self.idle);
            let coldest = hot
                .sample(HOT_SAMPLE)
                .iter()
                .filter_map(|e| e.stats.as_ref())
                .map(|s| s.val(at, idle).1)
                .reduce(f64::min)
                .unwrap_or(0.0);
            self.coldest.store(coldest.to_bits(), Ordering::Relaxed);
            *gauged = Some(now);
        }
        f64::from_bits(self.coldest.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const IDLE: u64 = 60 * SEC;

    fn stats(hits: u64, qps: f64, free: u64, coldest: f64) -> PromoteStats {
        PromoteStats::new(hits, qps, 1000, HotStats::new(coldest, free, 1 << 20))
    }

    #[test]
    fn windowed_qps_matches_galaxycache() {
        let s = KeyStats::new(0);
        assert_eq!(s.val(0, IDLE), (0, 0.0), "a new candidate has no hits");
        s.touch(0, IDLE);
        // The second request right after the first: 1 hit over the 100 ms minimum age.
        assert_eq!(s.val(SEC / 1000, IDLE), (1, 10.0));
        for _ in 0..9 {
            s.touch(SEC / 2, IDLE);
        }
        assert_eq!(s.val(SEC, IDLE), (10, 10.0));
        assert_eq!(
            s.val(SEC / 2 + IDLE + 1, IDLE),
            (0, 0.0),
            "idle keys read as cold"
        );
        s.touch(100 * SEC, IDLE);
        assert_eq!(
            s.val(100 * SEC, IDLE),
            (1, 10.0),
            "an idle key starts a new window"
        );
    }

    #[test]
    fn qps_promoter_never_promotes_a_first_fetch() {
        let p = QpsPromoter;
        let v = Bytes::new();
        // galaxycache would promote this (0 >= 0 into an empty hot cache).
        assert!(!p.should_promote(b"k", &v, &stats(0, 0.0, 1 << 20, 0.0)));
        assert!(
            p.should_promote(b"k", &v, &stats(1, 0.1, 1 << 20, 50.0)),
            "fits in free space"
        );
        assert!(
            !p.should_promote(b"k", &v, &stats(1, 0.1, 0, 50.0)),
            "full, colder than residents"
        );
        assert!(
            p.should_promote(b"k", &v, &stats(5, 60.0, 0, 50.0)),
            "full, hotter than residents"
        );
    }

    #[test]
    fn fixed_promoters() {
        let s = stats(0, 0.0, 0, 0.0);
        let v = Bytes::new();
        assert!(!NeverPromote.should_promote(b"k", &v, &s));
        assert!(AlwaysPromote.should_promote(b"k", &v, &s));
        assert!(!Probabilistic(0).should_promote(b"k", &v, &s));
        assert!(Probabilistic(1).should_promote(b"k", &v, &s));
        let n = (0..10_000)
            .filter(|_| Probabilistic::default().should_promote(b"k", &v, &s))
            .count();
        assert!((700..1300).contains(&n), "1 in 10 of 10000 gave {n}");
    }

    #[tokio::test(start_paused = true)]
    async fn candidates_are_bounded_and_remember_keys() {
        let t = Tracker::new(64, Duration::from_secs(60));
        let now = Instant::now();
        let k = Bytes::from_static(b"k");
        assert_eq!(t.fetched(&k, now).1, 0);
        assert_eq!(t.fetched(&k, now).1, 1);
        for i in 0..1000 {
            t.fetched(&Bytes::from(format!("other{i}")), now);
        }
        assert!(t.candidates.as_ref().unwrap().len() <= 64);

        let none = Tracker::new(0, Duration::from_secs(60));
        assert_eq!(none.fetched(&k, now).1, 0);
        assert_eq!(
            none.fetched(&k, now).1,
            0,
            "without candidates every fetch looks new"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn coldest_rate_is_recomputed_at_most_once_a_second() {
        let t = Tracker::new(64, Duration::from_secs(60));
        let hot = Tier::new(1 << 20, 4096);
        let now = Instant::now();
        assert_eq!(t.coldest_qps(&hot, now), 0.0, "empty hot cache");
        let k = Bytes::from_static(b"k");
        let (s, _, _) = t.fetched(&k, now);
        for _ in 0..9 {
            t.touch(&s, now);
        }
        hot.insert(
            k,
            Entry {
                value: Some(Bytes::new()),
                expires: None,
                stats: Some(s),
            },
        )
        .unwrap();
        assert_eq!(t.coldest_qps(&hot, now), 0.0, "still the cached reading");
        let later = now + Duration::from_secs(1);
        assert_eq!(
            t.coldest_qps(&hot, later),
            10.0,
            "10 requests in the first second"
        );
    }
}
