//! A real etcd (Debian's `etcd-server`) on free loopback ports with a temporary data
//! directory; killed (by its own handle) on drop, restartable on the same ports and data.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{Guard, free_port, require, wait_http};

pub const ETCD: &str = "/usr/bin/etcd";

/// Whether etcd is installed (skips loudly, or fails under `CI=true`).
pub fn available() -> bool {
    require(
        "the etcd membership tests",
        "etcd-server",
        &[Path::new(ETCD)],
    )
}

pub struct Etcd {
    pub client: u16,
    peer: u16,
    dir: tempfile::TempDir,
    guard: Option<Guard>,
}

impl Etcd {
    pub fn start() -> Etcd {
        let mut e = Etcd {
            client: free_port(),
            peer: free_port(),
            dir: tempfile::tempdir().expect("a temp dir for etcd"),
            guard: None,
        };
        e.restart();
        e
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// Kill it (keeps the data directory).
    pub fn stop(&mut self) {
        self.guard = None;
    }

    /// Start it again on the same ports and data; waits until it answers /health.
    pub fn restart(&mut self) {
        self.stop();
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let mut guard = Guard::spawn(
            "etcd",
            Command::new(ETCD)
                .arg("--name")
                .arg("t")
                .arg("--data-dir")
                .arg(self.dir.path().join("data"))
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args(["--initial-cluster", &format!("t={peer}")])
                .args(["--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let addr: SocketAddr = format!("127.0.0.1:{}", self.client).parse().unwrap();
        wait_http(addr, "/health", Duration::from_secs(20), &mut guard);
        self.guard = Some(guard);
    }
}
