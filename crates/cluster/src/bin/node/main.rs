//! `shoal-cluster-node`: one cluster node with a deterministic loader, for tests and demos
//! until `shoal serve` exists. Not the product: the `shoal` binary will own the flags.
//!
//! ```text
//! shoal-cluster-node --self URL --admin HOST:PORT [--protocol P] [--algorithm A]
//!     [--handoff yes] [--drain-ms MS] [--fetch-timeout-ms MS]
//!     ( --peers URL,URL,...
//!     | --gossip HOST:PORT [--seeds HOST:PORT,...] [--gossip-key K] [--fast-gossip yes]
//!     | --coord ETCD_URL --cluster DIR [--etcd-ttl SECS] )
//! ```
//!
//! The group `things` loads `value-of:<key>` (keys starting with `missing/` do not exist).
//! The admin port answers `GET /health`, `GET /get?hex=<key>` (200 + value, 404, or 502),
//! `GET /loads` (loads so far), `GET /loads?hex=<key>` and `GET /members` (the JSON that
//! `shoal members` prints). SIGTERM leaves the gossip cluster gracefully, keeps serving peers
//! for `--drain-ms` (default 0), then exits. `--handoff yes` turns warm handoff on.

mod members;

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
use shoal_cluster::{Algorithm, Cluster, Protocol};
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
    admin: SocketAddr,
    protocol: Protocol,
    algorithm: Algorithm,
    /// Warm handoff on (`--handoff yes`).
    handoff: bool,
    /// How long to keep serving peers after leaving, on SIGTERM (`--drain-ms`, default 0).
    drain: std::time::Duration,
    /// How long a peer has to answer (`--fetch-timeout-ms`, default 5 s).
    fetch_timeout: Option<std::time::Duration>,
    /// Membership flags, read by [`members::Source::from_flags`].
    rest: HashMap<String, String>,
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
        admin: take("admin")?
            .parse()
            .map_err(|e| format!("--admin: expected host:port: {e}"))?,
        protocol: match flags.remove("protocol") {
            Some(p) => p.parse().map_err(|e| format!("--protocol: {e}"))?,
            None => Protocol::Native,
        },
        algorithm: match flags.remove("algorithm") {
            Some(a) => a.parse().map_err(|e| format!("--algorithm: {e}"))?,
            None => Algorithm::Groupcache,
        },
        handoff: flags.remove("handoff").is_some(),
        drain: match flags.remove("drain-ms") {
            Some(ms) => std::time::Duration::from_millis(
                ms.parse().map_err(|e| format!("--drain-ms: {e}"))?,
            ),
            None => std::time::Duration::ZERO,
        },
        fetch_timeout: match flags.remove("fetch-timeout-ms") {
            Some(ms) => Some(std::time::Duration::from_millis(
                ms.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    format!("--fetch-timeout-ms: expected milliseconds > 0, got {ms:?}")
                })?,
            )),
            None => None,
        },
        rest: std::mem::take(&mut flags),
    };
    const KNOWN: [&str; 10] = [
        "handoff",
        "drain-ms",
        "peers",
        "gossip",
        "seeds",
        "gossip-key",
        "fast-gossip",
        "coord",
        "cluster",
        "etcd-ttl",
    ];
    if let Some(extra) = args.rest.keys().find(|k| !KNOWN.contains(&k.as_str())) {
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

struct Node {
    group: Arc<Group>,
    loads: Loads,
    cluster: Cluster,
    source: members::Shared,
}

async fn admin(req: Request<Incoming>, node: Arc<Node>) -> Response<Full<Bytes>> {
    let (group, loads) = (&node.group, &node.loads);
    let key = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("hex="))
        .map(unhex);
    match (req.uri().path(), key) {
        ("/health", _) => reply(StatusCode::OK, "ok"),
        ("/members", None) => reply(StatusCode::OK, members::json(&node.cluster, &node.source)),
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

async fn run(mut args: Args) -> Result<(), String> {
    let source = Arc::new(members::Source::from_flags(&args.self_url, &mut args.rest).await?);
    let mut builder = Cluster::builder(args.self_url.as_str())
        .protocol(args.protocol)
        .algorithm(args.algorithm);
    if let Some(t) = args.fetch_timeout {
        builder = builder.fetch_timeout(t);
    }
    if args.handoff {
        // A generous peek timeout: the tests run debug builds on 2 busy cores.
        builder = builder.handoff(shoal_cluster::Handoff {
            warm_time: std::time::Duration::from_secs(60),
            peek_timeout: std::time::Duration::from_millis(500),
        });
    }
    let cluster = builder
        .build_following(source.membership())
        .map_err(|e| e.to_string())?;
    let loads = Loads::default();
    let group = cluster
        .group(Group::builder("things", 64 << 20), loads.clone())
        .map_err(|e| e.to_string())?;
    let peer_addr: SocketAddr = cluster
        .self_url()
        .authority()
        .parse()
        .map_err(|e| format!("--self: the host must be an IP address here: {e}"))?;
    let _server = cluster.serve(peer_addr).await.map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(args.admin)
        .await
        .map_err(|e| format!("binding --admin {}: {e}", args.admin))?;
    let node = Arc::new(Node {
        group,
        loads,
        cluster,
        source: source.clone(),
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("installing the SIGTERM handler: {e}"))?;
    // After SIGTERM: leave at once, keep serving peers (and the admin port) for the drain
    // time so new owners can peek at what this node holds, then exit.
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        let deadline = drain_until
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
        let tcp = tokio::select! {
            got = listener.accept() => got.map_err(|e| e.to_string())?.0,
            _ = term.recv(), if drain_until.is_none() => {
                source.leave().await;
                drain_until = Some(tokio::time::Instant::now() + args.drain);
                continue;
            }
            () = tokio::time::sleep_until(deadline), if drain_until.is_some() => return Ok(()),
        };
        let node = node.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let node = node.clone();
                async move { Ok::<_, Infallible>(admin(req, node).await) }
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
