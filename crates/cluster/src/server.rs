//! The peer server: one port answering the native, groupcache and gRPC protocols, over
//! HTTP/1.1 and HTTP/2 (prior knowledge or ALPN), with optional TLS, mTLS and a shared
//! secret.
//!
//! Bounded: at most `max_connections` connections at once (the accept loop waits for a free
//! slot), a TLS handshake and a request head must arrive within 10 seconds, and
//! [`PeerServer::shutdown`] drains in-flight requests for at most a grace period.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::groups::Groups;
use crate::metrics::{self, BadRequest, Outcome, Served};
use crate::pb::galaxy_cache_server::GalaxyCacheServer;
use crate::transport::grpc::{self, GrpcService};
use crate::transport::{groupcache, native};
use crate::{ClusterError, Secret};

/// Every reply of the peer server.
pub(crate) type Reply = Response<tonic::body::Body>;

/// The reply to a request refused as malformed (see the crate docs' table).
pub(crate) fn refusal(reason: BadRequest) -> Reply {
    let (status, text) = match reason {
        BadRequest::MalformedPath => (
            StatusCode::BAD_REQUEST,
            "malformed peer path: want <base>/<group>/<key>, percent-encoded",
        ),
        BadRequest::KeyTooLong => (StatusCode::URI_TOO_LONG, "key too long"),
        BadRequest::Method => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed here: see the Allow header",
        ),
        BadRequest::UnknownPath => (StatusCode::NOT_FOUND, "not a peer path"),
        BadRequest::BadDeadline => (
            StatusCode::BAD_REQUEST,
            "x-shoal-deadline-ms must be a number of milliseconds",
        ),
        BadRequest::BadProtobuf
        | BadRequest::TooLarge
        | BadRequest::UnknownMethod
        | BadRequest::Unparsable => (StatusCode::BAD_REQUEST, "bad request"),
    };
    let mut r = reply(status, text);
    if reason == BadRequest::Method {
        r.headers_mut().insert(
            header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD, DELETE"),
        );
    }
    r
}

/// A reply with `body` and no other headers.
pub(crate) fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(tonic::body::Body::new(Full::new(body.into())));
    *r.status_mut() = status;
    r
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a peer server.
#[derive(Debug, Clone)]
pub(crate) struct ServeSettings {
    pub(crate) secret: Option<Secret>,
    /// Loaded at each handshake, so a reload reaches the next connection.
    pub(crate) tls: Option<crate::tls::ServerTls>,
    pub(crate) max_connections: usize,
    pub(crate) max_value: usize,
    pub(crate) grace: Duration,
}

