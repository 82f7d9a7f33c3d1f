//! moxi's `-z` and `-Z` strings (seed-systems §5.3, §5.4).
//!
//! `-z` static forms: `PORT=host:port,host:port;PORT2=...` (a libmemcached server list) and
//! `PORT={json}` (a vBucket map); a value starting with `.` or `/` is a file holding the
//! same text. `-Z` is `key=value,...` (times in ms), also possibly from a file; keys starting
//! with `#` are comments.

use std::time::Duration;

use crate::pool::PoolOptions;
use crate::proxy::{FrontCacheOptions, Servers};
use crate::rest::RestSource;
use crate::route::Distribution;

/// A `-z` or `-Z` string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoxiError {
    /// A section without `=` or with a bad port.
    #[error("-z section {0:?}: expected PORT=host:port,... or PORT={{json}}")]
    BadSection(String),
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    File {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
    /// A behaviour value that is not a number (or not one of the allowed words).
    #[error("-Z {key}={value}: {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A REST form (`url=...`, `http://...`) that is not usable.
    #[error("-z {text:?}: {message}")]
    BadRest {
        /// The section.
        text: String,
        /// Why.
        message: String,
    },
}

/// What a `-z` value describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZConfig {
    /// Listeners with static server lists or vBucket maps.
    Static(Vec<ZListener>),
    /// One listener (on `-Z port_listen`, default 11211) whose servers come from REST URLs.
    Rest(RestSource),
}

/// One `-z` section: a port and its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZListener {
    /// The port to listen on.
    pub port: u16,
    /// The servers (a list hashed with ketama, or a vBucket map).
    pub servers: Servers,
}

fn read_if_file(s: &str) -> Result<String, MoxiError> {
    let t = s.trim();
    if t.starts_with('.') || t.starts_with('/') {
        std::fs::read_to_string(t).map_err(|e| MoxiError::File {
            path: t.to_owned(),
            message: e.to_string(),
        })
    } else {
        Ok(t.to_owned())
    }
}

/// Parses a `-z` value (or the file it names): static `PORT=...` sections, or moxi's
/// dynamic form (`http://A,http://B`, `url=A|B[,auth=USER%PASSWORD]`), which must be alone.
pub fn parse_z(value: &str) -> Result<ZConfig, MoxiError> {
    let text = read_if_file(value)?;
    if RestSource::is_dynamic(&text) {
        let mut sections = text.split(';').map(str::trim).filter(|s| !s.is_empty());
        let bad = |message: String| MoxiError::BadRest {
            text: text.clone(),
            message,
        };
        let first = sections.next().unwrap_or("");
        if sections.next().is_some() {
            return Err(bad(
                "one REST section per -z (they would share port_listen)".into(),
            ));
        }
        return RestSource::parse(first)
            .map(ZConfig::Rest)
            .map_err(|e| bad(e.to_string()));
    }
    parse_static(&text).map(ZConfig::Static)
}

fn parse_static(text: &str) -> Result<Vec<ZListener>, MoxiError> {
    let mut out = Vec::new();
    for section in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (port, rest) = section
            .split_once('=')
            .ok_or_else(|| MoxiError::BadSection(section.to_owned()))?;
        let port: u16 = port
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| MoxiError::BadSection(section.to_owned()))?;
        let rest = rest.trim();
        let servers = if rest.starts_with('{') {
            Servers::VBucket(rest.to_owned())
        } else {
            Servers::List {
                members: rest
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
                distribution: Distribution::Ketama,
            }
        };
        out.push(ZListener { port, servers });
    }
    if out.is_empty() {
        return Err(MoxiError::BadSection(text.to_owned()));
    }
    Ok(out)
}

