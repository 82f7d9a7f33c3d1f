//! Object metadata ([`ObjectMeta`]) and its byte encoding, so it can live in a
//! `shoal-cache` group (whose values are `Bytes`) and travel between peers.
//!
//! The encoding is small, explicit and versioned:
//!
//! ```text
//! u8  version (1)
//! u64 size                      big-endian
//! u64 last-modified             seconds since the Unix epoch; u64::MAX = none
//! u16 len + validator bytes
//! u16 len + ETag bytes          0 = none
//! u16 len + Content-Type bytes  0 = none
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

const VERSION: u8 = 1;
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
}

/// The bytes are not an encoded [`ObjectMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt object metadata")]
pub struct CorruptMeta;

impl ObjectMeta {
    /// Encode for a cache value.
    pub fn encode(&self) -> Bytes {
        let fields = [
            self.validator.as_str(),
            self.etag.as_deref().unwrap_or(""),
            self.content_type.as_deref().unwrap_or(""),
        ];
        let mut out =
            BytesMut::with_capacity(17 + fields.iter().map(|f| 2 + f.len()).sum::<usize>());
        out.put_u8(VERSION);
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
        if b.len() < 17 || b.get_u8() != VERSION {
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
        }
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
        };
        assert_eq!(ObjectMeta::decode(&bare.encode()).unwrap(), bare);
        assert_eq!(m.validator.etag(), Some("\"abc\""));
        assert_eq!(bare.validator.etag(), None);
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
        let mut v2 = enc.to_vec();
        v2[0] = 2;
        assert_eq!(ObjectMeta::decode(&v2), Err(CorruptMeta));
        // Found by fuzz/chunk_key: a Last-Modified past SystemTime's range used to panic.
        let mut far = enc.to_vec();
        far[9..17].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        assert_eq!(ObjectMeta::decode(&far), Err(CorruptMeta));
    }
}
