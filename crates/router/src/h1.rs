//! The read path's HTTP/1.1 client: GET and HEAD to a storage node on a pooled keep-alive
//! connection that the request's own task drives, from the request line to the body's last
//! byte.
//!
//! **Why not hyper's client** (which writes, repair and health checks use): hyper drives each
//! connection from a task of its own and passes requests, responses and body chunks to it and
//! back over channels, behind a pool checkout. For a small read that machinery was a third of
//! the router's user-space time, more than the HTTP parsing itself: on `bench/route`'s 4 KiB
//! GETs the router spent 35-36 µs of CPU per request against haproxy's 28, with the same four
//! system calls. Here the request writes its request head and reads the answer itself, and
//! the body it returns owns the connection and puts it back in this thread's pool once its
//! last byte is read. A client that goes away mid-body drops the body, and with it the
//! connection, which nobody else could use in that state anyway.
//!
//! **What it speaks.** Responses framed by `Content-Length`, by the chunked transfer coding or
//! by the connection's end (RFC 9112 §6.3); a `Transfer-Encoding` overrides a length, and a
//! response with both is not reused. Interim 1xx answers are skipped; HEAD, 204 and 304 have
//! no body. Heads are parsed by httparse (hyper's parser) and limited to 64 KiB and 100
//! headers; chunk-size lines to 4 KiB, trailers (read and dropped) to 16 KiB.
//!
//! **The pool.** Per thread, as `Router::use_thread_local_pool` explains for hyper's pool: a
//! connection is registered with the reactor of the runtime that opened it, and `shoal
//! route` runs one single-threaded runtime per thread, so a body always ends on the thread
//! (and runtime) whose pool it came from. On a multi-threaded runtime (`--runtimes 0`, or a
//! program embedding the router) workers share one reactor, so a connection may end in
//! another worker's pool; the idle limit then holds per worker. Connections are reused newest
//! first. Idle ones are closed when over [`IDLE_TIMEOUT`] (nginx closes its own after 75 s),
//! found at a checkout or by a sweep at a check-in, so a thread that goes quiet keeps its
//! few idle connections (half-closed by the node) until it serves again. A pooled connection
//! that turns out closed before any byte of the answer came makes the thread drop its other
//! idle connections to that node, and the read is sent once more on a new connection (reads
//! are safe to repeat; once, so a node that closes on the request itself gets it twice at
//! most).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::body::BoxError;
use crate::replica::Replica;
use crate::upstream::{connection_named, is_hop_by_hop};

/// Largest response head taken.
const MAX_HEAD: usize = 64 * 1024;
/// Most headers in a response head (hyper's limit).
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Most trailer bytes read (and dropped) after a chunked body.
const MAX_TRAILERS: usize = 16 * 1024;
/// A connection's read buffer starts this big: a response head and a small body in one read.
const FIRST_READ: usize = 16 * 1024;
/// Most bytes asked of the socket at once for a body.
const BODY_READ: usize = 256 * 1024;
/// Idle connections older than this are closed rather than reused.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a read got no response from a replica.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// No connection could be made (the replica may be down).
    Connect(String),
    /// The connection failed or the replica broke the protocol.
    Exchange(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Connect(m) | FetchError::Exchange(m) => f.write_str(m),
        }
    }
}

/// How to reach replicas.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    pub(crate) connect_timeout: Duration,
    /// Idle connections kept per replica and thread.
    pub(crate) idle_per_host: usize,
    /// For `https://` replicas (ALPN `http/1.1`).
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// A connection's byte stream: plain TCP, or TLS over it for an `https://` replica.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Plain(s) => write!(f, "Plain({:?})", s.peer_addr()),
            Stream::Tls(s) => write!(f, "Tls({:?})", s.get_ref().0.peer_addr()),
        }
    }
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A read to send to one replica or several: the method, the path and query, and the
/// client's header lines that go with it.
#[derive(Debug)]
pub(crate) struct ReadRequest {
    method: Method,
    path_and_query: String,
    header_lines: Vec<u8>,
}

