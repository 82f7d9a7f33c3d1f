//! A `Range` header value against an object size: never a panic, and every span the reply
//! names lies within the object and is what the spec says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proxy::range::{self, ParsedRange, RangeReply};

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes pick the size; small sizes often, so edge cases come up.
    let (size, value) = match data.split_first_chunk::<8>() {
        Some((s, rest)) => {
            let n = u64::from_le_bytes(*s);
            (if n & 1 == 0 { n >> 1 } else { (n >> 1) % 1024 }, rest)
        }
        None => (0, data),
    };
    match range::evaluate(value, size) {
        RangeReply::Full | RangeReply::Unsatisfiable => {}
        RangeReply::Partial(spans) => {
            assert!(!spans.is_empty());
            let Ok(ParsedRange::Bytes(specs)) = range::parse(value) else {
                panic!("a partial reply from a header that did not parse as byte ranges");
            };
            let expected: Vec<_> = specs
                .iter()
                .filter_map(|s| range::span_of(*s, size))
                .collect();
            assert_eq!(spans, expected);
            for s in &spans {
                assert!(s.start < s.end && s.end <= size, "{s:?} outside 0..{size}");
                let cr = s.content_range(size);
                assert_eq!(cr, format!("bytes {}-{}/{size}", s.start, s.end - 1));
            }
            if spans.len() > 1 {
                let total: u64 = spans.iter().map(|s| s.len()).sum();
                assert!(total <= size, "overlapping ranges amplify the reply");
            }
        }
    }
});
