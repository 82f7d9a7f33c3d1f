//! `stale_if_error` bookkeeping: which expired values may still answer when a refresh fails,
//! and which keys are failing (answered with their stale value at once, refreshed in the
//! background once per [`STALE_RETRY`]).
//!
//! The failing keys live in a map of their own rather than in the tiers' entries, so that a hit
//! stays a read of the tier and nothing is re-inserted to change a key's state. The map is
//! bounded ([`MAX_FAILING`]) and swept of keys whose grace is over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::builder::STALE_RETRY;

/// Decides whether a value may be served stale at all (e.g. not when the object's own
/// `Cache-Control` forbids it).
pub(crate) type StalePredicate = dyn Fn(&[u8]) -> bool + Send + Sync;

/// Most keys remembered as failing at once. Past it a failing key is not remembered, and its
/// gets wait for their own refresh again, as before its first failure.
pub(crate) const MAX_FAILING: usize = 1 << 16;

pub(crate) struct Stale {
    /// How long past its expiry a value is kept; zero: off.
    pub(crate) grace: Duration,
    allowed: Option<Box<StalePredicate>>,
    failing: Mutex<Failing>,
    /// Removes so far, per slot of the key's hash: a flight that began before its key's
    /// slot moved never falls back to the copy it saw (a purge must not be undone by a
    /// refresh that was already under way). Slots, so that purges of other keys rarely
    /// matter, without a map to bound.
    removals: Box<[AtomicU64]>,
    hasher: quick_cache::DefaultHashBuilder,
}

const REMOVAL_SLOTS: usize = 256;

