//! Warm handoff: when a key's owner changes, the new owner first asks the previous owner
//! whether it still has the value in memory (a peek), and only loads it from the origin if
//! not. galaxycache does this for `WarmTime` after start-up ("previous peer peeking"); we
//! also do it for a while after every membership change.
//!
//! It wraps the group's loader, so it runs exactly where a load would: inside the key's
//! flight, only on this node's own keys, and its value lands in the main cache like a
//! loaded one. A peek miss, error or timeout falls through to the real loader.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use metrics::counter;
use shoal_cache::{LoadError, Loaded, Loader};

use crate::metrics::{HANDOFF_HITS, HANDOFF_MISSES};
use crate::view::ViewCell;

/// How long after a membership change to peek, and how long one peek may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    /// How long after a change (or start-up) to ask previous owners (galaxycache's
    /// `WarmTime`).
    pub warm_time: Duration,
    /// The longest a peek may take before we load ourselves (galaxycache's
    /// `PeekTimeout`; at least 100 µs).
    pub peek_timeout: Duration,
}

impl Default for Handoff {
    /// 60 s of warm time, 50 ms per peek.
    fn default() -> Self {
        Handoff {
            warm_time: Duration::from_secs(60),
            peek_timeout: Duration::from_millis(50),
        }
    }
}

/// A loader that peeks at a key's previous owner before calling the real one. Made by
/// [`Cluster::group`](crate::Cluster::group).
pub struct HandoffLoader<L> {
    inner: L,
    cell: Arc<ViewCell>,
    settings: Handoff,
    group: Arc<OnceLock<Arc<str>>>,
}

impl<L> fmt::Debug for HandoffLoader<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoffLoader")
            .field("settings", &self.settings)
            .field("group", &self.group.get())
            .finish_non_exhaustive()
    }
}

impl<L> HandoffLoader<L> {
    pub(crate) fn new(
        inner: L,
        cell: Arc<ViewCell>,
        settings: Handoff,
        group: Arc<OnceLock<Arc<str>>>,
    ) -> Self {
        HandoffLoader {
            inner,
            cell,
            settings,
            group,
        }
    }

    async fn peek_previous_owner(&self, key: &[u8]) -> Option<Loaded> {
        let group = self.group.get()?;
        let client = {
            let view = self.cell.view.load();
            if view.since.elapsed() > self.settings.warm_time {
                return None;
            }
            // Only for keys this node owns now (not for a fallback load of someone else's).
            let owner = view.ring.as_ref()?.owner(key)?;
            if *owner.name != *self.cell.self_id {
                return None;
            }
            let previous = view.previous.as_ref()?.owner(key)?;
            if *previous.name == *self.cell.self_id {
                return None;
            }
            // A previous owner that has just left may still be draining: ask it too.
            view.peers
                .get(&previous.name)
                .or_else(|| view.departed.get(&previous.name))?
                .clone()
        };
        let peek = tokio::time::timeout(self.settings.peek_timeout, client.peek(group, key));
        match peek.await {
            Ok(Ok(loaded)) => {
                counter!(HANDOFF_HITS, "group" => group.to_string()).increment(1);
                Some(loaded)
            }
            _ => {
                counter!(HANDOFF_MISSES, "group" => group.to_string()).increment(1);
                None
            }
        }
    }
}

impl<L: Loader> Loader for HandoffLoader<L> {
    async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
        if let Some(found) = self.peek_previous_owner(&key).await {
            return Ok(found);
        }
        self.inner.load(key).await
    }
}
