//! Membership sources and peer security of `shoal serve`: the flags, and the plan checked
//! before any port is bound ([`ServeSettings::plan`]). `join.rs` starts what the plan says.
//!
//! One source at a time: a static list (`--peers`), gossip (`--gossip`, seeded by `--seeds`
//! or by GCE discovery with `--gce-config`), etcd (`--coord --cluster`), a members file
//! (`--members-file`) or DNS (`--dns NAME:PORT` for A/AAAA records, `--dns srv:NAME` for
//! SRV records). Live sources start with this node alone, so it serves at once and joins in
//! the background.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use shoal_cluster::{
    Algorithm, DnsConfig, GceConfig, GceIni, GossipConfig, Handoff, PeerUrl, Scheme, Secret,
    StaticMembership, TlsConfig,
};

use super::config::{ServeSettings, parse_addr};
use crate::config::ConfigError;
use crate::units::HumanDuration;

/// Flags for live membership and peer security; each overrides its `[serve]` key.
#[derive(Debug, Default, Args)]
pub struct LiveArgs {
    /// Gossip (SWIM) on this UDP address, joining through --seeds.
    #[arg(long, value_name = "ADDR", env = "SHOAL_GOSSIP")]
    pub gossip: Option<String>,
    /// The gossip address others reach this node at [default: the bound address].
    #[arg(long, value_name = "ADDR", env = "SHOAL_GOSSIP_ADVERTISE")]
    pub gossip_advertise: Option<String>,
    /// Gossip addresses to join through (with --gossip); none starts a new cluster.
    #[arg(long, value_name = "HOST:PORT,...", env = "SHOAL_SEEDS")]
    pub seeds: Option<String>,
    /// Shared gossip key (packets are authenticated); prefer --gossip-key-file.
    #[arg(
        long,
        value_name = "KEY",
        env = "SHOAL_GOSSIP_KEY",
        hide_env_values = true
    )]
    pub gossip_key: Option<String>,
    /// A file holding the shared gossip key.
    #[arg(long, value_name = "FILE", env = "SHOAL_GOSSIP_KEY_FILE")]
    pub gossip_key_file: Option<String>,
    /// etcd URL to register in and list members from (needs --cluster) [chunkproxy: --coord].
    #[arg(long, value_name = "ETCD_URL", env = "SHOAL_COORD")]
    pub coord: Option<String>,
    /// The cluster's directory in etcd [chunkproxy: --cluster].
    #[arg(long, value_name = "DIR", env = "SHOAL_CLUSTER")]
    pub cluster: Option<String>,
    /// Lease TTL of this node's etcd registration [default: 10s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_ETCD_TTL")]
    pub etcd_ttl: Option<HumanDuration>,
    /// A file of member peer URLs, reloaded when it changes and on SIGHUP.
    #[arg(long, value_name = "PATH", env = "SHOAL_MEMBERS_FILE")]
    pub members_file: Option<String>,
    /// Every A/AAAA record of NAME is a member http://IP:PORT; `srv:NAME` reads NAME's SRV
    /// records instead (each target's addresses, at the record's port).
    #[arg(long, value_name = "NAME:PORT|srv:NAME", env = "SHOAL_DNS")]
    pub dns: Option<String>,
    /// How often the members file is checked and the DNS name resolved [default: 5s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_MEMBERS_REFRESH")]
    pub members_refresh: Option<HumanDuration>,
    /// gce-cache-cluster's ini file: matching GCE instances seed gossip.
    #[arg(long, value_name = "FILE.ini", env = "SHOAL_GCE_CONFIG")]
    pub gce_config: Option<String>,
    /// Compute API base URL [default: https://compute.googleapis.com].
    #[arg(long, value_name = "URL", env = "SHOAL_GCE_ENDPOINT")]
    pub gce_endpoint: Option<String>,
    /// Metadata server for the API token, or `none` [default: http://metadata.google.internal].
    #[arg(long, value_name = "URL", env = "SHOAL_GCE_METADATA")]
    pub gce_metadata: Option<String>,
    /// Warm handoff with live membership: new owners ask previous ones first [default: true].
    #[arg(long, value_name = "BOOL", env = "SHOAL_HANDOFF")]
    pub handoff: Option<bool>,
    /// How long after a membership change new owners ask previous ones [default: 60s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_HANDOFF_WARM_TIME")]
    pub handoff_warm_time: Option<HumanDuration>,
    /// The longest one handoff question may take before the origin is asked [default: 50ms].
    #[arg(long, value_name = "DURATION", env = "SHOAL_HANDOFF_PEEK_TIMEOUT")]
    pub handoff_peek_timeout: Option<HumanDuration>,
    /// On shutdown, how long after leaving the peer port keeps answering the new owners
    /// (warm handoff from a leaving node) [default: 2s].
    #[arg(long, value_name = "DURATION", env = "SHOAL_PEER_DRAIN")]
    pub peer_drain: Option<HumanDuration>,
    /// Chunk placement on members: groupcache (chunkproxy's ring), galaxycache or
    /// rendezvous (even shares); the same on every member [default: groupcache].
    #[arg(long, value_name = "ALGORITHM", env = "SHOAL_PLACEMENT")]
    pub placement: Option<String>,
    /// Shared secret of the peer port; prefer --peer-secret-file or SHOAL_PEER_SECRET.
    #[arg(
        long,
        value_name = "SECRET",
        env = "SHOAL_PEER_SECRET",
        hide_env_values = true
    )]
    pub peer_secret: Option<String>,
    /// A file holding the peer port's shared secret (at least 16 printable characters).
    #[arg(long, value_name = "PATH", env = "SHOAL_PEER_SECRET_FILE")]
    pub peer_secret_file: Option<String>,
    /// This node's certificate (PEM) for mTLS between peers (--self is then https://).
    #[arg(long, value_name = "PEM", env = "SHOAL_PEER_TLS_CERT")]
    pub peer_tls_cert: Option<String>,
    /// The private key (PEM) of --peer-tls-cert.
    #[arg(long, value_name = "PEM", env = "SHOAL_PEER_TLS_KEY")]
    pub peer_tls_key: Option<String>,
    /// The CA (PEM) that signed every member's certificate.
    #[arg(long, value_name = "PEM", env = "SHOAL_PEER_TLS_CA")]
    pub peer_tls_ca: Option<String>,
}

