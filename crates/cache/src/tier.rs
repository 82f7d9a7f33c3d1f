//! Memory tiers: a byte-bounded, sharded cache of `key → entry` on top of `quick_cache`
//! (CLOCK-Pro, close to S3-FIFO; a hit takes one shard's read lock and sets a reference bit).
//!
//! # Cost of an entry
//! An entry is charged `key.len() + value.len() + ENTRY_OVERHEAD` bytes. The overhead,
//! [`ENTRY_OVERHEAD`] = 192 bytes, is an estimate of what an entry costs beyond its bytes:
//! a quick_cache slot (21 bytes of bookkeeping + a 32-byte `Bytes` key handle + the 56-byte
//! entry: value handle, expiry, stats pointer), about half as much again for the ghost
//! slots and hash table quick_cache keeps per resident item, and the heap headers of the key
//! buffer and the value's shared `Bytes` header. It matters for small values; for 1 MiB
//! chunks it is noise.
//!
//! # Shards and oversize entries
//! quick_cache splits capacity evenly across shards and silently drops an entry heavier than
//! (a 0.97 share of) one shard. So a tier picks its shard count from its capacity and the
//! largest entry it is expected to hold: the most shards (up to 4 per core, at most 64) such
//! that each shard still holds [`MIN_LARGEST_PER_SHARD`] of the largest entries. Capacity is
//! rounded down to a multiple of the shard count, so the shards never sum to more than was
//! asked for. An entry heavier than one shard admits is not handed to quick_cache at all:
//! [`Tier::insert`] reports it as [`NotStored::TooLarge`] and the group counts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};
use tokio::time::Instant;

use crate::expiry::is_expired;
use crate::parallelism;
use crate::promote::KeyStats;

/// Bytes charged per entry on top of its key and value; see the module docs.
pub const ENTRY_OVERHEAD: u64 = 192;

/// Each shard holds at least this many of the largest expected entries (when capacity
/// allows more than one shard at all).
pub(crate) const MIN_LARGEST_PER_SHARD: u64 = 4;

/// quick_cache's share of a shard for its "hot" queue, which is also its admission limit
/// for one entry. Set explicitly (it is the library default) so our limit matches its.
const QC_HOT_ALLOCATION: f64 = 0.97;

/// A rough average entry size, only used to size quick_cache's ghost list.
const AVG_ENTRY_GUESS: u64 = 16 * 1024;

const MAX_SHARDS: usize = 64;

/// What a tier stores per key.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The value; `None` marks a cached "not found" (negative caching).
    pub(crate) value: Option<Bytes>,
    pub(crate) expires: Option<Instant>,
    /// Access statistics, kept for hot-cache entries (promotion decisions).
    pub(crate) stats: Option<Arc<KeyStats>>,
}

/// The cost of an entry with a key and value of these lengths.
pub(crate) fn weight_of(key_len: usize, value_len: usize) -> u64 {
    (key_len as u64)
        .saturating_add(value_len as u64)
        .saturating_add(ENTRY_OVERHEAD)
}

#[derive(Debug, Clone, Copy)]
struct EntryWeighter;

impl Weighter<Bytes, Entry> for EntryWeighter {
    fn weight(&self, key: &Bytes, entry: &Entry) -> u64 {
        weight_of(key.len(), entry.value.as_ref().map_or(0, Bytes::len))
    }
}

/// Collects evicted entries so they are counted, handed back and dropped after the shard
/// lock is released.
#[derive(Debug, Clone, Copy)]
struct Evictions;

impl Lifecycle<Bytes, Entry> for Evictions {
    type RequestState = Vec<(Bytes, Entry)>;

    fn on_evict(&self, evicted: &mut Self::RequestState, key: Bytes, entry: Entry) {
        evicted.push((key, entry));
    }
}

type Store = Cache<Bytes, Entry, EntryWeighter, DefaultHashBuilder, Evictions>;

/// Result of a lookup.
#[derive(Debug)]
pub(crate) enum Lookup {
    Hit(Entry),
    Miss,
    /// The entry had expired; it was removed.
    Expired,
    /// The entry has expired but is within the grace the caller gave (see
    /// [`GroupBuilder::stale_if_error`](crate::GroupBuilder::stale_if_error)); it was kept.
    Stale(Entry),
}

