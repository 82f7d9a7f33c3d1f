//! The disk tier: chunks this node loaded from the origin are also kept on local disk, so a
//! memory miss (after eviction, or after a restart) costs a disk read instead of an origin
//! read. Lookup order is memory → owner peer → own disk → origin. Object metadata is kept
//! there too, with its freshness deadline ([`meta_key`]), so a restarted node serves what it
//! has on disk without asking the origin until `meta_ttl` runs out.
//!
//! [`DiskTier`] is the small trait the proxy depends on; [`FileStore`] is our own
//! implementation (checksummed chunk files, atomic rename, a byte budget with LRU eviction).
//! A log-structured engine (foyer's block engine, say) can replace it behind the same trait.

mod file_store;
pub(crate) mod meta_entry;

use bytes::Bytes;

pub use self::file_store::{DiskStats, FileStore};
pub use self::meta_entry::meta_key;
use crate::origin::BoxFuture;

/// A place to keep chunk bytes across memory evictions and restarts. Best effort: a failing
/// disk makes `get` miss and `put` drop the value, never an error for the client.
pub trait DiskTier: Send + Sync + 'static {
    /// The value stored under `key`, if present and intact (a corrupted or torn entry is
    /// dropped and reported as missing).
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Option<Bytes>>;

    /// Keep `value` under `key` (it may be evicted later, or not stored at all).
    fn put(&self, key: Bytes, value: Bytes) -> BoxFuture<'_, ()>;

    /// Whether an entry is stored under `key`, as far as the tier knows without reading it
    /// (it may still turn out corrupt). Cheap: callers ask it per chunk to tell `X-Cache`.
    fn contains(&self, key: &[u8]) -> bool;

    /// Forget `key` at once (a later `get` misses), e.g. metadata the origin contradicted.
    fn remove(&self, key: &[u8]);
}