impl LiveArgs {
    /// Overlays the flags that were given onto `s`.
    pub(super) fn apply(&self, s: &mut ServeSettings) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field.clone() {
                    s.$field = v;
                }
            )*};
        }
        take!(
            gossip,
            gossip_advertise,
            seeds,
            gossip_key,
            gossip_key_file,
            coord,
            cluster,
            etcd_ttl,
            members_file,
            dns,
            members_refresh,
            gce_config,
            gce_endpoint,
            gce_metadata,
            handoff,
            handoff_warm_time,
            handoff_peek_timeout,
            peer_drain,
            placement,
            peer_secret,
            peer_secret_file,
            peer_tls_cert,
            peer_tls_key,
            peer_tls_ca
        );
    }
}

/// Where the member list comes from, checked but not started.
#[derive(Debug)]
pub enum SourcePlan {
    /// `--peers`.
    Static(StaticMembership),
    /// `--gossip`, seeded by `--seeds` and, with `--gce-config`, by GCE discovery.
    Gossip(Box<GossipConfig>, Option<Box<GceConfig>>),
    /// `--coord --cluster`.
    #[cfg(feature = "etcd")]
    Etcd(shoal_cluster::EtcdConfig),
    /// `--members-file`, checked every interval.
    File(PathBuf, Duration),
    /// `--dns NAME:PORT`.
    Dns(DnsConfig),
}

