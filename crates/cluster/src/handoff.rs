//! Warm handoff: when a key's owner changes, the new owner first asks the previous owner
//! whether it still has the value in memory (a peek), and only loads it from the origin if
//! not. galaxycache does this for `WarmTime` after start-up ("previous peer peeking"); we
//! also do it for a while after every membership change.
//!
//! "Previous owner" means the most recent owner other than this node over the rings of
//! the warm time, not just the owner under the last ring (`View::earlier_owner` tells of
//! the rolling restart that needs it). If it has nothing, up to 8 other members (current
//! ones and those that left within the warm time) are asked at once, and the first value
//! wins (`HandoffLoader::peek_wide` says why).
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

use crate::PeerClient;
use crate::metrics::{HANDOFF_HITS, HANDOFF_MISSES};
use crate::view::ViewCell;

/// The most other members asked at once when the earlier owner has nothing.
const MAX_WIDE_PEEKS: usize = 8;

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

    async fn peek_previous_owner(&self, key: &Bytes) -> Option<Loaded> {
        let group = self.group.get()?;
        let (first, others) = {
            let view = self.cell.view.load();
            // Only for keys this node owns now (not for a fallback load of someone else's).
            let owner = view.ring.as_ref()?.owner(key)?;
            if *owner.name != *self.cell.self_id {
                return None;
            }
            if !view.warm(self.settings.warm_time) {
                return None;
            }
            // A previous owner that has just left may still be draining: it is asked too.
            let first = view.earlier_owner(key, &self.cell.self_id, self.settings.warm_time);
            let others: Vec<Arc<PeerClient>> = view
                .peers
                .values()
                .chain(view.departed.values())
                .filter(|c| first.as_ref().is_none_or(|f| !Arc::ptr_eq(f, c)))
                .take(MAX_WIDE_PEEKS)
                .cloned()
                .collect();
            (first, others)
        };
        let found = match first {
            Some(client) => self.peek(group, &client, key).await,
            None => None,
        };
        let found = match found {
            Some(v) => Some(v),
            None => self.peek_wide(group, others, key).await,
        };
        let outcome = if found.is_some() {
            HANDOFF_HITS
        } else {
            HANDOFF_MISSES
        };
        counter!(outcome, "group" => group.to_string()).increment(1);
        found
    }

    async fn peek(&self, group: &str, client: &PeerClient, key: &[u8]) -> Option<Loaded> {
        tokio::time::timeout(self.settings.peek_timeout, client.peek(group, key))
            .await
            .ok()?
            .ok()
    }

    /// Ask `clients` at once; the first value wins. Why: the earlier owner is not the only
    /// place a key can be warm. A node that is not a key's owner answers its clients from
    /// what it holds (its hot cache, or a main-cache copy from when it owned the key)
    /// without asking the owner. So after a rolling restart brings an owner back empty, the
    /// owner may never be asked for some of its keys while those copies serve them; then
    /// the node that held them while the owner was away restarts too, the earlier owner has
    /// nothing, and the only warm copies left are on other nodes. Seen in the rolling
    /// restart test as ~15-30 origin loads per restart (of 200 keys), growing with the
    /// number of nodes already restarted.
    async fn peek_wide(
        &self,
        group: &Arc<str>,
        clients: Vec<Arc<PeerClient>>,
        key: &Bytes,
    ) -> Option<Loaded> {
        let mut peeks = tokio::task::JoinSet::new();
        for client in clients {
            let (group, key, timeout) = (group.clone(), key.clone(), self.settings.peek_timeout);
            peeks.spawn(async move {
                tokio::time::timeout(timeout, client.peek(&group, &key))
                    .await
                    .ok()?
                    .ok()
            });
        }
        while let Some(done) = peeks.join_next().await {
            if let Ok(Some(found)) = done {
                // Dropping the set cancels the peeks still out.
                return Some(found);
            }
        }
        None
    }
}

impl<L: Loader> Loader for HandoffLoader<L> {
    async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
        if let Some(found) = self.peek_previous_owner(&key).await {
            return Ok(found);
        }
        self.inner.load(key).await
    }

    fn forget(&self, key: &[u8]) {
        self.inner.forget(key);
    }
}
