//! Who is in the cluster: [`Membership`] sources publish [`MemberSet`]s, and
//! [`StaticMembership`] is the fixed list given on the command line or in the config file.
//!
//! Dynamic sources start with this node alone (it serves at once, in local mode) and join in
//! the background: [`FileMembership`] (a members file reloaded on change or SIGHUP),
//! [`GossipMembership`] (SWIM), [`EtcdMembership`], [`DnsMembership`],
//! [`GceDiscovery`] (seeds gossip). Each publishes through a [`Publisher`].
//!
//! The `shoal` binary maps its flags onto [`StaticMembership::parse`]: `--self URL --peers
//! URL,URL,...`, and chunkproxy's `--pooladdr URL --poolpeers URL,URL,...` (the same two
//! values under their old names).

mod dns;
mod error;
// etcd-client's build needs protoc; binaries that do not use etcd can leave it out.
#[cfg(feature = "etcd")]
mod etcd;
mod file;
mod gce;
mod gossip;
mod publish;

use std::sync::Arc;

use tokio::sync::watch;

pub use dns::{DnsConfig, DnsMembership, DnsRecords};
pub use error::MembershipError;
#[cfg(feature = "etcd")]
pub use etcd::{EtcdConfig, EtcdMembership};
pub use file::FileMembership;
pub use gce::{GceConfig, GceDiscovery, GceIni};
pub use gossip::{GossipConfig, GossipMembership};
pub use publish::{Backoff, Condition, MemberInfo, MemberState, Publisher};

use crate::{ClusterError, PeerUrl};

/// One version of the member list: peer URLs exactly as given (the ring hashes them as
/// strings, so every node must spell them the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSet {
    /// Increases with every change.
    pub version: u64,
    /// The members' URLs.
    pub members: Vec<String>,
}

/// A source of member lists over time.
pub trait Membership: Send + Sync + 'static {
    /// The current member list, and every later one.
    fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>>;

    /// Every member the source knows and its state (for `shoal members`). By default: the
    /// current members, all alive.
    fn states(&self) -> Vec<MemberInfo> {
        self.subscribe()
            .borrow()
            .members
            .iter()
            .map(|url| MemberInfo {
                url: url.clone(),
                state: MemberState::Alive,
            })
            .collect()
    }
}

/// A fixed member list that includes this node.
#[derive(Debug)]
pub struct StaticMembership {
    self_url: PeerUrl,
    members: Vec<PeerUrl>,
    tx: watch::Sender<Arc<MemberSet>>,
}

impl StaticMembership {
    /// Members from a list. Every URL must parse, none may repeat, and `self_url` must be
    /// exactly one of them (as golang/groupcache requires); a member that differs from
    /// `self_url` only in spelling is pointed out in the error.
    pub fn new(self_url: &str, peers: &[&str]) -> Result<Self, ClusterError> {
        let self_parsed = PeerUrl::parse(self_url)?;
        let members = validate(peers)?;
        if !members.iter().any(|m| m.as_str() == self_url) {
            let hint = members
                .iter()
                .find(|m| m.same_endpoint(&self_parsed))
                .map(|m| format!(" (did you mean {:?}?)", m.as_str()))
                .unwrap_or_default();
            return Err(ClusterError::SelfNotInPeers {
                self_id: self_url.to_owned(),
                peers: peers.join(","),
                hint,
            });
        }
        let set = MemberSet {
            version: 1,
            members: peers.iter().map(|p| (*p).to_owned()).collect(),
        };
        Ok(StaticMembership {
            self_url: self_parsed,
            members,
            tx: watch::Sender::new(Arc::new(set)),
        })
    }

    /// Members from a comma-separated list (`--peers`); spaces around the commas are
    /// ignored, empty entries are not allowed.
    pub fn parse(self_url: &str, peers: &str) -> Result<Self, ClusterError> {
        let list: Vec<&str> = if peers.trim().is_empty() {
            Vec::new()
        } else {
            peers.split(',').map(str::trim).collect()
        };
        Self::new(self_url.trim(), &list)
    }

    /// This node's URL.
    pub fn self_url(&self) -> &PeerUrl {
        &self.self_url
    }

    /// Every member, this node included, in the order given.
    pub fn members(&self) -> &[PeerUrl] {
        &self.members
    }
}

impl Membership for StaticMembership {
    fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>> {
        self.tx.subscribe()
    }
}

/// Parse a member list: non-empty, every URL valid, no duplicates (however spelled).
pub(crate) fn validate(peers: &[&str]) -> Result<Vec<PeerUrl>, ClusterError> {
    if peers.is_empty() {
        return Err(ClusterError::NoPeers);
    }
    let mut out: Vec<PeerUrl> = Vec::with_capacity(peers.len());
    for p in peers {
        let url = PeerUrl::parse(p)?;
        if out.iter().any(|u| u.same_endpoint(&url)) {
            return Err(ClusterError::DuplicatePeer {
                url: (*p).to_owned(),
            });
        }
        out.push(url);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_must_be_one_of_the_peers() {
        let m = StaticMembership::parse(
            "http://127.0.0.1:2",
            "http://127.0.0.1:1, http://127.0.0.1:2",
        )
        .unwrap();
        assert_eq!(m.self_url().as_str(), "http://127.0.0.1:2");
        assert_eq!(m.members().len(), 2);
        assert_eq!(
            m.subscribe().borrow().members,
            ["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );

        let e = StaticMembership::parse(
            "http://127.0.0.1:3",
            "http://127.0.0.1:1,http://127.0.0.1:2",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("self \"http://127.0.0.1:3\" is not in the peer list"),
            "{e}"
        );
        let e = StaticMembership::parse("127.0.0.1:2", "http://127.0.0.1:1,http://127.0.0.1:2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean \"http://127.0.0.1:2\""), "{e}");
    }

    #[test]
    fn refuses_empty_bad_and_duplicate_lists() {
        assert!(matches!(
            StaticMembership::parse("http://a:1", ""),
            Err(ClusterError::NoPeers)
        ));
        assert!(matches!(
            StaticMembership::parse("http://a:1", "http://a:1,,http://b:1"),
            Err(ClusterError::BadPeerUrl { .. })
        ));
        assert!(matches!(
            StaticMembership::parse("http://a:1", "http://a:1,a:1"),
            Err(ClusterError::DuplicatePeer { .. })
        ));
        assert!(matches!(
            StaticMembership::parse("ftp://a:1", "ftp://a:1"),
            Err(ClusterError::BadPeerUrl { .. })
        ));
    }
}
