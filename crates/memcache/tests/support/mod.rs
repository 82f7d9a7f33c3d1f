//! Test harness: a real memcached on a loopback port, killed by its own handle on drop.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const MEMCACHED: &str = "/usr/bin/memcached";

/// A memcached child process; killed and reaped on drop.
#[derive(Debug)]
pub struct Memcached {
    child: Child,
    pub port: u16,
    pub host: String,
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Memcached {
    /// Starts memcached, or returns `None` (after saying why, loudly) when it is not
    /// installed. Under `CI=true` a missing memcached fails the test instead.
    pub fn start() -> Option<Memcached> {
        Self::start_on("127.0.0.1", None)
    }

    /// Whether memcached is installed; says loudly when it is not (and fails under `CI=true`).
    pub fn available() -> bool {
        if !Path::new(MEMCACHED).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{MEMCACHED} is missing: run scripts/install-deps (it installs memcached)");
            }
            eprintln!(
                "\n!!! SKIPPED: {MEMCACHED} is not installed, so the codec was NOT checked \
                 against a real memcached. Run scripts/install-deps. !!!\n"
            );
            return false;
        }
        true
    }

    /// Starts memcached on `host` and `port` (a free port when `None`).
    pub fn start_on(host: &str, fixed: Option<u16>) -> Option<Memcached> {
        Self::launch(host, fixed, &[])
    }

    /// Starts memcached with `extra` arguments (`-I 2m`) on a free loopback port.
    pub fn start_with(extra: &[&str]) -> Option<Memcached> {
        Self::launch("127.0.0.1", None, extra)
    }

    fn launch(host: &str, fixed: Option<u16>, extra: &[&str]) -> Option<Memcached> {
        if !Self::available() {
            return None;
        }
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = fixed.unwrap_or_else(free_port);
            let mut child = Command::new(MEMCACHED)
                .args(["-l", host, "-p", &port.to_string(), "-U", "0"])
                .args(["-t", "1", "-m", "64", "-u", "root"]) // -u matters only as root
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn memcached");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    last_err = format!("memcached exited with {status}: {err}");
                    break;
                }
                // The port was free when picked, but another process may have taken it
                // since (memcached 1.6.18 has no `-p 0`: port 0 turns TCP off). Only a
                // server that reports our child's pid is ours.
                if let Ok(s) = TcpStream::connect((host, port)) {
                    match stats_pid(s) {
                        Some(pid) if pid == child.id() => {
                            return Some(Memcached {
                                child,
                                port,
                                host: host.to_owned(),
                            });
                        }
                        Some(pid) => {
                            last_err = format!("port {port} belongs to pid {pid}, not ours");
                            break;
                        }
                        None => {} // ours, still starting up, or someone else's: ask again
                    }
                }
                sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("memcached did not start: {last_err}");
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect((self.host.as_str(), self.port)).expect("connect to memcached");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        s
    }
}

impl Memcached {
    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Kills the server (its port frees up).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a server that accepts but never answers.
    pub fn pause(&self, stop: bool) {
        let sig = if stop { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} failed");
    }
}

/// The `pid` a memcached reports in `stats` on `s`, if it answers within a second.
fn stats_pid(mut s: TcpStream) -> Option<u32> {
    s.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
    s.write_all(b"stats\r\n").ok()?;
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !got.ends_with(b"END\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .find_map(|l| l.strip_prefix("STAT pid "))
        .and_then(|p| p.trim().parse().ok())
}

/// A loopback port nobody listens on right now (see shoal-testkit).
pub use shoal_testkit::free_port;

/// What a server said on one connection.
#[derive(Debug, Default)]
pub struct Heard {
    pub bytes: Vec<u8>,
    /// The server closed the connection (EOF or reset).
    pub closed: bool,
}

/// Sends `chunks` (pausing between them so that each arrives in its own read), then reads
/// until `done(bytes)` holds, the server closes, or 3 s pass.
pub fn exchange(s: &mut TcpStream, chunks: &[Vec<u8>], done: impl Fn(&[u8]) -> bool) -> Heard {
    let mut heard = Heard::default();
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 {
            sleep(Duration::from_millis(60));
        }
        if s.write_all(c).is_err() {
            break; // the server may already have closed; the read below tells
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline && !done(&heard.bytes) {
        match s.read(&mut buf) {
            Ok(0) => {
                heard.closed = true;
                break;
            }
            Ok(n) => heard.bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                heard.closed = true;
                break;
            }
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    heard
}

pub mod bin;
pub mod shoal;

/// One column of shoal-ring's golden table (`crates/ring/tests/vectors/memcached.tsv`),
/// ready to replay: memcached servers started at the column's own addresses, and the rows
/// whose key a text-protocol client can send, as (key, index of its owner). `None` when
/// memcached is not installed (after saying so, or failing under `CI=true`).
pub struct GoldenColumn {
    /// The column's `#col` line: name, algorithm, members.
    pub header: String,
    /// The members, as given to the proxy.
    pub members: Vec<String>,
    /// A memcached at each member's address, in member order.
    pub servers: Vec<Memcached>,
    /// (key, owner index).
    pub rows: Vec<(String, usize)>,
}

/// The golden column named `name`; see [`GoldenColumn`].
pub fn golden_column(name: &str) -> Option<GoldenColumn> {
    // Both crates that use this module sit next to crates/ring.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ring/tests/vectors/memcached.tsv");
    let text = std::fs::read_to_string(&path).expect("the golden table");
    let cols: Vec<&str> = text.lines().filter(|l| l.starts_with("#col\t")).collect();
    let prefix = format!("#col\t{name}\t");
    let at = cols
        .iter()
        .position(|c| c.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no column {name} in {}", path.display()));
    let members: Vec<String> = cols[at]
        .rsplit('\t')
        .next()
        .expect("a members field")
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut servers = Vec::new();
    for m in &members {
        let port: u16 = m
            .split(':')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("a member host:port");
        servers.push(Memcached::start_on("127.0.0.1", Some(port))?);
    }
    // Rows after the header: key, then one owner index per column.
    let rows = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let key = f[0];
            let ok =
                !key.is_empty() && key.len() <= 250 && key.bytes().all(|b| b.is_ascii_graphic());
            ok.then(|| (key.to_owned(), f[1 + at].parse().expect("an owner index")))
        })
        .collect();
    Some(GoldenColumn {
        header: cols[at].to_owned(),
        members,
        servers,
        rows,
    })
}
