//! What goes wrong while decoding a client's requests, what memcached 1.6.18 answers, and
//! what becomes of the connection.

use bytes::Bytes;

/// Exact reply texts of memcached 1.6.18 (checked by `tests/against_memcached.rs`).
pub mod reply {
    /// Unknown command, too few or too many tokens.
    pub const ERROR: &[u8] = b"ERROR\r\n";
    /// A malformed number, a key longer than 250 bytes, a negative length.
    pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
    /// `delete` with a hold time other than `0`.
    pub const BAD_DELETE_FORMAT: &[u8] =
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
    /// A value block not followed by `\r\n`.
    pub const BAD_DATA_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
    /// A value larger than the item size limit.
    pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
    /// `incr`/`decr` whose delta is not an unsigned 64-bit number.
    pub const BAD_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta argument\r\n";
    /// `touch`, `gat`, `gats` or `flush_all` with a malformed time.
    pub const BAD_EXPTIME: &[u8] = b"CLIENT_ERROR invalid exptime argument\r\n";
    /// `mg` with more than 17 flags.
    pub const MG_FLAGS_TOO_LONG: &[u8] = b"CLIENT_ERROR options flags are too long\r\n";
    /// `ms`, `md`, `ma` with too many flags (note: no "are", unlike `mg`).
    pub const META_FLAGS_TOO_LONG: &[u8] = b"CLIENT_ERROR options flags too long\r\n";
}

/// What the connection does after an error reply has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Keep reading requests.
    Continue,
    /// The decoder skips this many more bytes of the stream (a value that is never stored,
    /// memcached's `conn_swallow`), then keeps reading requests. The skipping is done by
    /// [`Decoder::decode`](crate::Decoder::decode) itself; this is for logs and counters.
    Swallow(u64),
    /// Write the reply (if any), then close the connection.
    Close,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Unknown command, or a known one with the wrong number of tokens.
    UnknownCommand,
    /// A token that should be a number is not, or is out of range.
    BadFormat,
    /// A key longer than 250 bytes.
    KeyTooLong,
    /// A value block that is not followed by `\r\n`.
    BadDataChunk,
    /// A value larger than the configured item size limit.
    TooLarge,
    /// Too many meta flags.
    TooManyFlags,
    /// A command line longer than the line limit (the connection is closed).
    LineTooLong,
    /// A binary header whose lengths do not fit together.
    BadBinaryFrame,
    /// A binary packet whose magic byte is not 0x80 (the connection is closed).
    BadMagic,
    /// The decoder already told the caller to close the connection.
    Closed,
}

/// A refused request: the bytes memcached would answer, and what happens to the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("memcache protocol error: {kind:?} ({action:?})")]
pub struct ProtocolError {
    kind: ErrorKind,
    reply: Bytes,
    action: Action,
}

impl ProtocolError {
    pub(crate) fn new(kind: ErrorKind, reply: Bytes, action: Action) -> Self {
        Self {
            kind,
            reply,
            action,
        }
    }

    /// An ascii error with a fixed reply; `noreply` suppresses the reply as memcached does.
    pub(crate) fn ascii(kind: ErrorKind, text: &'static [u8], noreply: bool) -> Self {
        let reply = if noreply {
            Bytes::new()
        } else {
            Bytes::from_static(text)
        };
        Self::new(kind, reply, Action::Continue)
    }

    pub(crate) fn with_action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Why the request was refused.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The bytes to write back to the client; empty when memcached stays silent
    /// (`noreply`, or a connection it simply closes).
    pub fn reply(&self) -> &Bytes {
        &self.reply
    }

    /// What the connection does next.
    pub fn action(&self) -> Action {
        self.action
    }

    /// Whether the connection must be closed after the reply is written.
    pub fn is_close(&self) -> bool {
        self.action == Action::Close
    }
}

/// A reply from a server that cannot be read; the connection to that server is out of step
/// and must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// A line that is not a memcached reply.
    #[error("malformed memcached reply line")]
    Malformed,
    /// A reply line longer than the line limit.
    #[error("memcached reply line too long")]
    LineTooLong,
    /// A value or body larger than the limit.
    #[error("memcached reply value too large")]
    TooLarge,
    /// A value block not followed by `\r\n`.
    #[error("memcached reply value not followed by \\r\\n")]
    BadDataChunk,
    /// A binary reply whose magic byte is not 0x81.
    #[error("binary reply with bad magic byte")]
    BadMagic,
}
