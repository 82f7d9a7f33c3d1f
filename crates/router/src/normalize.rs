//! Request paths: photosrv's normalisation, prefix rewrites, and the upstream path.
//!
//! [`normalize`] is photosrv's `normalizeURL` without the rewrites: decode if the path holds a
//! `%` (Go's `url.QueryUnescape`, so `+` becomes a space), refuse any `/.` (which covers `/./`,
//! `/../` and dot-files), cut at `?`, and replace `//` by `/` in one non-overlapping pass.
//! [`Rewrites::apply`] then rewrites a prefix.
//!
//! **Paths are bytes.** Go's `QueryUnescape` yields whatever bytes the escapes spell, and Go
//! strings need not be UTF-8: photosrv hashed a Latin-1 name such as `caf%E9.jpg` by its raw
//! byte 0xE9 and forwarded it re-encoded, so nginx opened the file named with that byte. A
//! normalised path here is therefore a byte string: hashed as it is, rewritten by byte
//! prefix, and percent-encoded again by [`encode_path`] for the storage node. Text is only
//! made of it for people to read ([`display_path`]).
//!
//! **Rewrite order.** photosrv keeps its rules in a Go map and, for each request, walks the map
//! in Go's randomised order and applies *every* rule whose prefix matches the path as rewritten
//! so far. When two rules can match one path (`/a/` and `/a/b/`, or a chain `/a/`→`/b/`,
//! `/b/`→`/c/`) the result depends on the walk order, so one path can hash to different shards
//! on different requests. shoal applies **only the longest matching prefix, once**, which is
//! what the most specific rule means and is the same on every request. For rule sets where no
//! path matches two rules (every set photosrv's own tests use) the results are identical.

use std::borrow::Cow;
use std::fmt;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// A `%` escape that is not two hex digits.
    BadEscape,
    /// A `/.` segment: `/./`, `/../`, or a dot-file.
    DotSegment,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejected::BadEscape => "malformed %-escape in path",
            Rejected::DotSegment => "path segments starting with '.' are refused",
        })
    }
}

/// Percent-decodes `s` into the bytes the escapes spell (UTF-8 or not). With `plus_is_space`
/// (Go's `QueryUnescape`) `+` becomes a space; without it (Go's `PathUnescape`, which is how
/// Go fills `URL.Path`) `+` stays.
pub fn unescape(s: impl AsRef<[u8]>, plus_is_space: bool) -> Result<Vec<u8>, Rejected> {
    let b = s.as_ref();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(Rejected::BadEscape);
                };
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// photosrv's `normalizeURL` before rewrites, on a path as Go's `URL.Path` holds it (decoded
/// once). photosrv answers a refused path with `/` (a 404); this says why instead.
pub fn normalize(path: impl AsRef<[u8]>) -> Result<Vec<u8>, Rejected> {
    normalize_owned(path.as_ref().to_vec())
}

/// [`normalize`], reusing `p`'s buffer: every step after the second decoding works in place.
fn normalize_owned(mut p: Vec<u8>) -> Result<Vec<u8>, Rejected> {
    if p.contains(&b'%') {
        p = unescape(&p, true)?;
    }
    if p.windows(2).any(|w| w == b"/.") {
        return Err(Rejected::DotSegment);
    }
    if let Some(q) = p.iter().position(|&c| c == b'?') {
        p.truncate(q);
    }
    collapse_double_slashes(&mut p);
    Ok(p)
}

/// Go's `strings.Replace(p, "//", "/", -1)`: one left-to-right pass over non-overlapping
/// pairs, so `///` becomes `//`. In place: the result is never longer.
fn collapse_double_slashes(p: &mut Vec<u8>) {
    let (mut read, mut write) = (0, 0);
    while read < p.len() {
        p[write] = p[read];
        write += 1;
        read += if p[read] == b'/' && p.get(read + 1) == Some(&b'/') {
            2
        } else {
            1
        };
    }
    p.truncate(write);
}

/// A request target's path as it arrives (still percent-encoded): decoded once as Go's
/// `url.Parse` would, then [`normalize`]d and rewritten. The result is bytes; see the module
/// docs.
pub fn normalize_request_path(
    raw: impl AsRef<[u8]>,
    rewrites: &Rewrites,
) -> Result<Vec<u8>, Rejected> {
    let decoded = unescape(raw, false)?;
    Ok(rewrites.apply(normalize_owned(decoded)?))
}

