//! A storage node (one replica of a shard) and what the router knows about it right now.
//!
//! **Identity.** Operators write a node's URL in several places (each ring's shard lines, the
//! roster, journals written by older routers) and not always the same way. Two URLs name the
//! same node when they agree on [`NodeName`]: the host lower-cased (an IPv6 address in its
//! canonical form), the port made explicit (80, or 443 for `https`, when absent or empty),
//! the scheme lower-cased, user info dropped
//! (photosrv never sent it: Go's reverse proxy copies only the host) and the base path without
//! its trailing `/` (kept, case and all: photosrv joined it to every request path). Every
//! place that tells replicas apart or counts them (the topology, the write fan-out, the write
//! quorum, the roster, the journal) goes by this name, so a node listed as
//! `http://10.0.0.1:8080` in one ring and `HTTP://10.0.0.1:8080/` in the other is written
//! once and counted once.

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::Uri;

use crate::RouteError;

/// A storage node's canonical name: `http[s]://host:port[/base]` with the host lower-cased,
/// the port explicit and no trailing `/`. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName {
    base: String,
    /// Where `host:port` starts in `base` (after `http://` or `https://`).
    authority_start: usize,
    /// Where `host:port` ends in `base`.
    authority_end: usize,
}

impl NodeName {
    /// The name of the node at `url` (`http[s]://host[:port][/base]`); a port must be a
    /// number from 1 to 65535.
    pub fn parse(url: &str) -> Result<Self, RouteError> {
        let bad = |why: &str| RouteError::config(format!("replica URL {url:?}: {why}"));
        let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        // http's parser already reads the scheme in any case as `http` or `https`.
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            _ => return Err(bad("only http:// and https:// storage nodes are supported")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if uri.query().is_some() {
            return Err(bad("has a query"));
        }
        let (host, port) = host_and_port(authority.as_str(), default_port).map_err(bad)?;
        let authority = format!("{host}:{port}");
        let base = format!("{scheme}://{authority}{}", uri.path().trim_end_matches('/'));
        let authority_start = scheme.len() + "://".len();
        Ok(NodeName {
            authority_start,
            authority_end: authority_start + authority.len(),
            base,
        })
    }

    /// `http[s]://host:port[/base]`.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// Whether the node is reached over TLS (`https://`).
    pub fn is_https(&self) -> bool {
        self.base.starts_with("https:")
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.base[self.authority_start..self.authority_end]
    }

    /// The host alone (an IPv6 address without its brackets), for TLS's server name.
    pub fn host(&self) -> &str {
        let authority = self.authority();
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The base path (`/base`), or `""`.
    pub fn path(&self) -> &str {
        &self.base[self.authority_end..]
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

/// `host:port` of an authority (`[user@]host[:port]`) in canonical form: user info dropped,
/// the host lower-cased (an IPv6 address rewritten canonically), the port explicit,
/// `default_port` when absent or empty (RFC 3986: an empty port is the scheme's default).
pub(crate) fn host_and_port(
    authority: &str,
    default_port: u16,
) -> Result<(String, u16), &'static str> {
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or("unclosed [ in the host")?;
        if v6.is_empty() || v6.contains('[') {
            return Err("brackets go around an IPv6 address only");
        }
        let host = match v6.parse::<Ipv6Addr>() {
            Ok(a) => format!("[{a}]"),
            Err(_) => format!("[{}]", v6.to_ascii_lowercase()),
        };
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
        };
        (host, port)
    } else if hostport.contains(['[', ']']) {
        return Err("brackets go around an IPv6 address only");
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (hostport.to_ascii_lowercase(), None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        None | Some("") => default_port,
        Some(p) if p.bytes().all(|c| c.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err("the port must be a number from 1 to 65535"),
            Ok(p) => p,
        },
        Some(_) => return Err("the port must be a number from 1 to 65535"),
    };
    Ok((host, port))
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(0);

/// One storage node, shared by every shard and ring that names it (by its [`NodeName`]).
#[derive(Debug)]
pub struct Replica {
    name: NodeName,
    in_roster: AtomicBool,
    healthy: AtomicBool,
    /// Health checks run and can mark it healthy again.
    checked: AtomicBool,
    errors: AtomicU64,
    requests: AtomicU64,
    latency: metrics::Histogram,
    error_counter: metrics::Counter,
    /// This replica's key in the read path's connection pools (see `h1`), unique in the
    /// process: a replica that a reload replaced never shares connections with a new one.
    pool_id: u64,
}

impl Replica {
    /// A replica at `url` (`http://host[:port][/base]`); only plain `http` is supported.
    pub fn new(url: &str) -> Result<Self, RouteError> {
        Ok(Replica::named(NodeName::parse(url)?))
    }

    /// The replica for a node already named.
    pub fn named(name: NodeName) -> Self {
        let label = name.as_str().to_string();
        Replica {
            in_roster: AtomicBool::new(true),
            healthy: AtomicBool::new(true),
            checked: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            latency: metrics::histogram!("shoal_route_replica_latency_seconds", "replica" => label.clone()),
            error_counter: metrics::counter!("shoal_route_replica_errors_total", "replica" => label),
            pool_id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            name,
        }
    }

    /// Its canonical name.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// The canonical base URL, without a trailing `/` (`http://10.0.0.1:8080`); also the
    /// label of its metrics and the replica column of journal lines.
    pub fn base(&self) -> &str {
        self.name.as_str()
    }

    /// `host:port` (canonical, the port explicit), which the roster's second column is
    /// matched against.
    pub fn authority(&self) -> &str {
        self.name.authority()
    }

    /// The URI for `path_and_query` (which starts with `/`) on this replica.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::uri::InvalidUri> {
        format!("{}{path_and_query}", self.base()).parse()
    }

    /// Its key in the read path's connection pools.
    pub(crate) fn pool_id(&self) -> u64 {
        self.pool_id
    }

    /// Listed in the roster (always true without a roster).
    pub fn in_roster(&self) -> bool {
        self.in_roster.load(Ordering::Relaxed)
    }

    /// Passing health checks.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// In the roster and healthy.
    pub fn usable(&self) -> bool {
        self.in_roster() && self.healthy()
    }

    pub(crate) fn set_in_roster(&self, v: bool) -> bool {
        self.in_roster.swap(v, Ordering::Relaxed) != v
    }

    /// Sets the health state; true when it changed.
    pub(crate) fn set_healthy(&self, v: bool) -> bool {
        self.healthy.swap(v, Ordering::Relaxed) != v
    }

    pub(crate) fn set_health_checked(&self, v: bool) {
        self.checked.store(v, Ordering::Relaxed);
    }

    /// Marks it unhealthy after a connect error; true when it changed. Without health checks
    /// nothing would mark it healthy again, and every later write would skip it: then a
    /// connect error fails only the request it happened to.
    pub(crate) fn mark_unreachable(&self) -> bool {
        self.checked.load(Ordering::Relaxed) && self.set_healthy(false)
    }

    pub(crate) fn record(&self, took: Duration, ok: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.latency.record(took.as_secs_f64());
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
            self.error_counter.increment(1);
        }
    }

    /// Requests sent and errors seen (connect errors, timeouts, 5xx) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_node_have_one_name() {
        for (url, want) in [
            ("http://10.0.0.1:8080", "http://10.0.0.1:8080"),
            ("HTTP://10.0.0.1:8080/", "http://10.0.0.1:8080"),
            ("http://10.0.0.1:08080//", "http://10.0.0.1:8080"),
            ("http://10.0.0.1", "http://10.0.0.1:80"),
            ("http://10.0.0.1:", "http://10.0.0.1:80"),
            ("http://Node-1.Example", "http://node-1.example:80"),
            ("http://u:p@node:81/", "http://node:81"),
            ("http://[0:0:0::1]:81", "http://[::1]:81"),
            ("http://[::FFFF:10.0.0.1]", "http://[::ffff:10.0.0.1]:80"),
            ("http://h:1/Base/", "http://h:1/Base"),
            ("https://h", "https://h:443"),
            ("HTTPS://[::1]:8443/dav/", "https://[::1]:8443/dav"),
        ] {
            let n = NodeName::parse(url).unwrap();
            assert_eq!(n.as_str(), want, "{url}");
            let scheme = if n.is_https() { "https" } else { "http" };
            assert_eq!(format!("{scheme}://{}{}", n.authority(), n.path()), want);
        }
        assert_eq!(NodeName::parse("https://[::1]:8443").unwrap().host(), "::1");
        assert_eq!(
            NodeName::parse("http://Node-1:80").unwrap().host(),
            "node-1"
        );
        assert_ne!(
            NodeName::parse("http://h:443").unwrap(),
            NodeName::parse("https://h").unwrap(),
            "another scheme is another node"
        );
        for bad in [
            "ftp://h",
            "h:1",
            "http://h:65536",
            "http://h:0",
            "http://h:x",
            "http://h:+1",
            "http://h?q",
            "http://[::1",
        ] {
            assert!(NodeName::parse(bad).is_err(), "{bad}");
        }
    }

    /// Found by the `route_config` fuzz target: `http://[@]` (an authority the URI parser
    /// lets through) lost `[@` as user info and named node `http://]:80`, a name that does
    /// not parse back and reaches no server. Brackets go around an IPv6 address only.
    #[test]
    fn brackets_go_around_an_ipv6_address_only() {
        for bad in [
            "http://[@]",
            "http://[]",
            "http://[[::1]",
            "http://a]:80",
            "http://u@a]",
        ] {
            assert!(NodeName::parse(bad).is_err(), "{bad}");
        }
        assert!(host_and_port("[@]", 80).is_err());
        assert!(host_and_port("x]", 0).is_err());
        let n = NodeName::parse("http://u@[::1]:81").unwrap();
        assert_eq!(n.as_str(), "http://[::1]:81");
        assert_eq!(NodeName::parse(n.as_str()).unwrap(), n);
    }
}
