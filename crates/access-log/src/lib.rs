//! nginx-style access logs for shoal's HTTP doors (`shoal serve`, `shoal route`).
//!
//! One line per request in nginx's `combined` format, so what reads nginx's logs (goaccess,
//! awstats, the nginx parsers of log shippers) reads these:
//!
//! ```text
//! 127.0.0.1 - - [21/Nov/2026:18:57:42 +0000] "GET /a.mp4 HTTP/1.1" 206 1048576 "-" "curl/8.5.0"
//! ```
//!
//! - The time is when the reply ended, in the host's time zone (nginx's `$time_local`).
//! - The byte count is the body bytes handed to the connection (`$body_bytes_sent`): fewer
//!   than announced when the client left early.
//! - A client that leaves before its reply starts is logged with status 499, as by nginx.
//! - `"`, `\`, control and non-ASCII bytes in the request line, referer and user agent are
//!   written as `\xHH` (nginx's default escaping), so a line is always one line.
//!
//! Lines are formatted on the request's task and written by a thread of their own, so a slow
//! disk never holds a reply. Up to 65,536 lines may wait; past that a line is dropped and
//! counted ([`AccessLog::dropped`], and the `shoal_access_log_dropped_total` metric) rather
//! than making requests wait. [`AccessLog::reopen`]
//! reopens the file after log rotation (shoal does it on SIGUSR1, as nginx does).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::task::{Context, Poll};

use bytes::Buf;
use http::{Request, Response, header};
use http_body::{Body, Frame, SizeHint};

/// Lines waiting for the writer thread before new ones are dropped.
const QUEUE: usize = 65_536;

/// An open access log. Cheap to share (`Arc`); every clone writes to the same file.
#[derive(Debug)]
pub struct AccessLog {
    path: PathBuf,
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
}

enum Msg {
    Line(String),
    Reopen,
    Flush(mpsc::Sender<()>),
}

