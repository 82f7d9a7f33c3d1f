//! Repair: bring every replica of a shard to the same files.
//!
//! - [`Router::repair_journal`] replays the journal: a missed PUT is copied to the replica from
//!   another replica that has the file; a missed DELETE is repeated, unless a replica the
//!   DELETE reached holds the file again (uploaded since), which is then copied instead. What
//!   still fails is put back in the journal.
//! - [`Router::repair_by_listing`] lists every node with WebDAV `PROPFIND` (`Depth: 1`, walked
//!   recursively), and copies each file to the replicas of its home shard that lack it. The
//!   home is the serving ring's shard (the migration ring's once a migration has started).
//!   With `cleanup`, a file on a node outside its home shard is deleted once its home has it:
//!   the clean-up after a migration. Listing cannot see deletes, so replay the journal first,
//!   or a file deleted while a replica was down comes back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;

use crate::RouteError;
use crate::body::empty;
use crate::idle::{IdleTimeout, Side};
use crate::journal::{self, Entry};
use crate::migration::MigrationState;
use crate::normalize::{display_path, encode_path, unescape};
use crate::replica::{NodeName, Replica};
use crate::router::Router;
use crate::upstream::{request, send};

/// What a repair did (or, with `dry_run`, would do). Paths are shown as text, percent-encoded
/// when their bytes are not UTF-8 ([`display_path`]).
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// `(replica, path)` copies made.
    pub copied: Vec<(String, String)>,
    /// `(replica, path)` deletes made.
    pub deleted: Vec<(String, String)>,
    /// Problems, one line each; journal entries behind them are kept.
    pub failed: Vec<String>,
}

impl Router {
    /// The replica whose canonical base URL is `base` (journal entries are made canonical
    /// first, in [`Router::repair_journal`]).
    fn replica_by_base(&self, base: &str) -> Option<Arc<Replica>> {
        self.inner
            .topo
            .load()
            .all
            .iter()
            .find(|r| r.base() == base)
            .cloned()
    }

    /// Copies `path` from one of `sources` to `to`, streaming.
    async fn copy(
        &self,
        path: &[u8],
        sources: &[Arc<Replica>],
        to: &Arc<Replica>,
    ) -> Result<bool, String> {
        let pq = encode_path(path);
        let t = self.inner.settings.load().write_timeout;
        let mut last = String::from("no source replica");
        for src in sources.iter().filter(|s| !Arc::ptr_eq(s, to)) {
            let req = request(src, Method::GET, &pq, HeaderMap::new(), empty())?;
            let resp = match send(self.inner.client.clone(), src.clone(), req, t).await {
                Ok(r) => r,
                Err(e) => {
                    last = e.message;
                    continue;
                }
            };
            if resp.status() == StatusCode::NOT_FOUND {
                continue;
            }
            if resp.status() != StatusCode::OK {
                last = format!("{}: GET {pq}: {}", src.base(), resp.status());
                continue;
            }
            let mut headers = HeaderMap::new();
            if let Some(len) = resp.headers().get(header::CONTENT_LENGTH) {
                headers.insert(header::CONTENT_LENGTH, len.clone());
            }
            // nginx takes a PUT's Date for the file's mtime, which its ETag and Last-Modified
            // are made of: the copy keeps the source's, so every replica gives the same.
            if let Some(at) = resp.headers().get(header::LAST_MODIFIED) {
                headers.insert(header::DATE, at.clone());
            }
            // A source that stalls mid-copy fails the copy instead of holding it.
            let body = IdleTimeout::new(
                resp.into_body().map_err(Into::into),
                self.inner.settings.load().body_timeout,
                self.inner.clone(),
                Side::ReplicaResponse,
            )
            .boxed_unsync();
            let req = request(to, Method::PUT, &pq, headers, body)?;
            let put = send(self.inner.client.clone(), to.clone(), req, t)
                .await
                .map_err(|e| e.message)?;
            if !put.status().is_success() {
                return Err(format!("{}: PUT {pq}: {}", to.base(), put.status()));
            }
            return Ok(true);
        }
        if last == "no source replica" {
            Ok(false)
        } else {
            Err(last)
        }
    }

