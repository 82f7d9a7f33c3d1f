//! The two cache groups the proxy reads through, built on `shoal-cache`:
//!
//! * `meta` — key: the object path; value: an encoded [`ObjectMeta`], kept for `meta_ttl`
//!   (and for `stale_if_error` after that, to answer with when the origin fails);
//!   "not found" answers are kept for `negative_ttl`.
//! * `chunks` — key: an encoded [`ChunkKey`] (path, validator, size, chunk size, index);
//!   value: the chunk's bytes.
//!
//! With a disk tier, both loaders look there before the origin: chunks, and metadata with
//! its freshness deadline (expired metadata is asked of the origin again). Both loaders
//! read the origin. Each key is self-describing, so in a cluster the member
//! that owns a chunk can load it from the key alone: install peers on the groups with
//! [`Group::set_peers`] and the owner's flight becomes the one origin read for everyone.
//! Errors are never cached as data (shoal-cache does not store them).

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use metrics::counter;
use shoal_cache::{GetOptions, Got, Group, GroupBuilder, LoadError, Loaded, Loader, Source};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::chunk::{ChunkKey, Chunking};
use crate::disk::{DiskTier, meta_entry};
use crate::meta::ObjectMeta;
use crate::origin::{DynOrigin, OriginError};

/// The message of the [`LoadError`] a chunk load returns when the object changed at the
/// origin; the front retries once with fresh metadata when it sees it.
pub const CHANGED: &str = "object changed at the origin";

/// Settings of a [`Store`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Bytes per chunk (default 1 MiB).
    pub chunk_size: u64,
    /// Memory for chunks, main and hot cache together (default 512 MiB).
    pub memory: u64,
    /// Memory for object metadata (default 16 MiB).
    pub meta_memory: u64,
    /// How long object metadata is trusted before the origin is asked again (default 60 s).
    pub meta_ttl: Duration,
    /// How long "not found" is remembered (default 2 s).
    pub negative_ttl: Duration,
    /// How long past `meta_ttl` metadata is kept to answer with when the origin fails to
    /// confirm it (a timeout, a refused connection, a 5xx; not a 404): the cached chunks are
    /// then served as they are (default 1 hour; zero turns it off), unless the object's own
    /// `Cache-Control` forbids it ([`ObjectMeta::forbids_stale`]). See
    /// [`GroupBuilder::stale_if_error`](shoal_cache::GroupBuilder::stale_if_error).
    pub stale_if_error: Duration,
    /// Deadline for one origin load (default 30 s); past it, the load fails with a timeout.
    pub load_timeout: Duration,
    /// Chunk reads from the origin in flight at once (default 16). Each holds up to a chunk
    /// outside the cache's budget until it is done, so this bounds that memory (and the
    /// load on the origin); a read past it waits for a slot within its `load_timeout`.
    pub max_origin_reads: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            chunk_size: 1 << 20,
            memory: 512 << 20,
            meta_memory: 16 << 20,
            meta_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(2),
            stale_if_error: Duration::from_secs(3600),
            load_timeout: Duration::from_secs(30),
            max_origin_reads: 16,
        }
    }
}

/// Object metadata and chunks, cached, filled from an origin.
pub struct Store {
    meta: Arc<Group>,
    chunks: Arc<Group>,
    chunk_size: u64,
    origin_name: String,
    disk: Option<Arc<dyn DiskTier>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("meta", &self.meta)
            .field("chunks", &self.chunks)
            .field("chunk_size", &self.chunk_size)
            .field("origin_name", &self.origin_name)
            .field("disk", &self.disk.is_some())
            .finish()
    }
}

impl Store {
    /// A store over `origin`, in memory only.
    pub fn new(origin: Arc<dyn DynOrigin>, config: &StoreConfig) -> Arc<Self> {
        Self::with_disk(origin, config, None)
    }

    /// A store over `origin` that also keeps the chunks and object metadata it loads on
    /// `disk`: a chunk missing from memory (and from its owner, in a cluster) is read from
    /// disk before the origin, and so is metadata still within its `meta_ttl`.
    pub fn with_disk(
        origin: Arc<dyn DynOrigin>,
        config: &StoreConfig,
        disk: Option<Arc<dyn DiskTier>>,
    ) -> Arc<Self> {
        match Self::with_groups(origin, config, disk, &PlainGroups) {
            Ok(store) => store,
            Err(never) => match never {},
        }
    }

