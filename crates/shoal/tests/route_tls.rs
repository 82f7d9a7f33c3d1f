//! `shoal route --tls-cert/--tls-key`: HTTPS on the router's front, which photosrv never had
//! (its ROADMAP's first item). Against a real nginx WebDAV node: a PUT and GET over HTTPS
//! with HTTP/1.1, a GET over HTTP/2 negotiated by ALPN, a plain-HTTP client told to use
//! https:// (and the port still working after it), and a clear error for a key without its
//! certificate.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::route::Route;
use common::tls::{client_config, trusted_by};
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::ServerName;
use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};

/// One HTTP/1.1 request over TLS (the connection closed after it): status and body.
fn https(addr: SocketAddr, cert: &Path, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut conn = rustls::ClientConnection::new(
        client_config(cert, &[b"http/1.1"]),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    tls.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
    (status, raw[end + 4..].to_vec())
}

/// A GET over HTTP/2, negotiated by ALPN: the protocol agreed, the status and the body.
async fn h2_get(addr: SocketAddr, cert: &Path, path: &str) -> (Vec<u8>, u16, Bytes) {
    let connector = tokio_rustls::TlsConnector::from(client_config(cert, &[b"h2", b"http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://localhost{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (alpn, status, body)
}

/// A router with one nginx node behind it, serving HTTPS with a new self-signed certificate
/// for `localhost`, whose files are in `dir`.
struct TlsRoute {
    node: Node,
    dir: tempfile::TempDir,
    route: Route,
    cfg: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl TlsRoute {
    fn start() -> TlsRoute {
        let node = Node::start();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("photosrv.conf");
        std::fs::write(&cfg, photosrv_config("jump", &[vec![node.url()]], None)).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let route = Route::start(
            &cfg,
            &[
                "--health-interval",
                "0",
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        );
        TlsRoute {
            node,
            dir,
            route,
            cfg,
            cert,
            key,
        }
    }
}

#[test]
fn https_front_with_http1_and_h2_and_plain_http_refused() {
    if !nginx_or_skip("route_tls") {
        return;
    }
    let TlsRoute {
        node,
        dir: _dir,
        route,
        cert,
        ..
    } = TlsRoute::start();

    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (status, _) = https(route.front, &cert, "PUT", "/tls/blob.bin", &data);
    assert_eq!(status, 201);
    assert!(
        node.read("tls/blob.bin").as_deref() == Some(&data[..]),
        "the PUT over HTTPS is on the node"
    );
    let (status, body) = https(route.front, &cert, "GET", "/tls/blob.bin", b"");
    assert!(status == 200 && body == data, "GET over HTTPS: {status}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (alpn, status, body) = rt.block_on(h2_get(route.front, &cert, "/tls/blob.bin"));
    assert_eq!(alpn, b"h2");
    assert!(status == 200 && body == data, "GET over h2: {status}");

    // Plain HTTP on the HTTPS port: told what to do, and the port still works afterwards.
    let mut plain = TcpStream::connect(route.front).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /tls/blob.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = plain.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 400") && reply.contains("https://"),
        "{reply}"
    );
    assert_eq!(
        https(route.front, &cert, "HEAD", "/tls/blob.bin", b"").0,
        200
    );
}

/// Certificate renewal without a restart, as `nginx -s reload` does it: the files are
/// replaced, SIGHUP, and new connections get the new certificate. A key that does not fit
/// (a renewal half done) is refused and the certificate in use stays.
#[test]
fn sighup_serves_a_renewed_certificate_and_keeps_the_old_one_on_a_bad_pair() {
    if !nginx_or_skip("route_tls reload") {
        return;
    }
    let TlsRoute {
        node,
        dir,
        route,
        cfg,
        cert,
        key,
    } = TlsRoute::start();
    let (old, new) = (dir.path().join("old.pem"), dir.path().join("new.pem"));
    std::fs::copy(&cert, &old).unwrap();
    assert!(trusted_by(route.front, &old));

    // A half-done renewal (new key, old chain): refused, the old certificate stays. A second
    // replica in the shard map, reloaded by the same SIGHUP, says when it has been handled.
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&new, renewed.cert.pem()).unwrap();
    std::fs::write(&key, renewed.signing_key.serialize_pem()).unwrap();
    let dead = "http://127.0.0.1:1".to_owned();
    std::fs::write(
        &cfg,
        photosrv_config("jump", &[vec![node.url(), dead]], None),
    )
    .unwrap();
    shoal_testkit::signal(&route.child, "HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while route.status()["rings"][0]["shards"][0]["replicas"]
        .as_array()
        .map_or(0, Vec::len)
        != 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the SIGHUP was never handled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        trusted_by(route.front, &old),
        "the old certificate is still served"
    );

    // The chain too: the next SIGHUP serves it.
    std::fs::write(&cert, renewed.cert.pem()).unwrap();
    shoal_testkit::signal(&route.child, "HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !trusted_by(route.front, &new) {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate is never served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!trusted_by(route.front, &old));
    assert_eq!(https(route.front, &new, "GET", "/tls/none.txt", b"").0, 404);
}

#[test]
fn a_tls_key_without_its_certificate_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("photosrv.conf");
    std::fs::write(
        &cfg,
        photosrv_config("jump", &[vec!["http://127.0.0.1:1".into()]], None),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["route", "--dc", "test", "-c", cfg.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let err = run(&["--tls-key", "k.pem"]);
    assert!(err.contains("--tls-key needs --tls-cert"), "{err}");
    let missing = dir.path().join("missing.pem");
    let err = run(&[
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        missing.to_str().unwrap(),
    ]);
    assert!(
        err.contains("missing.pem") && err.contains("cannot read"),
        "{err}"
    );
}
