//! The cache-filling engine of shoal (galaxycache's job): groups, loaders, flights, memory
//! tiers and hot-cache promotion.
//!
//! A [`Group`] is a named keyspace with a byte budget and a [`Loader`], the origin of truth.
//! [`Group::get`] returns a key's value from the first place that has it:
//!
//! 1. the **main cache** (keys this node owns) or the **hot cache** (popular keys owned by
//!    other members), which share the group's budget (the hot cache gets 1/8 by default);
//! 2. the member that owns the key, when the group has [`Peers`] installed (the
//!    `shoal-cluster` crate does that) — the value may then be promoted into the hot cache
//!    by the group's [`Promoter`];
//! 3. the loader, called **once** per key however many callers are waiting for it (a
//!    flight); its value is kept in the main cache.
//!
//! Keys are bytes (they need not be UTF-8); values are [`bytes::Bytes`], shared, never
//! copied on a hit. Values may expire ([`Loaded::expires`], capped by the group's
//! `max_ttl`); a group may keep them a while longer to answer with when a refresh fails
//! ([`GroupBuilder::stale_if_error`]). [`LoadError::NotFound`] is an answer, not a fault: it
//! is never retried and only cached if the group opts in with a `negative_ttl`.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use bytes::Bytes;
//! use shoal_cache::{Group, LoadError, Loaded, Source, loader_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), LoadError> {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = calls.clone();
//! let group = Group::builder("greetings", 64 << 20).build(loader_fn(move |key: Bytes| {
//!     counter.fetch_add(1, Ordering::Relaxed);
//!     async move {
//!         let name = std::str::from_utf8(&key).map_err(|e| LoadError::loader(e.to_string(), false))?;
//!         Ok(Loaded::new(format!("hello, {name}")))
//!     }
//! }));
//!
//! assert_eq!(group.get(b"ferris").await?, "hello, ferris");
//! let again = group.get_with(b"ferris", Default::default()).await?;
//! assert_eq!(again.source, Source::MainCache);
//! assert_eq!(calls.load(Ordering::Relaxed), 1);
//! assert_eq!(group.stats().main_hits, 1);
//! # Ok(())
//! # }
//! ```
//!
//! Where things live: flights (singleflight) in `flight.rs`, the tiers (quick_cache,
//! per-entry cost, sharding for 1 MiB chunks) in `tier.rs`, promotion in `promote.rs`, expiry
//! in `expiry.rs`, the peer extension point in `peers.rs`, counters in `stats.rs`.
#![warn(missing_docs)]

mod builder;
mod error;
mod expiry;
mod flight;
mod get;
mod group;
mod loader;
mod peers;
mod promote;
mod stale;
mod stats;
mod tier;

pub use builder::{
    DEFAULT_HOT_RATIO, DEFAULT_MAX_CANDIDATES, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_STATS_IDLE_RESET,
    GroupBuilder, STALE_RETRY,
};
pub use error::{ErrorSource, LoadError};
pub use get::{FetchMode, GetOptions, Got, Source};
pub use group::Group;
pub use loader::{BoxFuture, Loaded, Loader, LoaderFn, loader_fn};
pub use peers::{Peer, Peers};
pub use promote::{
    AlwaysPromote, HotStats, NeverPromote, Probabilistic, PromoteStats, Promoter, QpsPromoter,
};
pub use stats::GroupStats;
pub use tier::ENTRY_OVERHEAD;

/// The number of cores, memoized (sizes shards and counter stripes).
pub(crate) fn parallelism() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
