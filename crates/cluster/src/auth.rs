//! The shared secret that peers present to each other.
//!
//! Every peer request carries `Authorization: Bearer <secret>`, and a server with a secret
//! refuses requests without it (HTTP 401, gRPC `Unauthenticated`) before any other work.
//! The comparison takes the same time wherever the first difference is (`subtle`). Send the
//! secret over TLS, or it can be read off the wire; combine it with mTLS where the network
//! is not trusted.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use subtle::ConstantTimeEq;

use crate::ClusterError;

/// A cluster's shared secret. Its `Debug` form does not show it.
#[derive(Clone)]
pub struct Secret {
    bytes: Arc<[u8]>,
    header: HeaderValue,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret of printable ASCII (no spaces), at least 16 characters long.
    pub fn new(secret: &str) -> Result<Secret, ClusterError> {
        let bad = |expected: &str| ClusterError::BadValue {
            key: "peer secret",
            value: "(hidden)".into(),
            expected: expected.into(),
        };
        if secret.len() < 16 {
            return Err(bad("at least 16 characters"));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("printable ASCII without spaces"));
        }
        let mut header = HeaderValue::try_from(format!("Bearer {secret}"))
            .map_err(|_| bad("printable ASCII without spaces"))?;
        header.set_sensitive(true);
        Ok(Secret {
            bytes: secret.as_bytes().into(),
            header,
        })
    }

    /// The `Authorization` header value a client sends.
    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// Whether `headers` carry this secret.
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        else {
            return false;
        };
        given.ct_eq(&self.bytes).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_the_exact_secret() {
        let s = Secret::new("0123456789abcdef-x").unwrap();
        let mut h = HeaderMap::new();
        assert!(!s.admits(&h));
        h.insert(AUTHORIZATION, s.header().clone());
        assert!(s.admits(&h));
        for wrong in [
            "Bearer 0123456789abcdef-y",
            "Bearer 0123456789abcdef",
            "0123456789abcdef-x",
        ] {
            h.insert(AUTHORIZATION, HeaderValue::from_static(wrong));
            assert!(!s.admits(&h), "{wrong}");
        }
        assert!(!format!("{s:?}").contains("0123"));
    }

    #[test]
    fn refuses_weak_or_unsendable_secrets() {
        assert!(Secret::new("short").is_err());
        assert!(Secret::new("has a space in it, long enough").is_err());
        assert!(Secret::new("ünïcödé-ünïcödé-ünïcödé").is_err());
    }
}
