//! The disk tier behind the proxy: restart (chunks and metadata), corruption of either, a
//! failing disk, and `X-Cache` for disk hits, against an origin that counts its requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::origin::TestOrigin;
use common::*;
use shoal_proxy::disk::meta_key;
use shoal_proxy::{
    DiskTier, FileStore, HttpOrigin, HttpOriginConfig, ProxyConfig, ServerConfig, Store,
};

const CS: u64 = 16 << 10;

async fn node(o: &TestOrigin, disk: &FileStore) -> Running {
    node_with_ttl(o, disk, Duration::from_secs(60)).await
}

async fn node_with_ttl(o: &TestOrigin, disk: &FileStore, meta_ttl: Duration) -> Running {
    let origin = Arc::new(HttpOrigin::new(&o.url(), HttpOriginConfig::default()).unwrap());
    let disk: Arc<dyn DiskTier> = Arc::new(disk.clone());
    let mut config = store_config(CS);
    config.meta_ttl = meta_ttl;
    let store = Store::with_disk(origin, &config, Some(disk));
    // No read-ahead: the tests count exactly which chunks were read.
    let mut pc = ProxyConfig::default();
    pc.readahead_chunks = 0;
    start_store(store, pc, ServerConfig::default()).await
}

fn requests(o: &TestOrigin) -> usize {
    o.state.requests.load(Ordering::SeqCst)
}

fn heads(o: &TestOrigin) -> usize {
    o.state.heads.load(Ordering::SeqCst)
}