impl ReadRequest {
    /// `method` (GET or HEAD) for `path_and_query` (starting with `/`), with the end-to-end
    /// ones of `headers`: hop-by-hop headers, those `Connection` names, `Host` (each replica
    /// gets its own) and the body's framing (a read forwards no body) are left out.
    pub(crate) fn new(method: Method, path_and_query: String, headers: &HeaderMap) -> Self {
        let named = connection_named(headers);
        let mut header_lines = Vec::with_capacity(headers.len() * 32);
        for (k, v) in headers {
            if is_hop_by_hop(k)
                || k == header::HOST
                || k == header::CONTENT_LENGTH
                || k == header::TRANSFER_ENCODING
                || named.contains(k)
            {
                continue;
            }
            header_lines.extend_from_slice(k.as_str().as_bytes());
            header_lines.extend_from_slice(b": ");
            header_lines.extend_from_slice(v.as_bytes());
            header_lines.extend_from_slice(b"\r\n");
        }
        ReadRequest {
            method,
            path_and_query,
            header_lines,
        }
    }

    /// The request head for `replica`: `GET /base/path?query HTTP/1.1`, `Host`, the header
    /// lines.
    fn head_for(&self, replica: &Replica) -> Vec<u8> {
        let name = replica.name();
        let mut out = Vec::with_capacity(48 + self.path_and_query.len() + self.header_lines.len());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(name.path().as_bytes());
        out.extend_from_slice(self.path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        // As hyper, Go and curl send it: the port only when it is not the scheme's default.
        let authority = name.authority();
        let default_port = if name.is_https() { ":443" } else { ":80" };
        out.extend_from_slice(
            authority
                .strip_suffix(default_port)
                .unwrap_or(authority)
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.header_lines);
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Sends `req` to `replica` and returns its response once the head is in. The response's
/// headers are its end-to-end ones; its body streams from the connection.
pub(crate) async fn fetch(
    replica: &Arc<Replica>,
    req: &ReadRequest,
    dial: &Dial,
) -> Result<Response<ReadBody>, FetchError> {
    let head = req.head_for(replica);
    let is_head = req.method == Method::HEAD;
    let mut pooled = checkout(replica.pool_id());
    loop {
        let reused = pooled.is_some();
        let mut conn = match pooled.take() {
            Some(c) => c,
            None => connect(replica, dial).await?,
        };
        match exchange(&mut conn, &head, is_head).await {
            Ok(answer) => return Ok(answer.into_response(conn, replica, dial)),
            // A pooled connection the replica had closed (a restart, its keep-alive timeout):
            // its other idle ones on this thread are likely gone too, so they are dropped and
            // the read is sent once more, on a new connection. Only once: a replica that
            // closes on this request itself must not see it again and again.
            Err(Failed { early: true, .. }) if reused => {
                forget(replica.pool_id());
                continue;
            }
            Err(Failed { why, .. }) => {
                return Err(FetchError::Exchange(format!("{}: {why}", replica.base())));
            }
        }
    }
}

/// A connection to one replica and what it has read and not yet used.
#[derive(Debug)]
struct Conn {
    io: Stream,
    buf: BytesMut,
    /// The buffer grew past [`FIRST_READ`] for a body; see [`checkin`].
    grown: bool,
    idle_since: Instant,
}

impl Conn {
    /// Reads more into the buffer; `Ok(0)` at the connection's end.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
            self.grown |= want > FIRST_READ;
        }
        // `read_buf` is cancel-safe: a pending read moves no bytes, and the socket's waker
        // registration outlives the future.
        pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }
}

async fn connect(replica: &Replica, dial: &Dial) -> Result<Conn, FetchError> {
    let within = dial.connect_timeout;
    let fail = |why: String| FetchError::Connect(format!("{}: {why}", replica.base()));
    let authority = replica.authority();
    // The timeout covers a name's lookup too, and each address gets an even share of what is
    // left, so an unreachable first address (an AAAA record on an IPv4 network) leaves time
    // for the next.
    let deadline = tokio::time::Instant::now() + within;
    let addrs: Vec<SocketAddr> = match authority.parse::<SocketAddr>() {
        Ok(a) => vec![a],
        Err(_) => match tokio::time::timeout_at(deadline, tokio::net::lookup_host(authority)).await
        {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(e)) => return Err(fail(format!("resolving {authority}: {e}"))),
            Err(_) => {
                return Err(fail(format!(
                    "resolving {authority} took over the connect timeout ({within:?})"
                )));
            }
        },
    };
    let mut last = format!("{authority} resolved to no address");
    let mut io = None;
    for (i, a) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        match tokio::time::timeout(share, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                io = Some(s);
                break;
            }
            Ok(Err(e)) => last = format!("connecting to {a}: {e}"),
            Err(_) => last = format!("connecting to {a}: no connection within {share:?}"),
        }
    }
    let Some(io) = io else {
        return Err(fail(last));
    };
    let _ = io.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    let _ = socket2::SockRef::from(&io).set_tcp_keepalive(&keepalive);
    let io = if replica.name().is_https() {
        // The handshake gets what is left of the connect timeout.
        let host = replica.name().host();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| fail(format!("{host:?} is no TLS server name: {e}")))?;
        let handshake = tokio_rustls::TlsConnector::from(dial.tls.clone()).connect(name, io);
        match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
            Ok(Err(e)) => return Err(fail(format!("TLS handshake: {e}"))),
            Err(_) => {
                return Err(fail(format!(
                    "TLS handshake not done within the connect timeout ({within:?})"
                )));
            }
        }
    } else {
        Stream::Plain(io)
    };
    Ok(Conn {
        io,
        buf: BytesMut::with_capacity(FIRST_READ),
        grown: false,
        idle_since: Instant::now(),
    })
}

