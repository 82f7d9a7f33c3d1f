//! Peer transports: how a node asks a peer for a key, and how it answers.
//!
//! | [`Protocol`] | request | value | not found | expiry |
//! |---|---|---|---|---|
//! | `native` | `GET /_galaxycache/<g>/<k>`, peek at `/_galaxycache_peek/` | raw bytes | 404 + `X-Galaxycache-Galaxy-Status: Found` | `Expires` with ns |
//! | `groupcache` | `GET /_groupcache/<g>/<k>` (HTTP/1.1) | protobuf `GetResponse` | 404 (Go peers: 500) | none |
//! | `grpc` | `/galaxycachepb.GalaxyCache/GetFromPeer`, `PeekPeer` | `GetResponse` | `NotFound` | `Timestamp` |
//!
//! The native protocol is galaxycache's HTTP protocol. The HTTP protocols are spoken over
//! pooled HTTP/1.1 connections (HTTP/2 when TLS's ALPN picks it), which Go peers understand
//! and which measured faster than one multiplexed HTTP/2 connection for small values on
//! loopback; gRPC is HTTP/2. The peer server answers all three on one port, over HTTP/1.1
//! and HTTP/2, whichever the cluster uses to ask.

mod client;
pub(crate) mod connect;
pub(crate) mod escape;
pub(crate) mod expires;
pub(crate) mod groupcache;
pub(crate) mod grpc;
pub(crate) mod native;

use std::fmt;
use std::str::FromStr;

pub use client::PeerClient;
pub(crate) use client::Transport;

use crate::ClusterError;

/// How members ask each other for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// galaxycache's HTTP protocol: raw values, `NotFound`, expiry, peek.
    #[default]
    Native,
    /// golang/groupcache's HTTP protocol (HTTP/1.1, protobuf replies), to join a cluster of
    /// Go groupcache nodes. No expiry and no peek.
    Groupcache,
    /// galaxycache's gRPC protocol: `NotFound`, expiry, peek.
    Grpc,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 3] = [Protocol::Native, Protocol::Groupcache, Protocol::Grpc];

    /// The name [`FromStr`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Native => "native",
            Protocol::Groupcache => "groupcache",
            Protocol::Grpc => "grpc",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = ClusterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ClusterError::BadValue {
                key: "peer protocol",
                value: s.to_owned(),
                expected: "one of native, groupcache, grpc".into(),
            })
    }
}
