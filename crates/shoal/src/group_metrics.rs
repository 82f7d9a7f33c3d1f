//! Publishes a cache group's counters as Prometheus metrics.
//!
//! Groups keep their own striped counters (cheap on the hot path); this collector copies a
//! snapshot into the metrics registry when `/metrics` is scraped. Hits by tier are one metric
//! with a `tier` label, so a dashboard can sum or split them.

use std::sync::Arc;

use metrics::{counter, gauge};
use shoal_cache::{Group, GroupStats};

/// A collector for [`Admin::with_collector`](crate::admin::Admin::with_collector).
pub fn collector(group: Arc<Group>) -> impl Fn() + Send + Sync + 'static {
    move || publish(group.name(), &group.stats())
}

/// Writes one snapshot of `stats` under the label `group=name`.
pub fn publish(name: &str, s: &GroupStats) {
    let group = name.to_string();
    let total = |metric: &'static str, value: u64| {
        counter!(metric, "group" => group.clone()).absolute(value);
    };
    total("shoal_cache_gets_total", s.gets);
    total("shoal_cache_loads_total", s.loads);
    total("shoal_cache_loads_joined_total", s.loads_joined);
    total("shoal_cache_load_errors_total", s.load_errors);
    total("shoal_cache_not_found_total", s.not_found);
    total("shoal_cache_peer_loads_total", s.peer_loads);
    total("shoal_cache_peer_errors_total", s.peer_errors);
    total("shoal_cache_promotions_total", s.promotions);
    total("shoal_cache_oversize_total", s.oversize);
    total("shoal_cache_expired_total", s.expired);
    total("shoal_cache_stale_total", s.stale);
    for (tier, hits, evictions, bytes, items, capacity) in [
        (
            "main",
            s.main_hits,
            s.main_evictions,
            s.main_bytes,
            s.main_items,
            s.main_capacity,
        ),
        (
            "hot",
            s.hot_hits,
            s.hot_evictions,
            s.hot_bytes,
            s.hot_items,
            s.hot_capacity,
        ),
    ] {
        let labels = [("group", group.clone()), ("tier", tier.to_string())];
        counter!("shoal_cache_hits_total", &labels).absolute(hits);
        counter!("shoal_cache_evictions_total", &labels).absolute(evictions);
        gauge!("shoal_cache_bytes", &labels).set(bytes as f64);
        gauge!("shoal_cache_items", &labels).set(items as f64);
        gauge!("shoal_cache_capacity_bytes", &labels).set(capacity as f64);
    }
}
