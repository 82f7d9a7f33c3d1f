//! Checks the decoder against a real memcached 1.6.18: for every case, the bytes our codec
//! would answer (error replies, plus a small model of the server's replies to the valid
//! requests in the case) must equal what memcached answers, byte for byte, and the
//! connection must survive or close the same way.

mod support;

use bytes::{BufMut, Bytes, BytesMut};
use shoal_memcache::ascii::AsciiRequest;
use shoal_memcache::binary::{self, BinaryRequest, BinaryResponse, Header, Opcode, Status};
use shoal_memcache::meta::MetaKind;
use shoal_memcache::{Action, Decoder, Request};
use support::{Memcached, exchange};

/// One case: what is sent, split into reads.
struct Case {
    name: &'static str,
    chunks: Vec<Vec<u8>>,
}

fn case(name: &'static str, bytes: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        chunks: vec![bytes.into()],
    }
}

fn split(name: &'static str, chunks: &[&[u8]]) -> Case {
    Case {
        name,
        chunks: chunks.iter().map(|c| c.to_vec()).collect(),
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn rep(b: &[u8], n: usize) -> Vec<u8> {
    b.repeat(n)
}

/// What memcached answers to the valid requests our cases use (keys never stored are
/// misses). Panics on a request the model does not know, so a case cannot pass by accident.
fn model(r: &Request, version: &[u8]) -> (Vec<u8>, bool) {
    let text = |t: &[u8], noreply: bool| if noreply { vec![] } else { t.to_vec() };
    match r {
        Request::Ascii(a) => match a {
            AsciiRequest::Get(_) => (b"END\r\n".to_vec(), false),
            AsciiRequest::Store(s) => {
                use shoal_memcache::ascii::StoreKind::*;
                let t: &[u8] = match s.kind {
                    Set | Add => b"STORED\r\n",
                    Replace | Append | Prepend => b"NOT_STORED\r\n",
                    Cas(_) => b"NOT_FOUND\r\n",
                };
                (text(t, s.noreply), false)
            }
            AsciiRequest::Arith(x) => (text(b"NOT_FOUND\r\n", x.noreply), false),
            AsciiRequest::Delete(d) => (text(b"NOT_FOUND\r\n", d.noreply), false),
            AsciiRequest::Touch(t) => (text(b"NOT_FOUND\r\n", t.noreply), false),
            AsciiRequest::FlushAll(f) => (text(b"OK\r\n", f.noreply), false),
            AsciiRequest::Verbosity(v) => (text(b"OK\r\n", v.noreply), false),
            AsciiRequest::Version => (cat(&[b"VERSION ", version, b"\r\n"]), false),
            AsciiRequest::Quit => (vec![], true),
            AsciiRequest::Stats(_) => panic!("model: stats replies vary"),
        },
        Request::Meta(m) => match m.kind {
            MetaKind::Noop => (b"MN\r\n".to_vec(), false),
            MetaKind::Get | MetaKind::Debug => (text(b"EN\r\n", m.is_quiet()), false),
            MetaKind::Set => (text(b"HD\r\n", m.is_quiet()), false),
            MetaKind::Delete | MetaKind::Arithmetic => (b"NF\r\n".to_vec(), false),
        },
        Request::Binary(b) => {
            let h = &b.header;
            let ok = |value: &[u8]| {
                let mut out = BytesMut::new();
                let v = Bytes::copy_from_slice(value);
                BinaryResponse::new(
                    h.opcode,
                    Status::NO_ERROR,
                    h.opaque,
                    Bytes::new(),
                    Bytes::new(),
                    v,
                )
                .encode(&mut out);
                out.to_vec()
            };
            match b.opcode() {
                Some(Opcode::Noop) | Some(Opcode::Flush) => (ok(b""), false),
                Some(Opcode::Version) => (ok(version), false),
                Some(Opcode::Quit) => (ok(b""), true),
                Some(Opcode::QuitQ) => (vec![], true),
                Some(op) if op.is_quiet() => (vec![], false),
                Some(Opcode::Get | Opcode::Touch | Opcode::Delete) => (
                    binary::error_reply(h, Status::KEY_NOT_FOUND).to_vec(),
                    false,
                ),
                // What the proxy answers to frames memcached does not serve.
                None
                | Some(
                    Opcode::Verbosity | Opcode::SaslListMechs | Opcode::SaslAuth | Opcode::SaslStep,
                ) => (
                    binary::error_reply(h, Status::UNKNOWN_COMMAND).to_vec(),
                    false,
                ),
                Some(op) => panic!("model: no reply known for {op:?}"),
            }
        }
    }
}

/// What our codec says memcached answers: (bytes, connection closed).
fn ours(chunks: &[Vec<u8>], version: &[u8]) -> (Vec<u8>, bool) {
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match d.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(r)) => {
                    let (reply, close) = model(&r, version);
                    out.extend_from_slice(&reply);
                    if close {
                        return (out, true);
                    }
                }
                Err(e) => {
                    out.extend_from_slice(e.reply());
                    if e.action() == Action::Close {
                        return (out, true);
                    }
                }
            }
        }
    }
    (out, false)
}

