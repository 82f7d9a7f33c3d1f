//! Bodies that stall midway: a replica that stops sending a GET body, a replica that stops
//! taking a PUT body, and a client that stops sending one. None may hold a request for ever.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shoal_router::{Settings, journal};
use support::*;

fn stalling() -> Settings {
    Settings {
        body_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_secs(60),
        ..settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stalling_mid_response_ends_the_client_response() {
    let stall = Stall::start(1 << 20, 64 * 1024, 0);
    let cfg = config(&photosrv_config("jump", &[vec![stall.url()]], None));
    let front = Front::start(&cfg, stalling()).await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = Request::get(front.url("/big.bin"))
        .body(Empty::new())
        .unwrap();
    let t = Instant::now();
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), async {
        let resp = client.request(req).await.unwrap();
        let status = resp.status();
        (
            status,
            resp.into_body().collect().await.map(|b| b.to_bytes()),
        )
    })
    .await
    .expect("the client was held past the body timeout");
    // The headers had gone out: the status is the replica's, the body ends early.
    assert_eq!(status, StatusCode::OK);
    match body {
        Err(_) => {}
        Ok(b) => assert!(b.len() < 1 << 20, "a stalled body cannot be complete"),
    }
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "cut off before the timeout"
    );
    assert_eq!(front.router.status().body_timeouts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stalling_mid_put_fails_and_the_quorum_carries_the_write() {
    if !nginx_or_skip("stalled PUT replica") {
        return;
    }
    // Large enough that the stalled node's socket buffers and the fan-out channel fill up.
    let body = content(5, 32 << 20);
    let stall = Stall::start(0, 0, 64 * 1024);
    let nodes: Vec<Node> = (0..2).map(|_| Node::start()).collect();
    let shard = vec![nodes[0].url(), stall.url(), nodes[1].url()];
    let cfg = config(&photosrv_config("jump", &[shard], None));
    let (front, _dir, jpath) = Front::journalled(&cfg, stalling()).await;
    let r = put(&front.url("/s/big.bin"), body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers["x-shoal-stored"], "2/3");
    for n in &nodes {
        assert!(
            n.read("/s/big.bin").unwrap() == body,
            "exact bytes on {}",
            n.url()
        );
    }
    let (entries, _) = journal::read(&jpath).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].replica, stall.url());
    assert_eq!(front.router.status().body_timeouts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_mid_put_gets_408_and_nothing_is_stored() {
    if !nginx_or_skip("stalled PUT client") {
        return;
    }
    let node = Node::start();
    let cfg = config(&photosrv_config("jump", &[vec![node.url()]], None));
    let front = Front::start(&cfg, stalling()).await;
    let addr = front.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(
            b"PUT /c/half.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
        )
        .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the answer's body has arrived or the router closes.
        while !String::from_utf8_lossy(&out).contains("no data for") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).to_string()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(!node.has("/c/half.bin"), "a torn body was stored");
    assert_eq!(front.router.status().body_timeouts, 1);
}

