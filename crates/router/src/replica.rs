//! A storage node (one replica of a shard) and what the router knows about it right now.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::Uri;

use crate::RouteError;

/// One storage node, shared by every shard and ring that lists its URL.
#[derive(Debug)]
pub struct Replica {
    base: String,
    authority: String,
    in_roster: AtomicBool,
    healthy: AtomicBool,
    /// Health checks run and can mark it healthy again.
    checked: AtomicBool,
    errors: AtomicU64,
    requests: AtomicU64,
    latency: metrics::Histogram,
    error_counter: metrics::Counter,
}

impl Replica {
    /// A replica at `url` (`http://host[:port][/base]`); only plain `http` is supported.
    pub fn new(url: &str) -> Result<Self, RouteError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| RouteError::config(format!("replica URL {url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(RouteError::config(format!(
                "replica URL {url:?}: only http:// storage nodes are supported"
            )));
        }
        let Some(authority) = uri.authority() else {
            return Err(RouteError::config(format!(
                "replica URL {url:?} has no host"
            )));
        };
        if uri.query().is_some() {
            return Err(RouteError::config(format!(
                "replica URL {url:?} has a query"
            )));
        }
        let base = format!("http://{authority}{}", uri.path().trim_end_matches('/'));
        let label = base.clone();
        Ok(Replica {
            authority: authority.to_string(),
            in_roster: AtomicBool::new(true),
            healthy: AtomicBool::new(true),
            checked: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            latency: metrics::histogram!("shoal_route_replica_latency_seconds", "replica" => label.clone()),
            error_counter: metrics::counter!("shoal_route_replica_errors_total", "replica" => label),
            base,
        })
    }

    /// The base URL, without a trailing `/` (`http://10.0.0.1:8080`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `host:port` as written, which the roster's second column is matched against.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The URI for `path_and_query` (which starts with `/`) on this replica.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::uri::InvalidUri> {
        format!("{}{path_and_query}", self.base).parse()
    }

    /// Listed in the roster (always true without a roster).
    pub fn in_roster(&self) -> bool {
        self.in_roster.load(Ordering::Relaxed)
    }

    /// Passing health checks.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// In the roster and healthy.
    pub fn usable(&self) -> bool {
        self.in_roster() && self.healthy()
    }

    pub(crate) fn set_in_roster(&self, v: bool) -> bool {
        self.in_roster.swap(v, Ordering::Relaxed) != v
    }

    /// Sets the health state; true when it changed.
    pub(crate) fn set_healthy(&self, v: bool) -> bool {
        self.healthy.swap(v, Ordering::Relaxed) != v
    }

    pub(crate) fn set_health_checked(&self, v: bool) {
        self.checked.store(v, Ordering::Relaxed);
    }

    /// Marks it unhealthy after a connect error; true when it changed. Without health checks
    /// nothing would mark it healthy again, and every later write would skip it: then a
    /// connect error fails only the request it happened to.
    pub(crate) fn mark_unreachable(&self) -> bool {
        self.checked.load(Ordering::Relaxed) && self.set_healthy(false)
    }

    pub(crate) fn record(&self, took: Duration, ok: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.latency.record(took.as_secs_f64());
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
            self.error_counter.increment(1);
        }
    }

    /// Requests sent and errors seen (connect errors, timeouts, 5xx) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}
