//! Metric names and pre-resolved handles (through the `metrics` facade; the binary installs
//! the Prometheus exporter).
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `shoal_peer_requests_total` | counter | `direction="made"`, `peer`, `result`; or `direction="served"`, `protocol`, `result` |
//! | `shoal_peer_request_duration_seconds` | histogram | `direction`, and `peer` or `protocol` |
//! | `shoal_peer_value_bytes_total` | counter | bytes of values received (`direction="made"`, `peer`) or sent (`direction="served"`, `protocol`) in successful answers |
//! | `shoal_peer_auth_failures_total` | counter | `protocol` (`tls` for failed handshakes) |
//! | `shoal_peer_bad_requests_total` | counter | `protocol` (or `http` for unparsable requests), `reason` ([`BadRequest::label`]) |
//! | `shoal_peer_handoff_hits_total` | counter | `group` |
//! | `shoal_peer_handoff_misses_total` | counter | `group` |
//! | `shoal_peer_up` | gauge | `peer`: 1 after an answer, 0 after a failed connection |
//! | `shoal_peer_members` | gauge | the number of members in the current ring |
//!
//! `result` is `ok`, `not_found` or an error label ([`PeerError::label`]); served requests
//! are also `removed` (a remove, `Cluster::remove`), `unknown_group`, `deadline_exceeded`
//! (the caller's propagated deadline passed),
//! `bad_request` (also counted in `shoal_peer_bad_requests_total`) or `error`.
//!
//! Membership metrics are in [`membership`].

pub mod membership;

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use shoal_cache::Loaded;

use crate::PeerError;

/// Requests made and answered.
pub const REQUESTS: &str = "shoal_peer_requests_total";
/// Request latency.
pub const DURATION: &str = "shoal_peer_request_duration_seconds";
/// Value bytes moved by successful answers.
pub const VALUE_BYTES: &str = "shoal_peer_value_bytes_total";
/// Requests refused for a missing or wrong secret.
pub const AUTH_FAILURES: &str = "shoal_peer_auth_failures_total";
/// Requests refused as malformed, by reason.
pub const BAD_REQUESTS: &str = "shoal_peer_bad_requests_total";
/// Values found on the previous owner during warm handoff.
pub const HANDOFF_HITS: &str = "shoal_peer_handoff_hits_total";
/// Handoff peeks that found nothing (or failed).
pub const HANDOFF_MISSES: &str = "shoal_peer_handoff_misses_total";
/// Whether a peer answered its last request.
pub const UP: &str = "shoal_peer_up";
/// Members in the ring.
pub const MEMBERS: &str = "shoal_peer_members";

const ERROR_LABELS: [&str; 6] = [
    "connect_error",
    "timeout",
    "unauthorized",
    "unknown_group",
    "error",
    "bad_reply",
];

/// Handles for requests this node makes to one peer.
#[derive(Debug, Clone)]
pub(crate) struct Made {
    ok: Counter,
    not_found: Counter,
    errors: [Counter; 6],
    bytes: Counter,
    duration: Histogram,
    up: Gauge,
}

impl Made {
    pub(crate) fn new(peer: &str) -> Self {
        let c = |result: &'static str| counter!(REQUESTS, "direction" => "made", "peer" => peer.to_owned(), "result" => result);
        Made {
            ok: c("ok"),
            not_found: c("not_found"),
            errors: ERROR_LABELS.map(c),
            bytes: counter!(VALUE_BYTES, "direction" => "made", "peer" => peer.to_owned()),
            duration: histogram!(DURATION, "direction" => "made", "peer" => peer.to_owned()),
            up: gauge!(UP, "peer" => peer.to_owned()),
        }
    }

    pub(crate) fn record(&self, result: &Result<Loaded, PeerError>, took: Duration) {
        self.duration.record(took.as_secs_f64());
        match result {
            Ok(loaded) => {
                self.ok.increment(1);
                self.bytes.increment(loaded.value.len() as u64);
            }
            Err(PeerError::NotFound) => self.not_found.increment(1),
            Err(e) => {
                let i = ERROR_LABELS
                    .iter()
                    .position(|l| *l == e.label())
                    .unwrap_or(4);
                self.errors[i].increment(1);
            }
        }
        match result {
            Err(PeerError::Connect { .. } | PeerError::Timeout { .. }) => self.up.set(0.0),
            _ => self.up.set(1.0),
        }
    }
}

