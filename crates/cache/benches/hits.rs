//! Hit throughput: a get answered from the main or hot cache is a sharded lookup and a
//! `Bytes` clone. Run with `cargo bench -p shoal-cache --bench hits`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shoal_cache::{
    AlwaysPromote, BoxFuture, Group, LoadError, Loaded, Peer, Peers, Source, loader_fn,
};

const KEYS: usize = 1024;
const BATCH: u64 = 1000;

struct Everywhere;

impl Peer for Everywhere {
    fn id(&self) -> &str {
        "bench"
    }
    fn fetch<'a>(&'a self, _: &'a str, key: Bytes) -> BoxFuture<'a, Result<Loaded, LoadError>> {
        Box::pin(async move { Ok(Loaded::new(key)) })
    }
}

/// Every key is owned by the bench peer.
struct Remote;

impl Peers for Remote {
    fn pick(&self, _: &[u8]) -> Option<Arc<dyn Peer>> {
        Some(Arc::new(Everywhere))
    }
}

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("object/{i}/chunk/0").into_bytes())
        .collect()
}

/// Time `iters` gets of the warmed keys, `BATCH` per runtime entry.
fn run(rt: &tokio::runtime::Runtime, g: &Arc<Group>, keys: &[Vec<u8>], iters: u64) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..iters {
            let key = &keys[i as usize % keys.len()];
            black_box(g.get(key).await.ok());
        }
    });
    start.elapsed()
}

fn hits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let keys = keys();
    let mut group = c.benchmark_group("get_hit");
    group.throughput(Throughput::Elements(BATCH));

    let main = Group::builder("main", 256 << 20).build(loader_fn(|_key: Bytes| async {
        Ok(Loaded::new(vec![0u8; 4096]))
    }));
    rt.block_on(async {
        for k in &keys {
            main.get(k).await.expect("warm main");
        }
    });
    group.bench_function("main_4k", |b| {
        b.iter_custom(|n| run(&rt, &main, &keys, n * BATCH));
    });

    let hot = Group::builder("hot", 256 << 20)
        .promoter(AlwaysPromote)
        .build(loader_fn(|_key: Bytes| async { Err(LoadError::NotFound) }));
    hot.set_peers(Arc::new(Remote));
    rt.block_on(async {
        for k in &keys {
            hot.get(k).await.expect("warm hot");
        }
        let got = hot
            .get_with(&keys[0], Default::default())
            .await
            .expect("hot hit");
        assert_eq!(got.source, Source::HotCache);
    });
    group.bench_function("hot", |b| {
        b.iter_custom(|n| run(&rt, &hot, &keys, n * BATCH));
    });
    group.finish();
}

criterion_group!(benches, hits);
criterion_main!(benches);
