//! [`Router`]: the shard map, the replicas' state and the HTTP client, answering requests.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::body::{Body, BoxError, full};
use crate::config::RouteConfig;
use crate::inflight::WriteGate;
use crate::journal::Journal;
use crate::migration::{MigrationState, keys_match};
use crate::normalize::{Rejected, display_path, encode_path, normalize_request_path};
use crate::roster::Roster;
use crate::settings::{ReadMode, Settings};
use crate::topology::{Target, Topology};
use crate::{RouteError, metrics};

pub(crate) type HttpClient = Client<Within<HttpsConnector<HttpConnector>>, Body>;

pub(crate) struct Inner {
    /// The rings, swapped whole by [`Router::reload`].
    pub(crate) topo: ArcSwap<Topology>,
    /// Swapped whole by [`Router::update_settings`]; read a field at a time (copy it out
    /// rather than hold the guard across an await).
    pub(crate) settings: ArcSwap<Settings>,
    pub(crate) client: HttpClient,
    /// What `https://` storage nodes are trusted with (the system's CAs and `storage_ca`).
    pub(crate) storage_tls: Arc<rustls::ClientConfig>,
    state: AtomicU8,
    /// Held across a switch's file write and state swap, so concurrent switches cannot leave
    /// the file saying one state while another is in effect.
    switching: parking_lot::Mutex<()>,
    pub(crate) journal: Option<Journal>,
    pub(crate) roster_ignored: AtomicUsize,
    pub(crate) roster_hosts: AtomicUsize,
    /// The roster last applied, applied again to the replicas of a reloaded topology.
    roster: parking_lot::Mutex<Option<Roster>>,
    counters: metrics::RequestCounters,
    writes: WriteGate,
    /// Bodies cut off because a peer stopped sending or taking them (see [`Settings::body_timeout`]).
    pub(crate) body_timeouts: AtomicU64,
}

/// The router. Cheap to clone; every clone shares state.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("dc", &self.inner.topo.load().dc)
            .field("state", &self.migration_state())
            .finish()
    }
}

/// What a [`Router::reload`] put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Shards of the primary ring.
    pub shards: usize,
    /// Shards of the migration ring, if there is one.
    pub migration_shards: Option<usize>,
    /// Replicas the old map did not name.
    pub replicas_added: usize,
    /// Replicas the new map no longer names.
    pub replicas_removed: usize,
    /// The map ended a migration: its primary ring is the former migration ring, and the
    /// state went from `new` to `old`.
    pub completed_migration: bool,
}

/// Sets each replica of `topo` in or out of the roster.
fn flag_roster(topo: &Topology, roster: &Roster) {
    for r in &topo.all {
        let allowed = roster.allows_node(r.name());
        if r.set_in_roster(allowed) {
            tracing::info!(replica = r.base(), in_roster = allowed, "roster changed");
        }
    }
}

/// Where a path goes, as `shoal route --explain` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    /// The path after normalisation and rewrites, as text: percent-encoded when its bytes
    /// are not UTF-8 (see [`display_path`]).
    pub path: String,
    /// The hash key (the path without its leading `/`), shown as `path` is.
    pub key: String,
    /// The migration state the answer is for.
    pub state: String,
    /// Each ring's shard and replicas, in the order reads try them.
    pub targets: Vec<ExplainTarget>,
}

/// One ring's part of an [`Explain`].
#[derive(Debug, Clone, Serialize)]
pub struct ExplainTarget {
    /// `primary` or `migration`.
    pub ring: String,
    /// The shard.
    pub shard: String,
    /// Replica base URLs.
    pub replicas: Vec<String>,
}

/// The router's part of `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Data centre.
    pub dc: String,
    /// Migration state (photosrv's name).
    pub migration_state: String,
    /// Hosts in the roster (0: no filtering).
    pub roster_hosts: usize,
    /// Roster lines ignored as garbage.
    pub roster_ignored_lines: usize,
    /// Entries waiting in the repair journal.
    pub repair_backlog: usize,
    /// Bodies cut off since start because a replica or client stalled mid-body.
    pub body_timeouts: u64,
    /// Writes still running that were admitted under an earlier migration state.
    pub writes_from_previous_state: usize,
    /// The settings in force that a reload can change.
    pub settings: SettingsStatus,
    /// The rings.
    pub rings: Vec<RingStatus>,
}

