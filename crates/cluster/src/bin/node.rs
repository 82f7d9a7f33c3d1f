//! `shoal-cluster-node`: one cluster node with a deterministic loader, for tests and demos
//! until `shoal serve` exists. Not the product: the `shoal` binary will own the flags.
//!
//! ```text
//! shoal-cluster-node --self URL --peers URL,URL,... --admin HOST:PORT [--protocol P]
//! ```
//!
//! The group `things` loads `value-of:<key>` (keys starting with `missing/` do not exist).
//! The admin port answers `GET /health`, `GET /get?hex=<key>` (200 + value, 404, or 502),
//! `GET /loads` (loads so far) and `GET /loads?hex=<key>`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use shoal_cache::{Group, LoadError, Loaded, Loader};
use shoal_cluster::{Cluster, Protocol, StaticMembership};
use tokio::net::TcpListener;

#[derive(Default)]
struct Counting {
    total: AtomicUsize,
    per_key: Mutex<HashMap<Vec<u8>, usize>>,
}

#[derive(Clone, Default)]
struct Loads(Arc<Counting>);

impl Loader for Loads {
    async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
        self.0.total.fetch_add(1, Ordering::SeqCst);
        *self.0.per_key.lock().entry(key.to_vec()).or_default() += 1;
        if key.starts_with(b"missing/") {
            return Err(LoadError::NotFound);
        }
        Ok(Loaded::new([&b"value-of:"[..], &key].concat()))
    }
}

struct Args {
    self_url: String,
    peers: String,
    admin: SocketAddr,
    protocol: Protocol,
}

fn parse_args() -> Result<Args, String> {
    let mut flags: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag:?}"))?;
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        flags.insert(name.to_owned(), value);
    }
    let mut take = |name: &str| {
        flags
            .remove(name)
            .ok_or_else(|| format!("--{name} is required"))
    };
    let args = Args {
        self_url: take("self")?,
        peers: take("peers")?,
        admin: take("admin")?
            .parse()
            .map_err(|e| format!("--admin: expected host:port: {e}"))?,
        protocol: match flags.remove("protocol") {
            Some(p) => p.parse().map_err(|e| format!("--protocol: {e}"))?,
            None => Protocol::Native,
        },
    };
    if let Some(extra) = flags.keys().next() {
        return Err(format!("unknown flag --{extra}"));
    }
    Ok(args)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn admin(req: Request<Incoming>, group: Arc<Group>, loads: Loads) -> Response<Full<Bytes>> {
    let key = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("hex="))
        .map(unhex);
    match (req.uri().path(), key) {
        ("/health", _) => reply(StatusCode::OK, "ok"),
        ("/get", Some(Some(key))) => match group.get(&key).await {
            Ok(v) => reply(StatusCode::OK, v),
            Err(LoadError::NotFound) => reply(StatusCode::NOT_FOUND, "not found"),
            Err(e) => reply(StatusCode::BAD_GATEWAY, e.to_string()),
        },
        ("/loads", None) => reply(
            StatusCode::OK,
            loads.0.total.load(Ordering::SeqCst).to_string(),
        ),
        ("/loads", Some(Some(key))) => {
            let n = loads.0.per_key.lock().get(&key).copied().unwrap_or(0);
            reply(StatusCode::OK, n.to_string())
        }
        _ => reply(StatusCode::BAD_REQUEST, "bad request"),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let membership =
        StaticMembership::parse(&args.self_url, &args.peers).map_err(|e| e.to_string())?;
    let cluster = Cluster::builder(args.self_url.as_str())
        .protocol(args.protocol)
        .build_following(&membership)
        .map_err(|e| e.to_string())?;
    let loads = Loads::default();
    let group = cluster
        .group(Group::builder("things", 64 << 20), loads.clone())
        .map_err(|e| e.to_string())?;
    let peer_addr: SocketAddr = membership
        .self_url()
        .authority()
        .parse()
        .map_err(|e| format!("--self: the host must be an IP address here: {e}"))?;
    let _server = cluster.serve(peer_addr).await.map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(args.admin)
        .await
        .map_err(|e| format!("binding --admin {}: {e}", args.admin))?;
    loop {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let (group, loads) = (group.clone(), loads.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (group, loads) = (group.clone(), loads.clone());
                async move { Ok::<_, Infallible>(admin(req, group, loads).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shoal-cluster-node: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shoal-cluster-node: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-cluster-node: {e}");
            ExitCode::from(2)
        }
    }
}
