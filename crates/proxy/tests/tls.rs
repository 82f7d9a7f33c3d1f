//! HTTPS on the client front (h1 and h2 by ALPN, ranges, handshakes that go wrong) and
//! `https://` origins with a private CA: every certificate is made here with rcgen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use shoal_proxy::{
    DirOrigin, HttpOrigin, HttpOriginConfig, Origin, OriginError, ProxyConfig, ServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CS: u64 = 64 << 10;

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM files in `dir`.
fn cert_files(dir: &Path) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A TLS front over a directory origin holding `blob.bin`.
async fn tls_front(dir: &Path, data: &[u8], header_timeout: Duration) -> (Running, PathBuf) {
    let objects = dir.join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    std::fs::write(objects.join("blob.bin"), data).unwrap();
    let (cert, key) = cert_files(dir);
    let mut server = ServerConfig::default();
    server.tls = Some(shoal_proxy::tls::server_config(&cert, &key).unwrap());
    server.header_read_timeout = header_timeout;
    let origin = Arc::new(DirOrigin::new(&objects).unwrap());
    let running = start_with(origin, store_config(CS), ProxyConfig::default(), server).await;
    (running, cert)
}

type TlsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A client trusting `ca` that offers only `alpn` (`h2` or `http/1.1`).
fn client(ca: &Path, alpn: &[&[u8]]) -> TlsClient {
    let roots = shoal_proxy::tls::origin_roots(Some(ca)).unwrap();
    let tls = Arc::unwrap_or_clone(shoal_proxy::tls::origin_client_config(roots).unwrap());
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let connector = if alpn.contains(&&b"h2"[..]) {
        builder.enable_http2().wrap_connector(plain_connector())
    } else {
        builder.enable_http1().wrap_connector(plain_connector())
    };
    Client::builder(TokioExecutor::new()).build(connector)
}

fn plain_connector() -> HttpConnector {
    let mut c = HttpConnector::new();
    c.enforce_http(false);
    c
}

async fn fetch(
    c: &TlsClient,
    addr: SocketAddr,
    range: Option<&str>,
) -> (StatusCode, Version, Bytes) {
    let mut req = Request::get(format!("https://127.0.0.1:{}/blob.bin", addr.port()));
    if let Some(r) = range {
        req = req.header(http::header::RANGE, r);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        c.request(req.body(Empty::new()).unwrap()),
    )
    .await
    .expect("an answer within 20 s")
    .expect("an HTTPS answer");
    let (status, version) = (resp.status(), resp.version());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, version, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_front_speaks_h1_and_h2_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let data = content((3 * CS + 500) as usize, 7);
    let (front, ca) = tls_front(dir.path(), &data, Duration::from_secs(10)).await;

    let h1 = client(&ca, &[b"http/1.1"]);
    let (status, version, body) = fetch(&h1, front.addr, None).await;
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_11));
    assert_eq!(body, data);

    let h2 = client(&ca, &[b"h2"]);
    let (status, version, body) = fetch(&h2, front.addr, Some("bytes=70000-140000")).await;
    assert_eq!(
        (status, version),
        (StatusCode::PARTIAL_CONTENT, Version::HTTP_2)
    );
    assert_eq!(body, &data[70000..=140000]);
    let (status, _, body) = fetch(&h2, front.addr, Some("bytes=-100")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &data[data.len() - 100..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_and_plain_http_do_not_hurt_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(5000, 3);
    let (front, ca) = tls_front(dir.path(), &data, Duration::from_secs(1)).await;
    let addr = front.addr;

    // Plain HTTP on the TLS port: a 400 that says why.
    let r = get(addr, "/blob.bin", &[]).await;
    assert_eq!(r.status, 400);
    assert!(
        String::from_utf8_lossy(&r.body).contains("https://"),
        "{r:?}"
    );

    // A TLS record header followed by garbage: the server closes the connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x16\x03\x01\x00\x05garbagegarbage")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server closes a bad handshake");

    // A handshake that starts and stalls: closed after the header read timeout (1 s).
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x16").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf))
        .await
        .expect("a stalled handshake is closed");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed too soon"
    );

    // A client that does not trust the certificate gives up; the server carries on.
    let other = tempfile::tempdir().unwrap();
    let (stranger_ca, _) = cert_files(other.path());
    let stranger = client(&stranger_ca, &[b"http/1.1"]);
    let req = Request::get(format!("https://127.0.0.1:{}/blob.bin", addr.port()))
        .body(Empty::new())
        .unwrap();
    let e = stranger
        .request(req)
        .await
        .expect_err("untrusted certificate");
    let chain = format!("{e:?}");
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");

    let h2 = client(&ca, &[b"h2"]);
    let (status, version, body) = fetch(&h2, addr, Some("bytes=10-19")).await;
    assert_eq!(
        (status, version),
        (StatusCode::PARTIAL_CONTENT, Version::HTTP_2)
    );
    assert_eq!(body, &data[10..20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origin_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let data = content((2 * CS + 10) as usize, 9);
    // The TLS origin: shoal's own HTTPS front over a directory.
    let (tls_origin, ca) = tls_front(dir.path(), &data, Duration::from_secs(10)).await;
    let base = format!("https://127.0.0.1:{}/", tls_origin.addr.port());

    let mut c = HttpOriginConfig::default();
    c.timeout = Duration::from_secs(10);
    c.tls = Some(
        shoal_proxy::tls::origin_client_config(shoal_proxy::tls::origin_roots(Some(&ca)).unwrap())
            .unwrap(),
    );
    let origin = Arc::new(HttpOrigin::new(&base, c).unwrap());
    let meta = origin.stat("blob.bin").await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    let e = origin
        .read("blob.bin", 100..200, &meta.validator)
        .await
        .unwrap();
    assert_eq!(e.slice(100..200).unwrap(), &data[100..200]);
    assert!(matches!(
        origin.stat("missing.bin").await,
        Err(OriginError::NotFound)
    ));

    // Behind a plain front: the whole object, through the TLS origin.
    let front = start(origin, store_config(CS), ProxyConfig::default()).await;
    let r = get(front.addr, "/blob.bin", &[("Range", "bytes=65530-65545")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[65530..=65545]);

    // Without the CA the origin's certificate is refused: a failure, not bytes.
    let mut c = HttpOriginConfig::default();
    c.timeout = Duration::from_secs(10);
    let untrusting = HttpOrigin::new(&base, c).unwrap();
    match untrusting.stat("blob.bin").await {
        Err(OriginError::Failed { message, .. }) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}")
        }
        other => panic!("expected a certificate failure, got {other:?}"),
    }
}
