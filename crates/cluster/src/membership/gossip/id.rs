//! A gossip member's identity: its gossip address, its peer URL (the metadata every member
//! needs to put it in the ring) and a generation that lets a restarted node rejoin at once.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Who a gossip member is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct NodeId {
    /// Where it listens for gossip (UDP).
    pub(crate) addr: SocketAddr,
    /// Its peer URL, as it appears in the ring.
    pub(crate) url: String,
    /// Bumped on every start and every rejoin after being declared down: the higher one
    /// wins a conflict over the same address.
    pub(crate) generation: u64,
}

impl NodeId {
    pub(crate) fn new(addr: SocketAddr, url: String) -> Self {
        // Milliseconds since the epoch: a restart gets a higher generation than any
        // earlier run of the same address (clocks of one machine, or close enough).
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        NodeId {
            addr,
            url,
            generation,
        }
    }

    /// The identity used to announce to a seed (only its address matters).
    pub(crate) fn seed(addr: SocketAddr) -> Self {
        NodeId {
            addr,
            url: String::new(),
            generation: 0,
        }
    }
}

impl foca::Identity for NodeId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}
