//! `--access-log` of `shoal serve` and `shoal route`: nginx `combined` lines, one per
//! request, reopened on SIGUSR1, complete when the process exits.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::route::Route;
use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};

/// Sends `head` (a request without its final blank line) and reads the whole answer.
fn send(addr: SocketAddr, head: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{head}Connection: close\r\n\r\n").unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    String::from_utf8_lossy(&raw[9..12]).parse().unwrap()
}

/// The log's lines without their `[time]` field, once it has `n` of them.
fn lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let got: Vec<String> = text
            .lines()
            .map(|l| {
                let (head, rest) = l.split_once(" [").expect("a [time] field");
                let (time, tail) = rest.split_once("] ").expect("a [time] field");
                assert_eq!(
                    time.len(),
                    26,
                    "time_local like 21/Nov/2026:18:57:42 +0000: {l}"
                );
                format!("{head} {tail}")
            })
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_logs_each_request_in_combined_format_and_reopens_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("a.bin"), vec![7u8; 1000]).unwrap();
    let log = dir.path().join("access.log");
    let mut s = common::serve::start(
        &[
            "--origin",
            root.to_str().unwrap(),
            "--admin-listen",
            "off",
            "--access-log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    let get = |extra: &str, path: &str| {
        send(
            s.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}"),
            b"",
        )
    };
    assert_eq!(get("User-Agent: curl/8.5.0\r\n", "/a.bin?v=1"), 200);
    assert_eq!(
        get(
            "Range: bytes=10-19\r\nReferer: http://x/\"y\"\r\n",
            "/a.bin"
        ),
        206
    );
    assert_eq!(get("", "/missing"), 404);
    assert_eq!(
        send(s.addr, "HEAD /a.bin HTTP/1.1\r\nHost: t\r\n", b""),
        200
    );
    assert_eq!(
        lines(&log, 4),
        [
            r#"127.0.0.1 - - "GET /a.bin?v=1 HTTP/1.1" 200 1000 "-" "curl/8.5.0""#,
            r#"127.0.0.1 - - "GET /a.bin HTTP/1.1" 206 10 "http://x/\x22y\x22" "-""#,
            r#"127.0.0.1 - - "GET /missing HTTP/1.1" 404 10 "-" "-""#,
            r#"127.0.0.1 - - "HEAD /a.bin HTTP/1.1" 200 0 "-" "-""#,
        ]
    );

    // logrotate: move the file, SIGUSR1, and new lines go to a new file at the old path.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    s.signal("USR1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "SIGUSR1 did not reopen the log");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get("", "/a.bin"), 200);
    // The last line is written before the process exits.
    assert_eq!(get("", "/missing"), 404);
    s.sigterm();
    assert!(s.wait_exit(Duration::from_secs(20)));
    assert_eq!(lines(&rotated, 4).len(), 4);
    assert_eq!(
        lines(&log, 2),
        [
            r#"127.0.0.1 - - "GET /a.bin HTTP/1.1" 200 1000 "-" "-""#,
            r#"127.0.0.1 - - "GET /missing HTTP/1.1" 404 10 "-" "-""#,
        ]
    );
}

#[test]
fn an_access_log_that_cannot_be_opened_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no/such/dir/access.log");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
        .args(["--origin", dir.path().to_str().unwrap()])
        .args(["--access-log", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open access log") && err.contains("no/such/dir/access.log"),
        "{err}"
    );
}

#[test]
fn route_logs_reads_and_writes() {
    if !nginx_or_skip("route_logs_reads_and_writes") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("photosrv.conf");
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    std::fs::write(&cfg, photosrv_config("jump", &[urls], None)).unwrap();
    let log = dir.path().join("route.log");
    let r = Route::start(
        &cfg,
        &[
            "--health-interval",
            "0",
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    let put = send(
        r.front,
        "PUT /p/a.jpg HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n",
        b"hello",
    );
    assert_eq!(put, 201);
    let got = send(
        r.front,
        "GET /p/a.jpg HTTP/1.1\r\nHost: t\r\nUser-Agent: t/1\r\n",
        b"",
    );
    assert_eq!(got, 200);
    assert_eq!(
        send(r.front, "BREW /p/a.jpg HTTP/1.1\r\nHost: t\r\n", b""),
        405
    );
    let got = lines(&log, 3);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with(r#"127.0.0.1 - - "PUT /p/a.jpg HTTP/1.1" 201 "#),
        "{got:?}"
    );
    assert_eq!(
        got[1],
        r#"127.0.0.1 - - "GET /p/a.jpg HTTP/1.1" 200 5 "-" "t/1""#
    );
    assert!(
        got[2].starts_with(r#"127.0.0.1 - - "BREW /p/a.jpg HTTP/1.1" 405 "#),
        "{got:?}"
    );
}
