//! [`FileStore`]: one checksummed file per chunk under a directory, with a byte budget.
//!
//! * **Layout**: `<root>/<2 hex>/<32 hex>.chunk`, named by the xxh3-128 of the key; writes
//!   go to `<root>/tmp/` first and are renamed into place, so a reader never sees half a
//!   file under its final name.
//! * **Format**: `"SHLC" | u8 version | u32 key length | u64 value length | u64 checksum |
//!   key | value`; the checksum is xxh3-64 over key and value. A file whose header, length,
//!   key or checksum does not match (torn write, bit rot, a flipped byte) is deleted and
//!   reported as a miss, so the chunk is read from the origin again — never served.
//! * **Budget**: an in-memory index (name → size, last use) evicts the least recently used
//!   files past the budget. At start the index is rebuilt from the directory (oldest
//!   modification first), so a restarted node serves what it kept.
//! * **Disk full**: a write refused for lack of space (`ENOSPC`, the file system is smaller
//!   than the budget) lowers the store's limit to 85 % of what it holds and evicts down to it,
//!   so later writes fit by evicting older entries. With too little of its own to evict, the
//!   store pauses writing as for any other error.
//! * **Errors**: a failed write (a full disk with nothing to evict, a removed directory)
//!   turns writes off for a while (1 s, doubling to at most a minute while writes keep
//!   failing): the node runs memory-only meanwhile and never fails a request. One warning per
//!   episode, not one per chunk, and one line when writes work again.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use metrics::counter;
use parking_lot::Mutex;
use xxhash_rust::xxh3::{xxh3_64_with_seed, xxh3_128};

use super::DiskTier;
use crate::origin::BoxFuture;

const MAGIC: &[u8; 4] = b"SHLC";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 4 + 8 + 8;
const SEED: u64 = 0x5348_4f41_4c21;
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);
const SHRINK_SETTLE: Duration = Duration::from_secs(1);

/// Counters of a [`FileStore`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskStats {
    /// Reads that found an intact entry.
    pub hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Entries written.
    pub writes: u64,
    /// Entries removed to stay within the budget.
    pub evictions: u64,
    /// Entries found corrupted or torn (and removed).
    pub corruptions: u64,
    /// Writes that failed (the store then pauses writing).
    pub write_errors: u64,
    /// Bytes on disk (files, headers included).
    pub bytes: u64,
    /// Entries on disk.
    pub items: u64,
    /// The bytes the store keeps at most: the budget, or less once the disk was found full.
    pub limit: u64,
}

#[derive(Default)]
struct Index {
    entries: HashMap<u128, (u64, u64)>, // name → (file size, tick)
    lru: BTreeMap<u64, u128>,           // tick → name
    bytes: u64,
    tick: u64,
}

impl Index {
    fn touch(&mut self, name: u128) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, t)) = self.entries.get_mut(&name) {
            self.lru.remove(t);
            *t = tick;
            self.lru.insert(tick, name);
        }
    }

    fn insert(&mut self, name: u128, size: u64) {
        self.remove(name);
        self.tick += 1;
        self.entries.insert(name, (size, self.tick));
        self.lru.insert(self.tick, name);
        self.bytes += size;
    }

    fn remove(&mut self, name: u128) -> bool {
        match self.entries.remove(&name) {
            Some((size, tick)) => {
                self.lru.remove(&tick);
                self.bytes -= size;
                true
            }
            None => false,
        }
    }

    /// Names to delete so that `bytes <= budget`.
    fn over_budget(&mut self, budget: u64) -> Vec<u128> {
        let mut out = Vec::new();
        while self.bytes > budget {
            let Some((_, name)) = self.lru.pop_first() else {
                break;
            };
            if let Some((size, _)) = self.entries.remove(&name) {
                self.bytes -= size;
            }
            out.push(name);
        }
        out
    }
}

/// Whether writes are off, after failures.
#[derive(Default)]
struct Health {
    /// Writes are skipped until then.
    paused_until: Option<Instant>,
    /// The current pause length (doubles while writes keep failing); `None` when the last
    /// write worked.
    pause: Option<Duration>,
    /// When the last failure was seen.
    failed_at: Option<Instant>,
}

impl Health {
    /// A write that started at `started` worked. True when that ends a pause. A write under
    /// way before the last failure says nothing: it may have found room that the failing one
    /// did not, and the next would fail again (a second warning for one episode).
    fn worked(&mut self, started: Instant) -> bool {
        if self.failed_at.is_some_and(|t| started < t) {
            return false;
        }
        self.paused_until = None;
        self.failed_at = None;
        self.pause.take().is_some()
    }

