//! `shoal memcache` as a child process, and a small HTTP client for its admin port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `shoal memcache` child, killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `shoal memcache ARGS` and waits until it listens on every port of `ports`.
pub fn start(args: &[&str], ports: &[u16]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("memcache").args(args);
    spawn_listening(cmd, ports, || format!("shoal memcache {args:?}"))
}

/// Spawns `cmd` (its output dropped) and waits, at most 10 s, until it listens on every port
/// of `ports`; if it exits first, the test fails with `what()` (say which process, and its
/// log if it has one).
pub fn spawn_listening(mut cmd: Command, ports: &[u16], what: impl Fn() -> String) -> Proc {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in ports {
        while TcpStream::connect(("127.0.0.1", *port)).is_err() {
            if let Ok(Some(status)) = p.0.try_wait() {
                panic!("{} exited ({status})", what());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {port}",
                what()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    p
}

/// `GET path` on the admin port: the whole response, head included.
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
