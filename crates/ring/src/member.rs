//! Parsing member strings: `host:port[:weight]` servers, twemproxy server lines, and plain
//! names (peer URLs, shard names).

use std::collections::HashSet;

use crate::{Member, RingError};

/// What a server member looks like, for error messages.
pub(crate) const HOST_PORT: &str = "\"host:port[:weight]\"";

/// A parsed server member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Server {
    /// The host as libmemcached stores it: IPv6 without brackets.
    pub host: String,
    pub port: u16,
    pub weight: u32,
    /// The `host:port` part exactly as given (with brackets for IPv6): the member's identity,
    /// which does not change when only its weight does.
    pub id: String,
}

impl Server {
    /// The point-name prefix libmemcached (and unnamed twemproxy servers) use: the host alone
    /// when the port is memcached's default 11211, `host:port` otherwise.
    pub fn libmemcached_name(&self) -> String {
        if self.port == 11211 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// libvbucket's authority: always `host:port`.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn malformed(s: &str) -> RingError {
    RingError::MalformedMember {
        expected: HOST_PORT,
        got: s.to_owned(),
    }
}

fn parse_weight(member: &str, w: &str) -> Result<u32, RingError> {
    match w.parse::<u32>() {
        Ok(v) if v > 0 && w.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(RingError::BadWeight {
            member: member.to_owned(),
            weight: w.to_owned(),
        }),
    }
}

fn parse_port(member: &str, p: &str) -> Result<u16, RingError> {
    match p.parse::<u16>() {
        Ok(v) if v > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(RingError::BadPort {
            member: member.to_owned(),
            port: p.to_owned(),
        }),
    }
}

/// Parses `host:port`, `host:port:weight`, `[v6]:port[:weight]`, or libmemcached's
/// `host:port weight` (one space before the weight).
pub(crate) fn parse_server(s: &str) -> Result<Server, RingError> {
    let (addr, spaced_weight) = match s.split_once(' ') {
        Some((a, w)) => (a, Some(w)),
        None => (s, None),
    };
    if addr.is_empty() || addr.chars().any(char::is_whitespace) {
        return Err(malformed(s));
    }
    let (host, rest) = if let Some(inner) = addr.strip_prefix('[') {
        let (host, rest) = inner.split_once(']').ok_or_else(|| malformed(s))?;
        (host, rest.strip_prefix(':').ok_or_else(|| malformed(s))?)
    } else {
        addr.split_once(':').ok_or_else(|| malformed(s))?
    };
    if host.is_empty()
        || host.contains(['[', ']', '/'])
        || (!addr.starts_with('[') && host.contains(':'))
    {
        return Err(malformed(s));
    }
    let (port, colon_weight) = match rest.split_once(':') {
        Some((p, w)) => (p, Some(w)),
        None => (rest, None),
    };
    let port = parse_port(s, port)?;
    let weight = match (colon_weight, spaced_weight) {
        (Some(_), Some(_)) => return Err(malformed(s)),
        (Some(w), None) | (None, Some(w)) => parse_weight(s, w)?,
        (None, None) => 1,
    };
    let id_len = addr.len() - colon_weight.map_or(0, |w| w.len() + 1);
    Ok(Server {
        host: host.to_owned(),
        port,
        weight,
        id: addr[..id_len].to_owned(),
    })
}

/// Parses every member as a server and rejects an empty list or a repeated `host:port`.
pub(crate) fn parse_servers(members: &[&str]) -> Result<(Vec<Member>, Vec<Server>), RingError> {
    if members.is_empty() {
        return Err(RingError::Empty);
    }
    let mut seen = HashSet::with_capacity(members.len());
    let mut out = Vec::with_capacity(members.len());
    let mut servers = Vec::with_capacity(members.len());
    for &m in members {
        let srv = parse_server(m)?;
        if !seen.insert((srv.host.clone(), srv.port)) {
            return Err(RingError::DuplicateMember { member: srv.id });
        }
        out.push(Member {
            name: m.to_owned(),
            weight: srv.weight,
        });
        servers.push(srv);
    }
    Ok((out, servers))
}

/// twemproxy server lines, parsed: the members as given, each server's name (the `name` of a
/// `host:port:weight name` line, else the libmemcached point-name prefix) and weight, and the
/// order nutcracker puts them in.
pub(crate) struct TwemproxyServers {
    pub members: Vec<Member>,
    pub names: Vec<String>,
    pub weights: Vec<u32>,
    /// Indices into the above, sorted as nutcracker sorts its servers while it validates the
    /// config (`conf_server_name_cmp`, `string_compare`): shorter name first, then bytewise.
    pub order: Vec<usize>,
}

/// Parses twemproxy server lines, `host:port[:weight] [name]` (twemproxy requires the weight;
/// here it defaults to 1). Two lines with the same name (or, when unnamed, the same point name)
/// are rejected, as nutcracker does.
pub(crate) fn parse_twemproxy_servers(lines: &[&str]) -> Result<TwemproxyServers, RingError> {
    if lines.is_empty() {
        return Err(RingError::Empty);
    }
    let mut members = Vec::with_capacity(lines.len());
    let mut names = Vec::with_capacity(lines.len());
    let mut weights = Vec::with_capacity(lines.len());
    for &line in lines {
        let (addr, name) = match line.rsplit_once(' ') {
            Some((addr, name)) if !name.is_empty() && !addr.contains(char::is_whitespace) => {
                (addr, Some(name))
            }
            Some(_) => {
                return Err(RingError::MalformedMember {
                    expected: "\"host:port[:weight] [name]\"",
                    got: line.to_owned(),
                });
            }
            None => (line, None),
        };
        let srv = parse_server(addr).map_err(|e| match e {
            RingError::MalformedMember { .. } => malformed_line(line),
            other => other,
        })?;
        let name = name.map_or_else(|| srv.libmemcached_name(), str::to_owned);
        if names.contains(&name) {
            return Err(RingError::DuplicateMember { member: name });
        }
        members.push(Member {
            name: line.to_owned(),
            weight: srv.weight,
        });
        names.push(name);
        weights.push(srv.weight);
    }
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| {
        names[a]
            .len()
            .cmp(&names[b].len())
            .then(names[a].cmp(&names[b]))
    });
    Ok(TwemproxyServers {
        members,
        names,
        weights,
        order,
    })
}