/// The path to send upstream: `path`'s bytes percent-encoded where a URI path needs it (every
/// byte outside ASCII among them), so the storage node decodes exactly these bytes again.
pub fn encode_path(path: impl AsRef<[u8]>) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let path = path.as_ref();
    let mut out = String::with_capacity(path.len() + 8);
    for &c in path {
        let keep = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'/' | b'-'
                    | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if keep {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(c >> 4)] as char);
            out.push(HEX[usize::from(c & 15)] as char);
        }
    }
    out
}

/// A normalised path for people to read (logs, `--explain`, repair reports): the text itself
/// when it is UTF-8, else its [`encode_path`] form, so bytes such as 0xE9 show as `%E9`
/// rather than vanish into replacement characters.
pub fn display_path(path: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(path) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(encode_path(path)),
    }
}

/// A rule photosrv's validation dropped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedRule {
    /// The prefix as written.
    pub prefix: String,
    /// The replacement as written.
    pub replacement: String,
    /// Why it was dropped.
    pub why: &'static str,
}

/// Prefix rewrites, longest prefix first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites {
    rules: Vec<(String, String)>,
}

impl Rewrites {
    /// Validates rules as photosrv's `parseRewrites` does, keeping the valid ones: both sides
    /// non-empty, a prefix given once only (a repeated prefix drops every rule for it), both
    /// starting with `/`, and if either ends with `/` both must.
    pub fn new<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Self, Vec<DroppedRule>) {
        let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        let mut rules = Vec::new();
        let mut dropped = Vec::new();
        for &(prefix, replacement) in &pairs {
            let repeated = pairs.iter().filter(|(p, _)| *p == prefix).count() > 1;
            let why = if prefix.is_empty() || replacement.is_empty() {
                Some("no replacement")
            } else if repeated {
                Some("prefix given more than once")
            } else if !prefix.starts_with('/') {
                Some("prefix must start with '/'")
            } else if !replacement.starts_with('/') {
                Some("replacement must start with '/'")
            } else if prefix.ends_with('/') != replacement.ends_with('/') {
                Some("if one side ends with '/' both must")
            } else {
                None
            };
            match why {
                Some(why) => dropped.push(DroppedRule {
                    prefix: prefix.into(),
                    replacement: replacement.into(),
                    why,
                }),
                None => rules.push((prefix.to_string(), replacement.to_string())),
            }
        }
        rules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        (Rewrites { rules }, dropped)
    }

    /// The kept rules, in the order they are tried.
    pub fn rules(&self) -> &[(String, String)] {
        &self.rules
    }

    /// Rewrites the longest matching prefix of `path` (compared byte for byte), once. A path
    /// no rule matches is returned as it came, without copying.
    pub fn apply(&self, path: impl Into<Vec<u8>>) -> Vec<u8> {
        let mut path = path.into();
        if let Some((prefix, replacement)) = self
            .rules
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_bytes()))
        {
            path.splice(..prefix.len(), replacement.bytes());
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// photosrv's `TestNormalizeURL` table; photosrv's `/` means refused.
    #[test]
    fn photosrv_normalize_table() {
        for (path, want) in [
            ("/images/hello.jpg", "/images/hello.jpg"),
            ("/images/hello.jpg?query=foo", "/images/hello.jpg"),
            ("/images//hello.jpg", "/images/hello.jpg"),
            ("/images/./hello.jpg", "/"),
            ("/images/../hello.jpg", "/"),
            ("/images/.jpg", "/"),
            ("/images/hello%2Ejpg", "/images/hello.jpg"),
            ("/images//hello%2Ejpg?query=foo", "/images/hello.jpg"),
        ] {
            let got = normalize(path).unwrap_or_else(|_| b"/".to_vec());
            assert_eq!(got, want.as_bytes(), "{path}");
        }
    }

    #[test]
    fn go_quirks_are_kept() {
        // QueryUnescape turns + into a space, only when a % made photosrv decode.
        assert_eq!(normalize("/a+b%20c").unwrap(), b"/a b c");
        assert_eq!(normalize("/a+b").unwrap(), b"/a+b");
        // One non-overlapping pass: /// becomes //, //// becomes //.
        assert_eq!(normalize("/a///b").unwrap(), b"/a//b");
        assert_eq!(normalize("////a//").unwrap(), b"//a/");
        assert_eq!(normalize("/a%zz"), Err(Rejected::BadEscape));
        assert_eq!(normalize("/a/%2e%2e/b"), Err(Rejected::DotSegment));
    }

    #[test]
    fn request_paths_decode_twice_like_go() {
        let none = Rewrites::default();
        assert_eq!(normalize_request_path("/a%2520b", &none).unwrap(), b"/a b");
        assert_eq!(
            normalize_request_path("/x/%2E%2E/etc/passwd", &none),
            Err(Rejected::DotSegment)
        );
        assert_eq!(
            normalize_request_path("/x/%252e%252e/y", &none),
            Err(Rejected::DotSegment)
        );
        assert_eq!(encode_path("/a b/ü?#%"), "/a%20b/%C3%BC%3F%23%25");
    }

    fn photosrv_rules() -> Rewrites {
        let (r, dropped) = Rewrites::new([
            ("/images/hotel/org/", "/images/hotel/max500/"),
            ("/images/hotel/partner/", "/images/hotel/affiliate/"),
            (
                "images/hotel/rule-no-lead-slash",
                "/images/hotel/bad-prefix/",
            ),
            (
                "/images/hotel/replace-no-lead-slash/",
                "images/hotel/bad-replace/",
            ),
            ("/images/hotel/a/", "/images/hotel/c/"),
            ("/images/hotel/a/", "/images/hotel/b/"),
            (
                "/images/hotel/rule-no-trail-slash",
                "/images/hotel/dont-do-that/",
            ),
            (
                "/images/hotel/replace-no-trail-slash/",
                "/images/hotel/dont-do-that",
            ),
            ("/images/hotel/foo", "/images/hotel/bar"),
            ("/broken/", ""),
        ]);
        assert_eq!(dropped.len(), 7);
        r
    }

    /// photosrv's `TestParseRewrites`.
    #[test]
    fn photosrv_parse_rewrites() {
        let r = photosrv_rules();
        let mut kept: Vec<_> = r.rules().to_vec();
        kept.sort();
        assert_eq!(
            kept,
            [
                (
                    "/images/hotel/foo".to_string(),
                    "/images/hotel/bar".to_string()
                ),
                ("/images/hotel/org/".into(), "/images/hotel/max500/".into()),
                (
                    "/images/hotel/partner/".into(),
                    "/images/hotel/affiliate/".into()
                ),
            ]
        );
    }

    /// photosrv's `TestRewriteURL`.
    #[test]
    fn photosrv_rewrite_table() {
        let r = photosrv_rules();
        for (path, want) in [
            (
                "/images/hotel/org/hello.jpg",
                "/images/hotel/max500/hello.jpg",
            ),
            (
                "/images/hotel/orge/hello.jpg",
                "/images/hotel/orge/hello.jpg",
            ),
            (
                "/images/hotel/affiliate/hello.jpg",
                "/images/hotel/affiliate/hello.jpg",
            ),
            (
                "/images/hotel/partner/hello.jpg",
                "/images/hotel/affiliate/hello.jpg",
            ),
            (
                "/images/hotel/rule-no-lead-slash/hello.jpg",
                "/images/hotel/rule-no-lead-slash/hello.jpg",
            ),
            (
                "/images/hotel/replace-no-lead-slash/hello.jpg",
                "/images/hotel/replace-no-lead-slash/hello.jpg",
            ),
            (
                "/images/hotel/rule-no-trail-slash/hello.jpg",
                "/images/hotel/rule-no-trail-slash/hello.jpg",
            ),
            (
                "/images/hotel/replace-no-trail-slash/hello.jpg",
                "/images/hotel/replace-no-trail-slash/hello.jpg",
            ),
            ("/images/hotel/a/hello.jpg", "/images/hotel/a/hello.jpg"),
            (
                "/images/hotel/broken/hello.jpg",
                "/images/hotel/broken/hello.jpg",
            ),
            (
                "/images/hotel/foobuz/hello.jpg",
                "/images/hotel/barbuz/hello.jpg",
            ),
        ] {
            assert_eq!(r.apply(path), want.as_bytes(), "{path}");
        }
    }

    #[test]
    fn longest_prefix_wins_once() {
        let (r, _) = Rewrites::new([("/a/", "/b/"), ("/a/x/", "/c/"), ("/b/", "/d/")]);
        assert_eq!(r.apply("/a/x/f"), b"/c/f");
        assert_eq!(r.apply("/a/y"), b"/b/y"); // not chained on to /d/
    }

    /// What Go's `QueryUnescape` decodes need not be UTF-8, and photosrv kept it as bytes:
    /// so does every step here, with every other rule as before.
    #[test]
    fn bytes_that_are_not_utf8_are_kept() {
        let none = Rewrites::default();
        for raw in [
            "/caf%E9.jpg",
            "/caf%e9.jpg",
            "/caf%25E9.jpg",
            "//caf%E9.jpg?x=1",
        ] {
            assert_eq!(
                normalize_request_path(raw, &none).unwrap(),
                b"/caf\xe9.jpg",
                "{raw}"
            );
        }
        // `+` is a space only where a second decoding happens, as for UTF-8 paths.
        assert_eq!(
            normalize_request_path("/a+%25FF+b", &none).unwrap(),
            b"/a \xff b"
        );
        assert_eq!(
            normalize_request_path("/a+%FF+b", &none).unwrap(),
            b"/a+\xff+b"
        );
        for raw in ["/%E9/%2E%2E/etc/passwd", "/%FF/.hidden", "/%FF%2F%2E%2E"] {
            assert_eq!(
                normalize_request_path(raw, &none),
                Err(Rejected::DotSegment),
                "{raw}"
            );
        }
        assert_eq!(
            normalize_request_path("/%E9%2", &none),
            Err(Rejected::BadEscape)
        );
        // Prefixes are compared and replaced as bytes.
        let (r, _) = Rewrites::new([("/old/", "/new/"), ("/caf", "/tea")]);
        assert_eq!(
            normalize_request_path("/old/caf%E9.jpg", &r).unwrap(),
            b"/new/caf\xe9.jpg"
        );
        assert_eq!(r.apply(&b"/caf\xe9"[..]), b"/tea\xe9");
        assert_eq!(r.apply(&b"/ol\xe9/x"[..]), b"/ol\xe9/x");
        // Upstream: every byte outside ASCII is escaped, so nginx decodes the same bytes.
        assert_eq!(encode_path(b"/caf\xe9 \xff.jpg"), "/caf%E9%20%FF.jpg");
        assert_eq!(display_path(b"/caf\xe9.jpg"), "/caf%E9.jpg");
        assert_eq!(display_path("/café b.jpg".as_bytes()), "/café b.jpg");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Paths built from the characters that matter here: separators, dots, escapes, `+`,
        /// `?`, multi-byte text.
        fn path() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("/".to_string()),
                    Just(".".to_string()),
                    Just("%".to_string()),
                    Just("%2e".to_string()),
                    Just("%2F".to_string()),
                    Just("%25".to_string()),
                    Just("+".to_string()),
                    Just("?".to_string()),
                    "[a-z0-9]{1,3}",
                    "\\PC",
                ],
                0..24,
            )
            .prop_map(|parts| parts.concat())
        }

        fn rules() -> Rewrites {
            Rewrites::new([("/a/", "/b/"), ("/a/x/", "/c/")]).0
        }

        proptest! {
            /// No input panics, and nothing accepted holds a `/.` segment.
            #[test]
            fn never_panics_and_never_lets_dot_segments_through(raw in path()) {
                let _ = unescape(&raw, true);
                let _ = normalize(&raw);
                if let Ok(p) = normalize_request_path(&raw, &rules()) {
                    prop_assert!(!p.windows(2).any(|w| w == b"/."), "{raw:?} -> {p:?}");
                }
            }

            /// What the router sends upstream decodes back to the path it routed.
            #[test]
            fn encode_path_round_trips(s in "\\PC*") {
                prop_assert_eq!(unescape(encode_path(&s), false), Ok(s.into_bytes()));
            }

            /// Any bytes at all, UTF-8 or not.
            #[test]
            fn encode_path_round_trips_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..64)) {
                prop_assert_eq!(unescape(encode_path(&b), false), Ok(b));
            }

            /// Normalising again changes nothing, except where photosrv's own quirks say so:
            /// a `%` left after decoding is decoded again, and `//` collapses one pass at a
            /// time.
            #[test]
            fn normalize_is_idempotent_but_for_photosrvs_quirks(raw in path()) {
                if let Ok(once) = normalize(&raw)
                    && !once.contains(&b'%')
                    && !once.windows(2).any(|w| w == b"//")
                {
                    prop_assert_eq!(normalize(&once), Ok(once.clone()));
                    let none = Rewrites::default();
                    prop_assert_eq!(normalize_request_path(encode_path(&once), &none), Ok(once));
                }
            }
        }
    }
}
