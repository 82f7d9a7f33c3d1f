//! A request in any of the three dialects.

use bytes::{Bytes, BytesMut};

use crate::ascii::AsciiRequest;
use crate::binary::BinaryRequest;
use crate::meta::{MetaKind, MetaRequest};

/// The wire protocol of a connection: memcached picks it from the first byte a client sends
/// (0x80: binary, anything else: ascii) and keeps it for the connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Text commands, classic and meta.
    Ascii,
    /// The binary protocol.
    Binary,
}

/// One decoded request. Keys and values are slices of the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A classic ascii command.
    Ascii(AsciiRequest),
    /// A meta command.
    Meta(MetaRequest),
    /// A binary request.
    Binary(BinaryRequest),
}

impl Request {
    /// The protocol the request was sent in.
    pub fn protocol(&self) -> Protocol {
        match self {
            Request::Ascii(_) | Request::Meta(_) => Protocol::Ascii,
            Request::Binary(_) => Protocol::Binary,
        }
    }

    /// The keys the request names, in order, as sent (a meta `b` key is still base64).
    pub fn keys(&self) -> &[Bytes] {
        match self {
            Request::Ascii(a) => a.keys(),
            Request::Meta(m) if m.kind == MetaKind::Noop => &[],
            Request::Meta(m) => std::slice::from_ref(&m.key),
            Request::Binary(b) if b.key.is_empty() => &[],
            Request::Binary(b) => std::slice::from_ref(&b.key),
        }
    }

    /// Appends the request in its own protocol, ready for a downstream server.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Request::Ascii(a) => a.encode(dst),
            Request::Meta(m) => m.encode(dst),
            Request::Binary(b) => b.encode(dst),
        }
    }
}

impl From<AsciiRequest> for Request {
    fn from(r: AsciiRequest) -> Self {
        Request::Ascii(r)
    }
}

impl From<MetaRequest> for Request {
    fn from(r: MetaRequest) -> Self {
        Request::Meta(r)
    }
}

impl From<BinaryRequest> for Request {
    fn from(r: BinaryRequest) -> Self {
        Request::Binary(r)
    }
}
