//! SWIM gossip membership (foca, over our own tokio UDP transport).
//!
//! Each node gossips on a UDP port; its identity carries its peer URL, so every member can
//! put it in the ring. A node joins through one or more seed addresses (retried with
//! back-off until one answers), probes members (direct, then indirect probes), suspects a
//! member that does not answer, and declares it down after the suspicion timeout unless it
//! refutes. Every `announce_every` a node asks a random member for its full member list
//! (anti-entropy: views converge after lost packets). A node that shuts down with
//! [`GossipMembership::leave`] tells the others, which drop it at once; a node that
//! crashes (or whose handle is dropped) is detected by probing.
//!
//! Detection time of a crashed node in a cluster of N: at most about
//! `N × probe_period` (until someone probes it) `+ probe_rtt + suspect_to_down_after`
//! (times the local health multiplier if the detector is itself slow), plus a gossip
//! round. With the defaults and N = 5: about 5 + 0.5 + 3 = 8.5 s worst case.

mod agent;
mod health;
mod id;
mod seal;

use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use foca::{Config, PeriodicParams};
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::agent::{Agent, Command};
use super::{MemberInfo, MemberSet, Membership, MembershipError, Publisher};

/// Settings of [`GossipMembership`].
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// UDP address to gossip on.
    pub bind: SocketAddr,
    /// The address other members send to (default: the bound address).
    pub advertise: Option<SocketAddr>,
    /// This node's peer URL, as it appears in the ring.
    pub peer_url: String,
    /// Gossip addresses of members to join through (none: start a new cluster).
    pub seeds: Vec<SocketAddr>,
    /// A shared key: every packet carries an HMAC-SHA256 tag; others are dropped.
    pub key: Option<Vec<u8>>,
    /// How often a member is probed (default 1 s).
    pub probe_period: Duration,
    /// How long a probe waits for an answer before asking others to probe (default 500 ms).
    pub probe_rtt: Duration,
    /// How long a suspect has to refute before it is declared down (default 3 s).
    pub suspect_to_down_after: Duration,
    /// How often updates are gossiped to 3 random members (default 200 ms).
    pub gossip_every: Duration,
    /// How often the full member list is fetched from a random member (default 10 s).
    pub announce_every: Duration,
    /// Expected cluster size: sets how often an update is retransmitted (default 16).
    pub expected_size: u32,
}

impl GossipConfig {
    /// Defaults for a LAN, gossiping on `bind` for the peer at `peer_url`.
    pub fn new(bind: SocketAddr, peer_url: impl Into<String>) -> Self {
        GossipConfig {
            bind,
            advertise: None,
            peer_url: peer_url.into(),
            seeds: Vec::new(),
            key: None,
            probe_period: Duration::from_secs(1),
            probe_rtt: Duration::from_millis(500),
            suspect_to_down_after: Duration::from_secs(3),
            gossip_every: Duration::from_millis(200),
            announce_every: Duration::from_secs(10),
            expected_size: 16,
        }
    }

    /// Fast timings for tests on loopback: probe every 200 ms, 100 ms RTT, 600 ms
    /// suspicion, gossip every 50 ms, anti-entropy every 1 s.
    pub fn fast(mut self) -> Self {
        self.probe_period = Duration::from_millis(200);
        self.probe_rtt = Duration::from_millis(100);
        self.suspect_to_down_after = Duration::from_millis(600);
        self.gossip_every = Duration::from_millis(50);
        self.announce_every = Duration::from_secs(1);
        self
    }

    /// gce-cache-cluster's `[cluster] heartbeat`: probe a member every `every`, and wait at
    /// most half of that for its answer (the probe must end before the next one starts).
    /// Zero leaves the timings as they are, as gce-cache-cluster's "not set".
    pub fn heartbeat(mut self, every: Duration) -> Self {
        if !every.is_zero() {
            self.probe_period = every;
            self.probe_rtt = self.probe_rtt.min(every / 2);
        }
        self
    }

