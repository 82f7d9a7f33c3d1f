//! [`Cluster`]: joins a ring of members to this node's groups, and serves them to peers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use shoal_cache::{Group, GroupBuilder, Loader};
use shoal_ring::{Algorithm, Ring};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::groups::Groups;
use crate::handoff::{Handoff, HandoffLoader};
use crate::membership::{MemberSet, Membership, validate};
use crate::server::ServeSettings;
use crate::tls::Tls;
use crate::transport::Transport;
use crate::view::{ClusterPeers, View, ViewCell};
use crate::{
    ClusterError, PeerClient, PeerError, PeerServer, PeerUrl, Protocol, Secret, TlsConfig,
};

/// Default time a peer has to answer one request.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest value accepted from a peer: 64 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 << 20;
/// Default limit of simultaneous connections to the peer port.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Settings of a [`Cluster`]; start with [`Cluster::builder`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    self_url: String,
    protocol: Protocol,
    algorithm: Algorithm,
    fetch_timeout: Duration,
    max_value_bytes: usize,
    max_connections: usize,
    shutdown_grace: Duration,
    secret: Option<Secret>,
    tls: Option<TlsConfig>,
    handoff: Option<Handoff>,
}

impl ClusterBuilder {
    /// How members ask each other (default [`Protocol::Native`]).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The placement algorithm over member URLs (default [`Algorithm::Groupcache`]:
    /// golang/groupcache's ring, so a mixed cluster with Go nodes agrees on owners).
    /// [`Algorithm::Rendezvous`] places keys by the whole member URL and gives each member
    /// its fair share almost exactly (a ring of 50 points per member is off by ±30%).
    /// Other algorithms over `host:port` need members spelled `host:port`.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// How long a peer has to answer (default 5 s); after that the key is loaded locally.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// The largest value accepted from, and served to, a peer (default 64 MiB).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// The most simultaneous connections to the peer port (default 1024).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// How long [`PeerServer::shutdown`] waits for in-flight requests (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Require (as a server) and send (as a client) this shared secret.
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Serve the peer port over TLS (mTLS by default) and use TLS to `https://` members.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Peek at previous owners after membership changes (off by default).
    pub fn handoff(mut self, handoff: Handoff) -> Self {
        self.handoff = Some(handoff);
        self
    }

    /// Check the settings, then make the cluster with `membership`'s current members and
    /// follow its changes (see [`Cluster::follow`]). Must be called within a tokio runtime.
    pub fn build_following(self, membership: &dyn Membership) -> Result<Cluster, ClusterError> {
        let mut rx = membership.subscribe();
        let first: Arc<MemberSet> = rx.borrow_and_update().clone();
        let cluster = self.build(&as_strs(&first))?;
        cluster.follow_changes(rx);
        Ok(cluster)
    }

    /// Check the settings, then make the cluster with `members` (see
    /// [`Cluster::set_members`]).
    pub fn build(self, members: &[&str]) -> Result<Cluster, ClusterError> {
        let self_url = PeerUrl::parse(&self.self_url)?;
        if self.fetch_timeout.is_zero() {
            return Err(bad("fetch timeout", "0s", "a positive duration"));
        }
        if let Some(h) = self.handoff
            && h.peek_timeout < Duration::from_micros(100)
        {
            return Err(bad(
                "handoff peek timeout",
                &format!("{:?}", h.peek_timeout),
                "at least 100µs",
            ));
        }
        let tls = self.tls.as_ref().map(TlsConfig::build).transpose()?;
        if self_url.scheme() == crate::Scheme::Https && tls.is_none() {
            return Err(bad(
                "self",
                self_url.as_str(),
                "an http:// URL, or TLS certificates for https://",
            ));
        }
        let transport = Transport::new(
            self.protocol,
            tls.as_ref(),
            self.secret.clone(),
            self.fetch_timeout,
            self.max_value_bytes,
        );
        let cluster = Cluster {
            inner: Arc::new(Inner {
                cell: Arc::new(ViewCell {
                    self_id: self_url.as_str().into(),
                    view: ArcSwap::from_pointee(View::empty()),
                }),
                self_url,
                groups: Arc::new(Groups::default()),
                transport,
                tls,
                change: parking_lot::Mutex::new(()),
                follower: parking_lot::Mutex::new(None),
                settings: self,
            }),
        };
        cluster.set_members(members)?;
        Ok(cluster)
    }
}

