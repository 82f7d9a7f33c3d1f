//! TLS material for `https://` origins; the client front's (HTTPS with ALPN `h2`,
//! `http/1.1`) comes from shoal-tls, shared with `shoal route`, and is re-exported here.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use shoal_tls::provider;
pub use shoal_tls::{CertFiles, TlsFileError, load_certs, server_config};

/// The trust anchors of `https://` origins: the system's CA store (as `SSL_CERT_FILE` /
/// `SSL_CERT_DIR` or the distribution's bundle say), else Mozilla's roots compiled in;
/// plus every certificate of `extra_ca`, for origins with a private CA.
pub fn origin_roots(extra_ca: Option<&Path>) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(file) = extra_ca {
        for cert in load_certs(file)? {
            roots
                .add(cert)
                .map_err(|e| TlsFileError::new(file, format!("not a usable CA: {e}")))?;
        }
    }
    Ok(roots)
}

/// A client configuration for origins trusting `roots`. It names no ALPN protocols: the
/// HTTP client that uses it offers those it speaks.
pub fn origin_client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
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