/// A failed exchange; `early` when it failed before any byte of an answer came, which on a
/// pooled connection means the replica had closed it.
struct Failed {
    why: String,
    early: bool,
}

/// A response head, parsed.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

async fn exchange(conn: &mut Conn, request: &[u8], is_head: bool) -> Result<Answer, Failed> {
    // A TLS stream holds what it was given until flushed; for TCP the flush is free.
    let sent = match conn.io.write_all(request).await {
        Ok(()) => conn.io.flush().await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        return Err(Failed {
            why: format!("sending the request: {e}"),
            early: true,
        });
    }
    let mut received = false;
    let mut interim = false;
    loop {
        if !conn.buf.is_empty() {
            received = true;
            if let Some((len, answer)) = parse_head(&conn.buf, is_head)? {
                let head = conn.buf.split_to(len).freeze();
                match answer {
                    Parsed::Interim => {
                        interim = true;
                        continue;
                    }
                    Parsed::Final(a) => return Ok(a.build(&head)),
                }
            }
            if conn.buf.len() >= MAX_HEAD {
                return Err(Failed {
                    why: format!("response head longer than {} KiB", MAX_HEAD / 1024),
                    early: false,
                });
            }
        }
        match std::future::poll_fn(|cx| conn.poll_fill(cx, FIRST_READ)).await {
            Ok(0) => {
                return Err(Failed {
                    why: if !conn.buf.is_empty() {
                        "connection closed in the response head".into()
                    } else if interim {
                        "connection closed after an interim (1xx) answer".into()
                    } else {
                        "connection closed before a response".into()
                    },
                    early: !received,
                });
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Failed {
                    why: format!("reading the response: {e}"),
                    early: !received,
                });
            }
        }
    }
}

enum Parsed {
    /// A 1xx answer to skip.
    Interim,
    Final(HeadParts),
}

/// A final head's facts, with its header values as ranges of the head's bytes.
struct HeadParts {
    status: StatusCode,
    headers: Vec<(HeaderName, Range<usize>)>,
    framing: Framing,
    keep_alive: bool,
}

impl HeadParts {
    fn build(self, head: &Bytes) -> Answer {
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (name, range) in self.headers {
            // httparse checked the bytes already.
            if let Ok(v) = HeaderValue::from_maybe_shared(head.slice(range)) {
                headers.append(name, v);
            }
        }
        Answer {
            status: self.status,
            headers,
            framing: self.framing,
            keep_alive: self.keep_alive,
        }
    }
}

