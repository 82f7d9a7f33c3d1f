//! Against a real nginx: HttpOrigin in front of it, and a differential test of shoal's range
//! replies against nginx serving the same files directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::nginx::Nginx;
use common::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use shoal_proxy::{DirOrigin, HttpOrigin, HttpOriginConfig, ProxyConfig};

const CS: u64 = 4096;

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    // Size 0 is left out of the differential: RFC 9110 makes `bytes=0-` on an empty
    // representation a 416 and shoal follows it; nginx answers 200 (see range.rs).
    [1, CS - 1, CS, CS + 1, 5 * CS + 123, 40_000]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let name = format!("d{i}.bin");
            let data = content(n as usize, 100 + i as u64);
            std::fs::write(dir.join(&name), &data).unwrap();
            (name, data)
        })
        .collect()
}

fn random_range(rng: &mut StdRng, size: u64) -> String {
    let n = if rng.random_bool(0.4) {
        1
    } else {
        rng.random_range(2..=6)
    };
    let pos = |rng: &mut StdRng| match rng.random_range(0..6) {
        0 => 0,
        1 => size.saturating_sub(1),
        2 => size,
        3 => size + rng.random_range(1..100),
        _ => rng.random_range(0..size.max(1)),
    };
    let specs: Vec<String> = (0..n)
        .map(|_| match rng.random_range(0..3) {
            0 if n > 1 && rng.random_bool(0.7) => {
                // Short spans, so that most multi-range sets stay within the object's size.
                let a = pos(rng);
                format!("{a}-{}", a + rng.random_range(0..=size / (2 * n)))
            }
            0 => {
                let (a, b) = (pos(rng), pos(rng));
                format!("{}-{}", a.min(b), a.max(b))
            }
            1 => format!("{}-", pos(rng)),
            _ => format!("-{}", pos(rng)),
        })
        .collect();
    format!("bytes={}", specs.join(","))
}

/// (status, Content-Range, parts as (Content-Range, bytes)).
type Meaning = (u16, Option<String>, Vec<(String, Vec<u8>)>);

/// What a reply means, independent of multipart boundaries.
fn meaning(r: &Reply) -> Meaning {
    let ct = r.header("content-type").unwrap_or("");
    if r.status == 206 && ct.starts_with("multipart/byteranges") {
        (r.status, None, multipart(r))
    } else if r.status == 416 {
        // Error pages differ (nginx sends HTML); the status and Content-Range are compared.
        (
            r.status,
            r.header("content-range").map(str::to_owned),
            vec![],
        )
    } else {
        let cr = r.header("content-range").map(str::to_owned);
        (
            r.status,
            cr.clone(),
            vec![(cr.unwrap_or_default(), r.body.clone())],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_bytes_and_statuses_as_nginx_for_3000_random_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path());
    let Some(nginx) = Nginx::start(dir.path()) else {
        return;
    };
    let shoal = start(
        Arc::new(DirOrigin::new(dir.path()).unwrap()),
        store_config(CS),
        ProxyConfig::default(),
    )
    .await;
    let mut rng = StdRng::seed_from_u64(4);
    let mut multi = 0;
    for i in 0..3000 {
        let (name, data) = &files[i % files.len()];
        let range = random_range(&mut rng, data.len() as u64);
        let path = format!("/{name}");
        let ours = get(shoal.addr, &path, &[("Range", &range)]).await;
        let theirs = get(nginx.addr, &path, &[("Range", &range)]).await;
        assert!(ours.complete && theirs.complete, "{range}");
        let (a, b) = (meaning(&ours), meaning(&theirs));
        assert_eq!(a.0, b.0, "status for {path} {range}");
        assert_eq!(a.1, b.1, "Content-Range for {path} {range}");
        assert!(a.2 == b.2, "bytes for {path} {range}");
        if a.2.len() > 1 {
            multi += 1;
        }
        // Same validators as nginx, so caches in front of either agree.
        if b.0 != 416 {
            assert_eq!(ours.header("etag"), theirs.header("etag"), "{path}");
            assert_eq!(ours.header("last-modified"), theirs.header("last-modified"));
        }
        // Check against RFC 9110 too, not only against nginx.
        check_reply(&ours, &range, data);
    }
    assert!(multi > 200, "only {multi} multipart replies compared");
    assert!(
        !nginx.error_log().contains("[alert]"),
        "{}",
        nginx.error_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_origin_in_front_of_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path());
    let Some(nginx) = Nginx::start(dir.path()) else {
        return;
    };
    let origin = HttpOrigin::new(
        &format!("http://{}/", nginx.addr),
        HttpOriginConfig::default(),
    )
    .unwrap();
    let mut sc = store_config(CS);
    sc.meta_ttl = Duration::from_secs(600);
    let shoal = start(Arc::new(origin), sc, ProxyConfig::default()).await;
    let mut rng = StdRng::seed_from_u64(5);
    for (name, data) in &files {
        let path = format!("/{name}");
        let whole = get(shoal.addr, &path, &[]).await;
        assert!(whole.status == 200 && whole.body == *data, "{path}");
        for _ in 0..20 {
            let range = random_range(&mut rng, data.len() as u64);
            check_reply(
                &get(shoal.addr, &path, &[("Range", &range)]).await,
                &range,
                data,
            );
        }
    }
    // nginx honors If-Match: a file rewritten under the proxy is never stitched.
    let old = content(5 * CS as usize, 77);
    std::fs::write(dir.path().join("changing.bin"), &old).unwrap();
    let r = get(shoal.addr, "/changing.bin", &[("Range", "bytes=0-9")]).await;
    assert!(r.body == old[..10]);
    let new = content(old.len(), 78);
    std::thread::sleep(Duration::from_millis(1100)); // nginx ETags have 1 s resolution
    std::fs::write(dir.path().join("changing.bin"), &new).unwrap();
    // Chunk 0 (old) is cached, chunk 1 meets the new ETag at nginx (412): cut short.
    let r = get(shoal.addr, "/changing.bin", &[]).await;
    assert!(!r.complete && r.body[..] == old[..r.body.len()]);
    let r = get(shoal.addr, "/changing.bin", &[]).await;
    assert!(r.complete && r.body == new);
}
