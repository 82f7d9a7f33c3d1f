//! The disk tier behind the proxy: restart, corruption and a failing disk, against an origin
//! that counts its reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::origin::TestOrigin;
use common::*;
use shoal_proxy::{
    DiskTier, FileStore, HttpOrigin, HttpOriginConfig, ProxyConfig, ServerConfig, Store,
};

const CS: u64 = 16 << 10;

async fn node(o: &TestOrigin, disk: &FileStore) -> Running {
    let origin = Arc::new(HttpOrigin::new(&o.url(), HttpOriginConfig::default()).unwrap());
    let disk: Arc<dyn DiskTier> = Arc::new(disk.clone());
    let store = Store::with_disk(origin, &store_config(CS), Some(disk));
    start_store(store, ProxyConfig::default(), ServerConfig::default()).await
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
        assert!(get(n.addr, "/obj", &[]).await.body == data);
        written(&disk, 7).await;
    }
    assert_eq!(o.gets().len(), 7);
    // A new process: empty memory, the same directory.
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(disk.stats().items, 7);
    let n = node(&o, &disk).await;
    let r = get(n.addr, "/obj", &[]).await;
    assert!(r.complete && r.body == data);
    let r = get(n.addr, "/obj", &[("Range", "bytes=20000-40000")]).await;
    assert!(r.body == data[20000..=40000]);
    assert_eq!(o.gets().len(), 7, "no chunk was read from the origin again");
    assert_eq!(disk.stats().hits, 7);
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
        written(&disk, 3).await;
    }
    // Flip one byte in the middle of every chunk file.
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
    assert_eq!(flipped, 3);
    let disk = FileStore::open(dir.path(), 64 << 20).unwrap();
    let n = node(&o, &disk).await;
    let r = get(n.addr, "/obj", &[]).await;
    assert!(r.complete && r.body == data, "corrupt bytes were served");
    assert_eq!(disk.stats().corruptions, 3);
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
