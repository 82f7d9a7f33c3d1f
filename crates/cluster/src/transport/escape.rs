//! Percent-encoding of group names and keys in request paths.
//!
//! We encode every byte except the unreserved ones (`A-Z a-z 0-9 - . _ ~`), plus the dots of
//! a `.` or `..` segment (so no one normalises them away). Go's `url.PathUnescape` and
//! its server-side path decoding turn that back into the same bytes, so keys that are not
//! UTF-8 or contain `/`, `%`, `+` or spaces survive the trip.
//!
//! Decoding turns `%XX` into a byte and leaves everything else alone, `+` included: that is
//! what Go's servers do with a decoded path. golang/groupcache's *client* encodes a space
//! as `+` (`url.QueryEscape`), so a key with a space sent by a Go client reaches a Go
//! server -- and us -- with a `+` in its place (golang/groupcache#25). We decode exactly as
//! Go does, so a mixed cluster at least agrees on the mangled key.
//!
//! Go's `http.ServeMux` cleans the decoded path before `HTTPPool` sees it, so a Go owner
//! answers a key that starts with `/`, holds `//` or has a `.`/`..` segment with a redirect
//! to a cleaned path, which is another key. Our client does not follow redirects: such a
//! fetch fails and the key is loaded locally (the right value, one extra load).

use crate::metrics::BadRequest;

/// Append the percent-encoding of `segment` to `out`.
pub(crate) fn encode_into(out: &mut String, segment: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let dots_only = matches!(segment, b"." | b"..");
    for &b in segment {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~');
        if unreserved || (b == b'.' && !dots_only) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Decode `%XX` escapes; `None` for a malformed escape.
pub(crate) fn decode(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Split `rest` (the path after the base path) on its first `/` into decoded group and key.
pub(crate) fn split_group_key(rest: &str) -> Option<(String, Vec<u8>)> {
    let (group, key) = rest.split_once('/')?;
    let group = String::from_utf8(decode(group)?).ok()?;
    Some((group, decode(key)?))
}

/// The group and key of a request path (after the base path): a non-empty UTF-8 group and
/// a key of at most [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES), or why not.
pub(crate) fn target(rest: &str) -> Result<(String, Vec<u8>), BadRequest> {
    let (group, key) = split_group_key(rest).ok_or(BadRequest::MalformedPath)?;
    if group.is_empty() {
        return Err(BadRequest::MalformedPath);
    }
    if key.len() > crate::MAX_KEY_BYTES {
        return Err(BadRequest::KeyTooLong);
    }
    Ok((group, key))
}

/// `base` + encoded group + `/` + encoded key.
pub(crate) fn path(base: &str, group: &str, key: &[u8]) -> String {
    let mut p = String::with_capacity(base.len() + group.len() + key.len() * 3 + 1);
    p.push_str(base);
    encode_into(&mut p, group.as_bytes());
    p.push('/');
    encode_into(&mut p, key);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_keys() {
        for key in [
            &b""[..],
            b"plain",
            b"a b",
            b"a+b",
            b"/leading/slash",
            b"100%",
            b".",
            b"..",
            b"x.y",
            b"\xff\x00\xfe",
            "ключ".as_bytes(),
        ] {
            let p = path("/_galaxycache/", "grp/with/slash", key);
            let rest = p.strip_prefix("/_galaxycache/").unwrap();
            // The group's slashes are escaped, so the first `/` ends the group.
            let (g, k) = split_group_key(rest).unwrap();
            assert_eq!((g.as_str(), k.as_slice()), ("grp/with/slash", key), "{p}");
        }
        assert_eq!(path("/b/", "g", b".."), "/b/g/%2E%2E");
        assert_eq!(path("/b/", "g", b"a b+c"), "/b/g/a%20b%2Bc");
    }

    #[test]
    fn decodes_like_go_servers_do() {
        // A Go client's QueryEscape("a b") is "a+b": the `+` stays a `+`.
        assert_eq!(decode("a+b").unwrap(), b"a+b");
        assert_eq!(decode("a%2bb").unwrap(), b"a+b");
        for bad in ["%", "%4", "%zz", "a%g0"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(split_group_key("nogroupslash"), None);
        assert_eq!(split_group_key("%ff/k"), None, "group names are UTF-8");
        assert_eq!(target("/k"), Err(BadRequest::MalformedPath), "empty group");
        assert_eq!(target(""), Err(BadRequest::MalformedPath));
        let long = "k".repeat(crate::MAX_KEY_BYTES + 1);
        assert_eq!(target(&format!("g/{long}")), Err(BadRequest::KeyTooLong));
        assert!(target(&format!("g/{}", &long[1..])).is_ok());
    }
}
