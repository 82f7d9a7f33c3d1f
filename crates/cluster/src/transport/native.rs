//! The native protocol: galaxycache's HTTP protocol (vimeo/galaxycache `http` package).
//!
//! `GET /_galaxycache/<group>/<key>` answers the raw value with `200`, an optional
//! `Expires` (HTTP date with nanoseconds) and `X-Galaxycache-Galaxy-Status: Found`; a key
//! that does not exist is `404` with the same status header, an unknown group `404` with
//! `X-Galaxycache-Galaxy-Status: Not Found`. `/_galaxycache_peek/` answers from memory only.

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use tokio::time::Instant;

use super::client::{Call, HttpClient, body, get, status_error};
use super::{escape, expires};
use crate::PeerError;
use crate::groups::{Answer, Groups, answer, truncate};
use crate::metrics::{Outcome, Served};
use crate::server::{Reply, STALE_HEADER, refusal, reply};
use shoal_cache::Loaded;

/// Base path of fetches.
pub(crate) const FETCH_PATH: &str = "/_galaxycache/";
/// Base path of peeks.
pub(crate) const PEEK_PATH: &str = "/_galaxycache_peek/";
/// The header that says whether the group exists.
const GALAXY_STATUS: &str = "x-galaxycache-galaxy-status";

pub(crate) async fn fetch(
    http: &HttpClient,
    base: &str,
    call: Call<'_>,
    group: &str,
    key: &[u8],
    peek: bool,
) -> Result<Loaded, PeerError> {
    let path = escape::path(if peek { PEEK_PATH } else { FETCH_PATH }, group, key);
    let resp = get(http, &format!("{base}{path}"), call).await?;
    let galaxy_status = resp.headers().get(GALAXY_STATUS).map(HeaderValue::as_bytes);
    match (resp.status(), galaxy_status) {
        (StatusCode::OK, _) => {
            let expires = match resp.headers().get(header::EXPIRES) {
                None => None,
                Some(v) => {
                    let at = v
                        .to_str()
                        .ok()
                        .and_then(expires::parse_http_date)
                        .ok_or_else(|| PeerError::BadReply {
                            peer: call.peer.clone(),
                            message: format!("bad Expires header {v:?}"),
                        })?;
                    Some(expires::from_wall(at))
                }
            };
            let stale = resp.headers().contains_key(STALE_HEADER);
            Ok(Loaded {
                value: body(resp, call).await?,
                expires,
                stale,
            })
        }
        (StatusCode::NOT_FOUND, Some(b"Found")) => Err(PeerError::NotFound),
        (StatusCode::NOT_FOUND, Some(b"Not Found")) => Err(PeerError::UnknownGroup {
            peer: call.peer.clone(),
            group: group.to_owned(),
        }),
        (StatusCode::UNAUTHORIZED, _) => Err(PeerError::Unauthorized {
            peer: call.peer.clone(),
        }),
        _ => Err(status_error(resp, call).await),
    }
}

/// Serve `rest`, the path after [`FETCH_PATH`] or [`PEEK_PATH`], waiting at most
/// `deadline` for a load.
pub(crate) async fn serve(
    groups: &Groups,
    rest: &str,
    peek: bool,
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
    let (outcome, resp) = answer_for(groups, &group, &key, peek, deadline).await;
    served.record(outcome, start.elapsed());
    resp
}

async fn answer_for(
    groups: &Groups,
    group: &str,
    key: &[u8],
    peek: bool,
    deadline: Option<Duration>,
) -> (Outcome, Reply) {
    let found = |mut r: Reply| {
        r.headers_mut()
            .insert(GALAXY_STATUS, HeaderValue::from_static("Found"));
        r
    };
    match answer(groups, group, key, peek, deadline).await {
        Answer::Value(loaded) => {
            let len = loaded.value.len();
            let mut r = found(reply(StatusCode::OK, loaded.value));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Some(at) = loaded.expires {
                let date = expires::format_http_date(expires::to_wall(at));
                if let Ok(v) = HeaderValue::try_from(date) {
                    h.insert(header::EXPIRES, v);
                }
            }
            if loaded.stale {
                h.insert(STALE_HEADER, HeaderValue::from_static("1"));
            }
            (Outcome::Ok(len), r)
        }
        Answer::NotFound => (
            Outcome::NotFound,
            found(reply(StatusCode::NOT_FOUND, "not found")),
        ),
        Answer::UnknownGroup => {
            let mut r = reply(StatusCode::NOT_FOUND, format!("no such galaxy: {group}"));
            r.headers_mut()
                .insert(GALAXY_STATUS, HeaderValue::from_static("Not Found"));
            (Outcome::UnknownGroup, r)
        }
        Answer::Deadline(d) => (
            Outcome::Deadline,
            found(reply(StatusCode::GATEWAY_TIMEOUT, deadline_passed(d))),
        ),
        Answer::Failed(e) => {
            let status = if matches!(e, shoal_cache::LoadError::Timeout { .. }) {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (
                Outcome::Error,
                found(reply(status, truncate(&e.to_string(), 1024))),
            )
        }
    }
}

/// The body of a `504` for a propagated deadline.
pub(crate) fn deadline_passed(d: Duration) -> String {
    format!("the caller's deadline of {} ms passed", d.as_millis())
}