/// Wait until the background disk writes of `n` chunks are done.
async fn written(disk: &FileStore, n: u64) {
    let ok = wait_for(std::time::Duration::from_secs(10), || {
        disk.stats().writes >= n
    })
    .await;
    assert!(ok, "only {} of {n} chunks written", disk.stats().writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_serves_disk_chunks_without_reading_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let o = TestOrigin::start().await;
    let data = content(6 * CS as usize + 5, 1);
    o.put("obj", data.clone(), "v1");
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    {
        let n = node(&o, &disk).await;
        let r = get(n.addr, "/obj", &[]).await;
        assert!(r.body == data);
        assert_eq!(r.header("x-cache"), Some("MISS"));
        written(&disk, 8).await; // 7 chunks and the metadata
        let r = get(n.addr, "/obj", &[]).await;
        assert_eq!(r.header("x-cache"), Some("HIT"), "from memory");
    }
    assert_eq!((o.gets().len(), heads(&o)), (7, 1));
    let before = requests(&o);
    // A new process: empty memory, the same directory.
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(disk.stats().items, 8);
    let n = node(&o, &disk).await;
    let r = request(n.addr, "HEAD", "/obj", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(&*data.len().to_string()));
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert_eq!(r.header("x-cache"), Some("HIT"), "metadata from disk");
    let r = get(n.addr, "/obj", &[]).await;
    assert!(r.complete && r.body == data);
    assert_eq!(
        r.header("x-cache"),
        Some("HIT"),
        "chunks from disk are hits"
    );
    let r = get(n.addr, "/obj", &[("Range", "bytes=20000-40000")]).await;
    assert!(r.body == data[20000..=40000]);
    assert_eq!(
        requests(&o),
        before,
        "the restarted node never asked the origin"
    );
    assert_eq!(disk.stats().hits, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_past_the_ttl_on_disk_is_revalidated_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let o = TestOrigin::start().await;
    let data = content(2 * CS as usize + 1, 4);
    o.put("obj", data.clone(), "v1");
    let ttl = Duration::from_millis(300);
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    {
        // Written under a long TTL; the restarted node's shorter one is what counts.
        let n = node_with_ttl(&o, &disk, Duration::from_secs(60)).await;
        assert!(get(n.addr, "/obj", &[]).await.body == data);
        written(&disk, 4).await;
    }
    assert_eq!((o.gets().len(), heads(&o)), (3, 1));
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    let n = node_with_ttl(&o, &disk, ttl).await;
    let r = get(n.addr, "/obj", &[]).await;
    assert!(r.complete && r.body == data);
    assert_eq!(
        heads(&o),
        2,
        "expired metadata was asked of the origin again"
    );
    assert_eq!(
        o.gets().len(),
        3,
        "the same version: its chunks still came from disk"
    );
    assert_eq!(r.header("x-cache"), Some("HIT"));
    // The revalidated entry is fresh again on disk: another restart asks nothing.
    written(&disk, 1).await;
    drop(n);
    let before = requests(&o);
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    let n = node_with_ttl(&o, &disk, Duration::from_secs(60)).await;
    assert!(get(n.addr, "/obj", &[]).await.body == data);
    assert_eq!(requests(&o), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_cache_says_partial_when_only_some_chunks_are_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let o = TestOrigin::start().await;
    let data = content(4 * CS as usize, 5);
    o.put("obj", data.clone(), "v1");
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    {
        let n = node(&o, &disk).await;
        let r = get(n.addr, "/obj", &[("Range", "bytes=0-100")]).await;
        assert_eq!(r.header("x-cache"), Some("MISS"));
        written(&disk, 2).await; // chunk 0 and the metadata
    }
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    let n = node(&o, &disk).await;
    let r = get(n.addr, "/obj", &[]).await;
    assert!(r.complete && r.body == data);
    assert_eq!(r.header("x-cache"), Some("PARTIAL"));
    assert_eq!(
        o.gets().len(),
        4,
        "chunk 0 from disk, the other three from the origin"
    );
    let r = get(n.addr, "/obj", &[("Range", "bytes=-10")]).await;
    assert_eq!(r.header("x-cache"), Some("HIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_metadata_on_disk_is_refetched_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let o = TestOrigin::start().await;
    let data = content(3 * CS as usize, 6);
    o.put("obj", data.clone(), "v1");
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    {
        let n = node(&o, &disk).await;
        assert!(get(n.addr, "/obj", &[]).await.body == data);
        written(&disk, 4).await;
    }
    let meta_file = disk.path_of(&meta_key("obj"));
    let good = std::fs::read(&meta_file).expect("the metadata entry is on disk");
    // Each kind of damage in turn: a flipped size byte, a flipped validator byte, a torn end.
    // File header (25 bytes), key, entry version and deadline (9), metadata version (1).
    let size_at = 25 + meta_key("obj").len() + 9 + 1;
    let damaged: [Vec<u8>; 3] = [
        {
            let mut b = good.clone();
            b[size_at + 7] ^= 0x01;
            b
        },
        {
            let mut b = good.clone();
            let last = b.len() - 3;
            b[last] ^= 0x20;
            b
        },
        good[..good.len() - 2].to_vec(),
    ];
    for (round, bytes) in damaged.into_iter().enumerate() {
        std::fs::write(&meta_file, bytes).unwrap();
        let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
        let n = node(&o, &disk).await;
        let r = get(n.addr, "/obj", &[]).await;
        assert!(
            r.complete && r.body == data,
            "round {round}: damaged metadata was served"
        );
        assert_eq!(r.header("content-length"), Some(&*data.len().to_string()));
        assert_eq!(disk.stats().corruptions, 1, "round {round}");
        assert_eq!(
            heads(&o),
            2 + round,
            "round {round}: the origin was asked again"
        );
        assert_eq!(
            o.gets().len(),
            3,
            "round {round}: chunks still came from disk"
        );
        written(&disk, 1).await;
        let rewritten = std::fs::read(&meta_file).unwrap();
        assert_eq!(rewritten.len(), good.len(), "rewritten whole");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_file_is_refetched_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let o = TestOrigin::start().await;
    let data = content(3 * CS as usize, 2);
    o.put("obj", data.clone(), "v1");
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    {
        let n = node(&o, &disk).await;
        assert!(get(n.addr, "/obj", &[]).await.body == data);
        written(&disk, 4).await;
    }
    // Flip one byte in the middle of every file.
    let mut flipped = 0;
    for sub in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if sub.file_name() == "tmp" {
            continue;
        }
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            let mut bytes = std::fs::read(f.path()).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(f.path(), bytes).unwrap();
            flipped += 1;
        }
    }
    assert_eq!(flipped, 4, "three chunks and the metadata");
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    let n = node(&o, &disk).await;
    let r = get(n.addr, "/obj", &[]).await;
    assert!(r.complete && r.body == data, "corrupt bytes were served");
    assert_eq!(disk.stats().corruptions, 4);
    assert_eq!(o.gets().len(), 6, "each corrupted chunk was read again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_degrades_to_memory_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let o = TestOrigin::start().await;
    let data = content(3 * CS as usize, 3);
    o.put("obj", data.clone(), "v1");
    let disk = FileStore::open(&root, 64 << 20).unwrap();
    // The directory disappears under the store (as a full or failed disk would refuse writes).
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"in the way").unwrap();
    let n = node(&o, &disk).await;
    for _ in 0..3 {
        let r = get(n.addr, "/obj", &[]).await;
        assert!(r.status == 200 && r.body == data);
    }
    assert!(disk.stats().write_errors >= 1);
    assert_eq!(disk.stats().writes, 0);
}