/// Parses a response head at the start of `buf`: `None` while incomplete, else its length and
/// what it says.
fn parse_head(buf: &[u8], is_head: bool) -> Result<Option<(usize, Parsed)>, Failed> {
    let bad = |why: String| Failed { why, early: false };
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad(format!(
                "response with more than {MAX_HEADERS} headers"
            )));
        }
        Err(e) => return Err(bad(format!("bad response head: {e}"))),
    };
    let code = resp.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| bad(format!("bad response status {code}")))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(bad("unasked 101 Switching Protocols".into()));
    }
    if status.is_informational() {
        return Ok(Some((len, Parsed::Interim)));
    }
    let http11 = resp.version == Some(1);
    let mut keep_alive = http11;
    let mut close = false;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut dropped: Vec<HeaderName> = Vec::new();
    let mut kept = Vec::with_capacity(resp.headers.len());
    let start = buf.as_ptr() as usize;
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| bad(format!("bad header name {:?}", h.name)))?;
        if name == header::CONTENT_LENGTH {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| bad("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("two different Content-Lengths".into()));
            }
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding decides: chunked last frames the body, anything else
            // leaves it to the connection's end. Empty list items do not count.
            let last = h
                .value
                .rsplit(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .find(|c| !c.is_empty())
                .unwrap_or_default();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            continue;
        } else if name == header::CONNECTION {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive |= !http11;
                } else if let Ok(n) = HeaderName::from_bytes(token) {
                    dropped.push(n);
                }
            }
            continue;
        }
        if is_hop_by_hop(&name) {
            continue;
        }
        let at = h.value.as_ptr() as usize - start;
        kept.push((name, at..at + h.value.len()));
    }
    if !dropped.is_empty() {
        kept.retain(|(n, _)| !dropped.contains(n));
    }
    let framing =
        if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Length(0)
        } else {
            match (chunked, length) {
                (Some(true), _) => Framing::Chunked(Chunk::Size),
                (Some(false), _) | (None, None) => Framing::UntilClose,
                (None, Some(n)) => Framing::Length(n),
            }
        };
    if chunked.is_some() {
        // The body is ours to frame for the client; a length beside a transfer coding, or a
        // transfer coding in HTTP/1.0, is faulty framing (RFC 9112 §6.1, §6.3), and a
        // connection that sent one is not reused.
        if length.is_some() {
            kept.retain(|(n, _)| n != header::CONTENT_LENGTH);
            close = true;
        }
        close |= !http11;
    }
    if close || matches!(framing, Framing::UntilClose) {
        keep_alive = false;
    }
    Ok(Some((
        len,
        Parsed::Final(HeadParts {
            status,
            headers: kept,
            framing,
            keep_alive,
        }),
    )))
}

impl Answer {
    fn into_response(self, conn: Conn, replica: &Arc<Replica>, dial: &Dial) -> Response<ReadBody> {
        let body = ReadBody {
            conn: Some(conn),
            framing: self.framing,
            keep_alive: self.keep_alive,
            replica: replica.clone(),
            idle_per_host: dial.idle_per_host,
            trailer_bytes: 0,
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp.body_mut().settle();
        resp
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// After this many more bytes.
    Length(u64),
    /// Chunked, in this part of a chunk.
    Chunked(Chunk),
    /// At the connection's end.
    UntilClose,
    /// It has ended.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk, reading trailer lines up to the empty one.
    Trailers,
}

/// A replica's response body, read from the connection it came on; the connection goes back
/// to the pool when the body has ended cleanly.
#[derive(Debug)]
pub(crate) struct ReadBody {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    replica: Arc<Replica>,
    idle_per_host: usize,
    trailer_bytes: usize,
}

impl ReadBody {
    fn fail(&mut self, why: impl std::fmt::Display) -> BoxError {
        self.conn = None;
        self.framing = Framing::Done;
        format!("{}: {why}", self.replica.base()).into()
    }

    /// Ends an empty body at once, so its connection is back in the pool before the client
    /// has its answer.
    fn settle(&mut self) {
        if self.framing == Framing::Length(0) {
            self.end();
        }
    }

    /// The body has ended: the connection is pooled if it can carry another request.
    fn end(&mut self) {
        self.framing = Framing::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            checkin(self.replica.pool_id(), conn, self.idle_per_host);
        }
    }

    /// The next bytes of a chunked body, or `None` when more must be read first.
    fn step_chunked(&mut self, state: Chunk) -> Result<Option<Frame<Bytes>>, BoxError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.fail("body read after its connection closed"));
        };
        let buf = &mut conn.buf;
        match state {
            Chunk::Size => {
                let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                    if buf.len() > MAX_CHUNK_LINE {
                        return Err(self.fail("chunk-size line too long"));
                    }
                    return Ok(None);
                };
                // httparse reads an empty line as size 0, the last chunk: a torn body would
                // pass for a whole one.
                if !buf[0].is_ascii_hexdigit() {
                    return Err(self.fail("bad chunk-size line"));
                }
                match httparse::parse_chunk_size(&buf[..=nl]) {
                    Ok(httparse::Status::Complete((used, 0))) => {
                        buf.advance(used);
                        self.framing = Framing::Chunked(Chunk::Trailers);
                    }
                    Ok(httparse::Status::Complete((used, n))) => {
                        buf.advance(used);
                        self.framing = Framing::Chunked(Chunk::Data(n));
                    }
                    _ => return Err(self.fail("bad chunk-size line")),
                }
                Ok(None)
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(take).freeze();
                let left = left - take as u64;
                self.framing = Framing::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                Ok(Some(Frame::data(data)))
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(None);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(self.fail("chunk data not followed by CRLF"));
                }
                buf.advance(2);
                self.framing = Framing::Chunked(Chunk::Size);
                Ok(None)
            }
            Chunk::Trailers => loop {
                let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                    if self.trailer_bytes + buf.len() > MAX_TRAILERS {
                        return Err(self.fail("trailers too long"));
                    }
                    return Ok(None);
                };
                let line = buf.split_to(nl + 1);
                self.trailer_bytes += line.len();
                if self.trailer_bytes > MAX_TRAILERS {
                    return Err(self.fail("trailers too long"));
                }
                if &line[..] == b"\r\n" || &line[..] == b"\n" {
                    self.end();
                    return Ok(None);
                }
            },
        }
    }
}

