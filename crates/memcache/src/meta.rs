//! Meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`).
//!
//! Flags are kept as raw tokens. The codec checks only what decides framing and routing, as
//! memcached 1.6.18 does before it looks at the flags: a key is present and at most 250 bytes,
//! there are not too many flags, and `ms` has a valid data length and a value block. What
//! each flag means (and whether a letter is valid for a command) is left to the server the
//! request is forwarded to: its error replies are exact by construction, and the set of flags
//! grows between memcached versions. Forwarding never breaks framing, since memcached reads
//! (and drops) an `ms` value block even when it refuses the flags.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ascii::line::{KEY_MAX, Tokens};
use crate::ascii::parse::{Parsed, Pending, too_large};
use crate::error::{ErrorKind, ProtocolError, reply};
use crate::num::strtol;
use crate::{Limits, Request};

/// memcached's `MFLAG_MAX_OPT_LENGTH`: a meta line may have at most 19 tokens.
const MAX_TOKENS: usize = 19;

/// Which meta command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKind {
    /// `mg <key> <flags>*`.
    Get,
    /// `ms <key> <datalen> <flags>*` and a value block.
    Set,
    /// `md <key> <flags>*`.
    Delete,
    /// `ma <key> <flags>*`.
    Arithmetic,
    /// `mn`: no-op, used as a pipeline barrier.
    Noop,
    /// `me <key>`: debug information about an item.
    Debug,
}

impl MetaKind {
    /// The two-letter command.
    pub fn name(self) -> &'static str {
        match self {
            MetaKind::Get => "mg",
            MetaKind::Set => "ms",
            MetaKind::Delete => "md",
            MetaKind::Arithmetic => "ma",
            MetaKind::Noop => "mn",
            MetaKind::Debug => "me",
        }
    }
}

/// A meta command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRequest {
    /// Which command.
    pub kind: MetaKind,
    /// The key token as sent (base64 when the `b` flag is present); empty for `mn`.
    pub key: Bytes,
    /// Flag tokens as sent, each starting with its flag letter (`v`, `T30`, `Oopaque`).
    pub flags: Vec<Bytes>,
    /// The value block of `ms` (without `\r\n`); `None` for the other commands.
    pub value: Option<Bytes>,
}

impl MetaRequest {
    /// The token of the first flag with letter `letter`, without the letter (`Some(b"")` for a
    /// bare flag such as `v`).
    pub fn flag(&self, letter: u8) -> Option<&[u8]> {
        self.flags
            .iter()
            .find(|f| f.first() == Some(&letter))
            .map(|f| &f[1..])
    }

    /// Whether flag `letter` is present.
    pub fn has_flag(&self, letter: u8) -> bool {
        self.flag(letter).is_some()
    }

    /// `q`: the server stays silent on the common outcome (a miss for `mg`, success for the
    /// others); errors are always answered.
    pub fn is_quiet(&self) -> bool {
        self.has_flag(b'q')
    }

    /// `O<token>`: the opaque the server echoes back.
    pub fn opaque(&self) -> Option<&[u8]> {
        self.flag(b'O')
    }

    /// The key the server stores: the base64-decoded key with the `b` flag, else the key as
    /// sent. `None` when the `b` key is not valid base64 (the server will refuse it).
    pub fn item_key(&self) -> Option<Bytes> {
        if self.has_flag(b'b') {
            base64_decode(&self.key).map(Bytes::from)
        } else {
            Some(self.key.clone())
        }
    }

    /// Appends the command (single spaces, `\r\n`, and the value block for `ms`).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_slice(self.kind.name().as_bytes());
        if self.kind != MetaKind::Noop {
            dst.put_u8(b' ');
            dst.put_slice(&self.key);
        }
        if self.kind == MetaKind::Set {
            let len = self.value.as_ref().map_or(0, Bytes::len);
            crate::ascii::request::put_num(dst, len);
        }
        for f in &self.flags {
            dst.put_u8(b' ');
            dst.put_slice(f);
        }
        dst.put_slice(b"\r\n");
        if self.kind == MetaKind::Set {
            if let Some(v) = &self.value {
                dst.put_slice(v);
            }
            dst.put_slice(b"\r\n");
        }
    }
}

fn meta_err(kind: ErrorKind, text: &'static [u8]) -> ProtocolError {
    // Meta commands answer errors even with `q`.
    ProtocolError::ascii(kind, text, false)
}

