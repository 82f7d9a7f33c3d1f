//! galaxycache's gRPC protocol (`galaxycachepb.GalaxyCache`), client and server.
//!
//! Server: an unknown galaxy is `InvalidArgument`, a missing key `NotFound`, a key longer
//! than [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES) or a request whose protobuf does not decode
//! `InvalidArgument` (tonic says `Internal`; the peer server rewrites it); other
//! failures are `Unavailable` when retrying may help and `Unknown` otherwise. Expiry travels
//! as a `google.protobuf.Timestamp`; `minute_qps` is never set (as in galaxycache).
//! Deadlines travel in `grpc-timeout` (the client sends 90% of what it has left); the server
//! answers `DeadlineExceeded` at 90% of it, before the client gives up on its own, and a
//! malformed one is `InvalidArgument`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shoal_cache::{LoadError, Loaded};
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use super::client::Call;
use super::connect::Connector;
use super::expires;
use crate::groups::{Answer, Groups, answer, truncate};
use crate::metrics::{BadRequest, Outcome, Served};
use crate::pb::galaxy_cache_client::GalaxyCacheClient;
use crate::pb::galaxy_cache_server::{GalaxyCache, GalaxyCacheServer};
use crate::pb::{GetRequest, GetResponse, PeekRequest, PeekResponse};
use crate::server::STALE_HEADER;
use crate::{ClusterError, PeerError, PeerUrl};

pub(crate) type GrpcClient = GalaxyCacheClient<Channel>;

/// Slack for the protobuf framing around the largest value.
const FRAMING: usize = 1024;

/// A lazily connecting client for `url`.
pub(crate) fn client(
    url: &PeerUrl,
    connector: Connector,
    max_value: usize,
) -> Result<GrpcClient, ClusterError> {
    let (base, connector) = match url.scheme() {
        crate::Scheme::Https => (
            format!("http://{}", url.authority()),
            connector.always_tls(),
        ),
        _ => (url.base(), connector),
    };
    let endpoint = Endpoint::from_shared(base).map_err(|_| ClusterError::BadPeerUrl {
        url: url.to_string(),
        why: "not a valid gRPC endpoint",
    })?;
    let channel = endpoint
        .tcp_nodelay(true)
        .http2_adaptive_window(true)
        .connect_with_connector_lazy(connector);
    Ok(GalaxyCacheClient::new(channel).max_decoding_message_size(max_value + FRAMING))
}

pub(crate) async fn fetch(
    mut client: GrpcClient,
    call: Call<'_>,
    group: &str,
    key: &[u8],
    peek: bool,
) -> Result<Loaded, PeerError> {
    let key = Bytes::copy_from_slice(key);
    let galaxy = group.to_owned();
    // The peer stops waiting a little before we do, as on HTTP; tonic's channel also
    // enforces this timeout on our side.
    let timeout = call.deadline.saturating_duration_since(Instant::now()) * 9 / 10;
    let (value, expiry, stale) = if peek {
        let req = authorize(Request::new(PeekRequest { galaxy, key }), call, timeout);
        let r = client
            .peek_peer(req)
            .await
            .map_err(|s| status_to_error(s, call, group, timeout))?;
        let stale = r.metadata().contains_key(STALE_HEADER);
        let r = r.into_inner();
        (r.value, r.expiry, stale)
    } else {
        let req = authorize(Request::new(GetRequest { galaxy, key }), call, timeout);
        let r = client
            .get_from_peer(req)
            .await
            .map_err(|s| status_to_error(s, call, group, timeout))?;
        let stale = r.metadata().contains_key(STALE_HEADER);
        let r = r.into_inner();
        (r.value, r.expiry, stale)
    };
    let expires = match expiry {
        None => None,
        Some(ts) => {
            let at = u32::try_from(ts.nanos)
                .ok()
                .and_then(|n| expires::from_unix_parts(ts.seconds, n))
                .ok_or_else(|| PeerError::BadReply {
                    peer: call.peer.clone(),
                    message: format!("bad expiry timestamp {ts:?}"),
                })?;
            Some(expires::from_wall(at))
        }
    };
    Ok(Loaded {
        value,
        expires,
        stale,
    })
}

