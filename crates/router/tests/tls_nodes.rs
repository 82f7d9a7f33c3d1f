//! `https://` storage nodes: nginx serving WebDAV over TLS with a certificate from a private
//! CA, trusted through `storage_ca`. Writes (hyper's client), reads (the router's own HTTP/1.1
//! client) and health checks go over TLS; a router that does not trust the CA gets errors,
//! never plain text on a TLS port.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use http::{Method, StatusCode};
use shoal_router::{Router, Settings};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reads_and_health_checks_reach_https_nodes() {
    if !nginx_or_skip("tls_nodes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let nodes: Vec<Node> = (0..3).map(|_| Node::start_with_tls(&cert, &key)).collect();
    let shards = vec![nodes.iter().map(Node::https_url).collect()];
    let cfg = config(&photosrv_config("jump", &shards, None));
    let trusting = Settings {
        storage_ca: Some(ca.clone()),
        ..settings()
    };
    let front = Front::start(&cfg, trusting).await;

    let body = content(7, 300_000);
    let r = put(&front.url("/tls/a.bin"), body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers["x-shoal-stored"], "3/3");
    assert!(
        nodes
            .iter()
            .all(|n| n.read("/tls/a.bin").as_deref() == Some(&body[..]))
    );
    for _ in 0..3 {
        // Again and again: the pooled TLS connections are used once more.
        let r = get(&front.url("/tls/a.bin")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body == body, "{} bytes", r.body.len());
    }
    let r = call(
        Method::GET,
        &front.url("/tls/a.bin"),
        &[("range", "bytes=10-19")],
        vec![],
    )
    .await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &body[10..20])
    );

    front.router.check_health_once().await;
    let status = front.router.status();
    let healthy = status.rings[0].shards[0]
        .replicas
        .iter()
        .filter(|r| r.healthy)
        .count();
    assert_eq!(healthy, 3, "{status:?}");

    // Trusting the system's CAs alone: the nodes' certificate is refused, on every path.
    let front = Front::start(&cfg, settings()).await;
    let r = get(&front.url("/tls/a.bin")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    let why = String::from_utf8_lossy(&r.body);
    assert!(why.contains("TLS handshake"), "{why}");
    let r = put(&front.url("/tls/b.bin"), body.clone()).await;
    assert!(r.status.is_server_error(), "{:?}", r.status);
    assert!(nodes.iter().all(|n| !n.has("/tls/b.bin")));
    front.router.check_health_once().await;
    let status = front.router.status();
    assert!(
        status.rings[0].shards[0]
            .replicas
            .iter()
            .all(|r| !r.healthy),
        "{status:?}"
    );
}

#[test]
fn a_storage_ca_that_cannot_be_read_is_an_error_naming_it() {
    let cfg = config(&photosrv_config(
        "jump",
        &[vec!["https://127.0.0.1:1".to_owned()]],
        None,
    ));
    let missing = Settings {
        storage_ca: Some(PathBuf::from("/nonexistent/ca.pem")),
        ..settings()
    };
    let e = Router::new(&cfg, missing).unwrap_err().to_string();
    assert!(
        e.contains("storage_ca") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
}

/// Nodes that accept TCP and never answer the TLS handshake fail a write within the connect
/// timeout (with the handshake named), not after the write timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_fails_within_the_connect_timeout() {
    let hangs: Vec<Hang> = (0..3).map(|_| Hang::start()).collect();
    let shards = vec![
        hangs
            .iter()
            .map(|h| format!("https://127.0.0.1:{}", h.port))
            .collect(),
    ];
    let cfg = config(&photosrv_config("jump", &shards, None));
    let s = Settings {
        write_timeout: std::time::Duration::from_secs(3600),
        ..settings()
    };
    let front = Front::start(&cfg, s).await;
    let url = front.url("/tls/c.bin");
    let write = put(&url, vec![1u8; 1000]);
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), write)
        .await
        .expect("the write waited for its write timeout, not the connect timeout");
    assert!(r.status.is_server_error(), "{:?}", r.status);
    let why = String::from_utf8_lossy(&r.body);
    assert!(why.contains("TLS handshake not done within"), "{why}");
}

/// Reads keep their TLS connections to a node alive: six GETs in a row reach it on one
/// connection. (One thread: the read client pools per thread, and on a work-stealing runtime
/// a request may end on another thread than it began, so more connections would be fair.)
#[tokio::test(flavor = "current_thread")]
async fn reads_reuse_tls_connections() {
    if !nginx_or_skip("tls_nodes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let node = Node::start_with_tls_logging_requests(&cert, &key);
    let shards = vec![vec![node.https_url()]];
    let cfg = config(&photosrv_config("jump", &shards, None));
    let s = Settings {
        storage_ca: Some(ca),
        ..settings()
    };
    let front = Front::start(&cfg, s).await;
    let body = content(9, 5000);
    assert_eq!(
        put(&front.url("/tls/r.bin"), body.clone()).await.status,
        StatusCode::CREATED
    );
    for _ in 0..6 {
        let r = get(&front.url("/tls/r.bin")).await;
        assert!(r.status == StatusCode::OK && r.body == body);
    }
    // nginx logs a request once it is done; the last GET's line may lag its reply a little.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let gets = loop {
        let lines = node.requests();
        let conns = node.connections();
        let gets: Vec<String> = lines
            .iter()
            .zip(&conns)
            .filter(|(l, _)| l.starts_with("GET /tls/r.bin"))
            .map(|(_, c)| c.clone())
            .collect();
        if gets.len() == 6 || std::time::Instant::now() > end {
            break gets;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(gets.len(), 6, "{:?}", node.requests());
    assert!(
        gets.iter().all(|c| *c == gets[0]),
        "nginx's connection of each GET: {gets:?}"
    );
}
