//! The memcached protocol codec of shoal's `memcache` door.
//!
//! `shoal memcache` is a memcached proxy (in the place of moxi and twemproxy). This crate is
//! the part of it that speaks the wire protocol, with no I/O of its own:
//!
//! - [`Decoder`] turns what a client sends (ascii, meta or binary, picked from the first byte
//!   as memcached does) into [`Request`]s, incrementally, from a `BytesMut` read buffer. Keys
//!   and values are `Bytes` slices of that buffer: nothing is copied.
//! - Malformed input gives a [`ProtocolError`] carrying the exact bytes memcached 1.6.18
//!   answers and what it does next ([`Action`]): go on, skip a value it will not store, or
//!   close. `tests/against_memcached.rs` checks this against a real memcached.
//! - [`Request::encode`] writes a request for a downstream server;
//!   [`ascii::decode_response`] and [`binary::decode_binary_response`] read the servers'
//!   pipelined replies, and [`ascii::Response::encode`] and [`binary::BinaryResponse::encode`]
//!   write replies back to clients.
//!
//! ```
//! use bytes::BytesMut;
//! use shoal_memcache::{Decoder, Request, ascii::AsciiRequest};
//!
//! let mut decoder = Decoder::default();
//! let mut buf = BytesMut::from(&b"get a b\r\nset k 0 0 1\r\nx\r\n"[..]);
//!
//! let Some(Request::Ascii(AsciiRequest::Get(get))) = decoder.decode(&mut buf)? else {
//!     panic!("expected a get");
//! };
//! assert_eq!(get.keys, ["a", "b"]);
//!
//! let Some(Request::Ascii(AsciiRequest::Store(set))) = decoder.decode(&mut buf)? else {
//!     panic!("expected a set");
//! };
//! assert_eq!((&set.key[..], &set.value[..]), (&b"k"[..], &b"x"[..]));
//!
//! assert_eq!(decoder.decode(&mut buf)?, None); // everything consumed
//! # Ok::<(), shoal_memcache::ProtocolError>(())
//! ```
#![warn(missing_docs)]

pub mod a2b;
pub mod ascii;
pub mod binary;
pub mod config;
mod decoder;
mod error;
pub mod meta;
mod num;
pub mod nutcracker_stats;
pub mod pool;
pub mod proxy;
mod request;
pub mod rest;
pub mod route;
pub mod stats;

#[cfg(test)]
mod proptests;

pub use decoder::Decoder;
pub use error::{Action, ErrorKind, ProtocolError, ResponseError, reply};
pub use request::{Protocol, Request};

/// The most a decoder reserves ahead of the bytes it has for a frame it knows the length of:
/// 1 MiB. A frame announced larger (up to `max_item_size`, which may be set to 1 GiB) grows
/// its buffer as its bytes come, so a few header bytes cannot make the proxy reserve a
/// gigabyte per connection.
const RESERVE_AHEAD: usize = 1 << 20;

/// Makes room in `buf` for a frame of `need` bytes, at most [`RESERVE_AHEAD`] at a time.
pub(crate) fn reserve_ahead(buf: &mut bytes::BytesMut, need: usize) {
    buf.reserve(need.saturating_sub(buf.len()).min(RESERVE_AHEAD));
}

/// Size limits of the codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of an unfinished command line (no `\n` yet) kept while waiting for the
    /// rest. Default 2048, memcached's: past it the connection is closed without a reply,
    /// unless the line starts with `get ` or `gets ` (after at most 100 spaces). Like
    /// memcached, this is checked on what has arrived so far, so a 3000-byte `set` line
    /// that arrives in one read is served while one split before its newline is not.
    pub max_pending_line: usize,
    /// Longest complete command line other than `get`/`gets`, counting a trailing `\r`.
    /// Default 16384: memcached's read buffer, past which it can never see the newline.
    /// Also the limit for reply lines read from servers.
    pub max_line: usize,
    /// Longest `get`/`gets` line. memcached has no limit; default 1 MiB.
    pub max_multiget_line: usize,
    /// Largest value a storage command may carry (memcached's `-I`). Default 1 MiB. Larger
    /// values are refused with `SERVER_ERROR object too large for cache` and skipped.
    /// memcached's own limit is a little lower (it counts its item header), so a value
    /// just under 1 MiB may still be refused by the server itself.
    pub max_item_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pending_line: 2048,
            max_line: 16 * 1024,
            max_multiget_line: 1 << 20,
            max_item_size: 1 << 20,
        }
    }
}

impl Limits {
    /// Largest binary body kept in memory: a value of `max_item_size` with the largest
    /// extras and key.
    pub fn max_binary_body(&self) -> usize {
        self.max_item_size + 255 + usize::from(u16::MAX)
    }
}
