//! TLS material for `https://` origins; the client front's (HTTPS with ALPN `h2`,
//! `http/1.1`) comes from shoal-tls, shared with `shoal route`, and is re-exported here.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
pub use shoal_tls::{CertFiles, TlsFileError, load_certs, server_config};

/// The trust anchors of `https://` origins: [`shoal_tls::client_roots`].
pub fn origin_roots(extra_ca: Option<&Path>) -> Result<RootCertStore, TlsFileError> {
    shoal_tls::client_roots(extra_ca)
}

/// A client configuration for origins trusting `roots`: [`shoal_tls::client_config`].
pub fn origin_client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    shoal_tls::client_config(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_roots_take_the_system_store_and_a_private_ca() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all").unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        assert!(!origin_roots(None).unwrap().is_empty());
        let roots = origin_roots(Some(&cert)).unwrap();
        assert!(origin_client_config(roots).is_ok());
        let e = origin_roots(Some(&junk)).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
    }
}
