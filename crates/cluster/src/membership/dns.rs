//! DNS membership (a headless-service style discovery): every `interval`, resolve a name
//! and make each answer a member.
//!
//! - [`DnsRecords::Address`]: the name's A/AAAA records; each address becomes
//!   `scheme://<ip>:<port>` with the configured port. Through the system resolver
//!   (`tokio::net::lookup_host`), or through `server` when one is set.
//! - [`DnsRecords::Srv`]: the name's SRV records (`_shoal._tcp.example.com.`); each target
//!   is resolved to its A/AAAA addresses and each becomes `scheme://<ip>:<port>` with the
//!   **port from the SRV record**. Priority and weight are ignored (every record is a
//!   member); a target of `.` ("no service") is skipped. Through hickory-resolver, with the
//!   system's `/etc/resolv.conf` or `server`.
//!
//! A failed lookup (or an answer with no usable member) keeps the last member set and is
//! retried with back-off; it is logged once per change. Nothing is cached between polls.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolveHosts, ResolverConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Resolver, TokioResolver};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Backoff, Condition, MemberInfo, MemberSet, MemberState, Membership, Publisher};

/// Settings of [`DnsMembership`].
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The name to resolve (`shoal.default.svc.cluster.local`).
    pub name: String,
    /// The peer port of every member.
    pub port: u16,
    /// `http` or `https`.
    pub scheme: String,
    /// This node's peer URL (spelled `scheme://ip:port` like the others).
    pub peer_url: String,
    /// How often to resolve (default 5 s).
    pub interval: Duration,
    /// Which records to read (default [`DnsRecords::Address`]).
    pub records: DnsRecords,
    /// Ask this name server (UDP, then TCP) instead of the system's.
    pub server: Option<SocketAddr>,
}

/// The records [`DnsMembership`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DnsRecords {
    /// A and AAAA: every member uses [`DnsConfig::port`].
    #[default]
    Address,
    /// SRV: each record names a target host and its port.
    Srv,
}

impl DnsConfig {
    /// Defaults: `http`, every 5 s.
    pub fn new(name: impl Into<String>, port: u16, peer_url: impl Into<String>) -> Self {
        DnsConfig {
            name: name.into(),
            port,
            scheme: "http".into(),
            peer_url: peer_url.into(),
            interval: Duration::from_secs(5),
            records: DnsRecords::Address,
            server: None,
        }
    }

    /// Read the SRV records of `name` (the ports come from the records).
    pub fn srv(name: impl Into<String>, peer_url: impl Into<String>) -> Self {
        DnsConfig {
            records: DnsRecords::Srv,
            ..DnsConfig::new(name, 0, peer_url)
        }
    }

    /// The member URL of `ip` with the configured port.
    pub fn url_of(&self, ip: IpAddr) -> String {
        self.url_with_port(ip, self.port)
    }

    fn url_with_port(&self, ip: IpAddr, port: u16) -> String {
        match ip {
            IpAddr::V4(v4) => format!("{}://{v4}:{port}", self.scheme),
            IpAddr::V6(v6) => format!("{}://[{v6}]:{port}", self.scheme),
        }
    }
}

/// Membership from DNS; see the [module docs](self).
#[derive(Debug)]
pub struct DnsMembership {
    publisher: Publisher,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl DnsMembership {
    /// Start polling in the background; returns at once.
    pub fn start(config: DnsConfig) -> Self {
        let publisher = Publisher::new("dns", &config.peer_url);
        let task = tokio::spawn(poll(config, publisher.clone()));
        DnsMembership {
            publisher,
            task: Mutex::new(Some(task)),
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<MemberSet> {
        self.publisher.current()
    }
}

impl Drop for DnsMembership {
    fn drop(&mut self) {
        if let Some(t) = self.task.get_mut().take() {
            t.abort();
        }
    }
}

impl Membership for DnsMembership {
    fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>> {
        self.publisher.subscribe()
    }
    fn states(&self) -> Vec<MemberInfo> {
        self.publisher.states()
    }
}

async fn poll(config: DnsConfig, publisher: Publisher) {
    let mut backoff = Backoff::new(
        Duration::from_millis(200),
        config.interval.max(Duration::from_millis(200)),
    );
    let mut condition = Condition::default();
    let what = format!("dns membership ({})", config.name);
    let mut resolver = None;
    loop {
        let found = tokio::time::timeout(Duration::from_secs(5), lookup(&config, &mut resolver))
            .await
            .unwrap_or_else(|_| Err("lookup timed out".to_owned()));
        let wait = match found {
            Ok(urls) if !urls.is_empty() => {
                condition.ok(&what);
                backoff.reset();
                let infos = urls
                    .into_iter()
                    .map(|url| MemberInfo {
                        url,
                        state: MemberState::Alive,
                    })
                    .collect();
                publisher.publish(infos);
                config.interval
            }
            Ok(_) => {
                condition.failed(&what, &"the name has no usable records");
                backoff.next_delay()
            }
            Err(e) => {
                condition.failed(&what, &e);
                backoff.next_delay()
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// The member URLs the name resolves to now.
async fn lookup(
    config: &DnsConfig,
    resolver: &mut Option<TokioResolver>,
) -> Result<Vec<String>, String> {
    if config.records == DnsRecords::Address && config.server.is_none() {
        let addrs = tokio::net::lookup_host((config.name.as_str(), config.port))
            .await
            .map_err(|e| e.to_string())?;
        return Ok(addrs.map(|a| config.url_of(a.ip())).collect());
    }
    let resolver = match resolver {
        Some(r) => r,
        None => resolver.insert(make_resolver(config.server)?),
    };
    match config.records {
        DnsRecords::Address => {
            let ips = resolver
                .lookup_ip(config.name.as_str())
                .await
                .map_err(|e| e.to_string())?;
            Ok(ips.iter().map(|ip| config.url_of(ip)).collect())
        }
        DnsRecords::Srv => {
            let records = resolver
                .srv_lookup(config.name.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let mut urls = Vec::new();
            for srv in records.iter() {
                if srv.target().is_root() {
                    continue;
                }
                let ips = resolver
                    .lookup_ip(srv.target().clone())
                    .await
                    .map_err(|e| format!("resolving SRV target {}: {e}", srv.target()))?;
                urls.extend(ips.iter().map(|ip| config.url_with_port(ip, srv.port())));
            }
            Ok(urls)
        }
    }
}

fn make_resolver(server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let mut builder = match server {
        Some(s) => Resolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                Vec::new(),
                NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true),
            ),
            TokioConnectionProvider::default(),
        ),
        None => Resolver::builder_tokio()
            .map_err(|e| format!("reading the system resolver configuration: {e}"))?,
    };
    let opts = builder.options_mut();
    // Membership polls on its own schedule: a cached answer would hide a change.
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    if server.is_some() {
        opts.use_hosts_file = ResolveHosts::Never;
    }
    Ok(builder.build())
}
