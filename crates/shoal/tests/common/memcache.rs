//! `shoal memcache` as a child process, and a small HTTP client for its admin port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A `shoal memcache` child, killed on drop; and the file its stderr goes to, if any. When
/// the test is failing, the drop prints whether the child was still running and the end of
/// that log: a child that died or closed a connection says why there.
pub struct Proc(pub Child, pub Option<PathBuf>);

impl Proc {
    /// A child whose stderr the test does not keep.
    pub fn new(child: Child) -> Proc {
        Proc(child, None)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let exited = self.0.try_wait().ok().flatten();
        let _ = self.0.kill();
        let _ = self.0.wait();
        let Some(log) = self.1.take() else { return };
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            let state = exited.map_or("was still running".to_owned(), |s| {
                format!("had exited ({s})")
            });
            eprintln!(
                "shoal memcache (pid {}) {state}; its stderr ends:\n{tail}",
                self.0.id()
            );
        }
        let _ = std::fs::remove_file(&log);
    }
}

/// Starts `shoal memcache ARGS` and waits until it listens on every port of `ports`.
/// Its stderr goes to a file in the temporary directory, shown if the test fails.
pub fn start(args: &[&str], ports: &[u16]) -> Proc {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!("shoal-memcache-{}-{n}.log", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("memcache")
        .args(args)
        .stderr(std::fs::File::create(&log).unwrap());
    let shown = log.clone();
    // A connect only says something listens; a reply says it is this proxy, serving. CI once
    // saw the first request after a bare connect fail; the child's log, now shown, will tell
    // why if it happens again.
    spawn_until(cmd, Some(log), ports, answers, || {
        let text = std::fs::read_to_string(&shown).unwrap_or_default();
        format!("shoal memcache {args:?} (stderr: {text})")
    })
}

/// Whether something on `port` answers `version` with at least a byte within 2 s: every port
/// `shoal memcache` opens does (`VERSION` on a memcached port, a 400 on the admin port, the
/// JSON on a twemproxy stats port).
fn answers(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut b = [0u8; 64];
    s.write_all(b"version\r\n").is_ok() && s.read(&mut b).is_ok_and(|n| n > 0)
}

/// Spawns `cmd` (its stdout dropped; its stderr where `cmd` sends it) and waits, at most 10 s,
/// until it listens on every port of `ports`; if it exits first, the test fails with `what()`
/// (say which process, and its log if it has one).
pub fn spawn_listening(cmd: Command, ports: &[u16], what: impl Fn() -> String) -> Proc {
    let listens = |port: u16| TcpStream::connect(("127.0.0.1", port)).is_ok();
    spawn_until(cmd, None, ports, listens, what)
}

/// [`spawn_listening`] with `ready(port)` as the test of each port, and the child's stderr
/// file `log` shown if the test fails.
fn spawn_until(
    mut cmd: Command,
    log: Option<PathBuf>,
    ports: &[u16],
    ready: impl Fn(u16) -> bool,
    what: impl Fn() -> String,
) -> Proc {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc(child, log);
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in ports {
        while !ready(*port) {
            if let Ok(Some(status)) = p.0.try_wait() {
                panic!("{} exited ({status})", what());
            }
            assert!(
                Instant::now() < deadline,
                "{} is not ready on {port}",
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
