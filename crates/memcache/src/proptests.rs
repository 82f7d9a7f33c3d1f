//! Property tests: encode then decode gives the request back, splitting the input at any
//! points changes nothing, and garbage never panics nor loops.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::ascii::{
    Arith, ArithKind, AsciiRequest, Delete, FlushAll, Get, Response, Stats, Store, StoreKind,
    Touch, Value, Verbosity, decode_response,
};
use crate::binary::{BinaryRequest, decode_binary_response};
use crate::meta::{MetaKind, MetaRequest};
use crate::{Decoder, Limits, ProtocolError, Request};

fn token(max: usize) -> impl Strategy<Value = Bytes> {
    vec(0x21u8..0x7f, 1..=max).prop_map(Bytes::from)
}

/// A key: printable, no spaces; never the word `noreply` (which would be read as the flag).
fn key() -> impl Strategy<Value = Bytes> {
    prop_oneof![token(12), token(250)].prop_filter("noreply", |k| &k[..] != b"noreply")
}

fn value() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..200).prop_map(Bytes::from)
}

fn store_kind() -> impl Strategy<Value = StoreKind> {
    prop_oneof![
        Just(StoreKind::Set),
        Just(StoreKind::Add),
        Just(StoreKind::Replace),
        Just(StoreKind::Append),
        Just(StoreKind::Prepend),
        any::<u64>().prop_map(StoreKind::Cas),
    ]
}

fn ascii_request() -> impl Strategy<Value = Request> {
    let get = (any::<bool>(), any::<Option<i32>>(), vec(key(), 1..8))
        .prop_map(|(cas, touch, keys)| AsciiRequest::Get(Get { cas, touch, keys }));
    let store = (
        store_kind(),
        key(),
        any::<u32>(),
        any::<i32>(),
        value(),
        any::<bool>(),
    )
        .prop_map(|(kind, key, flags, exptime, value, noreply)| {
            AsciiRequest::Store(Store {
                kind,
                key,
                flags,
                exptime,
                value,
                noreply,
            })
        });
    let arith =
        (any::<bool>(), key(), any::<u64>(), any::<bool>()).prop_map(|(i, key, delta, noreply)| {
            let kind = if i { ArithKind::Incr } else { ArithKind::Decr };
            AsciiRequest::Arith(Arith {
                kind,
                key,
                delta,
                noreply,
            })
        });
    let delete = (key(), any::<bool>())
        .prop_map(|(key, noreply)| AsciiRequest::Delete(Delete { key, noreply }));
    let touch = (key(), any::<i32>(), any::<bool>()).prop_map(|(key, exptime, noreply)| {
        AsciiRequest::Touch(Touch {
            key,
            exptime,
            noreply,
        })
    });
    let flush = (any::<Option<i32>>(), any::<bool>())
        .prop_map(|(delay, noreply)| AsciiRequest::FlushAll(FlushAll { delay, noreply }));
    let stats = vec(token(10), 0..5).prop_map(|args| AsciiRequest::Stats(Stats { args }));
    let verbosity = (any::<u32>(), any::<bool>())
        .prop_map(|(level, noreply)| AsciiRequest::Verbosity(Verbosity { level, noreply }));
    prop_oneof![
        get,
        store,
        arith,
        delete,
        touch,
        flush,
        stats,
        verbosity,
        Just(AsciiRequest::Version),
        Just(AsciiRequest::Quit),
    ]
    .prop_map(Request::Ascii)
}

fn meta_request() -> impl Strategy<Value = Request> {
    let kind = prop_oneof![
        Just(MetaKind::Get),
        Just(MetaKind::Set),
        Just(MetaKind::Delete),
        Just(MetaKind::Arithmetic),
        Just(MetaKind::Noop),
        Just(MetaKind::Debug),
    ];
    let flag = (
        prop::char::range('A', 'z').prop_filter("letter", char::is_ascii_alphabetic),
        vec(0x21u8..0x7f, 0..8),
    )
        .prop_map(|(c, rest)| {
            let mut f = vec![c as u8];
            f.extend(rest);
            Bytes::from(f)
        });
    (kind, key(), vec(flag, 0..=16), value()).prop_map(|(kind, key, flags, value)| {
        let (key, flags) = match kind {
            MetaKind::Noop => (Bytes::new(), Vec::new()),
            MetaKind::Debug => (key, Vec::new()),
            _ => (key, flags),
        };
        let value = (kind == MetaKind::Set).then_some(value);
        Request::Meta(MetaRequest {
            kind,
            key,
            flags,
            value,
        })
    })
}

