//! twemproxy's `nutcracker.yml`: each pool becomes a listener placing keys as nutcracker does.
//!
//! nutcracker 0.5.0 (`src/nc_conf.c`) reads a YAML mapping of pool names to mappings of
//! directives, every value a scalar read as its text (`conf_set_num` takes digits only,
//! `conf_set_bool` the words `true` and `false`), `servers` a sequence. It refuses an unknown
//! directive (`directive "x" is unknown`), a repeated one (`is a duplicate`), an empty value,
//! a `hash_tag` that is not two bytes, `server_connections: 0`, a server line without a
//! weight or with weight 0, two servers with one name, two pools with one name or one
//! `listen`, a pool without `listen` or `servers`, and `redis_auth` in a memcached pool. So do
//! we, naming the pool. What we cannot serve is refused too: `redis: true`, `distribution:
//! random` (it ignores the key), a unix socket `listen`. `backlog` and `redis_db` are
//! accepted and not applied.
//!
//! | key | nutcracker default | shoal |
//! |---|---|---|
//! | `listen` | required | the listener (`host:port`) |
//! | `hash` | `fnv1a_64` | [`Twemproxy::hash`] |
//! | `hash_tag` | none | [`Twemproxy::hash_tag`] |
//! | `distribution` | `ketama` | [`Distribution::TwemproxyKetama`] / [`Distribution::TwemproxyModula`] |
//! | `timeout` (ms) | none: wait forever (0 too) | `pool.timeout`; shoal's own default when absent or 0 |
//! | `server_connections` | 1 | `pool.conns` (at most [`MAX_CONNS`]) |
//! | `auto_eject_hosts` | false | `eject` |
//! | `server_failure_limit` | 2 | `pool.max_errors` (0 counts as 1: nutcracker ejects on the first failure) |
//! | `server_retry_timeout` (ms) | 30000 | `pool.retry_interval` |
//! | `preconnect` | false | `pool.preconnect` |
//! | `tcpkeepalive` | false | `pool.tcp_keepalive` (with a 60 s idle time, not the system's two hours) |
//! | `client_connections` | 0 = unlimited | `max_conns` (nutcracker 0.5.0 parses it and never applies it: twemproxy issue 477) |
//! | `servers` | required | the members, twemproxy server lines |

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use shoal_ring::TwemproxyHash;

use crate::pool::Wire;
use crate::proxy::{ProxyConfig, Servers};
use crate::route::{Distribution, Router, Twemproxy};

/// The most pipelined connections per server shoal opens (`server_connections` above it is
/// cut to it: shoal's connections carry many requests at once, nutcracker's one).
pub const MAX_CONNS: usize = 64;

/// Every directive nutcracker 0.5.0 knows.
const KEYS: [&str; 17] = [
    "listen",
    "hash",
    "hash_tag",
    "distribution",
    "timeout",
    "backlog",
    "client_connections",
    "redis",
    "tcpkeepalive",
    "redis_auth",
    "redis_db",
    "preconnect",
    "auto_eject_hosts",
    "server_connections",
    "server_retry_timeout",
    "server_failure_limit",
    "servers",
];

/// Why a nutcracker.yml cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NutcrackerError {
    /// Not YAML, or not nutcracker's shape (the message has the line and column).
    #[error("{0}")]
    Yaml(String),
    /// No pools at all.
    #[error("no pools")]
    Empty,
    /// A pool's problem.
    #[error("pool {pool:?}: {message}")]
    Pool {
        /// The pool's name.
        pool: String,
        /// What is wrong.
        message: String,
    },
}

fn pool_error(pool: &str, message: impl Into<String>) -> NutcrackerError {
    NutcrackerError::Pool {
        pool: pool.to_owned(),
        message: message.into(),
    }
}