/// A running peer server. Dropping it stops accepting at once; open connections then
/// finish their in-flight requests and close in the background. Call
/// [`shutdown`](PeerServer::shutdown) to wait for that (within the grace period).
#[derive(Debug)]
pub struct PeerServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl PeerServer {
    /// Bind `addr` and start serving `groups`.
    pub(crate) async fn bind(
        addr: SocketAddr,
        groups: Arc<Groups>,
        settings: ServeSettings,
    ) -> Result<PeerServer, ClusterError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ClusterError::Io {
                what: format!("binding the peer port {addr}"),
                source,
            })?;
        Self::serve(listener, groups, settings)
    }

    /// Serve `groups` on an already bound listener.
    pub(crate) fn serve(
        listener: TcpListener,
        groups: Arc<Groups>,
        settings: ServeSettings,
    ) -> Result<PeerServer, ClusterError> {
        let local_addr = listener.local_addr().map_err(|source| ClusterError::Io {
            what: "reading the peer port's address".into(),
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let handler = Arc::new(Handler::new(groups, &settings));
        let task = tokio::spawn(accept_loop(listener, handler, settings, stopped));
        Ok(PeerServer {
            local_addr,
            stop,
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, let in-flight requests finish (within the grace period), and wait.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<Handler>,
    settings: ServeSettings,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .adaptive_window(true)
        .max_concurrent_streams(256)
        // Room for a path with the longest key, percent-encoded (hyper's default is 16 KiB).
        .max_header_list_size(256 << 10)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let tls = settings.tls.clone();
    loop {
        let permit = tokio::select! {
            _ = stopped.changed() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, _peer) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little, keep serving.
                    tracing::warn!(error = %e, "peer port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        let acceptor = tls.as_ref().map(|t| TlsAcceptor::from(t.load_full()));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let unparsable = handler.unparsable.clone();
            let tls_failures = handler.tls_failures.clone();
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler.handle(req).await) }
            });
            match acceptor {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    count_unparsable(&unparsable, watcher.watch(conn.into_owned()).await);
                }
                Some(acceptor) => {
                    let Some(tls) = handshake(acceptor, tcp, &tls_failures).await else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    count_unparsable(&unparsable, watcher.watch(conn.into_owned()).await);
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("peer port: in-flight requests did not finish within the grace period");
    }
}

/// Count a connection that ended on a request hyper refused itself (it answers those with
/// 400, 414 or 431 before our handler sees them).
fn count_unparsable(
    counter: &::metrics::Counter,
    ended: Result<(), Box<dyn std::error::Error + Send + Sync>>,
) {
    if let Err(e) = ended
        && e.downcast_ref::<hyper::Error>()
            .is_some_and(|e| e.is_parse() || e.is_parse_too_large())
    {
        counter.increment(1);
    }
}

/// A TLS handshake; a failed one (no or a bad client certificate under mTLS, not TLS at
/// all) is counted in `failures`.
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    failures: &::metrics::Counter,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            failures.increment(1);
            tracing::debug!(error = %e, "peer port: TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// Routes one request to its protocol.
#[derive(Debug)]
struct Handler {
    groups: Arc<Groups>,
    secret: Option<Secret>,
    grpc: GalaxyCacheServer<GrpcService>,
    native: Served,
    groupcache: Served,
    grpc_served: Served,
    unparsable: ::metrics::Counter,
    tls_failures: ::metrics::Counter,
}

impl Handler {
    fn new(groups: Arc<Groups>, settings: &ServeSettings) -> Self {
        let grpc_served = Served::new("grpc");
        Handler {
            grpc: grpc::server(groups.clone(), grpc_served.clone(), settings.max_value),
            groups,
            secret: settings.secret.clone(),
            native: Served::new("native"),
            groupcache: Served::new("groupcache"),
            grpc_served,
            unparsable: metrics::unparsable(),
            tls_failures: ::metrics::counter!(metrics::AUTH_FAILURES, "protocol" => "tls"),
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let is_grpc = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if let Some(secret) = &self.secret
            && !secret.admits(req.headers())
        {
            return self.refuse(&req, is_grpc);
        }
        if is_grpc {
            return self.grpc(req).await;
        }
        let start = Instant::now();
        let path = req.uri().path();
        let served = if path.starts_with(groupcache::PATH) {
            &self.groupcache
        } else {
            &self.native
        };
        let reject = |reason| {
            served.reject(reason, start.elapsed());
            refusal(reason)
        };
        let removable = path
            .strip_prefix(native::FETCH_PATH)
            .or_else(|| path.strip_prefix(groupcache::PATH));
        if req.method() == Method::DELETE
            && let Some(rest) = removable
        {
            return remove(&self.groups, rest, served, start);
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = reject(BadRequest::Method);
            if removable.is_none() {
                // Only the fetch paths take a remove.
                r.headers_mut()
                    .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
            }
            return r;
        }
        let Ok(deadline) = deadline(req.headers()) else {
            return reject(BadRequest::BadDeadline);
        };
        if let Some(rest) = path.strip_prefix(native::FETCH_PATH) {
            native::serve(&self.groups, rest, false, served, deadline).await
        } else if let Some(rest) = path.strip_prefix(native::PEEK_PATH) {
            native::serve(&self.groups, rest, true, served, deadline).await
        } else if let Some(rest) = path.strip_prefix(groupcache::PATH) {
            groupcache::serve(&self.groups, rest, served, deadline).await
        } else {
            reject(BadRequest::UnknownPath)
        }
    }

    /// A gRPC request. tonic answers requests that never reach our service (bad protobuf,
    /// too large, unknown method) itself; those are counted here, and a protobuf that does
    /// not decode is `InvalidArgument` rather than tonic's `Internal`.
    async fn grpc(&self, req: Request<Incoming>) -> Reply {
        let start = Instant::now();
        let resp = match self.grpc.clone().call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let code = resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map(tonic::Code::from);
        let reason = match code {
            Some(tonic::Code::Internal) => BadRequest::BadProtobuf,
            Some(tonic::Code::OutOfRange | tonic::Code::ResourceExhausted) => BadRequest::TooLarge,
            Some(tonic::Code::Unimplemented) => BadRequest::UnknownMethod,
            _ => return resp,
        };
        self.grpc_served.reject(reason, start.elapsed());
        if reason != BadRequest::BadProtobuf {
            return resp;
        }
        let why = resp
            .extensions()
            .get::<tonic::Status>()
            .map(|s| s.message().to_owned())
            .unwrap_or_default();
        tonic::Status::invalid_argument(format!("bad protobuf: {why}")).into_http()
    }

    fn refuse(&self, req: &Request<Incoming>, is_grpc: bool) -> Reply {
        let path = req.uri().path();
        let served = if is_grpc {
            &self.grpc_served
        } else if path.starts_with(groupcache::PATH) {
            &self.groupcache
        } else {
            &self.native
        };
        served.auth_failures.increment(1);
        tracing::debug!(path, "peer port: request without the shared secret refused");
        if is_grpc {
            tonic::Status::unauthenticated("missing or wrong peer secret").into_http()
        } else {
            reply(StatusCode::UNAUTHORIZED, "missing or wrong peer secret")
        }
    }
}

/// The caller's remaining time from [`DEADLINE_HEADER`](crate::DEADLINE_HEADER), if sent.
fn deadline(headers: &http::HeaderMap) -> Result<Option<Duration>, ()> {
    let Some(v) = headers.get(crate::DEADLINE_HEADER) else {
        return Ok(None);
    };
    let ms: u64 = v.to_str().map_err(|_| ())?.parse().map_err(|_| ())?;
    // A day is longer than any peer timeout; larger values are clamped, not refused.
    Ok(Some(Duration::from_millis(ms.min(86_400_000))))
}

/// Marks a reply to a remove, so the client can tell it from a server that took the DELETE
/// for a GET (golang/groupcache does not look at the method).
pub(crate) const REMOVED_HEADER: &str = "x-shoal-removed";

/// Marks a value the owner could not refresh and answers from its `stale_if_error` grace
/// ([`shoal_cache::Loaded::stale`]), so the asker tries its own loader before using it. An
/// HTTP header on the native protocol, response metadata on gRPC; the groupcache protocol
/// cannot say it, so a stale value is answered there as the failure it stands for.
pub(crate) const STALE_HEADER: &str = "x-shoal-stale";

/// `DELETE <fetch path><group>/<key>` (native, or mailgun/groupcache's remove): this node
/// drops the key from memory and its loader's copies, and answers 200 whether it had it or
/// not, so a remove can be repeated; an unknown group is 404, as for a fetch.
fn remove(groups: &Groups, rest: &str, served: &Served, start: Instant) -> Reply {
    let (group, key) = match crate::transport::escape::target(rest) {
        Ok(target) => target,
        Err(reason) => {
            served.reject(reason, start.elapsed());
            return refusal(reason);
        }
    };
    let Some(g) = groups.get(&group) else {
        served.record(Outcome::UnknownGroup, start.elapsed());
        return reply(StatusCode::NOT_FOUND, format!("no such group: {group}"));
    };
    let had = g.remove(&key);
    served.record(Outcome::Removed, start.elapsed());
    let mut r = reply(StatusCode::OK, if had { "removed\n" } else { "absent\n" });
    r.headers_mut()
        .insert(REMOVED_HEADER, http::HeaderValue::from_static("1"));
    r
}
