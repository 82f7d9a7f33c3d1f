//! Talking to one replica: building the request, sending it with a deadline, and turning its
//! answer into ours.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, Method, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::Body;
use crate::h1::{self, Dial, FetchError, ReadBody, ReadRequest};
use crate::idle::{IdleTimeout, Side};
use crate::replica::Replica;
use crate::router::{HttpClient, Inner, X_FORWARDED_FOR};

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// A hop-by-hop header by RFC 9110's list (not counting those a `Connection` header names).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP.contains(name)
}

/// The header names a `Connection` header lists, which are hop-by-hop too; never
/// `X-Forwarded-For`, which the router sets for the storage nodes whatever the client asks.
pub(crate) fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
        .filter(|n| n != X_FORWARDED_FOR)
        .collect()
}

/// Copies end-to-end headers: drops hop-by-hop ones, those the `Connection` header names,
/// `Host` (the replica's is set) and `Transfer-Encoding` (hyper frames the body itself).
pub(crate) fn end_to_end(from: &HeaderMap) -> HeaderMap {
    let mut out = from.clone();
    let named = connection_named(from);
    for h in HOP.iter().chain(&named) {
        out.remove(h);
    }
    out.remove(header::HOST);
    out.remove(header::TRANSFER_ENCODING);
    out
}

/// A request for `path_and_query` on `replica`.
pub(crate) fn request(
    replica: &Replica,
    method: Method,
    path_and_query: &str,
    headers: HeaderMap,
    body: Body,
) -> Result<Request<Body>, String> {
    let uri = replica
        .uri(path_and_query)
        .map_err(|e| format!("{}: bad upstream URI: {e}", replica.base()))?;
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Why a replica gave no usable answer.
#[derive(Debug)]
pub(crate) struct SendError {
    pub(crate) message: String,
}

/// Sends `req` to `replica`, waiting at most `timeout` for its response headers. A connect
/// error marks the replica unhealthy until a health check passes (when health checks run).
pub(crate) async fn send(
    client: HttpClient,
    replica: Arc<Replica>,
    req: Request<Body>,
    timeout: Duration,
) -> Result<Response<Incoming>, SendError> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(resp)) => {
            replica.record(start.elapsed(), !resp.status().is_server_error());
            Ok(resp)
        }
        Ok(Err(e)) => {
            replica.record(start.elapsed(), false);
            if e.is_connect() && replica.mark_unreachable() {
                tracing::warn!(
                    replica = replica.base(),
                    "replica unreachable; marked unhealthy"
                );
            }
            Err(SendError {
                message: format!("{}: {}", replica.base(), chain(&e)),
            })
        }
        Err(_) => {
            replica.record(start.elapsed(), false);
            Err(SendError {
                message: format!("{}: no answer within {timeout:?}", replica.base()),
            })
        }
    }
}

/// An error and its sources on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Sends the read `req` to `replica` on the read path's own client ([`crate::h1`]), waiting
/// at most `timeout` for the response head; records the outcome as [`send`] does.
pub(crate) async fn send_read(
    replica: Arc<Replica>,
    req: Arc<ReadRequest>,
    dial: Dial,
    timeout: Duration,
) -> Result<Response<ReadBody>, SendError> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, h1::fetch(&replica, &req, &dial)).await {
        Ok(Ok(resp)) => {
            replica.record(start.elapsed(), !resp.status().is_server_error());
            Ok(resp)
        }
        Ok(Err(e)) => {
            replica.record(start.elapsed(), false);
            if matches!(e, FetchError::Connect(_)) && replica.mark_unreachable() {
                tracing::warn!(
                    replica = replica.base(),
                    "replica unreachable; marked unhealthy"
                );
            }
            Err(SendError {
                message: e.to_string(),
            })
        }
        Err(_) => {
            replica.record(start.elapsed(), false);
            Err(SendError {
                message: format!("{}: no answer within {timeout:?}", replica.base()),
            })
        }
    }
}

/// A replica's response to a read as ours: status, headers (end-to-end already), and the body
/// streamed through as it is read, cut off when the replica stalls for the body timeout (the
/// client then sees the connection end before the body does).
pub(crate) fn relay(resp: Response<ReadBody>, inner: &Arc<Inner>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let body = IdleTimeout::new(
        body,
        inner.settings.load().body_timeout,
        inner.clone(),
        Side::ReplicaResponse,
    );
    Response::from_parts(parts, body.boxed_unsync())
}
