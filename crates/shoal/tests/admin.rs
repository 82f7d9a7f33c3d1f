//! The admin server on a real loopback socket.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use shoal::{admin::Admin, shutdown::Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: shoal\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_string(), body.to_string())
}

#[tokio::test]
async fn admin_serves_health_status_and_metrics_then_drains_on_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let admin = Admin::new("test")
        .with_status(|| serde_json::json!({ "members": 3 }))
        .with_collector(|| metrics::gauge!("shoal_test_collected_items").set(42.0));
    let server = tokio::spawn(admin.serve(listener, shutdown.clone()));

    let (status, _, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (status, _, body) = http_get(addr, "/status").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["door"], "test");
    assert_eq!(v["members"], 3);
    assert!(v["uptime_seconds"].is_u64());

    let (status, head, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    assert!(body.contains("shoal_test_collected_items 42"), "{body}");

    let (status, _, _) = http_get(addr, "/nope").await;
    assert_eq!(status, 404);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("admin server stops after shutdown")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener is closed"
    );
}

#[tokio::test]
async fn group_stats_become_prometheus_metrics() {
    let group = shoal_cache::Group::builder("photos", 1 << 20).build(shoal_cache::loader_fn(
        |key: bytes::Bytes| async move { Ok(shoal_cache::Loaded::new(key)) },
    ));
    group.get(b"a").await.unwrap();
    group.get(b"a").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let admin = Admin::new("test").with_collector(shoal::group_metrics::collector(group));
    let server = tokio::spawn(admin.serve(listener, shutdown.clone()));

    let (_, _, body) = http_get(addr, "/metrics").await;
    for line in [
        r#"shoal_cache_gets_total{group="photos"} 2"#,
        r#"shoal_cache_loads_total{group="photos"} 1"#,
        r#"shoal_cache_hits_total{group="photos",tier="main"} 1"#,
        r#"shoal_cache_items{group="photos",tier="main"} 1"#,
    ] {
        assert!(body.lines().any(|l| l == line), "{line} not in:\n{body}");
    }
    shutdown.trigger();
    server.await.unwrap().unwrap();
}