fn bad(key: &'static str, value: &str, expected: &str) -> ClusterError {
    ClusterError::BadValue {
        key,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

/// This node's place in a cluster: the current ring and a client per member, the groups it
/// serves, and the peer server.
///
/// Groups added to the cluster ask the owner of each key they miss (one hop: the owner
/// loads it itself, never forwards), and answer peers' requests for the keys they own.
/// Membership changes swap the ring atomically; loads already in flight finish with the
/// view they started with.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cell: Arc<ViewCell>,
    self_url: PeerUrl,
    groups: Arc<Groups>,
    transport: Transport,
    tls: Option<Tls>,
    /// Serialises membership changes (not held across an await).
    change: parking_lot::Mutex<()>,
    follower: parking_lot::Mutex<Option<JoinHandle<()>>>,
    settings: ClusterBuilder,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.follower.get_mut().take() {
            task.abort();
        }
    }
}

impl Cluster {
    /// Start configuring the cluster of the node at `self_url`
    /// (`http://host:port`, as the other members spell it).
    pub fn builder(self_url: impl Into<String>) -> ClusterBuilder {
        ClusterBuilder {
            self_url: self_url.into(),
            protocol: Protocol::default(),
            algorithm: Algorithm::Groupcache,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs(5),
            secret: None,
            tls: None,
            handoff: None,
        }
    }

    /// This node's URL.
    pub fn self_url(&self) -> &PeerUrl {
        &self.inner.self_url
    }

    /// The protocol members use.
    pub fn protocol(&self) -> Protocol {
        self.inner.settings.protocol
    }

    /// Replace the member list. Every URL must parse and none may repeat. This node need
    /// not be a member (a node leaving the ring still serves what it has and asks the
    /// others); it then owns nothing. Clients of members that stay are kept, with their
    /// connections.
    pub fn set_members(&self, members: &[&str]) -> Result<(), ClusterError> {
        let urls = validate(members)?;
        let ring = build_ring(self.inner.settings.algorithm, members)?;
        let _guard = self.inner.change.lock();
        let current = self.inner.cell.view.load_full();
        let mut peers = HashMap::with_capacity(urls.len());
        for url in &urls {
            if url.as_str() == self.inner.self_url.as_str() {
                continue;
            }
            let client = match current.peers.get(url.as_str()) {
                Some(c) => c.clone(),
                None => Arc::new(self.inner.transport.client(url)?),
            };
            peers.insert(url.as_str().to_owned(), client);
        }
        let now = Instant::now();
        let warm = self
            .inner
            .settings
            .handoff
            .map_or(Duration::ZERO, |h| h.warm_time);
        let (previous, joining) = current.next_history(
            members,
            self.inner.self_url.as_str(),
            || self.ring_without_self(members),
            now,
            warm,
        )?;
        let mut departed: HashMap<String, Arc<PeerClient>> = current
            .peers
            .iter()
            .chain(&current.departed)
            .filter(|(url, _)| !peers.contains_key(*url))
            .map(|(url, c)| (url.clone(), c.clone()))
            .collect();
        // Keep clients only of members some remembered ring still names.
        departed.retain(|url, _| {
            previous
                .iter()
                .any(|p| p.ring.members().iter().any(|m| m.name == *url))
        });
        crate::metrics::membership::ring_version(current.version + 1);
        self.inner.cell.view.store(Arc::new(View {
            version: current.version + 1,
            ring: Some(Arc::from(ring)),
            peers,
            departed,
            previous,
            joining,
        }));
        metrics::gauge!(crate::metrics::MEMBERS).set(members.len() as f64);
        tracing::info!(members = members.len(), self_url = %self.inner.self_url, "cluster: members set");
        Ok(())
    }

    /// At start-up, keys this node owns were owned by whoever owns them among the others.
    fn ring_without_self(&self, members: &[&str]) -> Result<Option<Arc<dyn Ring>>, ClusterError> {
        let others: Vec<&str> = members
            .iter()
            .copied()
            .filter(|m| *m != self.inner.self_url.as_str())
            .collect();
        if others.is_empty() || others.len() == members.len() {
            return Ok(None);
        }
        Ok(Some(Arc::from(build_ring(
            self.inner.settings.algorithm,
            &others,
        )?)))
    }

    /// Serve `group` to peers and let it fetch keys from their owners. Its loader is used
    /// as is (no warm handoff; see [`group`](Self::group)).
    pub fn add_group(&self, group: Arc<Group>) -> Result<(), ClusterError> {
        self.inner.groups.insert(group.clone())?;
        group.set_peers(Arc::new(ClusterPeers(self.inner.cell.clone())));
        Ok(())
    }