    /// A write failed at `now`: writing pauses, for twice as long as last time while failures
    /// go on. True for the first failure of an episode, the one worth a warning.
    fn failed(&mut self, now: Instant) -> bool {
        let (pause, first) = match (self.pause, self.paused_until) {
            (None, _) => (FIRST_PAUSE, true),
            // Writes that were under way when another failed: already paused.
            (Some(_), Some(until)) if now < until => return false,
            (Some(p), _) => ((p * 2).min(MAX_PAUSE), false),
        };
        self.pause = Some(pause);
        self.paused_until = Some(now + pause);
        self.failed_at = Some(now);
        first
    }
}

struct Inner {
    root: PathBuf,
    budget: u64,
    /// The budget, lowered when the file system turned out smaller than it.
    limit: AtomicU64,
    index: Mutex<Index>,
    health: Mutex<Health>,
    last_shrink: Mutex<Option<Instant>>,
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
    evictions: AtomicU64,
    corruptions: AtomicU64,
    write_errors: AtomicU64,
}

/// Chunk files under a directory, within a byte budget. Cheap to clone.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.inner.root)
            .field("budget", &self.inner.budget)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Open (creating if needed) a store under `root` that keeps at most `budget` bytes, and
    /// index what an earlier run left there.
    pub fn open(root: impl AsRef<Path>, budget: u64) -> io::Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(root.join("tmp"))?;
        for e in fs::read_dir(root.join("tmp"))?.flatten() {
            let _ = fs::remove_file(e.path()); // writes a crash interrupted
        }
        let mut found = Vec::new();
        for dir in fs::read_dir(&root)?.flatten() {
            let Some(prefix) = dir.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if prefix.len() != 2 || !dir.path().is_dir() {
                continue;
            }
            for file in fs::read_dir(dir.path())?.flatten() {
                let name = file.file_name();
                let name = name.to_str().and_then(|n| n.strip_suffix(".chunk"));
                let parsed = name.and_then(|n| u128::from_str_radix(n, 16).ok());
                if let (Some(name), Ok(meta)) = (parsed, file.metadata()) {
                    found.push((meta.modified().ok(), name, meta.len()));
                }
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, name, size) in found {
            index.insert(name, size);
        }
        let store = FileStore {
            inner: Arc::new(Inner {
                root,
                budget,
                limit: AtomicU64::new(budget),
                index: Mutex::new(index),
                health: Mutex::new(Health::default()),
                last_shrink: Mutex::new(None),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
                corruptions: AtomicU64::new(0),
                write_errors: AtomicU64::new(0),
            }),
        };
        let victims = store.inner.index.lock().over_budget(budget);
        store.inner.delete(&victims);
        Ok(store)
    }

    /// The file a key is stored in.
    pub fn path_of(&self, key: &[u8]) -> PathBuf {
        self.inner.path(name_of(key))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DiskStats {
        let i = &self.inner;
        let (bytes, items) = {
            let index = i.index.lock();
            (index.bytes, index.entries.len() as u64)
        };
        DiskStats {
            hits: i.hits.load(Ordering::Relaxed),
            misses: i.misses.load(Ordering::Relaxed),
            writes: i.writes.load(Ordering::Relaxed),
            evictions: i.evictions.load(Ordering::Relaxed),
            corruptions: i.corruptions.load(Ordering::Relaxed),
            write_errors: i.write_errors.load(Ordering::Relaxed),
            bytes,
            items,
            limit: i.limit.load(Ordering::Relaxed),
        }
    }
}

fn name_of(key: &[u8]) -> u128 {
    xxh3_128(key)
}

fn checksum(key: &[u8], value: &[u8]) -> u64 {
    let seeded = xxh3_64_with_seed(key, SEED);
    xxh3_64_with_seed(value, seeded)
}

impl Inner {
    fn path(&self, name: u128) -> PathBuf {
        let hex = format!("{name:032x}");
        self.root.join(&hex[..2]).join(format!("{hex}.chunk"))
    }

    fn delete(&self, names: &[u128]) {
        for &name in names {
            let _ = fs::remove_file(self.path(name));
            self.evictions.fetch_add(1, Ordering::Relaxed);
            counter!("shoal_disk_evictions_total").increment(1);
        }
    }