/// Why [`Tier::insert`] did not store an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStored {
    /// The tier has no capacity.
    Disabled,
    /// Heavier than one shard admits.
    TooLarge,
}

/// One memory tier (main or hot).
#[derive(Debug)]
pub(crate) struct Tier {
    store: Option<Store>,
    max_weight: u64,
    evictions: AtomicU64,
}

/// The shard count for a tier of `capacity` bytes whose largest entry weighs `largest`.
pub(crate) fn shard_count(capacity: u64, largest: u64) -> u64 {
    let mut n = (parallelism() * 4).next_power_of_two().min(MAX_SHARDS) as u64;
    while n > 1 && capacity / n < largest.saturating_mul(MIN_LARGEST_PER_SHARD) {
        n /= 2;
    }
    n
}

impl Tier {
    /// A tier of at most `capacity` bytes, sharded for entries up to `largest` bytes
    /// (weight, see [`weight_of`]). Capacity 0 disables it.
    pub(crate) fn new(capacity: u64, largest: u64) -> Self {
        let shards = shard_count(capacity, largest);
        let capacity = capacity / shards * shards;
        let disabled = Tier {
            store: None,
            max_weight: 0,
            evictions: AtomicU64::new(0),
        };
        if capacity == 0 {
            return disabled;
        }
        let estimated_items = (capacity / AVG_ENTRY_GUESS).max(32 * shards);
        let Ok(options) = OptionsBuilder::new()
            .shards(shards as usize)
            .weight_capacity(capacity)
            .estimated_items_capacity(estimated_items as usize)
            .hot_allocation(QC_HOT_ALLOCATION)
            .build()
        else {
            // Only fails when a required option is missing; all are set above.
            return disabled;
        };
        let store = Store::with_options(
            options,
            EntryWeighter,
            DefaultHashBuilder::default(),
            Evictions,
        );
        // The same arithmetic quick_cache uses to reject an entry as too heavy for a shard.
        let shard = store.shard_capacity();
        let max_weight = ((shard as f64 * QC_HOT_ALLOCATION) as u64).clamp(shard.min(1), shard);
        Tier {
            store: Some(store),
            max_weight,
            evictions: AtomicU64::new(0),
        }
    }

    /// Whether the tier can hold anything.
    pub(crate) fn is_enabled(&self) -> bool {
        self.store.is_some()
    }

    /// Look `key` up. An expired value less than `grace` past its expiry is kept and reported
    /// as [`Lookup::Stale`]; any other expired entry is removed and reported as
    /// [`Lookup::Expired`].
    #[inline]
    pub(crate) fn get(&self, key: &[u8], grace: Duration) -> Lookup {
        let Some(store) = &self.store else {
            return Lookup::Miss;
        };
        let Some(entry) = store.get(key) else {
            return Lookup::Miss;
        };
        if let Some(at) = entry.expires {
            let now = Instant::now();
            if !is_expired(Some(at), now) {
                return Lookup::Hit(entry);
            }
            // A grace too long to represent never ends.
            if entry.value.is_some() && at.checked_add(grace).is_none_or(|end| now < end) {
                return Lookup::Stale(entry);
            }
            // Only remove what we saw: a fresh value may have replaced it meanwhile.
            store.remove_if(key, |e| e.expires == Some(at));
            return Lookup::Expired;
        }
        Lookup::Hit(entry)
    }

    /// Store `entry` under `key`, evicting as needed. Returns the evicted entries (already
    /// counted), or why nothing was stored.
    pub(crate) fn insert(
        &self,
        key: Bytes,
        entry: Entry,
    ) -> Result<Vec<(Bytes, Entry)>, NotStored> {
        let Some(store) = &self.store else {
            return Err(NotStored::Disabled);
        };
        let weight = weight_of(key.len(), entry.value.as_ref().map_or(0, Bytes::len));
        if weight > self.max_weight {
            // quick_cache would drop it silently (and report it as an eviction); it would
            // also evict an older value under the same key, so do that explicitly.
            store.remove(&key);
            return Err(NotStored::TooLarge);
        }
        let mut evicted = Vec::new();
        store.insert_with_lifecycle(key, entry, &mut evicted);
        self.evictions
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
        Ok(evicted)
    }