/// One nutcracker pool, checked and with nutcracker's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NutcrackerPool {
    /// The pool's name: the listener's name in `stats proxy` and the metrics.
    pub name: String,
    /// `listen:` as written, `host:port`.
    pub listen: String,
    /// `servers:`, twemproxy server lines (`host:port:weight [name]`).
    pub servers: Vec<String>,
    /// `distribution:` with `hash:` and `hash_tag:`.
    pub distribution: Distribution,
    /// `timeout:`; `None` when absent or 0 (nutcracker then waits forever; shoal keeps its own
    /// default).
    pub timeout: Option<Duration>,
    /// `server_connections:` (default 1).
    pub server_connections: usize,
    /// `auto_eject_hosts:` (default false).
    pub auto_eject_hosts: bool,
    /// `server_failure_limit:` (default 2).
    pub server_failure_limit: u32,
    /// `server_retry_timeout:` (default 30 s).
    pub server_retry_timeout: Duration,
    /// `preconnect:` (default false).
    pub preconnect: bool,
    /// `tcpkeepalive:` (default false).
    pub tcpkeepalive: bool,
    /// `client_connections:`; `None` when absent or 0 (unlimited).
    pub client_connections: Option<usize>,
    /// Directives accepted and not applied, for a log line.
    pub ignored: Vec<String>,
}

impl NutcrackerPool {
    /// The listen address, resolved (the first address the host resolves to).
    pub fn listen_addr(&self) -> std::io::Result<SocketAddr> {
        let (host, port) = split_listen(&self.listen).map_err(std::io::Error::other)?;
        (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} resolves to no address")))
    }

    /// `base` (shoal's own settings: connect timeout, front cache, ...) with this pool's name,
    /// servers, placement and twemproxy's pool settings.
    pub fn proxy_config(&self, base: &ProxyConfig) -> ProxyConfig {
        let mut cfg = base.clone();
        cfg.name = self.name.clone();
        cfg.servers = Servers::List {
            members: self.servers.clone(),
            distribution: self.distribution,
        };
        cfg.eject = self.auto_eject_hosts;
        cfg.pool.conns = self.server_connections.clamp(1, MAX_CONNS);
        // nutcracker counts failures up to the limit and ejects at it; a limit of 0 ejects on
        // the first failure, as 1 does. shoal's 0 would mean "never".
        cfg.pool.max_errors = self.server_failure_limit.max(1);
        cfg.pool.retry_interval = self.server_retry_timeout;
        if let Some(t) = self.timeout {
            cfg.pool.timeout = t;
        }
        cfg.max_conns = self.client_connections.unwrap_or(usize::MAX);
        cfg.pool.preconnect = self.preconnect.then_some(Wire::Ascii);
        cfg.pool.tcp_keepalive = self.tcpkeepalive;
        cfg
    }
}

/// `host:port` of a `listen:` (a bracketed IPv6 host loses its brackets).
fn split_listen(listen: &str) -> Result<(&str, u16), String> {
    if listen.starts_with('/') {
        return Err(format!(
            "listen {listen:?}: unix socket listeners are not supported; use host:port"
        ));
    }
    let bad = || format!("listen {listen:?}: expected host:port");
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = digits(port)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("listen {listen:?}: invalid port"))?;
    Ok((host, port))
}

/// nutcracker's `nc_atoi`: digits only, no sign.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a nutcracker.yml: its pools in the file's order.
pub fn parse_nutcracker(text: &str) -> Result<Vec<NutcrackerPool>, NutcrackerError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        // Repeated keys reach our visitors, which say which pool and key, as nutcracker does.
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    let raw: RawFile = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| NutcrackerError::Yaml(one_line(&e.to_string())))?;
    if raw.0.is_empty() {
        return Err(NutcrackerError::Empty);
    }
    let pools = raw
        .0
        .into_iter()
        .map(|(name, entries)| pool(name, entries))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            if a.listen == b.listen {
                return Err(pool_error(
                    &b.name,
                    format!("listen {:?} is pool {:?}'s too", b.listen, a.name),
                ));
            }
        }
    }
    Ok(pools)
}

/// The error's lines joined, so that it stays one log or error line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error's message with one place: a wrapped error's message ends in the place of the
/// error inside it (where the YAML went wrong) and then ` at line L, column C` of the wrapper
/// (the key before it); the second goes.
fn one_place(e: &dyn fmt::Display) -> String {
    const AT: &str = " at line ";
    let s = e.to_string();
    if let Some(i) = s.rfind(AT) {
        let shaped = s[i + AT.len()..]
            .split_once(", column ")
            .is_some_and(|(l, c)| digits(l).is_some() && digits(c).is_some());
        if shaped && s[..i].contains(AT) {
            return s[..i].to_owned();
        }
    }
    s
}

