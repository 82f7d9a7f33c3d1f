//! HTTPS on shoal's HTTP fronts (`shoal serve`, `shoal route`): the server configuration from
//! a PEM certificate chain and key ([`server_config`]), and the step between accepting a TCP
//! connection and serving HTTP on it ([`accept`]). rustls with the aws-lc-rs provider, named
//! explicitly ([`provider`]), so no process-wide default provider has to be installed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A certificate, key or CA file that cannot be used, with the file named.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {why}", file.display())]
pub struct TlsFileError {
    file: PathBuf,
    why: String,
}

impl TlsFileError {
    /// `file` cannot be used, because `why`.
    pub fn new(file: &Path, why: impl ToString) -> Self {
        TlsFileError {
            file: file.to_owned(),
            why: why.to_string(),
        }
    }
}

/// The crypto provider of every shoal TLS configuration: aws-lc-rs.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
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

/// A front's server configuration from a PEM certificate chain and its PEM private key
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

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Turns a new connection on an HTTPS port into TLS. `first` is its first byte, already
/// peeked. A client speaking plain HTTP gets a 400 telling it to use an `https://` URL
/// (rather than a reset it cannot explain) and `None`, counted in
/// `shoal_http_plain_on_tls_total`; a handshake that fails or takes longer than `within`
/// gives `None`, counted in `shoal_http_tls_handshake_errors_total`.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &TlsAcceptor,
    io: S,
    first: u8,
    within: Duration,
    peer: SocketAddr,
) -> Option<TlsStream<S>> {
    if first != TLS_HANDSHAKE_RECORD {
        refuse_plain_http(io).await;
        return None;
    }
    match tokio::time::timeout(within, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            metrics::counter!("shoal_http_tls_handshake_errors_total").increment(1);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics::counter!("shoal_http_tls_handshake_errors_total").increment(1);
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

const PLAIN_BODY: &str = "this port speaks HTTPS: use an https:// URL\n";

/// Answers 400 and closes; bounded in time and bytes read.
async fn refuse_plain_http<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    metrics::counter!("shoal_http_plain_on_tls_total").increment(1);
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{PLAIN_BODY}",
        PLAIN_BODY.len()
    );
    let answer = async {
        io.write_all(reply.as_bytes()).await?;
        io.shutdown().await?;
        // Drain what the client sent, so closing does not reset the connection (and with
        // it the reply) before the client has read it.
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            let n = io.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
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
    }
}
