//! One downstream server: its address, its health (the retry-interval rule) and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::{DownstreamError, DownstreamErrorKind, PoolOptions};

/// Where a server is: `host:port` as given, split.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    /// The host (a name or an IP address; IPv6 without brackets).
    pub host: String,
    /// The port (11211 when the member did not say, as in libmemcached).
    pub port: u16,
}

impl ServerAddr {
    /// Parses a member `host[:port][:weight]`, `[v6]:port[:weight]` or `host:port weight`.
    /// Returns `None` for an empty host, a bad port, or brackets anywhere but around a host
    /// (as the rings refuse them).
    pub fn parse(member: &str) -> Option<ServerAddr> {
        let addr = member.split(' ').next().unwrap_or("");
        let (host, rest) = if let Some(inner) = addr.strip_prefix('[') {
            let (h, r) = inner.split_once(']')?;
            // After `[v6]`, nothing or `:port[:weight]`.
            (
                h,
                if r.is_empty() {
                    r
                } else {
                    r.strip_prefix(':')?
                },
            )
        } else {
            match addr.split_once(':') {
                Some((h, r)) => (h, r),
                None => (addr, ""),
            }
        };
        let port_text = rest.split(':').next().unwrap_or("");
        let port = if port_text.is_empty() {
            11211
        } else {
            port_text.parse().ok().filter(|p| *p > 0)?
        };
        (!host.is_empty() && !host.contains(['[', ']'])).then(|| ServerAddr {
            host: host.to_owned(),
            port,
        })
    }

    /// `host:port`, with brackets around an IPv6 host, for connecting.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Counters of one server (read by `stats proxy` and `/metrics`).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Requests written.
    pub requests: AtomicU64,
    /// Requests that timed out.
    pub timeouts: AtomicU64,
    /// Requests re-sent after their connection closed.
    pub retries: AtomicU64,
    /// Connects made.
    pub connects: AtomicU64,
    /// Connects that failed.
    pub connect_errors: AtomicU64,
    /// Requests refused at once because the server was in its retry interval.
    pub unavailable: AtomicU64,
    /// Requests answered with a downstream error of any kind.
    pub errors: AtomicU64,
    /// Bytes written to the server.
    pub request_bytes: AtomicU64,
    /// Replies read (a merged get's reply counts once).
    pub responses: AtomicU64,
    /// Bytes read from the server.
    pub response_bytes: AtomicU64,
    /// Connections the server closed.
    pub eofs: AtomicU64,
    /// Connections ended by an error: a failed read or write, or a reply that is not
    /// memcached's protocol.
    pub conn_errors: AtomicU64,
    /// Connections open now.
    pub connections: AtomicU64,
    /// Times the server started a retry interval (was ejected, with `eject`).
    pub ejects: AtomicU64,
    /// When the current retry interval started, in microseconds since the Unix epoch; 0
    /// while the server is in service.
    pub ejected_at_us: AtomicU64,
    /// Requests queued for the server's connections and not written yet, and their bytes.
    pub in_queue: AtomicU64,
    /// See `in_queue`.
    pub in_queue_bytes: AtomicU64,
    /// Requests written and not answered yet, and their bytes.
    pub out_queue: AtomicU64,
    /// See `out_queue`.
    pub out_queue_bytes: AtomicU64,
}

/// A downstream server.
#[derive(Debug)]
pub struct Server {
    addr: ServerAddr,
    opts: Arc<PoolOptions>,
    errors: AtomicU32,
    down_until: Mutex<Option<Instant>>,
    stats: ServerStats,
}

impl Server {
    pub(crate) fn new(addr: ServerAddr, opts: Arc<PoolOptions>) -> Self {
        Self {
            addr,
            opts,
            errors: AtomicU32::new(0),
            down_until: Mutex::new(None),
            stats: ServerStats::default(),
        }
    }

    /// The address.
    pub fn addr(&self) -> &ServerAddr {
        &self.addr
    }

