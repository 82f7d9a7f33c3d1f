//! The disk tier: chunks this node loaded from the origin are also kept on local disk, so a
//! memory miss (after eviction, or after a restart) costs a disk read instead of an origin
//! read. Lookup order is memory → owner peer → own disk → origin.
//!
//! [`DiskTier`] is the small trait the proxy depends on; [`FileStore`] is our own
//! implementation (checksummed chunk files, atomic rename, a byte budget with LRU eviction).
//! A log-structured engine (foyer's block engine, say) can replace it behind the same trait.

mod file_store;

use bytes::Bytes;

pub use self::file_store::{DiskStats, FileStore};
use crate::origin::BoxFuture;

/// A place to keep chunk bytes across memory evictions and restarts. Best effort: a failing
/// disk makes `get` miss and `put` drop the value, never an error for the client.
pub trait DiskTier: Send + Sync + 'static {
    /// The value stored under `key`, if present and intact (a corrupted or torn entry is
    /// dropped and reported as missing).
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Option<Bytes>>;

    /// Keep `value` under `key` (it may be evicted later, or not stored at all).
    fn put(&self, key: Bytes, value: Bytes) -> BoxFuture<'_, ()>;
}
