//! Joining a cluster: start the membership source of the [`Plan`], make a [`Cluster`] that
//! follows it, build the store's groups through it (so warm handoff wraps their loaders),
//! serve them on the peer port, and answer `GET /members` on the admin port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::{Json, Router, routing::get};
use serde_json::{Value, json};
use shoal_cache::{Group, GroupBuilder, Loader};
use shoal_cluster::{
    Cluster, ClusterError, DEFAULT_MAX_VALUE_BYTES, DnsMembership, FileMembership, GceDiscovery,
    GossipMembership, Membership, PeerServer, Scheme, StaticMembership,
};
use shoal_proxy::GroupMaker;

use super::config::ServeSettings;
use super::live::{Plan, SourcePlan};

/// A started membership source.
pub enum Source {
    /// `--peers`.
    Static(StaticMembership),
    /// Gossip, and the GCE discovery seeding it (kept so its listing goes on).
    Gossip {
        gossip: GossipMembership,
        _gce: Option<GceDiscovery>,
    },
    /// etcd.
    #[cfg(feature = "etcd")]
    Etcd(shoal_cluster::EtcdMembership),
    /// A members file.
    File(FileMembership),
    /// DNS.
    Dns(DnsMembership),
}

impl Source {
    /// Starts `plan` in the background (only gossip waits, to bind its UDP port).
    async fn start(plan: SourcePlan, self_url: &str) -> anyhow::Result<Source> {
        Ok(match plan {
            SourcePlan::Static(m) => Source::Static(m),
            SourcePlan::Gossip(config, gce) => {
                let bind = config.bind;
                let g = GossipMembership::start(*config)
                    .await
                    .with_context(|| format!("cannot gossip on {bind}"))?;
                let gce = gce.map(|c| {
                    let d = GceDiscovery::start(*c);
                    g.seed_from(d.seeds());
                    d
                });
                println!("shoal serve: gossip on {}", g.local_addr());
                Source::Gossip {
                    gossip: g,
                    _gce: gce,
                }
            }
            #[cfg(feature = "etcd")]
            SourcePlan::Etcd(c) => Source::Etcd(shoal_cluster::EtcdMembership::start(c)),
            SourcePlan::File(path, every) => {
                Source::File(FileMembership::start(self_url, path, every))
            }
            SourcePlan::Dns(c) => Source::Dns(DnsMembership::start(c)),
        })
    }

    /// The source as the cluster follows it.
    pub fn membership(&self) -> &dyn Membership {
        match self {
            Source::Static(m) => m,
            Source::Gossip { gossip, .. } => gossip,
            #[cfg(feature = "etcd")]
            Source::Etcd(m) => m,
            Source::File(m) => m,
            Source::Dns(m) => m,
        }
    }

    /// Leaves gracefully where the source can tell the others: gossip announces it, etcd
    /// revokes the registration's lease. A members file, DNS or a static list are the
    /// operator's to change.
    pub async fn leave(&self) {
        match self {
            Source::Gossip { gossip: g, .. } => g.leave(Duration::from_secs(1)).await,
            #[cfg(feature = "etcd")]
            Source::Etcd(m) => m.leave(Duration::from_secs(1)).await,
            _ => {}
        }
    }
}

/// A cluster of this node alone, with the source not started yet: the store adds its
/// groups (through [`ClusterGroups`]), then [`Joining::start`] opens the peer port and only
/// then lets the others know about this node.
pub struct Joining {
    /// The ring (this node alone for now) and the peer clients.
    pub cluster: Cluster,
    source: SourcePlan,
    peer_addr: SocketAddr,
    handoff: bool,
}

/// This node's part of a cluster.
pub struct Joined {
    /// The ring and the peer clients.
    pub cluster: Cluster,
    /// Where the members come from.
    pub source: Arc<Source>,
    /// The peer port.
    pub server: PeerServer,
    /// Whether warm handoff is on (a live source with `handoff`): on shutdown the peer
    /// port then stays up for `peer_drain` after leaving.
    pub handoff: bool,
}

