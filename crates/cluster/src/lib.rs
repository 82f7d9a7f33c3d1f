//! Peers for shoal (groupcache's and galaxycache's clustering): who is in the cluster, how
//! members ask each other for keys, and the [`Cluster`] that joins a ring to
//! [`shoal_cache::Group`]s.
//!
//! Each key has one owner among the members, chosen by a [`shoal_ring`] ring over their URLs
//! (golang/groupcache's by default). A group that misses a key asks its owner, which loads it
//! at most once for the whole cluster; the owner serves peers with
//! [`FetchMode::LocalOnly`](shoal_cache::FetchMode::LocalOnly) (load, never forward), so two
//! nodes that disagree about the ring cannot wait on each other. If the owner is down or
//! slow, the asking node loads the key itself.
//!
//! - Membership: [`StaticMembership`] (`--self`, `--peers`), or any [`Membership`] source:
//!   [`FileMembership`], [`GossipMembership`] (SWIM), [`EtcdMembership`], [`DnsMembership`],
//!   and [`GceDiscovery`] seeding gossip (see `docs/membership.md`).
//! - Transports ([`Protocol`]): the native protocol (galaxycache's HTTP protocol),
//!   golang/groupcache's HTTP protocol (to mix with Go nodes), galaxycache's gRPC protocol.
//!   One [`PeerServer`] answers all three on one port.
//! - Security: a shared [`Secret`], TLS and mTLS ([`TlsConfig`]).
//! - Warm handoff ([`Handoff`]): after a membership change, a new owner peeks at the
//!   previous owner before loading.
//! - Removes ([`Cluster::remove`]): drop a key from every member's memory (the owner first,
//!   then every hot cache) and from what their loaders keep, for a value that changed at
//!   its source. groupcache and galaxycache have none; mailgun/groupcache's remove is the
//!   model, and over the groupcache protocol the wire form is the same (`DELETE` on the
//!   fetch path, `200` whether the key was there or not).
//! - Metrics: `shoal_peer_*` (see [`metrics`]).
//! - Deadlines: the HTTP clients send the time they still wait in `X-Shoal-Deadline-Ms`
//!   ([`DEADLINE_HEADER`], 90% of what is left), the gRPC client in `grpc-timeout`; the
//!   server stops waiting for its load when it passes and answers `504` (gRPC:
//!   `DeadlineExceeded`). The load goes on and fills the cache.
//!
//! # What the peer port answers to bad input
//!
//! Nothing on the peer port panics on input. Each refusal is counted: `reason` is the label
//! of `shoal_peer_bad_requests_total{protocol, reason}` (and `result="bad_request"` of
//! `shoal_peer_requests_total`), unless the table says otherwise.
//!
//! | request | HTTP (native, groupcache) | gRPC | counted as |
//! |---|---|---|---|
//! | no group, empty group, group not UTF-8, bad `%` escape, nothing after the base path | `400` | — | `malformed_path` |
//! | key longer than [`MAX_KEY_BYTES`] (16 KiB) | `414` | `InvalidArgument` | `key_too_long` |
//! | request URI over 64 KiB, or a head hyper cannot parse | `414`/`431`/`400` (by hyper) | — | `unparsable` (`protocol="http"`) |
//! | method other than `GET`, `HEAD`, `DELETE` (a remove) | `405`, `Allow: GET, HEAD, DELETE` | — | `method` |
//! | path outside `/_galaxycache/`, `/_galaxycache_peek/`, `/_groupcache/` | `404 not a peer path` | `Unimplemented` (unknown method) | `unknown_path` / `unknown_method` |
//! | `X-Shoal-Deadline-Ms` not a number, or a malformed `grpc-timeout` | `400` | `InvalidArgument` | `bad_deadline` |
//! | protobuf that does not decode | — | `InvalidArgument` (tonic's `Internal`, rewritten) | `bad_protobuf` |
//! | gRPC message over 64 KiB | — | `OutOfRange` (tonic) | `too_large` |
//! | unknown group | native: `404` + `X-Galaxycache-Galaxy-Status: Not Found`; groupcache: `404 no such group: <g>` | `InvalidArgument` `no such galaxy: <g>` | `shoal_peer_requests_total{result="unknown_group"}` |
//! | missing or wrong shared secret (checked first) | `401` | `Unauthenticated` | `shoal_peer_auth_failures_total{protocol}` |
//! | no or a bad client certificate (mTLS), or no TLS on a TLS port | the TLS handshake fails | same | `shoal_peer_auth_failures_total{protocol="tls"}` |
//!
//! For contrast, the answers to good requests: `200` with the value; a key that does not
//! exist `404` (native: `X-Galaxycache-Galaxy-Status: Found`; groupcache: body `not found`),
//! gRPC `NotFound`; a load error `500` (native: `504` for a load timeout), gRPC
//! `Unavailable`/`Unknown`/`DeadlineExceeded`; a propagated deadline that passed `504`
//! (gRPC: `DeadlineExceeded`).
//!
//! ```
//! use std::net::SocketAddr;
//! use bytes::Bytes;
//! use shoal_cache::{Group, Loaded, loader_fn};
//! use shoal_cluster::Cluster;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let me = format!("http://{}", listener.local_addr()?);
//! // A one-member cluster; list every member (this one included) in the same order on all.
//! let cluster = Cluster::builder(me.as_str()).build(&[me.as_str()])?;
//! let group = cluster.group(
//!     Group::builder("squares", 1 << 20),
//!     loader_fn(|key: Bytes| async move { Ok(Loaded::new([&key[..], &key[..]].concat())) }),
//! )?;
//! let server = cluster.serve_on(listener)?;
//!
//! assert_eq!(group.get(b"ab").await?, "abab");
//! assert_eq!(cluster.owner(b"ab").as_deref(), Some(me.as_str()));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Where things live: `cluster.rs` (the Cluster and its settings), `view.rs` (the ring
//! snapshot and [`shoal_cache::Peers`]), `membership/` (one file or folder per source, plus
//! `publish.rs`), `transport/` (one file per
//! protocol, the connector, escaping and expiry on the wire), `server.rs` (the peer port),
//! `auth.rs`, `tls.rs`, `handoff.rs`, `metrics.rs`.
#![warn(missing_docs)]