impl http_body::Body for ReadBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let want = match this.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(0) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    let Some(conn) = this.conn.as_mut() else {
                        return Poll::Ready(Some(Err(this.fail("body read after its end"))));
                    };
                    if !conn.buf.is_empty() {
                        let take = usize::try_from(left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        this.framing = Framing::Length(left - take as u64);
                        if left == take as u64 {
                            this.end();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    usize::try_from(left).unwrap_or(BODY_READ).min(BODY_READ)
                }
                Framing::UntilClose => {
                    if let Some(conn) = this.conn.as_mut()
                        && !conn.buf.is_empty()
                    {
                        return Poll::Ready(Some(Ok(Frame::data(conn.buf.split().freeze()))));
                    }
                    BODY_READ
                }
                Framing::Chunked(state) => match this.step_chunked(state) {
                    Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Ok(None) if this.framing != Framing::Chunked(state) => continue,
                    Ok(None) => BODY_READ,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
            };
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(Some(Err(this.fail("body read after its end"))));
            };
            match ready!(conn.poll_fill(cx, want)) {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.conn = None;
                    this.framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return Poll::Ready(Some(Err(
                        this.fail("the replica closed the connection before the body's end")
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    return Poll::Ready(Some(Err(this.fail(format!("reading the body: {e}")))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

thread_local! {
    /// This thread's idle connections, by [`Replica::pool_id`].
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

#[derive(Default)]
struct Idle {
    by_replica: HashMap<u64, Vec<Conn>>,
    /// When connections of every replica were last checked for age: replicas a reload
    /// removed are not asked for again, and their connections must still close.
    swept: Option<Instant>,
}

/// A pooled connection to the replica `id`, newest first. One the replica has closed (which
/// the reactor has seen as readable; a live one has nothing to say between requests) or that
/// was idle too long is closed instead.
fn checkout(id: u64) -> Option<Conn> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let conns = idle.by_replica.get_mut(&id)?;
        while let Some(conn) = conns.pop() {
            if conn.idle_since.elapsed() < IDLE_TIMEOUT && open(&conn) {
                return Some(conn);
            }
        }
        None
    })
}

/// Drops this thread's idle connections to the replica `id`.
fn forget(id: u64) {
    IDLE.with(|idle| idle.borrow_mut().by_replica.remove(&id));
}

/// Whether an idle connection is still open: nothing to read yet. Costs no system call
/// while the reactor has seen no readiness since the last read ran dry.
fn open(conn: &Conn) -> bool {
    let mut probe = [0u8; 1];
    // For TLS, the socket under it: anything there (data, an alert, the end) while idle
    // means the connection is done with, and it is dropped, bytes and all.
    matches!(conn.io.tcp().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn checkin(id: u64, mut conn: Conn, max: usize) {
    if max == 0 {
        return;
    }
    let now = Instant::now();
    conn.idle_since = now;
    if conn.grown {
        // A large body's read buffer is not kept by an idle connection (one of possibly
        // hundreds): its capacity no longer shows it, as the body's frames were split off
        // it, but what is left shares their allocation. The next request reserves its own.
        conn.buf = BytesMut::new();
        conn.grown = false;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        if idle
            .swept
            .is_none_or(|t| now.duration_since(t) > IDLE_TIMEOUT)
        {
            idle.swept = Some(now);
            idle.by_replica.retain(|_, conns| {
                conns.retain(|c| now.duration_since(c.idle_since) < IDLE_TIMEOUT);
                !conns.is_empty()
            });
        }
        let conns = idle.by_replica.entry(id).or_default();
        if conns.len() >= max {
            // The oldest goes: it is the likeliest to have been closed by the replica.
            conns.remove(0);
        }
        conns.push(conn);
    });
}

#[cfg(test)]
mod tests;