    async fn delete_on(&self, path: &[u8], on: &Arc<Replica>) -> Result<(), String> {
        let pq = encode_path(path);
        let req = request(on, Method::DELETE, &pq, HeaderMap::new(), empty())?;
        let timeout = self.inner.settings.load().write_timeout;
        let resp = send(self.inner.client.clone(), on.clone(), req, timeout)
            .await
            .map_err(|e| e.message)?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(format!("{}: DELETE {pq}: {}", on.base(), resp.status()))
        }
    }

    /// Replays the journal at `path` (with `dry_run`, reports what it would replay, an
    /// interrupted repair's leftovers included); see the module docs. Holds the journal's
    /// [`journal::RepairLock`] throughout, a dry run too (its report would be wrong while
    /// another repair moves entries about), so a second repair of the same journal fails at
    /// once with [`RouteError::RepairRunning`]. The router's appends are not held up.
    pub async fn repair_journal(
        &self,
        path: &Path,
        dry_run: bool,
    ) -> Result<RepairReport, RouteError> {
        let lock = journal::lock_for_repair(path)?;
        let entries = if dry_run {
            journal::peek(path, &lock)?
        } else {
            journal::take(path, &lock)?
        };
        // The last operation per (replica, path) is the one that matters. Replicas go by their
        // canonical name: a journal written by an older router, or before the config spelled
        // a node another way, names the same node under another spelling.
        let mut last: BTreeMap<(String, Vec<u8>), Entry> = BTreeMap::new();
        for mut e in entries {
            if let Ok(name) = NodeName::parse(&e.replica) {
                e.replica = name.to_string();
            }
            last.insert((e.replica.clone(), e.path.clone()), e);
        }
        // Replicas that missed the last DELETE of a path: their copies say nothing of a newer
        // upload.
        let missed_delete: BTreeSet<(String, Vec<u8>)> = last
            .iter()
            .filter(|(_, e)| e.op == "DELETE")
            .map(|(k, _)| k.clone())
            .collect();
        let mut report = RepairReport::default();
        let mut keep = Vec::new();
        for ((base, p), e) in last {
            let shown = display_path(&p).into_owned();
            let Some(to) = self.replica_by_base(&base) else {
                report.failed.push(format!(
                    "{base}: not in the configuration; entry for {shown} dropped"
                ));
                continue;
            };
            if dry_run {
                match e.op.as_str() {
                    "DELETE" => report.deleted.push((base, shown)),
                    _ => report.copied.push((base, shown)),
                }
                continue;
            }
            let res = if e.op == "DELETE" {
                // A replica the DELETE reached that holds the file again was written since:
                // the DELETE is stale, and `to` takes the new file instead.
                let mut newer = Vec::new();
                for r in self.write_set(&p) {
                    let skip = Arc::ptr_eq(&r, &to)
                        || missed_delete.contains(&(r.base().to_string(), p.clone()));
                    if !skip && self.holds(&p, &r).await {
                        newer.push(r);
                    }
                }
                if newer.is_empty() {
                    self.delete_on(&p, &to)
                        .await
                        .map(|()| report.deleted.push((base.clone(), shown)))
                } else {
                    self.copy(&p, &newer, &to).await.map(|copied| {
                        if copied {
                            report.copied.push((base.clone(), shown));
                        }
                    })
                }
            } else {
                let sources = self.sources(&p);
                self.copy(&p, &sources, &to).await.map(|copied| {
                    if copied {
                        report.copied.push((base.clone(), shown));
                    }
                })
            };
            if let Err(msg) = res {
                report.failed.push(msg);
                keep.push(e);
            }
        }
        if !dry_run {
            if !keep.is_empty() {
                journal::append(path, &keep)?;
            }
            journal::finish_take(path, &lock)?;
        }
        Ok(report)
    }

    /// The replicas a write of `path` goes to now.
    fn write_set(&self, path: &[u8]) -> Vec<Arc<Replica>> {
        let mut out: Vec<Arc<Replica>> = Vec::new();
        // The state before the topology, as in `Router::handle`.
        let state = self.migration_state();
        let targets = self.inner.topo.load().targets(path, state);
        for t in targets {
            for r in t.replicas {
                if !out.iter().any(|o| Arc::ptr_eq(o, &r)) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// Whether `on` answers 200 to a HEAD of `path` (an error counts as no).
    async fn holds(&self, path: &[u8], on: &Arc<Replica>) -> bool {
        let Ok(req) = request(
            on,
            Method::HEAD,
            &encode_path(path),
            HeaderMap::new(),
            empty(),
        ) else {
            return false;
        };
        let t = self.inner.settings.load().response_timeout;
        send(self.inner.client.clone(), on.clone(), req, t)
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    }

    /// Every replica of every ring's shard for `path`, usable ones first.
    fn sources(&self, path: &[u8]) -> Vec<Arc<Replica>> {
        let mut out: Vec<Arc<Replica>> = Vec::new();
        let topo = self.inner.topo.load_full();
        for t in topo.targets(path, MigrationState::Both) {
            for r in t.replicas {
                if !out.iter().any(|o| Arc::ptr_eq(o, &r)) {
                    out.push(r);
                }
            }
        }
        if topo.migration.is_none() {
            for t in topo.targets(path, MigrationState::Old) {
                out.extend(t.replicas);
            }
        }
        out.sort_by_key(|r| !r.usable());
        out
    }

    /// Lists every node and copies (and with `cleanup`, removes misplaced) files; see the
    /// module docs. Clean-up is refused while a migration is in `both`.
    pub async fn repair_by_listing(
        &self,
        dry_run: bool,
        cleanup: bool,
    ) -> Result<RepairReport, RouteError> {
        let state = self.migration_state();
        if cleanup && state == MigrationState::Both {
            return Err(RouteError::Migration(
                "clean-up would delete files the old ring still serves: finish (or abort) the migration first".into(),
            ));
        }
        // Writes placed under the previous state must have landed before the listing.
        let left = self.drain_writes().await;
        if left > 0 {
            return Err(RouteError::Migration(format!(
                "{left} write(s) admitted before the last migration switch are still running; try again when they end"
            )));
        }
        let serving = if state == MigrationState::Old {
            MigrationState::Old
        } else {
            MigrationState::New
        };
        let mut having: BTreeMap<Vec<u8>, Vec<Arc<Replica>>> = BTreeMap::new();
        let mut report = RepairReport::default();
        let topo = self.inner.topo.load_full();
        for node in &topo.all {
            match self.list(node).await {
                Ok(files) => {
                    for f in files {
                        having.entry(f).or_default().push(node.clone());
                    }
                }
                Err(e) => report.failed.push(e),
            }
        }
        for (path, on) in having {
            let shown = display_path(&path);
            let home: Vec<Arc<Replica>> = topo
                .targets(&path, serving)
                .into_iter()
                .flat_map(|t| t.replicas)
                .collect();
            let mut home_ok = true;
            for to in home
                .iter()
                .filter(|h| !on.iter().any(|o| Arc::ptr_eq(o, h)))
            {
                if dry_run {
                    report
                        .copied
                        .push((to.base().to_string(), shown.to_string()));
                    continue;
                }
                match self.copy(&path, &on, to).await {
                    Ok(true) => report
                        .copied
                        .push((to.base().to_string(), shown.to_string())),
                    Ok(false) => home_ok = false,
                    Err(e) => {
                        home_ok = false;
                        report.failed.push(e);
                    }
                }
            }
            if !cleanup || !home_ok {
                continue;
            }
            for extra in on
                .iter()
                .filter(|o| !home.iter().any(|h| Arc::ptr_eq(o, h)))
            {
                if dry_run {
                    report
                        .deleted
                        .push((extra.base().to_string(), shown.to_string()));
                } else {
                    match self.delete_on(&path, extra).await {
                        Ok(()) => report
                            .deleted
                            .push((extra.base().to_string(), shown.to_string())),
                        Err(e) => report.failed.push(e),
                    }
                }
            }
        }
        Ok(report)
    }

    /// Every file on `node`, as normalised paths (bytes: names need not be UTF-8), by walking
    /// PROPFIND `Depth: 1`.
    async fn list(&self, node: &Arc<Replica>) -> Result<Vec<Vec<u8>>, String> {
        let base_path = node
            .base()
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}").into_bytes())
            .unwrap_or_default();
        let mut dirs = vec![b"/".to_vec()];
        let mut files = Vec::new();
        let mut walked = 0usize;
        while let Some(dir) = dirs.pop() {
            walked += 1;
            if walked > 1_000_000 {
                return Err(format!(
                    "{}: more than a million directories; giving up",
                    node.base()
                ));
            }
            let mut h = HeaderMap::new();
            h.insert("depth", HeaderValue::from_static("1"));
            let m = Method::from_bytes(b"PROPFIND").map_err(|e| e.to_string())?;
            let pq = encode_path(&dir);
            let req = request(node, m, &pq, h, empty())?;
            let timeout = self.inner.settings.load().response_timeout;
            let resp = send(self.inner.client.clone(), node.clone(), req, timeout)
                .await
                .map_err(|e| e.message)?;
            if resp.status().as_u16() != 207 {
                return Err(format!("{}: PROPFIND {pq}: {}", node.base(), resp.status()));
            }
            let xml = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            for (href, is_dir) in parse_multistatus(&escape_non_ascii(&xml)) {
                let Ok(p) = unescape(&href, false) else {
                    continue;
                };
                let p = if let Some(rest) = p.strip_prefix(base_path.as_slice()) {
                    rest.to_vec()
                } else {
                    p
                };
                let p = if p.starts_with(b"/") {
                    p
                } else {
                    [&b"/"[..], &p].concat()
                };
                if trim_slashes(&p) == trim_slashes(&dir) {
                    continue;
                }
                if is_dir {
                    let mut d = p;
                    if !d.ends_with(b"/") {
                        d.push(b'/');
                    }
                    dirs.push(d);
                } else {
                    files.push(p);
                }
            }
        }
        Ok(files)
    }
}

/// `p` without its trailing `/`s.
fn trim_slashes(p: &[u8]) -> &[u8] {
    let end = p.iter().rposition(|&c| c != b'/').map_or(0, |i| i + 1);
    &p[..end]
}

/// A multistatus body as ASCII text, every byte outside ASCII written as its `%XX` escape. An
/// href is a URI, decoded with [`unescape`] anyway, so a server that puts a file name's raw
/// bytes in it (UTF-8 or not) gives the same bytes back, where a lossy UTF-8 conversion would
/// turn a Latin-1 name into replacement characters.
fn escape_non_ascii(xml: &[u8]) -> String {
    let mut out = String::with_capacity(xml.len());
    for &c in xml {
        if c.is_ascii() {
            out.push(char::from(c));
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// `(href, is_collection)` for each `response` of a WebDAV multistatus body.
fn parse_multistatus(xml: &str) -> Vec<(String, bool)> {
    let lower = xml.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("href>").map(|i| at + i + 5) {
        let Some(end) = lower[start..].find('<').map(|i| start + i) else {
            break;
        };
        let href = xml_text(xml[start..end].trim());
        // Skip this href's closing tag; the response runs to the next opening one.
        let close = lower[end..]
            .find("href>")
            .map_or(lower.len(), |i| end + i + 5);
        let next = lower[close..]
            .find("href>")
            .map_or(lower.len(), |i| close + i);
        let is_dir = lower[close..next].contains("collection");
        if seen.insert(href.clone()) {
            out.push((href, is_dir));
        }
        at = next;
    }
    out
}

/// XML character data as text: the five predefined entities and character references
/// (nginx writes `a&b.jpg` as `a&amp;b.jpg`). Anything else is kept as written.
fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let c = match &rest[1..semi] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e => e
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| e.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus() {
        let xml = r#"<?xml version="1.0" encoding="utf-8" ?>
<D:multistatus xmlns:D="DAV:">
<D:response><D:href>/a/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/a/x%20y.jpg</D:href><D:propstat><D:prop><D:resourcetype></D:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/a/sub/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
</D:multistatus>"#;
        assert_eq!(
            parse_multistatus(xml),
            [
                ("/a/".into(), true),
                ("/a/x%20y.jpg".into(), false),
                ("/a/sub/".into(), true)
            ]
        );
    }

    #[test]
    fn raw_bytes_in_hrefs_survive_as_escapes() {
        let xml = b"<D:href>/caf\xe9 /\xc3\xa9.jpg</D:href>";
        let text = escape_non_ascii(xml);
        assert_eq!(text, "<D:href>/caf%E9 /%C3%A9.jpg</D:href>");
        let (href, _) = &parse_multistatus(&text)[0];
        assert_eq!(unescape(href, false).unwrap(), b"/caf\xe9 /\xc3\xa9.jpg");
        assert_eq!(trim_slashes(b"/a//"), b"/a");
        assert_eq!(trim_slashes(b"//"), b"");
    }

    #[test]
    fn xml_entities_in_hrefs() {
        assert_eq!(
            xml_text("/a&amp;b&lt;&gt;&quot;&apos;.jpg"),
            "/a&b<>\"'.jpg"
        );
        assert_eq!(xml_text("/&#38;&#x26;"), "/&&");
        assert_eq!(xml_text("/a&b;c&"), "/a&b;c&");
    }
}