impl AccessLog {
    /// Opens `path` for appending (created if missing, mode 0644 less the umask) and starts
    /// the writer thread.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Arc<AccessLog>> {
        let path = path.as_ref().to_path_buf();
        let file = open(&path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(&thread_path, BufWriter::new(file), &rx))?;
        Ok(Arc::new(AccessLog {
            path,
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file and opens `path` again, after the lines already queued: the old file
    /// gets every line before the call. For log rotation.
    pub fn reopen(&self) {
        let _ = self.tx.send(Msg::Reopen);
    }

    /// Waits until every line queued before the call is written to the file.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Lines dropped because the writer fell 65,536 lines behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Notes what the line of `req`, from `peer`, needs. The line is written when the reply
    /// made with [`Started::wrap`] ends, or with status 499 if `Started` is dropped first.
    pub fn start<B>(self: &Arc<Self>, req: &Request<B>, peer: SocketAddr) -> Started {
        let mut request = String::with_capacity(16 + req.uri().path().len());
        request.push_str(req.method().as_str());
        request.push(' ');
        let uri = req.uri();
        match uri.path_and_query() {
            Some(pq) if uri.scheme().is_none() => escape(&mut request, pq.as_str().as_bytes()),
            _ => escape(&mut request, uri.to_string().as_bytes()),
        }
        request.push(' ');
        let _ = write!(request, "{:?}", req.version());
        let mut tail = String::with_capacity(64);
        quoted(&mut tail, req.headers().get(header::REFERER));
        tail.push(' ');
        quoted(&mut tail, req.headers().get(header::USER_AGENT));
        Started(Some(Box::new(Entry {
            log: self.clone(),
            peer: peer.ip().to_canonical(),
            request,
            tail,
        })))
    }

    fn send(&self, line: String) {
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("shoal_access_log_dropped_total").increment(1);
            }
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes lines as they come, flushing whenever the queue runs empty.
fn write_loop(path: &Path, mut out: BufWriter<File>, rx: &Receiver<Msg>) {
    let mut failing = false;
    let mut report = |r: io::Result<()>| match r {
        Ok(()) => failing = false,
        Err(e) if !failing => {
            failing = true;
            eprintln!("access log {}: {e}", path.display());
        }
        Err(_) => {}
    };
    loop {
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Empty) => {
                report(out.flush());
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match msg {
            Msg::Line(line) => report(out.write_all(line.as_bytes())),
            Msg::Reopen => {
                report(out.flush());
                match open(path) {
                    Ok(f) => out = BufWriter::new(f),
                    Err(e) => report(Err(e)),
                }
            }
            Msg::Flush(done) => {
                report(out.flush());
                let _ = done.send(());
            }
        }
    }
    report(out.flush());
}

/// What a request's line needs, kept from its start to its end.
#[derive(Debug)]
struct Entry {
    log: Arc<AccessLog>,
    peer: IpAddr,
    /// The request line, escaped.
    request: String,
    /// `"referer" "user agent"`, escaped.
    tail: String,
}

impl Entry {
    fn write(&self, status: u16, bytes: u64) {
        let mut line = String::with_capacity(80 + self.request.len() + self.tail.len());
        let _ = write!(line, "{} - - [", self.peer);
        time_local(&mut line);
        let _ = writeln!(
            line,
            "] \"{}\" {status} {bytes} {}",
            self.request, self.tail
        );
        self.log.send(line);
    }
}

/// A request whose reply is not made yet. Dropped unused (the client left, so the
/// request's task was cancelled), it logs the request with status 499.
#[derive(Debug)]
pub struct Started(Option<Box<Entry>>);

impl Started {
    /// The reply, logged when its body ends (or is dropped).
    pub fn wrap<B>(mut self, resp: Response<B>) -> Response<Logged<B>> {
        let status = resp.status().as_u16();
        let entry = self.0.take();
        resp.map(|inner| Logged {
            inner,
            end: entry.map(|entry| Ended {
                entry,
                status,
                bytes: 0,
            }),
        })
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(e) = self.0.take() {
            e.write(499, 0);
        }
    }
}

#[derive(Debug)]
struct Ended {
    entry: Box<Entry>,
    status: u16,
    bytes: u64,
}

/// A reply body that writes its request's line when it ends: the last frame was taken, or
/// the body was dropped (the reply was cut off, or had no body to send).
#[derive(Debug)]
pub struct Logged<B> {
    inner: B,
    end: Option<Ended>,
}

impl<B> Logged<B> {
    /// A body that logs nothing (access logging is off).
    pub fn off(inner: B) -> Self {
        Logged { inner, end: None }
    }

    fn finish(&mut self) {
        if let Some(e) = self.end.take() {
            e.entry.write(e.status, e.bytes);
        }
    }
}

impl<B> Body for Logged<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(e), Some(data)) = (&mut this.end, frame.data_ref()) {
                    e.bytes += data.remaining() as u64;
                }
            }
            Poll::Ready(None) => this.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Appends `"value"` escaped, or `"-"` when the header is absent or empty.
fn quoted(out: &mut String, value: Option<&http::HeaderValue>) {
    out.push('"');
    match value.map(http::HeaderValue::as_bytes) {
        Some(v) if !v.is_empty() => escape(out, v),
        _ => out.push('-'),
    }
    out.push('"');
}

/// nginx's default log escaping: `"`, `\`, bytes below 0x20 and from 0x7f up as `\xHH`.
fn escape(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

thread_local! {
    /// The formatted time of the current second, as nginx caches its time strings.
    static NOW: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// Appends the time now as nginx's `$time_local`: `21/Nov/2026:18:57:42 +0000`.
fn time_local(out: &mut String) {
    let now = chrono::Local::now();
    NOW.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != now.timestamp() {
            cached.1.clear();
            let _ = write!(cached.1, "{}", now.format("%d/%b/%Y:%H:%M:%S %z"));
            cached.0 = now.timestamp();
        }
        out.push_str(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    fn request(uri: &str, headers: &[(&str, &[u8])]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for (n, v) in headers {
            b = b.header(*n, http::HeaderValue::from_bytes(v).unwrap());
        }
        b.body(()).unwrap()
    }

    fn lines(log: &AccessLog) -> Vec<String> {
        log.flush();
        std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Drops the `[time]` field, which the tests cannot know.
    fn timeless(line: &str) -> String {
        let (head, rest) = line.split_once(" [").unwrap();
        let (time, tail) = rest.split_once("] ").unwrap();
        assert_eq!(time.len(), 26, "{time}");
        format!("{head} {tail}")
    }

    fn open() -> (tempfile::TempDir, Arc<AccessLog>) {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path().join("access.log")).unwrap();
        (dir, log)
    }

    #[tokio::test]
    async fn a_whole_reply_is_one_combined_line() {
        let (_dir, log) = open();
        let peer: SocketAddr = "[::ffff:10.1.2.3]:5555".parse().unwrap();
        let req = request(
            "/v/a%20b.mp4?x=1",
            &[
                ("user-agent", b"curl/8.5.0"),
                ("referer", b"http://e.x/\"q\""),
            ],
        );
        let resp = Response::builder()
            .status(206)
            .body(Full::new(Bytes::from_static(b"0123456789")))
            .unwrap();
        let resp = log.start(&req, peer).wrap(resp);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 10);
        assert_eq!(
            lines(&log).iter().map(|l| timeless(l)).collect::<Vec<_>>(),
            [
                r#"10.1.2.3 - - "GET /v/a%20b.mp4?x=1 HTTP/1.1" 206 10 "http://e.x/\x22q\x22" "curl/8.5.0""#
            ]
        );
    }

    #[tokio::test]
    async fn cut_replies_unsent_bodies_and_abandoned_requests() {
        let (_dir, log) = open();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let req = request("/x", &[("user-agent", b"a\tb\xff")]);
        // A body dropped after its first frame: the bytes sent so far.
        let chunks = Chunks([Bytes::from_static(b"abc"), Bytes::from_static(b"defgh")].into());
        let mut resp = log.start(&req, peer).wrap(Response::new(chunks));
        let first = resp.body_mut().frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        drop(resp);
        // A HEAD-like reply whose body is never polled.
        let resp = log
            .start(&req, peer)
            .wrap(Response::new(Full::new(Bytes::new())));
        drop(resp);
        // The client left before the reply existed.
        drop(log.start(&req, peer));
        // Logging off: nothing.
        drop(Logged::off(Full::new(Bytes::from_static(b"zz"))));
        let got: Vec<String> = lines(&log).iter().map(|l| timeless(l)).collect();
        assert_eq!(
            got,
            [
                r#"127.0.0.1 - - "GET /x HTTP/1.1" 200 3 "-" "a\x09b\xFF""#,
                r#"127.0.0.1 - - "GET /x HTTP/1.1" 200 0 "-" "a\x09b\xFF""#,
                r#"127.0.0.1 - - "GET /x HTTP/1.1" 499 0 "-" "a\x09b\xFF""#,
            ]
        );
    }

    #[test]
    fn reopen_moves_to_a_new_file_after_rotation() {
        let (dir, log) = open();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        drop(log.start(&request("/one", &[]), peer));
        log.flush();
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(log.path(), &rotated).unwrap();
        drop(log.start(&request("/two", &[]), peer));
        log.reopen();
        drop(log.start(&request("/three", &[]), peer));
        let now = lines(&log);
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert!(old.contains("/one") && old.contains("/two"), "{old}");
        assert_eq!(now.len(), 1, "{now:?}");
        assert!(now[0].contains("/three"), "{now:?}");
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn time_is_nginx_time_local() {
        let mut s = String::new();
        time_local(&mut s);
        // 21/Nov/2026:18:57:42 +0000
        let b = s.as_bytes();
        assert_eq!(s.len(), 26, "{s}");
        assert!(
            b[2] == b'/' && b[6] == b'/' && b[11] == b':' && b[20] == b' ',
            "{s}"
        );
        assert!(b[21] == b'+' || b[21] == b'-', "{s}");
    }

    /// A body of several data frames.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }
}