/// What a `-Z` string set besides the pool options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Behaviors {
    /// `mcs_opts=distribution:...`.
    pub distribution: Option<Distribution>,
    /// `front_cache_max`, `front_cache_lifespan` (ms), `front_cache_spec`,
    /// `front_cache_unspec` (`|`-separated prefixes), when any was given.
    pub front_cache: Option<FrontCacheOptions>,
    /// `port_listen`: the port of a REST-configured listener (moxi's default 11211).
    pub port_listen: Option<u16>,
    /// `usr` and `pwd`: basic-auth credentials for REST URLs.
    pub usr: Option<String>,
    /// `downstream_protocol`: how classic ascii commands go to the servers.
    pub downstream: Option<crate::Protocol>,
    /// See `usr`.
    pub pwd: Option<String>,
    /// `client_reply_budget` (bytes; shoal's, not moxi's): see
    /// [`ProxyConfig::client_reply_budget`](crate::proxy::ProxyConfig::client_reply_budget).
    pub client_reply_budget: Option<usize>,
    /// moxi keys without an equivalent in shoal (`cycle`, `downstream_max`, ...): accepted
    /// and ignored, for a log line.
    pub ignored: Vec<String>,
}

fn ms(key: &str, v: &str) -> Result<Duration, MoxiError> {
    Ok(Duration::from_millis(num(key, v)?))
}

fn num(key: &str, v: &str) -> Result<u64, MoxiError> {
    v.parse().map_err(|_| MoxiError::BadValue {
        key: key.to_owned(),
        value: v.to_owned(),
        expected: "expected an unsigned number",
    })
}

