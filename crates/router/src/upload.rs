//! Bulk loading through the router's own placement: photosrv's `shardsprites` tool as a
//! library, behind `shoal upload`.
//!
//! Each input line is handed to [`Router::handle`] in process, as a PUT (or DELETE) would be
//! by a client of `shoal route`: the same normalisation, the same shard (both rings' during a
//! migration), the same quorum write to every replica, the same journal for replicas that
//! missed it. No router needs to run. Bodies are streamed from the file or the source URL to
//! every replica at once, never held whole.
//!
//! - [`Mode::Urls`]: a line is an `http://` or `https://` URL. It is fetched; its path is the key. A 404 from
//!   the source is skipped ([`Outcome::SourceMissing`], photosrv skipped these silently); any
//!   other answer but 200 is a failure.
//! - [`Mode::Local`]: a line is a local file path; the key is [`local_key`] of it.
//! - [`Mode::Delete`]: a line is a key (a path); it is deleted from every replica.
//!
//! Lines are bytes: a local file name on Unix is whatever bytes the file system holds (a
//! Latin-1 `caf\xE9.jpg`, say), and its key is those bytes, which the router stores and
//! serves as it does a request for `caf%E9.jpg`.
//!
//! With `check`, a HEAD through the router's read path comes first, and a 200 skips the line
//! ([`Outcome::Present`]). Each line must finish within the router's `write_timeout`.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::body::{BoxError, ChannelBody, empty};
use crate::normalize::encode_path;
use crate::router::Router;
use crate::upstream::chain;

/// What the input lines name, and what to do with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `http://` or `https://` URLs: GET each, PUT its body under the URL's path. An
    /// `https://` source's certificate is checked as a storage node's is.
    Urls,
    /// Local file paths: PUT each file under [`local_key`] of its path.
    Local,
    /// Keys (paths): DELETE each from every replica.
    Delete,
}

/// How to run a bulk load.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// What the lines are.
    pub mode: Mode,
    /// Lines worked on at once. Default: 4 (photosrv's `-w`).
    pub workers: usize,
    /// HEAD the key first and skip the line when it answers 200. Default: false.
    pub check: bool,
    /// Directory relative local paths are read from. Default: the current directory.
    pub local_root: Option<PathBuf>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            mode: Mode::Urls,
            workers: 4,
            check: false,
            local_root: None,
        }
    }
}

/// How one line ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored on a quorum of every shard it maps to; `stored` counts replicas (`3/3`).
    Stored {
        /// The router's `x-shoal-stored` answer: replicas stored / replicas asked.
        stored: String,
    },
    /// Deleted (or already absent) on a quorum.
    Deleted,
    /// `check` found the key present; nothing was sent.
    Present,
    /// The source URL answered 404; skipped.
    SourceMissing,
    /// Not done; worth retrying once the reason is fixed.
    Failed(String),
}

impl Outcome {
    /// Whether the line should be listed for a retry.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
}

/// The key photosrv's `-local` mode gives a file path: a leading `./` stripped and `//`
/// collapsed to `/` (here also any leading `/`, so `/a/b` and `a/b` are the same key).
/// Bytes in, bytes out: a file name need not be UTF-8, and only ASCII white space around it
/// is trimmed.
pub fn local_key(path: impl AsRef<[u8]>) -> Vec<u8> {
    let mut k = path.as_ref().trim_ascii();
    while let Some(rest) = k.strip_prefix(b"./") {
        k = rest;
    }
    let mut out: Vec<u8> = Vec::with_capacity(k.len());
    for &c in k {
        if !(c == b'/' && out.last().is_none_or(|&l| l == b'/')) {
            out.push(c);
        }
    }
    out
}