/// Adds the shared secret and the deadline (`grpc-timeout`) to `req`.
fn authorize<T>(mut req: Request<T>, call: Call<'_>, timeout: Duration) -> Request<T> {
    if let Some(secret) = call.secret
        && let Ok(v) = MetadataValue::try_from(secret.header().as_bytes())
    {
        req.metadata_mut().insert("authorization", v);
    }
    req.set_timeout(timeout);
    req
}

/// The caller's deadline from a `grpc-timeout` header: at most 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`), as the gRPC over HTTP/2 spec defines it. `Err` for a
/// malformed value, `Ok(None)` when there is none.
pub(crate) fn grpc_timeout(v: Option<&[u8]>) -> Result<Option<Duration>, ()> {
    let Some(v) = v else { return Ok(None) };
    let (digits, unit) = v.split_at(v.len().checked_sub(1).ok_or(())?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    let n: u64 = std::str::from_utf8(digits)
        .map_err(|_| ())?
        .parse()
        .map_err(|_| ())?;
    let d = match unit {
        b"H" => Duration::from_secs(n.saturating_mul(3600)),
        b"M" => Duration::from_secs(n.saturating_mul(60)),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return Err(()),
    };
    // A day is longer than any peer timeout; larger values are clamped, as on HTTP.
    Ok(Some(d.min(Duration::from_secs(86_400))))
}

fn status_to_error(s: Status, call: Call<'_>, group: &str, timeout: Duration) -> PeerError {
    let peer = call.peer.clone();
    match s.code() {
        // tonic's own enforcement of the grpc-timeout we sent.
        Code::Cancelled if s.message() == "Timeout expired" => PeerError::Timeout {
            peer,
            after: timeout,
        },
        Code::NotFound => PeerError::NotFound,
        Code::Unauthenticated | Code::PermissionDenied => PeerError::Unauthorized { peer },
        Code::InvalidArgument if s.message().starts_with("no such galaxy") => {
            PeerError::UnknownGroup {
                peer,
                group: group.to_owned(),
            }
        }
        Code::Unavailable
            if s.message().contains("connect") || std::error::Error::source(&s).is_some() =>
        {
            PeerError::Connect {
                peer,
                message: super::client::error_chain(&s),
            }
        }
        Code::OutOfRange | Code::ResourceExhausted | Code::Internal => PeerError::BadReply {
            peer,
            message: s.message().to_owned(),
        },
        code => PeerError::Status {
            peer,
            status: format!("{code:?}"),
            message: s.message().chars().take(256).collect(),
            retryable: matches!(
                code,
                Code::Unavailable | Code::DeadlineExceeded | Code::Aborted
            ),
        },
    }
}

/// The gRPC service over a node's groups.
#[derive(Debug)]
pub(crate) struct GrpcService {
    groups: Arc<Groups>,
    served: Served,
}

/// The tonic server for `groups`, accepting requests of up to `max_value` bytes of value.
pub(crate) fn server(
    groups: Arc<Groups>,
    served: Served,
    max_value: usize,
) -> GalaxyCacheServer<GrpcService> {
    GalaxyCacheServer::new(GrpcService { groups, served })
        .max_decoding_message_size(64 * 1024)
        .max_encoding_message_size(max_value + FRAMING)
}

impl GrpcService {
    async fn answer<T>(
        &self,
        req: &Request<T>,
        galaxy: &str,
        key: &[u8],
        peek: bool,
    ) -> Result<Loaded, Status> {
        let start = Instant::now();
        let timeout = req.metadata().get("grpc-timeout").map(|v| v.as_bytes());
        let Ok(deadline) = grpc_timeout(timeout) else {
            self.served.reject(BadRequest::BadDeadline, start.elapsed());
            return Err(Status::invalid_argument(
                "grpc-timeout must be up to 8 digits and a unit (H, M, S, m, u, n)",
            ));
        };
        if key.len() > crate::MAX_KEY_BYTES {
            self.served.reject(BadRequest::KeyTooLong, start.elapsed());
            return Err(Status::invalid_argument(format!(
                "key longer than {} bytes",
                crate::MAX_KEY_BYTES
            )));
        }
        // A gRPC client enforces the timeout it sent, to the millisecond, and resets the
        // stream then; stopping at 90% of it lets our answer (and its count) arrive first.
        let deadline = deadline.map(|d| d * 9 / 10);
        let (outcome, result) = match answer(&self.groups, galaxy, key, peek, deadline).await {
            Answer::Value(v) => (Outcome::Ok(v.value.len()), Ok(v)),
            Answer::NotFound => (Outcome::NotFound, Err(Status::not_found("not found"))),
            Answer::UnknownGroup => (
                Outcome::UnknownGroup,
                Err(Status::invalid_argument(format!(
                    "no such galaxy: {galaxy}"
                ))),
            ),
            Answer::Deadline(d) => (
                Outcome::Deadline,
                Err(Status::deadline_exceeded(super::native::deadline_passed(d))),
            ),
            Answer::Failed(e) => {
                let msg = String::from_utf8_lossy(&truncate(&e.to_string(), 1024)).into_owned();
                let status = match e {
                    LoadError::Timeout { .. } => Status::deadline_exceeded(msg),
                    e if e.is_retryable() => Status::unavailable(msg),
                    _ => Status::unknown(msg),
                };
                (Outcome::Error, Err(status))
            }
        };
        self.served.record(outcome, start.elapsed());
        result
    }
}

fn timestamp(at: Option<Instant>) -> Option<prost_types::Timestamp> {
    at.map(|at| {
        let (seconds, nanos) = expires::unix_parts(expires::to_wall(at));
        prost_types::Timestamp {
            seconds,
            nanos: nanos as i32,
        }
    })
}

#[tonic::async_trait]
impl GalaxyCache for GrpcService {
    async fn get_from_peer(
        &self,
        req: Request<GetRequest>,
    ) -> Result<Response<GetResponse>, Status> {
        let v = self
            .answer(&req, &req.get_ref().galaxy, &req.get_ref().key, false)
            .await?;
        Ok(mark_stale(
            Response::new(GetResponse {
                value: v.value,
                minute_qps: 0.0,
                expiry: timestamp(v.expires),
            }),
            v.stale,
        ))
    }

    async fn peek_peer(&self, req: Request<PeekRequest>) -> Result<Response<PeekResponse>, Status> {
        let v = self
            .answer(&req, &req.get_ref().galaxy, &req.get_ref().key, true)
            .await?;
        Ok(mark_stale(
            Response::new(PeekResponse {
                value: v.value,
                expiry: timestamp(v.expires),
            }),
            v.stale,
        ))
    }
}

/// Says in the response metadata that the value is a stale copy (see `STALE_HEADER`).
fn mark_stale<T>(mut r: Response<T>, stale: bool) -> Response<T> {
    if stale {
        r.metadata_mut()
            .insert(STALE_HEADER, MetadataValue::from_static("1"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_spec_says() {
        let ok = |v: &str| grpc_timeout(Some(v.as_bytes())).unwrap().unwrap();
        assert_eq!(ok("150m"), Duration::from_millis(150));
        assert_eq!(ok("2S"), Duration::from_secs(2));
        assert_eq!(ok("1M"), Duration::from_secs(60));
        assert_eq!(ok("1H"), Duration::from_secs(3600));
        assert_eq!(ok("99999999H"), Duration::from_secs(86_400));
        assert_eq!(ok("7u"), Duration::from_micros(7));
        assert_eq!(ok("7n"), Duration::from_nanos(7));
        assert_eq!(grpc_timeout(None), Ok(None));
        for bad in ["", "m", "10", "123456789m", "10x", "-1m", "1.5S", "1 S"] {
            assert_eq!(grpc_timeout(Some(bad.as_bytes())), Err(()), "{bad:?}");
        }
    }
}