    /// The counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    pub(crate) fn opts(&self) -> &PoolOptions {
        &self.opts
    }

    /// Whether the server is in its retry interval after too many errors.
    pub fn is_down(&self) -> bool {
        self.down_until.lock().is_some_and(|t| Instant::now() < t)
    }

    /// Consecutive errors so far.
    pub fn error_count(&self) -> u32 {
        self.errors.load(Ordering::Relaxed)
    }

    /// An error of `kind` naming this server.
    pub(crate) fn error(&self, kind: DownstreamErrorKind) -> DownstreamError {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        DownstreamError::new(kind, self.addr.host.clone())
    }

    /// The error for requests while the server is left alone, if it is.
    pub(crate) fn unavailable(&self) -> Option<DownstreamError> {
        if self.is_down() {
            self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
            return Some(self.error(DownstreamErrorKind::Unavailable));
        }
        None
    }

    /// Counts a failed connect or a timeout; enough of them in a row start a retry interval.
    pub(crate) fn failed(&self) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        let max = self.opts.max_errors;
        if max > 0 && n >= max {
            let now = Instant::now();
            let was_down = self
                .down_until
                .lock()
                .replace(now + self.opts.retry_interval)
                .is_some_and(|t| now < t);
            if !was_down {
                self.stats.ejects.fetch_add(1, Ordering::Relaxed);
                let since_epoch = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let us = u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX);
                self.stats.ejected_at_us.store(us, Ordering::Relaxed);
            }
            tracing::warn!(server = %self.addr.authority(), errors = n, "server left alone for its retry interval");
        }
    }

    /// `job` joins one of the server's connection queues.
    pub(crate) fn queued(&self, job: &super::Job) {
        self.stats.in_queue.fetch_add(1, Ordering::Relaxed);
        self.stats
            .in_queue_bytes
            .fetch_add(job.queued_bytes() as u64, Ordering::Relaxed);
    }

    /// `job` left its connection queue (taken by the connection, or refused).
    pub(crate) fn took(&self, job: &super::Job) {
        self.stats.in_queue.fetch_sub(1, Ordering::Relaxed);
        self.stats
            .in_queue_bytes
            .fetch_sub(job.queued_bytes() as u64, Ordering::Relaxed);
    }

    /// A reply came back: the server is healthy.
    pub(crate) fn succeeded(&self) {
        if self.errors.load(Ordering::Relaxed) != 0 {
            self.errors.store(0, Ordering::Relaxed);
            *self.down_until.lock() = None;
            self.stats.ejected_at_us.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members() {
        let a = ServerAddr::parse("127.0.0.1:11311:2").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 11311));
        let a = ServerAddr::parse("cache-b").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("cache-b", 11211));
        let a = ServerAddr::parse("[::1]:11300").unwrap();
        assert_eq!(a.authority(), "[::1]:11300");
        let a = ServerAddr::parse("h:12 3").unwrap();
        assert_eq!(a.port, 12);
        assert!(ServerAddr::parse(":1").is_none());
        assert!(ServerAddr::parse("h:x").is_none());
    }

    /// Found by the `memcache_config` fuzz target: `[[]` was read as host `[`, whose
    /// authority (`[:11211`) does not parse back, nor name any server. Brackets only delimit
    /// an IPv6 host, and only `:port` may follow them.
    #[test]
    fn brackets_only_delimit_a_host() {
        for bad in [
            "[[]",
            "[[]]",
            "[a[b]:1",
            "a]:1",
            "[::1]x",
            "[::1]x:11211",
            "[]:1",
        ] {
            assert_eq!(ServerAddr::parse(bad), None, "{bad:?}");
        }
        let a = ServerAddr::parse("[::1]").unwrap();
        assert_eq!(a.authority(), "[::1]:11211");
        let a = ServerAddr::parse("[fe80::1]:11300:2 name").unwrap();
        assert_eq!(ServerAddr::parse(&a.authority()), Some(a));
    }
}