    fn foca_config(&self) -> Result<Config, MembershipError> {
        let bad = |what: &str| MembershipError::Config {
            key: "gossip",
            message: format!("{what} must be positive and probe_rtt < probe_period"),
        };
        if self.probe_period.is_zero()
            || self.probe_rtt.is_zero()
            || self.probe_rtt >= self.probe_period
            || self.suspect_to_down_after.is_zero()
            || self.gossip_every.is_zero()
            || self.announce_every.is_zero()
        {
            return Err(bad("every period"));
        }
        let size = NonZeroU32::new(self.expected_size).unwrap_or(NonZeroU32::MIN);
        let mut c = Config::new_lan(size);
        c.probe_period = self.probe_period;
        c.probe_rtt = self.probe_rtt;
        c.suspect_to_down_after = self.suspect_to_down_after;
        c.num_indirect_probes = NonZeroUsize::MIN.saturating_add(2);
        c.max_transmissions = c.max_transmissions.max(NonZeroU8::MIN.saturating_add(4));
        c.periodic_gossip = Some(PeriodicParams {
            frequency: self.gossip_every,
            num_members: NonZeroUsize::MIN.saturating_add(2),
        });
        c.periodic_announce = Some(PeriodicParams {
            frequency: self.announce_every,
            num_members: NonZeroUsize::MIN,
        });
        c.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: self.announce_every * 3,
            num_members: NonZeroUsize::MIN,
        });
        Ok(c)
    }
}

/// SWIM gossip membership; see the [module docs](self).
///
/// Dropping it stops the gossip task without telling anyone (the others detect it as a
/// crash); call [`leave`](Self::leave) to shut down gracefully.
#[derive(Debug)]
pub struct GossipMembership {
    publisher: Publisher,
    commands: mpsc::Sender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
    local_addr: SocketAddr,
}

impl GossipMembership {
    /// Bind the gossip port and start gossiping in the background. Only a bad setting or a
    /// port that cannot be bound fails; unreachable seeds are retried with back-off.
    pub async fn start(config: GossipConfig) -> Result<Self, MembershipError> {
        let foca_config = config.foca_config()?;
        let socket = UdpSocket::bind(config.bind)
            .await
            .map_err(|e| MembershipError::Io {
                what: format!("binding the gossip port {}", config.bind),
                source: e,
            })?;
        let local_addr = socket.local_addr().map_err(|e| MembershipError::Io {
            what: "reading the gossip address".into(),
            source: e,
        })?;
        let advertise = config.advertise.unwrap_or(local_addr);
        let publisher = Publisher::new("gossip", &config.peer_url);
        let agent = Agent::new(
            id::NodeId::new(advertise, config.peer_url.clone()),
            foca_config,
            Arc::new(socket),
            seal::Sealer::new(config.key.as_deref()),
            publisher.clone(),
            config.seeds.clone(),
        );
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(agent.run(rx));
        tracing::info!(addr = %local_addr, url = %config.peer_url, seeds = ?config.seeds, "gossip: started");
        Ok(GossipMembership {
            publisher,
            commands: tx,
            task: Mutex::new(Some(task)),
            local_addr,
        })
    }

    /// The bound gossip address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Join through more seeds (for example the instances GCE discovery found).
    pub async fn add_seeds(&self, seeds: Vec<SocketAddr>) {
        let _ = self.commands.send(Command::Seeds(seeds)).await;
    }

    /// Add every seed list `seeds` publishes (for example [`GceDiscovery::seeds`]
    /// (crate::GceDiscovery::seeds)), until it closes or this membership stops.
    pub fn seed_from(&self, mut seeds: watch::Receiver<Vec<SocketAddr>>) {
        let commands = self.commands.clone();
        tokio::spawn(async move {
            loop {
                let list = seeds.borrow_and_update().clone();
                if !list.is_empty() && commands.send(Command::Seeds(list)).await.is_err() {
                    return;
                }
                if seeds.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Leave gracefully: tell the others (they drop this node at once), then stop. Waits
    /// at most `within`.
    pub async fn leave(&self, within: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(within, rx).await;
        }
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<MemberSet> {
        self.publisher.current()
    }
}

impl Drop for GossipMembership {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
    }
}

impl Membership for GossipMembership {
    fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>> {
        self.publisher.subscribe()
    }

    fn states(&self) -> Vec<MemberInfo> {
        self.publisher.states()
    }
}