fn unknown_key(key: &str) -> String {
    format!(
        "unknown key {key:?} (nutcracker refuses it too); expected one of {}",
        KEYS.join(", ")
    )
}

/// Checks one pool and fills in nutcracker's defaults.
fn pool(name: String, entries: Vec<(String, Raw)>) -> Result<NutcrackerPool, NutcrackerError> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(pool_error(
            &name,
            "a pool name names its listener in stats and metrics: it cannot be empty or hold \
             spaces",
        ));
    }
    let err = |m: String| pool_error(&name, m);
    let mut seen: Vec<&str> = Vec::new();
    let mut listen = None;
    let mut servers = None;
    let mut t = Twemproxy::default();
    let mut modula = false;
    let mut p = NutcrackerPool {
        name: name.clone(),
        listen: String::new(),
        servers: Vec::new(),
        distribution: Distribution::TwemproxyKetama(t),
        timeout: None,
        server_connections: 1,
        auto_eject_hosts: false,
        server_failure_limit: 2,
        server_retry_timeout: Duration::from_millis(30_000),
        client_connections: None,
        preconnect: false,
        tcpkeepalive: false,
        ignored: Vec::new(),
    };
    let mut redis_auth = false;
    for (key, value) in &entries {
        let Some(&known) = KEYS.iter().find(|k| **k == key) else {
            return Err(err(unknown_key(key)));
        };
        if seen.contains(&known) {
            return Err(err(format!("{key} is a duplicate")));
        }
        seen.push(known);
        let text = match (known, value) {
            ("servers", Raw::List(list)) => {
                servers = Some(list.clone());
                continue;
            }
            ("servers", Raw::Scalar(_)) => {
                return Err(err(
                    "servers: expected a list of host:port:weight [name]".into()
                ));
            }
            (_, Raw::Scalar(Some(v))) => v.as_str(),
            (_, Raw::Scalar(None)) => return Err(err(format!("{key} has no value"))),
            (_, Raw::List(_)) => return Err(err(format!("{key}: expected a single value"))),
        };
        let num = || digits(text).ok_or_else(|| err(format!("{key} {text:?} is not a number")));
        let boolean = || match text {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(err(format!("{key} {text:?} is not \"true\" or \"false\""))),
        };
        let ms = |n: u64| Duration::from_millis(n);
        match known {
            "listen" => {
                split_listen(text).map_err(&err)?;
                listen = Some(text.to_owned());
            }
            "hash" => {
                t.hash = text
                    .parse::<TwemproxyHash>()
                    .map_err(|e| err(e.to_string()))?;
            }
            "hash_tag" => {
                let tag: [u8; 2] = text.as_bytes().try_into().map_err(|_| {
                    err(format!(
                        "hash_tag {text:?} must be exactly two characters, such as \"{{}}\""
                    ))
                })?;
                t.hash_tag = Some(tag);
            }
            "distribution" => {
                modula = match text {
                    "ketama" => false,
                    "modula" => true,
                    "random" => {
                        return Err(err(
                            "distribution random is not supported: it sends each request to \
                             any server, whatever its key; use ketama or modula"
                                .into(),
                        ));
                    }
                    _ => {
                        return Err(err(format!(
                            "distribution {text:?} is not valid: expected ketama, modula or \
                             random"
                        )));
                    }
                };
            }
            "timeout" => p.timeout = Some(num()?).filter(|n| *n > 0).map(ms),
            "server_connections" => {
                let n = num()?;
                if n == 0 {
                    return Err(err("server_connections cannot be 0".into()));
                }
                p.server_connections = usize::try_from(n).unwrap_or(usize::MAX);
            }
            "auto_eject_hosts" => p.auto_eject_hosts = boolean()?,
            "server_failure_limit" => {
                p.server_failure_limit = u32::try_from(num()?).unwrap_or(u32::MAX);
            }
            "server_retry_timeout" => p.server_retry_timeout = ms(num()?),
            "client_connections" => {
                p.client_connections =
                    Some(usize::try_from(num()?).unwrap_or(usize::MAX)).filter(|n| *n > 0);
            }
            "redis" => {
                if boolean()? {
                    return Err(err(
                        "redis: true is not supported: shoal memcache serves memcached pools \
                         only"
                            .into(),
                    ));
                }
            }
            "redis_auth" => redis_auth = true,
            "backlog" | "redis_db" => {
                num()?;
                p.ignored.push(known.to_owned());
            }
            "preconnect" => p.preconnect = boolean()?,
            "tcpkeepalive" => p.tcpkeepalive = boolean()?,
            _ => unreachable!("every key of KEYS has an arm"),
        }
    }
    if redis_auth {
        return Err(err("redis_auth is only valid for a redis pool".into()));
    }
    p.listen = listen.ok_or_else(|| err("listen is missing".into()))?;
    p.servers = servers.ok_or_else(|| err("servers is missing".into()))?;
    if p.servers.is_empty() {
        return Err(err("servers is empty".into()));
    }
    p.distribution = if modula {
        Distribution::TwemproxyModula(t)
    } else {
        Distribution::TwemproxyKetama(t)
    };
    // Every server line must have its weight, as nutcracker requires; then the ring checks
    // the rest (ports, weights, names given twice).
    for line in &p.servers {
        let addr = line.split(' ').next().unwrap_or("");
        if addr.starts_with('/') {
            return Err(err(format!(
                "server {line:?}: unix socket servers are not supported"
            )));
        }
        if addr.split(':').count() != 3 && !addr.starts_with('[') {
            return Err(err(format!(
                "server {line:?}: expected host:port:weight [name]"
            )));
        }
    }
    let members: Vec<&str> = p.servers.iter().map(String::as_str).collect();
    Router::new(p.distribution, &members, false).map_err(|e| err(format!("servers: {e}")))?;
    Ok(p)
}