    /// Build a group from `builder` around `loader` and [`add`](Self::add_group) it. With
    /// [handoff](ClusterBuilder::handoff) on, the loader first peeks at the key's previous
    /// owner.
    pub fn group<L: Loader>(
        &self,
        builder: GroupBuilder,
        loader: L,
    ) -> Result<Arc<Group>, ClusterError> {
        let group = match self.inner.settings.handoff {
            Some(settings) => {
                let name = Arc::new(OnceLock::new());
                let wrapped =
                    HandoffLoader::new(loader, self.inner.cell.clone(), settings, name.clone());
                let group = builder.build(wrapped);
                let _ = name.set(Arc::from(group.name()));
                group
            }
            None => builder.build(loader),
        };
        self.add_group(group.clone())?;
        Ok(group)
    }

    /// The group called `name`, if added.
    pub fn get_group(&self, name: &str) -> Option<Arc<Group>> {
        self.inner.groups.get(name)
    }

    /// Every added group.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.inner.groups.all()
    }

    /// Bind the peer port at `addr` and serve this node's groups on it.
    pub async fn serve(&self, addr: SocketAddr) -> Result<PeerServer, ClusterError> {
        PeerServer::bind(addr, self.inner.groups.clone(), self.serve_settings()).await
    }

    /// Serve this node's groups on an already bound listener.
    pub fn serve_on(&self, listener: TcpListener) -> Result<PeerServer, ClusterError> {
        PeerServer::serve(listener, self.inner.groups.clone(), self.serve_settings())
    }

    fn serve_settings(&self) -> ServeSettings {
        let s = &self.inner.settings;
        ServeSettings {
            secret: s.secret.clone(),
            tls: self.inner.tls.as_ref().map(|t| t.server.clone()),
            max_connections: s.max_connections,
            max_value: s.max_value_bytes,
            grace: s.shutdown_grace,
        }
    }

    /// Follow `membership`: apply its current member list, then every change, until the
    /// cluster is dropped. A list that cannot be applied is logged and skipped.
    pub fn follow(&self, membership: &dyn Membership) -> Result<(), ClusterError> {
        let mut rx = membership.subscribe();
        let first: Arc<MemberSet> = rx.borrow_and_update().clone();
        self.set_members(&as_strs(&first))?;
        self.follow_changes(rx);
        Ok(())
    }

    fn follow_changes(&self, mut rx: tokio::sync::watch::Receiver<Arc<MemberSet>>) {
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let set = rx.borrow_and_update().clone();
                let Some(inner) = weak.upgrade() else { break };
                let cluster = Cluster { inner };
                if let Err(e) = cluster.set_members(&as_strs(&set)) {
                    tracing::warn!(error = %e, version = set.version, "cluster: member list not applied");
                }
            }
        });
        if let Some(old) = self.inner.follower.lock().replace(task) {
            old.abort();
        }
    }

    /// The member that owns `key` (its URL as given); `None` only for an empty ring.
    pub fn owner(&self, key: &[u8]) -> Option<String> {
        let view = self.inner.cell.view.load();
        view.ring.as_ref()?.owner(key).map(|m| m.name.clone())
    }

    /// The current members, as given.
    pub fn members(&self) -> Vec<String> {
        let view = self.inner.cell.view.load();
        view.ring
            .as_ref()
            .map(|r| r.members().iter().map(|m| m.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The version of the ring in use (1 after the first member list, +1 per change).
    pub fn ring_version(&self) -> u64 {
        self.inner.cell.view.load().version
    }

    /// The share of the key space each member owns, estimated by placing `samples`
    /// synthetic keys (members in ring order, shares summing to 1).
    pub fn ownership(&self, samples: u32) -> Vec<(String, f64)> {
        let view = self.inner.cell.view.load();
        let Some(ring) = view.ring.as_ref() else {
            return Vec::new();
        };
        let mut counts: HashMap<&str, u32> = HashMap::new();
        let samples = samples.max(1);
        for i in 0..samples {
            if let Some(m) = ring.owner(format!("ownership-sample-{i}").as_bytes()) {
                *counts.entry(m.name.as_str()).or_default() += 1;
            }
        }
        ring.members()
            .iter()
            .map(|m| {
                let n = counts.get(m.name.as_str()).copied().unwrap_or(0);
                (m.name.clone(), f64::from(n) / f64::from(samples))
            })
            .collect()
    }

    /// Remove `key` of `group` from every member: from memory (main and hot caches, a
    /// remembered "not found" included) and from what each member's loader keeps beside it
    /// ([`Loader::forget`]). For values that changed at their source before they expired.
    ///
    /// The owner is told first, so a member that misses the key asks an owner that no
    /// longer has it; then every other member at once, members that left within the warm
    /// time included (warm handoff may still ask them); then the owner once more, since its
    /// handoff may have fetched the old value back from one of them in between. A load
    /// already in flight somewhere still stores what it loads. A member that does not
    /// answer is reported in [`Removal::failed`], never retried: removing again is always
    /// safe. Fails only when this node has no group `group`.
    pub async fn remove(&self, group: &str, key: &[u8]) -> Result<Removal, ClusterError> {
        let local = self
            .get_group(group)
            .ok_or_else(|| ClusterError::UnknownGroup(group.to_owned()))?;
        let view = self.inner.cell.view.load_full();
        let owner = view
            .ring
            .as_ref()
            .and_then(|r| r.owner(key))
            .map(|m| m.name.clone());
        let mut removal = Removal {
            was_here: false,
            confirmed: Vec::new(),
            failed: Vec::new(),
        };
        let mut record = |member: &str, r: Result<(), PeerError>| match r {
            Ok(()) => removal.confirmed.push(member.to_owned()),
            Err(e) => removal.failed.push((member.to_owned(), e)),
        };
        if let Some(owner) = &owner
            && let Some(client) = view.peers.get(owner)
        {
            record(owner, client.remove(group, key).await);
        }
        let mut others = tokio::task::JoinSet::new();
        let departed = view
            .departed
            .iter()
            .filter(|(m, _)| !view.peers.contains_key(*m));
        for (member, client) in view.peers.iter().chain(departed) {
            if Some(member) != owner.as_ref() {
                let (member, client) = (member.clone(), client.clone());
                let (group, key) = (group.to_owned(), key.to_vec());
                others.spawn(async move {
                    let r = client.remove(&group, &key).await;
                    (member, r)
                });
            }
        }
        let was_here = local.remove(key);
        while let Some(done) = others.join_next().await {
            match done {
                Ok((member, r)) => record(&member, r),
                Err(e) => tracing::warn!(error = %e, "a remove task failed"),
            }
        }
        match owner
            .as_ref()
            .and_then(|o| view.peers.get(o).map(|c| (o, c)))
        {
            // Its last answer is what holds.
            Some((owner, client)) => {
                let last = client.remove(group, key).await;
                removal.confirmed.retain(|m| m != owner);
                removal.failed.retain(|(m, _)| m != owner);
                match last {
                    Ok(()) => removal.confirmed.push(owner.clone()),
                    Err(e) => removal.failed.push((owner.clone(), e)),
                }
            }
            None => {
                local.remove(key);
            }
        }
        removal.was_here = was_here;
        removal.confirmed.sort();
        removal.failed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(removal)
    }

    /// Put new peer certificates (a renewed certificate and key, or a new CA) in force for
    /// the next TLS handshakes, as a server and as a client; connections already open keep
    /// theirs. Material that does not build is an error and the certificates in force stay.
    /// A cluster built without TLS cannot start using it: that changes its members' URLs.
    pub fn reload_tls(&self, tls: &TlsConfig) -> Result<(), ClusterError> {
        match &self.inner.tls {
            Some(current) => current.reload(tls),
            None => Err(ClusterError::tls(
                "reload",
                "this cluster was built without TLS; members' URLs would change (a restart)",
            )),
        }
    }

    /// The client for member `url` (not for this node).
    pub fn client(&self, url: &str) -> Option<Arc<PeerClient>> {
        self.inner.cell.view.load().peers.get(url).cloned()
    }
}

/// What [`Cluster::remove`] reached.
#[derive(Debug)]
pub struct Removal {
    /// Whether this node had the key in memory.
    pub was_here: bool,
    /// The other members that confirmed the remove, sorted.
    pub confirmed: Vec<String>,
    /// The members that did not, with why, sorted.
    pub failed: Vec<(String, PeerError)>,
}

fn as_strs(set: &MemberSet) -> Vec<&str> {
    set.members.iter().map(String::as_str).collect()
}

/// The ring over member URLs. Rendezvous hashing takes them as names: its `host:port[:weight]`
/// parsing is for server lists, and peers are URLs.
fn build_ring(
    algorithm: Algorithm,
    members: &[&str],
) -> Result<Box<dyn Ring>, shoal_ring::RingError> {
    match algorithm {
        Algorithm::Rendezvous => {
            let named: Vec<(&str, u32)> = members.iter().map(|m| (*m, 1)).collect();
            Ok(Box::new(shoal_ring::Rendezvous::from_weighted(&named)?))
        }
        other => shoal_ring::build(other, members),
    }
}
