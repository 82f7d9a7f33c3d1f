//! A `shoal serve` process for tests: started on loopback port 0, ready once it has printed
//! the lines the test waits for, killed through its handle on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `shoal serve`.
pub struct Serve {
    child: Child,
    /// The client address (`listening on http://...`).
    pub addr: SocketAddr,
    /// The admin address (`admin on http://...`), when the test waited for it.
    pub admin: Option<SocketAddr>,
    /// Every line it printed until it was ready.
    pub lines: Vec<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Sends SIGTERM: a graceful shutdown (replies in flight finish, then it exits).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        shoal_testkit::signal(&self.child, name);
    }

    /// Waits at most `within` for the process to exit; returns whether it exited cleanly.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for shoal serve") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "shoal serve did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `shoal serve --listen 127.0.0.1:0 ARGS...` and waits, at most 20 s, until it has
/// printed its client address and a line containing each of `also` (e.g. `admin on`,
/// `peers on`).
pub fn start(args: &[&str], also: &[&str]) -> Serve {
    spawn(args, also, &[], Stdio::null())
}

/// [`start`] with extra environment variables for the process.
pub fn start_with_env(args: &[&str], also: &[&str], env: &[(&str, &str)]) -> Serve {
    spawn(args, also, env, Stdio::null())
}

/// [`start`], with the process's log (its stderr) going to `log`.
pub fn start_logging_to(args: &[&str], also: &[&str], log: impl Into<Stdio>) -> Serve {
    spawn(args, also, &[], log)
}

fn spawn(args: &[&str], also: &[&str], env: &[(&str, &str)], log: impl Into<Stdio>) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("run shoal serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Killed on drop even if it never gets ready.
    let mut serve = Serve {
        child,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        admin: None,
        lines: Vec::new(),
    };
    let url = |l: &str| -> SocketAddr {
        let rest = l.split("://").nth(1).expect("a URL in the line");
        rest.split_whitespace()
            .next()
            .expect("an address")
            .parse()
            .expect("host:port")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut addr, mut seen) = (None, vec![false; also.len()]);
    while addr.is_none() || seen.iter().any(|s| !s) {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("shoal serve printed its addresses within 20 s");
        if line.contains("listening on") {
            addr = Some(url(&line));
        }
        if line.contains("admin on") {
            serve.admin = Some(url(&line));
        }
        for (s, marker) in seen.iter_mut().zip(also) {
            *s |= line.contains(marker);
        }
        serve.lines.push(line);
    }
    serve.addr = addr.expect("client address");
    serve
}