    /// [`with_disk`](Self::with_disk), with both groups built by `maker`: a cluster builds
    /// them itself so it can wrap their loaders (warm handoff) and serve them to peers.
    pub fn with_groups<M: GroupMaker>(
        origin: Arc<dyn DynOrigin>,
        config: &StoreConfig,
        disk: Option<Arc<dyn DiskTier>>,
        maker: &M,
    ) -> Result<Arc<Self>, M::Error> {
        let chunk_size = config.chunk_size.max(1);
        let meta = maker.make(
            Group::builder("meta", config.meta_memory)
                .negative_ttl(config.negative_ttl)
                .stale_if_error(config.stale_if_error)
                // RFC 9111 §4.2.4: an object's own Cache-Control may forbid it.
                .stale_when(|v| ObjectMeta::decode(v).is_ok_and(|m| m.forbids_stale().is_none()))
                .load_timeout(config.load_timeout)
                .max_entry_bytes(64 << 10),
            MetaLoader {
                origin: origin.clone(),
                ttl: config.meta_ttl,
                grace: config.stale_if_error,
                disk: disk.clone(),
            },
        )?;
        let chunks_cell = Arc::new(OnceLock::new());
        let chunks = maker.make(
            Group::builder("chunks", config.memory)
                .load_timeout(config.load_timeout)
                .max_entry_bytes(chunk_size + 8192),
            ChunkLoader {
                origin: origin.clone(),
                meta: meta.clone(),
                chunks: chunks_cell.clone(),
                disk: disk.clone(),
                reads: Arc::new(Semaphore::new(config.max_origin_reads.max(1))),
            },
        )?;
        let _ = chunks_cell.set(Arc::downgrade(&chunks));
        Ok(Arc::new(Store {
            meta,
            chunks,
            chunk_size,
            origin_name: origin.describe_dyn(),
            disk,
        }))
    }

    /// The `meta` group (for peers, metrics and status).
    pub fn meta_group(&self) -> &Arc<Group> {
        &self.meta
    }

    /// The `chunks` group (for peers, metrics and status).
    pub fn chunk_group(&self) -> &Arc<Group> {
        &self.chunks
    }

    /// Bytes per chunk.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// The origin's description.
    pub fn origin_name(&self) -> &str {
        &self.origin_name
    }

    /// The metadata of the object at `path`, and where it came from.
    pub async fn meta(&self, path: &str) -> Result<CachedMeta, LoadError> {
        let got = self
            .meta
            .get_with(path.as_bytes(), GetOptions::default())
            .await?;
        match ObjectMeta::decode(&got.value) {
            Ok(meta) => Ok(CachedMeta {
                meta,
                source: got.source,
                stale: got.stale,
            }),
            Err(_) => {
                self.forget(path);
                Err(LoadError::loader("corrupt object metadata", true))
            }
        }
    }

    /// Forget the metadata of `path` (it changed at the origin), in memory and on disk
    /// (the meta loader's [`Loader::forget`]). Chunks need no forgetting: their keys name
    /// the version, so new metadata never leads to old chunks.
    pub fn forget(&self, path: &str) {
        self.meta.remove(path.as_bytes());
    }

    /// Whether this node's disk tier holds an entry under `key` (a chunk key), without
    /// reading it.
    pub fn on_disk(&self, key: &[u8]) -> bool {
        self.disk.as_ref().is_some_and(|d| d.contains(key))
    }

    /// Whether this node's disk tier holds metadata of `path` (fresh or not).
    pub fn meta_on_disk(&self, path: &str) -> bool {
        self.disk
            .as_ref()
            .is_some_and(|d| d.contains(&meta_entry::meta_key(path)))
    }

    /// The key of chunk `index` of `path` at version `meta`.
    pub fn chunk_key(&self, path: &str, meta: &ObjectMeta, index: u64) -> Bytes {
        ChunkKey {
            path: path.to_owned(),
            validator: meta.validator.clone(),
            size: meta.size,
            chunk_size: self.chunk_size,
            index,
        }
        .encode()
    }

    /// The chunking of an object of `size` bytes.
    pub fn chunking(&self, size: u64) -> Chunking {
        Chunking::new(self.chunk_size, size)
    }

    /// One chunk, from memory, a peer or the origin.
    pub async fn chunk(&self, key: &[u8]) -> Result<Got, LoadError> {
        self.chunks.get_with(key, GetOptions::default()).await
    }

