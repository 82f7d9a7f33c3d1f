//! Expiry: capping the lifetime of loaded values (galaxycache's `capExpiry`) and deciding
//! whether an entry is still valid.
//!
//! Times are [`tokio::time::Instant`]s so tests can pause and advance the clock.

use std::time::Duration;

use tokio::time::Instant;

/// A cap on how long a loaded or peer-fetched value may live, with random jitter so that
/// values loaded together do not all expire together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TtlCap {
    max_ttl: Duration,
    jitter: Duration,
}

impl TtlCap {
    /// A cap of `max_ttl`; `jitter` is clamped to `max_ttl`. `None` when `max_ttl` is zero
    /// (no cap), as galaxycache treats `maxTTL <= 0`.
    pub(crate) fn new(max_ttl: Duration, jitter: Duration) -> Option<Self> {
        (!max_ttl.is_zero()).then(|| TtlCap {
            max_ttl,
            jitter: jitter.min(max_ttl),
        })
    }

    /// Apply the cap at `now`: keep `expires` when it is set and no later than
    /// `now + max_ttl + jitter`; otherwise (unset or too far) return
    /// `now + max_ttl - rand(0..jitter)`.
    pub(crate) fn apply(&self, expires: Option<Instant>, now: Instant) -> Option<Instant> {
        if let Some(at) = expires
            && at.saturating_duration_since(now) <= self.max_ttl.saturating_add(self.jitter)
        {
            return Some(at);
        }
        let jitter = self.jitter.as_nanos() as u64;
        let minus = if jitter == 0 {
            0
        } else {
            rand::random_range(0..jitter)
        };
        // A cap too far in the future to represent is no cap.
        now.checked_add(self.max_ttl - Duration::from_nanos(minus))
            .or(expires)
    }
}

/// Apply an optional cap.
pub(crate) fn cap_expiry(cap: Option<TtlCap>, expires: Option<Instant>) -> Option<Instant> {
    match cap {
        Some(cap) => cap.apply(expires, Instant::now()),
        None => expires,
    }
}

/// Whether a value expiring at `expires` is expired at `now`. The boundary counts as
/// expired, as in galaxycache's LRU.
pub(crate) fn is_expired(expires: Option<Instant>, now: Instant) -> bool {
    expires.is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn zero_max_ttl_is_no_cap_and_jitter_is_clamped() {
        assert_eq!(TtlCap::new(Duration::ZERO, S), None);
        let cap = TtlCap::new(S, 10 * S).unwrap();
        assert_eq!(cap.jitter, S);
        assert_eq!(cap_expiry(None, None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn cap_keeps_near_expiries_and_caps_far_ones() {
        let now = Instant::now();
        let cap = TtlCap::new(60 * S, 10 * S).unwrap();
        // Within max_ttl + jitter: kept exactly, including the boundary and the past.
        for keep in [now + 5 * S, now + 70 * S, now - S] {
            assert_eq!(cap.apply(Some(keep), now), Some(keep));
        }
        // Too far, or never: now + max_ttl - [0, jitter).
        for far in [Some(now + 71 * S), Some(now + 3600 * S), None] {
            for _ in 0..100 {
                let got = cap.apply(far, now).unwrap();
                assert!(got <= now + 60 * S && got > now + 50 * S, "{got:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_jitter_the_cap_is_exact() {
        let now = Instant::now();
        let cap = TtlCap::new(60 * S, Duration::ZERO).unwrap();
        assert_eq!(cap.apply(None, now), Some(now + 60 * S));
        assert_eq!(cap.apply(Some(now + 61 * S), now), Some(now + 60 * S));
        assert_eq!(cap.apply(Some(now + 60 * S), now), Some(now + 60 * S));
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_caps_do_not_overflow() {
        let now = Instant::now();
        let cap = TtlCap::new(Duration::MAX, Duration::MAX).unwrap();
        assert_eq!(cap.apply(None, now), None);
        assert_eq!(cap.apply(Some(now + S), now), Some(now + S));
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_boundary_counts_as_expired() {
        let now = Instant::now();
        assert!(!is_expired(None, now));
        assert!(!is_expired(Some(now + S), now));
        assert!(is_expired(Some(now), now));
        assert!(is_expired(Some(now - S), now));
    }
}