/// The live settings in [`Status`]; durations in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsStatus {
    /// `random`, `multi-head` or `hedged`.
    pub chooser_mode: &'static str,
    /// Hedged mode's delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge_delay_ms: Option<u128>,
    /// Multi-head mode's timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_timeout_ms: Option<u128>,
    /// `majority`, `all` or a number.
    pub write_quorum: String,
    /// PUT and DELETE refused.
    pub read_only: bool,
    /// Wait for a read's response headers.
    pub response_timeout_ms: u128,
    /// Wait for the next piece of a body under way.
    pub body_timeout_ms: u128,
    /// Whole replica write.
    pub write_timeout_ms: u128,
    /// One health check.
    pub health_timeout_ms: u128,
}

impl SettingsStatus {
    fn of(s: &Settings) -> SettingsStatus {
        let (chooser_mode, hedge, head) = match s.read_mode {
            ReadMode::Random => ("random", None, None),
            ReadMode::Hedged { delay } => ("hedged", Some(delay.as_millis()), None),
            ReadMode::MultiHead { timeout } => ("multi-head", None, Some(timeout.as_millis())),
        };
        SettingsStatus {
            chooser_mode,
            hedge_delay_ms: hedge,
            head_timeout_ms: head,
            write_quorum: s.write_quorum.to_string(),
            read_only: s.read_only,
            response_timeout_ms: s.response_timeout.as_millis(),
            body_timeout_ms: s.body_timeout.as_millis(),
            write_timeout_ms: s.write_timeout.as_millis(),
            health_timeout_ms: s.health_timeout.as_millis(),
        }
    }
}

/// One ring in [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct RingStatus {
    /// `primary` or `migration`.
    pub ring: String,
    /// `jump` or `chash`.
    pub chooser: String,
    /// Shards in order.
    pub shards: Vec<ShardStatus>,
}

/// One shard in [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    /// Name.
    pub name: String,
    /// Weight.
    pub weight: u32,
    /// Replicas.
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica in [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// Base URL.
    pub url: String,
    /// Listed in the roster.
    pub in_roster: bool,
    /// Passing health checks.
    pub healthy: bool,
    /// Requests sent.
    pub requests: u64,
    /// Errors seen.
    pub errors: u64,
}

impl Router {
    /// Builds the router: rings, replicas, the HTTP client; reads the roster (a missing roster
    /// file is an error), the migration state (an invalid one is an error) and opens the
    /// journal. Needs no runtime; [`Router::handle`] and the background tasks do.
    ///
    /// Metric handles (per replica, per method and status) are resolved here, so install the
    /// `metrics` recorder before calling this; handles taken before it are no-ops.
    pub fn new(cfg: &RouteConfig, settings: Settings) -> Result<Self, RouteError> {
        let topo = Topology::new(cfg)?;
        for notice in &cfg.duplicate_replicas {
            tracing::warn!("{notice}");
        }
        let state = match &settings.migration_state {
            Some(p) => MigrationState::load(p)?,
            None => MigrationState::Old,
        };
        if state != MigrationState::Old && topo.migration.is_none() {
            return Err(RouteError::Migration(format!(
                "migration state is {state} but data centre {} has no migration ring",
                topo.dc
            )));
        }
        let journal = settings.journal.as_deref().map(Journal::open).transpose()?;
        let storage_tls = shoal_tls::client_roots(settings.storage_ca.as_deref())
            .map_err(|e| RouteError::config(format!("storage_ca: {e}")))
            .and_then(|roots| {
                shoal_tls::client_config(roots)
                    .map_err(|e| RouteError::config(format!("storage TLS: {e}")))
            })
            .map(|tls| {
                // WebDAV nodes (nginx) speak HTTP/1.1, and both clients send it.
                let mut tls = rustls::ClientConfig::clone(&tls);
                tls.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(tls)
            })?;
        let client = build_client(&settings, &storage_tls);
        let router = Router {
            inner: Arc::new(Inner {
                topo: ArcSwap::from_pointee(topo),
                settings: ArcSwap::from_pointee(settings),
                client,
                storage_tls,
                state: AtomicU8::new(state as u8),
                switching: parking_lot::Mutex::new(()),
                journal,
                roster_ignored: AtomicUsize::new(0),
                roster_hosts: AtomicUsize::new(0),
                roster: parking_lot::Mutex::new(None),
                counters: metrics::RequestCounters::new(),
                writes: WriteGate::default(),
                body_timeouts: AtomicU64::new(0),
            }),
        };
        let checked = router.inner.settings.load().health_interval.is_some();
        for r in &router.inner.topo.load().all {
            r.set_health_checked(checked);
        }
        if let Some(p) = router.inner.settings.load().roster.clone() {
            router.apply_roster(&Roster::load(&p)?);
        }
        Ok(router)
    }