    /// A chunk if it is in this node's memory, counted as a get (a hit, or a miss).
    pub async fn cached_chunk(&self, key: &[u8]) -> Option<Got> {
        let peek = GetOptions::new(shoal_cache::FetchMode::Peek);
        self.chunks.get_with(key, peek).await.ok()
    }

    /// Whether a chunk is in this node's memory (does not count as a get).
    pub fn has_chunk(&self, key: &[u8]) -> bool {
        self.chunks.peek(key).is_some()
    }
}

/// An object's metadata as [`Store::meta`] found it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CachedMeta {
    /// The metadata.
    pub meta: ObjectMeta,
    /// Where it came from.
    pub source: Source,
    /// It is past `meta_ttl`, given because the origin failed to confirm it
    /// ([`StoreConfig::stale_if_error`]).
    pub stale: bool,
}

/// Builds a [`Store`]'s groups (`meta`, then `chunks`) from their settings and loaders.
pub trait GroupMaker {
    /// Why a group could not be made.
    type Error;
    /// The group `builder` describes, loading with `loader` (or a wrapper around it).
    fn make<L: Loader>(&self, builder: GroupBuilder, loader: L) -> Result<Arc<Group>, Self::Error>;
}

/// Groups as they are, for a store of its own.
struct PlainGroups;

impl GroupMaker for PlainGroups {
    type Error = std::convert::Infallible;
    fn make<L: Loader>(&self, builder: GroupBuilder, loader: L) -> Result<Arc<Group>, Self::Error> {
        Ok(builder.build(loader))
    }
}

fn to_load_error(e: OriginError) -> LoadError {
    match e {
        OriginError::NotFound => LoadError::NotFound,
        OriginError::Changed => LoadError::loader(CHANGED, false),
        OriginError::Timeout(after) => LoadError::Timeout {
            from: shoal_cache::ErrorSource::Loader,
            after,
        },
        e => {
            let retryable = e.is_retryable();
            LoadError::loader(e.to_string(), retryable)
        }
    }
}

fn count_origin(op: &'static str, r: &Result<impl Sized, OriginError>) {
    let result = match r {
        Ok(_) => "ok",
        Err(OriginError::NotFound) => "not_found",
        Err(OriginError::Changed) => "changed",
        Err(OriginError::Timeout(_)) => "timeout",
        Err(_) => "error",
    };
    counter!("shoal_origin_requests_total", "op" => op, "result" => result).increment(1);
}

struct MetaLoader {
    origin: Arc<dyn DynOrigin>,
    ttl: Duration,
    /// `stale_if_error`: how long past `ttl` disk metadata may answer when the origin fails.
    grace: Duration,
    disk: Option<Arc<dyn DiskTier>>,
}

impl MetaLoader {
    /// Metadata on disk that is still fresh by this run's TTL, with its remaining lifetime;
    /// with `stale`, also metadata past it but within the grace, with its (past) expiry.
    async fn on_disk(&self, disk: &dyn DiskTier, key: &[u8], stale: bool) -> Option<Loaded> {
        let value = disk.get(key).await?;
        let Some((meta, checked_at)) = meta_entry::decode(&value) else {
            disk.remove(key); // intact but not ours (another format version)
            return None;
        };
        if self.ttl.is_zero() {
            return Some(Loaded::new(meta));
        }
        // A check "in the future" (the clock went back) is not trusted: ask the origin.
        let age = SystemTime::now().duration_since(checked_at).ok()?;
        let now = Instant::now();
        match self.ttl.checked_sub(age).filter(|d| !d.is_zero()) {
            Some(left) => Some(Loaded::expiring(meta, now.checked_add(left)?)),
            None if stale && age < self.ttl.saturating_add(self.grace) => {
                let expired_ago = age - self.ttl;
                Some(Loaded::expiring(meta, now.checked_sub(expired_ago)?).stale())
            }
            None => None,
        }
    }
}

