//! GCE discovery, as gce-cache-cluster does it: list the RUNNING instances of a project
//! and zone through the Compute API, keep those with every configured network tag and
//! every `[meta]` item, take the internal IP of the named NIC (or of the only NIC), and hand
//! `ip:cluster_port` to the gossip layer as seeds. Gossip then tracks who is alive.
//!
//! Credentials: a bearer token from the metadata server. Project and zone come from the
//! configuration, or, when it leaves them empty, from the metadata server
//! (`project/project-id`, `instance/zone`), as gce-cache-cluster does. Both endpoints are
//! configurable (tests point them at local servers); `https://` endpoints are verified
//! against Mozilla's roots (webpki-roots), or against `ca_pem` when given.
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
    /// The project (empty: ask the metadata server).
    pub project: String,
    /// The zone (empty: ask the metadata server).
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
    /// PEM certificates that replace Mozilla's roots for `https://` endpoints.
    pub ca_pem: Option<Vec<u8>>,
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
            ca_pem: None,
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

/// Fill in an empty project or zone from the metadata server.
async fn place(
    api: &api::Api,
    config: &GceConfig,
    project: &mut String,
    zone: &mut String,
) -> Result<(), String> {
    let Some(md) = &config.metadata else {
        return Err("project or zone is empty and no metadata server is configured".into());
    };
    if project.is_empty() {
        *project = api
            .metadata_text(md, "project/project-id")
            .await
            .map_err(|e| e.to_string())?;
    }
    if zone.is_empty() {
        // "projects/<number>/zones/<zone>"
        let full = api
            .metadata_text(md, "instance/zone")
            .await
            .map_err(|e| e.to_string())?;
        *zone = full.rsplit('/').next().unwrap_or_default().to_owned();
    }
    tracing::info!(%project, %zone, "gce: project and zone from the metadata server");
    Ok(())
}

async fn poll(config: GceConfig, tx: watch::Sender<Vec<SocketAddr>>) {
    let tls = match api::tls_config(config.ca_pem.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "gce discovery: not started");
            return;
        }
    };
    let api = api::Api::new(tls);
    let (mut project, mut zone) = (config.project.clone(), config.zone.clone());
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
        if (project.is_empty() || zone.is_empty())
            && let Err(e) = place(&api, &config, &mut project, &mut zone).await
        {
            condition.failed("gce discovery", &e);
            tokio::time::sleep(backoff.next_delay()).await;
            continue;
        }
        let token = match &config.metadata {
            Some(md) => api.token(md).await.map(Some),
            None => Ok(None),
        };
        let listed = match token {
            Ok(t) => {
                api.list(&config.endpoint, &project, &zone, t.as_deref(), &filter)
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
