//! TLS and mutual TLS between peers (rustls with the aws-lc-rs provider, chosen explicitly so
//! no process-wide default provider is needed).
//!
//! One CA signs every member's certificate; each member uses its certificate both as a
//! server (its peer port) and as a client (its requests to others). With
//! [`TlsConfig::require_client_cert`] (the default) a server refuses any client that does
//! not present a certificate from the CA: that is mTLS. Members are then addressed as
//! `https://host:port`, and `host` must be in their certificate's subject alt names.
//!
//! The built configurations sit behind [`ArcSwap`]s read at each handshake, so
//! [`Cluster::reload_tls`](crate::Cluster::reload_tls) renews certificates (or the CA) for
//! the next connection; connections already open keep theirs.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ClusterError;

/// Certificates for the peer port, in PEM.
#[derive(Clone)]
pub struct TlsConfig {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    require_client_cert: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("require_client_cert", &self.require_client_cert)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// The cluster CA, this member's certificate chain and its private key, in PEM. Client
    /// certificates are required (mTLS) unless turned off.
    pub fn from_pem(
        ca: impl Into<Vec<u8>>,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        TlsConfig {
            ca_pem: ca.into(),
            cert_pem: cert.into(),
            key_pem: key.into(),
            require_client_cert: true,
        }
    }

    /// [`from_pem`](Self::from_pem) with the PEM read from files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, ClusterError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| ClusterError::Io {
                what: format!("reading {}", p.display()),
                source,
            })
        };
        Ok(Self::from_pem(read(ca)?, read(cert)?, read(key)?))
    }

    /// Whether the server refuses clients without a certificate signed by the CA (default
    /// true). Turning it off gives TLS without client authentication; pair it with a
    /// shared secret.
    pub fn require_client_cert(mut self, require: bool) -> Self {
        self.require_client_cert = require;
        self
    }

    /// Build the rustls configurations, checking the material.
    pub(crate) fn build(&self) -> Result<Tls, ClusterError> {
        let built = self.configs()?;
        Ok(Tls {
            server: Arc::new(ArcSwap::new(built.server)),
            client_h2: Arc::new(ArcSwap::new(built.client_h2)),
            client_http: Arc::new(ArcSwap::new(built.client_http)),
        })
    }

    fn configs(&self) -> Result<Configs, ClusterError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            let cert = cert.map_err(|e| ClusterError::tls("ca", e))?;
            roots.add(cert).map_err(|e| ClusterError::tls("ca", e))?;
        }
        if roots.is_empty() {
            return Err(ClusterError::tls("ca", "no certificate in the CA PEM"));
        }
        let roots = Arc::new(roots);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ClusterError::tls("cert", e))?;
        if chain.is_empty() {
            return Err(ClusterError::tls("cert", "no certificate in the PEM"));
        }
        let key = || {
            PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| ClusterError::tls("key", e))
        };

        let client_verifier = if self.require_client_cert {
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| ClusterError::tls("client verifier", e))?
        } else {
            WebPkiClientVerifier::no_client_auth()
        };
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClusterError::tls("server config", e))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key()?)
            .map_err(|e| ClusterError::tls("server config", e))?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| ClusterError::tls("server verifier", e))?;
        let client = |alpn: &[&[u8]]| -> Result<Arc<ClientConfig>, ClusterError> {
            let mut c = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| ClusterError::tls("client config", e))?
                .with_webpki_verifier(server_verifier.clone())
                .with_client_auth_cert(chain.clone(), key()?)
                .map_err(|e| ClusterError::tls("client config", e))?;
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(c))
        };
        Ok(Configs {
            server: Arc::new(server),
            client_h2: client(&[b"h2"])?,
            client_http: client(&[b"h2", b"http/1.1"])?,
        })
    }
}

struct Configs {
    server: Arc<ServerConfig>,
    client_h2: Arc<ClientConfig>,
    client_http: Arc<ClientConfig>,
}

/// A client configuration that a reload may replace; loaded at each connect.
pub(crate) type ClientTls = Arc<ArcSwap<ClientConfig>>;
/// A server configuration that a reload may replace; loaded at each handshake.
pub(crate) type ServerTls = Arc<ArcSwap<ServerConfig>>;

/// Built rustls configurations, shared with the peer port and the connectors.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) server: ServerTls,
    /// For gRPC: HTTP/2 only.
    pub(crate) client_h2: ClientTls,
    /// For the HTTP protocols: HTTP/2 or HTTP/1.1, as the server prefers.
    pub(crate) client_http: ClientTls,
}

impl Tls {
    /// Put `config`'s certificates in force for the next handshakes, if they build; the
    /// ones in force stay otherwise.
    pub(crate) fn reload(&self, config: &TlsConfig) -> Result<(), ClusterError> {
        let built = config.configs()?;
        self.server.store(built.server);
        self.client_h2.store(built.client_h2);
        self.client_http.store(built.client_http);
        Ok(())
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_named_config_error() {
        let e = TlsConfig::from_pem("nope", "nope", "nope")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("tls ca"), "{e}");
    }
}
