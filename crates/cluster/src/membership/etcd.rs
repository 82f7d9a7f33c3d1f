//! etcd membership (v3 API): register `<prefix>/<host:port>` = this node's peer URL under a
//! lease, list the prefix, then watch it from the next revision.
//!
//! - The lease has a TTL (default 10 s) and is kept alive every third of it; if etcd says
//!   the lease is gone, or the watch shows this node's key deleted (a revoked lease, an
//!   operator's mistake), the node registers again with a new lease at once.
//! - [`EtcdMembership::leave`] revokes the lease, so the others drop this node at once.
//! - A watch that is compacted or cancelled is replaced by a new list and a new watch.
//! - If etcd is unreachable, the last member set stays in force (the node keeps serving)
//!   and the session is retried with back-off; the failure is logged once per change.
//! - A value that is not a peer URL is counted (`shoal_membership_bad_values_total`) and
//!   logged once, then ignored.
//!
//! chunkproxy's `--coord <url> --cluster <dir>` map to `endpoints = [url]`, `prefix = "/dir"`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Backoff, Condition, MemberInfo, MemberSet, MemberState, Membership, Publisher};
use crate::PeerUrl;
use crate::metrics::membership as m;

/// Settings of [`EtcdMembership`].
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// etcd client URLs (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// The key prefix of this cluster (default `/shoal/members`).
    pub prefix: String,
    /// This node's peer URL.
    pub peer_url: String,
    /// Lease TTL (default 10 s; kept alive every third of it; at least 2 s).
    pub ttl: Duration,
    /// Longest wait between retries (default 5 s).
    pub max_backoff: Duration,
}

impl EtcdConfig {
    /// Defaults for `peer_url` registering at `endpoints`.
    pub fn new(endpoints: Vec<String>, peer_url: impl Into<String>) -> Self {
        EtcdConfig {
            endpoints,
            prefix: "/shoal/members".into(),
            peer_url: peer_url.into(),
            ttl: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// chunkproxy's flags: `--coord <url> --cluster <dir>`.
    pub fn chunkproxy(coord: &str, cluster: &str, peer_url: impl Into<String>) -> Self {
        let mut c = EtcdConfig::new(vec![coord.to_owned()], peer_url);
        c.prefix = format!("/{}", cluster.trim_matches('/'));
        c
    }

    fn key(&self) -> String {
        let member = PeerUrl::parse(&self.peer_url)
            .map(|u| u.authority().to_owned())
            .unwrap_or_else(|_| self.peer_url.clone());
        format!("{}/{member}", self.prefix.trim_end_matches('/'))
    }

    fn dir(&self) -> String {
        format!("{}/", self.prefix.trim_end_matches('/'))
    }
}

/// Membership from etcd; see the [module docs](self). Dropping it stops the session (the
/// registration then expires with its lease); [`EtcdMembership::leave`] removes it at once.
pub struct EtcdMembership {
    publisher: Publisher,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The client and lease of the current registration, for a graceful leave.
    registration: Registration,
}

type Registration = Arc<Mutex<Option<(Client, i64)>>>;

impl std::fmt::Debug for EtcdMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lease = self.registration.lock().as_ref().map(|(_, lease)| *lease);
        f.debug_struct("EtcdMembership")
            .field("publisher", &self.publisher)
            .field("lease", &lease)
            .finish_non_exhaustive()
    }
}

impl EtcdMembership {
    /// Start registering and watching in the background; returns at once.
    pub fn start(config: EtcdConfig) -> Self {
        let publisher = Publisher::new("etcd", &config.peer_url);
        let registration = Registration::default();
        let session = Session {
            config,
            publisher: publisher.clone(),
            seen: BTreeMap::new(),
            bad_logged: HashSet::new(),
            registration: registration.clone(),
        };
        let task = tokio::spawn(session.run());
        EtcdMembership {
            publisher,
            task: Mutex::new(Some(task)),
            registration,
        }
    }

    /// Leaves gracefully: stops the session and revokes its lease, which deletes this
    /// node's key, so every other member drops it at once instead of after the TTL. Waits
    /// at most `within` for etcd; if etcd does not answer, the key expires with the lease.
    pub async fn leave(&self, within: Duration) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
        let Some((mut client, lease)) = self.registration.lock().take() else {
            return;
        };
        match tokio::time::timeout(within, client.lease_revoke(lease)).await {
            Ok(Ok(_)) => tracing::info!(lease, "etcd: left (lease revoked)"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "etcd: leaving failed; the registration expires with its lease")
            }
            Err(_) => tracing::warn!(
                "etcd: no answer to the leave in {within:?}; the registration expires with its lease"
            ),
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<MemberSet> {
        self.publisher.current()
    }
}

impl Drop for EtcdMembership {
    fn drop(&mut self) {
        if let Some(t) = self.task.get_mut().take() {
            t.abort();
        }
    }
}

