//! DNS membership (a headless-service style discovery): every `interval`, resolve a name
//! to its A/AAAA records through the system resolver (`tokio::net::lookup_host`) and make
//! each address a member `http://<ip>:<port>`. SRV records are not read yet (that needs a
//! DNS client crate such as hickory-resolver); every member uses the same peer port.
//!
//! A failed lookup keeps the last member set and is retried with back-off; it is logged
//! once per change.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

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
        }
    }

    /// The member URL of `ip`.
    pub fn url_of(&self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => format!("{}://{v4}:{}", self.scheme, self.port),
            IpAddr::V6(v6) => format!("{}://[{v6}]:{}", self.scheme, self.port),
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
    loop {
        let lookup = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((config.name.as_str(), config.port)),
        )
        .await;
        let wait = match lookup {
            Ok(Ok(addrs)) => {
                let infos: Vec<MemberInfo> = addrs
                    .map(|a| MemberInfo {
                        url: config.url_of(a.ip()),
                        state: MemberState::Alive,
                    })
                    .collect();
                if infos.is_empty() {
                    condition.failed(&what, &"the name has no addresses");
                    backoff.next_delay()
                } else {
                    condition.ok(&what);
                    backoff.reset();
                    publisher.publish(infos);
                    config.interval
                }
            }
            Ok(Err(e)) => {
                condition.failed(&what, &e);
                backoff.next_delay()
            }
            Err(_) => {
                condition.failed(&what, &"lookup timed out");
                backoff.next_delay()
            }
        };
        tokio::time::sleep(wait).await;
    }
}
