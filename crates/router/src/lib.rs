//! shoal's shard router: the library behind `shoal route`.
//!
//! A photosrv-compatible, consistently hashed HTTP router in front of replicated WebDAV
//! storage nodes (nginx with `dav_methods PUT DELETE`), doing what photosrv left to clients:
//!
//! - [`config`]: photosrv's Config::General file (read by [`simpleconf`]) or its TOML twin,
//!   for one data centre: shards, weights, a migration ring, prefix rewrites.
//! - [`normalize`]: photosrv's URL normalisation, and rewrites in a deterministic order.
//! - [`placement`]: photosrv's `jump` and `chash` choosers, bit-identical, plus weights.
//! - [`Router`]: GET/HEAD streamed from one replica (random, multi-HEAD or hedged, with
//!   retries on another replica, over the router's own keep-alive HTTP/1.1 client for
//!   reads), PUT/DELETE to every replica with a write quorum, misses
//!   recorded in a durable [`journal`], the [`roster`] and health checks, and the
//!   [`migration`] state.
//! - [`server::serve`]: the HTTP front.
//! - [`upload`]: bulk PUT/DELETE of files or URLs through the same placement and quorum
//!   writes, in process (`shoal upload`).
//!
//! ```
//! use shoal_router::{RouteConfig, Router, Settings};
//!
//! let cfg = shoal_router::simpleconf::parse(
//!     "<photosrv>\n chooser jump\n <earth>\n <shards>\n \
//!      shard1 http://10.0.0.1:8080 http://10.0.0.2:8080\n \
//!      shard2 http://10.0.0.3:8080 http://10.0.0.4:8080\n \
//!      </shards>\n </earth>\n</photosrv>\n",
//!     std::path::Path::new("photosrv.cfg"),
//! )?;
//! let cfg = RouteConfig::from_photosrv(&cfg, "earth")?;
//! let router = Router::new(&cfg, Settings::default())?;
//! let e = router.explain("/images//hello%2Ejpg?size=big").expect("a clean path");
//! assert_eq!(e.key, "images/hello.jpg");
//! assert_eq!(e.targets[0].shard, "shard1");
//! # Ok::<(), shoal_router::RouteError>(())
//! ```
#![warn(missing_docs)]

pub mod body;
pub mod config;
mod error;
mod h1;
mod idle;
mod inflight;
pub mod journal;
mod metrics;
pub mod migration;
pub mod normalize;
pub mod placement;
mod read;
pub mod repair;
pub mod replica;
pub mod roster;
mod router;
pub mod server;
mod settings;
pub mod simpleconf;
mod tasks;
pub mod topology;
pub mod upload;
mod upstream;
mod write;

pub use config::{Chooser, RingSpec, RouteConfig, ShardSpec};
pub use error::RouteError;
pub use migration::MigrationState;
pub use router::{
    ClientAddr, Explain, ExplainTarget, Reloaded, ReplicaStatus, RingStatus, Router,
    SettingsStatus, ShardStatus, Status,
};
pub use settings::{Change, Quorum, ReadMode, Settings};