    /// Gives the calling thread its own connection pool to the storage nodes, used by the
    /// writes this thread serves (reads always pool per thread: see `h1`). For a thread
    /// running its own single-threaded runtime: a pooled connection is driven by a task of the
    /// runtime that opened it, so a shared pool would hand requests to connections driven by
    /// other threads.
    pub fn use_thread_local_pool(&self) {
        let id = Arc::as_ptr(&self.inner) as usize;
        let client = build_client(&self.inner.settings.load(), &self.inner.storage_tls);
        LOCAL_POOL.with(|p| *p.borrow_mut() = Some((id, client)));
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.settings.load_full()
    }

    /// Puts `new` in force for the next request; a PUT or DELETE under way keeps the quorum it
    /// started with, and each wait reads its timeout when it starts. Returns the names of the
    /// settings that changed. When any of them is one of those fixed at start (see
    /// [`Settings`]), nothing changes and the error names them.
    pub fn update_settings(&self, new: Settings) -> Result<Vec<&'static str>, RouteError> {
        // One update at a time: the check and the swap below must see the same settings.
        let _one_at_a_time = self.inner.switching.lock();
        let changes = self.inner.settings.load().changes(&new);
        let fixed: Vec<&str> = changes.iter().filter(|c| !c.live).map(|c| c.name).collect();
        if !fixed.is_empty() {
            return Err(RouteError::Config(format!(
                "settings not reloaded: {} can change only with a restart",
                fixed.join(", ")
            )));
        }
        self.inner.settings.store(Arc::new(new));
        Ok(changes.iter().map(|c| c.name).collect())
    }

    /// The migration state now.
    pub fn migration_state(&self) -> MigrationState {
        MigrationState::from_u8(self.inner.state.load(Ordering::SeqCst))
    }

    /// Switches the migration state, as photosrv's `/migration/{start,abort,finish}` do, but a
    /// key must be configured and given: an unset or empty key refuses every switch. The new
    /// state is persisted before it takes effect. Returns photosrv's message.
    pub fn switch_migration(&self, to: MigrationState, key: &str) -> Result<String, RouteError> {
        let settings = self.inner.settings.load();
        let want = settings.migration_key.as_deref().unwrap_or("");
        if want.is_empty() {
            return Err(RouteError::Migration(format!(
                "unable to switch to {to}: no migration key is configured (--migration-key)"
            )));
        }
        if !keys_match(key, want) {
            return Err(RouteError::Migration(format!(
                "unable to switch to {to}: invalid key"
            )));
        }
        // Under the lock: a reload cannot take the migration ring away meanwhile.
        let _one_at_a_time = self.inner.switching.lock();
        if to != MigrationState::Old && self.inner.topo.load().migration.is_none() {
            return Err(RouteError::Migration(format!(
                "unable to switch to {to}: missing migration ring"
            )));
        }
        if let Some(p) = &self.inner.settings.load().migration_state {
            to.store(p)?;
        }
        // SeqCst pairs with the write gate: see `inflight`.
        let was = MigrationState::from_u8(self.inner.state.swap(to as u8, Ordering::SeqCst));
        tracing::info!(state = %to, was = %was, "migration state switched");
        Ok(format!("currentMigrationState = {to} (was {was})"))
    }

    /// Waits (at most the write timeout) until every PUT/DELETE admitted under an earlier
    /// migration state has finished, so a repair listing that starts afterwards sees what
    /// they wrote. Returns how many are still running (0: none). The admin switch endpoints
    /// call this before they answer.
    pub async fn drain_writes(&self) -> usize {
        let within = self.inner.settings.load().write_timeout;
        let left = self
            .inner
            .writes
            .drain(self.migration_state(), within)
            .await;
        if left > 0 {
            tracing::warn!(
                left,
                "writes admitted before the migration switch are still running"
            );
        }
        left
    }

    /// Applies a roster: replicas it does not list are skipped (an empty roster lists all).
    pub fn apply_roster(&self, roster: &Roster) {
        // Held while the flags are set, so a reload (which applies the last roster to its new
        // replicas under the same lock) and a roster change cannot interleave.
        let mut last = self.inner.roster.lock();
        *last = Some(roster.clone());
        flag_roster(&self.inner.topo.load(), roster);
        drop(last);
        self.inner
            .roster_ignored
            .store(roster.ignored_lines, Ordering::Relaxed);
        self.inner
            .roster_hosts
            .store(roster.hosts.len(), Ordering::Relaxed);
        ::metrics::gauge!("shoal_route_roster_ignored_lines").set(roster.ignored_lines as f64);
        ::metrics::gauge!("shoal_route_roster_hosts").set(roster.hosts.len() as f64);
    }

    /// Puts a re-read shard map in force (SIGHUP in `shoal route`): rings, shards, weights,
    /// replicas, the migration ring and prefix rewrites. A replica the old map named keeps its
    /// health, roster flag and counters; a new one starts usable and in the roster if the last
    /// roster lists it. Requests under way finish on the map they started with. The settings
    /// are [`Router::update_settings`]'s.
    ///
    /// The end of a migration: in state `new`, a map whose primary ring is the migration ring
    /// (the same shards and nodes) and which has no migration ring completes it, and the state
    /// becomes `old` (persisted first). Any other map that lacks the migration ring that state
    /// `both` or `new` reads from is refused, the old map kept, as is another data centre.
    pub fn reload(&self, cfg: &RouteConfig) -> Result<Reloaded, RouteError> {
        // Under the switch lock: a migration switch sees the old map or the new one whole.
        let _one_at_a_time = self.inner.switching.lock();
        let old = self.inner.topo.load_full();
        if cfg.dc != old.dc {
            return Err(RouteError::Config(format!(
                "reload refused: data centre {} is not {}",
                cfg.dc, old.dc
            )));
        }
        let topo = Topology::keeping(cfg, Some(&old))?;
        let state = self.migration_state();
        let promoted = state == MigrationState::New
            && topo.migration.is_none()
            && old
                .migration
                .as_ref()
                .is_some_and(|m| m.same_as(&topo.primary));
        if state != MigrationState::Old && topo.migration.is_none() && !promoted {
            return Err(RouteError::Migration(format!(
                "reload refused: the migration state is {state} and the new map has no \
                 migration ring (in {}, the primary ring must be the migration ring to end \
                 the migration); abort the migration first or keep the ring",
                MigrationState::New
            )));
        }
        if !promoted
            && state != MigrationState::Old
            && let (Some(was), Some(now)) = (&old.migration, &topo.migration)
            && !was.same_as(now)
        {
            return Err(RouteError::Migration(format!(
                "reload refused: the migration state is {state} and the new map's migration \
                 ring differs from the one the migration is moving to (its shards or nodes); \
                 finish or abort the migration first"
            )));
        }
        if promoted && let Some(p) = &self.inner.settings.load().migration_state {
            MigrationState::Old.store(p)?;
        }
        for notice in &cfg.duplicate_replicas {
            tracing::warn!("{notice}");
        }
        let kept = |r: &Arc<crate::replica::Replica>, other: &Topology| {
            other.all.iter().any(|o| Arc::ptr_eq(o, r))
        };
        let summary = Reloaded {
            shards: topo.primary.spec.shards.len(),
            migration_shards: topo.migration.as_ref().map(|m| m.spec.shards.len()),
            replicas_added: topo.all.iter().filter(|r| !kept(r, &old)).count(),
            replicas_removed: old.all.iter().filter(|r| !kept(r, &topo)).count(),
            completed_migration: promoted,
        };
        let checked = self.inner.settings.load().health_interval.is_some();
        for r in topo.all.iter().filter(|r| !kept(r, &old)) {
            r.set_health_checked(checked);
        }
        // The last roster's flags on the new replicas before any request can reach them; the
        // lock is held through the swap, so no roster change falls between the two.
        let roster = self.inner.roster.lock();
        if let Some(r) = roster.as_ref() {
            flag_roster(&topo, r);
        }
        // In `new` without a migration ring, paths go to the primary ring (`Topology::targets`),
        // the ring `new` read from; the state `old` comes after the topology, and requests read
        // the state before the topology (`handle`), so `old` is never paired with the old map.
        self.inner.topo.store(Arc::new(topo));
        drop(roster);
        if promoted {
            self.inner
                .state
                .store(MigrationState::Old as u8, Ordering::SeqCst);
            tracing::info!("migration completed: the migration ring is now the primary ring");
        }
        Ok(summary)
    }

    /// Where `raw_path` (as a client would send it, percent-encoded) goes now.
    pub fn explain(&self, raw_path: impl AsRef<[u8]>) -> Result<Explain, Rejected> {
        // The state before the topology, as in `handle`.
        let state = self.migration_state();
        let topo = self.inner.topo.load();
        let path = normalize_request_path(raw_path, &topo.rewrites)?;
        let targets = topo
            .targets(&path, state)
            .into_iter()
            .map(|t| ExplainTarget {
                ring: t.ring.to_string(),
                shard: t.shard,
                replicas: t.replicas.iter().map(|r| r.base().to_string()).collect(),
            })
            .collect();
        let key = path.strip_prefix(b"/").unwrap_or(&path);
        Ok(Explain {
            key: display_path(key).into_owned(),
            path: display_path(&path).into_owned(),
            state: state.to_string(),
            targets,
        })
    }

    /// Shards, replicas and their health, for `/status`.
    pub fn status(&self) -> Status {
        let t = self.inner.topo.load_full();
        let rings = std::iter::once(&t.primary)
            .chain(t.migration.as_ref())
            .map(|l| RingStatus {
                ring: l.name.to_string(),
                chooser: l.spec.chooser.name().to_string(),
                shards: l
                    .spec
                    .shards
                    .iter()
                    .zip(&l.replicas)
                    .map(|(s, reps)| ShardStatus {
                        name: s.name.clone(),
                        weight: s.weight,
                        replicas: reps
                            .iter()
                            .map(|r| {
                                let (requests, errors) = r.counts();
                                ReplicaStatus {
                                    url: r.base().to_string(),
                                    in_roster: r.in_roster(),
                                    healthy: r.healthy(),
                                    requests,
                                    errors,
                                }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        Status {
            dc: t.dc.clone(),
            migration_state: self.migration_state().to_string(),
            roster_hosts: self.inner.roster_hosts.load(Ordering::Relaxed),
            roster_ignored_lines: self.inner.roster_ignored.load(Ordering::Relaxed),
            repair_backlog: self.repair_backlog(),
            body_timeouts: self.inner.body_timeouts.load(Ordering::Relaxed),
            writes_from_previous_state: self.inner.writes.others(self.migration_state()),
            settings: SettingsStatus::of(&self.inner.settings.load()),
            rings,
        }
    }

    /// Entries in the repair journal (0 without one); also published as a gauge.
    pub fn repair_backlog(&self) -> usize {
        let n = self.inner.journal.as_ref().map_or(0, Journal::backlog);
        ::metrics::gauge!("shoal_route_repair_backlog").set(n as f64);
        n
    }

    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        if req.method() == Method::PUT || req.method() == Method::DELETE {
            // A write runs to its end in a task of its own: a client that hangs up before the
            // answer drops this future with its connection, but replicas that took the whole
            // body store it, and the ones that missed it must still be journalled.
            let r = self.clone();
            return match tokio::spawn(async move { r.answer(req).await }).await {
                Ok(resp) => resp,
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the write ended without an answer: {e}\n"),
                ),
            };
        }
        self.answer(req).await
    }

    async fn answer<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let method = req.method().clone();
        let resp = self.dispatch(req).await;
        self.inner.counters.request(&method, resp.status().as_u16());
        resp
    }

    async fn dispatch<B>(&self, mut req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let client = match req.extensions_mut().remove::<RenderedClient>() {
            Some(c) => Some(c),
            None => req
                .extensions()
                .get::<ClientAddr>()
                .map(|&ClientAddr(ip)| RenderedClient::new(ip)),
        };
        if let Some(client) = client {
            forwarded_for(req.headers_mut(), client);
        }
        let writes = !self.inner.settings.load().read_only;
        let method = req.method().clone();
        let is_read = method == Method::GET || method == Method::HEAD;
        let is_write = writes && (method == Method::PUT || method == Method::DELETE);
        if !is_read && !is_write {
            let allow = if writes {
                "GET, HEAD, PUT, DELETE"
            } else {
                "GET, HEAD"
            };
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return r;
        }
        // A write holds the gate for its whole run, under the state it was placed with. The
        // state is read before the topology: a reload that ends a migration publishes the new
        // topology before the state `old`, so `old` is only ever seen with the new topology.
        let (state, _write) = if is_read {
            (self.migration_state(), None)
        } else {
            let (s, g) = self.inner.writes.enter(&self.inner.state);
            (s, Some(g))
        };
        // One topology for the whole request, whatever a reload does meanwhile.
        let topo = self.inner.topo.load_full();
        let path = match normalize_request_path(req.uri().path(), &topo.rewrites) {
            Ok(p) => p,
            Err(why) => return text(StatusCode::BAD_REQUEST, format!("{why}\n")),
        };
        if path == b"/" || path.is_empty() {
            return text(StatusCode::NOT_FOUND, "Not Found");
        }
        // nginx's DAV module takes a DELETE of `dir/` for the whole tree under it, on every
        // replica at once: the router writes files only.
        if is_write && path.ends_with(b"/") {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} of a directory (a path ending in '/') is refused\n"),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let targets: Vec<Target> = topo.targets(&path, state);
        drop(topo);
        let mut pq = encode_path(&path);
        if is_read && let Some(q) = req.uri().query() {
            pq.push('?');
            pq.push_str(q);
        }
        if is_read {
            crate::read::read(&self.inner, method, req.headers(), &pq, &targets).await
        } else {
            crate::write::write(&self.inner, req, &path, &pq, &targets).await
        }
    }
}

/// The address a request came from, which the front server ([`crate::server::serve`]) puts
/// in each request's extensions (a program serving [`Router::handle`] itself can too). The
/// storage nodes get it in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// A [`ClientAddr`] with its address already as header text, which the front server makes
/// once per connection rather than per request.
#[derive(Debug, Clone)]
pub(crate) struct RenderedClient {
    ip: IpAddr,
    text: HeaderValue,
}

impl RenderedClient {
    pub(crate) fn new(ip: IpAddr) -> Self {
        let mut text = String::new();
        let _ = write!(text, "{ip}");
        RenderedClient {
            ip,
            // An address's text is always a valid header value.
            text: HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("unknown")),
        }
    }
}

/// Appends `client` to `X-Forwarded-For` as Go's reverse proxy (photosrv's) and nginx's
/// `$proxy_add_x_forwarded_for` do: the values already there, joined by `, `, then the
/// client, on one line. Storage nodes that log or trust that header see what they saw
/// behind photosrv.
fn forwarded_for(headers: &mut http::HeaderMap, client: RenderedClient) {
    if !headers.contains_key(X_FORWARDED_FOR) {
        headers.insert(X_FORWARDED_FOR, client.text);
        return;
    }
    let mut value = String::new();
    for prior in headers.get_all(X_FORWARDED_FOR) {
        if let Ok(p) = prior.to_str() {
            value.push_str(p);
            value.push_str(", ");
        }
    }
    let _ = write!(value, "{}", client.ip);
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

pub(crate) const X_FORWARDED_FOR: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-for");

thread_local! {
    /// A thread's own pool ([`Router::use_thread_local_pool`]), keyed by the router's address.
    static LOCAL_POOL: std::cell::RefCell<Option<(usize, HttpClient)>> =
        const { std::cell::RefCell::new(None) };
}

impl Inner {
    /// The HTTP client for requests served on this thread.
    pub(crate) fn client(&self) -> HttpClient {
        let id = std::ptr::from_ref(self) as usize;
        LOCAL_POOL
            .with(|p| match &*p.borrow() {
                Some((owner, c)) if *owner == id => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_else(|| self.client.clone())
    }
}

/// The client of writes, health checks and repair: HTTP/1.1, over TLS to `https://` nodes.
fn build_client(settings: &Settings, tls: &Arc<rustls::ClientConfig>) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(settings.connect_timeout));
    connector.set_keepalive(Some(std::time::Duration::from_secs(60)));
    connector.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config({
            // hyper-rustls sets ALPN itself (http/1.1 here) and refuses a config that has it.
            let mut tls = rustls::ClientConfig::clone(tls);
            tls.alpn_protocols.clear();
            tls
        })
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    let connector = Within {
        inner: connector,
        within: settings.connect_timeout,
    };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .pool_max_idle_per_host(settings.pool_idle_per_host)
        .build(connector)
}

/// A connector whose connection must be up, TLS handshake included, within `within`:
/// `HttpConnector`'s own timeout covers only the TCP connect, so a node that accepts and
/// then never answers the handshake would hold a write until its `write_timeout`.
#[derive(Clone)]
pub(crate) struct Within<C> {
    inner: C,
    within: std::time::Duration,
}

impl<C> tower_service::Service<http::Uri> for Within<C>
where
    C: tower_service::Service<http::Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let within = self.within;
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(within, connecting).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) if https => Err(format!("TLS handshake not done within {within:?}").into()),
                Err(_) => Err(format!("connect timed out after {within:?}").into()),
            }
        })
    }
}

/// A short text answer.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
