//! GCE discovery, as gce-cache-cluster does it: list the RUNNING instances of a project
//! and zone through the Compute API, keep those with every configured network tag and
//! every `[meta]` item, take the internal IP of the named NIC (or of the only NIC), and hand
//! `ip:cluster_port` to the gossip layer as seeds. Gossip then tracks who is alive.
//!
//! Credentials: a bearer token from the metadata server. Both endpoints are configurable
//! (tests point them at a local server). Only `http://` endpoints are supported for now:
//! the real Compute API (`https://compute.googleapis.com`) needs a TLS root store, which is
//! not wired in yet (see `docs/membership.md`).
//!
//! Listing is repeated every `interval` (and retried with back-off when it fails); an
//! instance with missing fields is counted in `shoal_membership_bad_values_total` and
//! logged once, never a crash.

mod api;
mod ini;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::ini::GceIni;
use super::{Backoff, Condition};
use crate::metrics::membership as m;

/// Settings of [`GceDiscovery`].
#[derive(Debug, Clone)]
pub struct GceConfig {
    /// The Compute API base URL (default `https://compute.googleapis.com`).
    pub endpoint: String,
    /// The metadata server base URL (default `http://metadata.google.internal`); `None`:
    /// send no token.
    pub metadata: Option<String>,
    /// The project.
    pub project: String,
    /// The zone.
    pub zone: String,
    /// The NIC whose `networkIP` is used (any NIC if the instance has only one).
    pub network_interface: String,
    /// Tags that must all be on an instance.
    pub tags: Vec<String>,
    /// Metadata items that must all be on an instance with these values.
    pub meta: BTreeMap<String, String>,
    /// The gossip port of every member.
    pub cluster_port: u16,
    /// How often to list again (default 30 s).
    pub interval: Duration,
}

impl GceConfig {
    /// Settings from a gce-cache-cluster ini file.
    pub fn from_ini(ini: &GceIni) -> Self {
        GceConfig {
            endpoint: "https://compute.googleapis.com".into(),
            metadata: Some("http://metadata.google.internal".into()),
            project: ini.project.clone(),
            zone: ini.zone.clone(),
            network_interface: ini.network_interface.clone(),
            tags: ini.tags.clone(),
            meta: ini.meta.clone(),
            cluster_port: ini.cluster_port,
            interval: Duration::from_secs(30),
        }
    }
}

/// Finds gossip seeds on GCE; see the [module docs](self).
#[derive(Debug)]
pub struct GceDiscovery {
    seeds: watch::Receiver<Vec<SocketAddr>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl GceDiscovery {
    /// Start listing in the background; returns at once.
    pub fn start(config: GceConfig) -> Self {
        let (tx, rx) = watch::channel(Vec::new());
        let task = tokio::spawn(poll(config, tx));
        GceDiscovery {
            seeds: rx,
            task: Mutex::new(Some(task)),
        }
    }

    /// The seeds found so far (empty until the first listing succeeds), and every change.
    pub fn seeds(&self) -> watch::Receiver<Vec<SocketAddr>> {
        self.seeds.clone()
    }
}

impl Drop for GceDiscovery {
    fn drop(&mut self) {
        if let Some(t) = self.task.get_mut().take() {
            t.abort();
        }
    }
}

async fn poll(config: GceConfig, tx: watch::Sender<Vec<SocketAddr>>) {
    let api = api::Api::new();
    let filter = api::Filter {
        tags: config.tags.clone(),
        meta: config.meta.clone(),
        network_interface: config.network_interface.clone(),
    };
    let mut backoff = Backoff::new(
        Duration::from_millis(500),
        config.interval.max(Duration::from_secs(1)),
    );
    let mut condition = Condition::default();
    let mut logged: HashSet<String> = HashSet::new();
    loop {
        let token = match &config.metadata {
            Some(md) => api.token(md).await.map(Some),
            None => Ok(None),
        };
        let listed = match token {
            Ok(t) => {
                api.list(
                    &config.endpoint,
                    &config.project,
                    &config.zone,
                    t.as_deref(),
                    &filter,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let wait = match listed {
            Ok(found) => {
                condition.ok("gce discovery");
                backoff.reset();
                for bad in found.malformed {
                    m::bad_value("gce");
                    if logged.insert(bad.clone()) {
                        tracing::warn!(instance = %bad, "gce: skipping an instance with missing fields (logged once)");
                    }
                }
                let seeds: Vec<SocketAddr> = found
                    .ips
                    .iter()
                    .map(|ip: &IpAddr| SocketAddr::new(*ip, config.cluster_port))
                    .collect();
                tx.send_if_modified(|cur| {
                    let changed = *cur != seeds;
                    if changed {
                        tracing::info!(seeds = ?seeds, "gce: instances found");
                        *cur = seeds;
                    }
                    changed
                });
                config.interval
            }
            Err(e) => {
                if matches!(e, api::ApiError::Answer { .. }) {
                    m::bad_value("gce");
                }
                condition.failed("gce discovery", &e);
                backoff.next_delay()
            }
        };
        tokio::time::sleep(wait).await;
    }
}
