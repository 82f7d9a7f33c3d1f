//! A group: a named keyspace with a byte budget and a loader.
//!
//! # The get algorithm (galaxycache's, §3.3 of the seed notes)
//! 1. Main cache, then hot cache (expired entries count as missing and are removed).
//! 2. `Peek`: stop, `NotFound`.
//! 3. Join or start the key's flight. A `Regular` get for which [`Peers::pick`] names
//!    another member has its own flights; every other get (`LocalOnly`, or `Regular` of a
//!    key this node owns) shares the local flights, so an owner loads a key once however
//!    its callers and its peers ask. Inside the flight:
//!    1. Re-check main and hot (a flight that just finished may have filled them).
//!    2. If another member owns the key: fetch from it. Success: cap
//!       the expiry, maybe promote into the hot cache, done. `NotFound`: done, no local
//!       load. Other errors: counted, fall through.
//!    3. Load locally, cap the expiry, store in the main cache. `NotFound` is stored as a
//!       negative entry only when the group has a `negative_ttl`; errors are never stored.
//!
//! With a `stale_if_error` grace, step 1 also keeps a value past its expiry (but within the
//! grace) as a fallback, and so does a peer's answer marked stale (its owner could not refresh
//! it either: the loader is tried next). The flight answers with the newest fallback, marked
//! stale, when the loader fails with a retryable error. The key is then remembered as failing
//! (`stale.rs`): later gets get the stale value at once, and one of them each
//! [`STALE_RETRY`](crate::STALE_RETRY) refreshes it in the background, so callers do not
//! wait on an origin that is down.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::time::Instant;

use crate::builder::{Config, GroupBuilder};
use crate::expiry::{TtlCap, cap_expiry, is_expired};
use crate::flight::{Flights, Role};
use crate::loader::DynLoader;
use crate::promote::{HotStats, PromoteStats, Promoter, Tracker};
use crate::stale::Stale;
use crate::stats::{Counter, Counters};
use crate::tier::{Entry, Lookup, NotStored, Tier, weight_of};
use crate::{
    ErrorSource, FetchMode, GetOptions, Got, GroupStats, LoadError, Loaded, Peer, Peers, Source,
};

/// What a flight hands its callers.
type Flown = Result<Got, LoadError>;

/// A named keyspace with a byte budget, filled by a [`Loader`](crate::Loader).
///
/// Built with [`Group::builder`]; shared as `Arc<Group>`.
pub struct Group {
    name: Arc<str>,
    budget: u64,
    main: Tier,
    hot: Tier,
    loader: Box<dyn DynLoader>,
    promoter: Box<dyn Promoter>,
    peers: RwLock<Option<Arc<dyn Peers>>>,
    regular: Arc<Flights<Flown>>,
    local: Arc<Flights<Flown>>,
    tracker: Tracker,
    counters: Counters,
    ttl_cap: Option<TtlCap>,
    negative_ttl: Option<Duration>,
    load_timeout: Option<Duration>,
    stale: Stale,
}

/// What a lookup in the tiers found.
enum Found {
    /// A value (or a remembered "not found") within its lifetime.
    Fresh(Flown),
    /// A value past its expiry, within the group's `stale_if_error` grace.
    Stale(Got),
    Missing,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("budget", &self.budget)
            .field("main", &self.main)
            .field("hot", &self.hot)
            .finish_non_exhaustive()
    }
}

impl Group {
    /// Start building a group called `name` that may keep `budget_bytes` in memory (main
    /// and hot cache together). A budget of 0 caches nothing: every get loads (still one
    /// load per key at a time).
    pub fn builder(name: impl Into<Arc<str>>, budget_bytes: u64) -> GroupBuilder {
        GroupBuilder::new(name, budget_bytes)
    }

