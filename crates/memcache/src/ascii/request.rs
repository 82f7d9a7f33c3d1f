//! The classic ascii commands a proxy understands, and their encoding.

use bytes::{BufMut, Bytes, BytesMut};

/// A classic (non-meta) ascii command. Numbers hold what memcached 1.6.18 would use after
/// reading them (flags and lengths truncated to 32 bits as it does), so re-encoding gives a
/// canonical line that means the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsciiRequest {
    /// `get`, `gets`, `gat`, `gats`.
    Get(Get),
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    Store(Store),
    /// `incr`, `decr`.
    Arith(Arith),
    /// `delete <key> [0] [noreply]`.
    Delete(Delete),
    /// `touch <key> <exptime> [noreply]`.
    Touch(Touch),
    /// `flush_all [delay] [noreply]`.
    FlushAll(FlushAll),
    /// `stats [args...]`.
    Stats(Stats),
    /// `version`.
    Version,
    /// `verbosity <level> [noreply]`.
    Verbosity(Verbosity),
    /// `quit`: the client wants the connection closed.
    Quit,
}

/// A retrieval: `get`/`gets` (`touch` is `None`) or `gat`/`gats` (`touch` is the new exptime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    /// `gets`/`gats`: the reply carries CAS values.
    pub cas: bool,
    /// `gat`/`gats`: the exptime to set on every hit.
    pub touch: Option<i32>,
    /// The keys, in order; `gat` may have none (memcached answers `END`).
    pub keys: Vec<Bytes>,
}

/// Which storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// `set`.
    Set,
    /// `add`.
    Add,
    /// `replace`.
    Replace,
    /// `append`.
    Append,
    /// `prepend`.
    Prepend,
    /// `cas` with the unique value the client read.
    Cas(u64),
}

/// A storage command and its value block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// Which command.
    pub kind: StoreKind,
    /// The key (at most 250 bytes).
    pub key: Bytes,
    /// Client flags.
    pub flags: u32,
    /// Expiration time (seconds, or a unix time; negative expires at once).
    pub exptime: i32,
    /// The value, without its trailing `\r\n`.
    pub value: Bytes,
    /// The client wants no reply.
    pub noreply: bool,
}

/// `incr` or `decr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithKind {
    /// `incr`.
    Incr,
    /// `decr`.
    Decr,
}

/// `incr`/`decr <key> <delta> [noreply]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arith {
    /// Which command.
    pub kind: ArithKind,
    /// The key.
    pub key: Bytes,
    /// The amount.
    pub delta: u64,
    /// The client wants no reply.
    pub noreply: bool,
}

/// `delete <key> [noreply]` (memcached also takes the legacy `delete <key> 0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// The key.
    pub key: Bytes,
    /// The client wants no reply.
    pub noreply: bool,
}

/// `touch <key> <exptime> [noreply]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// The key.
    pub key: Bytes,
    /// The new expiration time.
    pub exptime: i32,
    /// The client wants no reply.
    pub noreply: bool,
}

/// `flush_all [delay] [noreply]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushAll {
    /// Seconds (or a unix time) until the flush; `None` flushes now.
    pub delay: Option<i32>,
    /// The client wants no reply.
    pub noreply: bool,
}

/// `stats [args...]`, arguments kept as given (`reset`, `settings`, `items`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The arguments after `stats`.
    pub args: Vec<Bytes>,
}

/// `verbosity <level> [noreply]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verbosity {
    /// The level.
    pub level: u32,
    /// The client wants no reply.
    pub noreply: bool,
}

impl StoreKind {
    /// The command name.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Set => "set",
            StoreKind::Add => "add",
            StoreKind::Replace => "replace",
            StoreKind::Append => "append",
            StoreKind::Prepend => "prepend",
            StoreKind::Cas(_) => "cas",
        }
    }
}

impl Get {
    /// The command name.
    pub fn name(&self) -> &'static str {
        match (self.cas, self.touch.is_some()) {
            (false, false) => "get",
            (true, false) => "gets",
            (false, true) => "gat",
            (true, true) => "gats",
        }
    }
}

impl AsciiRequest {
    /// The keys the command names, in order (none for `stats`, `version`, ...).
    pub fn keys(&self) -> &[Bytes] {
        match self {
            AsciiRequest::Get(g) => &g.keys,
            AsciiRequest::Store(s) => std::slice::from_ref(&s.key),
            AsciiRequest::Arith(a) => std::slice::from_ref(&a.key),
            AsciiRequest::Delete(d) => std::slice::from_ref(&d.key),
            AsciiRequest::Touch(t) => std::slice::from_ref(&t.key),
            _ => &[],
        }
    }

