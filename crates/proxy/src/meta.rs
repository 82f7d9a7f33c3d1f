//! Object metadata ([`ObjectMeta`]) and its byte encoding, so it can live in a
//! `shoal-cache` group (whose values are `Bytes`) and travel between peers.
//!
//! The encoding is small, explicit and versioned:
//!
//! ```text
//! u8  version (1, or 2 with the object's headers)
//! u64 size                      big-endian
//! u64 last-modified             seconds since the Unix epoch; u64::MAX = none
//! u16 len + validator bytes
//! u16 len + ETag bytes          0 = none
//! u16 len + Content-Type bytes  0 = none
//! version 2 only, one per header in PASSED order:
//! u16 len + value bytes         0 = none
//! ```
//!
//! Metadata without any [`ObjectHeaders`] is written as version 1, byte for byte as before
//! version 2 existed, so nodes of an older release (peers in a rolling upgrade, or a disk tier
//! read after a downgrade) still read every object that has none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, header};

const VERSION: u8 = 1;
const VERSION_WITH_HEADERS: u8 = 2;
const NONE_TIME: u64 = u64::MAX;

/// What tells two versions of an object apart: a strong ETag, else Last-Modified and size,
/// in a form the [`Origin`](crate::Origin) that made it understands. It is part of every
/// chunk key, so chunks of two versions never mix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Validator(String);

impl Validator {
    /// A validator from its string form (an origin's own format).
    pub fn new(s: impl Into<String>) -> Self {
        Validator(s.into())
    }

    /// A validator made of a strong ETag (with its quotes).
    pub fn strong_etag(tag: &str) -> Self {
        Validator(format!("etag:{tag}"))
    }

    /// A validator made of Last-Modified (seconds) and size, for origins without ETags.
    pub fn modified(last_modified: Option<SystemTime>, size: u64) -> Self {
        let secs = last_modified.map_or(NONE_TIME, unix_secs);
        Validator(format!("lm:{secs}:{size}"))
    }

    /// The string form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The strong ETag this validator was made of, if it was.
    pub fn etag(&self) -> Option<&str> {
        self.0.strip_prefix("etag:")
    }
}

const PASSED_COUNT: usize = 5;

/// The origin's headers that clients see as the origin sent them, in this order: S3's system
/// metadata besides Content-Type (which [`ObjectMeta`] keeps on its own) plus `Expires`.
///
/// nginx's and Varnish's caches replay every header of the cached response. These are the ones
/// that describe the object itself, so one cached copy may carry them to every client: an
/// object stored gzip-compressed must say so, and a download name or a `max-age` set on the
/// bucket must reach the browser. Per-response headers such as `Set-Cookie` are never kept.
pub const PASSED: [HeaderName; PASSED_COUNT] = [
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::EXPIRES,
];

/// The [`PASSED`] headers an object came with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHeaders([Option<String>; PASSED_COUNT]);

impl ObjectHeaders {
    /// The [`PASSED`] headers of an origin's response. A header sent on several lines is
    /// joined with `, ` (RFC 9110 §5.3); one whose value is not visible ASCII is left out.
    pub fn from_response(h: &HeaderMap) -> Self {
        let mut out = ObjectHeaders::default();
        for (slot, name) in out.0.iter_mut().zip(&PASSED) {
            let values: Option<Vec<&str>> =
                h.get_all(name).iter().map(|v| v.to_str().ok()).collect();
            *slot = values.filter(|v| !v.is_empty()).map(|v| v.join(", "));
        }
        out
    }

    /// Sets `name` (one of [`PASSED`]; others are ignored) to `value`.
    pub fn set(&mut self, name: &HeaderName, value: impl Into<String>) {
        if let Some(i) = PASSED.iter().position(|n| n == name) {
            self.0[i] = Some(value.into()).filter(|v: &String| !v.is_empty());
        }
    }

    /// The value of `name`, if the object has it.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        let i = PASSED.iter().position(|n| n == name)?;
        self.0[i].as_deref()
    }

    /// The headers the object has, in [`PASSED`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static HeaderName, &str)> {
        PASSED
            .iter()
            .zip(&self.0)
            .filter_map(|(n, v)| Some((n, v.as_deref()?)))
    }

    /// True when the object has none of them.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// What the proxy knows about an object before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// The version's identity (see [`Validator`]).
    pub validator: Validator,
    /// The `ETag` to give clients (with quotes; may be weak), if any.
    pub etag: Option<String>,
    /// The object's `Content-Type`, if the origin said.
    pub content_type: Option<String>,
    /// Last modification time (whole seconds), if known.
    pub last_modified: Option<SystemTime>,
    /// Headers passed to clients as the origin sent them.
    pub headers: ObjectHeaders,
}

