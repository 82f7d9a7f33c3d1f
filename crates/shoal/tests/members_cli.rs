//! `shoal members --admin URL` against a stand-in admin port that answers `GET /members`
//! as `shoal-cluster-node` does (the node's own answer is tested in shoal-cluster's
//! process tests; `serve_live.rs` runs `shoal members` against real `shoal serve` nodes).

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

const BODY: &str = r#"{"self":"http://127.0.0.1:7001","ring_version":4,"members":[{"url":"http://127.0.0.1:7001","state":"alive","share":0.6012},{"url":"http://127.0.0.1:7002","state":"alive","share":0.3988},{"url":"http://127.0.0.1:7003","state":"down","share":0.0000}]}"#;

#[test]
fn prints_members_states_and_shares() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the request ended early");
            req.extend_from_slice(&buf[..n]);
        }
        assert!(req.starts_with(b"GET /members "));
        write!(
            s,
            "HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .unwrap();
    });
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["members", "--admin", &format!("http://{addr}")])
        .output()
        .unwrap();
    server.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("http://127.0.0.1:7001 (self)"), "{text}");
    assert!(text.contains("60.1%") && text.contains("39.9%"), "{text}");
    assert!(text.contains("down"), "{text}");
    assert!(
        text.contains("2 of 3 members in the ring (ring version 4)"),
        "{text}"
    );
}

#[test]
fn an_unreachable_admin_port_is_a_clear_error() {
    let port = shoal_testkit::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["members", "--admin", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shoal: error: connecting to 127.0.0.1:"),
        "{err}"
    );
}