fn bin(op: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let mut r = BinaryRequest::new(
        op,
        Bytes::copy_from_slice(extras),
        Bytes::copy_from_slice(key),
        Bytes::copy_from_slice(value),
    );
    r.header.opaque = opaque;
    let mut b = BytesMut::new();
    r.encode(&mut b);
    b.to_vec()
}

/// A binary header with lengths that need not fit the body that follows.
fn raw_header(
    magic: u8,
    op: u8,
    key_len: u16,
    extras_len: u8,
    body_len: u32,
    opaque: u32,
) -> Vec<u8> {
    let mut b = BytesMut::new();
    Header {
        magic,
        opcode: op,
        key_len,
        extras_len,
        body_len,
        opaque,
        ..Header::default()
    }
    .encode(&mut b);
    b.to_vec()
}

fn ascii_cases() -> Vec<Case> {
    let k250 = rep(b"k", 250);
    let k251 = rep(b"k", 251);
    let big = rep(b"x", 2_000_000);
    let many_keys: Vec<u8> = (0..30)
        .flat_map(|i| format!(" miss{i}").into_bytes())
        .collect();
    vec![
        case("empty line", b"\r\n".to_vec()),
        case("bare newline", b"\n".to_vec()),
        case("one-letter command", b"a\r\n".to_vec()),
        case("unknown command", b"bogus 1 2\r\n".to_vec()),
        case("spaces only", b"   \r\n".to_vec()),
        case("uppercase GET", b"GET miss\r\n".to_vec()),
        case("get without key", b"get\r\n".to_vec()),
        case("get with only spaces", b"get  \r\n".to_vec()),
        case("gets without key", b"gets\r\n".to_vec()),
        case("get two misses", b"get miss1  miss2 \r\n".to_vec()),
        case("leading space", b" get miss\r\n".to_vec()),
        case("get with tab", b"get\tmiss\r\n".to_vec()),
        case("get key of 250", cat(&[b"get ", &k250, b"\r\n"])),
        case("get key of 251", cat(&[b"get ", &k251, b"\r\n"])),
        case("get second key 251", cat(&[b"get miss ", &k251, b"\r\n"])),
        case(
            "get 31st key 251",
            cat(&[b"get", &many_keys, b" ", &k251, b"\r\n"]),
        ),
        case("get 30 keys", cat(&[b"get", &many_keys, b"\r\n"])),
        case("get nul ends line", b"get miss\x00 b c\r\n".to_vec()),
        case("get cr cr lf", b"get miss\r\r\n".to_vec()),
        case("gat without keys", b"gat 10\r\n".to_vec()),
        case("gat without exptime", b"gat\r\n".to_vec()),
        case("gat bad exptime", b"gat x miss\r\n".to_vec()),
        case("gats bad exptime", b"gats x miss\r\n".to_vec()),
        case(
            "gat exptime overflow",
            b"gat 99999999999999999999 miss\r\n".to_vec(),
        ),
        case("gats ok", b"gats 10 miss1 miss2\r\n".to_vec()),
        case("set too few tokens", b"set k 0 0\r\n".to_vec()),
        case(
            "set too many tokens",
            b"set k 0 0 1 noreply extra\r\n".to_vec(),
        ),
        case("set ok", b"set s1 0 0 1\r\nx\r\n".to_vec()),
        case("set noreply", b"set s2 0 0 1 noreply\r\nx\r\n".to_vec()),
        case(
            "set NOREPLY is not noreply",
            b"set s3 0 0 1 NOREPLY\r\nx\r\n".to_vec(),
        ),
        case("set empty value", b"set s4 0 0 0\r\n\r\n".to_vec()),
        case("set bad data chunk", b"set s5 0 0 1\r\nxyz\r\n".to_vec()),
        case(
            "set bad data chunk longer",
            b"set s5 0 0 1\r\nxyzabc\r\n".to_vec(),
        ),
        case(
            "set bad data chunk noreply",
            b"set s5 0 0 1 noreply\r\nxyz\r\n".to_vec(),
        ),
        case("set negative length", b"set k 0 0 -1\r\n".to_vec()),
        case(
            "set negative length noreply",
            b"set k 0 0 -1 noreply\r\n".to_vec(),
        ),
        case("set non-numeric length", b"set k 0 0 abc\r\n".to_vec()),
        case("set bad flags", b"set k x 0 1\r\nx\r\n".to_vec()),
        case("set negative flags", b"set k -1 0 1\r\nx\r\n".to_vec()),
        case("set bad exptime", b"set k 0 x 1\r\nx\r\n".to_vec()),
        case(
            "set bad flags noreply",
            b"set k x 0 1 noreply\r\nx\r\n".to_vec(),
        ),
        case(
            "set flags wrap to 32 bits",
            b"set s6 4294967296 0 1\r\nx\r\n".to_vec(),
        ),
        case(
            "set length wraps to 32 bits",
            b"set s7 0 0 4294967297\r\nx\r\n".to_vec(),
        ),
        case("set length 2^31", b"set k 0 0 2147483648\r\n".to_vec()),
        case(
            "set length overflow",
            b"set k 0 0 99999999999999999999\r\nx\r\n".to_vec(),
        ),
        case(
            "set exptime overflow",
            b"set k 0 -99999999999999999999 1\r\nx\r\n".to_vec(),
        ),
        case("set length with plus", b"set s8 0 0 +1\r\nx\r\n".to_vec()),
        case("set length after tab", b"set s9 0 0 \t1\r\nx\r\n".to_vec()),
        case(
            "set length before tab",
            b"set s10 0 0 1\t\r\nx\r\n".to_vec(),
        ),
        case("set length with junk", b"set k 0 0 1x\r\nx\r\n".to_vec()),
        case(
            "set nul ends line",
            b"set s11 0 0 1\x00junk\r\nx\r\n".to_vec(),
        ),
        case("set key of 251", cat(&[b"set ", &k251, b" 0 0 1\r\nx\r\n"])),
        case(
            "set key of 251 noreply",
            cat(&[b"set ", &k251, b" 0 0 1 noreply\r\nx\r\n"]),
        ),
        case(
            "set too large",
            cat(&[b"set s12 0 0 2000000\r\n", &big, b"\r\n"]),
        ),
        case(
            "set too large noreply",
            cat(&[b"set s12 0 0 2000000 noreply\r\n", &big, b"\r\n"]),
        ),
        case(
            "set too large bad trailer",
            cat(&[b"set s12 0 0 2000000\r\n", &big, b"ab"]),
        ),
        case("add ok", b"add a1 0 0 2\r\nxy\r\n".to_vec()),
        case("replace missing", b"replace miss 0 0 1\r\nx\r\n".to_vec()),
        case("append missing", b"append miss 0 0 1\r\nx\r\n".to_vec()),
        case(
            "prepend missing noreply",
            b"prepend miss 0 0 1 noreply\r\nx\r\n".to_vec(),
        ),
        case("add junk 6th token", b"add a2 0 0 1 junk\r\nx\r\n".to_vec()),
        case("cas too few tokens", b"cas k 0 0 1\r\nx\r\n".to_vec()),
        case("cas bad unique", b"cas k 0 0 1 x\r\nx\r\n".to_vec()),
        case("cas negative unique", b"cas k 0 0 1 -1\r\nx\r\n".to_vec()),
        case(
            "cas bad unique noreply",
            b"cas k 0 0 1 x noreply\r\nx\r\n".to_vec(),
        ),
        case("cas missing", b"cas miss 0 0 1 5\r\nx\r\n".to_vec()),
        case(
            "cas missing noreply",
            b"cas miss 0 0 1 5 noreply\r\nx\r\n".to_vec(),
        ),
        case("incr without delta", b"incr miss\r\n".to_vec()),
        case("incr missing", b"incr miss 1\r\n".to_vec()),
        case("incr junk 4th token", b"incr miss 1 2\r\n".to_vec()),
        case("incr too many tokens", b"incr miss 1 2 3\r\n".to_vec()),
        case("incr bad delta", b"incr miss x\r\n".to_vec()),
        case("incr negative delta", b"incr miss -1\r\n".to_vec()),
        case(
            "incr delta overflow",
            b"incr miss 18446744073709551616\r\n".to_vec(),
        ),
        case(
            "incr bad delta noreply",
            b"incr miss x noreply\r\n".to_vec(),
        ),
        case("incr key of 251", cat(&[b"incr ", &k251, b" 1\r\n"])),
        case("decr bad delta", b"decr miss x\r\n".to_vec()),
        case("decr noreply", b"decr miss 1 noreply\r\n".to_vec()),
        case("delete without key", b"delete\r\n".to_vec()),
        case("delete missing", b"delete miss\r\n".to_vec()),
        case("delete legacy 0", b"delete miss 0\r\n".to_vec()),
        case("delete hold time", b"delete miss 1\r\n".to_vec()),
        case("delete noreply", b"delete miss noreply\r\n".to_vec()),
        case("delete 0 noreply", b"delete miss 0 noreply\r\n".to_vec()),
        case(
            "delete hold time noreply",
            b"delete miss 1 noreply\r\n".to_vec(),
        ),
        case("delete 0 0", b"delete miss 0 0\r\n".to_vec()),
        case(
            "delete too many tokens",
            b"delete miss 0 noreply x\r\n".to_vec(),
        ),
        case("delete key of 251", cat(&[b"delete ", &k251, b"\r\n"])),
        case("touch without exptime", b"touch miss\r\n".to_vec()),
        case("touch bad exptime", b"touch miss x\r\n".to_vec()),
        case(
            "touch bad exptime noreply",
            b"touch miss x noreply\r\n".to_vec(),
        ),
        case("touch missing", b"touch miss 10\r\n".to_vec()),
        case("touch junk 4th token", b"touch miss 10 x\r\n".to_vec()),
        case(
            "touch too many tokens",
            b"touch miss 10 noreply x\r\n".to_vec(),
        ),
        case("touch key of 251", cat(&[b"touch ", &k251, b" 10\r\n"])),
        case("flush_all bad delay", b"flush_all x\r\n".to_vec()),
        case(
            "flush_all bad delay noreply",
            b"flush_all x noreply\r\n".to_vec(),
        ),
        case(
            "flush_all noreply then junk",
            b"flush_all noreply x\r\n".to_vec(),
        ),
        case("flush_all junk 3rd token", b"flush_all 0 foo\r\n".to_vec()),
        case("flush_all too many tokens", b"flush_all 1 2 3\r\n".to_vec()),
        case("flush_all noreply", b"flush_all noreply\r\n".to_vec()),
        case("flush_all negative", b"flush_all -1\r\n".to_vec()),
        case(
            "flush_all delay overflow",
            b"flush_all 99999999999\r\n".to_vec(),
        ),
        case("version", b"version\r\n".to_vec()),
        case("version with junk", b"version x y\r\n".to_vec()),
        case("verbosity without level", b"verbosity\r\n".to_vec()),
        case("verbosity bad level", b"verbosity x\r\n".to_vec()),
        case(
            "verbosity bad level noreply",
            b"verbosity x noreply\r\n".to_vec(),
        ),
        case("verbosity 0", b"verbosity 0\r\n".to_vec()),
        case("verbosity junk 3rd token", b"verbosity 0 x\r\n".to_vec()),
        case(
            "verbosity too many tokens",
            b"verbosity 0 noreply x\r\n".to_vec(),
        ),
        case("quit", b"quit\r\n".to_vec()),
        case("quit with junk", b"quit now\r\n".to_vec()),
        case("mn", b"mn\r\n".to_vec()),
        case("mn with junk", b"mn a b c\r\n".to_vec()),
        case("m alone", b"m\r\n".to_vec()),
        case("unknown meta", b"mx miss\r\n".to_vec()),
        case("three-letter m command", b"mgg miss\r\n".to_vec()),
        case("mg without key", b"mg\r\n".to_vec()),
        case("mg miss", b"mg miss v\r\n".to_vec()),
        case("mg miss quiet", b"mg miss v q\r\n".to_vec()),
        case("mg key of 251", cat(&[b"mg ", &k251, b" v\r\n"])),
        case("mg 18 flags", cat(&[b"mg miss", &rep(b" z", 18), b"\r\n"])),
        case(
            "mg key of 251 and 18 flags",
            cat(&[b"mg ", &k251, &rep(b" z", 18), b"\r\n"]),
        ),
        case("mg nul after command", b"mg\x00 miss\r\n".to_vec()),
        case("md without key", b"md\r\n".to_vec()),
        case("md miss", b"md miss\r\n".to_vec()),
        case("md key of 251", cat(&[b"md ", &k251, b"\r\n"])),
        case("md 18 flags", cat(&[b"md miss", &rep(b" z", 18), b"\r\n"])),
        case("ma without key", b"ma\r\n".to_vec()),
        case("ma miss", b"ma miss\r\n".to_vec()),
        case("ma 18 flags", cat(&[b"ma miss", &rep(b" z", 18), b"\r\n"])),
        case("me without key", b"me\r\n".to_vec()),
        case("me key of 251", cat(&[b"me ", &k251, b"\r\n"])),
        case(
            "me miss with junk",
            cat(&[b"me miss", &rep(b" z", 30), b"\r\n"]),
        ),
        case("ms without key", b"ms\r\n".to_vec()),
        case("ms without length", b"ms m1\r\n".to_vec()),
        case("ms ok", b"ms m1 1\r\nx\r\n".to_vec()),
        case("ms ok with flags", b"ms m2 2 T0 F5\r\nxy\r\n".to_vec()),
        case("ms quiet", b"ms m3 1 q\r\nx\r\n".to_vec()),
        case("ms bad length", b"ms m4 x\r\nx\r\n".to_vec()),
        case("ms negative length", b"ms m4 -1\r\nx\r\n".to_vec()),
        case("ms length 2^31", b"ms m4 2147483648\r\nx\r\n".to_vec()),
        case(
            "ms length wraps to 32 bits",
            b"ms m5 4294967297\r\nx\r\n".to_vec(),
        ),
        case("ms tab is not a separator", b"ms m6\t1\r\nx\r\n".to_vec()),
        case("ms bad data chunk", b"ms m7 1\r\nxyz\r\n".to_vec()),
        case("ms bad data chunk quiet", b"ms m7 1 q\r\nxyz\r\n".to_vec()),
        case("ms key of 251", cat(&[b"ms ", &k251, b" 1\r\nx\r\n"])),
        case(
            "ms 17 flags",
            cat(&[b"ms m8 1", &rep(b" z", 17), b"\r\nx\r\n"]),
        ),
        case("ms too large", cat(&[b"ms m9 2000000\r\n", &big, b"\r\n"])),
        case(
            "ms too large quiet",
            cat(&[b"ms m9 2000000 q\r\n", &big, b"\r\n"]),
        ),
        split("line of 2048 then newline", &[&rep(b"x", 2048), b"\r\n"]),
        split(
            "line of 2048 and cr then lf",
            &[&cat(&[&rep(b"x", 2048), b"\r"]), b"\n"],
        ),
        split("line of 2049 without newline", &[&rep(b"x", 2049), b"\r\n"]),
        split("line of 3000 without newline", &[&rep(b"x", 3000)]),
        split(
            "long set line",
            &[&cat(&[b"set k 0 0 1", &rep(b" ", 3000)]), b"\r\nx\r\n"],
        ),
        split(
            "long get line",
            &[&cat(&[b"get", &rep(b" miss", 1000)]), b"\r\n"],
        ),
        split(
            "long gets line",
            &[&cat(&[b"gets", &rep(b" miss", 1000)]), b"\r\n"],
        ),
        split(
            "long gat line",
            &[&cat(&[b"gat 0", &rep(b" miss", 1000)]), b"\r\n"],
        ),
        split(
            "long get line after 100 spaces",
            &[
                &cat(&[&rep(b" ", 100), b"get", &rep(b" miss", 1000)]),
                b"\r\n",
            ],
        ),
        split(
            "long get line after 101 spaces",
            &[
                &cat(&[&rep(b" ", 101), b"get", &rep(b" miss", 1000)]),
                b"\r\n",
            ],
        ),
        split(
            "value split across reads",
            &[b"set s13 0 0 5\r\nhe", b"llo", b"\r", b"\n"],
        ),
    ]
}

