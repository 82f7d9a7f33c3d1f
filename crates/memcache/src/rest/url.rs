//! Config URLs and moxi's dynamic `-z` form.

use super::RestError;

/// One `http://` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The URL as given (without credentials), for logs.
    pub text: String,
    /// The host (a name, an IPv4 address, or an IPv6 address without brackets).
    pub host: String,
    /// The port; 80 by default.
    pub port: u16,
    /// The path and query; `/` by default.
    pub path: String,
    /// `user:password` from the URL, if any.
    pub auth: Option<(String, String)>,
}

impl HttpUrl {
    /// Parses `http://[user[:password]@]host[:port][/path]`.
    pub fn parse(s: &str) -> Result<HttpUrl, RestError> {
        let bad = || RestError::BadUrl(s.to_owned());
        let rest = s.trim().strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (auth, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hp)) => {
                let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((u.to_owned(), p.to_owned())), hp)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            let (h, r) = inner.split_once(']').ok_or_else(bad)?;
            (h, r.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => p.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(HttpUrl {
            text: format!("http://{hostport}{path}"),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            auth,
        })
    }
}

/// Where REST configs come from: URLs tried in order, and basic-auth credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestSource {
    /// The URLs, in order.
    pub urls: Vec<HttpUrl>,
    /// `user`, `password` for HTTP basic auth (moxi's `auth=USER%PASSWORD`, credentials in
    /// the URL, or `-Z usr=...,pwd=...`); a URL's own credentials win.
    pub auth: Option<(String, String)>,
}

impl RestSource {
    /// Whether `text` is one of moxi's dynamic `-z` forms (`http://...`, `url=`, `host=`,
    /// `auth=`, `apikey=`).
    pub fn is_dynamic(text: &str) -> bool {
        let t = text.trim_start();
        ["http://", "url=", "host=", "auth=", "apikey="]
            .iter()
            .any(|p| t.starts_with(p))
    }

    /// Parses one section of moxi's dynamic `-z` form: `http://A,http://B` (commas become
    /// the URL list) or `url=A|B,auth=USER%PASSWORD,#comment=...` (keys split on `,`, `\r`
    /// and `\n`; `config`/`dbpath` accepted and ignored). An item that starts with
    /// `http://` after `url=A,` is another URL (moxi silently drops it).
    pub fn parse(section: &str) -> Result<RestSource, RestError> {
        let text = section.trim();
        let mut urls = Vec::new();
        let mut auth = None;
        if text.starts_with("http://") {
            for u in text.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                urls.push(HttpUrl::parse(u)?);
            }
        } else {
            for item in text.split([',', '\r', '\n']).map(str::trim) {
                if item.is_empty() || item.starts_with('#') {
                    continue;
                }
                if item.starts_with("http://") {
                    urls.push(HttpUrl::parse(item)?);
                    continue;
                }
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                match k.trim() {
                    "url" | "host" => {
                        for u in v.split('|').map(str::trim).filter(|u| !u.is_empty()) {
                            urls.push(HttpUrl::parse(u)?);
                        }
                    }
                    "auth" | "apikey" => {
                        let (u, p) = v.split_once('%').unwrap_or((v, ""));
                        auth = Some((u.to_owned(), p.to_owned()));
                    }
                    _ => {} // config, dbpath: moxi's persistence, a no-op
                }
            }
        }
        if urls.is_empty() {
            return Err(RestError::BadUrl(text.to_owned()));
        }
        Ok(RestSource { urls, auth })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://bob:pw@127.0.0.1:8091/pools/default").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8091));
        assert_eq!(u.path, "/pools/default");
        assert_eq!(u.auth, Some(("bob".into(), "pw".into())));
        assert_eq!(u.text, "http://127.0.0.1:8091/pools/default");
        let u = HttpUrl::parse("http://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 80, "/"));
        for bad in [
            "https://a/",
            "http://",
            "http://a:x/",
            "http://a:0/",
            "ftp://a",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn moxi_dynamic_forms() {
        let s = RestSource::parse("http://a:1/x,http://b:2/y").unwrap();
        assert_eq!(s.urls.len(), 2);
        assert_eq!(s.urls[1].host, "b");
        let s = RestSource::parse("url=http://a/x|http://b/y,auth=u%p,#c=1,config=/tmp/x").unwrap();
        assert_eq!(s.urls.len(), 2);
        assert_eq!(s.auth, Some(("u".into(), "p".into())));
        let s = RestSource::parse("url=http://a/x,http://b/y").unwrap();
        assert_eq!(s.urls.len(), 2, "the second URL is kept, unlike moxi");
        assert!(RestSource::parse("auth=u%p").is_err());
        assert!(RestSource::is_dynamic("url=http://a"));
        assert!(!RestSource::is_dynamic("11211=a:1"));
    }
}