impl SourcePlan {
    /// The source's name, as logged and printed.
    pub fn name(&self) -> &'static str {
        match self {
            SourcePlan::Static(_) => "static",
            SourcePlan::Gossip(_, None) => "gossip",
            SourcePlan::Gossip(_, Some(_)) => "gossip+gce",
            #[cfg(feature = "etcd")]
            SourcePlan::Etcd(_) => "etcd",
            SourcePlan::File(..) => "file",
            SourcePlan::Dns(_) => "dns",
        }
    }
}

/// How this node joins its cluster.
#[derive(Debug)]
pub struct Plan {
    /// This node's peer URL.
    pub self_url: PeerUrl,
    /// Where the peer port listens.
    pub peer_addr: SocketAddr,
    /// The membership source.
    pub source: SourcePlan,
    /// The shared secret of the peer port.
    pub secret: Option<Secret>,
    /// mTLS between peers.
    pub tls: Option<TlsConfig>,
    /// Warm handoff (live sources only); `None` when turned off.
    pub handoff: Option<Handoff>,
    /// Chunk placement over the members' URLs.
    pub algorithm: Algorithm,
}

fn given(v: &str) -> bool {
    !v.trim().is_empty()
}

fn read_secret(key: &str, path: &str) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path.trim()) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) => Err(ConfigError::invalid(
            key,
            path.trim(),
            format!("a readable file ({e})"),
        )),
    }
}

/// The secret from a value or a file, never both.
fn secret_of(
    (vkey, value): (&str, &str),
    (fkey, file): (&str, &str),
) -> Result<Option<String>, ConfigError> {
    match (given(value), given(file)) {
        (true, true) => Err(ConfigError::invalid(
            format!("{vkey}/{fkey}"),
            "both",
            "one of them",
        )),
        (true, false) => Ok(Some(value.trim().to_owned())),
        (false, true) => read_secret(fkey, file).map(Some),
        (false, false) => Ok(None),
    }
}

