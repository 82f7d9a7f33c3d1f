//! The 24-byte binary protocol header, opcodes and status codes.

use bytes::{Buf, BufMut, BytesMut};

/// Length of every binary header.
pub const HEADER_LEN: usize = 24;
/// Magic byte of a request.
pub const REQUEST_MAGIC: u8 = 0x80;
/// Magic byte of a response.
pub const RESPONSE_MAGIC: u8 = 0x81;

macro_rules! opcodes {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        /// A binary opcode memcached 1.6 knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Opcode {
            $($(#[$doc])* $name = $code,)*
        }

        impl Opcode {
            /// The opcode for a byte, if it is one we know.
            pub fn from_u8(b: u8) -> Option<Opcode> {
                match b {
                    $($code => Some(Opcode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

opcodes! {
    /// Get.
    Get = 0x00,
    /// Set.
    Set = 0x01,
    /// Add.
    Add = 0x02,
    /// Replace.
    Replace = 0x03,
    /// Delete.
    Delete = 0x04,
    /// Increment.
    Increment = 0x05,
    /// Decrement.
    Decrement = 0x06,
    /// Quit.
    Quit = 0x07,
    /// Flush.
    Flush = 0x08,
    /// Get, quiet (no reply on a miss).
    GetQ = 0x09,
    /// No-op: answered at once, flushes the quiet replies before it.
    Noop = 0x0a,
    /// Version.
    Version = 0x0b,
    /// Get, with the key in the reply.
    GetK = 0x0c,
    /// GetK, quiet.
    GetKQ = 0x0d,
    /// Append.
    Append = 0x0e,
    /// Prepend.
    Prepend = 0x0f,
    /// Stat.
    Stat = 0x10,
    /// Set, quiet.
    SetQ = 0x11,
    /// Add, quiet.
    AddQ = 0x12,
    /// Replace, quiet.
    ReplaceQ = 0x13,
    /// Delete, quiet.
    DeleteQ = 0x14,
    /// Increment, quiet.
    IncrementQ = 0x15,
    /// Decrement, quiet.
    DecrementQ = 0x16,
    /// Quit, quiet.
    QuitQ = 0x17,
    /// Flush, quiet.
    FlushQ = 0x18,
    /// Append, quiet.
    AppendQ = 0x19,
    /// Prepend, quiet.
    PrependQ = 0x1a,
    /// Verbosity (memcached 1.6.18 answers it with UNKNOWN_COMMAND).
    Verbosity = 0x1b,
    /// Touch.
    Touch = 0x1c,
    /// Get and touch.
    Gat = 0x1d,
    /// Get and touch, quiet.
    GatQ = 0x1e,
    /// SASL: list mechanisms.
    SaslListMechs = 0x20,
    /// SASL: authenticate.
    SaslAuth = 0x21,
    /// SASL: next step.
    SaslStep = 0x22,
    /// Get and touch, with the key.
    GatK = 0x23,
    /// Get and touch with the key, quiet.
    GatKQ = 0x24,
}

impl Opcode {
    /// Quiet opcodes send no reply on the common outcome (a miss for gets, success for
    /// the others); errors are always answered.
    pub fn is_quiet(self) -> bool {
        self.loud() != self
    }

    /// The non-quiet opcode with the same meaning (itself when it is not quiet).
    pub fn loud(self) -> Opcode {
        use Opcode::*;
        match self {
            GetQ => Get,
            GetKQ => GetK,
            SetQ => Set,
            AddQ => Add,
            ReplaceQ => Replace,
            DeleteQ => Delete,
            IncrementQ => Increment,
            DecrementQ => Decrement,
            QuitQ => Quit,
            FlushQ => Flush,
            AppendQ => Append,
            PrependQ => Prepend,
            GatQ => Gat,
            GatKQ => GatK,
            other => other,
        }
    }
}

/// A response status (the header's bytes 6..8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    /// Success.
    pub const NO_ERROR: Status = Status(0x00);
    /// Key not found.
    pub const KEY_NOT_FOUND: Status = Status(0x01);
    /// Key exists (CAS mismatch, or `add` of an existing key).
    pub const KEY_EXISTS: Status = Status(0x02);
    /// Value too large.
    pub const VALUE_TOO_LARGE: Status = Status(0x03);
    /// Invalid arguments.
    pub const INVALID_ARGUMENTS: Status = Status(0x04);
    /// Item not stored.
    pub const ITEM_NOT_STORED: Status = Status(0x05);
    /// Incr/decr on a non-numeric value.
    pub const NON_NUMERIC: Status = Status(0x06);
    /// The vbucket belongs to another server (couchbase/moxi vbucket maps).
    pub const NOT_MY_VBUCKET: Status = Status(0x07);
    /// Authentication error.
    pub const AUTH_ERROR: Status = Status(0x20);
    /// Authentication continues.
    pub const AUTH_CONTINUE: Status = Status(0x21);
    /// Unknown command.
    pub const UNKNOWN_COMMAND: Status = Status(0x81);
    /// Out of memory.
    pub const OUT_OF_MEMORY: Status = Status(0x82);
    /// Not supported.
    pub const NOT_SUPPORTED: Status = Status(0x83);
    /// Internal error.
    pub const INTERNAL_ERROR: Status = Status(0x84);
    /// Busy.
    pub const BUSY: Status = Status(0x85);
    /// Temporary failure.
    pub const TEMPORARY_FAILURE: Status = Status(0x86);

    /// The body text memcached 1.6.18 sends with this error status (`write_bin_error`).
    pub fn memcached_text(self) -> &'static [u8] {
        match self {
            Status::OUT_OF_MEMORY => b"Out of memory",
            Status::UNKNOWN_COMMAND => b"Unknown command",
            Status::KEY_NOT_FOUND => b"Not found",
            Status::INVALID_ARGUMENTS => b"Invalid arguments",
            Status::KEY_EXISTS => b"Data exists for key.",
            Status::VALUE_TOO_LARGE => b"Too large.",
            Status::NON_NUMERIC => b"Non-numeric server-side value for incr or decr",
            Status::ITEM_NOT_STORED => b"Not stored.",
            Status::AUTH_ERROR => b"Auth failure.",
            _ => b"",
        }
    }
}

/// A binary header. In a request `vbucket_or_status` is the vbucket id (moxi puts it there);
/// in a response it is the [`Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// 0x80 for a request, 0x81 for a response.
    pub magic: u8,
    /// The opcode byte (see [`Opcode::from_u8`]).
    pub opcode: u8,
    /// Key length.
    pub key_len: u16,
    /// Extras length.
    pub extras_len: u8,
    /// Data type (0: raw bytes).
    pub data_type: u8,
    /// vbucket id (request) or status (response).
    pub vbucket_or_status: u16,
    /// Length of extras + key + value.
    pub body_len: u32,
    /// Echoed back in the response.
    pub opaque: u32,
    /// CAS value.
    pub cas: u64,
}

impl Header {
    /// Reads a header from the first 24 bytes of `b`, if it has them.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let mut b = b.get(..HEADER_LEN)?;
        Some(Header {
            magic: b.get_u8(),
            opcode: b.get_u8(),
            key_len: b.get_u16(),
            extras_len: b.get_u8(),
            data_type: b.get_u8(),
            vbucket_or_status: b.get_u16(),
            body_len: b.get_u32(),
            opaque: b.get_u32(),
            cas: b.get_u64(),
        })
    }

    /// Appends the 24 header bytes.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(HEADER_LEN);
        dst.put_u8(self.magic);
        dst.put_u8(self.opcode);
        dst.put_u16(self.key_len);
        dst.put_u8(self.extras_len);
        dst.put_u8(self.data_type);
        dst.put_u16(self.vbucket_or_status);
        dst.put_u32(self.body_len);
        dst.put_u32(self.opaque);
        dst.put_u64(self.cas);
    }

    /// The known opcode, if any.
    pub fn known_opcode(&self) -> Option<Opcode> {
        Opcode::from_u8(self.opcode)
    }

    /// The response status.
    pub fn status(&self) -> Status {
        Status(self.vbucket_or_status)
    }

    /// Body bytes after extras and key (may be negative in a malformed header).
    pub fn value_len(&self) -> i64 {
        i64::from(self.body_len) - i64::from(self.key_len) - i64::from(self.extras_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            magic: REQUEST_MAGIC,
            opcode: 0x01,
            key_len: 3,
            extras_len: 8,
            data_type: 0,
            vbucket_or_status: 0x0102,
            body_len: 16,
            opaque: 0xdeadbeef,
            cas: 42,
        };
        let mut b = BytesMut::new();
        h.encode(&mut b);
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(&b[..8], &[0x80, 0x01, 0, 3, 8, 0, 1, 2]);
        assert_eq!(Header::parse(&b), Some(h));
        assert_eq!(Header::parse(&b[..23]), None);
    }

    #[test]
    fn quiet_opcodes() {
        for b in 0..=255u8 {
            if let Some(op) = Opcode::from_u8(b) {
                assert_eq!(op as u8, b);
                assert!(!op.loud().is_quiet());
            }
        }
        assert!(Opcode::GetKQ.is_quiet());
        assert_eq!(Opcode::GatKQ.loud(), Opcode::GatK);
        assert!(!Opcode::Noop.is_quiet());
    }
}