    /// Whether the client asked for no reply.
    pub fn noreply(&self) -> bool {
        match self {
            AsciiRequest::Store(s) => s.noreply,
            AsciiRequest::Arith(a) => a.noreply,
            AsciiRequest::Delete(d) => d.noreply,
            AsciiRequest::Touch(t) => t.noreply,
            AsciiRequest::FlushAll(f) => f.noreply,
            AsciiRequest::Verbosity(v) => v.noreply,
            _ => false,
        }
    }

    /// Appends the command in canonical form (single spaces, `\r\n`).
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            AsciiRequest::Get(g) => {
                dst.put_slice(g.name().as_bytes());
                if let Some(t) = g.touch {
                    put_num(dst, t);
                }
                for k in &g.keys {
                    dst.put_u8(b' ');
                    dst.put_slice(k);
                }
            }
            AsciiRequest::Store(s) => {
                dst.reserve(s.key.len() + s.value.len() + 64);
                dst.put_slice(s.kind.name().as_bytes());
                dst.put_u8(b' ');
                dst.put_slice(&s.key);
                put_num(dst, s.flags);
                put_num(dst, s.exptime);
                put_num(dst, s.value.len());
                if let StoreKind::Cas(unique) = s.kind {
                    put_num(dst, unique);
                }
                put_noreply(dst, s.noreply);
                dst.put_slice(b"\r\n");
                dst.put_slice(&s.value);
            }
            AsciiRequest::Arith(a) => {
                dst.put_slice(match a.kind {
                    ArithKind::Incr => b"incr ",
                    ArithKind::Decr => b"decr ",
                });
                dst.put_slice(&a.key);
                put_num(dst, a.delta);
                put_noreply(dst, a.noreply);
            }
            AsciiRequest::Delete(d) => {
                dst.put_slice(b"delete ");
                dst.put_slice(&d.key);
                put_noreply(dst, d.noreply);
            }
            AsciiRequest::Touch(t) => {
                dst.put_slice(b"touch ");
                dst.put_slice(&t.key);
                put_num(dst, t.exptime);
                put_noreply(dst, t.noreply);
            }
            AsciiRequest::FlushAll(f) => {
                dst.put_slice(b"flush_all");
                if let Some(d) = f.delay {
                    put_num(dst, d);
                }
                put_noreply(dst, f.noreply);
            }
            AsciiRequest::Stats(s) => {
                dst.put_slice(b"stats");
                for a in &s.args {
                    dst.put_u8(b' ');
                    dst.put_slice(a);
                }
            }
            AsciiRequest::Version => dst.put_slice(b"version"),
            AsciiRequest::Verbosity(v) => {
                dst.put_slice(b"verbosity");
                put_num(dst, v.level);
                put_noreply(dst, v.noreply);
            }
            AsciiRequest::Quit => dst.put_slice(b"quit"),
        }
        dst.put_slice(b"\r\n");
    }
}

/// Appends `' '` and a number.
pub(crate) fn put_num(dst: &mut BytesMut, n: impl std::fmt::Display) {
    use std::fmt::Write;
    // Writing into a BytesMut cannot fail.
    let _ = write!(dst, " {n}");
}

fn put_noreply(dst: &mut BytesMut, noreply: bool) {
    if noreply {
        dst.put_slice(b" noreply");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &AsciiRequest) -> Vec<u8> {
        let mut b = BytesMut::new();
        r.encode(&mut b);
        b.to_vec()
    }

    #[test]
    fn encodes_canonical_lines() {
        let g = AsciiRequest::Get(Get {
            cas: true,
            touch: Some(-5),
            keys: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
        });
        assert_eq!(enc(&g), b"gats -5 a b\r\n");
        let s = AsciiRequest::Store(Store {
            kind: StoreKind::Cas(7),
            key: Bytes::from_static(b"k"),
            flags: 1,
            exptime: 2,
            value: Bytes::from_static(b"xyz"),
            noreply: true,
        });
        assert_eq!(enc(&s), b"cas k 1 2 3 7 noreply\r\nxyz\r\n");
        let f = AsciiRequest::FlushAll(FlushAll {
            delay: None,
            noreply: true,
        });
        assert_eq!(enc(&f), b"flush_all noreply\r\n");
    }
}