/// Handles for requests this node serves over one protocol.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    ok: Counter,
    not_found: Counter,
    removed: Counter,
    unknown_group: Counter,
    bad_request: Counter,
    deadline: Counter,
    error: Counter,
    bad: [Counter; BadRequest::ALL.len()],
    pub(crate) auth_failures: Counter,
    bytes: Counter,
    duration: Histogram,
}

/// The outcome of a served request, for [`Served::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A value of this many bytes was sent.
    Ok(usize),
    NotFound,
    /// A remove (`DELETE`), whether the key was there or not.
    Removed,
    UnknownGroup,
    BadRequest,
    Deadline,
    Error,
}

/// Why the peer port refused a request as malformed (`reason` of
/// `shoal_peer_bad_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// No group, an empty group name, a group that is not UTF-8, or a bad `%` escape.
    MalformedPath,
    /// A key longer than [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES).
    KeyTooLong,
    /// A method other than `GET` or `HEAD` on an HTTP protocol.
    Method,
    /// A path that is not a peer path (peer ports serve no client traffic).
    UnknownPath,
    /// An `X-Shoal-Deadline-Ms` header that is not a number of milliseconds, or a
    /// malformed `grpc-timeout`.
    BadDeadline,
    /// A gRPC request whose protobuf does not decode.
    BadProtobuf,
    /// A gRPC request larger than the server accepts.
    TooLarge,
    /// A gRPC method the `GalaxyCache` service does not have.
    UnknownMethod,
    /// A request hyper could not parse (a URI over 64 KiB, a head too large, bad syntax).
    Unparsable,
}

impl BadRequest {
    const ALL: [BadRequest; 9] = [
        BadRequest::MalformedPath,
        BadRequest::KeyTooLong,
        BadRequest::Method,
        BadRequest::UnknownPath,
        BadRequest::BadDeadline,
        BadRequest::BadProtobuf,
        BadRequest::TooLarge,
        BadRequest::UnknownMethod,
        BadRequest::Unparsable,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            BadRequest::MalformedPath => "malformed_path",
            BadRequest::KeyTooLong => "key_too_long",
            BadRequest::Method => "method",
            BadRequest::UnknownPath => "unknown_path",
            BadRequest::BadDeadline => "bad_deadline",
            BadRequest::BadProtobuf => "bad_protobuf",
            BadRequest::TooLarge => "too_large",
            BadRequest::UnknownMethod => "unknown_method",
            BadRequest::Unparsable => "unparsable",
        }
    }
}

/// The counter of requests hyper refused before they reached a protocol.
pub(crate) fn unparsable() -> Counter {
    counter!(BAD_REQUESTS, "protocol" => "http", "reason" => BadRequest::Unparsable.label())
}

impl Served {
    pub(crate) fn new(protocol: &'static str) -> Self {
        let c = |result: &'static str| counter!(REQUESTS, "direction" => "served", "protocol" => protocol, "result" => result);
        Served {
            ok: c("ok"),
            not_found: c("not_found"),
            removed: c("removed"),
            unknown_group: c("unknown_group"),
            bad_request: c("bad_request"),
            deadline: c("deadline_exceeded"),
            error: c("error"),
            bad: BadRequest::ALL
                .map(|r| counter!(BAD_REQUESTS, "protocol" => protocol, "reason" => r.label())),
            auth_failures: counter!(AUTH_FAILURES, "protocol" => protocol),
            bytes: counter!(VALUE_BYTES, "direction" => "served", "protocol" => protocol),
            duration: histogram!(DURATION, "direction" => "served", "protocol" => protocol),
        }
    }

    pub(crate) fn record(&self, outcome: Outcome, took: Duration) {
        self.duration.record(took.as_secs_f64());
        if let Outcome::Ok(bytes) = outcome {
            self.bytes.increment(bytes as u64);
        }
        match outcome {
            Outcome::Ok(_) => &self.ok,
            Outcome::NotFound => &self.not_found,
            Outcome::Removed => &self.removed,
            Outcome::UnknownGroup => &self.unknown_group,
            Outcome::BadRequest => &self.bad_request,
            Outcome::Deadline => &self.deadline,
            Outcome::Error => &self.error,
        }
        .increment(1);
    }

    /// Count a request refused as malformed, for `reason`.
    pub(crate) fn reject(&self, reason: BadRequest, took: Duration) {
        self.record(Outcome::BadRequest, took);
        if let Some(i) = BadRequest::ALL.iter().position(|r| *r == reason) {
            self.bad[i].increment(1);
        }
    }
}