fn binary_request() -> impl Strategy<Value = Request> {
    let parts = (
        any::<u8>(),
        key(),
        value(),
        any::<[u8; 20]>(),
        any::<(u32, u64, u16, bool)>(),
    );
    parts.prop_map(
        |(op, key, value, ext, (opaque, cas, vbucket, flush_delay))| {
            let e = |n: usize| Bytes::copy_from_slice(&ext[..n]);
            let none = Bytes::new();
            let (extras, key, value) = match op % 0x30 {
                0x00 | 0x09 | 0x0c | 0x0d | 0x04 | 0x14 => (none.clone(), key, none),
                0x01..=0x03 | 0x11..=0x13 => (e(8), key, value),
                0x0e | 0x0f | 0x19 | 0x1a => (none, key, value),
                0x05 | 0x06 | 0x15 | 0x16 => (e(20), key, none),
                0x1c..=0x1e | 0x23 | 0x24 => (e(4), key, none),
                0x07 | 0x0a | 0x0b | 0x17 | 0x20 => (none.clone(), none.clone(), none),
                0x08 | 0x18 => (
                    if flush_delay { e(4) } else { none.clone() },
                    none.clone(),
                    none,
                ),
                0x10 => (none, key.slice(..key.len().min(20)), Bytes::new()),
                0x21 | 0x22 => (none, key, value),
                _ => (e(ext[0] as usize % 21), key, value), // unknown opcodes, verbosity
            };
            let mut r = BinaryRequest::new(
                op % 0x30 + if op >= 0xc0 { 0x40 } else { 0 },
                extras,
                key,
                value,
            );
            r.header.opaque = opaque;
            r.header.cas = cas;
            r.header.vbucket_or_status = vbucket;
            Request::Binary(r)
        },
    )
}

/// Everything `decoder` makes of `chunks`, fed one after the other.
fn decode_all(chunks: &[&[u8]]) -> Vec<Result<Request, ProtocolError>> {
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut steps = 0;
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            steps += 1;
            assert!(steps < 100_000, "decoder does not make progress");
            match d.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(r)) => out.push(Ok(r)),
                Err(e) => {
                    let close = e.is_close();
                    out.push(Err(e));
                    if close {
                        return out;
                    }
                }
            }
        }
    }
    out
}

fn encode_all(reqs: &[Request]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for r in reqs {
        r.encode(&mut b);
    }
    b.to_vec()
}

fn split_at(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        out.push(input[prev..c].to_vec());
        prev = c;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ascii_and_meta_round_trip(reqs in vec(prop_oneof![ascii_request(), meta_request()], 1..6)) {
        let got = decode_all(&[&encode_all(&reqs)]);
        let want: Vec<_> = reqs.into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn binary_round_trip(reqs in vec(binary_request(), 1..6)) {
        let got = decode_all(&[&encode_all(&reqs)]);
        let want: Vec<_> = reqs.into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn splitting_changes_nothing(
        reqs in vec(prop_oneof![ascii_request(), meta_request()], 0..4),
        garbage in vec(vec(any::<u8>(), 0..40), 0..4),
        binary in vec(binary_request(), 0..4),
        use_binary in any::<bool>(),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let mut input = if use_binary { encode_all(&binary) } else { encode_all(&reqs) };
        for g in &garbage {
            let at = g.len() % (input.len() + 1);
            input.splice(at..at, g.iter().copied());
        }
        input.truncate(2000); // longer lines depend on read boundaries, as in memcached
        let whole = decode_all(&[&input]);
        let parts = split_at(&input, &cuts);
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(decode_all(&refs), whole);
    }

    #[test]
    fn garbage_never_panics(input in vec(any::<u8>(), 0..4096), cuts in vec(any::<usize>(), 0..8)) {
        let parts = split_at(&input, &cuts);
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        decode_all(&refs);
        let mut text = input.clone();
        text.retain(|&b| b != 0x80);
        decode_all(&[&text]);
        let mut b = BytesMut::from(&input[..]);
        while let Ok(Some(_)) = decode_response(&mut b, &Limits::default()) {}
        let mut b = BytesMut::from(&input[..]);
        while let Ok(Some(_)) = decode_binary_response(&mut b, 1 << 20) {}
    }

    #[test]
    fn responses_round_trip(
        key in key(),
        data in value(),
        flags in any::<u32>(),
        cas in any::<Option<u64>>(),
        n in any::<u64>(),
    ) {
        let replies = vec![
            Response::Value(Value { key: key.clone(), flags, cas, data }),
            Response::End,
            Response::Number(n),
            Response::Stat { name: key.clone(), value: Bytes::from_static(b"1 2") },
            Response::ServerError(Bytes::from_static(b"out of memory")),
        ];
        let mut b = BytesMut::new();
        for r in &replies {
            r.encode(&mut b);
        }
        let mut got = Vec::new();
        while let Some(r) = decode_response(&mut b, &Limits::default()).unwrap() {
            got.push(r);
        }
        prop_assert_eq!(got, replies);
    }
}