mod auth;
mod cluster;
mod error;
mod groups;
mod handoff;
mod membership;
pub mod metrics;
mod server;
mod tls;
mod transport;
mod url;
mod view;

/// The galaxycache protobuf messages and gRPC stubs (generated by `build.rs`).
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms,
    unreachable_pub
)]
pub(crate) mod pb {
    tonic::include_proto!("galaxycachepb");
}

/// The longest key a peer port accepts (16 KiB), over every protocol. Percent-encoded, the
/// longest key still fits in hyper's 64 KiB limit on an HTTP/1.1 request URI, so the peer
/// port answers it (and counts it) itself. Clients do not send longer keys to peers.
pub const MAX_KEY_BYTES: usize = 16 << 10;

/// The request header in which the native and groupcache clients send the time the caller
/// still waits, in milliseconds; the server stops waiting for its load when it passes.
pub const DEADLINE_HEADER: &str = "x-shoal-deadline-ms";

pub use auth::Secret;
pub use cluster::{
    Cluster, ClusterBuilder, DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_VALUE_BYTES, Removal,
};
pub use error::{ClusterError, Origin, PeerError};
pub use handoff::{Handoff, HandoffLoader};
pub use membership::{
    Backoff, Condition, DnsConfig, DnsMembership, DnsRecords, FileMembership, GceConfig,
    GceDiscovery, GceIni, GossipConfig, GossipMembership, MemberInfo, MemberSet, MemberState,
    Membership, MembershipError, Publisher, StaticMembership,
};
#[cfg(feature = "etcd")]
pub use membership::{EtcdConfig, EtcdMembership};
pub use server::PeerServer;
pub use shoal_ring::Algorithm;
pub use tls::TlsConfig;
pub use transport::{PeerClient, Protocol};
pub use url::{PeerUrl, Scheme};
