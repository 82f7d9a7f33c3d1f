//! Two `shoal serve` processes chained over TLS: one serves a directory with `--tls-cert`/
//! `--tls-key`, the other uses it as an `https://` origin trusted through `--origin-ca`; a
//! certificate renewed in place is served after SIGHUP.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    (head[9..12].parse().unwrap(), head, raw[end + 4..].to_vec())
}

#[test]
fn https_front_as_the_https_origin_of_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(objects.join("blob.bin"), &data).unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();

    let tls = common::serve::start(
        &[
            "--origin",
            objects.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &["listening on https://", "admin on"],
    );
    // Plain HTTP on the HTTPS port: told what to do, and the port still works afterwards.
    let (status, _, body) = get(tls.addr, "/blob.bin", "");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("https://"));

    let origin = format!("https://127.0.0.1:{}/", tls.addr.port());
    let front = common::serve::start(
        &[
            "--origin",
            &origin,
            "--origin-ca",
            cert.to_str().unwrap(),
            "--chunk-size",
            "64KiB",
            "--admin-listen",
            "off",
        ],
        &[],
    );
    let (status, head, body) = get(front.addr, "/blob.bin", "Range: bytes=60000-140000\r\n");
    assert_eq!(status, 206, "{head}\n{}", String::from_utf8_lossy(&body));
    assert!(body == data[60_000..=140_000]);
    let (status, _, body) = get(front.addr, "/blob.bin", "");
    assert!(status == 200 && body == data);
    assert_eq!(get(front.addr, "/missing.bin", "").0, 404);

    // Without --origin-ca the private certificate is not trusted: 502, no bytes.
    let untrusting = common::serve::start(&["--origin", &origin, "--admin-listen", "off"], &[]);
    let (status, _, body) = get(untrusting.addr, "/blob.bin", "");
    assert_eq!(status, 502);
    assert!(
        String::from_utf8_lossy(&body).contains("certificate"),
        "{body:?}"
    );

    // Renewed in place and SIGHUP: new connections get the new certificate.
    let renewed =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (old, new) = (dir.path().join("old.pem"), dir.path().join("new.pem"));
    std::fs::copy(&cert, &old).unwrap();
    std::fs::write(&new, renewed.cert.pem()).unwrap();
    assert!(common::tls::trusted_by(tls.addr, &old));
    let old_key_pem = std::fs::read(&key).unwrap();
    std::fs::write(&cert, renewed.cert.pem()).unwrap();
    std::fs::write(&key, renewed.signing_key.serialize_pem()).unwrap();
    tls.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !common::tls::trusted_by(tls.addr, &new) {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate is never served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!common::tls::trusted_by(tls.addr, &old));
    let reloads = |result: &str| {
        let result = format!("result=\"{result}\"");
        let labels = [r#"certificate="front""#, result.as_str()];
        common::origin::metric(tls.admin.unwrap(), "shoal_tls_reloads_total", &labels)
    };
    common::origin::wait_until("the reload counted", Duration::from_secs(10), || {
        reloads("ok") == 1.0
    });
    // A key that does not fit: counted as an error, and the certificate in use stays.
    std::fs::write(&key, old_key_pem).unwrap();
    tls.signal("HUP");
    common::origin::wait_until("the bad pair counted", Duration::from_secs(10), || {
        reloads("error") == 1.0
    });
    assert!(common::tls::trusted_by(tls.addr, &new));
}
