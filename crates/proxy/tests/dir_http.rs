//! The HTTP front over a DirOrigin on a real loopback socket: range replies against RFC 9110,
//! conditional requests, HEAD, and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shoal_proxy::{DirOrigin, ProxyConfig, ServerConfig};

const CS: u64 = 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    files: Vec<(String, Vec<u8>)>,
    server: Running,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0, 1, CS - 1, CS, CS + 1, 3 * CS + 17, 10 * CS];
    let files: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let name = format!("f{n}.bin");
            let data = content(n as usize, i as u64);
            std::fs::write(dir.path().join(&name), &data).unwrap();
            (name, data)
        })
        .collect();
    let origin = Arc::new(DirOrigin::new(dir.path()).unwrap());
    let mut pc = ProxyConfig::default();
    pc.max_parallel_chunks = 3;
    let server = start(origin, store_config(CS), pc).await;
    Fixture {
        _dir: dir,
        files,
        server,
    }
}

fn range_header(size: u64) -> impl Strategy<Value = String> {
    let pos = prop_oneof![
        0..=size + 2,
        Just(0),
        Just(size.saturating_sub(1)),
        Just(size)
    ];
    let spec = prop_oneof![
        (pos.clone(), pos.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        pos.clone().prop_map(|a| format!("{a}-")),
        pos.prop_map(|n| format!("-{n}")),
    ];
    prop::collection::vec(spec, 1..5).prop_map(|v| format!("bytes={}", v.join(",")))
}

#[test]
fn range_replies_over_http_are_rfc_9110s() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fx = rt.block_on(fixture());
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..fx.files.len()).prop_flat_map(|i| {
        let size = fx.files[i].1.len() as u64;
        (Just(i), range_header(size))
    });
    runner
        .run(&strategy, |(i, range)| {
            let (name, data) = &fx.files[i];
            let r = rt.block_on(get(
                fx.server.addr,
                &format!("/{name}"),
                &[("Range", &range)],
            ));
            check_reply(&r, &range, data);
            assert_eq!(r.header("accept-ranges"), Some("bytes"));
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_objects_heads_and_conditionals() {
    let fx = fixture().await;
    let addr = fx.server.addr;
    let (name, data) = &fx.files[6];
    let path = format!("/{name}");

    let head = request(addr, "HEAD", &path, &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
    // HEAD reads metadata only: no chunk was fetched.
    assert_eq!(fx.server.proxy.store().chunk_group().stats().loads, 0);

    let first = get(addr, &path, &[]).await;
    assert_eq!((first.status, first.header("x-cache")), (200, Some("MISS")));
    assert!(first.body == *data);
    let etag = first.header("etag").unwrap().to_owned();
    let lm = first.header("last-modified").unwrap().to_owned();
    let again = get(addr, &path, &[("Range", "bytes=0-10")]).await;
    assert_eq!(again.header("x-cache"), Some("HIT"));

    assert_eq!(
        get(addr, &path, &[("If-None-Match", &etag)]).await.status,
        304
    );
    assert_eq!(
        get(addr, &path, &[("If-Modified-Since", &lm)]).await.status,
        304
    );
    assert_eq!(
        get(addr, &path, &[("If-None-Match", "\"other\"")])
            .await
            .status,
        200
    );
    let r = get(addr, &path, &[("Range", "bytes=0-9"), ("If-Range", &etag)]).await;
    assert_eq!((r.status, r.body.len()), (206, 10));
    let r = get(
        addr,
        &path,
        &[("Range", "bytes=0-9"), ("If-Range", "\"old\"")],
    )
    .await;
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    let r = get(addr, &path, &[("Range", "bytes=0-9"), ("If-Range", &lm)]).await;
    assert_eq!(r.status, 206);

    // Partly cached: chunk 0 is in memory, the last chunk of another file is not.
    let (name3, _) = &fx.files[5];
    get(addr, &format!("/{name3}"), &[("Range", "bytes=0-0")]).await;
    let r = get(addr, &format!("/{name3}"), &[]).await;
    assert_eq!(r.header("x-cache"), Some("PARTIAL"));
    assert_eq!(get(addr, "/missing.bin", &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_proper_status() {
    let fx = fixture().await;
    let addr = fx.server.addr;
    let (name, data) = &fx.files[6];
    let path = format!("/{name}");

    for p in [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/a/..%2f..%2fetc/passwd",
        "/.%2E/x",
    ] {
        let r = get(addr, p, &[]).await;
        assert_eq!(r.status, 400, "{p}");
    }
    // An absolute-form target is never proxied anywhere: only its path is used.
    let r = raw(
        addr,
        format!(
            "GET http://example.invalid{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body == *data);

    let r = request(addr, "POST", &path, &[("Content-Length", "0")]).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(request(addr, "DELETE", &path, &[]).await.status, 405);
    assert_eq!(request(addr, "BREW", &path, &[]).await.status, 405);

    // A 10,000-part Range: over the default 16 KiB head limit it is a 431; a server that
    // accepts 256 KiB heads parses at most 100 specs and sends the whole object.
    let huge = format!("bytes={}", vec!["1-1"; 10_000].join(","));
    assert_eq!(get(addr, &path, &[("Range", &huge)]).await.status, 431);
    let mut big_heads = ServerConfig::default();
    big_heads.max_header_bytes = 256 << 10;
    let origin = Arc::new(DirOrigin::new(fx._dir.path()).unwrap());
    let lenient = start_with(origin, store_config(CS), ProxyConfig::default(), big_heads).await;
    let r = get(lenient.addr, &path, &[("Range", &huge)]).await;
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    assert_eq!(
        get(addr, &path, &[("Range", "bytes=oops")]).await.status,
        416
    );

    let big = "x".repeat(64 << 10);
    let r = get(addr, &path, &[("X-Big", &big)]).await;
    assert_eq!(r.status, 431);

    let r = raw(
        addr,
        format!("GET {path} HTTP/1.0\r\nRange: bytes=0-4\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..5]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_object_serves_its_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(100 << 20, 7);
    std::fs::write(dir.path().join("big"), &data).unwrap();
    let origin = Arc::new(DirOrigin::new(dir.path()).unwrap());
    let server = start(origin, store_config(1 << 20), ProxyConfig::default()).await;
    let n = data.len() as u64;
    for range in [
        "bytes=0-0".to_string(),
        format!("bytes={}-{}", (50 << 20) - 3, (50 << 20) + 3),
        format!("bytes=-{}", 3 << 20),
        format!("bytes=0-99,{}-{}", n / 2, n / 2 + 99),
        format!("bytes={}-", n - 1),
    ] {
        let r = get(server.addr, "/big", &[("Range", &range)]).await;
        check_reply(&r, &range, &data);
    }
    let whole = get(server.addr, "/big", &[]).await;
    assert!(whole.complete && whole.body == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_serves_ranges() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let fx = fixture().await;
    let (name, data) = &fx.files[6];
    let stream = tokio::net::TcpStream::connect(fx.server.addr)
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for range in ["bytes=0-9", "bytes=1000-3000", "bytes=-5"] {
        let req = http::Request::get(format!("http://{}/{name}", fx.server.addr))
            .header("range", range)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 206);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let spans = expected(range, data).unwrap().unwrap();
        let (a, b) = spans[0];
        assert!(body[..] == data[a as usize..b as usize], "{range}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), b"x").unwrap();
    let mut sc = ServerConfig::default();
    sc.header_read_timeout = std::time::Duration::from_millis(300);
    let origin = Arc::new(DirOrigin::new(dir.path()).unwrap());
    let server = start_with(origin, store_config(CS), ProxyConfig::default(), sc).await;
    for partial in [&b""[..], b"GET /x HTTP/1.1\r\nHost: a\r\n"] {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(partial).await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "connection still open after 5 s ({partial:?})"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        let text = String::from_utf8_lossy(&buf);
        assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), b"x").unwrap();
    let mut sc = ServerConfig::default();
    sc.max_connections = 1;
    let origin = Arc::new(DirOrigin::new(dir.path()).unwrap());
    let server = start_with(origin, store_config(CS), ProxyConfig::default(), sc).await;
    // The one slot is taken by a connection that has sent half a request.
    let mut hog = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    hog.write_all(b"GET /x HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let addr = server.addr;
    let waiting = tokio::spawn(async move { get(addr, "/x", &[]).await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a second connection was served past the limit"
    );
    drop(hog);
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("served once the slot freed")
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_after_send_timeout() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), content(64 << 20, 9)).unwrap();
    std::fs::write(dir.path().join("x"), b"x").unwrap();
    let mut sc = ServerConfig::default();
    sc.max_connections = 1;
    sc.send_timeout = std::time::Duration::from_millis(300);
    let origin = Arc::new(DirOrigin::new(dir.path()).unwrap());
    let server = start_with(origin, store_config(1 << 20), ProxyConfig::default(), sc).await;
    // Takes the only slot, asks for 64 MiB and never reads a byte.
    let mut stuck = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stuck
        .write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        get(server.addr, "/x", &[]),
    )
    .await
    .expect("the stuck client's slot was freed");
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(stuck);
}
