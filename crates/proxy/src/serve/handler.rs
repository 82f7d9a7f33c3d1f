//! One request: method and path checks, metadata, preconditions, range evaluation, then a
//! streamed reply (DESIGN.md §4, "A range GET on shoal serve").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use parking_lot::Mutex;
use shoal_cache::{LoadError, Source};
use tokio::sync::{Semaphore, mpsc};

use super::body::ProxyBody;
use super::plan::{Plan, boundary};
use super::stream::{Fetcher, assemble, chunk_order, count_chunk, produce};
use crate::conditional::{self, Outcome};
use crate::meta::ObjectMeta;
use crate::path::object_path;
use crate::range::{self, ByteSpan, RangeReply};
use crate::store::{CHANGED, Store};

/// Settings of the request handler.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Chunks of one response fetched in parallel ahead of the one being sent (default 4).
    pub max_parallel_chunks: usize,
    /// Chunks read ahead past the end of a range request that continues the previous one
    /// on the same object (default 2; 0 turns read-ahead off).
    pub readahead_chunks: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_parallel_chunks: 4,
            readahead_chunks: 2,
        }
    }
}

/// Most read-ahead gets running at once, process-wide.
const MAX_READAHEAD_TASKS: usize = 64;
/// Objects whose last read position is remembered for read-ahead.
const MAX_TRACKED_READERS: usize = 4096;

/// The proxy's request handler: shared by every connection.
#[derive(Debug)]
pub struct Proxy {
    store: Arc<Store>,
    config: ProxyConfig,
    last_end: Mutex<HashMap<Arc<str>, u64>>,
    readahead: Arc<Semaphore>,
}

/// Why a request stopped before a reply body.
enum Stop {
    Reply(Response<ProxyBody>),
    Changed,
}

impl Proxy {
    /// A handler over `store`.
    pub fn new(store: Arc<Store>, config: ProxyConfig) -> Arc<Self> {
        Arc::new(Proxy {
            store,
            config,
            last_end: Mutex::new(HashMap::new()),
            readahead: Arc::new(Semaphore::new(MAX_READAHEAD_TASKS)),
        })
    }