/// Makes this node's cluster from the plan's settings, as a cluster of one.
pub fn prepare(plan: Plan, s: &ServeSettings) -> anyhow::Result<Joining> {
    let live = !matches!(plan.source, SourcePlan::Static(_));
    let chunk = usize::try_from(s.chunk_size.bytes()).unwrap_or(usize::MAX);
    let mut builder = Cluster::builder(plan.self_url.as_str())
        .algorithm(plan.algorithm)
        // A peer's answer may wait on the owner's origin load.
        .fetch_timeout(s.origin_timeout.get() + s.connect_timeout.get())
        .max_value_bytes(DEFAULT_MAX_VALUE_BYTES.max(chunk + (64 << 10)));
    if let Some(secret) = plan.secret {
        builder = builder.secret(secret);
    }
    if let Some(tls) = plan.tls {
        builder = builder.tls(tls);
    }
    let handoff = live && plan.handoff.is_some();
    if live && let Some(h) = plan.handoff {
        builder = builder.handoff(h);
    }
    let cluster = builder.build(&[plan.self_url.as_str()])?;
    Ok(Joining {
        cluster,
        source: plan.source,
        peer_addr: plan.peer_addr,
        handoff,
    })
}

impl Joining {
    /// Serves this node's groups on the peer port, then starts the source and follows it:
    /// a node is reachable before anyone learns it is a member.
    pub async fn start(self) -> anyhow::Result<Joined> {
        let addr = self.peer_addr;
        let server = self
            .cluster
            .serve(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (peers)"))?;
        let name = self.source.name();
        let me = self.cluster.self_url().clone();
        let source = Source::start(self.source, me.as_str()).await?;
        self.cluster.follow(source.membership())?;
        let members = self.cluster.members().len();
        let scheme = match me.scheme() {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        println!(
            "shoal serve: peers on {scheme}://{} (self {me}, {name} membership, {members} members)",
            server.local_addr(),
        );
        tracing::info!(addr = %server.local_addr(), self_url = %me, source = name, members, "cluster joined");
        Ok(Joined {
            cluster: self.cluster,
            source: Arc::new(source),
            server,
            handoff: self.handoff,
        })
    }
}

impl Joined {
    /// `GET /members`: what `shoal members` prints.
    pub fn members_router(&self) -> Router {
        let (cluster, source) = (self.cluster.clone(), self.source.clone());
        Router::new().route(
            "/members",
            get(move || {
                let body = members_json(&cluster, source.membership());
                async move { Json(body) }
            }),
        )
    }
}

/// `{"self", "ring_version", "members": [{"url", "state", "share"}]}`: every member the
/// source knows, its state, and the share of the key space it owns on the current ring.
pub fn members_json(cluster: &Cluster, source: &dyn Membership) -> Value {
    let shares: HashMap<String, f64> = cluster.ownership(10_000).into_iter().collect();
    let members: Vec<Value> = source
        .states()
        .into_iter()
        .map(|m| {
            let share = shares.get(&m.url).copied().unwrap_or(0.0);
            json!({ "url": m.url, "state": m.state.as_str(), "share": share })
        })
        .collect();
    json!({
        "self": cluster.self_url().as_str(),
        "ring_version": cluster.ring_version(),
        "members": members,
    })
}

/// Builds the store's groups through the cluster: it wraps their loaders for warm handoff
/// and serves them to peers.
pub struct ClusterGroups<'a>(pub &'a Cluster);

impl GroupMaker for ClusterGroups<'_> {
    type Error = ClusterError;
    fn make<L: Loader>(
        &self,
        builder: GroupBuilder,
        loader: L,
    ) -> Result<Arc<Group>, ClusterError> {
        self.0.group(builder, loader)
    }
}
