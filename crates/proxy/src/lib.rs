//! The chunked caching reverse proxy of shoal (`shoal serve`): chunkproxy's job, done to the
//! standard of nginx `proxy_cache` + `slice`.
//!
//! A GET of any path is answered from an [`Origin`] (a local directory, an HTTP server)
//! through two `shoal-cache` groups ([`Store`]): `meta` (object size, validator, type) and
//! `chunks` (fixed-size chunks keyed by object path + validator + index, so two versions
//! never mix). Replies follow RFC 9110: ranges ([`range`]), multipart ranges, conditional
//! requests ([`conditional`]), HEAD from metadata alone. Bodies stream chunk by chunk with a
//! bounded window of parallel chunk fetches ([`serve`]).
//!
//! ```
//! use std::sync::Arc;
//! use shoal_proxy::{DirOrigin, Proxy, ProxyConfig, Store, StoreConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("hello.txt"), "hello, world")?;
//! let store = Store::new(Arc::new(DirOrigin::new(dir.path())?), &StoreConfig::default());
//! let proxy = Proxy::new(store, ProxyConfig::default());
//!
//! let req = http::Request::get("/hello.txt").header("range", "bytes=7-").body(())?;
//! let resp = proxy.clone().handle(req).await;
//! assert_eq!(resp.status(), 206);
//! assert_eq!(resp.headers()["content-range"], "bytes 7-11/12");
//! let body = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
//! assert_eq!(body, "world");
//! # Ok(())
//! # }
//! ```
//!
//! To serve on a socket, hand the proxy to [`serve::serve`] with a bound listener. For a
//! cluster, install peers on [`Store::chunk_group`] and [`Store::meta_group`]
//! (`Group::set_peers`): chunk keys are self-describing, so the owner of a chunk reads it from
//! the origin once for the whole cluster.
#![warn(missing_docs)]

pub mod chunk;
pub mod conditional;
pub mod disk;
pub mod meta;
mod metrics;
pub mod origin;
pub mod path;
pub mod range;
pub mod serve;
pub mod store;
pub mod tls;

pub use disk::{DiskTier, FileStore};
pub use meta::{ObjectMeta, Validator};
pub use origin::{DirOrigin, DynOrigin, Extent, HttpOrigin, HttpOriginConfig, Origin, OriginError};
pub use serve::{Proxy, ProxyConfig, ServerConfig};
pub use store::{CachedMeta, GroupMaker, Store, StoreConfig};