    /// The store behind the handler.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Answer one request.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<ProxyBody> {
        let started = Instant::now();
        let resp = self.answer(&req).await;
        crate::metrics::record(resp.status(), started.elapsed());
        resp
    }

    async fn answer<B>(&self, req: &Request<B>) -> Response<ProxyBody> {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return r;
            }
        };
        let path = match object_path(req.uri().path()) {
            Ok(p) if !p.is_empty() => Arc::<str>::from(p),
            Ok(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
            Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("{e}\n")),
        };
        // A version change seen on the first chunk is retried once with fresh metadata.
        for _ in 0..2 {
            match self.attempt(req, &path, head).await {
                Ok(resp) | Err(Stop::Reply(resp)) => return resp,
                Err(Stop::Changed) => self.store.forget(&path),
            }
        }
        plain(
            StatusCode::BAD_GATEWAY,
            "shoal: the object keeps changing at the origin\n",
        )
    }

    async fn attempt<B>(
        &self,
        req: &Request<B>,
        path: &Arc<str>,
        head: bool,
    ) -> Result<Response<ProxyBody>, Stop> {
        // Metadata that a load then reads from disk is a cache hit too (for a HEAD's X-Cache).
        let meta_on_disk = head && self.store.meta_on_disk(path);
        let cached = self.store.meta(path).await.map_err(error_reply)?;
        let (meta, meta_source) = (cached.meta, cached.source);
        let use_range = match conditional::evaluate(req.headers(), &meta) {
            Outcome::Proceed { use_range } => use_range,
            Outcome::NotModified => {
                // A 304 carries the validators and the caching headers (RFC 9110 §15.4.5),
                // not the representation's own metadata.
                let mut r = reply(StatusCode::NOT_MODIFIED, &meta, ProxyBody::empty());
                for name in [
                    header::CONTENT_TYPE,
                    header::CONTENT_DISPOSITION,
                    header::CONTENT_ENCODING,
                    header::CONTENT_LANGUAGE,
                ] {
                    r.headers_mut().remove(name);
                }
                return Ok(r);
            }
            Outcome::PreconditionFailed => {
                return Ok(plain(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition failed\n",
                ));
            }
        };
        let range_header = req
            .headers()
            .get(header::RANGE)
            .filter(|_| use_range && !head);
        let ranges = match range_header {
            Some(v) => range::evaluate(v.as_bytes(), meta.size),
            None => RangeReply::Full,
        };
        // Content-Encoding on a multipart reply would say the multipart body is encoded, and
        // parts cannot carry it either; a server may ignore a Range (RFC 9110 §14.2), as S3
        // does with several ranges, so such an object is sent whole.
        let ranges = match ranges {
            RangeReply::Partial(spans)
                if spans.len() > 1 && meta.headers.get(&header::CONTENT_ENCODING).is_some() =>
            {
                RangeReply::Full
            }
            r => r,
        };
        let (status, plan, content_range, multipart) = match ranges {
            RangeReply::Unsatisfiable => {
                let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
                set(
                    &mut r,
                    header::CONTENT_RANGE,
                    &format!("bytes */{}", meta.size),
                );
                return Ok(r);
            }
            RangeReply::Full => (
                StatusCode::OK,
                Plan::single(ByteSpan::new(0, meta.size)),
                None,
                None,
            ),
            RangeReply::Partial(spans) if spans.len() == 1 => (
                StatusCode::PARTIAL_CONTENT,
                Plan::single(spans[0]),
                Some(spans[0].content_range(meta.size)),
                None,
            ),
            RangeReply::Partial(spans) => {
                let b = boundary();
                let plan = Plan::multipart(&spans, meta.size, meta.content_type.as_deref(), &b);
                (StatusCode::PARTIAL_CONTENT, plan, None, Some(b))
            }
        };
        let chunking = self.store.chunking(meta.size);
        let meta = Arc::new(meta);
        let (x_cache, keys) = if head {
            let hit = meta_on_disk || !matches!(meta_source, Source::Load);
            (if hit { "HIT" } else { "MISS" }, Vec::new())
        } else {
            self.survey(&plan, path, &meta)
        };
        // nginx's `$upstream_cache_status`: STALE when the origin failed and the cached
        // copy answered.
        let x_cache = if cached.stale { "STALE" } else { x_cache };
        let len = plan.content_length;
        let finish = |body| {
            let mut r = reply(status, &meta, body);
            set(&mut r, header::CONTENT_LENGTH, &len.to_string());
            if let Some(cr) = &content_range {
                set(&mut r, header::CONTENT_RANGE, cr);
            }
            if let Some(b) = &multipart {
                set(
                    &mut r,
                    header::CONTENT_TYPE,
                    &format!("multipart/byteranges; boundary={b}"),
                );
            }
            set(&mut r, "x-cache", x_cache);
            r
        };
        if head || plan.content_length == 0 {
            return Ok(finish(ProxyBody::empty()));
        }
        if let [part] = plan.parts.as_slice() {
            self.maybe_read_ahead(path, &meta, part.span, chunking, range_header.is_some());
        }
        if !keys.is_empty()
            && let Some(parts) = self.reply_from_memory(&plan, &meta, keys).await
        {
            return Ok(finish(ProxyBody::parts(parts)));
        }
        let order = chunk_order(&plan, chunking);
        let window = self.config.max_parallel_chunks;
        let mut fetcher = Fetcher::new(
            self.store.clone(),
            path.clone(),
            meta.clone(),
            order,
            window,
        );
        let first = match fetcher.next().await {
            None => None,
            Some((index, Ok(bytes))) => Some((index, bytes)),
            Some((_, Err(e))) if is_changed(&e) => return Err(Stop::Changed),
            Some((_, Err(e))) => return Err(error_reply(e)),
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(produce(plan, chunking, fetcher, first, tx));
        Ok(finish(ProxyBody::stream(rx, len)))
    }

    /// The whole reply from chunks in memory, without a producer task (the hot path); `None`
    /// if a chunk went missing since [`Self::survey`] looked.
    async fn reply_from_memory(
        &self,
        plan: &Plan,
        meta: &ObjectMeta,
        keys: Vec<(u64, Bytes)>,
    ) -> Option<std::collections::VecDeque<Bytes>> {
        let mut chunks = Vec::with_capacity(keys.len());
        for (index, key) in keys {
            let got = self.store.cached_chunk(&key).await?;
            count_chunk(&got, false);
            chunks.push((index, got.value));
        }
        assemble(plan, self.store.chunking(meta.size), &chunks)
    }

    /// X-Cache: HIT if every chunk the reply needs is in this node's memory or on its disk,
    /// MISS if none is (each comes from the origin, or from a peer), else PARTIAL; with the
    /// keys of those chunks when all are in memory (at most 4096 chunks), for the fast path.
    fn survey(
        &self,
        plan: &Plan,
        path: &str,
        meta: &ObjectMeta,
    ) -> (&'static str, Vec<(u64, Bytes)>) {
        let chunking = self.store.chunking(meta.size);
        let (mut keys, mut memory, mut disk, mut misses) = (Vec::new(), 0, 0, 0);
        for index in chunk_order(plan, chunking).take(4096) {
            let key = self.store.chunk_key(path, meta, index);
            if self.store.has_chunk(&key) {
                memory += 1;
            } else if self.store.on_disk(&key) {
                disk += 1;
            } else {
                misses += 1;
            }
            keys.push((index, key));
        }
        let all_memory = disk == 0 && misses == 0 && keys.len() < 4096;
        let x_cache = match (memory + disk, misses) {
            (_, 0) => "HIT",
            (0, _) => "MISS",
            _ => "PARTIAL",
        };
        (x_cache, if all_memory { keys } else { Vec::new() })
    }

    /// A range request that starts where the previous one on this object ended is a
    /// sequential reader: fetch the chunks after this one in the background.
    fn maybe_read_ahead(
        &self,
        path: &Arc<str>,
        meta: &Arc<ObjectMeta>,
        span: ByteSpan,
        chunking: crate::chunk::Chunking,
        ranged: bool,
    ) {
        if !ranged || self.config.readahead_chunks == 0 || span.is_empty() {
            return;
        }
        let sequential = {
            let mut ends = self.last_end.lock();
            if ends.len() >= MAX_TRACKED_READERS {
                ends.clear();
            }
            let prev = ends.insert(path.clone(), span.end);
            prev.is_some_and(|end| end.abs_diff(span.start) <= chunking.chunk_size)
        };
        if !sequential {
            return;
        }
        let next = (span.end - 1) / chunking.chunk_size + 1;
        let last = (next + self.config.readahead_chunks as u64).min(chunking.count());
        for index in next..last {
            let key = self.store.chunk_key(path, meta, index);
            if self.store.has_chunk(&key) {
                continue;
            }
            let Ok(permit) = self.readahead.clone().try_acquire_owned() else {
                return;
            };
            let store = self.store.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = store.chunk(&key).await;
            });
        }
    }
}

