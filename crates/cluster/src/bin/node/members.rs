//! The node's membership: a static list, or gossip (SWIM), from the flags; and the JSON of
//! `GET /members` that `shoal members` prints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_cluster::{
    Cluster, EtcdConfig, EtcdMembership, GossipConfig, GossipMembership, Membership,
    StaticMembership,
};

/// How this node learns who is in the cluster.
pub enum Source {
    Static(StaticMembership),
    Gossip(GossipMembership),
    Etcd(EtcdMembership),
}

impl Source {
    /// `--peers` gives a static list; `--gossip ADDR [--seeds A,B] [--gossip-key K]
    /// [--fast-gossip yes]` gossips instead; chunkproxy's `--coord URL --cluster DIR
    /// [--etcd-ttl SECS]` registers in etcd.
    pub async fn from_flags(
        self_url: &str,
        flags: &mut HashMap<String, String>,
    ) -> Result<Source, String> {
        if let Some(peers) = flags.remove("peers") {
            let m = StaticMembership::parse(self_url, &peers).map_err(|e| e.to_string())?;
            return Ok(Source::Static(m));
        }
        if let Some(coord) = flags.remove("coord") {
            let cluster = flags
                .remove("cluster")
                .ok_or("--coord needs --cluster DIR")?;
            let mut config = EtcdConfig::chunkproxy(&coord, &cluster, self_url);
            if let Some(ttl) = flags.remove("etcd-ttl") {
                let secs: u64 = ttl
                    .parse()
                    .map_err(|e| format!("--etcd-ttl: expected seconds: {e}"))?;
                config.ttl = Duration::from_secs(secs);
                config.max_backoff = Duration::from_millis(500);
            }
            return Ok(Source::Etcd(EtcdMembership::start(config)));
        }
        let bind: SocketAddr = flags
            .remove("gossip")
            .ok_or("--peers, --gossip or --coord is required")?
            .parse()
            .map_err(|e| format!("--gossip: expected host:port: {e}"))?;
        let mut config = GossipConfig::new(bind, self_url);
        if flags.remove("fast-gossip").is_some() {
            config = config.fast();
        }
        if let Some(seeds) = flags.remove("seeds") {
            config.seeds = seeds
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--seeds: expected host:port,...: {e}"))?;
        }
        config.key = flags.remove("gossip-key").map(String::into_bytes);
        let g = GossipMembership::start(config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Source::Gossip(g))
    }

    pub fn membership(&self) -> &dyn Membership {
        match self {
            Source::Static(m) => m,
            Source::Gossip(m) => m,
            Source::Etcd(m) => m,
        }
    }

    /// Leave the cluster (gossip tells the others, etcd revokes the registration's lease;
    /// a static list has nothing to do).
    pub async fn leave(&self) {
        match self {
            Source::Gossip(g) => g.leave(Duration::from_secs(1)).await,
            Source::Etcd(e) => e.leave(Duration::from_secs(1)).await,
            Source::Static(_) => {}
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `{"self": URL, "ring_version": N, "members": [{"url", "state", "share"}, ...]}`: every
/// member the source knows, its state, and the share of the key space it owns.
pub fn json(cluster: &Cluster, source: &Source) -> String {
    let shares: HashMap<String, f64> = cluster.ownership(10_000).into_iter().collect();
    let states = source.membership().states();
    let mut out = format!(
        "{{\"self\":\"{}\",\"ring_version\":{},\"members\":[",
        escape(cluster.self_url().as_str()),
        cluster.ring_version()
    );
    for (i, m) in states.iter().enumerate() {
        let share = shares.get(&m.url).copied().unwrap_or(0.0);
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"url\":\"{}\",\"state\":\"{}\",\"share\":{share:.4}}}",
            escape(&m.url),
            m.state.as_str()
        ));
    }
    out.push_str("]}");
    out
}

/// The source, shared by the admin handler and the shutdown path.
pub type Shared = Arc<Source>;
