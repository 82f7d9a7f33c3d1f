//! Chunk math and chunk keys.
//!
//! Chunk `i` of an object is bytes `[i * chunk_size, min((i + 1) * chunk_size, size))`. A
//! [`ChunkKey`] names the object's path, its [`Validator`], its size, the chunk size and `i`,
//! so chunks of two versions of an object (or of two chunk sizes) never mix, and so that any
//! node holding only the key (the owner in a cluster) can read the chunk from the origin.
//!
//! Key encoding (binary, versioned):
//!
//! ```text
//! u8 version (1) | u64 chunk_size | u64 size | u64 index | u16 len + validator | path bytes
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::meta::Validator;
use crate::range::ByteSpan;

const VERSION: u8 = 1;

/// The bytes `[start, end)` of one chunk that a span needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSlice {
    /// The chunk's index.
    pub index: u64,
    /// First byte within the chunk.
    pub start: usize,
    /// One past the last byte within the chunk.
    pub end: usize,
}

/// Fixed-size chunking of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// Bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u64,
    /// The object's size.
    pub size: u64,
}

impl Chunking {
    /// Chunking of a `size`-byte object in `chunk_size` pieces (`chunk_size` > 0).
    pub fn new(chunk_size: u64, size: u64) -> Self {
        assert!(chunk_size > 0, "chunk size must be positive");
        Chunking { chunk_size, size }
    }

    /// Number of chunks.
    pub fn count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }

    /// The bytes chunk `index` covers.
    pub fn span(&self, index: u64) -> ByteSpan {
        let start = index.saturating_mul(self.chunk_size).min(self.size);
        let end = start.saturating_add(self.chunk_size).min(self.size);
        ByteSpan::new(start, end)
    }

    /// The chunk slices covering `span`, in order. `span` must lie within the object.
    pub fn slices(self, span: ByteSpan) -> impl Iterator<Item = ChunkSlice> {
        let cs = self.chunk_size;
        let first = span.start / cs;
        let last = if span.is_empty() {
            first
        } else {
            (span.end - 1) / cs + 1
        };
        (first..last).map(move |index| {
            let base = index * cs;
            ChunkSlice {
                index,
                start: (span.start.max(base) - base) as usize,
                end: (span.end.min(base + cs) - base) as usize,
            }
        })
    }
}

/// The identity of one chunk of one object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkKey {
    /// The object's path (as the origin names it).
    pub path: String,
    /// The object version.
    pub validator: Validator,
    /// The object's size.
    pub size: u64,
    /// Bytes per chunk.
    pub chunk_size: u64,
    /// Which chunk.
    pub index: u64,
}

/// The bytes are not an encoded [`ChunkKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt chunk key")]
pub struct CorruptKey;

impl ChunkKey {
    /// The chunk's bytes within the object.
    pub fn span(&self) -> ByteSpan {
        Chunking::new(self.chunk_size.max(1), self.size).span(self.index)
    }

    /// Encode as a cache key.
    pub fn encode(&self) -> Bytes {
        let v = self.validator.as_str().as_bytes();
        let v = &v[..v.len().min(usize::from(u16::MAX))];
        let mut out = BytesMut::with_capacity(27 + v.len() + self.path.len());
        out.put_u8(VERSION);
        out.put_u64(self.chunk_size);
        out.put_u64(self.size);
        out.put_u64(self.index);
        out.put_u16(v.len() as u16);
        out.put_slice(v);
        out.put_slice(self.path.as_bytes());
        out.freeze()
    }

    /// Decode a cache key (from this node or a peer).
    pub fn decode(mut b: &[u8]) -> Result<Self, CorruptKey> {
        if b.len() < 27 || b.get_u8() != VERSION {
            return Err(CorruptKey);
        }
        let chunk_size = b.get_u64();
        let size = b.get_u64();
        let index = b.get_u64();
        let vlen = usize::from(b.get_u16());
        if b.len() < vlen || chunk_size == 0 || index >= size.div_ceil(chunk_size) {
            return Err(CorruptKey);
        }
        let validator = std::str::from_utf8(&b[..vlen]).map_err(|_| CorruptKey)?;
        let path = std::str::from_utf8(&b[vlen..]).map_err(|_| CorruptKey)?;
        Ok(ChunkKey {
            path: path.to_owned(),
            validator: Validator::new(validator),
            size,
            chunk_size,
            index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spans_and_count() {
        let c = Chunking::new(10, 25);
        assert_eq!(c.count(), 3);
        assert_eq!(c.span(0), ByteSpan::new(0, 10));
        assert_eq!(c.span(2), ByteSpan::new(20, 25));
        assert_eq!(Chunking::new(10, 0).count(), 0);
        assert_eq!(Chunking::new(10, 10).count(), 1);
        assert_eq!(Chunking::new(10, 11).count(), 2);
    }

    #[test]
    fn slices_cover_a_span() {
        let c = Chunking::new(10, 25);
        let s: Vec<_> = c.slices(ByteSpan::new(5, 21)).collect();
        assert_eq!(
            s,
            [
                ChunkSlice {
                    index: 0,
                    start: 5,
                    end: 10
                },
                ChunkSlice {
                    index: 1,
                    start: 0,
                    end: 10
                },
                ChunkSlice {
                    index: 2,
                    start: 0,
                    end: 1
                },
            ]
        );
        assert_eq!(c.slices(ByteSpan::new(20, 20)).count(), 0);
    }

    #[test]
    fn keys_round_trip_and_differ_by_version() {
        let k = ChunkKey {
            path: "a/b c.mp4".into(),
            validator: Validator::strong_etag("\"v1\""),
            size: 3 << 20,
            chunk_size: 1 << 20,
            index: 2,
        };
        assert_eq!(ChunkKey::decode(&k.encode()).unwrap(), k);
        let k2 = ChunkKey {
            validator: Validator::strong_etag("\"v2\""),
            ..k.clone()
        };
        assert_ne!(k.encode(), k2.encode());
        assert_eq!(k.span(), ByteSpan::new(2 << 20, 3 << 20));
        let enc = k.encode();
        for cut in 0..27 {
            assert_eq!(ChunkKey::decode(&enc[..cut]), Err(CorruptKey));
        }
        let past = ChunkKey { index: 3, ..k };
        assert_eq!(ChunkKey::decode(&past.encode()), Err(CorruptKey));
    }

    proptest! {
        #[test]
        fn slices_tile_the_span(cs in 1u64..64, size in 0u64..1000, a in 0u64..1000, b in 0u64..1000) {
            let c = Chunking::new(cs, size);
            let (a, b) = (a.min(size), b.min(size));
            let span = ByteSpan::new(a.min(b), a.max(b));
            let mut pos = span.start;
            for s in c.slices(span) {
                let chunk = c.span(s.index);
                prop_assert!(s.start < s.end);
                prop_assert!(s.end as u64 <= chunk.len());
                prop_assert_eq!(chunk.start + s.start as u64, pos);
                pos = chunk.start + s.end as u64;
            }
            prop_assert_eq!(pos, span.end);
        }
    }
}