fn is_changed(e: &LoadError) -> bool {
    matches!(e, LoadError::Failed { message, .. } if &**message == CHANGED)
}

/// The status and body for a failed load: 404, 504 on a timeout, else 502. Never cached.
fn error_reply(e: LoadError) -> Stop {
    Stop::Reply(match e {
        LoadError::NotFound => plain(StatusCode::NOT_FOUND, "not found\n"),
        LoadError::Timeout { after, .. } => plain(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("shoal: the origin did not answer within {after:?}\n"),
        ),
        e => plain(
            StatusCode::BAD_GATEWAY,
            &format!("shoal: the origin is unavailable: {e}\n"),
        ),
    })
}

fn set(r: &mut Response<ProxyBody>, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// A reply carrying the object's headers.
fn reply(status: StatusCode, meta: &ObjectMeta, body: ProxyBody) -> Response<ProxyBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    common(&mut r);
    if let Some(etag) = &meta.etag {
        set(&mut r, header::ETAG, etag);
    }
    if let Some(t) = meta.last_modified {
        set(&mut r, header::LAST_MODIFIED, &httpdate::fmt_http_date(t));
    }
    let ct = meta
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    set(&mut r, header::CONTENT_TYPE, ct);
    for (name, value) in meta.headers.iter() {
        set(&mut r, name.clone(), value);
    }
    r
}

/// A short text reply (errors, 405, 416).
fn plain(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(Bytes::copy_from_slice(text.as_bytes())));
    *r.status_mut() = status;
    common(&mut r);
    set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(&mut r, header::CONTENT_LENGTH, &text.len().to_string());
    r
}

fn common(r: &mut Response<ProxyBody>) {
    let h = r.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::SERVER, HeaderValue::from_static("shoal"));
}