    /// Remove `key` if its entry has expired at `now`.
    pub(crate) fn remove_if_expired(&self, key: &[u8], now: Instant) {
        if let Some(store) = &self.store {
            store.remove_if(key, |e| is_expired(e.expires, now));
        }
    }

    /// Remove `key`; whether it was present.
    pub(crate) fn remove(&self, key: &[u8]) -> bool {
        self.store.as_ref().is_some_and(|s| s.remove(key).is_some())
    }

    /// Up to `n` entries, in no particular order (a cheap sample of the tier).
    pub(crate) fn sample(&self, n: usize) -> Vec<Entry> {
        self.store
            .as_ref()
            .map_or_else(Vec::new, |s| s.iter().take(n).map(|(_, e)| e).collect())
    }

    /// Bytes charged to entries now in the tier.
    pub(crate) fn bytes(&self) -> u64 {
        self.store.as_ref().map_or(0, Store::weight)
    }

    /// Entries now in the tier.
    pub(crate) fn items(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.len() as u64)
    }

    /// The tier's capacity in bytes (after rounding to whole shards).
    pub(crate) fn capacity(&self) -> u64 {
        self.store.as_ref().map_or(0, Store::capacity)
    }

    /// The heaviest entry the tier admits.
    #[cfg(test)]
    pub(crate) fn max_weight(&self) -> u64 {
        self.max_weight
    }

    /// Entries evicted so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn shards(&self) -> usize {
        self.store.as_ref().map_or(0, Store::num_shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::mem::size_of;

    const MIB: u64 = 1 << 20;

    fn entry(len: usize) -> Entry {
        Entry {
            value: Some(Bytes::from(vec![7u8; len])),
            expires: None,
            stats: None,
        }
    }

    fn key(i: u64) -> Bytes {
        Bytes::from(format!("chunk/{i}"))
    }

    #[test]
    fn overhead_covers_at_least_the_in_memory_slot() {
        // If Entry grows, revisit ENTRY_OVERHEAD (quick_cache adds 21 bytes per slot).
        let slot = size_of::<Bytes>() + size_of::<Entry>() + 21;
        assert!(
            slot as u64 <= ENTRY_OVERHEAD / 3 * 2,
            "slot is {slot} bytes"
        );
        assert_eq!(weight_of(10, 100), 110 + ENTRY_OVERHEAD);
    }

    #[test]
    fn one_mib_chunks_fit_every_reasonable_tier() {
        let largest = weight_of(200, MIB as usize);
        for capacity in [2 * MIB, 8 * MIB, 64 * MIB, 1024 * MIB, 16 * 1024 * MIB] {
            let tier = Tier::new(capacity, largest);
            assert!(
                tier.max_weight() >= largest,
                "capacity {capacity}: {tier:?}"
            );
            assert!(tier.capacity() <= capacity && tier.capacity() > capacity - 64);
            if tier.shards() > 1 {
                let per_shard = tier.capacity() / tier.shards() as u64;
                assert!(per_shard >= MIN_LARGEST_PER_SHARD * largest);
            }
            assert!(tier.insert(key(1), entry(MIB as usize)).is_ok());
            assert!(
                matches!(tier.get(b"chunk/1", Duration::ZERO), Lookup::Hit(_)),
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn small_values_get_many_shards() {
        let tier = Tier::new(1024 * MIB, 4096);
        assert_eq!(
            tier.shards(),
            (parallelism() * 4).next_power_of_two().min(MAX_SHARDS)
        );
    }

    #[test]
    fn an_entry_heavier_than_a_shard_is_refused_not_silently_dropped() {
        let tier = Tier::new(MIB, MIB);
        assert_eq!(tier.shards(), 1);
        let fits = tier.max_weight() as usize - ENTRY_OVERHEAD as usize - 7;
        assert!(tier.insert(key(1), entry(fits)).is_ok());
        assert!(matches!(
            tier.get(b"chunk/1", Duration::ZERO),
            Lookup::Hit(_)
        ));
        // One byte more and quick_cache would drop it: we refuse it ourselves, and drop the
        // stale value under the same key.
        assert_eq!(
            tier.insert(key(1), entry(fits + 1)).unwrap_err(),
            NotStored::TooLarge
        );
        assert!(matches!(tier.get(b"chunk/1", Duration::ZERO), Lookup::Miss));
        assert_eq!(tier.evictions(), 0, "a refusal is not an eviction");
    }

    #[test]
    fn zero_capacity_disables() {
        let tier = Tier::new(0, MIB);
        assert!(!tier.is_enabled());
        assert_eq!(
            tier.insert(key(1), entry(1)).unwrap_err(),
            NotStored::Disabled
        );
        assert!(matches!(tier.get(b"chunk/1", Duration::ZERO), Lookup::Miss));
        assert_eq!((tier.bytes(), tier.items(), tier.capacity()), (0, 0, 0));
    }

    #[test]
    fn evictions_are_counted_and_handed_back() {
        let tier = Tier::new(100 * 1024, 4096);
        let mut handed_back = 0;
        for i in 0..1000 {
            handed_back += tier.insert(key(i), entry(1000)).unwrap().len() as u64;
        }
        assert!(tier.bytes() <= tier.capacity());
        assert!(tier.evictions() > 0);
        assert_eq!(tier.evictions(), handed_back);
        assert_eq!(tier.items() + tier.evictions(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_misses_and_removed() {
        let tier = Tier::new(MIB, 4096);
        let mut e = entry(10);
        e.expires = Some(Instant::now() + Duration::from_secs(10));
        tier.insert(key(1), e).unwrap();
        assert!(matches!(
            tier.get(b"chunk/1", Duration::ZERO),
            Lookup::Hit(_)
        ));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(matches!(
            tier.get(b"chunk/1", Duration::ZERO),
            Lookup::Expired
        ));
        assert_eq!(tier.items(), 0);
        assert!(matches!(tier.get(b"chunk/1", Duration::ZERO), Lookup::Miss));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_values_within_the_grace_are_stale_and_kept() {
        let tier = Tier::new(MIB, 4096);
        let grace = Duration::from_secs(5);
        let mut e = entry(10);
        e.expires = Some(Instant::now() + Duration::from_secs(10));
        tier.insert(key(1), e).unwrap();
        let mut negative = entry(0);
        negative.value = None;
        negative.expires = Some(Instant::now() + Duration::from_secs(10));
        tier.insert(key(2), negative).unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(matches!(tier.get(b"chunk/1", grace), Lookup::Stale(_)));
        assert!(
            matches!(tier.get(b"chunk/1", grace), Lookup::Stale(_)),
            "still kept"
        );
        // A remembered "not found" is never served stale.
        assert!(matches!(tier.get(b"chunk/2", grace), Lookup::Expired));
        tokio::time::advance(grace).await;
        assert!(matches!(tier.get(b"chunk/1", grace), Lookup::Expired));
        assert_eq!(tier.items(), 0);
    }

    proptest! {
        #[test]
        fn accounting_never_exceeds_capacity(
            capacity in 0u64..4 * MIB,
            largest in 256u64..MIB,
            ops in prop::collection::vec((0u64..64, 0usize..300_000, any::<bool>()), 1..200),
        ) {
            let tier = Tier::new(capacity, largest);
            prop_assert!(tier.capacity() <= capacity);
            for (k, len, remove) in ops {
                if remove {
                    tier.remove(&key(k));
                } else {
                    match tier.insert(key(k), entry(len)) {
                        Ok(_) => {}
                        Err(NotStored::TooLarge) => {}
                        Err(NotStored::Disabled) => prop_assert_eq!(capacity / shard_count(capacity, largest), 0),
                    }
                }
                prop_assert!(tier.bytes() <= tier.capacity(), "{} > {}", tier.bytes(), tier.capacity());
            }
        }
    }
}
