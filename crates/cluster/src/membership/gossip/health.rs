//! Lifeguard's local health awareness, which foca lacks: a node that is itself slow (its
//! timers fire late because it is starved of CPU) probes less aggressively and waits longer
//! before declaring others down, instead of accusing healthy members.
//!
//! The score (Lifeguard's "local health multiplier") goes up by one when a timer fires
//! more than `tolerance` late and down by one when a probe timer fires on time, between 0
//! and [`MAX_SCORE`]. Probe and indirect-probe timers are delivered `1 + score` times later
//! than foca asked, and the suspicion timeout is `1 + score` times the configured one.

use std::time::Duration;

/// The highest score (Lifeguard's default `AwarenessMaxMultiplier` is 8).
pub(crate) const MAX_SCORE: u32 = 8;

/// The local health score.
#[derive(Debug, Clone)]
pub(crate) struct LocalHealth {
    score: u32,
    tolerance: Duration,
}

impl LocalHealth {
    pub(crate) fn new(tolerance: Duration) -> Self {
        LocalHealth {
            score: 0,
            tolerance,
        }
    }

    pub(crate) fn score(&self) -> u32 {
        self.score
    }

    /// A timer fired `late` after its deadline; `probe` if it was a probe timer. Returns
    /// whether the score changed.
    pub(crate) fn timer_fired(&mut self, late: Duration, probe: bool) -> bool {
        let before = self.score;
        if late > self.tolerance {
            self.score = (self.score + 1).min(MAX_SCORE);
        } else if probe {
            self.score = self.score.saturating_sub(1);
        }
        before != self.score
    }

    /// `d` scaled by the score.
    pub(crate) fn scale(&self, d: Duration) -> Duration {
        d * (1 + self.score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_timers_raise_the_score_and_on_time_probes_lower_it() {
        let mut h = LocalHealth::new(Duration::from_millis(50));
        for _ in 0..20 {
            h.timer_fired(Duration::from_millis(200), false);
        }
        assert_eq!(h.score(), MAX_SCORE);
        assert_eq!(h.scale(Duration::from_secs(1)), Duration::from_secs(9));
        // A non-probe timer on time says nothing about our health.
        assert!(!h.timer_fired(Duration::ZERO, false));
        for _ in 0..3 {
            h.timer_fired(Duration::from_millis(10), true);
        }
        assert_eq!(h.score(), MAX_SCORE - 3);
        for _ in 0..20 {
            h.timer_fired(Duration::ZERO, true);
        }
        assert_eq!(h.scale(Duration::from_secs(1)), Duration::from_secs(1));
    }
}
