//! Peer fetch over loopback: the native protocol (HTTP/2) against galaxycache's gRPC and
//! golang/groupcache's HTTP/1.1 protocol, for one request at a time and for 32 at once.
//! The value (1 KiB) is in the owner's main cache, so this measures the transports.
//!
//! Before criterion's runs, a fixed-count pass prints each protocol's rate and its ratio
//! to the native protocol, measured in the same run.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use shoal_cache::{Group, Loaded, loader_fn};
use shoal_cluster::{Cluster, PeerClient, PeerServer, Protocol};
use tokio::runtime::Runtime;

const GROUP: &str = "bench";
const KEY: &[u8] = b"the-key";

struct Pair {
    client: Arc<PeerClient>,
    _server: PeerServer,
    _clusters: Vec<Cluster>,
}

fn pair(rt: &Runtime, protocol: Protocol) -> Pair {
    rt.block_on(async {
        let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = format!("http://{}", la.local_addr().unwrap());
        let b = format!("http://{}", lb.local_addr().unwrap());
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
                loader_fn(|_k: Bytes| async { Ok(Loaded::new(vec![b'x'; 1024])) }),
            )
            .unwrap();
        group.get(KEY).await.unwrap();
        let server = cb.serve_on(lb).unwrap();
        drop(la);
        let client = ca.client(&b).unwrap();
        client.fetch(GROUP, KEY).await.unwrap();
        Pair {
            client,
            _server: server,
            _clusters: vec![ca, cb],
        }
    })
}

async fn concurrent(client: &Arc<PeerClient>, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.fetch(GROUP, KEY).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

const PROTOCOLS: [Protocol; 3] = [Protocol::Native, Protocol::Grpc, Protocol::Groupcache];

fn ratios(rt: &Runtime, pairs: &[(Protocol, Pair)]) {
    let mut rates = Vec::new();
    for (protocol, p) in pairs {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(1) {
            rt.block_on(concurrent(&p.client, 32));
            n += 32;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        rates.push((*protocol, rate));
    }
    let native = rates[0].1;
    eprintln!("peer fetch, 32 concurrent, 1 KiB, loopback (same run):");
    for (protocol, rate) in rates {
        eprintln!(
            "  {protocol:<10} {rate:>10.0} fetches/s   native/this = {:.2}",
            native / rate
        );
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pairs: Vec<_> = PROTOCOLS.iter().map(|&p| (p, pair(&rt, p))).collect();
    ratios(&rt, &pairs);
    let mut g = c.benchmark_group("peer_fetch_1KiB");
    for (protocol, p) in &pairs {
        g.bench_function(format!("{protocol}/sequential"), |b| {
            b.iter(|| rt.block_on(p.client.fetch(GROUP, KEY)).unwrap())
        });
        g.bench_function(format!("{protocol}/32_concurrent"), |b| {
            b.iter(|| rt.block_on(concurrent(&p.client, 32)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