/// Applies a `-Z` value (or the file it names) to `pool`.
pub fn parse_behaviors(value: &str, pool: &mut PoolOptions) -> Result<Behaviors, MoxiError> {
    let text = read_if_file(value)?;
    let mut b = Behaviors::default();
    for item in text.split([',', '\n', '\r']).map(str::trim) {
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        let (k, v) = (k.trim(), v.trim());
        match k {
            "downstream_timeout" | "timeout" | "downstream_conn_timeout" => {
                pool.timeout = ms(k, v)?;
            }
            "connect_timeout" => pool.connect_timeout = ms(k, v)?,
            "downstream_conn_max" => {
                // moxi: 0 = unlimited; here the number of pipelined connections per server.
                pool.conns = usize::try_from(num(k, v)?)
                    .unwrap_or(usize::MAX)
                    .clamp(1, 64);
                if v == "0" {
                    pool.conns = PoolOptions::default().conns;
                }
            }
            "downstream_retry" | "retry" => pool.retry = num(k, v)?.min(10) as u32,
            "connect_max_errors" => pool.max_errors = num(k, v)?.min(u64::from(u32::MAX)) as u32,
            "connect_retry_interval" => pool.retry_interval = ms(k, v)?,
            "downstream_protocol" | "protocol" => match v {
                "ascii" | "memcached-ascii" | "membase-ascii" => {
                    b.downstream = Some(crate::Protocol::Ascii)
                }
                "binary" | "memcached-binary" | "membase-binary" => {
                    b.downstream = Some(crate::Protocol::Binary)
                }
                _ => {
                    return Err(MoxiError::BadValue {
                        key: k.to_owned(),
                        value: v.to_owned(),
                        expected: "expected ascii or binary",
                    });
                }
            },
            "mcs_opts" => {
                b.distribution = match v {
                    "distribution:ketama" => Some(Distribution::KetamaCompat),
                    "distribution:ketama-weighted" => Some(Distribution::Ketama),
                    "distribution:modula" => Some(Distribution::Modula),
                    _ => None,
                }
            }
            "port_listen" => {
                b.port_listen = Some(num(k, v)?.try_into().ok().filter(|p| *p > 0).ok_or_else(
                    || MoxiError::BadValue {
                        key: k.to_owned(),
                        value: v.to_owned(),
                        expected: "expected a port (1 to 65535)",
                    },
                )?)
            }
            "client_reply_budget" => {
                let bytes = usize::try_from(num(k, v)?).unwrap_or(usize::MAX);
                if bytes == 0 {
                    return Err(MoxiError::BadValue {
                        key: k.to_owned(),
                        value: v.to_owned(),
                        expected: "expected a number of bytes above 0",
                    });
                }
                b.client_reply_budget = Some(bytes);
            }
            "usr" => b.usr = Some(v.to_owned()),
            "pwd" => b.pwd = Some(v.to_owned()),
            "front_cache_max" => {
                let n = usize::try_from(num(k, v)?).unwrap_or(usize::MAX);
                b.front_cache.get_or_insert_with(Default::default).max = n;
            }
            "front_cache_lifespan" => {
                b.front_cache.get_or_insert_with(Default::default).lifespan = ms(k, v)?;
            }
            "front_cache_spec" => {
                b.front_cache.get_or_insert_with(Default::default).spec =
                    FrontCacheOptions::prefixes(v);
            }
            "front_cache_unspec" => {
                b.front_cache.get_or_insert_with(Default::default).unspec =
                    FrontCacheOptions::prefixes(v);
            }
            _ => b.ignored.push(k.to_owned()),
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_lists_and_json() {
        let Ok(ZConfig::Static(z)) = parse_z("11211=h1:1,h2:2:3 ; 11212={\"numReplicas\":0}")
        else {
            panic!("static form")
        };
        assert_eq!(z.len(), 2);
        assert_eq!(z[0].port, 11211);
        assert_eq!(
            z[0].servers,
            Servers::List {
                members: vec!["h1:1".into(), "h2:2:3".into()],
                distribution: Distribution::Ketama
            }
        );
        assert_eq!(z[1].servers, Servers::VBucket("{\"numReplicas\":0}".into()));
        assert!(matches!(parse_z("h1:1"), Err(MoxiError::BadSection(_))));
        assert!(matches!(parse_z("0=h"), Err(MoxiError::BadSection(_))));
        assert!(matches!(
            parse_z("http://a/pools,http://b/pools"),
            Ok(ZConfig::Rest(r)) if r.urls.len() == 2
        ));
        assert!(matches!(
            parse_z("url=http://a|http://b"),
            Ok(ZConfig::Rest(_))
        ));
        assert!(matches!(
            parse_z("url=http://a;url=http://b"),
            Err(MoxiError::BadRest { .. })
        ));
        assert!(matches!(
            parse_z("url=ftp://a"),
            Err(MoxiError::BadRest { .. })
        ));
        assert!(matches!(
            parse_z("./nonexistent.cfg"),
            Err(MoxiError::File { .. })
        ));
    }

    #[test]
    fn behaviours() {
        let mut p = PoolOptions::default();
        let b = parse_behaviors(
            "downstream_timeout=250,connect_timeout=100,#x=1,downstream_conn_max=2,\
             downstream_retry=0,connect_max_errors=3,connect_retry_interval=1000,\
             downstream_protocol=ascii,mcs_opts=distribution:modula,cycle=50,\
             front_cache_lifespan=100,front_cache_spec=a:|b:",
            &mut p,
        )
        .unwrap();
        assert_eq!(p.timeout, Duration::from_millis(250));
        assert_eq!(p.connect_timeout, Duration::from_millis(100));
        assert_eq!((p.conns, p.retry, p.max_errors), (2, 0, 3));
        assert_eq!(p.retry_interval, Duration::from_secs(1));
        assert_eq!(b.distribution, Some(Distribution::Modula));
        assert_eq!(b.ignored, ["cycle"]);
        let fc = b.front_cache.unwrap();
        assert_eq!(fc.lifespan, Duration::from_millis(100));
        assert_eq!(fc.spec, ["a:", "b:"]);
        assert!(fc.active());
        assert!(parse_behaviors("timeout=soon", &mut p).is_err());
        assert!(parse_behaviors("downstream_protocol=carrier-pigeon", &mut p).is_err());
        assert_eq!(b.downstream, Some(crate::Protocol::Ascii));
        let b = parse_behaviors("downstream_protocol=binary", &mut p).unwrap();
        assert_eq!(b.downstream, Some(crate::Protocol::Binary));
        assert_eq!(b.client_reply_budget, None);
        let b = parse_behaviors("client_reply_budget=1048576", &mut p).unwrap();
        assert_eq!(b.client_reply_budget, Some(1 << 20));
        assert!(parse_behaviors("client_reply_budget=0", &mut p).is_err());
        assert!(parse_behaviors("client_reply_budget=8MiB", &mut p).is_err());
    }
}