impl Membership for EtcdMembership {
    fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>> {
        self.publisher.subscribe()
    }
    fn states(&self) -> Vec<MemberInfo> {
        self.publisher.states()
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("etcd {op}: {source}")]
    Etcd {
        op: &'static str,
        source: etcd_client::Error,
    },
    #[error("etcd {0}: no answer in time")]
    Timeout(&'static str),
    #[error("the lease expired; registering again")]
    LeaseLost,
    #[error("the watch stream ended")]
    WatchEnded,
}

struct Session {
    config: EtcdConfig,
    publisher: Publisher,
    /// key → URL, as last listed or watched.
    seen: BTreeMap<String, String>,
    bad_logged: HashSet<String>,
    registration: Registration,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(3);

async fn call<T>(
    op: &'static str,
    f: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, End> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(End::Etcd { op, source }),
        Err(_) => Err(End::Timeout(op)),
    }
}

impl Session {
    async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.config.max_backoff);
        let mut condition = Condition::default();
        let mut first = true;
        loop {
            if !first {
                m::etcd_reconnect();
            }
            first = false;
            let end = self.session(&mut condition, &mut backoff).await;
            let op = match &end {
                End::Etcd { op, .. } | End::Timeout(op) => op,
                End::LeaseLost => "keepalive",
                End::WatchEnded => "watch",
            };
            m::etcd_error(op);
            if matches!(end, End::LeaseLost) {
                tracing::warn!(key = %self.config.key(), "etcd: lease lost; registering again");
                continue;
            }
            condition.failed("etcd membership (keeping the last member set)", &end);
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One connection: register, list, watch; returns why it ended.
    async fn session(&mut self, condition: &mut Condition, backoff: &mut Backoff) -> End {
        match self.session_inner(condition, backoff).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn session_inner(
        &mut self,
        condition: &mut Condition,
        backoff: &mut Backoff,
    ) -> Result<std::convert::Infallible, End> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let mut client = call(
            "connect",
            Client::connect(self.config.endpoints.clone(), Some(options)),
        )
        .await?;
        let ttl = self.config.ttl.max(Duration::from_secs(2));
        let lease = call("register", client.lease_grant(ttl.as_secs() as i64, None)).await?;
        let lease_id = lease.id();
        let key = self.config.key();
        call(
            "register",
            client.put(
                key.clone(),
                self.config.peer_url.clone(),
                Some(PutOptions::new().with_lease(lease_id)),
            ),
        )
        .await?;
        let (mut keeper, mut alive) = call("keepalive", client.lease_keep_alive(lease_id)).await?;
        *self.registration.lock() = Some((client.clone(), lease_id));
        tracing::info!(%key, lease = lease_id, "etcd: registered");
        let mut tick = tokio::time::interval(ttl / 3);
        loop {
            // List, then watch from the next revision.
            let revision = self.list(&mut client).await?;
            condition.ok("etcd membership");
            backoff.reset();
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision + 1)
                .with_progress_notify();
            let mut stream = call("watch", client.watch(self.config.dir(), Some(opts))).await?;
            'watch: loop {
                tokio::select! {
                    _ = tick.tick() => {
                        call("keepalive", keeper.keep_alive()).await?;
                    }
                    msg = alive.message() => match msg {
                        Ok(Some(r)) if r.ttl() <= 0 => return Err(End::LeaseLost),
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(End::LeaseLost),
                        Err(source) => return Err(End::Etcd { op: "keepalive", source }),
                    },
                    msg = stream.message() => match msg {
                        Ok(Some(r)) if r.canceled() || r.compact_revision() > 0 => {
                            // Events between our revision and the compaction are gone for
                            // good: only a fresh list tells who is a member now.
                            m::etcd_relist(if r.compact_revision() > 0 { "compacted" } else { "cancelled" });
                            tracing::info!(compact_revision = r.compact_revision(), reason = r.cancel_reason(),
                                "etcd: watch cancelled; listing again");
                            break 'watch;
                        }
                        Ok(Some(r)) => {
                            let mut ours_deleted = false;
                            for ev in r.events() {
                                let Some(kv) = ev.kv() else { continue };
                                let k = String::from_utf8_lossy(kv.key()).into_owned();
                                match ev.event_type() {
                                    EventType::Put => self.put(k, kv.value()),
                                    EventType::Delete => {
                                        ours_deleted |= k == key;
                                        self.seen.remove(&k);
                                    }
                                }
                            }
                            if !r.events().is_empty() {
                                self.publish();
                            }
                            if ours_deleted {
                                // Our lease was revoked or the key deleted: register again
                                // now rather than at the next keep-alive.
                                return Err(End::LeaseLost);
                            }
                        }
                        Ok(None) => return Err(End::WatchEnded),
                        Err(source) => return Err(End::Etcd { op: "watch", source }),
                    },
                }
            }
        }
    }

    async fn list(&mut self, client: &mut Client) -> Result<i64, End> {
        let resp = call(
            "list",
            client.get(self.config.dir(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        self.seen.clear();
        for kv in resp.kvs() {
            let k = String::from_utf8_lossy(kv.key()).into_owned();
            self.put(k, kv.value());
        }
        self.publish();
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Record `key` = `value` if the value is a peer URL; count and ignore it otherwise.
    fn put(&mut self, key: String, value: &[u8]) {
        let url = std::str::from_utf8(value)
            .ok()
            .filter(|v| PeerUrl::parse(v).is_ok());
        match url {
            Some(url) => {
                self.seen.insert(key, url.to_owned());
            }
            None => {
                m::bad_value("etcd");
                self.seen.remove(&key);
                if self.bad_logged.insert(key.clone()) {
                    tracing::warn!(%key, value = %String::from_utf8_lossy(value),
                        "etcd: ignoring a member value that is not a peer URL (logged once per key)");
                }
            }
        }
    }

    fn publish(&self) {
        let infos = self
            .seen
            .values()
            .map(|url| MemberInfo {
                url: url.clone(),
                state: MemberState::Alive,
            })
            .collect();
        self.publisher.publish(infos);
    }
}