impl ServeSettings {
    /// The cluster this node joins (`None`: a single node), checked: one membership source,
    /// the flags it needs and none it cannot use, readable secret files.
    pub fn plan(&self) -> Result<Option<Plan>, ConfigError> {
        let gossip_on = given(&self.gossip) || given(&self.gce_config);
        let sources: Vec<&str> = [
            ("--peers", given(&self.peers)),
            ("--gossip", given(&self.gossip)),
            (
                "--gce-config",
                given(&self.gce_config) && !given(&self.gossip),
            ),
            ("--coord", given(&self.coord)),
            ("--members-file", given(&self.members_file)),
            ("--dns", given(&self.dns)),
        ]
        .into_iter()
        .filter_map(|(flag, on)| on.then_some(flag))
        .collect();
        if sources.len() > 1 {
            return Err(ConfigError::invalid(
                "membership",
                sources.join(" and "),
                "one source at a time: --peers, --gossip (with --seeds or --gce-config), \
                 --coord, --members-file or --dns",
            ));
        }
        let needs = |flag: &str, value: &str, needed: &str, on: bool| {
            if given(value) && !on {
                Err(ConfigError::invalid(
                    flag,
                    value.trim(),
                    format!("used only with {needed}"),
                ))
            } else {
                Ok(())
            }
        };
        needs("--seeds", &self.seeds, "--gossip", gossip_on)?;
        needs(
            "--gossip-advertise",
            &self.gossip_advertise,
            "--gossip",
            gossip_on,
        )?;
        needs("--gossip-key", &self.gossip_key, "--gossip", gossip_on)?;
        needs(
            "--gossip-key-file",
            &self.gossip_key_file,
            "--gossip",
            gossip_on,
        )?;
        needs(
            "--gce-endpoint",
            &self.gce_endpoint,
            "--gce-config",
            given(&self.gce_config),
        )?;
        needs(
            "--gce-metadata",
            &self.gce_metadata,
            "--gce-config",
            given(&self.gce_config),
        )?;
        needs("--cluster", &self.cluster, "--coord", given(&self.coord))?;
        if given(&self.coord) && !given(&self.cluster) {
            return Err(ConfigError::invalid(
                "--cluster",
                "(none)",
                "the cluster's directory in etcd, needed with --coord",
            ));
        }
        let secret = secret_of(
            ("--peer-secret", &self.peer_secret),
            ("--peer-secret-file", &self.peer_secret_file),
        )?;
        let tls_files = [&self.peer_tls_cert, &self.peer_tls_key, &self.peer_tls_ca];
        let tls_given = tls_files.iter().filter(|f| given(f)).count();
        if tls_given != 0 && tls_given != 3 {
            return Err(ConfigError::invalid(
                "--peer-tls-cert/--peer-tls-key/--peer-tls-ca",
                format!("{tls_given} of 3"),
                "all three together",
            ));
        }
        if sources.is_empty() {
            if given(&self.self_url) {
                return Err(ConfigError::invalid(
                    "self",
                    self.self_url.trim(),
                    "used only with a membership source: --peers URL,URL,... (listing this \
                     node too), --gossip, --coord, --members-file or --dns",
                ));
            }
            if secret.is_some() || tls_given != 0 {
                return Err(ConfigError::invalid(
                    "--peer-secret/--peer-tls-*",
                    "set",
                    "used only in a cluster (--peers, --gossip, --coord, --members-file or --dns)",
                ));
            }
            return Ok(None);
        }
        if !given(&self.self_url) {
            return Err(ConfigError::invalid(
                "self",
                "(none)",
                "this node's peer URL, as the other members reach it (--self http://HOST:PORT)",
            ));
        }
        let self_url = PeerUrl::parse(self.self_url.trim())?;
        let tls = if tls_given == 3 {
            if self_url.scheme() != Scheme::Https {
                return Err(ConfigError::invalid(
                    "self",
                    self_url.as_str(),
                    "an https:// URL (--peer-tls-* serve the peer port over TLS)",
                ));
            }
            let path = |p: &String| PathBuf::from(p.trim());
            Some(TlsConfig::from_files(
                &path(&self.peer_tls_ca),
                &path(&self.peer_tls_cert),
                &path(&self.peer_tls_key),
            )?)
        } else {
            None
        };
        let secret = secret.map(|s| Secret::new(&s)).transpose()?;
        let source = self.source_plan(&self_url)?;
        let algorithm = match self.placement.trim() {
            "" | "groupcache" => Algorithm::Groupcache,
            "galaxycache" => Algorithm::Galaxycache,
            "rendezvous" => Algorithm::Rendezvous,
            other => {
                return Err(ConfigError::invalid(
                    "placement",
                    other,
                    "groupcache, galaxycache or rendezvous",
                ));
            }
        };
        let peek_timeout = self.handoff_peek_timeout.get();
        if self.handoff && peek_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "handoff_peek_timeout",
                "0s",
                "more than 0 (or --handoff false)",
            ));
        }
        let handoff = self.handoff.then(|| Handoff {
            warm_time: self.handoff_warm_time.get(),
            peek_timeout,
        });
        Ok(Some(Plan {
            peer_addr: self.peer_addr_of(&self_url)?,
            self_url,
            source,
            secret,
            tls,
            handoff,
            algorithm,
        }))
    }

    fn source_plan(&self, me: &PeerUrl) -> Result<SourcePlan, ConfigError> {
        let refresh = self.members_refresh.get();
        if given(&self.peers) {
            return Ok(SourcePlan::Static(StaticMembership::parse(
                me.as_str(),
                &self.peers,
            )?));
        }
        if given(&self.gossip) || given(&self.gce_config) {
            return self.gossip_plan(me);
        }
        if given(&self.coord) {
            return self.etcd_plan(me);
        }
        if refresh.is_zero() {
            return Err(ConfigError::invalid("members_refresh", "0s", "more than 0"));
        }
        if given(&self.members_file) {
            let path = PathBuf::from(self.members_file.trim());
            return Ok(SourcePlan::File(path, refresh));
        }
        let dns = self.dns.trim();
        if let Some(name) = dns.strip_prefix("srv:") {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(ConfigError::invalid(
                    "--dns",
                    dns,
                    "srv:NAME, the name whose SRV records list the members",
                ));
            }
            let mut c = DnsConfig::srv(name, me.as_str());
            if me.scheme() == Scheme::Https {
                c.scheme = "https".into();
            }
            c.interval = refresh;
            return Ok(SourcePlan::Dns(c));
        }
        let port = dns
            .rsplit_once(':')
            .and_then(|(name, port)| Some((name, port.parse::<u16>().ok()?)))
            .filter(|(name, port)| !name.is_empty() && *port != 0);
        let Some((name, port)) = port else {
            return Err(ConfigError::invalid(
                "--dns",
                dns,
                "NAME:PORT (the name to resolve and every member's peer port) or srv:NAME",
            ));
        };
        let mut c = DnsConfig::new(name, port, me.as_str());
        if me.scheme() == Scheme::Https {
            c.scheme = "https".into();
        }
        c.interval = refresh;
        Ok(SourcePlan::Dns(c))
    }

    fn gossip_plan(&self, me: &PeerUrl) -> Result<SourcePlan, ConfigError> {
        let mut heartbeat = Duration::ZERO;
        let gce = if given(&self.gce_config) {
            let path = self.gce_config.trim();
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid("--gce-config", path, format!("a readable file ({e})"))
            })?;
            let ini = GceIni::parse(&text)
                .map_err(|e| ConfigError::invalid("--gce-config", path, e.to_string()))?;
            heartbeat = Duration::from_millis(ini.heartbeat_ms);
            let mut c = GceConfig::from_ini(&ini);
            if given(&self.gce_endpoint) {
                c.endpoint = self.gce_endpoint.trim().trim_end_matches('/').to_owned();
            }
            match self.gce_metadata.trim() {
                "" => {}
                "none" => c.metadata = None,
                url => c.metadata = Some(url.trim_end_matches('/').to_owned()),
            }
            Some(Box::new(c))
        } else {
            None
        };
        let bind = match (&gce, given(&self.gossip)) {
            (_, true) => parse_addr("gossip", self.gossip.trim())?,
            // gce-cache-cluster gossips on its ini's [cluster] port.
            (Some(c), false) => SocketAddr::from(([0, 0, 0, 0], c.cluster_port)),
            (None, false) => return Err(ConfigError::invalid("gossip", "(none)", "an address")),
        };
        let mut config = GossipConfig::new(bind, me.as_str()).heartbeat(heartbeat);
        if given(&self.gossip_advertise) {
            config.advertise = Some(parse_addr(
                "gossip_advertise",
                self.gossip_advertise.trim(),
            )?);
        }
        for seed in self
            .seeds
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let found = seed.to_socket_addrs().map_err(|e| {
                ConfigError::invalid("--seeds", seed, format!("host:port of a gossip seed ({e})"))
            })?;
            config.seeds.extend(found);
        }
        let key = secret_of(
            ("--gossip-key", &self.gossip_key),
            ("--gossip-key-file", &self.gossip_key_file),
        )?;
        if key.as_ref().is_some_and(String::is_empty) {
            return Err(ConfigError::invalid(
                "--gossip-key-file",
                "(empty)",
                "a key",
            ));
        }
        config.key = key.map(String::into_bytes);
        Ok(SourcePlan::Gossip(Box::new(config), gce))
    }

    #[cfg(feature = "etcd")]
    fn etcd_plan(&self, me: &PeerUrl) -> Result<SourcePlan, ConfigError> {
        let ttl = self.etcd_ttl.get();
        if ttl < Duration::from_secs(2) {
            return Err(ConfigError::invalid(
                "etcd_ttl",
                self.etcd_ttl,
                "at least 2s",
            ));
        }
        let mut c = shoal_cluster::EtcdConfig::chunkproxy(
            self.coord.trim(),
            self.cluster.trim(),
            me.as_str(),
        );
        c.ttl = ttl;
        // Reconnect within a lease TTL, so an etcd restart does not drop this node.
        c.max_backoff = c.max_backoff.min(ttl / 2);
        Ok(SourcePlan::Etcd(c))
    }

    #[cfg(not(feature = "etcd"))]
    fn etcd_plan(&self, _me: &PeerUrl) -> Result<SourcePlan, ConfigError> {
        Err(ConfigError::invalid(
            "--coord",
            self.coord.trim(),
            "etcd membership, which this shoal was built without: build it with \
             `cargo build --release -p shoal --features etcd` (needs protoc: Debian \
             protobuf-compiler)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Validate;

    fn settings(toml: &str) -> ServeSettings {
        let f: super::super::ServeFile =
            crate::config::parse(&format!("[serve]\norigin = \"/o\"\n{toml}")).unwrap();
        f.serve
    }

    #[test]
    fn toml_keys_pick_one_source() {
        let s = settings(
            "self = \"http://127.0.0.1:7071\"\ngossip = \"127.0.0.1:7946\"\n\
             seeds = \"127.0.0.1:7947, 127.0.0.1:7948\"\ngossip_key = \"k\"\n",
        );
        let p = s.plan().unwrap().unwrap();
        let SourcePlan::Gossip(g, None) = &p.source else {
            panic!("gossip: {:?}", p.source)
        };
        assert_eq!(g.seeds.len(), 2);
        assert_eq!(g.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(p.peer_addr.to_string(), "127.0.0.1:7071");
        assert!(p.handoff.is_some() && p.secret.is_none() && p.tls.is_none());
        assert_eq!(p.handoff.unwrap(), Handoff::default());
        assert_eq!(p.algorithm, Algorithm::Groupcache);

        let s = settings("self = \"http://10.0.0.1:7071\"\ndns = \"shoal.internal:7071\"\n");
        let SourcePlan::Dns(d) = s.plan().unwrap().unwrap().source else {
            panic!("dns")
        };
        assert_eq!((d.name.as_str(), d.port), ("shoal.internal", 7071));
        assert_eq!(d.records, shoal_cluster::DnsRecords::Address);

        let s = settings("self = \"http://10.0.0.1:7071\"\ndns = \"srv:_shoal._tcp.internal\"\n");
        let SourcePlan::Dns(d) = s.plan().unwrap().unwrap().source else {
            panic!("dns srv")
        };
        assert_eq!(d.name, "_shoal._tcp.internal");
        assert_eq!(d.records, shoal_cluster::DnsRecords::Srv);
        for bad in ["srv:", "shoal.internal", "shoal.internal:0"] {
            let s = settings(&format!(
                "self = \"http://10.0.0.1:7071\"\ndns = \"{bad}\"\n"
            ));
            let e = s.plan().unwrap_err().to_string();
            assert!(e.contains("srv:NAME"), "{bad}: {e}");
        }

        let s =
            settings("self = \"http://h:1\"\nmembers_file = \"/m\"\nmembers_refresh = \"1s\"\n");
        assert!(matches!(
            s.plan().unwrap().unwrap().source,
            SourcePlan::File(_, d) if d == Duration::from_secs(1)
        ));

        let s = settings("self = \"http://h:1\"\nmembers_file = \"/m\"\npeers = \"http://h:1\"\n");
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("--peers and --members-file"), "{e}");
        assert!(settings("").plan().unwrap().is_none(), "a single node");
    }

    #[test]
    fn placement_and_handoff_window_are_settings() {
        let s = settings(
            "self = \"http://127.0.0.1:7071\"\ngossip = \"127.0.0.1:7946\"\n\
             placement = \"rendezvous\"\nhandoff_warm_time = \"5m\"\n\
             handoff_peek_timeout = \"20ms\"\n",
        );
        let p = s.plan().unwrap().unwrap();
        assert_eq!(p.algorithm, Algorithm::Rendezvous);
        let h = p.handoff.unwrap();
        assert_eq!(h.warm_time, Duration::from_secs(300));
        assert_eq!(h.peek_timeout, Duration::from_millis(20));

        let base = "self = \"http://127.0.0.1:7071\"\ngossip = \"127.0.0.1:7946\"\n";
        let e = settings(&format!("{base}placement = \"ketama\"\n"))
            .plan()
            .unwrap_err()
            .to_string();
        assert!(e.contains("groupcache, galaxycache or rendezvous"), "{e}");
        let e = settings(&format!("{base}handoff_peek_timeout = \"0s\"\n"))
            .plan()
            .unwrap_err()
            .to_string();
        assert!(e.contains("handoff_peek_timeout"), "{e}");
        let p = settings(&format!(
            "{base}handoff = false\nhandoff_peek_timeout = \"0s\"\n"
        ))
        .plan()
        .unwrap()
        .unwrap();
        assert!(p.handoff.is_none(), "no handoff, no peek timeout to check");
    }

    #[test]
    fn gce_heartbeat_is_the_probe_period() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("cachecluster.ini");
        let plan = |text: &str| {
            std::fs::write(&ini, text).unwrap();
            let mut s = settings("self = \"http://127.0.0.1:9080\"\n");
            s.gce_config = ini.to_string_lossy().into_owned();
            let SourcePlan::Gossip(g, Some(gce)) = s.plan().unwrap().unwrap().source else {
                panic!("gossip seeded by gce")
            };
            (g, gce)
        };
        let (g, gce) = plan("[cluster]\nport = 9998\nheartbeat = 250\n");
        assert_eq!(g.probe_period, Duration::from_millis(250));
        assert!(
            g.probe_rtt <= Duration::from_millis(125),
            "{:?}",
            g.probe_rtt
        );
        assert_eq!((g.bind.port(), gce.cluster_port), (9998, 9998));
        let (g, _) = plan("[cluster]\nport = 9998\n");
        assert_eq!(g.probe_period, Duration::from_secs(1), "unset: the default");
    }

    #[test]
    fn secrets_come_from_files_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "  0123456789abcdef-secret \n").unwrap();
        let mut s = settings("self = \"http://127.0.0.1:1\"\npeers = \"http://127.0.0.1:1\"\n");
        s.peer_secret_file = file.to_string_lossy().into_owned();
        let p = s.plan().unwrap().unwrap();
        assert!(p.secret.is_some());
        assert!(
            !format!("{p:?}").contains("0123456789abcdef"),
            "Debug hides it"
        );
        s.peer_secret = "0123456789abcdef-other".into();
        let e = s.plan().unwrap_err().to_string();
        assert!(e.contains("--peer-secret/--peer-secret-file"), "{e}");
        s.peer_secret_file.clear();
        s.handoff = false;
        let p = s.plan().unwrap().unwrap();
        assert!(p.secret.is_some() && p.handoff.is_none());
    }

    #[test]
    fn tls_needs_an_https_self() {
        let mut s = settings("self = \"http://127.0.0.1:1\"\npeers = \"http://127.0.0.1:1\"\n");
        s.peer_tls_cert = "/c".into();
        s.peer_tls_key = "/k".into();
        s.peer_tls_ca = "/ca".into();
        let e = s.plan().unwrap_err().to_string();
        assert!(e.contains("https://"), "{e}");
        s.self_url = "https://127.0.0.1:1".into();
        s.peers = "https://127.0.0.1:1".into();
        let e = s.plan().unwrap_err().to_string();
        assert!(e.contains("/ca"), "names the unreadable file: {e}");
    }
}
