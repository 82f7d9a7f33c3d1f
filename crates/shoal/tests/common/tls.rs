//! TLS clients for the HTTPS fronts' tests.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

/// A client configuration trusting the certificates in `cert` and offering `alpn`.
pub fn client_config(cert: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in shoal_tls::load_certs(cert).unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(shoal_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Whether a TLS handshake with `addr` for `localhost` completes for a client trusting only
/// `cert`.
pub fn trusted_by(addr: SocketAddr, cert: &Path) -> bool {
    trusted_for(addr, cert, "localhost")
}

/// Whether a client trusting only `cert` accepts the certificate `addr` presents for `name`
/// (the client sends none of its own).
pub fn trusted_for(addr: SocketAddr, cert: &Path, name: &str) -> bool {
    let mut conn = rustls::ClientConnection::new(
        client_config(cert, &[b"http/1.1"]),
        ServerName::try_from(name.to_owned()).unwrap(),
    )
    .unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            return false;
        }
    }
    true
}
