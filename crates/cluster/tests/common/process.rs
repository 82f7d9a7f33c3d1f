//! Child processes for tests: started through a guard that kills them on drop, ports that
//! are polled with a deadline, and external tools that are skipped (or, under CI, required).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that is killed (by its own handle) and reaped when dropped.
pub struct Guard {
    pub name: String,
    child: Child,
}

impl Guard {
    pub fn spawn(name: &str, cmd: &mut Command) -> Guard {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Guard {
            name: name.to_owned(),
            child,
        }
    }

    /// Send the signal `name` (`STOP`, `CONT`, `TERM`, ...) to the process.
    #[allow(dead_code)] // not every test binary uses it
    pub fn signal(&self, name: &str) {
        shoal_testkit::signal(&self.child, name);
    }

    /// Kill the process now and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ask the process to stop (SIGTERM, through `kill(1)`), wait up to `within` for it to
    /// exit, then kill it if it has not.
    pub fn terminate(&mut self, within: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port for a process that must be told its port (see shoal-testkit).
pub use shoal_testkit::free_port;

/// `GET path` over HTTP/1.0: the status and body, or `None` if nothing answered.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    http_request(addr, "GET", path, b"")
}

/// `POST path` with `body` over HTTP/1.0.
pub fn http_post(addr: SocketAddr, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    http_request(addr, "POST", path, body)
}

fn http_request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .ok()?;
    s.write_all(body).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..split]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, buf[split + 4..].to_vec()))
}

/// Poll `GET path` until it answers 200 or `within` passes; panics naming `what`.
pub fn wait_http(addr: SocketAddr, path: &str, within: Duration, what: &mut Guard) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some((200, _)) = http_get(addr, path) {
            return;
        }
        assert!(
            what.alive(),
            "{} exited before it answered on {addr}",
            what.name
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{} did not answer on {addr} within {within:?}", what.name);
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the external `files` are installed. If not: under `CI=true` the test fails,
/// naming `scripts/install-deps`; otherwise it is skipped with a loud message.
pub fn require(what: &str, packages: &str, files: &[&Path]) -> bool {
    let missing: Vec<_> = files.iter().filter(|f| !f.exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{what} needs {missing:?} (Debian: {packages}); run scripts/install-deps to install it"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n!!! SKIPPED: {msg}\n");
    false
}

/// A scratch directory for this test binary's build products (kept between runs so Go's
/// build cache makes the second run fast).
pub fn scratch(sub: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(sub);
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    dir
}