    pub(crate) fn from_config(c: Config, loader: Box<dyn DynLoader>) -> Self {
        let hot_budget = c.budget.checked_div(c.hot_ratio).unwrap_or(0);
        let largest = weight_of(0, c.max_entry_bytes as usize);
        Group {
            main: Tier::new(c.budget - hot_budget, largest),
            hot: Tier::new(hot_budget, largest),
            name: c.name,
            budget: c.budget,
            loader,
            promoter: c.promoter,
            peers: RwLock::new(None),
            regular: Arc::new(Flights::new()),
            local: Arc::new(Flights::new()),
            tracker: Tracker::new(c.max_candidates, c.stats_idle_reset),
            counters: Counters::new(),
            ttl_cap: c.ttl_cap,
            negative_ttl: c.negative_ttl,
            load_timeout: c.load_timeout,
            stale: Stale::new(c.stale_if_error, c.stale_when),
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group's memory budget in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The value of `key`: from memory, the owning peer, or one load shared by all
    /// concurrent callers. Must be called within a tokio runtime (loads run as tasks).
    pub async fn get(self: &Arc<Self>, key: &[u8]) -> Result<Bytes, LoadError> {
        self.get_with(key, GetOptions::default())
            .await
            .map(|got| got.value)
    }

    /// [`get`](Self::get) with options, answering where the value came from.
    pub async fn get_with(
        self: &Arc<Self>,
        key: &[u8],
        opts: GetOptions,
    ) -> Result<Got, LoadError> {
        self.counters.bump(Counter::Gets);
        let result = match self.lookup(key) {
            Found::Fresh(hit) => hit,
            Found::Stale(stale) if opts.mode == FetchMode::Peek => {
                if self.stale.is_failing(key) {
                    Ok(stale)
                } else {
                    Err(LoadError::NotFound)
                }
            }
            Found::Stale(stale) => match self.stale.refresh_due(key) {
                // A refresh failed a moment ago: this caller does not wait on another.
                Some(start) => {
                    if start {
                        self.refresh_in_background(key, opts.mode);
                    }
                    Ok(stale)
                }
                None => self.fly(key, opts.mode).await,
            },
            Found::Missing if opts.mode == FetchMode::Peek => Err(LoadError::NotFound),
            Found::Missing => self.fly(key, opts.mode).await,
        };
        match &result {
            Err(LoadError::NotFound) => self.counters.bump(Counter::NotFound),
            Ok(got) if got.stale => self.counters.bump(Counter::Stale),
            _ => {}
        }
        result
    }

    /// Refresh a failing key in a task of its own; the callers have its stale value meanwhile.
    fn refresh_in_background(self: &Arc<Self>, key: &[u8], mode: FetchMode) {
        /// Ends the refresh's turn however the task ends (a panic in a peer picker too).
        struct Turn(Arc<Group>, Bytes);
        impl Drop for Turn {
            fn drop(&mut self) {
                self.0.stale.refresh_ended(&self.1);
            }
        }
        let turn = Turn(Arc::clone(self), Bytes::copy_from_slice(key));
        tokio::spawn(async move {
            // A fresh value cleared the key; otherwise the next refresh is due in a while.
            let _ = turn.0.fly(&turn.1, mode).await;
        });
    }

    async fn fly(self: &Arc<Self>, key: &[u8], mode: FetchMode) -> Flown {
        // Only a flight that asks a peer is kept apart from LocalOnly ones (it may be waiting
        // on a member that is waiting on us). A Regular get of a key this node owns loads
        // locally, so it shares the LocalOnly flight: the owner loads a key once however
        // many of its own callers and peers ask for it at the same time.
        let peer = match mode {
            // Clone the Arc out: the lock is not held while foreign code (pick) runs.
            FetchMode::Regular => self.peers.read().clone().and_then(|p| p.pick(key)),
            _ => None,
        };
        let flights = if peer.is_some() {
            &self.regular
        } else {
            &self.local
        };
        let (result, role) = flights
            .run(key, |key| {
                let group = Arc::clone(self);
                async move { group.fill(key, peer).await }
            })
            .await;
        let result = result.unwrap_or_else(|_abandoned| {
            Err(LoadError::Aborted(
                "the load task panicked or its runtime shut down".into(),
            ))
        });
        if role == Role::Leader {
            return result;
        }
        self.counters.bump(Counter::LoadsJoined);
        result.map(|got| Got {
            joined: true,
            ..got
        })
    }

    /// Look in main, then hot. `Fresh(Err(NotFound))` is a negative entry.
    #[inline]
    fn lookup(&self, key: &[u8]) -> Found {
        let mut stale = None;
        match self.main.get(key, self.stale.grace) {
            Lookup::Hit(entry) => {
                self.counters.bump(Counter::MainHits);
                return Found::Fresh(answer(entry, Source::MainCache));
            }
            Lookup::Stale(entry) => stale = Some((entry, Source::MainCache)),
            Lookup::Expired => self.counters.bump(Counter::Expired),
            Lookup::Miss => {}
        }
        match self.hot.get(key, self.stale.grace) {
            Lookup::Hit(entry) => {
                self.counters.bump(Counter::HotHits);
                if let Some(stats) = &entry.stats {
                    self.tracker.touch(stats, Instant::now());
                }
                return Found::Fresh(answer(entry, Source::HotCache));
            }
            // Of two stale copies, the newer (a peer's, kept in hot after a failed refresh,
            // may be newer than an old copy of this node's own).
            Lookup::Stale(entry) => match &stale {
                Some((main, _)) if main.expires >= entry.expires => {}
                _ => stale = Some((entry, Source::HotCache)),
            },
            Lookup::Expired => self.counters.bump(Counter::Expired),
            Lookup::Miss => {}
        }
        match stale {
            Some((entry, source))
                if self.stale.may_serve(entry.value.as_deref().unwrap_or(&[])) =>
            {
                match answer(entry, source) {
                    Ok(got) => Found::Stale(Got { stale: true, ..got }),
                    Err(_) => Found::Missing, // the tier only keeps values stale
                }
            }
            _ => Found::Missing,
        }
    }

    /// The body of a flight; runs in its own task.
    /// `peer` is the owner to ask first, if another member owns the key.
    async fn fill(self: Arc<Self>, key: Bytes, peer: Option<Arc<dyn Peer>>) -> Flown {
        let epoch = self.stale.epoch(&key);
        let mut fallback = match self.lookup(&key) {
            Found::Fresh(hit) => {
                self.stale.clear(&key);
                return hit;
            }
            Found::Stale(got) => Some(got),
            Found::Missing => None,
        };
        if let Some(peer) = peer {
            match peer.fetch(&self.name, key.clone()).await {
                Ok(loaded) if loaded.stale => {
                    // The owner could not refresh it either: the loader may still succeed.
                    self.counters.bump(Counter::PeerLoads);
                    let got = Got {
                        value: loaded.value,
                        expires: loaded.expires,
                        source: Source::Peer,
                        joined: false,
                        stale: true,
                    };
                    fallback = Some(newer(fallback, got));
                }
                Ok(loaded) => {
                    self.counters.bump(Counter::PeerLoads);
                    self.stale.clear(&key);
                    return Ok(self.accept_from_peer(key, loaded));
                }
                Err(LoadError::NotFound) => {
                    self.drop_stale(&key, fallback.is_some());
                    return Err(LoadError::NotFound);
                }
                Err(_) => self.counters.bump(Counter::PeerErrors),
            }
        }
        self.load_locally(key, fallback, epoch).await
    }

    /// The key has no value any more: its stale copy, if it had one, must not be served.
    fn drop_stale(&self, key: &[u8], had_stale: bool) {
        self.stale.clear(key);
        if had_stale {
            // Only what has expired: a fresh value may have landed meanwhile.
            let now = Instant::now();
            self.main.remove_if_expired(key, now);
            self.hot.remove_if_expired(key, now);
        }
    }

    /// The answer to a failed refresh, if `got` (a stale copy) may give it: within the grace,
    /// allowed, and no remove since the flight began (`epoch`). A copy from a peer or the
    /// loader is kept where the next lookup finds it, and the key is marked failing.
    fn fall_back(&self, key: &Bytes, got: Got, epoch: u64) -> Option<Got> {
        let ok = self.stale.epoch(key) == epoch
            && self.stale.within_grace(got.expires, Instant::now())
            && self.stale.may_serve(&got.value);
        if !ok {
            return None;
        }
        let tier = match got.source {
            Source::Peer => Some(&self.hot),
            Source::Load => Some(&self.main),
            Source::MainCache | Source::HotCache => None, // it is there already
        };
        if let Some(tier) = tier {
            let entry = Entry {
                value: Some(got.value.clone()),
                expires: got.expires,
                stats: None,
            };
            if let Err(NotStored::TooLarge) = tier.insert(key.clone(), entry) {
                self.counters.bump(Counter::Oversize);
            }
        }
        self.stale.mark_failing(key);
        Some(got)
    }

    fn accept_from_peer(&self, key: Bytes, loaded: Loaded) -> Got {
        let expires = cap_expiry(self.ttl_cap, loaded.expires);
        let now = Instant::now();
        if self.hot.is_enabled() && !is_expired(expires, now) {
            let (stats, key_hits, key_qps) = self.tracker.fetched(&key, now);
            let hot = HotStats::new(
                self.tracker.coldest_qps(&self.hot, now),
                self.hot.capacity().saturating_sub(self.hot.bytes()),
                self.hot.capacity(),
            );
            let weight = weight_of(key.len(), loaded.value.len());
            let stats_now = PromoteStats::new(key_hits, key_qps, weight, hot);
            if self
                .promoter
                .should_promote(&key, &loaded.value, &stats_now)
            {
                let entry = Entry {
                    value: Some(loaded.value.clone()),
                    expires,
                    stats: Some(stats),
                };
                match self.hot.insert(key, entry) {
                    Ok(evicted) => {
                        self.counters.bump(Counter::Promotions);
                        self.tracker.requeue(evicted);
                    }
                    Err(NotStored::TooLarge) => self.counters.bump(Counter::Oversize),
                    Err(NotStored::Disabled) => {}
                }
            }
        }
        Got {
            value: loaded.value,
            expires,
            source: Source::Peer,
            joined: false,
            stale: false,
        }
    }

    /// Load with the group's loader. `fallback` is the newest stale copy (this node's or the
    /// owner's), the answer if the load fails with a retryable error; `epoch` is the count of
    /// removes when the flight began.
    async fn load_locally(&self, key: Bytes, fallback: Option<Got>, epoch: u64) -> Flown {
        self.counters.bump(Counter::Loads);
        let load = self.loader.load_boxed(key.clone());
        let result = match self.load_timeout {
            Some(after) => {
                tokio::time::timeout(after, load)
                    .await
                    .unwrap_or(Err(LoadError::Timeout {
                        from: ErrorSource::Loader,
                        after,
                    }))
            }
            None => load.await,
        };
        match result {
            Ok(loaded) => {
                let expires = cap_expiry(self.ttl_cap, loaded.expires);
                if loaded.stale {
                    // The loader's own old copy (a disk tier's, its source having failed).
                    let own = Got {
                        value: loaded.value,
                        expires,
                        source: Source::Load,
                        joined: false,
                        stale: true,
                    };
                    return self
                        .fall_back(&key, newer(fallback, own), epoch)
                        .ok_or_else(|| {
                            LoadError::loader("only a stale copy, which may not be served", true)
                        });
                }
                self.store_main(key.clone(), Some(loaded.value.clone()), expires);
                self.stale.clear(&key);
                Ok(Got {
                    value: loaded.value,
                    expires,
                    source: Source::Load,
                    joined: false,
                    stale: false,
                })
            }
            Err(LoadError::NotFound) => {
                self.drop_stale(&key, fallback.is_some());
                if let Some(ttl) = self.negative_ttl {
                    // A TTL too long to represent never expires.
                    self.store_main(key, None, Instant::now().checked_add(ttl));
                }
                Err(LoadError::NotFound)
            }
            Err(e) => {
                self.counters.bump(Counter::LoadErrors);
                if e.is_retryable()
                    && let Some(got) = fallback.and_then(|got| self.fall_back(&key, got, epoch))
                {
                    return Ok(got);
                }
                Err(e)
            }
        }
    }

    /// Store in the main cache unless already expired; whether it was stored.
    fn store_main(&self, key: Bytes, value: Option<Bytes>, expires: Option<Instant>) -> bool {
        if is_expired(expires, Instant::now()) {
            return false;
        }
        match self.main.insert(
            key,
            Entry {
                value,
                expires,
                stats: None,
            },
        ) {
            Ok(_evicted) => true,
            Err(NotStored::TooLarge) => {
                self.counters.bump(Counter::Oversize);
                false
            }
            Err(NotStored::Disabled) => false,
        }
    }

    /// The value of `key` if it is in memory (main, then hot), without loading, counting or
    /// touching promotion statistics. For warm handoff and disk tiers.
    pub fn peek(&self, key: &[u8]) -> Option<Loaded> {
        [&self.main, &self.hot]
            .into_iter()
            .find_map(|tier| match tier.get(key, self.stale.grace) {
                Lookup::Hit(Entry {
                    value: Some(value),
                    expires,
                    ..
                }) => Some(Loaded {
                    value,
                    expires,
                    stale: false,
                }),
                _ => None,
            })
    }

    /// Put a value this node owns into the main cache (warm handoff, disk tier reads). The
    /// group's `max_ttl` applies. Whether it was stored (not when caching is off, the value
    /// is too large, or it has already expired).
    pub fn insert_main(&self, key: Bytes, loaded: Loaded) -> bool {
        let expires = cap_expiry(self.ttl_cap, loaded.expires);
        let stored = self.store_main(key.clone(), Some(loaded.value), expires);
        if stored {
            self.stale.clear(&key);
        }
        stored
    }

    /// Remove `key` from both tiers (including a negative entry) and tell the loader
    /// ([`Loader::forget`](crate::Loader::forget)); whether it was in memory. A load of `key`
    /// already in flight still stores what it loads. Only this node forgets: a cluster
    /// removes a key everywhere with `shoal_cluster::Cluster::remove`.
    pub fn remove(&self, key: &[u8]) -> bool {
        self.loader.forget_key(key);
        let main = self.main.remove(key);
        let hot = self.hot.remove(key);
        self.stale.removed(key);
        main || hot
    }

    /// Install the peers to ask for keys other members own, replacing any previous ones.
    /// Loads already in flight keep the peers they started with.
    pub fn set_peers(&self, peers: Arc<dyn Peers>) {
        *self.peers.write() = Some(peers);
    }

    /// Remove the peers: every key is loaded locally from now on.
    pub fn clear_peers(&self) {
        *self.peers.write() = None;
    }

    /// A snapshot of the group's counters and tier sizes.
    pub fn stats(&self) -> GroupStats {
        let c = |counter| self.counters.get(counter);
        GroupStats {
            gets: c(Counter::Gets),
            main_hits: c(Counter::MainHits),
            hot_hits: c(Counter::HotHits),
            peer_loads: c(Counter::PeerLoads),
            peer_errors: c(Counter::PeerErrors),
            loads: c(Counter::Loads),
            loads_joined: c(Counter::LoadsJoined),
            load_errors: c(Counter::LoadErrors),
            not_found: c(Counter::NotFound),
            promotions: c(Counter::Promotions),
            oversize: c(Counter::Oversize),
            expired: c(Counter::Expired),
            stale: c(Counter::Stale),
            main_evictions: self.main.evictions(),
            hot_evictions: self.hot.evictions(),
            main_bytes: self.main.bytes(),
            main_items: self.main.items(),
            main_capacity: self.main.capacity(),
            hot_bytes: self.hot.bytes(),
            hot_items: self.hot.items(),
            hot_capacity: self.hot.capacity(),
        }
    }
}

/// Of a stale copy and another, the one that expires later (the newer version).
fn newer(a: Option<Got>, b: Got) -> Got {
    match a {
        Some(a)
            if a.expires
                .is_none_or(|at| b.expires.is_some_and(|bt| at >= bt)) =>
        {
            a
        }
        _ => b,
    }
}

/// A cache entry as a get's answer; a negative entry is `NotFound`.
fn answer(entry: Entry, source: Source) -> Flown {
    match entry.value {
        Some(value) => Ok(Got {
            value,
            expires: entry.expires,
            source,
            joined: false,
            stale: false,
        }),
        None => Err(LoadError::NotFound),
    }
}