/// The bytes are not an encoded [`ObjectMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt object metadata")]
pub struct CorruptMeta;

impl ObjectMeta {
    /// Encode for a cache value.
    pub fn encode(&self) -> Bytes {
        let mut fields = vec![
            self.validator.as_str(),
            self.etag.as_deref().unwrap_or(""),
            self.content_type.as_deref().unwrap_or(""),
        ];
        let version = if self.headers.is_empty() {
            VERSION
        } else {
            fields.extend(self.headers.0.iter().map(|v| v.as_deref().unwrap_or("")));
            VERSION_WITH_HEADERS
        };
        let mut out =
            BytesMut::with_capacity(17 + fields.iter().map(|f| 2 + f.len()).sum::<usize>());
        out.put_u8(version);
        out.put_u64(self.size);
        out.put_u64(self.last_modified.map_or(NONE_TIME, unix_secs));
        for field in fields {
            // Fields come from response headers, far below 64 KiB; cut rather than corrupt.
            let bytes = field.as_bytes();
            let len = bytes.len().min(usize::from(u16::MAX));
            out.put_u16(len as u16);
            out.put_slice(&bytes[..len]);
        }
        out.freeze()
    }

    /// Decode a cache value.
    pub fn decode(mut b: &[u8]) -> Result<Self, CorruptMeta> {
        if b.len() < 17 {
            return Err(CorruptMeta);
        }
        let version = b.get_u8();
        if version != VERSION && version != VERSION_WITH_HEADERS {
            return Err(CorruptMeta);
        }
        let size = b.get_u64();
        let lm = b.get_u64();
        let mut field = || -> Result<String, CorruptMeta> {
            if b.len() < 2 {
                return Err(CorruptMeta);
            }
            let len = usize::from(b.get_u16());
            if b.len() < len {
                return Err(CorruptMeta);
            }
            let s = std::str::from_utf8(&b[..len]).map_err(|_| CorruptMeta)?;
            let s = s.to_owned();
            b.advance(len);
            Ok(s)
        };
        let validator = Validator(field()?);
        let etag = Some(field()?).filter(|s| !s.is_empty());
        let content_type = Some(field()?).filter(|s| !s.is_empty());
        let mut headers = ObjectHeaders::default();
        if version == VERSION_WITH_HEADERS {
            for slot in &mut headers.0 {
                *slot = Some(field()?).filter(|s| !s.is_empty());
            }
            if headers.is_empty() {
                // Version 2 is only written with headers; an empty one was not made here.
                return Err(CorruptMeta);
            }
        }
        if !b.is_empty() {
            return Err(CorruptMeta);
        }
        // A time past what SystemTime holds is garbage (from a peer or the disk), not a panic.
        let last_modified = match lm {
            NONE_TIME => None,
            secs => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .ok_or(CorruptMeta)?,
            ),
        };
        Ok(ObjectMeta {
            size,
            validator,
            etag,
            content_type,
            last_modified,
            headers,
        })
    }
}

impl ObjectMeta {
    /// The object's own `Cache-Control` directive that forbids a shared cache to serve it
    /// stale, if it has one (RFC 9111 §4.2.4 and §5.2.2: `must-revalidate`,
    /// `proxy-revalidate`, `no-cache`, `no-store`, and `s-maxage`, which implies
    /// `proxy-revalidate`).
    pub fn forbids_stale(&self) -> Option<&'static str> {
        const FORBIDDING: [&str; 5] = [
            "must-revalidate",
            "proxy-revalidate",
            "no-cache",
            "no-store",
            "s-maxage",
        ];
        let cc = self.headers.get(&header::CACHE_CONTROL)?;
        cc.split(',')
            .map(|d| d.split('=').next().unwrap_or("").trim())
            .find_map(|name| {
                FORBIDDING
                    .into_iter()
                    .find(|f| name.eq_ignore_ascii_case(f))
            })
    }
}

/// Seconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `t` cut to whole seconds, as HTTP dates carry it.
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_secs(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjectMeta {
        ObjectMeta {
            size: 1 << 40,
            validator: Validator::strong_etag("\"abc\""),
            etag: Some("\"abc\"".into()),
            content_type: Some("video/mp4".into()),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            headers: ObjectHeaders::default(),
        }
    }

    fn with_headers() -> ObjectMeta {
        let mut m = sample();
        m.headers
            .set(&header::CACHE_CONTROL, "public, max-age=31536000");
        m.headers.set(&header::CONTENT_ENCODING, "gzip");
        m
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(ObjectMeta::decode(&m.encode()).unwrap(), m);
        let bare = ObjectMeta {
            etag: None,
            content_type: None,
            last_modified: None,
            validator: Validator::modified(None, 0),
            size: 0,
            headers: ObjectHeaders::default(),
        };
        assert_eq!(ObjectMeta::decode(&bare.encode()).unwrap(), bare);
        assert_eq!(m.validator.etag(), Some("\"abc\""));
        assert_eq!(bare.validator.etag(), None);
        let h = with_headers();
        let enc = h.encode();
        assert_eq!(enc[0], VERSION_WITH_HEADERS);
        assert_eq!(ObjectMeta::decode(&enc).unwrap(), h);
    }

    /// What a release before version 2 wrote and reads: metadata without headers must stay
    /// exactly this, or peers of that release in a rolling upgrade stop understanding it.
    #[test]
    fn metadata_without_headers_is_still_version_1() {
        let m = ObjectMeta {
            size: 5,
            validator: Validator::strong_etag("\"e\""),
            etag: Some("\"e\"".into()),
            content_type: Some("a/b".into()),
            last_modified: None,
            headers: ObjectHeaders::default(),
        };
        let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 5];
        want.extend([0xff; 8]);
        want.extend([0, 8]);
        want.extend(b"etag:\"e\"");
        want.extend([0, 3]);
        want.extend(b"\"e\"");
        want.extend([0, 3]);
        want.extend(b"a/b");
        assert_eq!(&m.encode()[..], &want[..]);
    }

    #[test]
    fn cache_control_that_forbids_stale_copies() {
        let with = |cc: &str| {
            let mut m = sample();
            m.headers.set(&header::CACHE_CONTROL, cc);
            m.forbids_stale()
        };
        assert_eq!(sample().forbids_stale(), None);
        assert_eq!(with("public, max-age=60"), None);
        assert_eq!(with("max-age=60, Must-Revalidate"), Some("must-revalidate"));
        assert_eq!(with("public, s-maxage=600"), Some("s-maxage"));
        assert_eq!(with("no-cache=\"set-cookie\""), Some("no-cache"));
        assert_eq!(with("no-store"), Some("no-store"));
        assert_eq!(with("stale-if-error=60"), None);
    }

    #[test]
    fn object_headers_from_a_response() {
        let mut h = HeaderMap::new();
        h.append(header::CACHE_CONTROL, "public".parse().unwrap());
        h.append(header::CACHE_CONTROL, "max-age=60".parse().unwrap());
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        h.insert(header::SET_COOKIE, "a=b".parse().unwrap());
        h.insert(
            header::CONTENT_LANGUAGE,
            http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        let o = ObjectHeaders::from_response(&h);
        let got: Vec<_> = o.iter().map(|(n, v)| (n.as_str(), v)).collect();
        assert_eq!(
            got,
            [
                ("cache-control", "public, max-age=60"),
                ("content-encoding", "gzip")
            ]
        );
        assert_eq!(o.get(&header::CONTENT_ENCODING), Some("gzip"));
        assert!(ObjectHeaders::default().is_empty() && !o.is_empty());
    }

    #[test]
    fn rejects_truncated_or_extended_or_other_versions() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert_eq!(
                ObjectMeta::decode(&enc[..cut]),
                Err(CorruptMeta),
                "cut at {cut}"
            );
        }
        let mut longer = enc.to_vec();
        longer.push(0);
        assert_eq!(ObjectMeta::decode(&longer), Err(CorruptMeta));
        let mut v3 = enc.to_vec();
        v3[0] = 3;
        assert_eq!(ObjectMeta::decode(&v3), Err(CorruptMeta));
        // Version 2 needs its header fields, and at least one of them set.
        let mut v2 = enc.to_vec();
        v2[0] = 2;
        assert_eq!(ObjectMeta::decode(&v2), Err(CorruptMeta));
        v2.extend([0; 2 * PASSED_COUNT]);
        assert_eq!(ObjectMeta::decode(&v2), Err(CorruptMeta));
        let enc = with_headers().encode();
        for cut in 0..enc.len() {
            assert_eq!(
                ObjectMeta::decode(&enc[..cut]),
                Err(CorruptMeta),
                "cut at {cut}"
            );
        }
        // Found by fuzz/chunk_key: a Last-Modified past SystemTime's range used to panic.
        let mut far = enc.to_vec();
        far[9..17].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        assert_eq!(ObjectMeta::decode(&far), Err(CorruptMeta));
    }
}
