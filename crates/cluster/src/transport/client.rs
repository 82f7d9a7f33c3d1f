//! [`PeerClient`]: one member, asked over the cluster's protocol.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri, header::AUTHORIZATION};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use shoal_cache::{BoxFuture, LoadError, Loaded, Peer};
use tokio::time::Instant;

use super::connect::Connector;
use super::{Protocol, groupcache, grpc, native};
use crate::metrics::Made;
use crate::tls::Tls;
use crate::{PeerError, PeerUrl, Secret};

pub(crate) type HttpClient = Client<Connector, Empty<Bytes>>;

/// What every request to a peer needs besides the key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) peer: &'a Arc<str>,
    pub(crate) secret: Option<&'a Secret>,
    pub(crate) max_value: usize,
    /// When the caller stops waiting; the HTTP protocols tell the peer.
    pub(crate) deadline: Instant,
}

/// Makes [`PeerClient`]s: the shared HTTP connection pool, TLS and settings.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    protocol: Protocol,
    /// The HTTP/1.1 pool: fetches over the HTTP protocols, removes over every protocol.
    http: HttpClient,
    grpc: Connector,
    secret: Option<Secret>,
    timeout: Duration,
    max_value: usize,
}

impl Transport {
    pub(crate) fn new(
        protocol: Protocol,
        tls: Option<&Tls>,
        secret: Option<Secret>,
        timeout: Duration,
        max_value: usize,
    ) -> Self {
        let connect_timeout = timeout.min(Duration::from_secs(5));
        let h2 = Connector::new(tls.map(|t| t.client_h2.clone()), connect_timeout);
        // HTTP/1.1 with a pool of kept-alive connections: what Go's net/http servers (golang
        // groupcache, galaxycache's HTTP protocol) speak without TLS, and measured faster
        // than one multiplexed HTTP/2 connection for small values on loopback
        // (benches/peer_fetch.rs). Over TLS, ALPN may still pick HTTP/2. A gRPC cluster
        // uses it only for removes, which galaxycache's protocol lacks; it connects lazily.
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .http2_adaptive_window(true)
            .build(Connector::new(
                tls.map(|t| t.client_http.clone()),
                connect_timeout,
            ));
        Transport {
            protocol,
            http,
            grpc: h2,
            secret,
            timeout,
            max_value,
        }
    }

    /// A client for the member at `url`. Makes no connection yet.
    pub(crate) fn client(&self, url: &PeerUrl) -> Result<PeerClient, crate::ClusterError> {
        let http = self.http.clone();
        let kind = match self.protocol {
            Protocol::Groupcache => Kind::Groupcache {
                http: http.clone(),
                base: url.base(),
            },
            Protocol::Native => Kind::Native {
                http: http.clone(),
                base: url.base(),
            },
            Protocol::Grpc => Kind::Grpc(grpc::client(url, self.grpc.clone(), self.max_value)?),
        };
        // mailgun/groupcache removes with DELETE on its fetch path; the others on ours.
        let remove_path = match self.protocol {
            Protocol::Groupcache => groupcache::PATH,
            Protocol::Native | Protocol::Grpc => native::FETCH_PATH,
        };
        Ok(PeerClient {
            id: url.as_str().into(),
            kind,
            remover: Remover {
                http,
                base: url.base(),
                path: remove_path,
            },
            secret: self.secret.clone(),
            timeout: self.timeout,
            max_value: self.max_value,
            made: Made::new(url.as_str()),
        })
    }
}

/// Where a remove goes: `DELETE {base}{path}<group>/<key>` over HTTP/1.1.
#[derive(Clone)]
struct Remover {
    http: HttpClient,
    base: String,
    path: &'static str,
}

#[derive(Clone)]
enum Kind {
    Native { http: HttpClient, base: String },
    Groupcache { http: HttpClient, base: String },
    Grpc(grpc::GrpcClient),
}

/// Asks one member for keys, with a timeout on every request. Implements
/// [`shoal_cache::Peer`], so a group can fetch through it.
#[derive(Clone)]
pub struct PeerClient {
    id: Arc<str>,
    kind: Kind,
    remover: Remover,
    secret: Option<Secret>,
    timeout: Duration,
    max_value: usize,
    made: Made,
}

