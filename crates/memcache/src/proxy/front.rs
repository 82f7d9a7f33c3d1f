//! moxi's front cache: a small local cache of hot keys for plain `get`, matched by key
//! prefix, with a lifespan, invalidated by this proxy's own writes.
//!
//! Active only when the lifespan is above zero and the spec (prefixes to cache) is not
//! empty, as in moxi. A get is answered from the cache only when every one of its keys is
//! there and fresh; otherwise it goes to the servers as usual and their reply fills the
//! cache. Writes through this proxy (set, add, replace, append, prepend, cas, incr, decr,
//! delete, touch, gat, and their meta and binary forms) drop the key, and `flush_all` drops
//! everything. A reply to a get that was sent before a write is not cached (a generation
//! count tells), so a write through the proxy is never followed by the old value from the
//! cache; writes by other clients of the servers are seen once the lifespan passes.
//! Bounded to `max` items (S3-FIFO eviction, close to LRU).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::ascii::{Response, Value};
use crate::pool::{JobResult, Reply};
use crate::stats::ProxyStats;

/// Front-cache settings (moxi's `-Z front_cache_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontCacheOptions {
    /// Most items (`front_cache_max`); default 200.
    pub max: usize,
    /// How long an item is served (`front_cache_lifespan`, ms); default 0 = off.
    pub lifespan: Duration,
    /// Key prefixes to cache (`front_cache_spec`, `|`-separated); default none = off.
    pub spec: Vec<Bytes>,
    /// Key prefixes never to cache, even when `spec` matches (`front_cache_unspec`).
    pub unspec: Vec<Bytes>,
}

impl Default for FrontCacheOptions {
    fn default() -> Self {
        Self {
            max: 200,
            lifespan: Duration::ZERO,
            spec: Vec::new(),
            unspec: Vec::new(),
        }
    }
}

impl FrontCacheOptions {
    /// Whether the cache is on (moxi's rule: a lifespan and a spec).
    pub fn active(&self) -> bool {
        !self.lifespan.is_zero() && !self.spec.is_empty() && self.max > 0
    }

    /// Parses a `|`-separated prefix list (`a:|b:`); empty items are dropped.
    pub fn prefixes(list: &str) -> Vec<Bytes> {
        list.split('|')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect()
    }

    fn matches(&self, key: &[u8]) -> bool {
        self.spec.iter().any(|p| key.starts_with(p))
            && !self.unspec.iter().any(|p| key.starts_with(p))
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    expires: Instant,
}

/// The cache of one proxy (rebuilt, so emptied, on every reconfiguration).
#[derive(Debug)]
pub struct FrontCache {
    opts: FrontCacheOptions,
    items: quick_cache::sync::Cache<Bytes, Entry>,
    /// Bumped by every invalidation; a get's reply fills only if it did not move.
    generation: AtomicU64,
}

impl FrontCache {
    /// A cache for `opts`, or `None` when they leave it off.
    pub fn new(opts: &FrontCacheOptions) -> Option<FrontCache> {
        opts.active().then(|| FrontCache {
            opts: opts.clone(),
            items: quick_cache::sync::Cache::new(opts.max),
            generation: AtomicU64::new(0),
        })
    }

    /// Items held now.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.len() == 0
    }

    /// The settings.
    pub fn options(&self) -> &FrontCacheOptions {
        &self.opts
    }

    /// The whole `get` reply from the cache, when every key is cached and fresh.
    pub(crate) fn answer(&self, keys: &[Bytes], stats: &ProxyStats) -> Option<Bytes> {
        if keys.is_empty() || !keys.iter().all(|k| self.opts.matches(k)) {
            return None;
        }
        let now = Instant::now();
        let mut out = BytesMut::new();
        for k in keys {
            match self.items.get(k) {
                Some(e) if e.expires > now => Response::Value(e.value).encode(&mut out),
                Some(_) => {
                    self.items.remove(k);
                    ProxyStats::inc(&stats.tot_front_cache_expires);
                    ProxyStats::inc(&stats.tot_front_cache_misses);
                    return None;
                }
                None => {
                    ProxyStats::inc(&stats.tot_front_cache_misses);
                    return None;
                }
            }
        }
        ProxyStats::inc(&stats.tot_front_cache_hits);
        out.extend_from_slice(b"END\r\n");
        Some(out.freeze())
    }

    /// The generation a get's fill must match.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches the values of a get reply, unless something was invalidated since `generation`.
    pub(crate) fn fill(&self, result: &JobResult, generation: u64) {
        let Ok(Reply::Ascii(els)) = result else {
            return;
        };
        self.fill_values(
            els.iter().filter_map(|el| match el {
                Response::Value(v) => Some(v),
                _ => None,
            }),
            generation,
        );
    }

    /// Caches `values`, unless something was invalidated since `generation`.
    pub(crate) fn fill_values<'a>(
        &self,
        values: impl IntoIterator<Item = &'a Value>,
        generation: u64,
    ) {
        let expires = Instant::now() + self.opts.lifespan;
        for v in values {
            if v.cas.is_none() && self.opts.matches(&v.key) {
                if self.generation() != generation {
                    return;
                }
                let entry = Entry {
                    value: v.clone(),
                    expires,
                };
                self.items.insert(v.key.clone(), entry);
            }
        }
    }

    /// Drops `key` (a write went through the proxy).
    pub(crate) fn invalidate(&self, key: &[u8]) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if self.opts.matches(key) {
            self.items.remove(key);
        }
    }

    /// Drops everything (`flush_all`).
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(lifespan_ms: u64, spec: &str) -> FrontCacheOptions {
        FrontCacheOptions {
            max: 10,
            lifespan: Duration::from_millis(lifespan_ms),
            spec: FrontCacheOptions::prefixes(spec),
            unspec: FrontCacheOptions::prefixes("a:no|"),
        }
    }

    fn reply(key: &'static str) -> JobResult {
        Ok(Reply::Ascii(vec![
            Response::Value(Value {
                key: Bytes::from_static(key.as_bytes()),
                flags: 3,
                cas: None,
                data: Bytes::from_static(b"v"),
            }),
            Response::End,
        ]))
    }

    #[test]
    fn moxi_rule_for_being_on() {
        assert!(FrontCache::new(&opts(0, "a:")).is_none());
        assert!(FrontCache::new(&opts(10, "")).is_none());
        assert!(FrontCache::new(&opts(10, "a:")).is_some());
    }

    #[test]
    fn fill_answer_invalidate_and_spec() {
        let st = ProxyStats::default();
        let c = FrontCache::new(&opts(60_000, "a:|b:")).unwrap();
        let k = [Bytes::from_static(b"a:1")];
        assert_eq!(c.answer(&k, &st), None);
        c.fill(&reply("a:1"), c.generation());
        assert_eq!(
            c.answer(&k, &st).as_deref(),
            Some(&b"VALUE a:1 3 1\r\nv\r\nEND\r\n"[..])
        );
        c.invalidate(b"a:1");
        assert_eq!(c.answer(&k, &st), None);
        // A fill that raced with a write is dropped.
        let g = c.generation();
        c.invalidate(b"zz");
        c.fill(&reply("a:1"), g);
        assert!(c.is_empty());
        // Not in the spec, or in the unspec.
        c.fill(&reply("c:1"), c.generation());
        c.fill(&reply("a:no1"), c.generation());
        assert!(c.is_empty());
        c.fill(&reply("b:1"), c.generation());
        assert_eq!(c.len(), 1);
        c.clear();
        assert!(c.is_empty());
    }
}