/// A replica that refuses the connection before the body has come: the write fails with the
/// refusal as its reason, not as a body stall of that replica, and no body timeout is
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_replica_is_failed_for_the_refusal_not_a_body_stall() {
    if !nginx_or_skip("refused PUT replica") {
        return;
    }
    let node = Node::start();
    let closed = format!("http://127.0.0.1:{}", shoal_testkit::free_port());
    let cfg = config(&photosrv_config("jump", &[vec![node.url(), closed]], None));
    let front = Front::start(
        &cfg,
        Settings {
            write_quorum: shoal_router::Quorum::Count(1),
            ..stalling()
        },
    )
    .await;
    let addr = front.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(b"PUT /c/late.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
            .unwrap();
        // The refusal comes at once; the body after it, well within the body timeout.
        std::thread::sleep(Duration::from_millis(150));
        c.write_all(b"0123456789").unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(
        node.read("/c/late.bin").as_deref(),
        Some(&b"0123456789"[..])
    );
    assert_eq!(front.router.status().body_timeouts, 0, "{answer}");
}

/// Sends `head` and `part` of a chunked PUT to `addr`, then either hangs up (`hang_up`) or
/// waits for the router's answer; returns what the router answered (empty after a hang-up).
fn torn_chunked_put(addr: std::net::SocketAddr, path: &str, hang_up: bool) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(b"a\r\n0123456789\r\n").unwrap();
    if hang_up {
        // Let the chunk reach the replicas before the client goes away.
        std::thread::sleep(Duration::from_millis(200));
        drop(c);
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("no data for") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Polls for 1.5 s that no node has stored `path`.
async fn never_stored(nodes: &[Node], path: &str) {
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        for n in nodes {
            assert!(
                !n.has(path),
                "{} stored a torn chunked body: {:?}",
                n.url(),
                n.read(path)
                    .map(|b| String::from_utf8_lossy(&b).to_string())
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A chunked PUT (no Content-Length) whose client hangs up midway: the replicas' requests
/// must be aborted, not ended with a last chunk, or nginx stores the part as the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_mid_chunked_put_stores_nothing() {
    if !nginx_or_skip("torn chunked PUT") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let shard = nodes.iter().map(Node::url).collect();
    let cfg = config(&photosrv_config("jump", &[shard], None));
    let front = Front::start(&cfg, stalling()).await;
    let addr = front.addr;
    for i in 0..5 {
        let path = format!("/c/torn{i}.bin");
        let p = path.clone();
        tokio::task::spawn_blocking(move || torn_chunked_put(addr, &p, true))
            .await
            .unwrap();
        never_stored(&nodes, &path).await;
    }
    // A whole chunked body still goes through, last chunk and all.
    let answer = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(b"PUT /c/whole.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\na\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    for n in &nodes {
        assert_eq!(
            n.read("/c/whole.bin").as_deref(),
            Some(&b"0123456789abc"[..])
        );
    }
}

/// The same for a chunked PUT whose client stalls: it gets 408 and no replica keeps the part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_mid_chunked_put_gets_408_and_nothing_is_stored() {
    if !nginx_or_skip("stalled chunked PUT") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let shard = nodes.iter().map(Node::url).collect();
    let cfg = config(&photosrv_config("jump", &[shard], None));
    let front = Front::start(&cfg, stalling()).await;
    let addr = front.addr;
    let answer = tokio::task::spawn_blocking(move || torn_chunked_put(addr, "/c/stall.bin", false))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    never_stored(&nodes, "/c/stall.bin").await;
}

/// A client that sends a whole PUT and then hangs up before the answer (its own timeout ran
/// out while a replica hung): the replicas that took the body store it, so the write must
/// still run to its end and journal the replica that missed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_after_its_body_does_not_stop_the_write_being_journalled() {
    if !nginx_or_skip("client gone before the answer") {
        return;
    }
    let hang = Hang::start();
    let nodes: Vec<Node> = (0..2).map(|_| Node::start()).collect();
    let shard = vec![nodes[0].url(), hang.url(), nodes[1].url()];
    let cfg = config(&photosrv_config("jump", &[shard], None));
    let dir = tempfile::tempdir().unwrap();
    let jpath = dir.path().join("journal");
    let front = Front::start(
        &cfg,
        Settings {
            journal: Some(jpath.clone()),
            write_timeout: Duration::from_secs(2),
            ..stalling()
        },
    )
    .await;
    let addr = front.addr;
    tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"PUT /g/gone.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let (entries, _) = journal::read(&jpath).unwrap();
        if !entries.is_empty() || Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for n in &nodes {
        assert_eq!(n.read("/g/gone.jpg").as_deref(), Some(&b"0123456789"[..]));
    }
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.replica.as_str(), std::str::from_utf8(&e.path).unwrap()))
        .collect();
    assert_eq!(got, [(hang.url().as_str(), "/g/gone.jpg")]);
}
