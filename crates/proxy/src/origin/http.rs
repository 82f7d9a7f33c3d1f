//! [`HttpOrigin`]: objects are the resources under a base URL (`http://host:port/base/` or
//! `https://...`; HTTPS trusts [`crate::tls::origin_roots`] unless configured otherwise).
//!
//! Only URLs made of the configured base and an object path are ever requested: whatever
//! a client sends (an absolute-form URI, a Host header), the proxy is never an open proxy.
//!
//! * `stat` is a `HEAD`; an origin that refuses HEAD or sends no `Content-Length` is asked
//!   `GET` with `Range: bytes=0-0` instead (size from `Content-Range`).
//! * `read` is a range `GET` with `If-Match` (strong ETag) or `If-Unmodified-Since`
//!   (Last-Modified) so a changed object answers 412 rather than other bytes; the reply's
//!   ETag, Last-Modified and `Content-Range` total are checked too. An origin that ignores
//!   `Range` and answers 200 is read from the start, and up to `slurp_max` bytes from the
//!   requested offset are handed back, so the proxy caches what arrived.
//! * Connections are pooled (hyper-util's client); every request has a deadline.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Extent, Origin, OriginError};
use crate::meta::{ObjectHeaders, ObjectMeta, Validator, whole_seconds};
use crate::path::encode_path;

/// Settings of an [`HttpOrigin`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOriginConfig {
    /// Deadline to open a TCP connection (default 5 s).
    pub connect_timeout: Duration,
    /// Deadline for a whole request, body included (default 30 s).
    pub timeout: Duration,
    /// Idle pooled connections kept per origin host (default 64).
    pub max_idle_per_host: usize,
    /// When the origin answers a range request with the whole object, how many bytes from
    /// the requested offset to keep (default 32 MiB); the rest of the body is not read.
    pub slurp_max: u64,
    /// TLS for `https://` origins (h2 or HTTP/1.1 by ALPN); `None` (the default) trusts the
    /// system's CAs, else Mozilla's (see [`crate::tls::origin_roots`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for HttpOriginConfig {
    fn default() -> Self {
        HttpOriginConfig {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_idle_per_host: 64,
            slurp_max: 32 << 20,
            tls: None,
        }
    }
}

/// The base URL is not usable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid origin URL {url:?}: {why}")]
pub struct BadOriginUrl {
    url: String,
    why: &'static str,
}

/// An HTTP server under a base URL as an origin.
#[derive(Debug, Clone)]
pub struct HttpOrigin {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    config: HttpOriginConfig,
}

