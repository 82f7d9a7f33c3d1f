//! What a (misbehaving) memcached server sends back, to the proxy's reply decoders: never a
//! panic or a loop, nothing consumed until a reply is whole, every reply that carries a data
//! block consumed with exactly that block, the same replies whatever the read boundaries,
//! every reply re-encodes to bytes that decode to it again, and what the proxy makes of the
//! replies (ascii from binary, merged stats) does not panic either.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use shoal_memcache::a2b;
use shoal_memcache::ascii::{MetaCode, Response, StoreKind, decode_response};
use shoal_memcache::binary::{BinaryResponse, HEADER_LEN, decode_binary_response};
use shoal_memcache::stats::merge_stats;
use shoal_memcache::{Limits, ResponseError};

fn limits(sel: u8) -> Limits {
    if sel & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_line: 64,
            max_item_size: 32,
            ..Limits::default()
        }
    }
}

/// Every ascii reply `pieces` decode to, checking each step.
fn ascii_all(pieces: &[&[u8]], l: &Limits) -> Vec<Result<Response, ResponseError>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in pieces {
        buf.extend_from_slice(p);
        loop {
            let before = buf.clone();
            match decode_response(&mut buf, l) {
                Ok(None) => {
                    assert_eq!(buf, before, "Ok(None) consumed bytes");
                    break;
                }
                Ok(Some(r)) => {
                    let frame = &before[..before.len() - buf.len()];
                    check_frame(&r, frame, l);
                    out.push(Ok(r));
                }
                Err(e) => {
                    // The connection is closed: nothing after this is read.
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

/// A reply consumed exactly its line, and its data block if it has one: the line's length
/// token, the data, `\r\n`.
fn check_frame(r: &Response, frame: &[u8], l: &Limits) {
    let nl = memchr::memchr(b'\n', frame).expect("a reply without its line");
    assert!(nl <= l.max_line + 1, "a reply line over the limit");
    let data = match r {
        Response::Value(v) => Some(&v.data),
        Response::Meta(m) if m.code == MetaCode::Va => {
            Some(m.value.as_ref().expect("a VA reply without its value"))
        }
        Response::Meta(m) => {
            assert!(m.value.is_none(), "{r:?}");
            None
        }
        _ => None,
    };
    match data {
        None => assert_eq!(frame.len(), nl + 1, "{r:?} from {frame:?}"),
        Some(d) => {
            assert!(d.len() <= l.max_item_size);
            assert_eq!(frame.len(), nl + 1 + d.len() + 2, "{r:?} from {frame:?}");
            assert_eq!(&frame[nl + 1..nl + 1 + d.len()], &d[..]);
            assert_eq!(&frame[frame.len() - 2..], b"\r\n");
        }
    }
}

fn binary_all(pieces: &[&[u8]], max_body: usize) -> Vec<Result<BinaryResponse, ResponseError>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in pieces {
        buf.extend_from_slice(p);
        loop {
            let before = buf.clone();
            match decode_binary_response(&mut buf, max_body) {
                Ok(None) => {
                    assert_eq!(buf, before, "Ok(None) consumed bytes");
                    break;
                }
                Ok(Some(r)) => {
                    let frame = &before[..before.len() - buf.len()];
                    assert_eq!(frame.len(), HEADER_LEN + r.header.body_len as usize);
                    assert!(r.header.body_len as usize <= max_body);
                    // Binary replies are passed on as they came.
                    let mut enc = BytesMut::new();
                    r.encode(&mut enc);
                    assert_eq!(&enc[..], frame);
                    out.push(Ok(r));
                }
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let l = limits(sel);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();

    let ascii = ascii_all(&[input], &l);
    assert_eq!(ascii_all(&bytes, &l), ascii, "byte by byte");
    let relaxed = Limits {
        max_line: usize::MAX / 4,
        ..l.clone()
    };
    let mut stats = Vec::new();
    for r in ascii.iter().filter_map(|r| r.as_ref().ok()) {
        let mut enc = BytesMut::new();
        r.encode(&mut enc);
        let again = ascii_all(&[&enc], &relaxed);
        assert_eq!(again, [Ok(r.clone())], "{r:?} encodes as {enc:?}");
        if let Response::Stat { name, value } = r {
            stats.push((name.clone(), value.clone()));
        }
    }
    let half = stats.len() / 2;
    let merged = merge_stats(&[
        stats[..half].to_vec(),
        stats[half..].to_vec(),
        stats.clone(),
    ]);
    assert!(merged.len() <= stats.len());

    let max_body = if sel & 2 == 0 { 1 << 20 } else { 40 };
    let binary = binary_all(&[input], max_body);
    assert_eq!(binary_all(&bytes, max_body), binary, "byte by byte");
    let key = Bytes::from_static(b"k");
    for r in binary.iter().filter_map(|r| r.as_ref().ok()) {
        for kind in [
            a2b::Kind::Store(StoreKind::Set),
            a2b::Kind::Store(StoreKind::Cas(1)),
            a2b::Kind::Arith,
            a2b::Kind::Delete,
            a2b::Kind::Touch,
        ] {
            let mut out = BytesMut::new();
            a2b::reply(kind, r).encode(&mut out);
        }
        let mut out = BytesMut::new();
        Response::Value(a2b::value(r, &key, true)).encode(&mut out);
    }
});