impl Loader for MetaLoader {
    async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
        let path = std::str::from_utf8(&key).map_err(|_| LoadError::NotFound)?;
        let disk_key = meta_entry::meta_key(path);
        if let Some(disk) = &self.disk
            && let Some(loaded) = self.on_disk(&**disk, &disk_key, false).await
        {
            return Ok(loaded);
        }
        let r = self.origin.stat_boxed(path).await;
        count_origin("stat", &r);
        let meta = match r {
            Ok(meta) => meta,
            Err(e) => {
                let e = to_load_error(e);
                if let Some(disk) = &self.disk {
                    if e.is_not_found() {
                        disk.remove(&disk_key);
                    } else if e.is_retryable()
                        && let Some(stale) = self.on_disk(&**disk, &disk_key, true).await
                        && ObjectMeta::decode(&stale.value)
                            .is_ok_and(|m| m.forbids_stale().is_none())
                    {
                        // After a restart memory has no stale copy; the disk may (the group
                        // keeps it and serves it as stale, see `stale_if_error`).
                        return Ok(stale);
                    }
                }
                return Err(e);
            }
        };
        let value = meta.encode();
        let expires = Instant::now()
            .checked_add(self.ttl)
            .filter(|_| !self.ttl.is_zero());
        if let Some(disk) = &self.disk {
            // Awaited, not spawned: a `forget` after this load must find the entry written,
            // or it could land later and bring stale metadata back.
            let entry = meta_entry::encode(&value, SystemTime::now());
            disk.put(disk_key, entry).await;
        }
        Ok(match expires {
            Some(at) => Loaded::expiring(value, at),
            None => Loaded::new(value),
        })
    }

    /// The metadata was removed ([`Store::forget`], or a peer's remove): its disk copy goes
    /// too, or the next load would find it fresh there.
    fn forget(&self, key: &[u8]) {
        if let (Some(disk), Ok(path)) = (&self.disk, std::str::from_utf8(key)) {
            disk.remove(&meta_entry::meta_key(path));
        }
    }
}

struct ChunkLoader {
    origin: Arc<dyn DynOrigin>,
    meta: Arc<Group>,
    chunks: Arc<OnceLock<Weak<Group>>>,
    disk: Option<Arc<dyn DiskTier>>,
    /// Slots for origin reads in flight ([`StoreConfig::max_origin_reads`]).
    reads: Arc<Semaphore>,
}

impl ChunkLoader {
    /// Write to disk in the background: the reply does not wait for the disk.
    fn keep(&self, key: Bytes, value: Bytes) {
        if let Some(disk) = self.disk.clone() {
            tokio::spawn(async move { disk.put(key, value).await });
        }
    }
}

impl Loader for ChunkLoader {
    async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
        let k = ChunkKey::decode(&key).map_err(|e| LoadError::loader(e.to_string(), false))?;
        let span = k.span();
        if let Some(disk) = &self.disk
            && let Some(value) = disk.get(&key).await
            && value.len() as u64 == span.len()
        {
            return Ok(Loaded::new(value));
        }
        let slot = self.reads.acquire().await;
        let r = self
            .origin
            .read_boxed(&k.path, span.start..span.end, &k.validator)
            .await;
        drop(slot);
        count_origin("read", &r);
        let extent = match r {
            Ok(extent) => extent,
            Err(e @ (OriginError::Changed | OriginError::NotFound)) => {
                self.meta.remove(k.path.as_bytes());
                return Err(to_load_error(e));
            }
            Err(e) => return Err(to_load_error(e)),
        };
        counter!("shoal_origin_bytes_total").increment(extent.bytes.len() as u64);
        let Some(value) = extent.slice(span.start..span.end) else {
            self.meta.remove(k.path.as_bytes());
            return Err(LoadError::loader(CHANGED, false));
        };
        let extra = extent.bytes.len() as u64 > span.len();
        // An origin that sent more than asked (200 to a range): keep the whole chunks that
        // arrived, so they are not read again. Copies, so no chunk pins the big buffer.
        let value = if extra {
            Bytes::copy_from_slice(&value)
        } else {
            value
        };
        if extra && let Some(chunks) = self.chunks.get().and_then(Weak::upgrade) {
            let chunking = Chunking::new(k.chunk_size, k.size);
            for index in k.index + 1..chunking.count() {
                let s = chunking.span(index);
                let Some(bytes) = extent.slice(s.start..s.end) else {
                    break;
                };
                let key = ChunkKey { index, ..k.clone() }.encode();
                if chunks.peek(&key).is_none() {
                    let bytes = Bytes::copy_from_slice(&bytes);
                    chunks.insert_main(key.clone(), Loaded::new(bytes.clone()));
                    self.keep(key, bytes);
                }
            }
        }
        self.keep(key, value.clone());
        Ok(Loaded::new(value))
    }

    /// Best effort: a chunk's disk write is spawned (`keep`), so one still in flight may
    /// land after this. Purges forget metadata, whose write is awaited.
    fn forget(&self, key: &[u8]) {
        if let Some(disk) = &self.disk {
            disk.remove(key);
        }
    }
}
