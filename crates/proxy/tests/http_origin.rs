//! HttpOrigin behind the proxy, against an in-test origin that counts its requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::origin::TestOrigin;
use common::*;
use shoal_proxy::{HttpOrigin, HttpOriginConfig, ProxyConfig, StoreConfig};

const CS: u64 = 64 << 10;

fn http_origin(o: &TestOrigin, timeout: Duration) -> Arc<HttpOrigin> {
    let mut c = HttpOriginConfig::default();
    c.timeout = timeout;
    Arc::new(HttpOrigin::new(&o.url(), c).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_origin_read_per_chunk_under_120_concurrent_clients() {
    let o = TestOrigin::start().await;
    let data = content((8 * CS - 100) as usize, 1);
    o.put("cold.bin", data.clone(), "v1");
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        store_config(CS),
        ProxyConfig::default(),
    )
    .await;
    let clients: Vec<_> = (0..120)
        .map(|i| {
            let addr = proxy.addr;
            tokio::spawn(async move {
                if i % 2 == 0 {
                    get(addr, "/cold.bin", &[]).await
                } else {
                    get(addr, "/cold.bin", &[("Range", "bytes=100000-300000")]).await
                }
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let r = c.await.unwrap();
        assert!(r.complete, "client {i}");
        assert_eq!(r.header("etag"), Some("\"v1\""));
        assert_eq!(r.header("content-type"), Some("application/x-test"));
        assert_eq!(
            r.header("last-modified"),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        if i % 2 == 0 {
            assert!(r.status == 200 && r.body == data, "client {i}");
        } else {
            assert!(
                r.status == 206 && r.body == data[100000..=300000],
                "client {i}"
            );
        }
    }
    let gets = o.gets();
    let distinct: HashSet<_> = gets.iter().collect();
    assert_eq!(gets.len(), 8, "one read per chunk: {gets:?}");
    assert_eq!(distinct.len(), 8);
    assert_eq!(o.state.heads.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_ignores_ranges_is_cached_from_what_arrives() {
    let o = TestOrigin::start().await;
    let data = content((5 * CS + 3) as usize, 2);
    o.put("whole.bin", data.clone(), "v1");
    o.state.ignore_ranges.store(true, Ordering::Relaxed);
    let mut pc = ProxyConfig::default();
    pc.max_parallel_chunks = 1;
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        store_config(CS),
        pc,
    )
    .await;
    let r = get(proxy.addr, "/whole.bin", &[]).await;
    assert!(r.status == 200 && r.body == data);
    let r = get(proxy.addr, "/whole.bin", &[("Range", "bytes=-10")]).await;
    assert!(r.status == 206 && r.body == data[data.len() - 10..]);
    assert_eq!(o.gets().len(), 1, "{:?}", o.gets());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_down_serves_what_is_cached_and_502s_the_rest_quickly() {
    let mut o = TestOrigin::start().await;
    let data = content(3 * CS as usize, 3);
    o.put("kept.bin", data.clone(), "v1");
    o.put("lost.bin", data.clone(), "v1");
    let mut sc = store_config(CS);
    sc.meta_ttl = Duration::from_secs(600);
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        sc,
        ProxyConfig::default(),
    )
    .await;
    assert!(get(proxy.addr, "/kept.bin", &[]).await.body == data);
    o.shut();
    until_refused(o.addr).await;
    let r = get(proxy.addr, "/kept.bin", &[("Range", "bytes=5-9")]).await;
    assert!(r.status == 206 && r.body == data[5..10]);
    let started = Instant::now();
    let r = get(proxy.addr, "/lost.bin", &[]).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("origin"));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Errors are not cached: still 502 (not a cached 404 or empty body).
    assert_eq!(get(proxy.addr, "/lost.bin", &[]).await.status, 502);
}

/// Waits until the listener at `addr` refuses connections.
async fn until_refused(addr: std::net::SocketAddr) {
    let end = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_meta_ttl_a_failing_origin_gets_the_cached_copy_served_stale() {
    let mut o = TestOrigin::start().await;
    let v1 = content(3 * CS as usize, 4);
    let v2 = content(3 * CS as usize, 5);
    o.put("kept.bin", v1.clone(), "v1");
    o.put("gone.bin", v1.clone(), "v1");
    let strict = [("Cache-Control", "max-age=60, Must-Revalidate")];
    o.put_with_headers("strict.bin", v1.clone(), "v1", &strict);
    let meta_ttl = Duration::from_millis(300);
    let mut sc = store_config(CS);
    sc.meta_ttl = meta_ttl;
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        sc,
        ProxyConfig::default(),
    )
    .await;
    for path in ["/kept.bin", "/gone.bin", "/strict.bin"] {
        let r = get(proxy.addr, path, &[]).await;
        assert!(r.status == 200 && r.body == v1, "{path}");
    }

    // The origin fails (503) once the metadata has expired: the cached copy answers.
    o.state.unavailable.store(true, Ordering::Relaxed);
    tokio::time::sleep(meta_ttl + Duration::from_millis(100)).await;
    let r = get(proxy.addr, "/kept.bin", &[]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.body == v1);
    assert_eq!(r.header("x-cache"), Some("STALE"));
    let r = get(proxy.addr, "/kept.bin", &[("Range", "bytes=70000-70009")]).await;
    assert!(r.status == 206 && r.body == v1[70000..70010]);
    assert_eq!(r.header("x-cache"), Some("STALE"));
    let r = request(proxy.addr, "HEAD", "/kept.bin", &[]).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")));
    // Its own Cache-Control forbids that: the origin's failure, every time.
    for _ in 0..2 {
        let r = get(proxy.addr, "/strict.bin", &[]).await;
        assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(
        get(proxy.addr, "/gone.bin", &[]).await.header("x-cache"),
        Some("STALE")
    );

    // The origin is back. The strict object was never answered stale: fresh at once.
    o.state.unavailable.store(false, Ordering::Relaxed);
    let r = get(proxy.addr, "/strict.bin", &[]).await;
    assert!(r.status == 200 && r.body == v1);
    assert_eq!(r.header("x-cache"), Some("HIT"));
    // A 404 is an answer, not a failure: once a background refresh hears it, a deleted
    // object is no longer served stale.
    o.remove("gone.bin");
    tokio::time::sleep(shoal_cache::STALE_RETRY).await;
    let end = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = get(proxy.addr, "/gone.bin", &[]).await;
        if r.status != 200 || Instant::now() > end {
            break r;
        }
        assert_eq!(r.header("x-cache"), Some("STALE"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, 404);

    // The origin is back with a new version: a background refresh picks it up.
    o.put("kept.bin", v2.clone(), "v2");
    let end = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = get(proxy.addr, "/kept.bin", &[]).await;
        if r.header("x-cache") != Some("STALE") || Instant::now() > end {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(r.status == 200 && r.body == v2, "{:?}", r.header("x-cache"));

    // The origin is gone (connections refused): the same once v2's metadata expires.
    o.shut();
    until_refused(o.addr).await;
    tokio::time::sleep(meta_ttl + Duration::from_millis(100)).await;
    let r = get(proxy.addr, "/kept.bin", &[]).await;
    assert!(r.status == 200 && r.body == v2);
    assert_eq!(r.header("x-cache"), Some("STALE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stale_if_error_a_failing_origin_is_a_502_past_meta_ttl() {
    let o = TestOrigin::start().await;
    o.put("obj", vec![7u8; 100], "v1");
    let mut sc = store_config(CS);
    sc.meta_ttl = Duration::from_millis(200);
    sc.stale_if_error = Duration::ZERO;
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        sc,
        ProxyConfig::default(),
    )
    .await;
    assert_eq!(get(proxy.addr, "/obj", &[]).await.status, 200);
    o.state.unavailable.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(proxy.addr, "/obj", &[]).await.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_is_a_504_within_the_timeout() {
    let o = TestOrigin::start().await;
    o.put("slow.bin", vec![1u8; 10], "v1");
    o.state.delay_ms.store(3000, Ordering::Relaxed);
    let proxy = start(
        http_origin(&o, Duration::from_millis(300)),
        store_config(CS),
        ProxyConfig::default(),
    )
    .await;
    let started = Instant::now();
    let r = get(proxy.addr, "/slow.bin", &[]).await;
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_object_is_served_as_the_new_version_never_mixed() {
    let o = TestOrigin::start().await;
    let v1 = content(4 * CS as usize, 10);
    let v2 = content(4 * CS as usize, 20);
    o.put("obj", v1.clone(), "v1");
    let mut sc: StoreConfig = store_config(CS);
    sc.meta_ttl = Duration::from_secs(600);
    let mut pc = ProxyConfig::default();
    pc.max_parallel_chunks = 1;
    pc.readahead_chunks = 0;
    let proxy = start(http_origin(&o, Duration::from_secs(10)), sc, pc).await;
    // Chunk 0 of v1 cached, metadata of v1 cached.
    let r = get(proxy.addr, "/obj", &[("Range", "bytes=0-9")]).await;
    assert!(r.body == v1[..10]);
    o.put("obj", v2.clone(), "v2");
    // The reply starts from cached v1 bytes; chunk 1 meets v2 at the origin (412): the reply
    // is cut short rather than stitched.
    let r = get(proxy.addr, "/obj", &[]).await;
    assert!(!r.complete, "a mixed reply must not complete");
    assert!(r.body.len() < v1.len() && r.body[..] == v1[..r.body.len()]);
    // The next request sees v2 from the start, whole.
    let r = get(proxy.addr, "/obj", &[]).await;
    assert!(r.complete && r.body == v2);
    assert_eq!(r.header("etag"), Some("\"v2\""));
    // A change seen on the first chunk is retried with fresh metadata: no error at all.
    // (HEAD caches the metadata of v1 and no chunk.)
    o.put("other", v1.clone(), "v1");
    assert_eq!(request(proxy.addr, "HEAD", "/other", &[]).await.status, 200);
    let v3 = content(4 * CS as usize, 30);
    o.put("other", v3.clone(), "v3");
    let r = get(proxy.addr, "/other", &[("Range", "bytes=70000-70009")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &v3[70000..70010]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_404_and_briefly_remembered() {
    let o = TestOrigin::start().await;
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        store_config(CS),
        ProxyConfig::default(),
    )
    .await;
    assert_eq!(get(proxy.addr, "/nope", &[]).await.status, 404);
    assert_eq!(get(proxy.addr, "/nope", &[]).await.status, 404);
    // The second 404 came from the negative cache.
    assert_eq!(o.state.requests.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_does_not_cancel_the_fill() {
    use tokio::io::AsyncWriteExt;
    let o = TestOrigin::start().await;
    let data = content(2 * CS as usize, 5);
    o.put("obj", data.clone(), "v1");
    o.state.delay_ms.store(300, Ordering::Relaxed);
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        store_config(CS),
        ProxyConfig::default(),
    )
    .await;
    // Ask, then hang up while the origin is still answering.
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /obj HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    // A second client joins the fills the first one started, and they finish.
    let r = get(proxy.addr, "/obj", &[]).await;
    assert!(r.complete && r.body == data);
    assert_eq!(o.gets().len(), 2, "{:?}", o.gets());
    let chunks = proxy.proxy.store().chunk_group().stats();
    assert_eq!(chunks.loads, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_range_readers_get_read_ahead() {
    let o = TestOrigin::start().await;
    let data = content(8 * CS as usize, 6);
    o.put("seq", data.clone(), "v1");
    let mut pc = ProxyConfig::default();
    pc.readahead_chunks = 2;
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        store_config(CS),
        pc,
    )
    .await;
    let cs = CS as usize;
    let first = format!("bytes=0-{}", cs - 1);
    let second = format!("bytes={cs}-{}", 2 * cs - 1);
    assert!(get(proxy.addr, "/seq", &[("Range", &first)]).await.body == data[..cs]);
    assert!(get(proxy.addr, "/seq", &[("Range", &second)]).await.body == data[cs..2 * cs]);
    // The second request continued the first: chunks 2 and 3 are fetched without being asked.
    let wanted = [
        format!("bytes={}-{}", 2 * cs, 3 * cs - 1),
        format!("bytes={}-{}", 3 * cs, 4 * cs - 1),
    ];
    let ok = wait_for(Duration::from_secs(5), || {
        let gets = o.gets();
        wanted.iter().all(|w| gets.iter().any(|(_, r)| r == w))
    })
    .await;
    assert!(ok, "{:?}", o.gets());
    let r = get(proxy.addr, "/seq", &[("Range", &wanted[0].clone())]).await;
    assert_eq!(r.header("x-cache"), Some("HIT"));
    // That request continued the sequence too (read-ahead of chunks 3 and 4); nothing is read
    // twice, and nothing past the read-ahead window.
    let five = wait_for(Duration::from_secs(5), || o.gets().len() == 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gets = o.gets();
    let distinct: HashSet<_> = gets.iter().collect();
    assert!(five && gets.len() == 5, "{gets:?}");
    assert_eq!(distinct.len(), gets.len(), "{gets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_reads_in_flight_stay_within_max_origin_reads() {
    let o = TestOrigin::start().await;
    let objects: Vec<Vec<u8>> = (0..4).map(|i| content(4 * CS as usize, 20 + i)).collect();
    for (i, data) in objects.iter().enumerate() {
        o.put(&format!("o{i}"), data.clone(), "v1");
    }
    let mut sc = store_config(CS);
    sc.max_origin_reads = 2;
    let mut pc = ProxyConfig::default();
    pc.max_parallel_chunks = 4;
    let proxy = start(http_origin(&o, Duration::from_secs(10)), sc, pc).await;
    // Warm the metadata, so only chunk reads remain, then make each read slow.
    for i in 0..4 {
        assert_eq!(
            request(proxy.addr, "HEAD", &format!("/o{i}"), &[])
                .await
                .status,
            200
        );
    }
    o.state.max_in_flight.store(0, Ordering::SeqCst);
    o.state.delay_ms.store(50, Ordering::Relaxed);
    // 16 cold chunks wanted at once by 8 clients, 4 chunks at a time each.
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..8 {
        let (addr, path) = (proxy.addr, format!("/o{}", c % 4));
        clients.spawn(async move { get(addr, &path, &[]).await });
    }
    let mut n = 0;
    while let Some(r) = clients.join_next().await {
        let r = r.unwrap();
        assert!(r.complete && r.status == 200);
        n += 1;
    }
    assert_eq!(n, 8);
    for (i, data) in objects.iter().enumerate() {
        assert!(get(proxy.addr, &format!("/o{i}"), &[]).await.body == *data);
    }
    assert_eq!(o.gets().len(), 16, "each chunk read once");
    assert_eq!(o.state.max_in_flight.load(Ordering::SeqCst), 2);
}

/// The origin's Cache-Control, Content-Disposition, Content-Encoding, Content-Language and
/// Expires reach every client, from the cache as from the origin; Set-Cookie never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_objects_own_headers_reach_clients_and_per_response_ones_do_not() {
    let o = TestOrigin::start().await;
    let data = content((3 * CS) as usize, 3);
    let passed = [
        ("cache-control", "public, max-age=31536000, immutable"),
        ("content-disposition", "attachment; filename=\"logs.tar\""),
        ("content-encoding", "gzip"),
        ("content-language", "de"),
        ("expires", "Thu, 01 Dec 2044 16:00:00 GMT"),
    ];
    let mut headers = passed.to_vec();
    headers.push(("set-cookie", "session=secret"));
    o.put_with_headers("logs.tar.gz", data.clone(), "v1", &headers);
    let proxy = start(
        http_origin(&o, Duration::from_secs(10)),
        store_config(CS),
        ProxyConfig::default(),
    )
    .await;
    let has_all = |r: &common::Reply, what: &str| {
        for (n, v) in passed {
            assert_eq!(r.header(n), Some(v), "{what}: {n} in {:?}", r.headers);
        }
        assert_eq!(r.header("set-cookie"), None, "{what}");
    };
    // First from the origin, then from memory.
    for round in ["miss", "hit"] {
        let r = get(proxy.addr, "/logs.tar.gz", &[]).await;
        assert!(r.status == 200 && r.body == data, "{round}");
        has_all(&r, round);
    }
    let r = get(proxy.addr, "/logs.tar.gz", &[("Range", "bytes=10-19")]).await;
    assert!(r.status == 206 && r.body == data[10..20]);
    has_all(&r, "one range");
    // Several ranges of an encoded object: the whole object, still saying it is encoded.
    let r = get(proxy.addr, "/logs.tar.gz", &[("Range", "bytes=0-9,20-29")]).await;
    assert!(r.status == 200 && r.body == data, "status {}", r.status);
    has_all(&r, "several ranges");
    // A 304 keeps the caching headers and drops the representation's.
    let r = get(proxy.addr, "/logs.tar.gz", &[("If-None-Match", "\"v1\"")]).await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("cache-control"), Some(passed[0].1));
    assert_eq!(r.header("expires"), Some(passed[4].1));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-disposition"), None);
}
