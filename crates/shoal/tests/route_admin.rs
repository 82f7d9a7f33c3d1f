//! `shoal route`'s admin port over HTTP, on the real binary: the keyed migration switch
//! (wrong key, empty key, no migration ring, success persisted to the state file) and
//! `/metrics` carrying the router's own counters. The storage nodes are closed ports: nothing
//! here needs nginx.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::route::{Route, free_addr, request, try_request};

/// `shoal route` with `cfg` written into `dir`, health checks off.
fn start(dir: &Path, cfg: &str, extra: &[&str]) -> Route {
    let path = dir.join("route.cfg");
    std::fs::write(&path, cfg).unwrap();
    Route::start(&path, &[&["--health-interval", "0"], extra].concat())
}

fn config(migration: bool) -> String {
    let ring = |n: usize| {
        let mut s = String::from("  <test>\n   <shards>\n");
        for i in 1..=n {
            s.push_str(&format!("    shard{i} http://{}\n", free_addr()));
        }
        s + "   </shards>\n  </test>\n"
    };
    let mut s = format!("<photosrv>\n chooser jump\n{}", ring(2));
    if migration {
        s.push_str(&format!(
            " <migration>\n  chooser jump\n{} </migration>\n",
            ring(3)
        ));
    }
    s + "</photosrv>\n"
}

fn state(p: &PathBuf) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn migration_switch_refuses_bad_keys_and_persists_good_switches() {
    let dir = tempfile::tempdir().unwrap();
    let sf = dir.path().join("state");
    let sfs = sf.to_str().unwrap();
    let r = start(
        dir.path(),
        &config(true),
        &["--migration-key", "s3cret", "--migration-state", sfs],
    );
    let (code, body) = request(r.admin, "GET", "/migration/start?key=wrong", b"");
    assert_eq!((code, body.contains("invalid key")), (400, true), "{body}");
    let (code, body) = request(r.admin, "GET", "/migration/start", b"");
    assert_eq!((code, body.contains("invalid key")), (400, true), "{body}");
    let (code, _) = request(r.admin, "GET", "/migration/start?key=", b"");
    assert_eq!(code, 400);
    assert_eq!(state(&sf), "", "a refused switch wrote the state file");
    let (code, body) = request(r.admin, "GET", "/migration/start?key=s3cret", b"");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("msBothConfigs"), "{body}");
    assert_eq!(state(&sf), "msBothConfigs");
    let (code, body) = request(r.admin, "POST", "/migration/finish", b"key=s3cret");
    assert_eq!(code, 200, "{body}");
    assert_eq!(state(&sf), "msNewConfig");
    drop(r);
    // Restored at start.
    let r = start(
        dir.path(),
        &config(true),
        &["--migration-key", "s3cret", "--migration-state", sfs],
    );
    let (_, body) = request(r.admin, "GET", "/status", b"");
    assert!(body.contains("msNewConfig"), "{body}");
}

#[test]
fn an_empty_configured_key_refuses_every_switch() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), &config(true), &["--migration-key", ""]);
    let (code, body) = request(r.admin, "GET", "/migration/start?key=", b"");
    assert_eq!(code, 400);
    assert!(body.contains("no migration key is configured"), "{body}");
}

#[test]
fn a_switch_without_a_migration_ring_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), &config(false), &["--migration-key", "k"]);
    let (code, body) = request(r.admin, "GET", "/migration/start?key=k", b"");
    assert_eq!(code, 400);
    assert!(body.contains("missing migration ring"), "{body}");
}

#[test]
fn metrics_count_requests_and_replica_errors() {
    let dir = tempfile::tempdir().unwrap();
    // `--runtimes 0`: the one multi-threaded runtime (the default is a runtime per CPU).
    let r = start(
        dir.path(),
        &config(false),
        &["--connect-timeout", "300ms", "--runtimes", "0"],
    );
    let (code, _) = request(r.front, "GET", "/a/b.jpg", b"");
    assert_eq!(code, 502);
    let (_, m) = request(r.admin, "GET", "/metrics", b"");
    assert!(
        m.contains("shoal_route_requests_total{method=\"GET\",status=\"502\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("shoal_route_replica_errors_total{replica="),
        "{m}"
    );
}

#[test]
fn runtimes_share_the_front_port_the_router_and_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(
        dir.path(),
        &config(false),
        &["--runtimes", "2", "--connect-timeout", "300ms"],
    );
    // One connection each: the kernel spreads them over both runtimes' listeners.
    for _ in 0..6 {
        let (code, body) = request(r.front, "GET", "/a/b.jpg", b"");
        assert_eq!(code, 502, "{body}");
    }
    let (code, _) = request(r.front, "POST", "/a/b.jpg", b"");
    assert_eq!(code, 405);
    let (_, m) = request(r.admin, "GET", "/metrics", b"");
    assert!(
        m.contains("shoal_route_requests_total{method=\"GET\",status=\"502\"} 6"),
        "{m}"
    );
    let (code, _) = request(r.admin, "GET", "/status", b"");
    assert_eq!(code, 200);
}

/// `--admin-listen off`: no admin port, the front still serves, and SIGTERM still ends it.
#[test]
fn admin_off_serves_the_front_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("route.cfg");
    std::fs::write(&cfg, config(false)).unwrap();
    for runtimes in ["0", "2"] {
        let front = free_addr();
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["route", "--dc", "test", "--health-interval", "0", "-c"])
            .arg(&cfg)
            .args(["--listen", &front.to_string(), "--admin-listen", "off"])
            .args(["--runtimes", runtimes, "--connect-timeout", "300ms"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            if let Ok((code, _)) = try_request(front, "GET", "/a/b.jpg", b"") {
                break code;
            }
            assert!(child.try_wait().unwrap().is_none(), "shoal route exited");
            assert!(Instant::now() < deadline, "the front never answered");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(code, 502, "runtimes {runtimes}");
        shoal_testkit::signal(&child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "SIGTERM did not stop it");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "runtimes {runtimes}: {status}");
    }
}