/// A directive's value as read: a scalar's text (`None` when empty), or `servers`' list.
#[derive(Debug)]
enum Raw {
    Scalar(Option<String>),
    List(Vec<String>),
}

/// The file: pools, in order, each its directives in order.
struct RawFile(Vec<(String, Vec<(String, Raw)>)>);

impl<'de> serde::Deserialize<'de> for RawFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pools;
        impl<'de> Visitor<'de> for Pools {
            type Value = RawFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of pool names to pools")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<RawFile, E> {
                Ok(RawFile(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFile, A::Error> {
                let mut pools: Vec<(String, Vec<(String, Raw)>)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if pools.iter().any(|(n, _)| *n == name) {
                        return Err(A::Error::custom(format!("two pools are named {name:?}")));
                    }
                    let entries = map.next_value_seed(PoolSeed).map_err(|e| {
                        A::Error::custom(format!("pool {name:?}: {}", one_place(&e)))
                    })?;
                    pools.push((name, entries));
                }
                Ok(RawFile(pools))
            }
        }
        d.deserialize_map(Pools)
    }
}

/// One pool's directives (its errors get the pool's name from the caller).
struct PoolSeed;

impl<'de> DeserializeSeed<'de> for PoolSeed {
    type Value = Vec<(String, Raw)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PoolSeed {
    type Value = Vec<(String, Raw)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of keys (listen, servers, ...)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !KEYS.contains(&key.as_str()) {
                return Err(A::Error::custom(unknown_key(&key)));
            }
            let value = if key == "servers" {
                map.next_value::<Vec<String>>()
                    .map(Raw::List)
                    .map_err(|e| {
                        A::Error::custom(format!(
                            "servers: expected a list of host:port:weight [name]: {e}"
                        ))
                    })?
            } else {
                map.next_value::<Option<String>>()
                    .map(Raw::Scalar)
                    .map_err(|e| A::Error::custom(format!("{key}: expected a single value: {e}")))?
            };
            entries.push((key, value));
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "\
alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  hash_tag: \"{}\"
  distribution: ketama
  auto_eject_hosts: true
  timeout: 400
  server_retry_timeout: 2000
  server_failure_limit: 1
  servers:
   - 127.0.0.1:11211:1
   - 127.0.0.1:11212:1 b
beta:
  listen: 127.0.0.1:22122
  hash: murmur
  distribution: modula
  preconnect: true
  backlog: 1024
  servers:
   - 127.0.0.1:11213:2 c
";

    #[test]
    fn two_pools_in_order_with_defaults() {
        let pools = parse_nutcracker(TWO).unwrap();
        assert_eq!(pools.len(), 2);
        let (a, b) = (&pools[0], &pools[1]);
        assert_eq!((a.name.as_str(), b.name.as_str()), ("alpha", "beta"));
        assert_eq!(
            a.distribution,
            Distribution::TwemproxyKetama(Twemproxy {
                hash: TwemproxyHash::Fnv1a_64,
                hash_tag: Some(*b"{}"),
            })
        );
        assert_eq!(a.timeout, Some(Duration::from_millis(400)));
        assert!(a.auto_eject_hosts);
        assert_eq!(a.server_failure_limit, 1);
        assert_eq!(a.server_retry_timeout, Duration::from_secs(2));
        assert_eq!(a.servers, ["127.0.0.1:11211:1", "127.0.0.1:11212:1 b"]);
        assert_eq!(
            b.distribution,
            Distribution::TwemproxyModula(Twemproxy {
                hash: TwemproxyHash::Murmur,
                hash_tag: None,
            })
        );
        // nutcracker's defaults.
        assert_eq!(b.timeout, None);
        assert_eq!(b.server_connections, 1);
        assert!(!b.auto_eject_hosts);
        assert_eq!(b.server_failure_limit, 2);
        assert_eq!(b.server_retry_timeout, Duration::from_secs(30));
        assert_eq!(b.client_connections, None);
        assert!(b.preconnect && !b.tcpkeepalive && !a.preconnect);
        assert_eq!(b.ignored, ["backlog"]);
        assert_eq!(
            b.listen_addr().unwrap(),
            "127.0.0.1:22122".parse::<SocketAddr>().unwrap()
        );

        let mut base = ProxyConfig::new("x", Servers::Pending);
        base.pool.connect_timeout = Duration::from_millis(123);
        let cfg = a.proxy_config(&base);
        assert_eq!(cfg.name, "alpha");
        assert!(cfg.eject);
        assert_eq!(cfg.pool.conns, 1);
        assert_eq!(cfg.pool.max_errors, 1);
        assert_eq!(cfg.pool.timeout, Duration::from_millis(400));
        assert_eq!(cfg.pool.connect_timeout, Duration::from_millis(123));
        assert_eq!(cfg.max_conns, usize::MAX);
        assert_eq!(cfg.pool.preconnect, None);
        let cfg = b.proxy_config(&base);
        assert_eq!(cfg.pool.timeout, base.pool.timeout);
        assert_eq!(cfg.pool.max_errors, 2);
        assert_eq!(cfg.pool.preconnect, Some(Wire::Ascii));
        assert!(!cfg.pool.tcp_keepalive);
    }

    #[test]
    fn values_are_read_as_nutcracker_reads_them() {
        let one = |extra: &str| {
            parse_nutcracker(&format!(
                "p:\n  listen: 127.0.0.1:1\n{extra}  servers:\n   - 127.0.0.1:2:1\n"
            ))
        };
        let p =
            one("  timeout: 0400\n  client_connections: 7\n  server_failure_limit: 0\n").unwrap();
        assert_eq!(p[0].timeout, Some(Duration::from_millis(400)));
        assert_eq!(p[0].client_connections, Some(7));
        let cfg = p[0].proxy_config(&ProxyConfig::new("x", Servers::Pending));
        assert_eq!((cfg.max_conns, cfg.pool.max_errors), (7, 1));
        let p = one("  timeout: 0\n  client_connections: 0\n  server_connections: 500\n").unwrap();
        assert_eq!((p[0].timeout, p[0].client_connections), (None, None));
        let cfg = p[0].proxy_config(&ProxyConfig::new("x", Servers::Pending));
        assert_eq!(cfg.pool.conns, MAX_CONNS);
        let e = |extra: &str| one(extra).unwrap_err().to_string();
        assert_eq!(
            e("  timeout: 1e3\n"),
            "pool \"p\": timeout \"1e3\" is not a number"
        );
        assert_eq!(
            e("  auto_eject_hosts: yes\n"),
            "pool \"p\": auto_eject_hosts \"yes\" is not \"true\" or \"false\""
        );
        assert_eq!(
            e("  timeout: 1\n  timeout: 2\n"),
            "pool \"p\": timeout is a duplicate"
        );
        assert_eq!(e("  timeout:\n"), "pool \"p\": timeout has no value");
        assert_eq!(
            e("  server_connections: 0\n"),
            "pool \"p\": server_connections cannot be 0"
        );
        assert!(e("  bogus: 1\n").starts_with("pool \"p\": unknown key \"bogus\""));
        assert!(e("  redis: true\n").contains("redis: true is not supported"));
        assert!(one("  redis: false\n  redis_db: 0\n  tcpkeepalive: true\n").is_ok());
        assert!(e("  redis_auth: pw\n").contains("only valid for a redis pool"));
        assert!(e("  distribution: random\n").contains("random is not supported"));
        assert!(e("  distribution: Ketama\n").contains("expected ketama, modula or random"));
        let h = e("  hash: fnv\n");
        assert!(
            h.contains("\"fnv\"") && h.contains("fnv1a_64, fnv1_32"),
            "{h}"
        );
        assert!(e("  hash_tag: \"{\"\n").contains("exactly two characters"));
        assert!(e("  hash_tag: \"{}}\"\n").contains("exactly two characters"));
        assert!(e("  listen: 127.0.0.1:3\n").contains("listen is a duplicate"));
        assert!(e("  x: [1]\n").contains("unknown key"));
        assert!(e("  timeout: [1]\n").contains("timeout: expected a single value"));
    }

    #[test]
    fn files_nutcracker_refuses() {
        let e = |text: &str| parse_nutcracker(text).unwrap_err().to_string();
        assert_eq!(e(""), "no pools");
        assert_eq!(
            e("p:\n  servers:\n   - 127.0.0.1:2:1\n"),
            "pool \"p\": listen is missing"
        );
        assert_eq!(
            e("p:\n  listen: 127.0.0.1:1\n"),
            "pool \"p\": servers is missing"
        );
        assert!(
            e("p:\n  listen: /tmp/s.sock 0777\n  servers:\n   - 127.0.0.1:2:1\n")
                .contains("unix socket listeners are not supported")
        );
        assert!(
            e("p:\n  listen: 127.0.0.1:0\n  servers:\n   - 127.0.0.1:2:1\n")
                .contains("invalid port")
        );
        assert!(
            e("p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2\n")
                .contains("expected host:port:weight [name]")
        );
        assert!(
            e("p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:0\n").contains("weight")
        );
        let twice = "p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1 a\n   - \
                     127.0.0.1:3:1 a\n";
        assert!(e(twice).contains("duplicate member \"a\""), "{}", e(twice));
        let same_listen = "p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1\nq:\n  \
                           listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1\n";
        assert_eq!(
            e(same_listen),
            "pool \"q\": listen \"127.0.0.1:1\" is pool \"p\"'s too"
        );
        let same_name = "p:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1\np:\n  \
                         listen: 127.0.0.1:2\n  servers:\n   - 127.0.0.1:2:1\n";
        assert!(
            e(same_name).contains("two pools are named \"p\""),
            "{}",
            e(same_name)
        );
        assert!(
            e("p: [1, 2]\n").contains("pool \"p\""),
            "{}",
            e("p: [1, 2]\n")
        );
        let unterminated = e("p:\n  listen: \"x\n");
        assert!(
            unterminated.starts_with("pool \"p\": listen: ") && unterminated.contains("line "),
            "{unterminated}"
        );
        let servers = e("p:\n  listen: 127.0.0.1:1\n  servers: 127.0.0.1:2:1\n");
        assert_eq!(
            servers,
            "pool \"p\": servers: expected a list of host:port:weight [name]: expected sequence \
             start at line 3, column 12"
        );
        let spaced = "my pool:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1\n";
        assert!(e(spaced).contains("cannot be empty or hold spaces"));
    }
}
