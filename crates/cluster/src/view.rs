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
    /// Clients of members that left within the warm time: warm handoff may still peek at
    /// a member that is leaving gracefully (it drains before it exits), or at one that held
    /// a key a few changes ago.
    pub(crate) departed: HashMap<String, Arc<PeerClient>>,
    /// Who owned keys before this view, newest first: the rings this view replaced (within
    /// the warm time), or at start-up the ring of the other members (galaxycache's
    /// "fallthrough owner").
    pub(crate) previous: Vec<Previous>,
    /// Since when this node has been joining: it was alone (a dynamic source starts in
    /// local mode), and since then members have only been added, within the warm time.
    pub(crate) joining: Option<Instant>,
}

/// A ring that was in force until `until`.
#[derive(Debug, Clone)]
pub(crate) struct Previous {
    pub(crate) ring: Arc<dyn Ring>,
    pub(crate) until: Instant,
    /// The ring of the other members while this node was joining (galaxycache's
    /// fallthrough owner), not a ring this node used.
    pub(crate) fallthrough: bool,
}

/// The most rings warm handoff remembers (a rolling restart of N nodes makes 2N changes;
/// each peek asks only one earlier owner, so a longer memory costs no extra requests).
const MAX_PREVIOUS_RINGS: usize = 16;

impl View {
    pub(crate) fn empty() -> Self {
        View {
            version: 0,
            ring: None,
            peers: HashMap::new(),
            departed: HashMap::new(),
            previous: Vec::new(),
            joining: None,
        }
    }

    /// The earlier rings of the view that replaces this one with `members`, newest first,
    /// and whether this node is still joining.
    ///
    /// Normally the ring being replaced goes first, then the older ones still warm. But a
    /// joining node learns the others one or a few at a time (gossip from whoever reached
    /// it first, then the seed's full list); the rings it builds meanwhile are its own
    /// ignorance, not who held keys: before it came, the others used the ring of the others.
    /// So while joining (alone at first, only additions since, within the warm time), the
    /// history is that one ring, recomputed from the newest member list (`fallthrough`).
    pub(crate) fn next_history<E>(
        &self,
        members: &[&str],
        self_id: &str,
        fallthrough: impl FnOnce() -> Result<Option<Arc<dyn Ring>>, E>,
        now: Instant,
        warm_time: std::time::Duration,
    ) -> Result<(Vec<Previous>, Option<Instant>), E> {
        let old: Vec<&str> = self
            .ring
            .as_ref()
            .map(|r| r.members().iter().map(|m| m.name.as_str()).collect())
            .unwrap_or_default();
        let alone = old.is_empty() || old == [self_id];
        let only_added = old.iter().all(|m| members.contains(m));
        let joining = if alone {
            Some(now)
        } else {
            self.joining
                .filter(|t| only_added && now.duration_since(*t) <= warm_time)
        };
        let mut previous = Vec::new();
        let keep_older = if joining.is_some() {
            previous.extend(fallthrough()?.map(|ring| Previous {
                ring,
                until: now,
                fallthrough: true,
            }));
            // Only rings from before this node was alone (if it ever was in a cluster).
            |p: &&Previous| !p.fallthrough
        } else {
            previous.extend(self.ring.clone().map(|ring| Previous {
                ring,
                until: now,
                fallthrough: false,
            }));
            |_: &&Previous| true
        };
        previous.extend(
            self.previous
                .iter()
                .take_while(|p| now.duration_since(p.until) <= warm_time)
                .filter(keep_older)
                .take(MAX_PREVIOUS_RINGS - 1)
                .cloned(),
        );
        Ok((previous, joining))
    }

    /// Whether the last membership change was within `warm_time` (peeks happen only then).
    pub(crate) fn warm(&self, warm_time: std::time::Duration) -> bool {
        self.previous
            .first()
            .is_some_and(|p| p.until.elapsed() <= warm_time)
    }

    /// The client of the most recent earlier owner of `key` that is not `self_id`, among
    /// the rings replaced within `warm_time`.
    ///
    /// Why not just the last ring's owner: a node that restarts comes back with an empty
    /// cache and owns its keys again, but gets each one only when a client asks for it.
    /// If the member set changes again before that (the next node of a rolling restart
    /// leaves), the last ring says this node owned the key, so a peek there finds nothing
    /// and the key went to the origin, although the node that held it while this one was
    /// away still has it. Looking further back finds that node.
    pub(crate) fn earlier_owner(
        &self,
        key: &[u8],
        self_id: &str,
        warm_time: std::time::Duration,
    ) -> Option<Arc<PeerClient>> {
        let now = Instant::now();
        let owner = self
            .previous
            .iter()
            .take_while(|p| now.duration_since(p.until) <= warm_time)
            .filter_map(|p| p.ring.owner(key))
            .find(|m| *m.name != *self_id)?;
        self.peers
            .get(&owner.name)
            .or_else(|| self.departed.get(&owner.name))
            .cloned()
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