fn malformed_line(line: &str) -> RingError {
    RingError::MalformedMember {
        expected: HOST_PORT,
        got: line.to_owned(),
    }
}

/// Members that are plain names (peer URLs, shard names): non-empty, no duplicates.
pub(crate) fn parse_names(
    members: &[&str],
    expected: &'static str,
) -> Result<Vec<Member>, RingError> {
    if members.is_empty() {
        return Err(RingError::Empty);
    }
    let mut seen = HashSet::with_capacity(members.len());
    let mut out = Vec::with_capacity(members.len());
    for &m in members {
        if m.is_empty() || m.trim() != m {
            return Err(RingError::MalformedMember {
                expected,
                got: m.to_owned(),
            });
        }
        if !seen.insert(m) {
            return Err(RingError::DuplicateMember {
                member: m.to_owned(),
            });
        }
        out.push(Member {
            name: m.to_owned(),
            weight: 1,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(host: &str, port: u16, weight: u32, id: &str) -> Server {
        Server {
            host: host.into(),
            port,
            weight,
            id: id.into(),
        }
    }

    #[test]
    fn parses_the_forms_libmemcached_accepts() {
        assert_eq!(
            parse_server("127.0.0.1:11211").unwrap(),
            srv("127.0.0.1", 11211, 1, "127.0.0.1:11211")
        );
        assert_eq!(
            parse_server("cache-1:11411:3").unwrap(),
            srv("cache-1", 11411, 3, "cache-1:11411")
        );
        assert_eq!(
            parse_server("cache-1:11411 3").unwrap(),
            srv("cache-1", 11411, 3, "cache-1:11411")
        );
        assert_eq!(
            parse_server("[::1]:11211").unwrap(),
            srv("::1", 11211, 1, "[::1]:11211")
        );
        assert_eq!(
            parse_server("[::1]:11212:2").unwrap(),
            srv("::1", 11212, 2, "[::1]:11212")
        );
    }

    #[test]
    fn point_names_follow_libmemcached_and_libvbucket() {
        let a = parse_server("10.0.0.1:11211").unwrap();
        assert_eq!(a.libmemcached_name(), "10.0.0.1");
        assert_eq!(a.authority(), "10.0.0.1:11211");
        let b = parse_server("[::1]:11212").unwrap();
        assert_eq!(b.libmemcached_name(), "::1:11212");
    }

    #[test]
    fn rejects_what_is_not_host_port_weight() {
        for bad in [
            "",
            "host",
            ":11211",
            "host:",
            "::1:11211",
            "[::1]",
            "[::1]11211",
            "a b:1",
            "h:1:2 3",
            "h:1\t2",
        ] {
            assert!(parse_server(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            parse_server("h:0"),
            Err(RingError::BadPort { .. })
        ));
        assert!(matches!(
            parse_server("h:65536"),
            Err(RingError::BadPort { .. })
        ));
        assert!(matches!(
            parse_server("h:+80"),
            Err(RingError::BadPort { .. })
        ));
        assert!(matches!(
            parse_server("h:80:0"),
            Err(RingError::BadWeight { .. })
        ));
        assert!(matches!(
            parse_server("h:80:x"),
            Err(RingError::BadWeight { .. })
        ));
        assert!(matches!(
            parse_server("h:80:1:2"),
            Err(RingError::BadWeight { .. })
        ));
    }

    #[test]
    fn error_messages_name_the_value() {
        let e = parse_server("localhost").unwrap_err().to_string();
        assert_eq!(
            e,
            "malformed member: \"host:port[:weight]\" expected, got \"localhost\""
        );
        let e = parse_server("h:99999").unwrap_err().to_string();
        assert!(e.contains("\"99999\"") && e.contains("\"h:99999\""), "{e}");
        let e = parse_servers(&["a:1", "a:1:2"]).unwrap_err().to_string();
        assert!(e.contains("duplicate member \"a:1\""), "{e}");
        assert_eq!(parse_servers(&[]).unwrap_err(), RingError::Empty);
    }
}
