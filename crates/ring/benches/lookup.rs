//! Lookups per second per algorithm at 3, 100 and 1000 members:
//! `cargo bench -p shoal-ring --bench lookup` (criterion reports time per lookup and the
//! throughput in lookups/s).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shoal_ring::{Algorithm, Ring, VBucketMap, build};

const SIZES: [usize; 3] = [3, 100, 1000];

fn members(alg: Algorithm, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match alg {
            Algorithm::Groupcache | Algorithm::Galaxycache => format!(
                "http://10.{}.{}.{}:8080",
                i / 65536,
                (i / 256) % 256,
                i % 256
            ),
            Algorithm::Jump | Algorithm::Chash => format!("shard{i}"),
            _ => format!("10.{}.{}.{}:11211", i / 65536, (i / 256) % 256, i % 256),
        })
        .collect()
}

fn vbucket_map(n: usize) -> VBucketMap {
    let servers: Vec<String> = members(Algorithm::Ketama, n)
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();
    let rows: Vec<String> = (0..1024).map(|vb| format!("[{}]", vb % n)).collect();
    let json = format!(
        r#"{{"numReplicas":0,"serverList":[{}],"vBucketMap":[{}]}}"#,
        servers.join(","),
        rows.join(",")
    );
    VBucketMap::from_json(&json).expect("generated map is valid")
}

fn keys() -> Vec<Vec<u8>> {
    (0..1024u32)
        .map(|i| format!("user:{}:profile", i.wrapping_mul(2_654_435_761)).into_bytes())
        .collect()
}

fn lookups(c: &mut Criterion) {
    let keys = keys();
    for alg in Algorithm::ALL {
        let mut group = c.benchmark_group(format!("owner/{alg}"));
        group.throughput(Throughput::Elements(1));
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(1));
        group.sample_size(20);
        for n in SIZES {
            let ring: Box<dyn Ring> = if alg == Algorithm::Vbucket {
                Box::new(vbucket_map(n))
            } else {
                let m = members(alg, n);
                let m: Vec<&str> = m.iter().map(String::as_str).collect();
                build(alg, &m).expect("benchmark members are valid")
            };
            let mut i = 0usize;
            group.bench_with_input(BenchmarkId::from_parameter(n), &ring, |b, ring| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(ring.owner(black_box(&keys[i])))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, lookups);
criterion_main!(benches);
