//! A counting HTTP origin for cluster tests, and small HTTP/1.1 clients that talk to
//! `shoal serve` over raw TCP (so a test sees exactly what was sent and received).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The one object the origin serves.
pub const PATH: &str = "/obj.bin";
const ETAG: &str = "\"v1\"";

/// What the origin saw.
#[derive(Default)]
pub struct Seen {
    /// HEAD requests.
    pub heads: AtomicUsize,
    /// The Range header of every GET ("" when none).
    pub gets: Mutex<Vec<String>>,
}

impl Seen {
    /// Checks that the origin got exactly one range GET per chunk of `size` bytes cut in
    /// `chunk`-byte pieces, each for that chunk's bytes.
    pub fn assert_one_read_per_chunk(&self, size: usize, chunk: usize) {
        let mut gets = self.gets.lock().unwrap().clone();
        gets.sort();
        let mut want: Vec<String> = (0..size.div_ceil(chunk))
            .map(|i| format!("bytes={}-{}", i * chunk, ((i + 1) * chunk).min(size) - 1))
            .collect();
        want.sort();
        assert_eq!(
            gets.len(),
            want.len(),
            "one range GET per chunk cluster-wide, got {} for {} chunks",
            gets.len(),
            want.len()
        );
        assert_eq!(gets, want, "each chunk read once, by its own range");
    }
}

/// An HTTP origin serving one object at [`PATH`] (HEAD, and single-range GETs with 206),
/// counting requests. Stops with its runtime when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    _runtime: tokio::runtime::Runtime,
}

/// `n` bytes that differ from chunk to chunk (so a misplaced chunk is caught).
pub fn object(n: usize) -> Bytes {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into()
}

pub fn origin(data: Bytes) -> Origin {
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

/// A loopback port nothing listens on (see shoal-testkit).
pub use shoal_testkit::free_port;

/// `GET path` with extra header lines; the status and the whole body.
pub fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    (head[9..12].parse().unwrap(), raw[end + 4..].to_vec())
}

/// `GET PATH` from `addr`, comparing the body with `want` as it streams in, through one
/// fixed buffer (nothing is kept): the body must be exactly `want`. Bounded: 120 s of
/// silence fails the read.
pub fn read_and_check(addr: SocketAddr, want: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {PATH} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 << 10];
    let (mut filled, mut head_end) = (0, None);
    while head_end.is_none() {
        let n = s.read(&mut buf[filled..]).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        filled += n;
        head_end = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n");
        if head_end.is_none() && filled == buf.len() {
            return Err("response head too long".into());
        }
    }
    let end = head_end.unwrap_or(0) + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("not 200: {}", head.lines().next().unwrap_or("")));
    }
    let mut at = 0usize;
    let mut check = |bytes: &[u8]| -> Result<(), String> {
        let Some(expected) = want.get(at..at + bytes.len()) else {
            return Err(format!("more than {} bytes", want.len()));
        };
        if expected != bytes {
            return Err(format!("bytes differ in {at}..{}", at + bytes.len()));
        }
        at += bytes.len();
        Ok(())
    };
    check(&buf[end..filled])?;
    loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        check(&buf[..n])?;
    }
    if at != want.len() {
        return Err(format!("{at} of {} bytes", want.len()));
    }
    Ok(())
}

/// Polls each admin address's `GET /members` until every node lists the `n` members of
/// `peers`, alive and owning part of the ring (at most `within`).
pub fn wait_converged(admins: &[SocketAddr], peers: &[String], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let views: Vec<serde_json::Value> = admins
            .iter()
            .map(|a| serde_json::from_slice(&get(*a, "/members", "").1).unwrap())
            .collect();
        let converged = views.iter().all(|v| {
            let members = v["members"].as_array().cloned().unwrap_or_default();
            let mut urls: Vec<&str> = members
                .iter()
                .filter(|m| m["state"] == "alive" && m["share"].as_f64() > Some(0.0))
                .filter_map(|m| m["url"].as_str())
                .collect();
            urls.sort();
            let mut want: Vec<&str> = peers.iter().map(String::as_str).collect();
            want.sort();
            urls == want
        });
        if converged {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not converge within {within:?}: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sum of every sample of metric `name` on an admin port's `/metrics` whose labels
/// contain each of `labels` (`key="value"` strings); 0 when there is none.
pub fn metric(admin: SocketAddr, name: &str, labels: &[&str]) -> f64 {
    let (status, body) = get(admin, "/metrics", "");
    assert_eq!(status, 200, "/metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits at most `within` for `f` to hold, polling every 50 ms.
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