/// Works through `lines` (text or bytes) with `opts.workers` workers, calling `report` once
/// per line (in completion order) from the caller's task.
pub async fn run<L>(
    router: &Router,
    lines: Vec<L>,
    opts: &UploadOptions,
    mut report: impl FnMut(&L, &Outcome),
) where
    L: AsRef<[u8]> + Send + 'static,
{
    let queue = Arc::new(Mutex::new(VecDeque::from(lines)));
    let workers = opts.workers.max(1);
    let (tx, mut rx) = mpsc::channel::<(L, Outcome)>(workers * 2);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (queue, tx, router, opts) = (queue.clone(), tx.clone(), router.clone(), opts.clone());
        set.spawn(async move {
            loop {
                let Some(line) = queue.lock().pop_front() else {
                    break;
                };
                // A source or node that stalls mid-body must not hold a worker for ever;
                // dropping the write aborts every replica's request, so none keeps a torn copy.
                let limit = router.inner.settings.load().write_timeout;
                let out = tokio::time::timeout(limit, one(&router, &opts, line.as_ref()))
                    .await
                    .unwrap_or_else(|_| {
                        Outcome::Failed(format!("not finished within {limit:?} (--write-timeout)"))
                    });
                if tx.send((line, out)).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    while let Some((line, out)) = rx.recv().await {
        report(&line, &out);
    }
    while set.join_next().await.is_some() {}
}

/// One line, start to end.
pub async fn one(router: &Router, opts: &UploadOptions, line: &[u8]) -> Outcome {
    let line = line.trim_ascii();
    let (path, source) = match opts.mode {
        Mode::Local | Mode::Delete => {
            let mut key = local_key(line);
            key.insert(0, b'/');
            (encode_path(&key), None)
        }
        Mode::Urls => match source_uri(line) {
            Ok(u) => (u.path().to_string(), Some(u)),
            Err(e) => return Outcome::Failed(e),
        },
    };
    if path == "/" {
        return Outcome::Failed("empty key".into());
    }
    if opts.check && opts.mode != Mode::Delete {
        match call(router, Method::HEAD, &path, None, empty()).await {
            Ok((StatusCode::OK, _)) => return Outcome::Present,
            Ok(_) => {}
            Err(e) => return Outcome::Failed(format!("HEAD {path}: {e}")),
        }
    }
    match (opts.mode, source) {
        (Mode::Delete, _) => match call(router, Method::DELETE, &path, None, empty()).await {
            Ok(_) => Outcome::Deleted,
            Err(e) => Outcome::Failed(e),
        },
        (Mode::Urls, Some(uri)) => fetch_and_put(router, uri, &path).await,
        _ => {
            // A Unix file name is bytes; the line names the file exactly.
            let name = OsStr::from_bytes(line);
            let file = match &opts.local_root {
                Some(root) => root.join(name),
                None => PathBuf::from(name),
            };
            let (body, len) = match file_body(&file).await {
                Ok(b) => b,
                Err(e) => return Outcome::Failed(format!("{}: {e}", file.display())),
            };
            stored(call(router, Method::PUT, &path, Some(len), body).await)
        }
    }
}

fn source_uri(line: &[u8]) -> Result<http::Uri, String> {
    let uri = http::Uri::try_from(line)
        .map_err(|e| format!("not a URL ({e}); use --local for file paths"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err("only http:// and https:// source URLs are supported".into());
    }
    Ok(uri)
}

async fn fetch_and_put(router: &Router, uri: http::Uri, path: &str) -> Outcome {
    let inner = &router.inner;
    let mut req = Request::new(empty());
    *req.uri_mut() = uri;
    let timeout = inner.settings.load().response_timeout;
    let resp = match tokio::time::timeout(timeout, inner.client.request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Outcome::Failed(format!("source: {}", chain(&e))),
        Err(_) => return Outcome::Failed(format!("source: no answer within {timeout:?}")),
    };
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Outcome::SourceMissing,
        s => return Outcome::Failed(format!("source answered {s}")),
    }
    let len = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    stored(call(router, Method::PUT, path, len, resp.into_body()).await)
}

fn stored(res: Result<(StatusCode, Option<String>), String>) -> Outcome {
    match res {
        Ok((_, s)) => Outcome::Stored {
            stored: s.unwrap_or_default(),
        },
        Err(e) => Outcome::Failed(e),
    }
}

/// Sends one request through the router in process. Success (`Ok`) is a 2xx, or any answer
/// to a HEAD; the error is the status and the router's one-line reason.
async fn call<B>(
    router: &Router,
    method: Method,
    path: &str,
    len: Option<u64>,
    body: B,
) -> Result<(StatusCode, Option<String>), String>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = path
        .parse()
        .map_err(|e| format!("bad path {path:?}: {e}"))?;
    if let Some(len) = len {
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    let resp = router.handle(req).await;
    let status = resp.status();
    let stored = resp
        .headers()
        .get("x-shoal-stored")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if status.is_success() || method == Method::HEAD {
        return Ok((status, stored));
    }
    let text = match resp.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes())
            .trim()
            .replace('\n', " "),
        Err(e) => e.to_string(),
    };
    Err(format!("{method} {path}: {status}: {text}"))
}

/// The file's bytes as a body, read in 64 KiB chunks by a task as the replicas take them. A
/// file that changes size while it is read aborts the upload rather than storing a torn copy.
async fn file_body(path: &std::path::Path) -> std::io::Result<(ChannelBody, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let len = meta.len();
    let (tx, rx) = mpsc::channel::<Result<Bytes, BoxError>>(8);
    tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            let mut buf = BytesMut::with_capacity(64 << 10);
            let res = file.read_buf(&mut buf).await;
            let item: Result<Bytes, BoxError> = match res {
                Ok(0) if sent == len => break,
                Ok(0) => Err("file shrank while it was read".into()),
                Ok(n) if sent + n as u64 > len => Err("file grew while it was read".into()),
                Ok(n) => {
                    sent += n as u64;
                    Ok(buf.freeze())
                }
                Err(e) => Err(e.into()),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    Ok((ChannelBody::new(rx, Some(len)), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_keys_are_photosrvs() {
        assert_eq!(local_key("./images/a.jpg"), b"images/a.jpg");
        assert_eq!(local_key("././images//x///a.jpg"), b"images/x/a.jpg");
        assert_eq!(local_key("/abs/path.jpg"), b"abs/path.jpg");
        assert_eq!(local_key("//abs//path.jpg"), b"abs/path.jpg");
        assert_eq!(local_key("plain.jpg\n"), b"plain.jpg");
        assert_eq!(local_key(b"./caf\xe9//x\xff.jpg"), b"caf\xe9/x\xff.jpg");
    }

    #[test]
    fn source_urls_must_be_http() {
        assert!(source_uri(b"http://127.0.0.1:1/a.jpg").is_ok());
        assert!(source_uri(b"https://example.com/a.jpg").is_ok());
        assert!(source_uri(b"ftp://example.com/a.jpg").is_err());
        assert!(source_uri(b"https:///a.jpg").is_err());
        assert!(source_uri(b"images/a.jpg").is_err());
        assert!(source_uri(b"http://127.0.0.1:1/caf\xe9.jpg").is_err());
    }
}
