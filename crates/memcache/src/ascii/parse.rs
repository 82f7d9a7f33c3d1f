//! One ascii command line to a request, with memcached 1.6.18's checks in memcached's order
//! (`process_command_ascii` and the `process_*_command` functions of `proto_text.c`).

use bytes::Bytes;

use super::line::{KEY_MAX, Tokens, iter};
use super::request::{
    Arith, ArithKind, AsciiRequest, Delete, FlushAll, Get, Stats, Store, StoreKind, Touch,
    Verbosity,
};
use crate::error::{ErrorKind, ProtocolError, reply};
use crate::num::{strtol, strtoul, strtoull};
use crate::{Limits, Request, meta};

/// A parsed line.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A whole request.
    Done(Request),
    /// A command whose value block (`len` bytes, then `\r\n`) comes next.
    NeedValue(Pending),
}

/// A storage command waiting for its value block.
#[derive(Debug)]
pub(crate) struct Pending {
    request: Request,
    len: usize,
    noreply: bool,
}

impl Pending {
    pub(crate) fn new(request: Request, len: usize, noreply: bool) -> Self {
        Self {
            request,
            len,
            noreply,
        }
    }

    /// Bytes of the value block including its `\r\n`.
    pub(crate) fn block_len(&self) -> usize {
        self.len + 2
    }

    /// Completes the request with its value block (`block_len()` bytes).
    pub(crate) fn complete(self, block: Bytes) -> Result<Request, ProtocolError> {
        if block.get(self.len..) != Some(b"\r\n".as_slice()) {
            return Err(ProtocolError::ascii(
                ErrorKind::BadDataChunk,
                reply::BAD_DATA_CHUNK,
                self.noreply,
            ));
        }
        let value = block.slice(..self.len);
        let mut request = self.request;
        match &mut request {
            Request::Ascii(AsciiRequest::Store(s)) => s.value = value,
            Request::Meta(m) => m.value = Some(value),
            _ => {}
        }
        Ok(request)
    }
}

fn err(text: &'static [u8], noreply: bool) -> ProtocolError {
    let kind = match text {
        t if t == reply::ERROR => ErrorKind::UnknownCommand,
        _ => ErrorKind::BadFormat,
    };
    ProtocolError::ascii(kind, text, noreply)
}

fn key_too_long(noreply: bool) -> ProtocolError {
    ProtocolError::ascii(ErrorKind::KeyTooLong, reply::BAD_FORMAT, noreply)
}

/// Parses one command line (without its `\r\n`); `line` is a slice of the read buffer.
pub(crate) fn parse_line(line: &Bytes, limits: &Limits) -> Result<Parsed, ProtocolError> {
    let l = &line[..];
    let t = Tokens::new(l);
    let cmd = t.get(l, 0);
    if t.len() == 0 || cmd.len() < 2 {
        return Err(err(reply::ERROR, false));
    }
    if cmd.len() == 2 && cmd[0] == b'm' {
        return meta::parse(line, &t, limits);
    }
    let done = |r: AsciiRequest| Ok(Parsed::Done(Request::Ascii(r)));
    match cmd {
        b"get" | b"gets" | b"gat" | b"gats" => done(get(line, &t)?),
        b"set" => store(line, &t, StoreKind::Set, limits),
        b"add" => store(line, &t, StoreKind::Add, limits),
        b"replace" => store(line, &t, StoreKind::Replace, limits),
        b"append" => store(line, &t, StoreKind::Append, limits),
        b"prepend" => store(line, &t, StoreKind::Prepend, limits),
        b"cas" => store(line, &t, StoreKind::Cas(0), limits),
        b"incr" => done(arith(line, &t, ArithKind::Incr)?),
        b"decr" => done(arith(line, &t, ArithKind::Decr)?),
        b"delete" => done(delete(line, &t)?),
        b"touch" => done(touch(line, &t)?),
        b"flush_all" => done(flush_all(l, &t)?),
        b"stats" => done(AsciiRequest::Stats(Stats {
            args: iter(l).skip(1).map(|r| line.slice(r)).collect(),
        })),
        b"version" => done(AsciiRequest::Version),
        b"quit" => done(AsciiRequest::Quit),
        b"verbosity" => done(verbosity(l, &t)?),
        // Admin commands (shutdown, slabs, lru_crawler, watch, ...) are not proxied.
        _ => Err(err(reply::ERROR, false)),
    }
}

/// The key token (index 1), checked against the 250-byte limit.
fn key(line: &Bytes, t: &Tokens, noreply: bool) -> Result<Bytes, ProtocolError> {
    let r = t.range(1).unwrap_or(0..0);
    if r.len() > KEY_MAX {
        return Err(key_too_long(noreply));
    }
    Ok(line.slice(r))
}

fn noreply(l: &[u8], t: &Tokens) -> bool {
    t.last(l) == b"noreply"
}

fn get(line: &Bytes, t: &Tokens) -> Result<AsciiRequest, ProtocolError> {
    let l = &line[..];
    if t.len() < 2 {
        return Err(err(reply::ERROR, false));
    }
    let cmd = t.get(l, 0);
    let cas = cmd == b"gets" || cmd == b"gats";
    let touch = if cmd.starts_with(b"gat") {
        let e = strtol(t.get(l, 1)).ok_or_else(|| err(reply::BAD_EXPTIME, false))?;
        Some(e)
    } else {
        None
    };
    let skip = if touch.is_some() { 2 } else { 1 };
    let mut keys = Vec::with_capacity(t.len() - skip);
    for r in iter(l).skip(skip) {
        if r.len() > KEY_MAX {
            return Err(key_too_long(false));
        }
        keys.push(line.slice(r));
    }
    Ok(AsciiRequest::Get(Get { cas, touch, keys }))
}

