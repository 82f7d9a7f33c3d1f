//! Object metadata kept in the disk tier, so a restarted node answers from disk without one
//! HEAD per object to the origin.
//!
//! * **Key**: `0x00 "meta" 0x00` + the object path. Chunk keys start with their version byte
//!   (1), so the two never collide.
//! * **Value**: `u8 version (1) | u64 checked at (ms since the Unix epoch) | encoded
//!   ObjectMeta`: when the origin last answered, in wall-clock time because `Instant`s do not
//!   survive a restart. The reader applies its own `meta_ttl` to it, so the TTL keeps counting
//!   across a restart, and a restart with a shorter TTL trusts old entries less.
//!
//! The disk tier checksums entries, so a flipped byte makes the entry missing (then the
//! origin is asked), never wrong metadata.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::meta::ObjectMeta;

const KEY_PREFIX: &[u8] = b"\0meta\0";
const VERSION: u8 = 1;

/// The disk tier key of the metadata of the object at `path`.
pub fn meta_key(path: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(KEY_PREFIX.len() + path.len());
    k.put_slice(KEY_PREFIX);
    k.put_slice(path.as_bytes());
    k.freeze()
}

/// The disk value for encoded metadata `meta` that the origin gave at `checked_at`.
pub(crate) fn encode(meta: &[u8], checked_at: SystemTime) -> Bytes {
    let ms = checked_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut v = BytesMut::with_capacity(9 + meta.len());
    v.put_u8(VERSION);
    v.put_u64(ms);
    v.put_slice(meta);
    v.freeze()
}

/// The encoded metadata in a disk value and when the origin gave it; `None` if the value is
/// not one (another version, or not metadata at all).
pub(crate) fn decode(value: &Bytes) -> Option<(Bytes, SystemTime)> {
    let mut b = &value[..];
    if b.len() < 9 || b.get_u8() != VERSION {
        return None;
    }
    let ms = b.get_u64();
    let meta = value.slice(9..);
    ObjectMeta::decode(&meta).ok()?;
    Some((meta, UNIX_EPOCH.checked_add(Duration::from_millis(ms))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Validator;

    #[test]
    fn round_trips_and_rejects_short_values() {
        let meta = ObjectMeta {
            size: 12,
            validator: Validator::strong_etag("\"x\""),
            etag: Some("\"x\"".into()),
            content_type: Some("text/plain".into()),
            last_modified: None,
            headers: Default::default(),
        }
        .encode();
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(decode(&encode(&meta, at)), Some((meta.clone(), at)));
        let v = encode(&meta, at);
        for cut in 0..v.len() {
            assert!(decode(&v.slice(..cut)).is_none(), "cut at {cut}");
        }
        assert_ne!(meta_key("a")[0], 1, "never a chunk key");
    }
}
