//! The cache-filling engine of shoal (galaxycache's job): groups, loaders, flights, memory
//! tiers and hot-cache promotion.
#![warn(missing_docs)]
// The parts land before the `Group` that uses them all.
#![allow(dead_code)]

mod error;
mod expiry;
mod flight;
mod loader;
mod promote;
mod stats;
mod tier;

pub use error::{ErrorSource, LoadError};
pub use loader::{BoxFuture, Loaded, Loader, LoaderFn, loader_fn};
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
