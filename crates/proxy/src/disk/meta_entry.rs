//! Object metadata kept in the disk tier, so a restarted node answers from disk without one
//! HEAD per object to the origin.
//!
//! * **Key**: `0x00 "meta" 0x00` + the object path. Chunk keys start with their version byte
//!   (1), so the two never collide.
//! * **Value**: `u8 version (1) | u64 fresh until (ms since the Unix epoch; u64::MAX = no
//!   deadline) | encoded ObjectMeta`. The deadline is wall-clock time because `Instant`s do
//!   not survive a restart: `--meta-ttl` keeps counting from when the origin last answered.
//!
//! The disk tier checksums entries, so a flipped byte makes the entry missing (then the
//! origin is asked), never wrong metadata.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::meta::ObjectMeta;

const KEY_PREFIX: &[u8] = b"\0meta\0";
const VERSION: u8 = 1;
const NO_DEADLINE: u64 = u64::MAX;

/// The disk tier key of the metadata of the object at `path`.
pub fn meta_key(path: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(KEY_PREFIX.len() + path.len());
    k.put_slice(KEY_PREFIX);
    k.put_slice(path.as_bytes());
    k.freeze()
}

/// The disk value for encoded metadata `meta`, trusted until `fresh_until` (`None`: always).
pub(crate) fn encode(meta: &[u8], fresh_until: Option<SystemTime>) -> Bytes {
    let ms = fresh_until.map_or(NO_DEADLINE, |t| {
        t.duration_since(UNIX_EPOCH).map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(NO_DEADLINE - 1)
        })
    });
    let mut v = BytesMut::with_capacity(9 + meta.len());
    v.put_u8(VERSION);
    v.put_u64(ms);
    v.put_slice(meta);
    v.freeze()
}

/// The encoded metadata in a disk value and its deadline; `None` if the value is not one
/// (another version, or not metadata at all).
pub(crate) fn decode(value: &Bytes) -> Option<(Bytes, Option<SystemTime>)> {
    let mut b = &value[..];
    if b.len() < 9 || b.get_u8() != VERSION {
        return None;
    }
    let ms = b.get_u64();
    let meta = value.slice(9..);
    ObjectMeta::decode(&meta).ok()?;
    let deadline = (ms != NO_DEADLINE).then(|| UNIX_EPOCH + Duration::from_millis(ms));
    Some((meta, deadline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Validator;

    #[test]
    fn round_trips_with_and_without_a_deadline() {
        let meta = ObjectMeta {
            size: 12,
            validator: Validator::strong_etag("\"x\""),
            etag: Some("\"x\"".into()),
            content_type: Some("text/plain".into()),
            last_modified: None,
        }
        .encode();
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            decode(&encode(&meta, Some(at))),
            Some((meta.clone(), Some(at)))
        );
        assert_eq!(decode(&encode(&meta, None)), Some((meta.clone(), None)));
        let v = encode(&meta, None);
        for cut in 0..v.len() {
            assert!(decode(&v.slice(..cut)).is_none(), "cut at {cut}");
        }
        assert_ne!(meta_key("a")[0], 1, "never a chunk key");
    }
}
