//! GCE discovery over HTTPS, with project and zone from the metadata server: a local
//! plain-HTTP metadata server (token, `project/project-id`, `instance/zone`, as on GCE) and a
//! local HTTPS Compute API with a certificate from a test CA. With that CA as `ca_pem` the
//! listing works; with the built-in public roots the certificate is refused.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use shoal_cluster::{GceConfig, GceDiscovery, GceIni};
use tokio_rustls::TlsAcceptor;

/// Path (with query) → body; the metadata server needs `Metadata-Flavor: Google`, the API a
/// bearer token.
type Answers = Arc<HashMap<String, String>>;

async fn serve(answers: Answers, tls: Option<TlsAcceptor>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answers = answers.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    let h = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let ok = h("authorization").as_deref() == Some("Bearer tok")
                        || h("metadata-flavor").as_deref() == Some("Google");
                    let body = answers.get(&pq).cloned();
                    async move {
                        let mut r =
                            Response::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
                        if !ok {
                            *r.status_mut() = StatusCode::UNAUTHORIZED;
                        } else if body.is_none() {
                            *r.status_mut() = StatusCode::NOT_FOUND;
                        }
                        Ok::<_, Infallible>(r)
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    addr
}

fn acceptor(pki: &common::Pki) -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pki.cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_over_https_with_project_and_zone_from_the_metadata_server() {
    let pki = common::pki();
    let metadata = serve(
        Arc::new(HashMap::from([
            (
                "/computeMetadata/v1/instance/service-accounts/default/token".to_owned(),
                r#"{"access_token":"tok","expires_in":3599,"token_type":"Bearer"}"#.to_owned(),
            ),
            (
                "/computeMetadata/v1/project/project-id".to_owned(),
                "my-project".to_owned(),
            ),
            (
                "/computeMetadata/v1/instance/zone".to_owned(),
                "projects/1234567/zones/europe-west1-b".to_owned(),
            ),
        ])),
        None,
    )
    .await;
    let api = serve(
        Arc::new(HashMap::from([(
            "/compute/v1/projects/my-project/zones/europe-west1-b/instances?filter=status%20eq%20RUNNING"
                .to_owned(),
            r#"{"items":[{"name":"a","tags":{"items":["cache"]},
                 "networkInterfaces":[{"name":"nic0","networkIP":"127.0.0.1"}]}]}"#
                .to_owned(),
        )])),
        Some(acceptor(&pki)),
    )
    .await;

    // gce-cache-cluster's ini with project and zone left empty.
    let ini = GceIni::parse(
        "[cluster]\nport = 7946\n[match]\nproject =\nzone =\nnetwork_interface = nic0\ntags = cache\n",
    )
    .unwrap();
    let config = |ca: Option<&str>| {
        let mut c = GceConfig::from_ini(&ini);
        c.endpoint = format!("https://localhost:{}", api.port());
        c.metadata = Some(format!("http://{metadata}"));
        c.interval = Duration::from_millis(100);
        c.ca_pem = ca.map(|p| p.as_bytes().to_vec());
        c
    };

    let trusted = GceDiscovery::start(config(Some(&pki.ca)));
    // Public roots only: the test CA's certificate is refused, nothing is found.
    let public = GceDiscovery::start(config(None));
    let seeds = trusted.seeds();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seeds.borrow().is_empty() {
        assert!(Instant::now() < deadline, "no listing over HTTPS");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(*seeds.borrow(), [SocketAddr::from(([127, 0, 0, 1], 7946))]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        public.seeds().borrow().is_empty(),
        "a certificate from an unknown CA was accepted"
    );
}
