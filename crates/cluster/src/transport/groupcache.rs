//! golang/groupcache's HTTP protocol, to join a cluster of Go groupcache nodes.
//!
//! `GET /_groupcache/<group>/<key>` answers `200` with a protobuf `GetResponse`
//! (`optional bytes value = 1; optional double minute_qps = 2`). Go servers answer `404 no
//! such group: <g>` for an unknown group and `500 <error>` for any getter error; they have
//! no "not found". We answer a missing key with `404` and the body `not found` (as
//! mailgun/groupcache does) and map exactly that back to `NotFound`; a Go client treats it
//! like any error and loads locally. The protocol has no expiry and no peek.
//!
//! Escaping: see [`escape`](super::escape) for the `+`-for-space quirk of Go clients.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use prost::Message;
use shoal_cache::Loaded;
use tokio::time::Instant;

use super::client::{Call, HttpClient, body, get, status_error};
use super::escape;
use crate::PeerError;
use crate::groups::{Answer, Groups, answer, truncate};
use crate::metrics::{Outcome, Served};
use crate::server::{Reply, refusal, reply};

/// Base path of requests.
pub(crate) const PATH: &str = "/_groupcache/";

/// `groupcachepb.GetResponse` (proto2).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct GetResponse {
    /// The value.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub(crate) value: Option<Bytes>,
    /// Never set by groupcache servers.
    #[prost(double, optional, tag = "2")]
    pub(crate) minute_qps: Option<f64>,
}

pub(crate) async fn fetch(
    http: &HttpClient,
    base: &str,
    call: Call<'_>,
    group: &str,
    key: &[u8],
    peek: bool,
) -> Result<Loaded, PeerError> {
    if peek {
        return Err(PeerError::Status {
            peer: call.peer.clone(),
            status: "unsupported".into(),
            message: "the groupcache protocol cannot peek".into(),
            retryable: false,
        });
    }
    let resp = get(
        http,
        &format!("{base}{}", escape::path(PATH, group, key)),
        call,
    )
    .await?;
    match resp.status() {
        StatusCode::OK => {
            let bytes = body(resp, call).await?;
            let decoded = GetResponse::decode(bytes).map_err(|e| PeerError::BadReply {
                peer: call.peer.clone(),
                message: format!("bad GetResponse protobuf: {e}"),
            })?;
            Ok(Loaded::new(decoded.value.unwrap_or_default()))
        }
        // Only our own "not found" means the key is missing: a Go mux's "404 page not
        // found" (a wrong base path) must stay an error, so the asker loads locally.
        StatusCode::NOT_FOUND => match status_error(resp, call).await {
            PeerError::Status { message, .. } if message.starts_with("no such group") => {
                Err(PeerError::UnknownGroup {
                    peer: call.peer.clone(),
                    group: group.to_owned(),
                })
            }
            PeerError::Status { message, .. } if message == "not found" => Err(PeerError::NotFound),
            other => Err(other),
        },
        StatusCode::UNAUTHORIZED => Err(PeerError::Unauthorized {
            peer: call.peer.clone(),
        }),
        _ => Err(status_error(resp, call).await),
    }
}

/// Serve `rest`, the path after [`PATH`], waiting at most `deadline` for a load.
pub(crate) async fn serve(
    groups: &Groups,
    rest: &str,
    served: &Served,
    deadline: Option<Duration>,
) -> Reply {
    let start = Instant::now();
    let (group, key) = match escape::target(rest) {
        Ok(target) => target,
        Err(reason) => {
            served.reject(reason, start.elapsed());
            return refusal(reason);
        }
    };
    let (outcome, resp) = answer_for(groups, &group, &key, deadline).await;
    served.record(outcome, start.elapsed());
    resp
}

async fn answer_for(
    groups: &Groups,
    group: &str,
    key: &[u8],
    deadline: Option<Duration>,
) -> (Outcome, Reply) {
    match answer(groups, group, key, false, deadline).await {
        Answer::Value(loaded) if loaded.stale => (
            // The protocol cannot mark a value stale: the asker would keep it as fresh.
            Outcome::Error,
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the value could not be refreshed; only a stale copy is left",
            ),
        ),
        Answer::Value(loaded) => {
            let len = loaded.value.len();
            let msg = GetResponse {
                value: Some(loaded.value),
                minute_qps: None,
            };
            let mut r = reply(StatusCode::OK, msg.encode_to_vec());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
            (Outcome::Ok(len), r)
        }
        Answer::NotFound => (Outcome::NotFound, reply(StatusCode::NOT_FOUND, "not found")),
        Answer::UnknownGroup => (
            Outcome::UnknownGroup,
            reply(StatusCode::NOT_FOUND, format!("no such group: {group}")),
        ),
        Answer::Deadline(d) => (
            Outcome::Deadline,
            reply(
                StatusCode::GATEWAY_TIMEOUT,
                super::native::deadline_passed(d),
            ),
        ),
        Answer::Failed(e) => (
            Outcome::Error,
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                truncate(&e.to_string(), 1024),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_response_wire_format_matches_groupcachepb() {
        // field 1 (bytes): tag 0x0a; field 2 (double): tag 0x11.
        let m = GetResponse {
            value: Some(Bytes::from_static(b"hi")),
            minute_qps: Some(1.0),
        };
        let wire = m.encode_to_vec();
        assert_eq!(&wire[..4], &[0x0a, 2, b'h', b'i']);
        assert_eq!(wire[4], 0x11);
        assert_eq!(GetResponse::decode(&wire[..]).unwrap(), m);
        // A reply without a value is an empty value.
        assert_eq!(GetResponse::decode(&[][..]).unwrap().value, None);
    }
}
