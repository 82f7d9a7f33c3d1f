//! Membership metrics.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `shoal_members` | gauge | `state` (`alive`, `suspect`, `down`, `left`) |
//! | `shoal_membership_changes_total` | counter | `source` (`gossip`, `etcd`, `dns`, `gce`, ...) |
//! | `shoal_ring_version` | gauge | — (the version of the ring in use) |
//! | `shoal_gossip_packets_total` | counter | `direction` (`in`, `out`) |
//! | `shoal_gossip_bytes_total` | counter | `direction` |
//! | `shoal_gossip_bad_packets_total` | counter | `reason` (`garbage`, `bad_key`, `undecodable`) |
//! | `shoal_gossip_suspicions_total` | counter | — (a member seen turning suspect) |
//! | `shoal_gossip_local_health` | gauge | — (Lifeguard's local health multiplier, 0 = healthy) |
//! | `shoal_etcd_errors_total` | counter | `op` (`connect`, `register`, `list`, `watch`, `keepalive`) |
//! | `shoal_etcd_reconnects_total` | counter | — |
//! | `shoal_etcd_relists_total` | counter | `reason` (`compacted`, `cancelled`: the watch ended, the prefix was listed again) |
//! | `shoal_membership_bad_values_total` | counter | `source` (a value that is not a peer URL, a GCE answer missing fields) |

use metrics::{counter, gauge};

use crate::membership::{MemberInfo, MemberState};

/// Members by state.
pub const MEMBERS: &str = "shoal_members";
/// Member set changes published.
pub const CHANGES: &str = "shoal_membership_changes_total";
/// The version of the ring in use.
pub const RING_VERSION: &str = "shoal_ring_version";
/// Gossip packets.
pub const GOSSIP_PACKETS: &str = "shoal_gossip_packets_total";
/// Gossip bytes.
pub const GOSSIP_BYTES: &str = "shoal_gossip_bytes_total";
/// Gossip packets dropped.
pub const GOSSIP_BAD: &str = "shoal_gossip_bad_packets_total";
/// Members seen turning suspect.
pub const GOSSIP_SUSPICIONS: &str = "shoal_gossip_suspicions_total";
/// Lifeguard's local health multiplier.
pub const GOSSIP_HEALTH: &str = "shoal_gossip_local_health";
/// etcd failures.
pub const ETCD_ERRORS: &str = "shoal_etcd_errors_total";
/// etcd reconnects (a new session after a failure).
pub const ETCD_RECONNECTS: &str = "shoal_etcd_reconnects_total";
/// Watches that etcd compacted or cancelled, answered by listing the prefix again.
pub const ETCD_RELISTS: &str = "shoal_etcd_relists_total";
/// Values from a discovery source that were ignored.
pub const BAD_VALUES: &str = "shoal_membership_bad_values_total";

const STATES: [MemberState; 4] = [
    MemberState::Alive,
    MemberState::Suspect,
    MemberState::Down,
    MemberState::Left,
];

pub(crate) fn set_states(states: &[MemberInfo]) {
    for s in STATES {
        let n = states.iter().filter(|i| i.state == s).count();
        gauge!(MEMBERS, "state" => s.as_str()).set(n as f64);
    }
}

pub(crate) fn changed(source: &'static str) {
    counter!(CHANGES, "source" => source).increment(1);
}

pub(crate) fn ring_version(v: u64) {
    gauge!(RING_VERSION).set(v as f64);
}

pub(crate) fn gossip_packet(direction: &'static str, bytes: usize) {
    counter!(GOSSIP_PACKETS, "direction" => direction).increment(1);
    counter!(GOSSIP_BYTES, "direction" => direction).increment(bytes as u64);
}

pub(crate) fn gossip_bad(reason: &'static str) {
    counter!(GOSSIP_BAD, "reason" => reason).increment(1);
}

pub(crate) fn suspicion() {
    counter!(GOSSIP_SUSPICIONS).increment(1);
}

pub(crate) fn local_health(lhm: u32) {
    gauge!(GOSSIP_HEALTH).set(f64::from(lhm));
}

#[cfg(feature = "etcd")]
pub(crate) fn etcd_error(op: &'static str) {
    counter!(ETCD_ERRORS, "op" => op).increment(1);
}

#[cfg(feature = "etcd")]
pub(crate) fn etcd_reconnect() {
    counter!(ETCD_RECONNECTS).increment(1);
}

#[cfg(feature = "etcd")]
pub(crate) fn etcd_relist(reason: &'static str) {
    counter!(ETCD_RELISTS, "reason" => reason).increment(1);
}

pub(crate) fn bad_value(source: &'static str) {
    counter!(BAD_VALUES, "source" => source).increment(1);
}
