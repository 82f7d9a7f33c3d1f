//! A snapshot of the cluster: the ring, a client per other member, and the ring before the
//! last change (for warm handoff). Swapped whole with `ArcSwap` on every membership change;
//! read once per load, never on a cache hit.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use shoal_cache::{Peer, Peers};
use shoal_ring::Ring;
use tokio::time::Instant;

use crate::PeerClient;

/// One version of the cluster.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) version: u64,
    /// The ring over every member (this node included when it is a member).
    pub(crate) ring: Option<Arc<dyn Ring>>,
    /// Clients for every member but this node, by member string.
    pub(crate) peers: HashMap<String, Arc<PeerClient>>,
    /// Clients of members that were in the previous view and are not in this one: warm
    /// handoff may still peek at a member that is leaving gracefully (it drains before it
    /// exits).
    pub(crate) departed: HashMap<String, Arc<PeerClient>>,
    /// Who owned keys before this view: the previous ring, or at start-up the ring of the
    /// other members (galaxycache's "fallthrough owner").
    pub(crate) previous: Option<Arc<dyn Ring>>,
    /// When this view was installed.
    pub(crate) since: Instant,
}

impl View {
    pub(crate) fn empty() -> Self {
        View {
            version: 0,
            ring: None,
            peers: HashMap::new(),
            departed: HashMap::new(),
            previous: None,
            since: Instant::now(),
        }
    }
}

/// The current view, shared by the cluster, the groups' [`Peers`] and handoff loaders.
#[derive(Debug)]
pub(crate) struct ViewCell {
    pub(crate) self_id: Arc<str>,
    pub(crate) view: ArcSwap<View>,
}

impl ViewCell {
    /// The member that owns `key`, unless it is this node (or the ring is empty).
    pub(crate) fn remote_owner(&self, key: &[u8]) -> Option<Arc<PeerClient>> {
        let view = self.view.load();
        let owner = view.ring.as_ref()?.owner(key)?;
        if *owner.name == *self.self_id {
            return None;
        }
        view.peers.get(&owner.name).cloned()
    }
}

/// The [`Peers`] every group of a cluster gets: the owner under the current view.
#[derive(Debug)]
pub(crate) struct ClusterPeers(pub(crate) Arc<ViewCell>);

impl Peers for ClusterPeers {
    fn pick(&self, key: &[u8]) -> Option<Arc<dyn Peer>> {
        self.0.remote_owner(key).map(|c| c as Arc<dyn Peer>)
    }
}
