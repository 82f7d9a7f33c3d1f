//! Shared test harness: a proxy on a loopback port, a raw HTTP/1.1 client, a counting
//! in-test origin, multipart parsing and the RFC 9110 model of a range reply.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod nginx;
pub mod origin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_proxy::{DynOrigin, Proxy, ProxyConfig, ServerConfig, Store, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A proxy serving on loopback; stopped on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start(origin: Arc<dyn DynOrigin>, store: StoreConfig, config: ProxyConfig) -> Running {
    start_with(origin, store, config, ServerConfig::default()).await
}

pub async fn start_with(
    origin: Arc<dyn DynOrigin>,
    store: StoreConfig,
    config: ProxyConfig,
    server: ServerConfig,
) -> Running {
    start_store(Store::new(origin, &store), config, server).await
}

pub async fn start_store(store: Arc<Store>, config: ProxyConfig, server: ServerConfig) -> Running {
    let proxy = Proxy::new(store, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(shoal_proxy::serve::serve(
        listener,
        proxy.clone(),
        server,
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        addr,
        proxy,
        stop: Some(tx),
    }
}

pub fn store_config(chunk_size: u64) -> StoreConfig {
    let mut c = StoreConfig::default();
    c.chunk_size = chunk_size;
    c.memory = 256 << 20;
    c
}

/// A parsed reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body was as long as Content-Length said.
    pub complete: bool,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send raw bytes, read until the server closes (or 20 s), parse one reply.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("reply within 20 s");
    parse_reply(&buf, request.starts_with(b"HEAD"))
}

pub fn parse_reply(buf: &[u8], head: bool) -> Reply {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head in {:?}", String::from_utf8_lossy(buf)));
    let text = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut r = Reply {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
        complete: true,
    };
    if !head && let Some(len) = r.header("content-length") {
        let len: usize = len.parse().unwrap();
        r.complete = r.body.len() == len;
    }
    r
}

/// GET `path` with extra header lines.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers).await
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes()).await
}

/// The parts of a `multipart/byteranges` body: (Content-Range, bytes).
pub fn multipart(reply: &Reply) -> Vec<(String, Vec<u8>)> {
    let ct = reply.header("content-type").expect("content-type");
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .expect("boundary")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let body = &reply.body;
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes(), 0).expect("first boundary") + delim.len();
    loop {
        if body[pos..].starts_with(b"--") {
            break;
        }
        let head_end = find(body, b"\r\n\r\n", pos).expect("part head") + 4;
        let head = std::str::from_utf8(&body[pos..head_end]).unwrap();
        let range = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("Content-Range:")
                    .or_else(|| l.strip_prefix("content-range:"))
            })
            .expect("part Content-Range")
            .trim()
            .to_owned();
        let (first, last) = parse_content_range(&range);
        let data_end = head_end + (last - first + 1) as usize;
        parts.push((range, body[head_end..data_end].to_vec()));
        let next = find(body, delim.as_bytes(), data_end).expect("next boundary");
        assert_eq!(&body[data_end..next], b"\r\n", "part framing");
        pos = next + delim.len();
    }
    parts
}

pub fn parse_content_range(v: &str) -> (u64, u64) {
    let r = v.strip_prefix("bytes ").unwrap();
    let (range, _total) = r.split_once('/').unwrap();
    let (a, b) = range.split_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Poll `f` until it is true or `deadline` passes.
pub async fn wait_for(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// Deterministic pseudo-random content (so failures are reproducible).
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The expected reply to `range` for `data`, per RFC 9110 read literally (the model the
/// property tests compare with): None = 416, Some(None) = 200 whole, Some(Some(spans)).
pub fn expected(range: &str, data: &[u8]) -> Result<Option<Vec<(u64, u64)>>, ()> {
    match shoal_proxy::range::evaluate(range.as_bytes(), data.len() as u64) {
        shoal_proxy::range::RangeReply::Unsatisfiable => Err(()),
        shoal_proxy::range::RangeReply::Full => Ok(None),
        shoal_proxy::range::RangeReply::Partial(s) => {
            Ok(Some(s.iter().map(|s| (s.start, s.end)).collect()))
        }
    }
}

/// Check a reply against the spans it should carry.
pub fn check_reply(r: &Reply, range: &str, data: &[u8]) {
    assert!(r.complete, "truncated reply to {range}");
    match expected(range, data) {
        Err(()) => {
            assert_eq!(r.status, 416, "{range}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes */{}", data.len()).as_str())
            );
        }
        Ok(None) => {
            assert_eq!(r.status, 200, "{range}");
            assert!(r.body == data, "{range}: whole body differs");
        }
        Ok(Some(spans)) if spans.len() == 1 => {
            let (a, b) = spans[0];
            assert_eq!(r.status, 206, "{range}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {a}-{}/{}", b - 1, data.len()).as_str())
            );
            assert!(
                r.body == data[a as usize..b as usize],
                "{range}: bytes differ"
            );
        }
        Ok(Some(spans)) => {
            assert_eq!(r.status, 206, "{range}");
            let parts = multipart(r);
            assert_eq!(parts.len(), spans.len(), "{range}");
            for ((cr, bytes), (a, b)) in parts.iter().zip(spans) {
                assert_eq!(cr, &format!("bytes {a}-{}/{}", b - 1, data.len()));
                assert!(
                    bytes[..] == data[a as usize..b as usize],
                    "{range}: part bytes differ"
                );
            }
        }
    }
}
