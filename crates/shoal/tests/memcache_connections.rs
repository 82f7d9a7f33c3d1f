//! Server connections as twemproxy users set them up: `--preconnect` (nutcracker's
//! `preconnect: true`) opens every server connection at start instead of at its first
//! request, and `--tcp-keepalive` (`tcpkeepalive: true`) turns TCP keepalive on for them, so
//! that a server host gone without closing its connections is noticed. Both were accepted in
//! a nutcracker.yml and not applied before.
#![allow(clippy::unwrap_used)]

#[path = "../../memcache/tests/support/mod.rs"]
mod support;

mod common;
use common::memcache::{Proc, start};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::shoal::Client;
use support::{Memcached, free_port};

/// memcached's `curr_connections`, asked on `stats` (one connection for the whole test, so
/// that the count moves only with the proxy's connections).
fn curr_connections(stats: &mut Client) -> u64 {
    let text = String::from_utf8(stats.call(b"stats\r\n")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("STAT curr_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no curr_connections in {text}"))
}

/// Waits (at most 20 s: a starved CI machine once took longer than 5) until
/// `curr_connections` is `want`; returns the last count seen.
fn until_connections(stats: &mut Client, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = curr_connections(stats);
        if n == want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A connect timeout no busy test machine reaches: a preconnect that times out is made at
/// the connection's first request instead, which these tests would take for a missing one.
const CONNECT_TIMEOUT: &str = "10s";

fn proxy(servers: &[&Memcached], extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let servers = servers
        .iter()
        .map(|m| m.addr())
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec!["--listen", &listen, "--servers", &servers];
    args.extend_from_slice(&["--connect-timeout", CONNECT_TIMEOUT]);
    args.extend_from_slice(extra);
    (start(&args, &[port]), port)
}

#[test]
fn preconnect_opens_every_server_connection_at_start_and_lazily_otherwise() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let (mut sa, mut sb) = (Client::connect(a.port), Client::connect(b.port));
    let (base_a, base_b) = (curr_connections(&mut sa), curr_connections(&mut sb));

    // Without --preconnect no connection is made before a request needs one.
    let (_lazy, lazy_port) = proxy(&[&a, &b], &["--conns", "3"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        curr_connections(&mut sa),
        base_a,
        "connections before any request"
    );

    let (_eager, _) = proxy(&[&a, &b], &["--conns", "3", "--preconnect"]);
    assert_eq!(until_connections(&mut sa, base_a + 3), base_a + 3);
    assert_eq!(until_connections(&mut sb, base_b + 3), base_b + 3);

    // The lazy proxy still connects at a request, once per client connection's slot.
    let mut c = Client::connect(lazy_port);
    assert_eq!(c.call(b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    let want = base_a + base_b + 7;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut both = 0;
    while both != want && Instant::now() < deadline {
        both = curr_connections(&mut sa) + curr_connections(&mut sb);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        both, want,
        "one server got the set, over one new connection"
    );
}

#[test]
fn nutcracker_yml_preconnect_and_tcpkeepalive_are_applied() {
    let Some(m) = Memcached::start() else { return };
    if !ss_available() {
        return;
    }
    let mut stats = Client::connect(m.port);
    let base = curr_connections(&mut stats);
    let dir = std::env::temp_dir().join(format!("shoal-mc-conns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("nutcracker.yml");
    let port = free_port();
    std::fs::write(
        &file,
        format!(
            "pool:\n  listen: 127.0.0.1:{port}\n  preconnect: true\n  tcpkeepalive: true\n  \
             server_connections: 2\n  servers:\n   - {}:1\n",
            m.addr()
        ),
    )
    .unwrap();
    let _p = start(
        &[
            "--nutcracker",
            file.to_str().unwrap(),
            "--connect-timeout",
            CONNECT_TIMEOUT,
        ],
        &[port],
    );
    assert_eq!(until_connections(&mut stats, base + 2), base + 2);
    let timers = keepalive_timers(m.port);
    assert_eq!(
        timers.len(),
        2,
        "both connections to the server should have a keepalive timer: {timers:?}"
    );
    // The probe starts after 60 s of silence, not the system's two hours.
    for t in &timers {
        let secs: u64 = t
            .strip_prefix("timer:(keepalive,")
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected timer {t}"));
        assert!(secs <= 60, "keepalive in {secs} s: {t}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_tcp_keepalive_server_connections_have_no_keepalive_timer() {
    let Some(m) = Memcached::start() else { return };
    if !ss_available() {
        return;
    }
    let mut stats = Client::connect(m.port);
    let base = curr_connections(&mut stats);
    let (_p, _) = proxy(&[&m], &["--conns", "2", "--preconnect"]);
    assert_eq!(until_connections(&mut stats, base + 2), base + 2);
    assert_eq!(keepalive_timers(m.port), Vec::<String>::new());
    let (_k, _) = proxy(&[&m], &["--conns", "1", "--preconnect", "--tcp-keepalive"]);
    assert_eq!(until_connections(&mut stats, base + 3), base + 3);
    assert_eq!(keepalive_timers(m.port).len(), 1);
}

/// `ss` (iproute2) is installed; says loudly when it is not (and fails under `CI=true`).
fn ss_available() -> bool {
    if Path::new("/usr/bin/ss").exists() || Path::new("/usr/sbin/ss").exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("ss is missing: run scripts/install-deps (it installs iproute2)");
    }
    eprintln!("\n!!! SKIPPED: ss (iproute2) is not installed; run scripts/install-deps. !!!\n");
    false
}

/// The keepalive timers (`timer:(keepalive,59sec,0)`) of established connections to
/// `127.0.0.1:port`, as `ss -tno` shows them.
fn keepalive_timers(port: u16) -> Vec<String> {
    let out = Command::new("ss")
        .args([
            "-tnoH",
            "state",
            "established",
            "dst",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ss: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .filter(|w| w.starts_with("timer:(keepalive,"))
        .map(str::to_owned)
        .collect()
}
