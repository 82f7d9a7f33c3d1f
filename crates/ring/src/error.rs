//! The one error type of this crate: every way a member list or a vBucket map can be wrong.

/// Why a ring could not be built. Every message names the offending value.
///
/// All of these are configuration errors: retrying with the same input cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// No members were given.
    #[error("empty member list: a ring needs at least one member")]
    Empty,
    /// A member string does not have the expected shape.
    #[error("malformed member: {expected} expected, got {got:?}")]
    MalformedMember {
        /// What a member of this algorithm looks like, e.g. `"host:port[:weight]"`.
        expected: &'static str,
        /// The member exactly as given.
        got: String,
    },
    /// The port of a `host:port` member is not a number from 1 to 65535.
    #[error("bad port {port:?} in member {member:?}: expected a number from 1 to 65535")]
    BadPort {
        /// The member exactly as given.
        member: String,
        /// The port text.
        port: String,
    },
    /// The weight of a member is zero or not a number.
    #[error(
        "bad weight {weight:?} in member {member:?}: expected a whole number from 1 to 4294967295"
    )]
    BadWeight {
        /// The member exactly as given.
        member: String,
        /// The weight text.
        weight: String,
    },
    /// The same member (or the same server, or the same twemproxy name) appears twice.
    #[error("duplicate member {member:?}: each member may appear only once")]
    DuplicateMember {
        /// The repeated member (its identity: `host:port`, URL, shard or name).
        member: String,
    },
    /// An algorithm name that is not one of [`Algorithm::ALL`](crate::Algorithm::ALL).
    #[error("unknown algorithm {name:?}: expected one of {expected}")]
    UnknownAlgorithm {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        expected: String,
    },
    /// A twemproxy `hash:` name that is not one of
    /// [`TwemproxyHash::ALL`](crate::TwemproxyHash::ALL).
    #[error("unknown twemproxy hash {name:?}: expected one of {expected}")]
    UnknownHash {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        expected: String,
    },
    /// `build(Algorithm::Vbucket, ..)`: a vBucket ring comes from a map, not a member list.
    #[error(
        "the vbucket algorithm needs a vBucket map (serverList + vBucketMap JSON), not a member \
         list: use VBucketMap::from_json"
    )]
    VBucketMapRequired,
    /// The vBucket map JSON could not be parsed.
    #[error("bad vBucket map JSON: {0}")]
    VBucketJson(String),
    /// `serverList` is empty.
    #[error("bad vBucket map: serverList is empty")]
    VBucketNoServers,
    /// `vBucketMap` (or `vBucketMapForward`) has a number of entries that is not a power of two
    /// from 1 to 65536.
    #[error(
        "bad vBucket map: {field} has {count} entries, expected a power of two from 1 to 65536"
    )]
    VBucketCount {
        /// `vBucketMap` or `vBucketMapForward`.
        field: &'static str,
        /// The number of entries found.
        count: usize,
    },
    /// An entry names a server index past the end of `serverList` (or below -1).
    #[error(
        "bad vBucket map: {field}[{vbucket}] names server {index}, but serverList has \
         {servers} servers (valid: -1 for none, or 0..{servers})"
    )]
    VBucketServerIndex {
        /// `vBucketMap` or `vBucketMapForward`.
        field: &'static str,
        /// The vBucket whose entry is wrong.
        vbucket: usize,
        /// The index found.
        index: i64,
        /// The length of `serverList`.
        servers: usize,
    },
    /// An entry does not have `numReplicas + 1` server indices.
    #[error(
        "bad vBucket map: {field}[{vbucket}] has {got} server indices, but numReplicas \
         {num_replicas} means {expected}"
    )]
    VBucketReplicas {
        /// `vBucketMap` or `vBucketMapForward`.
        field: &'static str,
        /// The vBucket whose entry is wrong.
        vbucket: usize,
        /// The number of indices found.
        got: usize,
        /// `numReplicas + 1`.
        expected: usize,
        /// `numReplicas` as given.
        num_replicas: u64,
    },
    /// `numReplicas` is above libvbucket's limit of 4.
    #[error("bad vBucket map: numReplicas is {0}, at most 4 are supported")]
    VBucketTooManyReplicas(u64),
    /// `vBucketMapForward` has a different number of entries than `vBucketMap`.
    #[error("bad vBucket map: vBucketMapForward has {forward} entries but vBucketMap has {map}")]
    VBucketForwardLength {
        /// Entries in `vBucketMapForward`.
        forward: usize,
        /// Entries in `vBucketMap`.
        map: usize,
    },
    /// A ring with zero virtual points per member.
    #[error("bad replicas {0}: a ring needs at least 1 point per member")]
    BadReplicas(usize),
    /// A bounded-load factor that is not a finite number of at least 1 (kept as text so that
    /// the error stays `Eq`).
    #[error("bad load factor {0}: bounded loads need a finite factor c >= 1 (1.25 is usual)")]
    BadLoadFactor(String),
}
