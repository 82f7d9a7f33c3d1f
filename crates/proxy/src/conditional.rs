//! Conditional requests (RFC 9110 §13): `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match`, `If-Modified-Since` and `If-Range`, evaluated in the order of §13.2.2.

use std::time::SystemTime;

use http::{HeaderMap, header};

use crate::meta::{ObjectMeta, whole_seconds};

/// What the preconditions of a GET or HEAD say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the representation; `use_range` is false when `If-Range` did not match (the
    /// `Range` header must then be ignored).
    Proceed {
        /// Whether a `Range` header may be honored.
        use_range: bool,
    },
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// Evaluate the conditional headers of a GET/HEAD against the object.
pub fn evaluate(h: &HeaderMap, meta: &ObjectMeta) -> Outcome {
    let etag = meta.etag.as_deref();
    let modified = meta.last_modified.map(whole_seconds);
    if let Some(v) = text(h, header::IF_MATCH) {
        if !list_matches(v, etag, true) {
            return Outcome::PreconditionFailed;
        }
    } else if let (Some(since), Some(m)) = (date(h, header::IF_UNMODIFIED_SINCE), modified)
        && m > since
    {
        return Outcome::PreconditionFailed;
    }
    if let Some(v) = text(h, header::IF_NONE_MATCH) {
        if list_matches(v, etag, false) {
            return Outcome::NotModified;
        }
    } else if let (Some(since), Some(m)) = (date(h, header::IF_MODIFIED_SINCE), modified)
        && m <= since
    {
        return Outcome::NotModified;
    }
    let use_range = match text(h, header::IF_RANGE) {
        None => true,
        Some(v) => if_range_matches(v.trim(), etag, modified),
    };
    Outcome::Proceed { use_range }
}

/// `If-Range`: a strong ETag that matches exactly, or the exact Last-Modified date.
fn if_range_matches(v: &str, etag: Option<&str>, modified: Option<SystemTime>) -> bool {
    if v.starts_with('"') || v.starts_with("W/") {
        return etag.is_some_and(|e| !e.starts_with("W/") && !v.starts_with("W/") && e == v);
    }
    matches!((httpdate::parse_http_date(v), modified), (Ok(d), Some(m)) if d == m)
}

/// Whether a `*` or entity-tag list matches `etag` (strong or weak comparison, §8.8.3.2).
fn list_matches(list: &str, etag: Option<&str>, strong: bool) -> bool {
    let Some(etag) = etag else { return false };
    if list.trim() == "*" {
        return true;
    }
    let ours = opaque(etag);
    tags(list).any(|(weak, tag)| {
        if strong {
            !weak && !etag.starts_with("W/") && tag == ours
        } else {
            tag == ours
        }
    })
}

/// The entity tags of a list: (weak, opaque-tag with quotes). Stops at the first malformed
/// element.
fn tags(mut s: &str) -> impl Iterator<Item = (bool, &str)> {
    std::iter::from_fn(move || {
        s = s.trim_start_matches([' ', '\t', ',']);
        let weak = s.starts_with("W/");
        let rest = if weak { &s[2..] } else { s };
        let body = rest.strip_prefix('"')?;
        let close = body.find('"')?;
        let tag = &rest[..close + 2];
        s = &body[close + 1..];
        Some((weak, tag))
    })
}

fn opaque(etag: &str) -> &str {
    etag.strip_prefix("W/").unwrap_or(etag)
}

fn text(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn date(h: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    httpdate::parse_http_date(text(h, name)?.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Validator;
    use std::time::{Duration, UNIX_EPOCH};

    fn meta(etag: &str) -> ObjectMeta {
        ObjectMeta {
            size: 10,
            validator: Validator::new("x"),
            etag: Some(etag.into()),
            content_type: None,
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            headers: Default::default(),
        }
    }

    fn eval(pairs: &[(header::HeaderName, &str)], m: &ObjectMeta) -> Outcome {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().unwrap());
        }
        evaluate(&h, m)
    }

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
    const EARLIER: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const GO: Outcome = Outcome::Proceed { use_range: true };
    const FULL: Outcome = Outcome::Proceed { use_range: false };

    #[test]
    fn if_none_match_and_if_modified_since() {
        let m = meta("\"a\"");
        use header::{IF_MODIFIED_SINCE as IMS, IF_NONE_MATCH as INM};
        assert_eq!(eval(&[(INM, "\"a\"")], &m), Outcome::NotModified);
        assert_eq!(eval(&[(INM, "W/\"a\"")], &m), Outcome::NotModified);
        assert_eq!(eval(&[(INM, "\"b\", \"a\"")], &m), Outcome::NotModified);
        assert_eq!(eval(&[(INM, "*")], &m), Outcome::NotModified);
        assert_eq!(eval(&[(INM, "\"b\"")], &m), GO);
        assert_eq!(eval(&[(IMS, LM)], &m), Outcome::NotModified);
        assert_eq!(eval(&[(IMS, LATER)], &m), Outcome::NotModified);
        assert_eq!(eval(&[(IMS, EARLIER)], &m), GO);
        assert_eq!(eval(&[(IMS, "garbage")], &m), GO);
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(eval(&[(INM, "\"b\""), (IMS, LM)], &m), GO);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        let m = meta("\"a\"");
        use header::{IF_MATCH as IM, IF_UNMODIFIED_SINCE as IUS};
        assert_eq!(eval(&[(IM, "\"a\"")], &m), GO);
        assert_eq!(eval(&[(IM, "W/\"a\"")], &m), Outcome::PreconditionFailed);
        assert_eq!(eval(&[(IM, "\"b\"")], &m), Outcome::PreconditionFailed);
        assert_eq!(eval(&[(IUS, EARLIER)], &m), Outcome::PreconditionFailed);
        assert_eq!(eval(&[(IUS, LM)], &m), GO);
    }

    #[test]
    fn if_range_needs_a_strong_match_or_the_exact_date() {
        use header::IF_RANGE as IR;
        let m = meta("\"a\"");
        assert_eq!(eval(&[(IR, "\"a\"")], &m), GO);
        assert_eq!(eval(&[(IR, "\"b\"")], &m), FULL);
        assert_eq!(eval(&[(IR, "W/\"a\"")], &m), FULL);
        assert_eq!(eval(&[(IR, LM)], &m), GO);
        assert_eq!(eval(&[(IR, LATER)], &m), FULL);
        assert_eq!(eval(&[(IR, "junk")], &m), FULL);
        assert_eq!(eval(&[(IR, "W/\"a\"")], &meta("W/\"a\"")), FULL);
    }

    #[test]
    fn tag_lists_with_commas_inside_quotes() {
        let v: Vec<_> = tags("\"a,b\", W/\"c\"").collect();
        assert_eq!(v, [(false, "\"a,b\""), (true, "\"c\"")]);
    }
}
