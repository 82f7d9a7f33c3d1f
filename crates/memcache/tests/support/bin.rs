//! Binary protocol frames for tests: requests built by hand, responses read off a socket.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One binary request frame.
pub fn req(opcode: u8, opaque: u32, cas: u64, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = vec![0x80, opcode];
    r.extend_from_slice(&(key.len() as u16).to_be_bytes());
    r.push(extras.len() as u8);
    r.extend_from_slice(&[0, 0, 0]); // data type, vbucket
    r.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    r.extend_from_slice(&opaque.to_be_bytes());
    r.extend_from_slice(&cas.to_be_bytes());
    r.extend_from_slice(extras);
    r.extend_from_slice(key);
    r.extend_from_slice(value);
    r
}

/// Flags and exptime: the extras of SET, ADD and REPLACE.
pub fn store_extras(flags: u32, exptime: u32) -> Vec<u8> {
    let mut e = flags.to_be_bytes().to_vec();
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

/// Delta, initial value and exptime: the extras of INCREMENT and DECREMENT.
pub fn arith_extras(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    let mut e = delta.to_be_bytes().to_vec();
    e.extend_from_slice(&initial.to_be_bytes());
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

/// A response frame, split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub status: u16,
    pub opaque: u32,
    pub cas: u64,
    pub extras: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The frame's bytes as they came.
    pub raw: Vec<u8>,
}

/// Splits `buf` into whole frames; returns them and whether bytes of an unfinished one are left.
pub fn frames(mut buf: &[u8]) -> (Vec<Frame>, bool) {
    let mut out = Vec::new();
    while buf.len() >= 24 {
        let body = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
        if buf.len() < 24 + body {
            break;
        }
        let key_len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
        let extras = buf[4] as usize;
        let b = &buf[24..24 + body];
        out.push(Frame {
            opcode: buf[1],
            status: u16::from_be_bytes([buf[6], buf[7]]),
            opaque: u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]),
            cas: u64::from_be_bytes(buf[16..24].try_into().unwrap_or([0; 8])),
            extras: b[..extras].to_vec(),
            key: b[extras..extras + key_len].to_vec(),
            value: b[extras + key_len..].to_vec(),
            raw: buf[..24 + body].to_vec(),
        });
        buf = &buf[24 + body..];
    }
    (out, !buf.is_empty())
}

/// Writes `req` and reads frames until one with opcode `last_op` and opaque `last_opaque`
/// has come (a NOOP ending a quiet pipeline), or 10 s pass.
pub fn call(s: &mut TcpStream, req: &[u8], last_op: u8, last_opaque: u32) -> Vec<Frame> {
    s.write_all(req).expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let (fs, partial) = frames(&got);
        if !partial
            && fs
                .last()
                .is_some_and(|f| f.opcode == last_op && f.opaque == last_opaque)
        {
            return fs;
        }
        assert!(
            Instant::now() < deadline,
            "no final reply (opcode {last_op:#x}); got {fs:?}"
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("connection closed; got {fs:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The frames' bytes with the CAS fields zeroed (they differ between servers).
pub fn without_cas(fs: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fs {
        let mut raw = f.raw.clone();
        raw[16..24].fill(0);
        out.extend_from_slice(&raw);
    }
    out
}
