//! A real etcd (Debian's `etcd-server`) on free loopback ports with a temporary data
//! directory, killed through its handle on drop.

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
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    /// Starts etcd and waits (at most 20 s) until it answers `/health`.
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("a temp dir for etcd");
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(ETCD)
            .arg("--name")
            .arg("t")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
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
        let etcd = Etcd {
            client,
            child,
            _dir: dir,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], client));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() || get(addr, "/health", "").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "etcd answered /health within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }
}
