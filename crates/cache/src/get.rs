//! What a `get` asks for ([`GetOptions`]) and what it answers ([`Got`]).

use bytes::Bytes;
use tokio::time::Instant;

/// How far a get may go to find a value.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FetchMode {
    /// Memory, then the owning peer (if another member owns the key), then the loader.
    #[default]
    Regular,
    /// Memory, then the loader; never a peer. Use it to serve a peer's request, so that
    /// members with different views of the ring cannot forward to each other in a loop.
    /// Such gets never join a `Regular` flight (which may be waiting on a peer).
    LocalOnly,
    /// Memory only; a miss is `NotFound`.
    Peek,
}

/// Options of one get.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// How far to go.
    pub mode: FetchMode,
}

impl GetOptions {
    /// Options with `mode`.
    pub fn new(mode: FetchMode) -> Self {
        GetOptions { mode }
    }
}

impl From<FetchMode> for GetOptions {
    fn from(mode: FetchMode) -> Self {
        GetOptions::new(mode)
    }
}

/// Where a value came from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// This node's main cache (keys it owns).
    MainCache,
    /// This node's hot cache (popular keys owned elsewhere).
    HotCache,
    /// Fetched from the owning peer.
    Peer,
    /// Produced by the group's loader.
    Load,
}

/// A value with where it came from, as returned by
/// [`Group::get_with`](crate::Group::get_with).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    /// The value.
    pub value: Bytes,
    /// When it expires, if it does.
    pub expires: Option<Instant>,
    /// Where the flight that produced it found it (for a cache hit, the tier).
    pub source: Source,
    /// Whether this get joined a flight another caller had started, rather than starting
    /// it or hitting a cache.
    pub joined: bool,
    /// The value is past its expiry: it was kept for
    /// [`GroupBuilder::stale_if_error`](crate::GroupBuilder::stale_if_error) and is given
    /// because a refresh failed (here, or at the owning peer, which answered with its stale
    /// value). `source` says where it was kept.
    pub stale: bool,
}
