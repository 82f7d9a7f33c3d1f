//! A PUT body is streamed to every replica at once: the replicas hold most of what the client
//! has sent while the client is still sending, and each gets the whole body, byte for byte,
//! with its length announced up front.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// A replica that takes one PUT: it records the request head and every body byte as it
/// arrives, and answers 201 once `Content-Length` bytes have come.
struct Sink {
    url: String,
    received: Arc<AtomicUsize>,
    head: Arc<Mutex<String>>,
    body: Arc<Mutex<Vec<u8>>>,
}

impl Sink {
    fn start() -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let received = Arc::new(AtomicUsize::new(0));
        let head = Arc::new(Mutex::new(String::new()));
        let body = Arc::new(Mutex::new(Vec::new()));
        let (r, h, b) = (received.clone(), head.clone(), body.clone());
        std::thread::spawn(move || {
            let Ok((mut c, _)) = l.accept() else { return };
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut raw = Vec::new();
            let end = loop {
                if let Some(e) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    break e;
                }
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            };
            let text = String::from_utf8_lossy(&raw[..end]).to_lowercase();
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            *h.lock().unwrap() = text;
            let first = raw[end + 4..].to_vec();
            r.fetch_add(first.len(), Ordering::SeqCst);
            b.lock().unwrap().extend_from_slice(&first);
            while b.lock().unwrap().len() < len {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        b.lock().unwrap().extend_from_slice(&buf[..n]);
                        r.fetch_add(n, Ordering::SeqCst);
                    }
                }
            }
            let _ = c.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
            std::thread::sleep(Duration::from_millis(200));
        });
        Sink {
            url,
            received,
            head,
            body,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_body_reaches_every_replica_while_the_client_is_still_sending() {
    const LEN: usize = 8 << 20;
    const FIRST: usize = 2 << 20;
    let sinks: Vec<Sink> = (0..3).map(|_| Sink::start()).collect();
    let cfg = config(&photosrv_config(
        "jump",
        &[sinks.iter().map(|s| s.url.clone()).collect()],
        None,
    ));
    let front = Front::start(&cfg, settings()).await;
    let data = content(7, LEN);
    let addr = front.addr;
    let received: Vec<Arc<AtomicUsize>> = sinks.iter().map(|s| s.received.clone()).collect();
    let answer = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            c,
            "PUT /big/video.bin HTTP/1.1\r\nHost: x\r\nContent-Length: {LEN}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        c.write_all(&data[..FIRST]).unwrap();
        // Before the rest is sent, each replica has most of the first part: the router
        // forwards as it reads, it does not wait for the whole body.
        let deadline = Instant::now() + Duration::from_secs(20);
        while received
            .iter()
            .any(|r| r.load(Ordering::SeqCst) < FIRST / 2)
        {
            let got: Vec<usize> = received.iter().map(|r| r.load(Ordering::SeqCst)).collect();
            assert!(
                Instant::now() < deadline,
                "replicas got {got:?} of the first {FIRST} bytes"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        c.write_all(&data[FIRST..]).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        (out, data)
    })
    .await
    .unwrap();
    let (out, data) = answer;
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    for s in &sinks {
        let head = s.head.lock().unwrap().clone();
        assert!(head.starts_with("put /big/video.bin http/1.1"), "{head}");
        assert!(head.contains(&format!("content-length: {LEN}")), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        let body = s.body.lock().unwrap();
        assert_eq!(body.len(), LEN, "{}", s.url);
        assert!(*body == data, "{}: the body differs", s.url);
    }
}

/// A replica that answers 201 after the first 64 KiB of an 8 MiB PUT and closes: it has not
/// stored the file, so the write is stored on 2 of 3, not 3, and that replica is journalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_answering_success_before_taking_the_whole_body_has_not_stored_it() {
    const LEN: usize = 8 << 20;
    let early = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            let Ok((mut c, _)) = l.accept() else { return };
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = 0;
            let mut buf = vec![0u8; 16 * 1024];
            while got < 64 * 1024 {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
            let _ = c.write_all(
                b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        });
        url
    };
    let sinks: Vec<Sink> = (0..2).map(|_| Sink::start()).collect();
    let mut urls: Vec<String> = sinks.iter().map(|s| s.url.clone()).collect();
    urls.push(early.clone());
    let cfg = config(&photosrv_config("jump", &[urls], None));
    let (front, _dir, journal) = Front::journalled(&cfg, settings()).await;
    let r = put(&front.url("/big/early.bin"), content(3, LEN)).await;
    assert_eq!(r.status, http::StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers.get("x-shoal-stored").unwrap(), "2/3");
    for s in &sinks {
        assert_eq!(s.body.lock().unwrap().len(), LEN);
    }
    let (entries, _) = shoal_router::journal::read(&journal).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].replica, early);
}

/// A slow link in front of `to`: the request bytes of each connection reach it `delay` late
/// (the answers come straight back). A replica whose disk or network is slower than the
/// others', as nginx cannot be made to be.
fn late_link(to: std::net::SocketAddr, delay: Duration) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(node) = TcpStream::connect(to) else {
                return;
            };
            let (mut from_node, mut to_client) =
                (node.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut from_node, &mut to_client));
            let (mut from_client, mut to_node) = (client, node);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let _ = std::io::copy(&mut from_client, &mut to_node);
            });
        }
    });
    url
}

/// nginx makes ETag and Last-Modified from the file's mtime, the time its last body byte came
/// unless the PUT has a Date. Replicas that finish a PUT in different seconds would each give
/// their own validators, and a client or cache revalidating gets 200s where 304s were due:
/// the fan-out gives every replica one Date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_of_a_put_gives_the_same_last_modified_and_etag() {
    if !nginx_or_skip("one mtime") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let slow = late_link(nodes[2].addr(), Duration::from_millis(1200));
    let shard = vec![nodes[0].url(), nodes[1].url(), slow];
    let cfg = config(&photosrv_config("jump", &[shard], None));
    let front = Front::start(&cfg, settings()).await;
    let r = put(&front.url("/t/same.jpg"), content(4, 10_000)).await;
    assert_eq!(r.headers["x-shoal-stored"], "3/3", "{:?}", r.body);
    let mut seen = Vec::new();
    for n in &nodes {
        let url = format!("{}/t/same.jpg", n.url());
        let r = call(http::Method::HEAD, &url, &[], vec![]).await;
        seen.push((
            r.headers["last-modified"].clone(),
            r.headers["etag"].clone(),
        ));
    }
    assert!(seen.iter().all(|v| *v == seen[0]), "{seen:?}");
}
