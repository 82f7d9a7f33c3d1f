//! Random streams of memcached commands (ascii and meta, binary) for differential tests, and
//! the normalisation of what legitimately differs between servers (CAS values, `me` fields,
//! `stats`).

#![allow(dead_code)]

use rand::Rng;
use rand::rngs::StdRng;

/// What differs between servers, made equal: the CAS (fifth token) of `VALUE` lines; the
/// values of an `ME` line (CAS, last access), kept as field names; a `stats` reply (one
/// proxy's merged stats against one server's), kept as `STATS`.
pub fn normalise(reply: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(reply.len());
    let mut rest = reply;
    while !rest.is_empty() {
        let line_end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        if rest.starts_with(b"STAT ") {
            let end = rest
                .windows(5)
                .position(|w| w == b"END\r\n")
                .map_or(rest.len(), |i| i + 5);
            out.extend_from_slice(b"STATS\r\n");
            rest = &rest[end..];
        } else if rest.starts_with(b"ME ") {
            let line = std::str::from_utf8(&rest[..line_end]).unwrap_or("ME ?");
            let mut toks = line.split_ascii_whitespace();
            let (me, key) = (toks.next().unwrap_or(""), toks.next().unwrap_or(""));
            let names: Vec<&str> = toks.map(|t| t.split('=').next().unwrap_or(t)).collect();
            out.extend_from_slice(format!("{me} {key} {}\r\n", names.join(" ")).as_bytes());
            rest = &rest[line_end..];
        } else if rest.starts_with(b"VALUE ") {
            let nl = rest
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or(rest.len() - 1);
            let line = &rest[..nl];
            let toks: Vec<&[u8]> = line.trim_ascii_end().split(|b| *b == b' ').collect();
            let len: usize = std::str::from_utf8(toks[3]).unwrap().parse().unwrap();
            out.extend_from_slice(&toks[..4].join(&b' '));
            if toks.len() == 5 {
                out.extend_from_slice(b" CAS");
            }
            out.extend_from_slice(b"\r\n");
            let end = (nl + 1 + len + 2).min(rest.len());
            out.extend_from_slice(&rest[nl + 1..end]);
            rest = &rest[end..];
        } else {
            let nl = rest
                .iter()
                .position(|b| *b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            out.extend_from_slice(&rest[..nl]);
            rest = &rest[nl..];
        }
    }
    out
}

/// Appends one random command (or a few) to `out`. Without `meta`, no meta commands: their
/// numbers are drawn again.
pub fn random_command(rng: &mut StdRng, out: &mut Vec<u8>, meta: bool) {
    let key = format!("k{}", rng.random_range(0..24));
    let noreply = if rng.random_bool(0.2) { " noreply" } else { "" };
    let value = |rng: &mut StdRng| -> Vec<u8> {
        let len = if rng.random_bool(0.05) {
            rng.random_range(0..100_000)
        } else {
            rng.random_range(0..200)
        };
        (0..len).map(|_| rng.random::<u8>()).collect()
    };
    let mut pick = rng.random_range(0..24);
    while !meta && matches!(pick, 13..=15 | 20..=22) {
        pick = rng.random_range(0..24);
    }
    match pick {
        0..=3 => {
            let cmd = ["set", "add", "replace", "append", "prepend"][rng.random_range(0..5)];
            let v = value(rng);
            let flags: u32 = rng.random_range(0..5);
            out.extend_from_slice(
                format!("{cmd} {key} {flags} 0 {}{noreply}\r\n", v.len()).as_bytes(),
            );
            out.extend_from_slice(&v);
            out.extend_from_slice(b"\r\n");
        }
        4 => {
            let v = value(rng);
            // Never a CAS a server has given out (each server counts from 1): the same
            // EXISTS or NOT_FOUND on one server as on three.
            let cas: u64 = rng.random_range(1 << 40..1 << 41);
            out.extend_from_slice(
                format!("cas {key} 0 0 {} {cas}{noreply}\r\n", v.len()).as_bytes(),
            );
            out.extend_from_slice(&v);
            out.extend_from_slice(b"\r\n");
        }
        5..=8 => {
            let n = rng.random_range(1..8);
            let cmd = ["get", "gets", "gat 100", "gats 0"][rng.random_range(0..4)];
            out.extend_from_slice(cmd.as_bytes());
            for _ in 0..n {
                out.extend_from_slice(format!(" k{}", rng.random_range(0..24)).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        9 => {
            let cmd = ["incr", "decr"][rng.random_range(0..2)];
            let d: u64 = rng.random_range(0..1000);
            out.extend_from_slice(format!("{cmd} {key} {d}{noreply}\r\n").as_bytes());
        }
        10 => out.extend_from_slice(
            format!("set {key} 0 0 2\r\n{}\r\n", rng.random_range(10..99)).as_bytes(),
        ),
        11 => out.extend_from_slice(format!("delete {key}{noreply}\r\n").as_bytes()),
        12 => out.extend_from_slice(
            format!("touch {key} {}{noreply}\r\n", rng.random_range(0..1000)).as_bytes(),
        ),
        13 => out.extend_from_slice(format!("mg {key} v f t k\r\n").as_bytes()),
        14 => {
            let v = value(rng);
            out.extend_from_slice(format!("ms {key} {} T0 F3\r\n", v.len()).as_bytes());
            out.extend_from_slice(&v);
            out.extend_from_slice(b"\r\n");
        }
        // Quiet meta commands are left out: memcached 1.6.18 drops the replies that follow a
        // quiet `mg` miss in the same read batch, so its output depends on packet timing.
        15 => out.extend_from_slice(format!("md {key}\r\nma {key} N0 J5\r\n").as_bytes()),
        16 => out.extend_from_slice(b"verbosity 1\r\nverbosity 1 noreply\r\n"),
        17 => {
            let bad = [
                &b"bogus command\r\n"[..],
                b"get\r\n",
                b"set k 0 0 abc\r\n",
                b"incr k abc\r\n",
                b"set k 0 0 1\r\nxyz\r\n",
                b"touch k\r\n",
                b"delete k 5\r\n",
            ];
            out.extend_from_slice(bad[rng.random_range(0..bad.len())]);
        }
        // memcached 1.6.18 throws away the replies it has not sent yet when a `get` has a
        // too-long key (`conn_release_items`), so what it answers depends on read batching:
        // this case goes in a round of its own.
        18 => {
            let long = "x".repeat(251);
            out.extend_from_slice(format!("get {long}\r\nset {long} 0 0 1\r\nx\r\n").as_bytes());
        }
        19 => {
            if rng.random_bool(0.2) {
                out.extend_from_slice(format!("flush_all{noreply}\r\n").as_bytes());
            }
        }
        20 | 21 => out.extend_from_slice(format!("mg {key} s v\r\nmn\r\n").as_bytes()),
        22 => out.extend_from_slice(format!("me {key}\r\n").as_bytes()),
        _ => out.extend_from_slice(b"stats\r\n"),
    }
}

/// Binary opcodes in [`random_binary_command`]: every one memcached 1.6 serves whose reply
/// does not depend on the server (VERSION and STAT are left out), and one it does not know.
/// VERBOSITY is left out too: memcached 1.6.18 answers it "Unknown command" without reading
/// its extras, then reads them as the next header and closes the connection.
const GET: u8 = 0x00;
const SET: u8 = 0x01;
const DELETE: u8 = 0x04;
const INCR: u8 = 0x05;
const FLUSH: u8 = 0x08;
const NOOP: u8 = 0x0a;
const APPEND: u8 = 0x0e;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const GATK: u8 = 0x23;

/// Appends one random binary request (opaque `opaque`) to `out`: gets (plain, K, Q, KQ),
/// stores (set/add/replace/append/prepend and their quiet forms, some with a CAS that does
/// not match), deletes, incr/decr, touch, gat/gatk (and quiet), a NOOP in the middle, a rare
/// flush, and an unknown opcode. Values are random bytes, up to 100 kB
/// one time in twenty.
pub fn random_binary_command(rng: &mut StdRng, out: &mut Vec<u8>, opaque: u32) {
    use crate::support::bin::{arith_extras, req, store_extras};
    let key = format!("b{}", rng.random_range(0..24)).into_bytes();
    let quiet = |rng: &mut StdRng, op: u8, q: u8| if rng.random_bool(0.3) { q } else { op };
    let value = |rng: &mut StdRng| -> Vec<u8> {
        let len = if rng.random_bool(0.05) {
            rng.random_range(0..100_000)
        } else {
            rng.random_range(0..200)
        };
        (0..len).map(|_| rng.random::<u8>()).collect()
    };
    let frame = match rng.random_range(0..16) {
        0..=2 => {
            // GET, GETQ, GETK, GETKQ.
            let op = [GET, 0x09, 0x0c, 0x0d][rng.random_range(0..4)];
            req(op, opaque, 0, &[], &key, &[])
        }
        3..=5 => {
            // SET, ADD, REPLACE and their quiet forms 0x11..0x13.
            let base = SET + rng.random_range(0..3);
            let op = quiet(rng, base, base + 0x10);
            // As in the ascii stream, a CAS no server has given out.
            let cas = if rng.random_bool(0.1) {
                rng.random_range(1 << 40..1 << 41)
            } else {
                0
            };
            let v = value(rng);
            req(
                op,
                opaque,
                cas,
                &store_extras(rng.random_range(0..5), 0),
                &key,
                &v,
            )
        }
        6 => {
            // APPEND, PREPEND, APPENDQ, PREPENDQ.
            let base = APPEND + rng.random_range(0..2);
            let op = quiet(rng, base, base + 0x0b);
            req(op, opaque, 0, &[], &key, &value(rng))
        }
        7 => req(quiet(rng, DELETE, 0x14), opaque, 0, &[], &key, &[]),
        8 => {
            // INCR, DECR, INCRQ, DECRQ; an initial value, or 0xffffffff: "do not create".
            let base = INCR + rng.random_range(0..2);
            let op = quiet(rng, base, base + 0x10);
            let exp = if rng.random_bool(0.5) { 0 } else { u32::MAX };
            let extras = arith_extras(rng.random_range(0..1000), 7, exp);
            req(op, opaque, 0, &extras, &key, &[])
        }
        9 => req(
            TOUCH,
            opaque,
            0,
            &rng.random_range(0u32..1000).to_be_bytes(),
            &key,
            &[],
        ),
        10 | 11 => {
            // GAT, GATQ, GATK, GATKQ.
            let op = [GAT, GAT + 1, GATK, GATK + 1][rng.random_range(0..4)];
            let exp: u32 = [0, 100][rng.random_range(0..2)];
            req(op, opaque, 0, &exp.to_be_bytes(), &key, &[])
        }
        12 | 13 => req(NOOP, opaque, 0, &[], &[], &[]),
        14 if rng.random_bool(0.1) => req(quiet(rng, FLUSH, 0x18), opaque, 0, &[], &[], &[]),
        14 => req(GET, opaque, 0, &[], &key, &[]),
        _ => req(0x50, opaque, 0, &[], &[], &[]),
    };
    out.extend_from_slice(&frame);
}
