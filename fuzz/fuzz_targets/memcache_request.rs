//! A client's bytes to the memcached request decoder (ascii, meta or binary, picked from the
//! first byte), in one read, byte by byte and in random pieces: never a panic or a loop,
//! bytes consumed monotonically, every refusal one of memcached's replies, the same requests
//! whatever the read boundaries, and every decoded request encodes to bytes that decode to
//! it again.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shoal_memcache::ascii::{AsciiRequest, KEY_MAX};
use shoal_memcache::binary::{HEADER_LEN, RESPONSE_MAGIC};
use shoal_memcache::{Action, Decoder, ErrorKind, Limits, ProtocolError, Request, reply};

/// Limits to decode with: memcached's, or small ones so that every limit is reached by
/// inputs the fuzzer can make (the first with long pending lines, the second without).
fn limits(sel: u8) -> Limits {
    match sel % 3 {
        0 => Limits::default(),
        1 => Limits {
            max_pending_line: 4096,
            max_line: 96,
            max_multiget_line: 200,
            max_item_size: 32,
        },
        _ => Limits {
            max_pending_line: 40,
            max_line: 96,
            max_multiget_line: 200,
            max_item_size: 32,
        },
    }
}

const ASCII_REPLIES: [&[u8]; 10] = [
    b"",
    reply::ERROR,
    reply::BAD_FORMAT,
    reply::BAD_DELETE_FORMAT,
    reply::BAD_DATA_CHUNK,
    reply::TOO_LARGE,
    reply::BAD_DELTA,
    reply::BAD_EXPTIME,
    reply::MG_FLAGS_TOO_LONG,
    reply::META_FLAGS_TOO_LONG,
];

fn check_error(e: &ProtocolError, binary: bool) {
    let r = &e.reply()[..];
    if binary && !r.is_empty() {
        assert!(r.len() >= HEADER_LEN && r[0] == RESPONSE_MAGIC, "{e:?}");
        let body = u32::from_be_bytes([r[8], r[9], r[10], r[11]]) as usize;
        assert_eq!(r.len(), HEADER_LEN + body, "{e:?}");
    } else if !binary {
        assert!(ASCII_REPLIES.contains(&r), "unexpected reply {e:?}");
    }
    if matches!(e.kind(), ErrorKind::LineTooLong | ErrorKind::BadMagic) {
        assert!(e.is_close() && r.is_empty(), "{e:?}");
    }
}

fn check_request(r: &Request, l: &Limits) {
    for k in r.keys() {
        assert!(k.len() <= KEY_MAX, "key over 250 bytes: {r:?}");
    }
    match r {
        Request::Ascii(AsciiRequest::Store(s)) => assert!(s.value.len() <= l.max_item_size),
        Request::Meta(m) => {
            assert!(m.value.as_ref().is_none_or(|v| v.len() <= l.max_item_size));
        }
        Request::Binary(b) => {
            let h = &b.header;
            assert_eq!(
                h.body_len as usize,
                b.extras.len() + b.key.len() + b.value.len()
            );
            assert!(h.body_len as usize <= l.max_binary_body());
        }
        Request::Ascii(_) => {}
    }
}

/// Everything the decoder makes of `pieces`, fed one after the other, checking each step.
fn decode_all(pieces: &[&[u8]], l: &Limits) -> Vec<Result<Request, ProtocolError>> {
    let mut d = Decoder::new(l.clone());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut steps = 0usize;
    for p in pieces {
        buf.extend_from_slice(p);
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "the decoder does not make progress");
            let before = buf.len();
            let got = d.decode(&mut buf);
            assert!(buf.len() <= before, "decode grew the buffer");
            let consumed = before - buf.len();
            let binary = d.protocol() == Some(shoal_memcache::Protocol::Binary);
            match got {
                Ok(None) => break,
                Ok(Some(r)) => {
                    assert!(consumed > 0, "a request from no bytes: {r:?}");
                    check_request(&r, l);
                    out.push(Ok(r));
                }
                Err(e) => {
                    check_error(&e, binary);
                    if e.is_close() {
                        // Closed for good.
                        let again = d.decode(&mut buf);
                        assert!(matches!(&again, Err(a) if a.is_close()), "{again:?}");
                        out.push(Err(e));
                        return out;
                    }
                    // Going on after an error that consumed nothing would loop.
                    assert!(consumed > 0, "an error that consumes nothing: {e:?}");
                    if let Action::Swallow(n) = e.action() {
                        assert!(n <= u64::from(u32::MAX), "{e:?}");
                    }
                    out.push(Err(e));
                }
            }
        }
    }
    out
}

/// A small deterministic generator for piece lengths.
fn pieces(input: &[u8], mut seed: u32) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed as usize % 37 + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let l = limits(sel);
    let whole = decode_all(&[input], &l);

    // Read boundaries change nothing while no partial line can pass the pending-line limit
    // (past it memcached, and so the decoder, depends on how the line arrived).
    if input.len() <= l.max_pending_line {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_all(&bytes, &l), whole, "byte by byte");
        let seed = 0x9e37_79b9 ^ u32::from(sel).wrapping_mul(0x0101_0101) | 1;
        assert_eq!(decode_all(&pieces(input, seed), &l), whole, "in pieces");
    }

    // Every request re-encodes to bytes that decode to it (canonical numbers may make a line
    // longer, so lines are not limited here).
    let relaxed = Limits {
        max_pending_line: usize::MAX,
        max_line: usize::MAX / 4,
        max_multiget_line: usize::MAX / 4,
        ..l.clone()
    };
    for r in whole.iter().filter_map(|r| r.as_ref().ok()) {
        let mut enc = BytesMut::new();
        r.encode(&mut enc);
        let again = decode_all(&[&enc], &relaxed);
        assert_eq!(
            again.len(),
            1,
            "{r:?} encodes as {enc:?}, which decodes as {again:?}"
        );
        assert_eq!(again[0].as_ref(), Ok(r), "{r:?} encodes as {enc:?}");
    }
});
