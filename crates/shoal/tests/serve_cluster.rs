//! `shoal serve` as a static cluster: three real processes in front of one counting HTTP
//! origin, on loopback.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};

const PATH: &str = "/obj.bin";
const ETAG: &str = "\"v1\"";

/// What the origin saw.
#[derive(Default)]
struct Seen {
    heads: AtomicUsize,
    /// The Range header of every GET ("" when none).
    gets: Mutex<Vec<String>>,
}

/// An HTTP origin serving one object (HEAD, and single-range GETs with 206), counting
/// requests. Stops with its runtime when dropped.
struct Origin {
    addr: SocketAddr,
    seen: Arc<Seen>,
    _runtime: tokio::runtime::Runtime,
}

fn origin(data: Bytes) -> Origin {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let st = seen.clone();
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (st, data) = (st.clone(), data.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let reply = answer(&st, &data, &req);
                    async move { Ok::<_, Infallible>(reply) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Origin {
        addr,
        seen,
        _runtime: runtime,
    }
}

fn answer(st: &Seen, data: &Bytes, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let empty = |code| {
        Response::builder()
            .status(code)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    if req.uri().path() != PATH {
        return empty(StatusCode::NOT_FOUND);
    }
    let base = || Response::builder().header(header::ETAG, ETAG);
    if req.method() == Method::HEAD {
        st.heads.fetch_add(1, Ordering::SeqCst);
        return base()
            .header(header::CONTENT_LENGTH, data.len())
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    st.gets.lock().unwrap().push(range.clone());
    let parsed = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
    match parsed {
        Some((a, b)) if a < data.len() && a <= b => {
            let b = b.min(data.len() - 1);
            base()
                .status(StatusCode::PARTIAL_CONTENT)
                .header(
                    header::CONTENT_RANGE,
                    format!("bytes {a}-{b}/{}", data.len()),
                )
                .body(Full::new(data.slice(a..=b)))
                .unwrap()
        }
        _ => base().body(Full::new(data.clone())).unwrap(),
    }
}

/// A running `shoal serve`, killed through its handle on drop.
/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

mod common;
use common::serve::Serve as Node;

/// Starts a clustered `shoal serve` and waits until its client and peer ports listen.
fn start(args: &[String]) -> Node {
    let mut all = vec!["--admin-listen", "off"];
    all.extend(args.iter().map(String::as_str));
    common::serve::start(&all, &["peers on"])
}

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    (head[9..12].parse().unwrap(), raw[end + 4..].to_vec())
}

#[test]
fn three_nodes_load_each_chunk_from_the_origin_once() {
    let data: Bytes = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into();
    let o = origin(data.clone());
    let peers: Vec<String> = (0..3)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let nodes: Vec<Node> = peers
        .iter()
        .map(|me| {
            start(&[
                "--chunk-size".into(),
                "1MiB".into(),
                "--origin".into(),
                format!("http://{}/", o.addr),
                "--peers".into(),
                peers.join(","),
                "--self".into(),
                me.clone(),
            ])
        })
        .collect();

    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let clients: Vec<_> = (0..30)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            std::thread::spawn(move || get(addr, PATH))
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let (status, body) = c.join().unwrap();
        assert_eq!(status, 200, "client {i}");
        assert!(
            body == data,
            "client {i}: body of {} bytes differs",
            body.len()
        );
    }

    let gets = o.seen.gets.lock().unwrap().clone();
    assert_eq!(
        gets.len(),
        8,
        "one range GET per chunk cluster-wide: {gets:?}"
    );
    let mut ranges = gets.clone();
    ranges.sort();
    ranges.dedup();
    assert_eq!(ranges.len(), 8, "no chunk loaded twice: {gets:?}");
    assert!(gets.iter().all(|r| r.starts_with("bytes=")), "{gets:?}");
    let heads = o.seen.heads.load(Ordering::SeqCst);
    assert!((1..=3).contains(&heads), "{heads} HEADs");
    drop(nodes);
}

#[test]
fn self_not_in_peers_is_one_error_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "serve",
            "--origin",
            "http://127.0.0.1:1/",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--peers",
            "http://127.0.0.1:7071,http://127.0.0.1:7072",
            "--self",
            "http://127.0.0.1:7073",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("shoal: error: ")
            && err.lines().count() == 1
            && err.contains("\"http://127.0.0.1:7073\" is not in the peer list"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing was bound or printed");

    // --pooladdr without a matching --poolpeers entry is the same error.
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "serve",
            "--origin",
            "http://127.0.0.1:1/",
            "--poolpeers",
            "127.0.0.1:7071",
            "--pooladdr",
            "127.0.0.1:7072",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("shoal: error: ") && err.contains("not in the peer list"),
        "{err}"
    );
}