#[derive(Default)]
struct Failing {
    keys: HashMap<Bytes, Refresh>,
    /// Sweep once the map is this large, or a grace after the last sweep.
    sweep_at: usize,
    swept: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Refresh {
    /// When the first refresh failed: the value expired before, so its grace ends before
    /// `since + grace`.
    since: Instant,
    next: Next,
}

#[derive(Clone, Copy)]
enum Next {
    /// A background refresh may start at this time.
    Due(Instant),
    /// One is under way.
    Running,
}

impl Stale {
    pub(crate) fn new(grace: Duration, allowed: Option<Box<StalePredicate>>) -> Self {
        Stale {
            grace,
            allowed,
            failing: Mutex::new(Failing::default()),
            removals: (0..REMOVAL_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: quick_cache::DefaultHashBuilder::default(),
        }
    }

    fn slot(&self, key: &[u8]) -> &AtomicU64 {
        use std::hash::BuildHasher;
        &self.removals[self.hasher.hash_one(key) as usize % REMOVAL_SLOTS]
    }

    /// Whether a value expiring at `expires` is within the grace at `now` (a value that does
    /// not expire always is; a grace too long to represent never ends).
    pub(crate) fn within_grace(&self, expires: Option<Instant>, now: Instant) -> bool {
        match expires {
            None => true,
            Some(at) => at.checked_add(self.grace).is_none_or(|end| now < end),
        }
    }

    /// Whether `value` may answer a failed refresh.
    pub(crate) fn may_serve(&self, value: &[u8]) -> bool {
        !self.grace.is_zero() && self.allowed.as_ref().is_none_or(|ok| ok(value))
    }

    /// The count of removes of `key` (and of the keys sharing its slot) so far.
    pub(crate) fn epoch(&self, key: &[u8]) -> u64 {
        self.slot(key).load(Ordering::Acquire)
    }

    /// `key` was removed from the tiers (called after, so a flight that reads the new epoch
    /// cannot still find the removed copy).
    pub(crate) fn removed(&self, key: &[u8]) {
        self.slot(key).fetch_add(1, Ordering::AcqRel);
        self.clear(key);
    }

    /// Whether a refresh of `key` has failed and not succeeded since.
    pub(crate) fn is_failing(&self, key: &[u8]) -> bool {
        !self.grace.is_zero() && self.failing.lock().keys.contains_key(key)
    }

    /// For a get of `key`'s stale value: `None` if `key` is not failing (the get refreshes
    /// it and waits); else whether this get should start a background refresh (then counted
    /// as running, so one runs at a time).
    pub(crate) fn refresh_due(&self, key: &[u8]) -> Option<bool> {
        if self.grace.is_zero() {
            return None;
        }
        let mut f = self.failing.lock();
        let r = f.keys.get_mut(key)?;
        Some(match r.next {
            Next::Due(at) if Instant::now() >= at => {
                r.next = Next::Running;
                true
            }
            _ => false,
        })
    }

    /// A refresh of `key` failed and its stale value answered: answer with it at once until
    /// [`STALE_RETRY`] has passed.
    pub(crate) fn mark_failing(&self, key: &Bytes) {
        let now = Instant::now();
        let mut f = self.failing.lock();
        if let Some(r) = f.keys.get_mut(key) {
            r.next = Next::Due(now + STALE_RETRY);
            return;
        }
        let grace = self.grace;
        let sweep_due = f
            .swept
            .is_none_or(|t| t.checked_add(grace).is_some_and(|next| now >= next));
        if f.keys.len() >= f.sweep_at || sweep_due {
            f.swept = Some(now);
            f.keys
                .retain(|_, r| r.since.checked_add(grace).is_none_or(|end| end > now));
            f.sweep_at = (f.keys.len() * 2).clamp(64, MAX_FAILING);
        }
        if f.keys.len() < MAX_FAILING {
            let next = Next::Due(now + STALE_RETRY);
            f.keys.insert(key.clone(), Refresh { since: now, next });
        }
    }

    /// A background refresh of `key` ended without a fresh value: the next one is due after
    /// [`STALE_RETRY`] (unless the refresh already said so, or the key is not failing).
    pub(crate) fn refresh_ended(&self, key: &[u8]) {
        let mut f = self.failing.lock();
        if let Some(r) = f.keys.get_mut(key)
            && let Next::Running = r.next
        {
            r.next = Next::Due(Instant::now() + STALE_RETRY);
        }
    }

    /// `key` has a fresh value, or none at all: it is not failing.
    pub(crate) fn clear(&self, key: &[u8]) {
        if self.grace.is_zero() {
            return;
        }
        let mut f = self.failing.lock();
        if !f.keys.is_empty() {
            f.keys.remove(key);
        }
    }

    #[cfg(test)]
    fn failing_keys(&self) -> usize {
        self.failing.lock().keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_background_refresh_at_a_time_and_one_per_retry() {
        let s = Stale::new(Duration::from_secs(60), None);
        let k = Bytes::from_static(b"k");
        assert_eq!(s.refresh_due(&k), None, "not failing: the get refreshes");
        s.mark_failing(&k);
        assert_eq!(s.refresh_due(&k), Some(false));
        tokio::time::advance(STALE_RETRY).await;
        assert_eq!(s.refresh_due(&k), Some(true));
        assert_eq!(s.refresh_due(&k), Some(false), "one is running");
        tokio::time::advance(STALE_RETRY * 5).await;
        assert_eq!(s.refresh_due(&k), Some(false), "still running");
        s.refresh_ended(&k);
        assert_eq!(s.refresh_due(&k), Some(false));
        tokio::time::advance(STALE_RETRY).await;
        assert_eq!(s.refresh_due(&k), Some(true));
        s.clear(&k);
        assert_eq!(s.refresh_due(&k), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_map_is_swept_and_bounded() {
        let s = Stale::new(Duration::from_secs(10), None);
        for i in 0..100u32 {
            s.mark_failing(&Bytes::from(i.to_string()));
        }
        assert_eq!(s.failing_keys(), 100);
        tokio::time::advance(Duration::from_secs(10)).await;
        s.mark_failing(&Bytes::from_static(b"new"));
        assert_eq!(s.failing_keys(), 1, "keys past their grace are swept");
        for i in 0..(MAX_FAILING as u32 + 10) {
            s.mark_failing(&Bytes::from(i.to_string()));
        }
        assert_eq!(s.failing_keys(), MAX_FAILING);
    }

    #[test]
    fn the_predicate_and_a_zero_grace_refuse() {
        let s = Stale::new(Duration::from_secs(1), Some(Box::new(|v| v != b"strict")));
        assert!(s.may_serve(b"ok") && !s.may_serve(b"strict"));
        assert!(!Stale::new(Duration::ZERO, None).may_serve(b"ok"));
        let forever = Stale::new(Duration::MAX, None);
        assert!(forever.within_grace(Some(Instant::now()), Instant::now()));
    }
}
