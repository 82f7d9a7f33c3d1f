//! Peer URLs: `[http://|https://]host:port`, kept exactly as the operator wrote them.
//!
//! The ring places keys by the URL string *as given* (golang/groupcache hashes
//! `i + url`), so two nodes must spell every member the same way. The parsed form is only
//! used to connect.

use std::fmt;
use std::sync::Arc;

use http::Uri;

use crate::ClusterError;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS (and mutual TLS when the cluster has a client certificate).
    Https,
}

/// A member's URL: the string as given, and where to connect.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerUrl {
    given: Arc<str>,
    scheme: Scheme,
    /// `host:port`, with brackets around an IPv6 host.
    authority: Arc<str>,
    /// The host without brackets: the TLS server name.
    host: Arc<str>,
    port: u16,
}

impl fmt::Debug for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

impl PeerUrl {
    /// Parse `http://host:port`, `https://host:port` or `host:port` (meaning `http://`). A
    /// path other than `/`, a query or user info is refused: the protocols fix the paths.
    pub fn parse(given: &str) -> Result<PeerUrl, ClusterError> {
        let bad = |why| ClusterError::BadPeerUrl {
            url: given.to_owned(),
            why,
        };
        if given.is_empty() {
            return Err(bad("empty"));
        }
        let full = if given.contains("://") {
            given.to_owned()
        } else {
            format!("http://{given}")
        };
        let uri: Uri = full
            .parse()
            .map_err(|_| bad("expected [http://|https://]host:port"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not allowed"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(
                "a path or query is not allowed (the protocol fixes the path)",
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if let Some((_, p)) = authority.as_str().rsplit_once(':')
            && !p.contains(']')
            && p.parse::<u16>().is_err()
        {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
        let port = match (authority.port_u16(), scheme) {
            (Some(0), _) => return Err(bad("port 0")),
            (Some(p), _) => p,
            (None, Scheme::Http) => 80,
            (None, Scheme::Https) => 443,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Ok(PeerUrl {
            given: given.into(),
            scheme,
            authority: format!("{host}:{port}").into(),
            host: bare.into(),
            port,
        })
    }

    /// The URL exactly as given: the member's identity on the ring.
    pub fn as_str(&self) -> &str {
        &self.given
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (80 or 443 when none was given).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// `scheme://host:port`, the base of request URIs.
    pub fn base(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}", self.authority)
    }

    /// Whether two URLs name the same endpoint however they are spelled.
    pub fn same_endpoint(&self, other: &PeerUrl) -> bool {
        self.scheme == other.scheme && self.authority == other.authority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_spellings() {
        let u = PeerUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port()),
            (Scheme::Http, "127.0.0.1", 8080)
        );
        assert_eq!(u.base(), "http://127.0.0.1:8080");
        let u = PeerUrl::parse("127.0.0.1:9").unwrap();
        assert_eq!(
            (u.as_str(), u.base().as_str()),
            ("127.0.0.1:9", "http://127.0.0.1:9")
        );
        let u = PeerUrl::parse("https://[::1]/").unwrap();
        assert_eq!(
            (u.host(), u.port(), u.authority()),
            ("::1", 443, "[::1]:443")
        );
        assert!(
            PeerUrl::parse("http://localhost:1")
                .unwrap()
                .same_endpoint(&PeerUrl::parse("localhost:1").unwrap())
        );
    }

    #[test]
    fn refuses_what_it_cannot_connect_to() {
        for bad in [
            "",
            "ftp://h:1",
            "http://",
            "http://h:1/base",
            "http://h:1?q",
            "http://u@h:1",
            "http://h:0",
            "http://h:99999",
        ] {
            assert!(
                matches!(PeerUrl::parse(bad), Err(ClusterError::BadPeerUrl { .. })),
                "{bad:?} was accepted"
            );
        }
    }
}
