//! TLS material for the client front (HTTPS with ALPN `h2`, `http/1.1`) and for `https://`
//! origins. rustls with the aws-lc-rs provider, named explicitly as shoal-cluster does, so
//! no process-wide default provider has to be installed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate, key or CA file that cannot be used, with the file named.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {why}", file.display())]
pub struct TlsFileError {
    file: PathBuf,
    why: String,
}

impl TlsFileError {
    fn new(file: &Path, why: impl ToString) -> Self {
        TlsFileError {
            file: file.to_owned(),
            why: why.to_string(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(file: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(file).map_err(|e| TlsFileError::new(file, format!("cannot read: {e}")))
}

/// Every certificate in the PEM file `file`; at least one.
pub fn load_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let pem = read(file)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsFileError::new(file, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsFileError::new(
            file,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        ));
    }
    Ok(certs)
}

/// The front's server configuration from a PEM certificate chain and its PEM private key
/// (PKCS#8, PKCS#1 or SEC1). ALPN offers `h2` then `http/1.1`.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsFileError> {
    let chain = load_certs(cert_file)?;
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsFileError::new(key_file, format!("no usable PEM private key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::new(cert_file, e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsFileError::new(
                key_file,
                format!("does not fit {}: {e}", cert_file.display()),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

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
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = server_config(&missing, &junk).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("cannot read"),
            "{e}"
        );
        let e = server_config(&junk, &junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no PEM certificate"),
            "{e}"
        );

        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        let e = server_config(&cert, &junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem") && e.contains("private key"), "{e}");
        let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
        let e = server_config(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("key.pem") && e.contains("cert.pem"), "{e}");
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let c = server_config(&cert, &key).unwrap();
        assert_eq!(c.alpn_protocols[0], b"h2");

        assert!(!origin_roots(None).unwrap().is_empty());
        let roots = origin_roots(Some(&cert)).unwrap();
        assert!(origin_client_config(roots).is_ok());
        assert!(origin_roots(Some(&junk)).is_err());
    }
}
