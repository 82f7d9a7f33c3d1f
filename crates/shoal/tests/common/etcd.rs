//! A real etcd (Debian's `etcd-server`) on free loopback ports with a temporary data
//! directory, killed through its handle on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::origin::{free_port, get};

const ETCD: &str = "/usr/bin/etcd";

/// Whether etcd is installed. If not: under `CI=true` the test fails, naming
/// `scripts/install-deps`; otherwise it is skipped with a loud message.
pub fn available() -> bool {
    if Path::new(ETCD).exists() {
        return true;
    }
    let msg = format!(
        "the etcd tests need {ETCD} (Debian: etcd-server); run scripts/install-deps to install it"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n!!! SKIPPED: {msg}\n");
    false
}

pub struct Etcd {
    pub client: u16,
    peer: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Etcd {
    /// Starts etcd and waits (at most 20 s) until it answers `/health`.
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("a temp dir for etcd");
        let mut etcd = Etcd {
            client: free_port(),
            peer: free_port(),
            child: None,
            dir,
        };
        etcd.restart();
        etcd
    }

    /// Kills etcd (its data stays for [`restart`](Self::restart)).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts etcd again on the same ports and data, and waits until it is healthy.
    pub fn restart(&mut self) {
        self.stop();
        let client_url = format!("http://127.0.0.1:{}", self.client);
        let peer_url = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new(ETCD)
            .arg("--name")
            .arg("t")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.client));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() || get(addr, "/health", "").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "etcd answered /health within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// Puts `key` = `value` through etcd's JSON gateway (`POST /v3/kv/put`).
    pub fn put(&self, key: &str, value: &str) {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        let mut s = TcpStream::connect(("127.0.0.1", self.client)).expect("connect to etcd");
        write!(
            s,
            "POST /v3/kv/put HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "etcd put: {reply}");
    }
}

/// Standard base64 with padding (what etcd's JSON gateway expects for bytes).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
