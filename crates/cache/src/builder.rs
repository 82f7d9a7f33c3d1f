//! Building a [`Group`]: its budget split, promotion, expiry and timeout settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::expiry::TtlCap;
use crate::promote::{Promoter, QpsPromoter};
use crate::{Group, Loader};

/// Default share of the budget for the hot cache: 1/8 (galaxycache's and groupcache's).
pub const DEFAULT_HOT_RATIO: u64 = 8;
/// Default length of the candidate list (keys fetched from peers whose rates are tracked).
pub const DEFAULT_MAX_CANDIDATES: usize = 1024;
/// Default largest value the tiers are sharded for: a 1 MiB chunk and some slack.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = (1 << 20) + 4096;
/// After a refresh of a stale value failed, how long gets are answered with the stale value
/// before one of them tries again (see [`GroupBuilder::stale_if_error`]).
pub const STALE_RETRY: Duration = Duration::from_secs(1);
/// Default idle time after which a key's request-rate window starts over.
pub const DEFAULT_STATS_IDLE_RESET: Duration = Duration::from_secs(60);

/// Settings of a group, collected by [`GroupBuilder`].
pub(crate) struct Config {
    pub(crate) name: Arc<str>,
    pub(crate) budget: u64,
    pub(crate) hot_ratio: u64,
    pub(crate) max_entry_bytes: u64,
    pub(crate) promoter: Box<dyn Promoter>,
    pub(crate) max_candidates: usize,
    pub(crate) stats_idle_reset: Duration,
    pub(crate) ttl_cap: Option<TtlCap>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) load_timeout: Option<Duration>,
    pub(crate) stale_if_error: Duration,
    pub(crate) stale_when: Option<Box<crate::stale::StalePredicate>>,
}

/// Builds a [`Group`]; start with [`Group::builder`].
pub struct GroupBuilder {
    config: Config,
}

impl fmt::Debug for GroupBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("GroupBuilder")
            .field("name", &c.name)
            .field("budget", &c.budget)
            .field("hot_ratio", &c.hot_ratio)
            .field("max_entry_bytes", &c.max_entry_bytes)
            .field("max_candidates", &c.max_candidates)
            .field("ttl_cap", &c.ttl_cap)
            .field("negative_ttl", &c.negative_ttl)
            .field("load_timeout", &c.load_timeout)
            .field("stale_if_error", &c.stale_if_error)
            .finish_non_exhaustive()
    }
}

impl GroupBuilder {
    pub(crate) fn new(name: impl Into<Arc<str>>, budget_bytes: u64) -> Self {
        GroupBuilder {
            config: Config {
                name: name.into(),
                budget: budget_bytes,
                hot_ratio: DEFAULT_HOT_RATIO,
                max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
                promoter: Box::new(QpsPromoter),
                max_candidates: DEFAULT_MAX_CANDIDATES,
                stats_idle_reset: DEFAULT_STATS_IDLE_RESET,
                ttl_cap: None,
                negative_ttl: None,
                load_timeout: None,
                stale_if_error: Duration::ZERO,
                stale_when: None,
            },
        }
    }

    /// Give the hot cache `budget / ratio` bytes and the main cache the rest (default 8).
    /// `0` means no hot cache. The split is fixed: the main cache does not borrow the hot
    /// cache's share while it is empty.
    pub fn hot_ratio(mut self, ratio: u64) -> Self {
        self.config.hot_ratio = ratio;
        self
    }

    /// The largest value (plus key) the group expects to cache, in bytes (default 1 MiB +
    /// 4 KiB). The tiers use fewer, larger shards when needed so a value this large is always
    /// admitted; a larger one is admitted only if it fits a shard, else it is returned
    /// uncached and counted in [`GroupStats::oversize`](crate::GroupStats::oversize).
    pub fn max_entry_bytes(mut self, bytes: u64) -> Self {
        self.config.max_entry_bytes = bytes;
        self
    }

    /// The hot-cache promotion policy (default [`QpsPromoter`]).
    pub fn promoter(mut self, promoter: impl Promoter) -> Self {
        self.config.promoter = Box::new(promoter);
        self
    }

    /// How many peer-fetched keys to track request rates for (default 1024). `0` disables
    /// tracking, so every fetch looks like a first one to the promoter.
    pub fn max_candidates(mut self, n: usize) -> Self {
        self.config.max_candidates = n;
        self
    }

    /// After how long without a request a key's rate window starts over (default 60 s).
    pub fn stats_idle_reset(mut self, idle: Duration) -> Self {
        self.config.stats_idle_reset = idle;
        self
    }

    /// Cap the lifetime of loaded and peer-fetched values (default: no cap). A value's expiry
    /// is kept if it is within `max_ttl + jitter` from now; otherwise (including no expiry)
    /// it becomes `now + max_ttl - rand(0..jitter)`. `jitter` is clamped to `max_ttl`; a zero
    /// `max_ttl` removes the cap.
    pub fn max_ttl(mut self, max_ttl: Duration, jitter: Duration) -> Self {
        self.config.ttl_cap = TtlCap::new(max_ttl, jitter);
        self
    }

    /// Cache "not found" answers of the loader for `ttl` (default: off; keep it short). Zero
    /// turns it off.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// Give up on a loader call after `timeout` with a retryable
    /// [`LoadError::Timeout`](crate::LoadError::Timeout) (default: wait as long as the
    /// loader takes). Zero turns it off.
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.config.load_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Keep expired values for `grace` past their expiry, to answer with when a refresh fails
    /// (RFC 5861's `stale-if-error`, nginx's `proxy_cache_use_stale error timeout`, Varnish's
    /// grace). Default: zero, off.
    ///
    /// A get of a value past its expiry still waits for the refresh and gets the fresh
    /// value when there is one. The owning peer asked first may itself have only a stale copy
    /// (it says so): then this node's loader is tried too. Only when every way fails with a
    /// retryable error ([`LoadError::is_retryable`](crate::LoadError::is_retryable): a
    /// timeout, a refused connection; never `NotFound`, which drops the stale value) does the
    /// get have the newest stale copy, marked [`Got::stale`](crate::Got::stale). From then
    /// on gets are answered with it at once, and one of them each [`STALE_RETRY`] starts a
    /// refresh in the background (one at a time), until one succeeds or the grace ends. A
    /// [`Group::remove`](crate::Group::remove) also ends it, refreshes under way included.
    /// Remembered "not found" answers are never served stale.
    pub fn stale_if_error(mut self, grace: Duration) -> Self {
        self.config.stale_if_error = grace;
        self
    }

    /// With [`stale_if_error`](Self::stale_if_error), serve a stale value only if
    /// `allowed(value)`; otherwise a failed refresh is an error, as without a grace (for
    /// values whose own metadata forbids it, such as HTTP's `must-revalidate`).
    pub fn stale_when(mut self, allowed: impl Fn(&[u8]) -> bool + Send + Sync + 'static) -> Self {
        self.config.stale_when = Some(Box::new(allowed));
        self
    }

    /// Build the group around `loader`.
    pub fn build(self, loader: impl Loader) -> Arc<Group> {
        Arc::new(Group::from_config(self.config, Box::new(loader)))
    }
}