fn store(
    line: &Bytes,
    t: &Tokens,
    kind: StoreKind,
    limits: &Limits,
) -> Result<Parsed, ProtocolError> {
    let l = &line[..];
    let is_cas = matches!(kind, StoreKind::Cas(_));
    let want = if is_cas { 6 } else { 5 };
    if t.len() != want && t.len() != want + 1 {
        return Err(err(reply::ERROR, false));
    }
    let nr = noreply(l, t);
    let key = key(line, t, nr)?;
    let bad = || err(reply::BAD_FORMAT, nr);
    let (Some(flags), Some(exptime), Some(len)) = (
        strtoul(t.get(l, 2)),
        strtol(t.get(l, 3)),
        strtol(t.get(l, 4)),
    ) else {
        return Err(bad());
    };
    let kind = if is_cas {
        StoreKind::Cas(strtoull(t.get(l, 5)).ok_or_else(bad)?)
    } else {
        kind
    };
    if !(0..=i32::MAX - 2).contains(&len) {
        return Err(bad());
    }
    let len = len as usize;
    if len > limits.max_item_size {
        return Err(too_large(len, nr));
    }
    let request = Request::Ascii(AsciiRequest::Store(Store {
        kind,
        key,
        flags,
        exptime,
        value: Bytes::new(),
        noreply: nr,
    }));
    Ok(Parsed::NeedValue(Pending::new(request, len, nr)))
}

/// A value over the size limit: memcached answers, then reads and drops the value block.
pub(crate) fn too_large(len: usize, noreply: bool) -> ProtocolError {
    let n = len as u64 + 2;
    ProtocolError::ascii(ErrorKind::TooLarge, reply::TOO_LARGE, noreply)
        .with_action(crate::Action::Swallow(n))
}

fn arith(line: &Bytes, t: &Tokens, kind: ArithKind) -> Result<AsciiRequest, ProtocolError> {
    let l = &line[..];
    if t.len() != 3 && t.len() != 4 {
        return Err(err(reply::ERROR, false));
    }
    let nr = noreply(l, t);
    let key = key(line, t, nr)?;
    let delta = strtoull(t.get(l, 2))
        .ok_or_else(|| ProtocolError::ascii(ErrorKind::BadFormat, reply::BAD_DELTA, nr))?;
    Ok(AsciiRequest::Arith(Arith {
        kind,
        key,
        delta,
        noreply: nr,
    }))
}

fn delete(line: &Bytes, t: &Tokens) -> Result<AsciiRequest, ProtocolError> {
    let l = &line[..];
    if !(2..=4).contains(&t.len()) {
        return Err(err(reply::ERROR, false));
    }
    let mut nr = false;
    if t.len() > 2 {
        let hold_is_zero = t.get(l, 2) == b"0";
        nr = noreply(l, t);
        let valid = (t.len() == 3 && (hold_is_zero || nr)) || (t.len() == 4 && hold_is_zero && nr);
        if !valid {
            return Err(err(reply::BAD_DELETE_FORMAT, nr));
        }
    }
    let key = key(line, t, nr)?;
    Ok(AsciiRequest::Delete(Delete { key, noreply: nr }))
}

fn touch(line: &Bytes, t: &Tokens) -> Result<AsciiRequest, ProtocolError> {
    let l = &line[..];
    if t.len() != 3 && t.len() != 4 {
        return Err(err(reply::ERROR, false));
    }
    let nr = noreply(l, t);
    let key = key(line, t, nr)?;
    let exptime = strtol(t.get(l, 2)).ok_or_else(|| err(reply::BAD_EXPTIME, nr))?;
    Ok(AsciiRequest::Touch(Touch {
        key,
        exptime,
        noreply: nr,
    }))
}

fn flush_all(l: &[u8], t: &Tokens) -> Result<AsciiRequest, ProtocolError> {
    if !(1..=3).contains(&t.len()) {
        return Err(err(reply::ERROR, false));
    }
    let nr = noreply(l, t);
    // memcached reads a delay unless the line is exactly `flush_all [noreply]`; a third
    // token that is not `noreply` is ignored.
    let bare = if nr { 2 } else { 1 };
    let delay = if t.len() != bare {
        Some(strtol(t.get(l, 1)).ok_or_else(|| err(reply::BAD_EXPTIME, nr))?)
    } else {
        None
    };
    Ok(AsciiRequest::FlushAll(FlushAll { delay, noreply: nr }))
}

fn verbosity(l: &[u8], t: &Tokens) -> Result<AsciiRequest, ProtocolError> {
    if t.len() != 2 && t.len() != 3 {
        return Err(err(reply::ERROR, false));
    }
    let nr = noreply(l, t);
    let level = strtoul(t.get(l, 1)).ok_or_else(|| err(reply::BAD_FORMAT, nr))?;
    Ok(AsciiRequest::Verbosity(Verbosity { level, noreply: nr }))
}
