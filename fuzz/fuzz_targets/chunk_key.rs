//! Chunk keys and object metadata as they arrive from peers and the disk: never a panic,
//! and whatever decodes encodes back to the same bytes (so two keys never name one chunk).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proxy::ObjectMeta;
use shoal_proxy::chunk::ChunkKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = ChunkKey::decode(data) {
        assert_eq!(&key.encode()[..], data);
        let span = key.span();
        assert!(span.start < span.end && span.end <= key.size, "{key:?}");
    }
    if let Ok(meta) = ObjectMeta::decode(data) {
        assert_eq!(ObjectMeta::decode(&meta.encode()), Ok(meta));
    }
});