/// Parses a line whose command is two bytes starting with `m`.
pub(crate) fn parse(line: &Bytes, t: &Tokens, limits: &Limits) -> Result<Parsed, ProtocolError> {
    let l = &line[..];
    let kind = match t.get(l, 0)[1] {
        b'g' => MetaKind::Get,
        b's' => MetaKind::Set,
        b'd' => MetaKind::Delete,
        b'a' => MetaKind::Arithmetic,
        b'n' => MetaKind::Noop,
        b'e' => MetaKind::Debug,
        _ => return Err(meta_err(ErrorKind::UnknownCommand, reply::ERROR)),
    };
    let done = |key: Bytes, flags: Vec<Bytes>| {
        Ok(Parsed::Done(Request::Meta(MetaRequest {
            kind,
            key,
            flags,
            value: None,
        })))
    };
    if kind == MetaKind::Noop {
        return done(Bytes::new(), Vec::new());
    }
    if t.len() < 2 {
        return Err(match kind {
            MetaKind::Debug => meta_err(ErrorKind::BadFormat, reply::BAD_FORMAT),
            _ => meta_err(ErrorKind::UnknownCommand, reply::ERROR),
        });
    }
    let key = line.slice(t.range(1).unwrap_or(0..0));
    if key.len() > KEY_MAX {
        return Err(meta_err(ErrorKind::KeyTooLong, reply::BAD_FORMAT));
    }
    if kind == MetaKind::Debug {
        // memcached reads one flag, a `b` right after the key (a base64 key), and ignores
        // anything else after the key.
        let b = t.range(2).filter(|r| &l[r.clone()] == b"b");
        return done(key, b.map(|r| line.slice(r)).into_iter().collect());
    }
    if kind == MetaKind::Set && t.len() == 2 {
        return Err(meta_err(ErrorKind::BadFormat, reply::BAD_FORMAT));
    }
    if t.len() > MAX_TOKENS {
        let text = match kind {
            MetaKind::Get => reply::MG_FLAGS_TOO_LONG,
            _ => reply::META_FLAGS_TOO_LONG,
        };
        return Err(meta_err(ErrorKind::TooManyFlags, text));
    }
    let first_flag = if kind == MetaKind::Set { 3 } else { 2 };
    let flags = (first_flag..t.len())
        .filter_map(|i| t.range(i))
        .map(|r| line.slice(r))
        .collect();
    if kind != MetaKind::Set {
        return done(key, flags);
    }
    let len = match strtol(t.get(l, 2)) {
        Some(n) if (0..=i32::MAX - 2).contains(&n) => n as usize,
        _ => return Err(meta_err(ErrorKind::BadFormat, reply::BAD_FORMAT)),
    };
    if len > limits.max_item_size {
        return Err(too_large(len, false));
    }
    let request = Request::Meta(MetaRequest {
        kind,
        key,
        flags,
        value: None,
    });
    Ok(Parsed::NeedValue(Pending::new(request, len, false)))
}

/// Standard base64 with `=` padding, as memcached's meta `b` flag takes it.
pub fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    if input.is_empty() || !input.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let quads = input.len() / 4;
    for (qi, q) in input.chunks_exact(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && qi + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_keys() {
        assert_eq!(base64_decode(b"a2V5").as_deref(), Some(&b"key"[..]));
        assert_eq!(base64_decode(b"a2U=").as_deref(), Some(&b"ke"[..]));
        assert_eq!(base64_decode(b"aw==").as_deref(), Some(&b"k"[..]));
        assert_eq!(base64_decode(b"a2V5="), None);
        assert_eq!(base64_decode(b"!!!!"), None);
        assert_eq!(base64_decode(b"aw==a2V5"), None);
        assert_eq!(base64_decode(b""), None);
    }

    #[test]
    fn flag_accessors() {
        let m = MetaRequest {
            kind: MetaKind::Get,
            key: Bytes::from_static(b"a2V5"),
            flags: ["v", "q", "Oab", "b"]
                .iter()
                .map(|s| Bytes::from_static(s.as_bytes()))
                .collect(),
            value: None,
        };
        assert!(m.is_quiet());
        assert_eq!(m.opaque(), Some(&b"ab"[..]));
        assert_eq!(m.flag(b'v'), Some(&b""[..]));
        assert_eq!(m.flag(b'T'), None);
        assert_eq!(m.item_key().as_deref(), Some(&b"key"[..]));
        let mut b = BytesMut::new();
        m.encode(&mut b);
        assert_eq!(&b[..], b"mg a2V5 v q Oab b\r\n");
    }
}