fn binary_cases() -> Vec<Case> {
    let noop = |opaque| bin(0x0a, b"", b"", b"", opaque);
    let big = rep(b"x", 2_000_000);
    let k251 = rep(b"k", 251);
    vec![
        case("noop", noop(1)),
        case("version", bin(0x0b, b"", b"", b"", 2)),
        case("version with key", bin(0x0b, b"", b"x", b"", 0)),
        case(
            "noop with key length past body",
            raw_header(0x80, 0x0a, 1, 0, 0, 0),
        ),
        case("get miss", bin(0x00, b"", b"miss", b"", 0xdead_beef)),
        case("getq miss", bin(0x09, b"", b"miss", b"", 3)),
        case("get without key", bin(0x00, b"", b"", b"", 0)),
        case("get with extras", bin(0x00, &[0; 4], b"k", b"", 0)),
        case("getq with extras", bin(0x09, &[0; 4], b"k", b"", 6)),
        case("get key of 251", bin(0x00, b"", &k251, b"", 0)),
        case(
            "get key length past body",
            cat(&[&raw_header(0x80, 0x00, 5, 0, 3, 0), b"kkk"]),
        ),
        case("setq ok", bin(0x11, &[0; 8], b"b1", b"hello", 4)),
        case("set with 4 extras", bin(0x01, &[0; 4], b"k", b"hello", 0)),
        case("set too large", bin(0x01, &[0; 8], b"b2", &big, 7)),
        case("setq too large", bin(0x11, &[0; 8], b"b2", &big, 5)),
        case("append too large", bin(0x0e, b"", b"b2", &big, 4)),
        case(
            "set with a body past 2^31",
            cat(&[&raw_header(0x80, 0x01, 1, 8, 0xffff_fff0, 0), &[0; 8], b"k"]),
        ),
        case("append with extras", bin(0x0e, &[0; 8], b"k", b"zz", 0)),
        case("incr with 8 extras", bin(0x05, &[0; 8], b"n", b"", 0)),
        case("touch without extras", bin(0x1c, b"", b"k", b"", 0)),
        case("touch miss", bin(0x1c, &[0, 0, 0, 1], b"miss", b"", 8)),
        case("delete miss", bin(0x04, b"", b"miss", b"", 9)),
        case("flush", bin(0x08, b"", b"", b"", 10)),
        case("flushq with delay", bin(0x18, &[0; 4], b"", b"", 11)),
        case("flush with 2 extras", bin(0x08, &[0; 2], b"", b"", 0)),
        case("quitq with key", bin(0x17, b"", b"q", b"", 0)),
        case("noop with body", bin(0x0a, b"", b"", b"x", 0)),
        case("unknown opcode", bin(0x50, b"", b"", b"hello", 9)),
        case("unknown opcode, no body", bin(0x50, b"", b"", b"", 9)),
        case(
            "unknown opcode, key of 300",
            bin(0x50, b"", &rep(b"k", 300), b"x", 9),
        ),
        case(
            "unknown opcode, key length past body",
            cat(&[&raw_header(0x80, 0x50, 5, 0, 3, 9), b"kkk"]),
        ),
        case("sasl list mechs", bin(0x20, b"", b"", b"", 13)),
        case("sasl auth", bin(0x21, b"", b"PLAIN", b"\0a\0b", 14)),
        case("sasl step", bin(0x22, b"", b"PLAIN", b"\0a\0b", 15)),
        case("sasl list mechs with key", bin(0x20, b"", b"x", b"", 0)),
        case(
            "touch with a body that runs into the next request",
            cat(&[
                &raw_header(0x80, 0x1c, 4, 4, 8 + 24, 16),
                &[0, 0, 0, 1],
                b"miss",
                &bin(0x0b, b"", b"", b"", 17),
            ]),
        ),
        case(
            "sasl auth body swallowed whole",
            bin(0x21, b"", b"PLAIN", &bin(0x0b, b"", b"", b"", 18), 19),
        ),
        case(
            "bad magic after noop",
            cat(&[&noop(1), &raw_header(0x00, 0x0a, 0, 0, 0, 0)]),
        ),
        case(
            "response magic after noop",
            cat(&[&noop(1), &raw_header(0x81, 0x0a, 0, 0, 0, 0)]),
        ),
        case("quit", bin(0x07, b"", b"", b"", 20)),
        case("quitq", bin(0x17, b"", b"", b"", 21)),
        split(
            "header split across reads",
            &[&noop(22)[..10], &noop(22)[10..]],
        ),
    ]
}

