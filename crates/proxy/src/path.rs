//! Request paths → object paths, refusing traversal.
//!
//! A request path is percent-decoded once, split on `/`, and empty segments are dropped
//! (`//a` is `a`, as nginx's `merge_slashes`). A `.` or `..` segment — written raw or
//! encoded (`%2e%2e`, `.%2E`) — a NUL byte, a backslash, or bytes that are not UTF-8 make the
//! path refused: an object path never leaves the origin's root. The query string is not part
//! of the object's name.

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    /// A `.` or `..` segment (raw or percent-encoded).
    #[error("path traversal refused")]
    Traversal,
    /// A malformed percent escape, a NUL or backslash, or bytes that are not UTF-8.
    #[error("malformed path")]
    Malformed,
}

/// The object path (`a/b/c.mp4`, no leading slash) a request path names.
///
/// ```
/// use shoal_proxy::path::{object_path, BadPath};
/// assert_eq!(object_path("/videos//a%20b.mp4").unwrap(), "videos/a b.mp4");
/// assert_eq!(object_path("/a/%2e%2e/etc/passwd"), Err(BadPath::Traversal));
/// ```
pub fn object_path(request_path: &str) -> Result<String, BadPath> {
    let decoded = percent_decode(request_path.as_bytes())?;
    let decoded = String::from_utf8(decoded).map_err(|_| BadPath::Malformed)?;
    if decoded.contains(['\0', '\\']) {
        return Err(BadPath::Malformed);
    }
    let mut out = String::with_capacity(decoded.len());
    for seg in decoded.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(BadPath::Traversal);
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(seg);
    }
    Ok(out)
}

fn percent_decode(s: &[u8]) -> Result<Vec<u8>, BadPath> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(BadPath::Malformed)?;
            let hi = hex_val(hex[0]).ok_or(BadPath::Malformed)?;
            let lo = hex_val(hex[1]).ok_or(BadPath::Malformed)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encode an object path for a URL, keeping `/` and RFC 3986 unreserved bytes.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused_raw_or_encoded() {
        for p in [
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.%2e/x",
            "/a/%2e%2e%2fetc",
            "/a/..%2F..%2Fetc",
            "/./a",
            "/a/.",
        ] {
            assert_eq!(object_path(p), Err(BadPath::Traversal), "{p}");
        }
    }

    #[test]
    fn malformed_is_refused() {
        for p in ["/%", "/%2", "/%zz", "/a%00b", "/a\\b", "/%ff%fe"] {
            assert_eq!(object_path(p), Err(BadPath::Malformed), "{p}");
        }
    }

    #[test]
    fn normal_paths() {
        assert_eq!(object_path("/").unwrap(), "");
        assert_eq!(object_path("/a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(object_path("//a///b/").unwrap(), "a/b");
        assert_eq!(object_path("/..a/b..").unwrap(), "..a/b..");
        assert_eq!(object_path("/%C3%A9t%C3%A9").unwrap(), "été");
        assert_eq!(encode_path("a b/été?#"), "a%20b/%C3%A9t%C3%A9%3F%23");
        assert_eq!(
            object_path(&format!("/{}", encode_path("a b/é?#%"))).unwrap(),
            "a b/é?#%"
        );
    }
}
