//! Writes in flight per migration state, so a switch can wait for the writes that were placed
//! under the previous state.
//!
//! A PUT admitted under `old` goes to the old ring only. If it is still running when the router
//! switches to `both` and `shoal repair --list` starts, the listing can miss the file, and after
//! `finish` no ring that reads look at holds it. Likewise a write admitted under `both` that
//! lands on an old-ring node after the clean-up listed it leaves a misplaced copy. Waiting for
//! those writes after each switch closes both gaps.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::migration::MigrationState;

#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    counts: [AtomicUsize; 3],
    idle: Notify,
}

/// Held while one write runs; released on drop.
pub(crate) struct WriteGuard<'a> {
    gate: &'a WriteGate,
    state: usize,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.gate.counts[self.state].fetch_sub(1, Ordering::SeqCst) == 1 {
            self.gate.idle.notify_waiters();
        }
    }
}

impl WriteGate {
    /// Admits a write under the current state of `state`. The count is raised before the state
    /// is read again (both SeqCst): either the switcher's later count check sees this write, or
    /// this write sees the new state and is admitted under it instead.
    pub(crate) fn enter<'a>(&'a self, state: &AtomicU8) -> (MigrationState, WriteGuard<'a>) {
        loop {
            let s = state.load(Ordering::SeqCst);
            let i = usize::from(s).min(2);
            self.counts[i].fetch_add(1, Ordering::SeqCst);
            let guard = WriteGuard {
                gate: self,
                state: i,
            };
            if state.load(Ordering::SeqCst) == s {
                return (MigrationState::from_u8(s), guard);
            }
        }
    }

    /// Writes in flight that were admitted under a state other than `now`.
    pub(crate) fn others(&self, now: MigrationState) -> usize {
        (0..3)
            .filter(|&i| i != now as usize)
            .map(|i| self.counts[i].load(Ordering::SeqCst))
            .sum()
    }

    /// Waits until no write admitted under a state other than `now` is in flight, at most
    /// `timeout`; returns how many still are (0: drained).
    pub(crate) async fn drain(&self, now: MigrationState, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let left = self.others(now);
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.others(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_switch_waits_for_writes_admitted_before_it() {
        let gate = WriteGate::default();
        let state = AtomicU8::new(MigrationState::Old as u8);
        let (s, guard) = gate.enter(&state);
        assert_eq!(s, MigrationState::Old);
        state.store(MigrationState::Both as u8, Ordering::SeqCst);
        let (s2, g2) = gate.enter(&state);
        assert_eq!(s2, MigrationState::Both);
        assert_eq!(gate.others(MigrationState::Both), 1);
        assert_eq!(
            gate.drain(MigrationState::Both, Duration::from_millis(20))
                .await,
            1,
            "the old write is still running"
        );
        let release = async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(guard);
        };
        let (left, ()) = tokio::join!(
            gate.drain(MigrationState::Both, Duration::from_secs(10)),
            release
        );
        assert_eq!(left, 0);
        drop(g2);
        assert_eq!(gate.others(MigrationState::Old), 0);
    }
}
