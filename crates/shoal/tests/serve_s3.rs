//! `shoal serve --origin s3://bucket/prefix` against moto's S3 server (PyPI `moto[server]`,
//! installed by scripts/install-deps) on a loopback port; and the one-line errors of bad
//! TLS material.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

/// moto's S3 server; killed on drop. Its request log is kept to count origin reads.
struct Moto {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts `python3 -m moto.server` on a free loopback port; `None` (after a loud
    /// message) when moto is not installed, and a failure instead when CI=true.
    fn start(test: &str) -> Option<Moto> {
        let installed = Command::new("python3")
            .args(["-c", "import moto.server, flask"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{test}: moto's S3 server is missing; run scripts/install-deps (pip moto[server])"
                );
            }
            eprintln!(
                "\n!!! SKIPPED {test}: python3 -m moto.server is not available \
                 (run scripts/install-deps) !!!\n"
            );
            return None;
        }
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Running on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("moto printed its address within 30 s");
        moto.addr = addr.parse().expect("moto's host:port");
        Some(moto)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests moto has logged whose line contains `needle` (werkzeug may colour the
    /// request line, so match inside it).
    fn count(&self, needle: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).count()
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, head, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    (head[9..12].parse().unwrap(), head, raw[end + 4..].to_vec())
}

fn chunk_loads(admin: SocketAddr) -> u64 {
    let (status, _, body) = http(admin, "GET", "/status", "", b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["stats"]["chunks"]["loads"].as_u64().expect("chunk loads")
}

const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
];

#[test]
fn s3_origin_through_moto_full_ranges_head_404_and_cache() {
    let Some(moto) = Moto::start("s3_origin_through_moto_full_ranges_head_404_and_cache") else {
        return;
    };
    // The bucket and objects, with plain path-style PUTs (moto checks no signatures).
    assert_eq!(http(moto.addr, "PUT", "/shoal-test", "", b"").0, 200);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let put = http(
        moto.addr,
        "PUT",
        "/shoal-test/pre/fix/blob.bin",
        "Content-Type: application/x-shoal-test\r\nCache-Control: public, max-age=600\r\n\
         Content-Disposition: attachment; filename=\"blob.bin\"\r\nContent-Language: en\r\n",
        &data,
    );
    assert_eq!(put.0, 200, "{}", put.1);
    let outside = http(
        moto.addr,
        "PUT",
        "/shoal-test/elsewhere.bin",
        "",
        b"not under the prefix",
    );
    assert_eq!(outside.0, 200);

    let endpoint = moto.url();
    let mut env = AWS_ENV.to_vec();
    env.extend([
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ]);
    let s = common::serve::start_with_env(
        &[
            "--origin",
            "s3://shoal-test/pre/fix",
            "--chunk-size",
            "64KiB",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &["admin on"],
        &env,
    );
    let admin = s.admin.unwrap();

    let (status, head, body) = http(s.addr, "GET", "/blob.bin", "", b"");
    assert_eq!(status, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    assert!(body == data, "full body differs ({} bytes)", body.len());
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/x-shoal-test"),
        "{head}"
    );
    assert!(lower.contains("etag: \""), "{head}");
    assert!(lower.contains("last-modified:"), "{head}");
    // The object's own headers, as S3 keeps them, reach the client.
    for want in [
        "cache-control: public, max-age=600",
        "content-disposition: attachment; filename=\"blob.bin\"",
        "content-language: en",
    ] {
        assert!(lower.contains(want), "{want} missing:\n{head}");
    }

    let (status, head, body) = http(
        s.addr,
        "GET",
        "/blob.bin",
        "Range: bytes=100000-200000\r\n",
        b"",
    );
    assert_eq!(status, 206, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-range: bytes 100000-200000/300000")
    );
    assert!(body == data[100_000..=200_000]);

    let (status, head, body) = http(s.addr, "HEAD", "/blob.bin", "", b"");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 300000"),
        "{head}"
    );
    assert!(body.is_empty());

    assert_eq!(http(s.addr, "GET", "/missing.bin", "", b"").0, 404);
    // Objects outside the prefix are not reachable.
    assert_eq!(http(s.addr, "GET", "/../elsewhere.bin", "", b"").0, 400);
    assert_eq!(http(s.addr, "GET", "/elsewhere.bin", "", b"").0, 404);

    // A second full read comes from the cache: no chunk load, no GET at moto.
    let loads = chunk_loads(admin);
    let gets = |m: &Moto| m.count("GET /shoal-test/pre/fix/blob.bin HTTP");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut before = gets(&moto);
    // moto logs a request after answering it: let the log catch up with the reads above.
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = gets(&moto);
        if now == before {
            break;
        }
        before = now;
    }
    assert!(
        before >= 5,
        "the first reads went to moto ({before} GETs logged)"
    );
    let (status, _, body) = http(s.addr, "GET", "/blob.bin", "", b"");
    assert!(status == 200 && body == data);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(chunk_loads(admin), loads, "second read loaded chunks again");
    assert_eq!(gets(&moto), before, "second read reached moto");
    drop(s);

    // The endpoint as a flag instead of AWS_ENDPOINT_URL.
    let s = common::serve::start_with_env(
        &[
            "--origin",
            "s3://shoal-test/pre",
            "--origin-endpoint",
            &endpoint,
            "--admin-listen",
            "off",
        ],
        &[],
        &AWS_ENV,
    );
    let (status, _, body) = http(s.addr, "GET", "/fix/blob.bin", "Range: bytes=0-9\r\n", b"");
    assert_eq!(status, 206);
    assert!(body == data[..10]);
}

/// `shoal serve ARGS` must exit at once with one `shoal: error:` line containing `needles`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shoal serve {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{args:?} succeeded");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("shoal: error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {err}");
    }
}

#[test]
fn bad_tls_files_and_origin_urls_are_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().to_str().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = junk.to_str().unwrap();
    let missing = dir.path().join("missing-key.pem");
    let missing = missing.to_str().unwrap();
    fails_with(
        &["--origin", origin, "--tls-cert", junk, "--tls-key", junk],
        &["junk.pem", "certificate"],
    );
    fails_with(
        &["--origin", origin, "--tls-cert", junk, "--tls-key", missing],
        &["junk.pem"],
    );
    fails_with(&["--origin", origin, "--tls-cert", junk], &["tls_key"]);
    fails_with(
        &["--origin", "https://127.0.0.1:1/", "--origin-ca", missing],
        &["missing-key.pem", "cannot read"],
    );
    fails_with(&["--origin", "ftp://host/x"], &["ftp://"]);
    fails_with(&["--origin", "s3://"], &["s3://"]);
}
