//! Metric names and pre-resolved handles (through the `metrics` facade; the binary installs
//! the Prometheus exporter).
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `shoal_peer_requests_total` | counter | `direction="made"`, `peer`, `result`; or `direction="served"`, `protocol`, `result` |
//! | `shoal_peer_request_duration_seconds` | histogram | `direction`, and `peer` or `protocol` |
//! | `shoal_peer_auth_failures_total` | counter | `protocol` |
//! | `shoal_peer_handoff_hits_total` | counter | `group` |
//! | `shoal_peer_handoff_misses_total` | counter | `group` |
//! | `shoal_peer_up` | gauge | `peer`: 1 after an answer, 0 after a failed connection |
//! | `shoal_peer_members` | gauge | the number of members in the current ring |
//!
//! `result` is `ok`, `not_found` or an error label ([`PeerError::label`]).
//!
//! Membership metrics are in [`membership`].

pub mod membership;

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::PeerError;

/// Requests made and answered.
pub const REQUESTS: &str = "shoal_peer_requests_total";
/// Request latency.
pub const DURATION: &str = "shoal_peer_request_duration_seconds";
/// Requests refused for a missing or wrong secret.
pub const AUTH_FAILURES: &str = "shoal_peer_auth_failures_total";
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
            duration: histogram!(DURATION, "direction" => "made", "peer" => peer.to_owned()),
            up: gauge!(UP, "peer" => peer.to_owned()),
        }
    }

    pub(crate) fn record<T>(&self, result: &Result<T, PeerError>, took: Duration) {
        self.duration.record(took.as_secs_f64());
        match result {
            Ok(_) => self.ok.increment(1),
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
    unknown_group: Counter,
    bad_request: Counter,
    error: Counter,
    pub(crate) auth_failures: Counter,
    duration: Histogram,
}

/// The outcome of a served request, for [`Served::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    NotFound,
    UnknownGroup,
    BadRequest,
    Error,
}

impl Served {
    pub(crate) fn new(protocol: &'static str) -> Self {
        let c = |result: &'static str| counter!(REQUESTS, "direction" => "served", "protocol" => protocol, "result" => result);
        Served {
            ok: c("ok"),
            not_found: c("not_found"),
            unknown_group: c("unknown_group"),
            bad_request: c("bad_request"),
            error: c("error"),
            auth_failures: counter!(AUTH_FAILURES, "protocol" => protocol),
            duration: histogram!(DURATION, "direction" => "served", "protocol" => protocol),
        }
    }

    pub(crate) fn record(&self, outcome: Outcome, took: Duration) {
        self.duration.record(took.as_secs_f64());
        match outcome {
            Outcome::Ok => &self.ok,
            Outcome::NotFound => &self.not_found,
            Outcome::UnknownGroup => &self.unknown_group,
            Outcome::BadRequest => &self.bad_request,
            Outcome::Error => &self.error,
        }
        .increment(1);
    }
}
