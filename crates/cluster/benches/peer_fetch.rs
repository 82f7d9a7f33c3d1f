//! Peer fetch over loopback: the native protocol against galaxycache's gRPC and
//! golang/groupcache's HTTP protocol, for 1 KiB and 1 MiB values, one request at a time and
//! 32 at once; and a get of a hot key on its owner against one on a non-owner (hot cache,
//! or a peer fetch every time without promotion).
//!
//! The value sits in the owner's main cache, so this measures the transports. First a
//! bounded pass (a fixed time per cell, every latency kept) prints throughput, p50 and
//! p99 and their ratios to the native protocol, all from the same run, with the load
//! average; then criterion times sequential 1 KiB fetches.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use shoal_cache::{AlwaysPromote, Group, Loaded, NeverPromote, Source, loader_fn};
use shoal_cluster::{Cluster, PeerClient, PeerServer, Protocol};
use tokio::runtime::Runtime;

const GROUP: &str = "bench";
const KEY: &[u8] = b"the-key";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// How long each cell of the bounded pass runs.
const CELL: Duration = Duration::from_millis(800);
const PROTOCOLS: [Protocol; 3] = [Protocol::Native, Protocol::Grpc, Protocol::Groupcache];

/// A member holding `KEY` (of `size` bytes) and a client on another member.
struct Pair {
    client: Arc<PeerClient>,
    _server: PeerServer,
    _clusters: Vec<Cluster>,
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

fn pair(rt: &Runtime, protocol: Protocol, size: usize) -> Pair {
    rt.block_on(async {
        let ((la, a), (lb, b)) = (listener().await, listener().await);
        let members = [a.as_str(), b.as_str()];
        let ca = Cluster::builder(a.as_str())
            .protocol(protocol)
            .build(&members)
            .unwrap();
        let cb = Cluster::builder(b.as_str())
            .protocol(protocol)
            .build(&members)
            .unwrap();
        let group = cb
            .group(
                Group::builder(GROUP, 64 << 20),
                loader_fn(move |_k: Bytes| async move { Ok(Loaded::new(vec![b'x'; size])) }),
            )
            .unwrap();
        group.get(KEY).await.unwrap();
        let server = cb.serve_on(lb).unwrap();
        drop(la);
        let client = ca.client(&b).unwrap();
        assert_eq!(client.fetch(GROUP, KEY).await.unwrap().value.len(), size);
        Pair {
            client,
            _server: server,
            _clusters: vec![ca, cb],
        }
    })
}

/// Throughput and latency percentiles of one bounded run.
#[derive(Clone, Copy)]
struct Cell {
    rate: f64,
    p50: Duration,
    p99: Duration,
    n: usize,
}

fn summarise(mut latencies: Vec<Duration>, took: Duration) -> Cell {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Cell {
        rate: latencies.len() as f64 / took.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        n: latencies.len(),
    }
}

/// Run `op` with `width` at a time for [`CELL`], keeping every latency.
fn run<F, Fut>(rt: &Runtime, width: usize, op: F) -> Cell
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..width)
            .map(|_| {
                let op = op.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(1 << 14);
                    while start.elapsed() < CELL {
                        let t = Instant::now();
                        op().await;
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        summarise(all, start.elapsed())
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn print(label: &str, c: Cell, base: Cell) {
    eprintln!(
        "  {label:<34} {:>9.0}/s  p50 {:>8.1} µs  p99 {:>8.1} µs  (n={:>6})  rate native/this {:>5.2}  p99 this/native {:>5.2}",
        c.rate,
        c.p50.as_secs_f64() * 1e6,
        c.p99.as_secs_f64() * 1e6,
        c.n,
        base.rate / c.rate,
        c.p99.as_secs_f64() / base.p99.as_secs_f64(),
    );
}

fn transports(rt: &Runtime) {
    for (size, name) in [(KIB, "1 KiB"), (MIB, "1 MiB")] {
        for width in [1, 32] {
            eprintln!("peer fetch, {name}, {width} at a time:");
            let mut base = None;
            for protocol in PROTOCOLS {
                let p = pair(rt, protocol, size);
                let client = p.client.clone();
                let cell = run(rt, width, move || {
                    let c = client.clone();
                    async move {
                        c.fetch(GROUP, KEY).await.unwrap();
                    }
                });
                let base = *base.get_or_insert(cell);
                print(&protocol.to_string(), cell, base);
            }
        }
    }
}

/// Three members; a 1 KiB key owned by one, asked on the owner and on a non-owner.
fn hot_key(rt: &Runtime) {
    let (cells, _keep) = rt.block_on(async {
        let mut ls = Vec::new();
        for _ in 0..3 {
            ls.push(listener().await);
        }
        let urls: Vec<String> = ls.iter().map(|(_, u)| u.clone()).collect();
        let members: Vec<&str> = urls.iter().map(String::as_str).collect();
        let mut nodes = Vec::new();
        for (i, (l, url)) in ls.into_iter().enumerate() {
            let cluster = Cluster::builder(url.as_str()).build(&members).unwrap();
            let builder = Group::builder(GROUP, 64 << 20);
            // Node 1 promotes every fetch; node 2 never does (a peer fetch every time).
            let builder = match i {
                2 => builder.promoter(NeverPromote),
                _ => builder.promoter(AlwaysPromote),
            };
            let group = cluster
                .group(
                    builder,
                    loader_fn(|_k: Bytes| async { Ok(Loaded::new(vec![b'x'; KIB])) }),
                )
                .unwrap();
            let server = cluster.serve_on(l).unwrap();
            nodes.push((cluster, group, server));
        }
        let key: Bytes = (0..1000)
            .map(|i| Bytes::from(format!("hot-{i}")))
            .find(|k| nodes[0].0.owner(k).as_deref() == Some(urls[0].as_str()))
            .unwrap();
        let mut cells = Vec::new();
        for (i, want) in [Source::MainCache, Source::HotCache, Source::Peer]
            .into_iter()
            .enumerate()
        {
            let g = nodes[i].1.clone();
            g.get(&key).await.unwrap();
            let got = g.get_with(&key, Default::default()).await.unwrap();
            assert_eq!(got.source, want);
            cells.push((g, key.clone()));
        }
        (cells, nodes)
    });
    eprintln!("a get of a hot 1 KiB key, 1 at a time:");
    let mut base = None;
    for ((g, key), label) in cells.into_iter().zip([
        "on the owner (main cache)",
        "on a non-owner (hot cache)",
        "on a non-owner, no promotion (peer)",
    ]) {
        let before = g.stats();
        let group = g.clone();
        let cell = run(rt, 1, move || {
            let (g, key) = (group.clone(), key.clone());
            async move {
                g.get(&key).await.unwrap();
            }
        });
        let base = *base.get_or_insert(cell);
        print(label, cell, base);
        let after = g.stats();
        eprintln!(
            "  {:<34} main hits {}, hot hits {}, peer fetches {}, joined a just-finished flight {}",
            "",
            after.main_hits - before.main_hits,
            after.hot_hits - before.hot_hits,
            after.peer_loads - before.peer_loads,
            after.loads_joined - before.loads_joined,
        );
    }
    eprintln!("  (in this block, \"native\" means the owner's get)");
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    eprintln!("load average before: {}", load_average());
    transports(&rt);
    hot_key(&rt);
    eprintln!("load average after: {}", load_average());
    let pairs: Vec<_> = PROTOCOLS.iter().map(|&p| (p, pair(&rt, p, KIB))).collect();
    let mut g = c.benchmark_group("peer_fetch_1KiB");
    for (protocol, p) in &pairs {
        g.bench_function(format!("{protocol}/sequential"), |b| {
            b.iter(|| rt.block_on(p.client.fetch(GROUP, KEY)).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
