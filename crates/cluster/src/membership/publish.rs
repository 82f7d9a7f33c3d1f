//! What every dynamic membership source shares: a [`Publisher`] that turns "the members I
//! see now" into versioned [`MemberSet`] snapshots (only when they change), the per-member
//! states behind `shoal members`, a retry [`Backoff`], and a [`Condition`] that logs a
//! failure once per change of state rather than once per attempt.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::MemberSet;
use crate::metrics::membership as m;

/// The state of one member, as its source sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// Answering (or registered, or listed).
    Alive,
    /// Suspected down by gossip; still in the ring until declared down (a flap must not
    /// move keys twice).
    Suspect,
    /// Declared down; not in the ring.
    Down,
    /// Left on purpose; not in the ring.
    Left,
}

impl MemberState {
    /// The lower-case name used in metrics, logs and `/members`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }

    /// Whether a member in this state is part of the ring.
    pub fn in_ring(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// One member and its state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberInfo {
    /// Its peer URL.
    pub url: String,
    /// What the source knows about it.
    pub state: MemberState,
}

/// Publishes versioned snapshots for a membership source.
#[derive(Debug, Clone)]
pub struct Publisher {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    source: &'static str,
    self_url: String,
    tx: watch::Sender<Arc<MemberSet>>,
    states: Mutex<Vec<MemberInfo>>,
}

impl Publisher {
    /// A publisher whose first snapshot (version 1) is this node alone: a node serves at
    /// once in local mode and joins in the background. `source` labels metrics and logs.
    pub fn new(source: &'static str, self_url: &str) -> Self {
        let first = MemberSet {
            version: 1,
            members: vec![self_url.to_owned()],
        };
        let states = vec![MemberInfo {
            url: self_url.to_owned(),
            state: MemberState::Alive,
        }];
        m::set_states(&states);
        Publisher {
            inner: Arc::new(Shared {
                source,
                self_url: self_url.to_owned(),
                tx: watch::Sender::new(Arc::new(first)),
                states: Mutex::new(states),
            }),
        }
    }

    /// This node's URL.
    pub fn self_url(&self) -> &str {
        &self.inner.self_url
    }

    /// Every snapshot from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>> {
        self.inner.tx.subscribe()
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<MemberSet> {
        self.inner.tx.borrow().clone()
    }

    /// Every member the source knows, with its state (this node included).
    pub fn states(&self) -> Vec<MemberInfo> {
        self.inner.states.lock().clone()
    }

    /// Publish what the source sees now. This node is always a member; the ring members are
    /// those [in the ring](MemberState::in_ring), sorted and without repeats. A new version
    /// is published only when the ring members change. Returns whether it was.
    pub fn publish(&self, mut seen: Vec<MemberInfo>) -> bool {
        seen.retain(|i| i.url != self.inner.self_url);
        seen.push(MemberInfo {
            url: self.inner.self_url.clone(),
            state: MemberState::Alive,
        });
        seen.sort();
        seen.dedup_by(|a, b| a.url == b.url);
        let mut members: Vec<String> = seen
            .iter()
            .filter(|i| i.state.in_ring())
            .map(|i| i.url.clone())
            .collect();
        members.sort();
        m::set_states(&seen);
        *self.inner.states.lock() = seen;
        let changed = self.inner.tx.send_if_modified(|cur| {
            if cur.members == members {
                return false;
            }
            *cur = Arc::new(MemberSet {
                version: cur.version + 1,
                members: members.clone(),
            });
            true
        });
        if changed {
            m::changed(self.inner.source);
            tracing::info!(source = self.inner.source, members = ?members, "membership: member set changed");
        }
        changed
    }
}

/// Exponential back-off between retries: `first`, doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Start at `first`, never wait more than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The wait before the next attempt (and double the one after).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// After a success: start from `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Logs a condition when it changes (failing → ok, ok → failing, or a different error),
/// never once per retry.
#[derive(Debug, Default)]
pub struct Condition {
    last: Option<String>,
}

impl Condition {
    /// Record a failure; logs it if it is new. `what` names the source and the step.
    pub fn failed(&mut self, what: &str, error: &dyn std::fmt::Display) {
        let text = error.to_string();
        if self.last.as_deref() != Some(text.as_str()) {
            tracing::warn!(error = %text, "{what}: failing (retrying with back-off; logged once until it changes)");
            self.last = Some(text);
        }
    }

    /// Record a success; logs the recovery if it was failing.
    pub fn ok(&mut self, what: &str) {
        if self.last.take().is_some() {
            tracing::info!("{what}: recovered");
        }
    }

    /// Whether the last attempt failed.
    pub fn failing(&self) -> bool {
        self.last.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(url: &str, state: MemberState) -> MemberInfo {
        MemberInfo {
            url: url.into(),
            state,
        }
    }

    #[test]
    fn publishes_only_changes_and_keeps_suspects_in_the_ring() {
        let p = Publisher::new("test", "http://127.0.0.1:2");
        let rx = p.subscribe();
        assert_eq!(rx.borrow().members, ["http://127.0.0.1:2"]);
        assert!(p.publish(vec![info("http://127.0.0.1:1", MemberState::Alive)]));
        assert_eq!(p.current().version, 2);
        assert!(!p.publish(vec![info("http://127.0.0.1:1", MemberState::Suspect)]));
        assert_eq!(p.current().version, 2);
        assert!(p.publish(vec![info("http://127.0.0.1:1", MemberState::Down)]));
        assert_eq!(p.current().members, ["http://127.0.0.1:2"]);
        assert_eq!(p.states().len(), 2);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