    fn read(&self, key: &[u8]) -> Option<Bytes> {
        let name = name_of(key);
        if !self.index.lock().entries.contains_key(&name) {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let path = self.path(name);
        let data = match fs::read(&path) {
            Ok(d) => Bytes::from(d),
            Err(_) => {
                self.index.lock().remove(name);
                self.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        match decode(&data, key) {
            Some(value) => {
                self.index.lock().touch(name);
                self.hits.fetch_add(1, Ordering::Relaxed);
                counter!("shoal_disk_hits_total").increment(1);
                Some(value)
            }
            None => {
                tracing::warn!(path = %path.display(), "corrupt chunk file dropped; refetching");
                let _ = fs::remove_file(&path);
                self.index.lock().remove(name);
                self.corruptions.fetch_add(1, Ordering::Relaxed);
                counter!("shoal_disk_corruptions_total").increment(1);
                None
            }
        }
    }

    fn write(&self, key: &[u8], value: &[u8]) {
        let started = Instant::now();
        if self
            .health
            .lock()
            .paused_until
            .is_some_and(|until| started < until)
        {
            return;
        }
        let size = (HEADER + key.len() + value.len()) as u64;
        let limit = self.limit.load(Ordering::Relaxed);
        if size > limit {
            return;
        }
        let name = name_of(key);
        match self.write_file(name, key, value) {
            Ok(()) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                counter!("shoal_disk_writes_total").increment(1);
                let victims = {
                    let mut index = self.index.lock();
                    index.insert(name, size);
                    index.over_budget(limit)
                };
                self.delete(&victims);
                if self.health.lock().worked(started) {
                    tracing::info!(root = %self.root.display(), "disk tier writes work again");
                }
            }
            Err(e) => {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                counter!("shoal_disk_write_errors_total").increment(1);
                if e.kind() == io::ErrorKind::StorageFull && self.shrink(size) {
                    return;
                }
                if self.health.lock().failed(Instant::now()) {
                    tracing::warn!(
                        root = %self.root.display(), error = %e,
                        "disk tier write failed; running memory-only until writes work again"
                    );
                }
            }
        }
    }

    /// The disk is full before the budget is: keep at most 85 % of what is stored now (file
    /// sizes, not the blocks they take), and evict down to that so the next writes find
    /// room. False when too little is stored for that to make room for an entry of `size`
    /// bytes (the space is someone else's).
    fn shrink(&self, size: u64) -> bool {
        let (victims, limit) = {
            let mut last = self.last_shrink.lock();
            if last.is_some_and(|t| t.elapsed() < SHRINK_SETTLE) {
                // Writes under way when the disk filled fail together: one shrink for all.
                return true;
            }
            let mut index = self.index.lock();
            let limit = index.bytes / 100 * 85;
            if limit < size.saturating_mul(2) {
                return false;
            }
            *last = Some(Instant::now());
            (index.over_budget(limit), limit)
        };
        let was = self.limit.swap(limit, Ordering::Relaxed);
        self.delete(&victims);
        tracing::warn!(
            root = %self.root.display(), limit, was,
            "disk full before the disk tier's budget; it now keeps at most {limit} bytes"
        );
        true
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.index.lock().entries.contains_key(&name_of(key))
    }

    fn remove(&self, key: &[u8]) {
        let name = name_of(key);
        if self.index.lock().remove(name) {
            let _ = fs::remove_file(self.path(name));
        }
    }

    fn write_file(&self, name: u128, key: &[u8], value: &[u8]) -> io::Result<()> {
        let dest = self.path(name);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{name:032x}.{}", rand::random::<u32>()));
        let result = (|| {
            if let Some(dir) = dest.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&encode_header(key, value))?;
            f.write_all(key)?;
            f.write_all(value)?;
            fs::rename(&tmp, &dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

fn encode_header(key: &[u8], value: &[u8]) -> BytesMut {
    let mut h = BytesMut::with_capacity(HEADER);
    h.put_slice(MAGIC);
    h.put_u8(VERSION);
    h.put_u32(key.len() as u32);
    h.put_u64(value.len() as u64);
    h.put_u64(checksum(key, value));
    h
}

/// The value in a chunk file, if the file is intact and holds `key`.
fn decode(data: &Bytes, key: &[u8]) -> Option<Bytes> {
    let mut h = data.get(..HEADER)?;
    if &h[..4] != MAGIC {
        return None;
    }
    h.advance(4);
    if h.get_u8() != VERSION {
        return None;
    }
    let klen = h.get_u32() as usize;
    let vlen = usize::try_from(h.get_u64()).ok()?;
    let sum = h.get_u64();
    if data.len() != HEADER.checked_add(klen)?.checked_add(vlen)? {
        return None;
    }
    let (k, v) = (&data[HEADER..HEADER + klen], data.slice(HEADER + klen..));
    (k == key && checksum(k, &v) == sum).then_some(v)
}

impl DiskTier for FileStore {
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Option<Bytes>> {
        let (inner, key) = (self.inner.clone(), key.to_vec());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.read(&key))
                .await
                .ok()
                .flatten()
        })
    }

    fn put(&self, key: Bytes, value: Bytes) -> BoxFuture<'_, ()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || inner.write(&key, &value)).await;
        })
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.inner.contains(key)
    }

