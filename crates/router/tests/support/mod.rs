//! Shared test harness: nginx WebDAV storage nodes on loopback, a hanging node, a router on a
//! real socket, and a small HTTP client. Every process is killed through its own child handle
//! when its guard drops; every wait polls with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shoal_router::{RouteConfig, Router, Settings, server};
#[allow(unused_imports)]
pub use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};

/// A node that accepts connections and never answers.
pub struct Hang {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hang {
    pub fn start() -> Hang {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in l.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = conn {
                    held.push(c);
                }
            }
        });
        Hang {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Hang {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn config(text: &str) -> RouteConfig {
    let root = shoal_router::simpleconf::parse(text, Path::new("test.cfg")).unwrap();
    RouteConfig::from_photosrv(&root, "test").unwrap()
}

/// Settings for tests: no background health checks (tests call them when they mean to).
pub fn settings() -> Settings {
    Settings {
        health_interval: None,
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_secs(10),
        ..Settings::default()
    }
}

/// A router served on a loopback port; stops when dropped.
pub struct Front {
    pub router: Router,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Front {
    /// A router on `cfg` with `settings`, journalling to a file in a fresh temporary
    /// directory: the router, the directory (removed when dropped) and the journal's path.
    pub async fn journalled(
        cfg: &RouteConfig,
        settings: Settings,
    ) -> (Front, tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let settings = Settings {
            journal: Some(path.clone()),
            ..settings
        };
        (Front::start(cfg, settings).await, dir, path)
    }

    pub async fn start(cfg: &RouteConfig, settings: Settings) -> Front {
        let router = Router::new(cfg, settings).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let r = router.clone();
        tokio::spawn(async move {
            server::serve(l, r, server::ServerLimits::default(), async move {
                let _ = rx.await;
            })
            .await
        });
        Front {
            router,
            addr,
            stop: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Three nginx nodes, one shard made of them, and a router journalling to a file in a fresh
/// temporary directory: the nodes, the router, the directory and the journal's path.
pub async fn journalled_shard_of_three() -> (Vec<Node>, Front, tempfile::TempDir, PathBuf) {
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let cfg = config(&photosrv_config(
        "jump",
        &[nodes.iter().map(Node::url).collect()],
        None,
    ));
    let (front, dir, path) = Front::journalled(&cfg, settings()).await;
    (nodes, front, dir, path)
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One request with a 20s deadline.
pub async fn call(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).unwrap();
    let fut = async {
        let resp = client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("{url}: no answer within 20s"))
}

pub async fn get(url: &str) -> Reply {
    call(Method::GET, url, &[], Bytes::new()).await
}

pub async fn put(url: &str, body: impl Into<Bytes>) -> Reply {
    call(Method::PUT, url, &[], body).await
}

/// Deterministic bytes for a file: `len` bytes seeded by `seed`.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
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

/// A replica that stalls mid-body: a GET gets its headers (`Content-Length: len`) and the
/// first `sent` bytes, then nothing; a PUT has its headers and first `take` body bytes read,
/// then nothing more. Connections are held open until the guard drops.
pub struct Stall {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stall {
    pub fn start(len: usize, sent: usize, take: usize) -> Stall {
        use std::io::{Read, Write};
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for conn in l.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let s = s.clone();
                conns.push(std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let mut head = Vec::new();
                    let mut buf = [0u8; 16 * 1024];
                    let mut body_read = 0usize;
                    // Headers (and whatever body arrives with them), then up to `take` bytes.
                    while Instant::now() < deadline && !s.load(Ordering::Relaxed) {
                        let end = head.windows(4).position(|w| w == b"\r\n\r\n");
                        if let Some(e) = end {
                            body_read = head.len() - e - 4;
                            break;
                        }
                        match c.read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                            Err(_) => continue,
                        }
                    }
                    if head.starts_with(b"GET") {
                        let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n")
                            .into_bytes();
                        out.extend(content(99, sent));
                        let _ = c.write_all(&out);
                    } else {
                        while body_read < take && Instant::now() < deadline {
                            match c.read(&mut buf[..(take - body_read).min(16 * 1024)]) {
                                Ok(0) => return,
                                Ok(n) => body_read += n,
                                Err(_) if s.load(Ordering::Relaxed) => return,
                                Err(_) => {}
                            }
                        }
                    }
                    while Instant::now() < deadline && !s.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }));
            }
            for t in conns {
                let _ = t.join();
            }
        });
        Stall {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, as files: (CA, certificate, key).
pub fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    (
        write("ca.pem", ca.pem()),
        write("node.pem", cert.pem()),
        write("node.key", key.serialize_pem()),
    )
}