impl HttpOrigin {
    /// An origin for `base` (`http[s]://host[:port]/[path/]`).
    pub fn new(base: &str, config: HttpOriginConfig) -> Result<Self, BadOriginUrl> {
        let bad = |why| BadOriginUrl {
            url: base.to_owned(),
            why,
        };
        let uri: Uri = base.parse().map_err(|_| bad("not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s,
            _ => return Err(bad("expected http[s]://host[:port]/path/")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if uri.query().is_some() {
            return Err(bad("a base URL takes no query"));
        }
        let mut path = uri.path().to_owned();
        if !path.ends_with('/') {
            path.push('/');
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let tls = match config.tls.clone() {
            Some(tls) => tls,
            None => crate::tls::origin_roots(None)
                .ok()
                .and_then(|roots| crate::tls::origin_client_config(roots).ok())
                .ok_or_else(|| bad("cannot set up TLS"))?,
        };
        let mut tls = Arc::unwrap_or_clone(tls);
        // The connector offers h2 and http/1.1 itself, and refuses a config that names any.
        tls.alpn_protocols.clear();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(config.max_idle_per_host)
            .build(connector);
        Ok(HttpOrigin {
            base: format!("{scheme}://{authority}{path}"),
            client,
            config,
        })
    }

    fn uri(&self, path: &str) -> Result<Uri, OriginError> {
        format!("{}{}", self.base, encode_path(path))
            .parse()
            .map_err(|_| OriginError::failed("cannot build the origin URL", false))
    }

    async fn send(&self, req: Request<Empty<Bytes>>) -> Result<Response<Incoming>, OriginError> {
        self.client.request(req).await.map_err(|e| {
            let mut msg = e.to_string();
            if let Some(src) = std::error::Error::source(&e) {
                msg = format!("{msg}: {src}");
            }
            OriginError::failed(format!("{}: {msg}", self.base), true)
        })
    }

    async fn stat_inner(&self, path: &str) -> Result<ObjectMeta, OriginError> {
        let uri = self.uri(path)?;
        let head = Request::head(uri.clone()).body(Empty::new());
        let resp = self.send(head.map_err(request_error)?).await?;
        let status = resp.status();
        if status == StatusCode::OK
            && let Some(size) = header_u64(resp.headers(), header::CONTENT_LENGTH)
        {
            return Ok(meta_from(resp.headers(), size));
        }
        if !matches!(
            status,
            StatusCode::OK | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
        ) {
            return Err(status_error(status));
        }
        // No usable HEAD: ask for the first byte and read the size from Content-Range.
        let get = Request::get(uri)
            .header(header::RANGE, "bytes=0-0")
            .body(Empty::new());
        let resp = self.send(get.map_err(request_error)?).await?;
        let size = match resp.status() {
            StatusCode::PARTIAL_CONTENT => content_range(resp.headers()).map(|(_, _, t)| t),
            StatusCode::OK => header_u64(resp.headers(), header::CONTENT_LENGTH),
            StatusCode::RANGE_NOT_SATISFIABLE => Some(0),
            s => return Err(status_error(s)),
        };
        let size = size.ok_or_else(|| OriginError::failed("origin sent no object size", false))?;
        Ok(meta_from(resp.headers(), size))
    }

    async fn read_inner(
        &self,
        path: &str,
        range: Range<u64>,
        expect: &Validator,
    ) -> Result<Extent, OriginError> {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(self.uri(path)?)
            .header(
                header::RANGE,
                format!("bytes={}-{}", range.start, range.end - 1),
            );
        let lm = parse_modified(expect);
        if let Some(tag) = expect.etag() {
            req = req.header(header::IF_MATCH, tag);
        } else if let Some((Some(t), _)) = lm {
            req = req.header(header::IF_UNMODIFIED_SINCE, httpdate::fmt_http_date(t));
        }
        let resp = self
            .send(req.body(Empty::new()).map_err(request_error)?)
            .await?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        if !matches!(status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
            return Err(match status {
                StatusCode::PRECONDITION_FAILED | StatusCode::RANGE_NOT_SATISFIABLE => {
                    OriginError::Changed
                }
                s => status_error(s),
            });
        }
        check_version(&headers, expect, lm)?;
        if status == StatusCode::PARTIAL_CONTENT {
            let (first, last, total) = content_range(&headers)
                .ok_or_else(|| OriginError::failed("206 without a valid Content-Range", false))?;
            if lm.is_some_and(|(_, size)| size != total) {
                return Err(OriginError::Changed);
            }
            let want = last - first + 1;
            let bytes = read_body(resp.into_body(), 0, want, want).await?;
            return Ok(Extent {
                offset: first,
                bytes,
            });
        }
        // 200: the whole object; keep what we asked for and some of what follows.
        let total = header_u64(&headers, header::CONTENT_LENGTH);
        if let (Some(total), Some((_, size))) = (total, lm)
            && total != size
        {
            return Err(OriginError::Changed);
        }
        let keep = (range.end - range.start).max(self.config.slurp_max);
        let bytes = read_body(resp.into_body(), range.start, keep, range.end - range.start).await?;
        Ok(Extent {
            offset: range.start,
            bytes,
        })
    }
}

impl Origin for HttpOrigin {
    async fn stat(&self, path: &str) -> Result<ObjectMeta, OriginError> {
        let t = self.config.timeout;
        tokio::time::timeout(t, self.stat_inner(path))
            .await
            .unwrap_or(Err(OriginError::Timeout(t)))
    }

    async fn read(
        &self,
        path: &str,
        range: Range<u64>,
        expect: &Validator,
    ) -> Result<Extent, OriginError> {
        if range.start >= range.end {
            return Ok(Extent {
                offset: range.start,
                bytes: Bytes::new(),
            });
        }
        let t = self.config.timeout;
        tokio::time::timeout(t, self.read_inner(path, range, expect))
            .await
            .unwrap_or(Err(OriginError::Timeout(t)))
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

/// Read a body, skipping `skip` bytes, keeping at most `keep`, and failing unless at least
/// `need` bytes were kept. Stops reading once `keep` bytes are in.
async fn read_body(
    mut body: Incoming,
    skip: u64,
    keep: u64,
    need: u64,
) -> Result<Bytes, OriginError> {
    let cap = usize::try_from(keep).map_err(|_| OriginError::failed("range too large", false))?;
    let mut out = BytesMut::with_capacity(cap.min(64 << 20));
    let mut pos = 0u64;
    while (out.len() as u64) < keep {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| OriginError::failed(format!("origin body: {e}"), true))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = data.len() as u64;
        if pos + len > skip {
            let from = skip.saturating_sub(pos) as usize;
            let room = cap - out.len();
            let take = (data.len() - from).min(room);
            out.extend_from_slice(&data[from..from + take]);
        }
        pos += len;
    }
    if (out.len() as u64) < need {
        return Err(OriginError::failed("origin body ended early", true));
    }
    Ok(out.freeze())
}

fn meta_from(h: &HeaderMap, size: u64) -> ObjectMeta {
    let text = |name| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let etag = text(header::ETAG);
    let last_modified = text(header::LAST_MODIFIED)
        .and_then(|d| httpdate::parse_http_date(&d).ok())
        .map(whole_seconds);
    let validator = match &etag {
        Some(tag) if tag.starts_with('"') => Validator::strong_etag(tag),
        _ => Validator::modified(last_modified, size),
    };
    ObjectMeta {
        size,
        validator,
        etag,
        content_type: text(header::CONTENT_TYPE),
        last_modified,
        headers: ObjectHeaders::from_response(h),
    }
}

/// The Last-Modified and size a `lm:` validator was made of.
fn parse_modified(v: &Validator) -> Option<(Option<SystemTime>, u64)> {
    let (secs, size) = v.as_str().strip_prefix("lm:")?.split_once(':')?;
    let secs: u64 = secs.parse().ok()?;
    let time = (secs != u64::MAX).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    Some((time, size.parse().ok()?))
}

fn check_version(
    h: &HeaderMap,
    expect: &Validator,
    lm: Option<(Option<SystemTime>, u64)>,
) -> Result<(), OriginError> {
    if let Some(tag) = expect.etag()
        && let Some(got) = h.get(header::ETAG)
        && got.as_bytes() != tag.as_bytes()
    {
        return Err(OriginError::Changed);
    }
    if let Some((Some(want), _)) = lm
        && let Some(got) = h.get(header::LAST_MODIFIED).and_then(|v| v.to_str().ok())
        && httpdate::parse_http_date(got).ok().map(whole_seconds) != Some(want)
    {
        return Err(OriginError::Changed);
    }
    Ok(())
}

/// `bytes first-last/total` → (first, last, total).
fn content_range(h: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (first.parse().ok()?, last.parse().ok()?, total.parse().ok()?);
    (first <= last && last < total).then_some((first, last, total))
}

fn header_u64(h: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn status_error(s: StatusCode) -> OriginError {
    match s {
        StatusCode::NOT_FOUND | StatusCode::GONE => OriginError::NotFound,
        s => OriginError::failed(
            format!("origin answered {s}"),
            s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS,
        ),
    }
}

fn request_error(e: http::Error) -> OriginError {
    OriginError::failed(format!("cannot build the origin request: {e}"), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let o = HttpOrigin::new("http://127.0.0.1:9/store", HttpOriginConfig::default()).unwrap();
        assert_eq!(o.describe(), "http://127.0.0.1:9/store/");
        assert_eq!(
            o.uri("a b/c").unwrap().to_string(),
            "http://127.0.0.1:9/store/a%20b/c"
        );
        let o = HttpOrigin::new("https://localhost:9", HttpOriginConfig::default()).unwrap();
        assert_eq!(o.describe(), "https://localhost:9/");
        for bad in ["ftp://x/", "/local", "http://x/?q=1", "nonsense"] {
            assert!(
                HttpOrigin::new(bad, HttpOriginConfig::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn validators_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, "\"v1\"".parse().unwrap());
        assert_eq!(meta_from(&h, 5).validator.etag(), Some("\"v1\""));
        h.insert(header::ETAG, "W/\"v1\"".parse().unwrap());
        h.insert(
            header::LAST_MODIFIED,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        let m = meta_from(&h, 5);
        assert_eq!(m.validator.etag(), None);
        assert_eq!(m.etag.as_deref(), Some("W/\"v1\""));
        let (t, size) = parse_modified(&m.validator).unwrap();
        assert_eq!((t, size), (m.last_modified, 5));
        h.insert(header::CONTENT_RANGE, "bytes 0-0/77".parse().unwrap());
        assert_eq!(content_range(&h), Some((0, 0, 77)));
        h.insert(header::CONTENT_RANGE, "bytes 5-3/77".parse().unwrap());
        assert_eq!(content_range(&h), None);
    }
}