fn run(mc: &Memcached, cases: Vec<Case>, sentinel: &[u8], sentinel_reply: &[u8], version: &[u8]) {
    let mut failures = Vec::new();
    for mut c in cases {
        c.chunks.push(sentinel.to_vec());
        let (want, want_close) = ours(&c.chunks, version);
        let mut s = mc.connect();
        let heard = exchange(&mut s, &c.chunks, |b| {
            !want_close && b.len() >= want.len() && b.ends_with(sentinel_reply)
        });
        if heard.bytes != want || heard.closed != want_close {
            failures.push(format!(
                "{}:\n  memcached: {:?} (closed: {})\n  ours:      {:?} (closed: {})",
                c.name,
                Bytes::from(heard.bytes),
                heard.closed,
                Bytes::from(want),
                want_close
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn server_version(mc: &Memcached) -> Vec<u8> {
    let mut s = mc.connect();
    let heard = exchange(&mut s, &[b"version\r\n".to_vec()], |b| b.ends_with(b"\r\n"));
    let line = heard
        .bytes
        .strip_prefix(b"VERSION ")
        .unwrap_or_else(|| panic!("no VERSION reply: {heard:?}"));
    line.strip_suffix(b"\r\n").expect("line end").to_vec()
}

#[test]
fn ascii_errors_match_memcached() {
    let Some(mc) = Memcached::start() else { return };
    let version = server_version(&mc);
    run(&mc, ascii_cases(), b"mn\r\n", b"MN\r\n", &version);
}

#[test]
fn binary_errors_match_memcached() {
    let Some(mc) = Memcached::start() else { return };
    let version = server_version(&mc);
    let noop = bin(0x0a, b"", b"", b"", 0x5e47);
    let mut reply = BytesMut::new();
    reply.put_slice(&[0x81, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    reply.put_u32(0x5e47);
    reply.put_u64(0);
    run(&mc, binary_cases(), &noop, &reply, &version);
}

/// A known difference, kept on purpose: for an opcode it does not serve, memcached 1.6.18
/// answers UNKNOWN_COMMAND and then skips `body_len + key_len + extras_len` bytes, i.e. the
/// key and extras twice, which puts the client's stream out of step. We skip exactly the
/// frame. This test pins memcached's behaviour so that we notice if it changes.
#[test]
fn memcached_skips_key_and_extras_twice_for_unknown_binary_opcodes() {
    let Some(mc) = Memcached::start() else { return };
    let unknown = bin(0x50, b"ee", b"kkk", b"vvvvv", 9);
    let verbosity = bin(0x1b, &[0, 0, 0, 1], b"", b"", 12);
    let noop = bin(0x0a, b"", b"", b"", 1);
    for (frame, overskip) in [(unknown, 5), (verbosity, 4)] {
        let header = Header::parse(&frame).expect("header");
        let unknown_reply = binary::error_reply(&header, Status::UNKNOWN_COMMAND).to_vec();
        let mut noop_reply = BytesMut::new();
        BinaryResponse::new(
            0x0a,
            Status::NO_ERROR,
            1,
            Bytes::new(),
            Bytes::new(),
            Bytes::new(),
        )
        .encode(&mut noop_reply);
        let sent = cat(&[&frame, &rep(b"y", overskip), &noop]);
        let mut s = mc.connect();
        let heard = exchange(&mut s, std::slice::from_ref(&sent), |b| {
            b.ends_with(&noop_reply)
        });
        assert_eq!(heard.bytes, cat(&[&unknown_reply, &noop_reply]));
        // We answer the frame the same way, then read the filler as the next header.
        let (ours, closed) = ours(&[sent], b"");
        assert_eq!(ours, unknown_reply);
        assert!(closed);
    }
}
