//! HTTPS on shoal's HTTP fronts (`shoal serve`, `shoal route`): the server configuration from
//! a PEM certificate chain and key ([`server_config`]), and the step between accepting a TCP
//! connection and serving HTTP on it ([`accept`]); and what shoal's HTTPS clients trust
//! ([`client_roots`], [`client_config`]). rustls with the aws-lc-rs provider, named
//! explicitly ([`provider`]), so no process-wide default provider has to be installed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
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

/// The trust anchors of shoal's HTTPS clients (origins, storage nodes): the system's CA
/// store (as `SSL_CERT_FILE` / `SSL_CERT_DIR` or the distribution's bundle say), else
/// Mozilla's roots compiled in; plus every certificate of `extra_ca`, for servers with a
/// private CA.
pub fn client_roots(extra_ca: Option<&Path>) -> Result<rustls::RootCertStore, TlsFileError> {
    let mut roots = system_roots().clone();
    if let Some(file) = extra_ca {
        for cert in load_certs(file)? {
            roots
                .add(cert)
                .map_err(|e| TlsFileError::new(file, format!("not a usable CA: {e}")))?;
        }
    }
    Ok(roots)
}

/// The system's trust anchors (or Mozilla's), read and parsed once per process, however
/// many clients are built; a changed system bundle is seen after a restart.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// Counts a reload of TLS files on SIGHUP in `shoal_tls_reloads_total{certificate, result}`
/// (`result="ok"` or `"error"`), so a renewal that did not take can be alerted on.
pub fn count_reload(certificate: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!("shoal_tls_reloads_total", "certificate" => certificate, "result" => result)
        .increment(1);
}

/// A client configuration trusting `roots`, with no client certificate. It names no ALPN
/// protocols: the HTTP client that uses it offers those it speaks.
pub fn client_config(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
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
    CertFiles::load(cert_file, key_file)?.server_config()
}

/// A front's certificate chain and key, read from their PEM files at start and again by
/// [`CertFiles::reload`] (on SIGHUP), so that a renewed certificate reaches new connections
/// without a restart, as `nginx -s reload` does. Connections already open keep theirs. A
/// reload that fails keeps the certificate in use.
#[derive(Debug)]
pub struct CertFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertFiles {
    /// Reads `cert_file` (the chain, leaf first) and `key_file` (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<CertFiles>, TlsFileError> {
        let key = certified_key(cert_file, key_file)?;
        Ok(Arc::new(CertFiles {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again and serves what they hold to the next handshake. True when the
    /// chain changed; an error (the file named) leaves the certificate in use as it was.
    pub fn reload(&self) -> Result<bool, TlsFileError> {
        let new = certified_key(&self.cert_file, &self.key_file)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let changed = current.cert != new.cert;
        *current = Arc::new(new);
        Ok(changed)
    }

    /// [`CertFiles::reload`], for a signal handler: logs a change, or the error and that the
    /// certificate in use stays.
    /// Counted in `shoal_tls_reloads_total{certificate="front"}` ([`count_reload`]).
    pub fn reload_and_log(&self) {
        let result = self.reload();
        count_reload("front", result.is_ok());
        match result {
            Ok(true) => {
                tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; keeping the one in use")
            }
        }
    }

    /// A server configuration presenting these files' certificate; ALPN offers `h2` then
    /// `http/1.1`.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsFileError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsFileError::new(&self.cert_file, e))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The chain in `cert_file` with the key in `key_file`, checked to belong together.
fn certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsFileError> {
    let chain = load_certs(cert_file)?;
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsFileError::new(key_file, format!("no usable PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        TlsFileError::new(
            key_file,
            format!("does not fit {}: {e}", cert_file.display()),
        )
    })
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

    /// The leaf certificate a client sees in a handshake with `server`.
    async fn presented(
        server: Arc<ServerConfig>,
        trusted: &[&rcgen::CertifiedKey<rcgen::KeyPair>],
    ) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        for t in trusted {
            roots.add(t.cert.der().clone()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (a, b) = tokio::io::duplex(64 * 1024);
        // The client may be gone before the server has read its last handshake message.
        let serve = tokio::spawn(async move { TlsAcceptor::from(server).accept(b).await.ok() });
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let c = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, a)
            .await
            .unwrap();
        let leaf = c.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        drop(c);
        serve.await.unwrap();
        leaf
    }

    #[tokio::test]
    async fn a_reload_serves_the_renewed_certificate_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let write = |ck: &rcgen::CertifiedKey<rcgen::KeyPair>| {
            std::fs::write(&cert, ck.cert.pem()).unwrap();
            std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        };
        let first = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let renewed = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        write(&first);
        let files = CertFiles::load(&cert, &key).unwrap();
        let config = files.server_config().unwrap();
        let both = [&first, &renewed];
        assert_eq!(
            presented(config.clone(), &both).await,
            first.cert.der().to_vec()
        );
        assert!(!files.reload().unwrap(), "the same files: no change");

        write(&renewed);
        assert!(files.reload().unwrap());
        assert_eq!(
            presented(config.clone(), &both).await,
            renewed.cert.der().to_vec()
        );

        // Half-written renewal: the new key with the old chain does not fit; kept as it was.
        std::fs::write(&cert, first.cert.pem()).unwrap();
        let e = files.reload().unwrap_err().to_string();
        assert!(e.contains("key.pem") && e.contains("does not fit"), "{e}");
        assert_eq!(presented(config, &both).await, renewed.cert.der().to_vec());
    }
}
