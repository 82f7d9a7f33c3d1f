//! The gossip packet envelope: a magic, a version, an optional HMAC-SHA256 tag over the
//! rest (a shared key authenticates every packet; packets are not encrypted), then foca's
//! payload.
//!
//! ```text
//! "SG" | version 1 | flags (1 = tagged) | [32-byte tag] | payload
//! ```

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const MAGIC: &[u8; 2] = b"SG";
const VERSION: u8 = 1;
const TAGGED: u8 = 1;
const HEADER: usize = 4;
const TAG: usize = 32;

/// Why a packet was dropped (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not a shoal gossip packet (wrong magic, version or length).
    Garbage,
    /// Missing, extra or wrong authentication tag.
    BadKey,
}

impl Reject {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reject::Garbage => "garbage",
            Reject::BadKey => "bad_key",
        }
    }
}

/// Seals and opens packets with an optional shared key.
#[derive(Clone)]
pub(crate) struct Sealer {
    key: Option<Hmac<Sha256>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Sealer {
    pub(crate) fn new(key: Option<&[u8]>) -> Self {
        // HMAC accepts keys of any length, so this never fails.
        let key = key.and_then(|k| <Hmac<Sha256> as KeyInit>::new_from_slice(k).ok());
        Sealer { key }
    }

    /// Overhead added to each payload.
    pub(crate) fn overhead(&self) -> usize {
        HEADER + if self.key.is_some() { TAG } else { 0 }
    }

    pub(crate) fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.overhead() + payload.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        match &self.key {
            Some(key) => {
                out.push(TAGGED);
                let mut mac = key.clone();
                mac.update(payload);
                out.extend_from_slice(&mac.finalize().into_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(payload);
        out
    }

    /// The payload of a packet, if it is well formed and authenticated.
    pub(crate) fn open<'a>(&self, packet: &'a [u8]) -> Result<&'a [u8], Reject> {
        if packet.len() < HEADER || &packet[..2] != MAGIC || packet[2] != VERSION {
            return Err(Reject::Garbage);
        }
        let tagged = packet[3] == TAGGED;
        match (&self.key, tagged) {
            (None, false) => Ok(&packet[HEADER..]),
            (Some(key), true) => {
                let rest = &packet[HEADER..];
                if rest.len() < TAG {
                    return Err(Reject::BadKey);
                }
                let (tag, payload) = rest.split_at(TAG);
                let mut mac = key.clone();
                mac.update(payload);
                mac.verify_slice(tag).map_err(|_| Reject::BadKey)?;
                Ok(payload)
            }
            _ => Err(Reject::BadKey),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_what_it_seals_and_rejects_the_rest() {
        let plain = Sealer::new(None);
        let keyed = Sealer::new(Some(b"secret"));
        let other = Sealer::new(Some(b"other"));
        assert_eq!(plain.open(&plain.seal(b"hi")), Ok(&b"hi"[..]));
        assert_eq!(keyed.open(&keyed.seal(b"hi")), Ok(&b"hi"[..]));
        assert_eq!(other.open(&keyed.seal(b"hi")), Err(Reject::BadKey));
        assert_eq!(plain.open(&keyed.seal(b"hi")), Err(Reject::BadKey));
        assert_eq!(keyed.open(&plain.seal(b"hi")), Err(Reject::BadKey));
        assert_eq!(keyed.open(b"garbage!"), Err(Reject::Garbage));
        assert_eq!(keyed.open(b""), Err(Reject::Garbage));
        let mut tampered = keyed.seal(b"hi");
        if let Some(b) = tampered.last_mut() {
            *b ^= 1;
        }
        assert_eq!(keyed.open(&tampered), Err(Reject::BadKey));
    }
}