impl fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerClient")
            .field("id", &self.id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PeerClient {
    /// The member's URL as given.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Ask the member for `key` of `group`; it loads the key if it must, but never forwards.
    pub async fn fetch(&self, group: &str, key: &[u8]) -> Result<Loaded, PeerError> {
        self.request(group, key, false).await
    }

    /// Ask the member whether it has `key` of `group` in memory (warm handoff). A miss is
    /// `NotFound`. The groupcache protocol cannot peek: always an error.
    pub async fn peek(&self, group: &str, key: &[u8]) -> Result<Loaded, PeerError> {
        self.request(group, key, true).await
    }

    /// Tell the member to drop `key` of `group` from its memory, and from any copy its
    /// loader keeps (its disk). It does not pass the remove on. Over the groupcache protocol
    /// this is mailgun/groupcache's remove (`DELETE /_groupcache/<group>/<key>`); a gRPC
    /// cluster sends it over HTTP to the same port, as galaxycache's protocol has none.
    pub async fn remove(&self, group: &str, key: &[u8]) -> Result<(), PeerError> {
        if key.len() > crate::MAX_KEY_BYTES {
            return Err(PeerError::KeyTooLong { len: key.len() });
        }
        let call = Call {
            peer: &self.id,
            secret: self.secret.as_ref(),
            max_value: self.max_value,
            deadline: Instant::now() + self.timeout,
        };
        let r = &self.remover;
        let uri = format!("{}{}", r.base, super::escape::path(r.path, group, key));
        let work = async {
            let resp = send(&r.http, http::Method::DELETE, &uri, call).await?;
            match resp.status() {
                http::StatusCode::OK => confirmed(resp, call).await,
                http::StatusCode::UNAUTHORIZED => Err(PeerError::Unauthorized {
                    peer: call.peer.clone(),
                }),
                http::StatusCode::NOT_FOUND => Err(PeerError::UnknownGroup {
                    peer: call.peer.clone(),
                    group: group.to_owned(),
                }),
                _ => Err(status_error(resp, call).await),
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(PeerError::Timeout {
                    peer: self.id.clone(),
                    after: self.timeout,
                })
            })
    }

    async fn request(&self, group: &str, key: &[u8], peek: bool) -> Result<Loaded, PeerError> {
        if key.len() > crate::MAX_KEY_BYTES {
            // Every peer would refuse it: no request.
            return Err(PeerError::KeyTooLong { len: key.len() });
        }
        let start = Instant::now();
        let call = Call {
            peer: &self.id,
            secret: self.secret.as_ref(),
            max_value: self.max_value,
            deadline: start + self.timeout,
        };
        let work = async {
            match &self.kind {
                Kind::Native { http, base } => {
                    native::fetch(http, base, call, group, key, peek).await
                }
                Kind::Groupcache { http, base } => {
                    groupcache::fetch(http, base, call, group, key, peek).await
                }
                Kind::Grpc(client) => grpc::fetch(client.clone(), call, group, key, peek).await,
            }
        };
        let result = match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(PeerError::Timeout {
                peer: self.id.clone(),
                after: self.timeout,
            }),
        };
        self.made.record(&result, start.elapsed());
        result
    }
}

impl Peer for PeerClient {
    fn id(&self) -> &str {
        &self.id
    }

    fn fetch<'a>(&'a self, group: &'a str, key: Bytes) -> BoxFuture<'a, Result<Loaded, LoadError>> {
        Box::pin(async move {
            PeerClient::fetch(self, group, &key)
                .await
                .map_err(LoadError::from)
        })
    }
}

/// Whether a `200` to a remove is one: ours carry [`REMOVED_HEADER`], mailgun/groupcache's
/// are empty and untyped. A server that answered the DELETE as a fetch (golang/groupcache,
/// which ignores the method) sent a value, and removed nothing.
async fn confirmed(resp: Response<Incoming>, call: Call<'_>) -> Result<(), PeerError> {
    let ours = resp.headers().contains_key(crate::server::REMOVED_HEADER);
    let typed = resp.headers().contains_key(http::header::CONTENT_TYPE);
    // Read to the end, so the connection goes back to the pool.
    let body = Limited::new(resp.into_body(), 4096).collect().await;
    let empty = body.is_ok_and(|b| b.to_bytes().is_empty());
    if ours || (empty && !typed) {
        return Ok(());
    }
    Err(PeerError::BadReply {
        peer: call.peer.clone(),
        message: "the peer answered the remove as a fetch: it cannot remove keys".to_owned(),
    })
}

/// Send a GET with the secret, if any.
pub(crate) async fn get(
    http: &HttpClient,
    uri: &str,
    call: Call<'_>,
) -> Result<Response<Incoming>, PeerError> {
    send(http, http::Method::GET, uri, call).await
}

/// Send a bodiless request with the secret, if any, and the caller's deadline.
async fn send(
    http: &HttpClient,
    method: http::Method,
    uri: &str,
    call: Call<'_>,
) -> Result<Response<Incoming>, PeerError> {
    let uri: Uri = uri.parse().map_err(|e| PeerError::BadReply {
        peer: call.peer.clone(),
        message: format!("cannot build request URI: {e}"),
    })?;
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(secret) = call.secret {
        req = req.header(AUTHORIZATION, secret.header().clone());
    }
    // The peer stops waiting for its load a little before we stop waiting for the peer, so
    // we get its answer (and keep the connection) rather than time out ourselves.
    let left = call.deadline.saturating_duration_since(Instant::now());
    req = req.header(
        crate::DEADLINE_HEADER,
        (left.as_millis() * 9 / 10).to_string(),
    );
    let req = req.body(Empty::new()).map_err(|e| PeerError::BadReply {
        peer: call.peer.clone(),
        message: format!("cannot build request: {e}"),
    })?;
    http.request(req).await.map_err(|e| PeerError::Connect {
        peer: call.peer.clone(),
        message: error_chain(&e),
    })
}

/// Read a reply body of at most `call.max_value` bytes.
pub(crate) async fn body(resp: Response<Incoming>, call: Call<'_>) -> Result<Bytes, PeerError> {
    match Limited::new(resp.into_body(), call.max_value)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(PeerError::BadReply {
            peer: call.peer.clone(),
            message: format!("reply larger than {} bytes", call.max_value),
        }),
        Err(e) => Err(PeerError::Connect {
            peer: call.peer.clone(),
            message: format!("reading the reply: {}", error_chain(&*e)),
        }),
    }
}

/// An error status: its text (at most 256 bytes) as a [`PeerError::Status`].
pub(crate) async fn status_error(resp: Response<Incoming>, call: Call<'_>) -> PeerError {
    let status = resp.status();
    let text = Limited::new(resp.into_body(), 4096)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text[..text.len().min(256)])
        .trim()
        .to_owned();
    PeerError::Status {
        peer: call.peer.clone(),
        status: status.to_string(),
        message: text,
        retryable: status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS,
    }
}

/// An error and its sources, `: `-separated.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