    fn remove(&self, key: &[u8]) {
        self.inner.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(n: usize, seed: u8) -> Bytes {
        Bytes::from(
            (0..n)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn round_trip_restart_and_budget() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 10_000).unwrap();
        s.put(Bytes::from_static(b"a"), val(3000, 3)).await;
        s.put(Bytes::from_static(b"b"), val(3000, 5)).await;
        assert_eq!(s.get(b"a").await.unwrap(), val(3000, 3)); // a is now the newest
        s.put(Bytes::from_static(b"c"), val(3000, 7)).await;
        s.put(Bytes::from_static(b"d"), val(3000, 9)).await; // over budget: b goes
        assert!(s.get(b"b").await.is_none());
        assert!(s.get(b"a").await.is_some());
        assert_eq!(s.stats().evictions, 1);
        assert!(s.stats().bytes <= 10_000);
        drop(s);
        let s = FileStore::open(dir.path(), 10_000).unwrap();
        assert_eq!(s.stats().items, 3);
        assert_eq!(s.get(b"d").await.unwrap(), val(3000, 9));
        // A smaller budget on restart evicts at once.
        drop(s);
        let s = FileStore::open(dir.path(), 7_000).unwrap();
        assert_eq!(s.stats().items, 2);
    }

    #[tokio::test]
    async fn corrupt_and_torn_files_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 1 << 20).unwrap();
        for (i, cut) in [(0u8, false), (1, true)] {
            let key = Bytes::from(vec![i]);
            s.put(key.clone(), val(5000, 11)).await;
            let path = s.path_of(&key);
            let mut data = fs::read(&path).unwrap();
            if cut {
                data.truncate(data.len() - 1);
            } else {
                let last = data.len() - 1;
                data[last] ^= 0x40;
            }
            fs::write(&path, data).unwrap();
            assert!(s.get(&key).await.is_none());
            assert!(!path.exists());
        }
        assert_eq!(s.stats().corruptions, 2);
        // A file holding another key (a hash collision) is never served for this one.
        let file = Bytes::from([&encode_header(b"a", b"v")[..], b"a", b"v"].concat());
        assert_eq!(decode(&file, b"a").unwrap(), "v");
        assert!(decode(&file, b"b").is_none());
    }

    #[tokio::test]
    async fn contains_and_remove_act_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 1 << 20).unwrap();
        s.put(Bytes::from_static(b"k"), val(10, 1)).await;
        assert!(s.contains(b"k") && !s.contains(b"other"));
        s.remove(b"k");
        assert!(!s.contains(b"k"));
        assert!(s.get(b"k").await.is_none());
        assert!(!s.path_of(b"k").exists());
        assert_eq!(s.stats().items, 0);
    }

    #[test]
    fn only_a_write_started_after_a_failure_ends_the_pause() {
        let mut h = Health::default();
        let before = Instant::now();
        let at = before + Duration::from_millis(1);
        assert!(h.failed(at), "the first failure warns");
        assert!(!h.worked(before), "a write under way before the failure");
        assert!(h.paused_until.is_some_and(|u| u > at));
        assert!(
            !h.failed(at + Duration::from_millis(1)),
            "still one episode"
        );
        assert!(h.worked(at + FIRST_PAUSE), "a write started after it");
        assert!(h.paused_until.is_none() && h.pause.is_none());
        assert!(h.failed(at + FIRST_PAUSE * 2), "a new episode warns again");
    }

    #[tokio::test]
    async fn a_failing_disk_turns_writes_off_without_failing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let s = FileStore::open(&root, 1 << 20).unwrap();
        fs::remove_dir_all(&root).unwrap();
        fs::write(&root, b"not a directory").unwrap();
        s.put(Bytes::from_static(b"k"), val(100, 1)).await;
        s.put(Bytes::from_static(b"k2"), val(100, 1)).await;
        assert!(s.get(b"k").await.is_none());
        let st = s.stats();
        assert_eq!(
            (st.write_errors, st.writes),
            (1, 0),
            "the second write was skipped"
        );
    }
}
