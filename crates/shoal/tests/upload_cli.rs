//! `shoal upload` as an operator runs it: the real binary, items on stdin, failures on stdout
//! (one per line, as read) and a non-zero exit. The nginx-backed behaviour is tested in
//! `crates/router/tests/upload.rs`; here every storage node is a closed port.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    shoal_testkit::free_port()
}

/// Runs shoal in `dir` with `stdin`; kills it if it has not finished within 30s.
fn shoal(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shoal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shoal upload did not finish within 30s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.success(), out, err)
}

#[test]
fn failed_items_are_listed_on_stdout_as_read_and_the_exit_is_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<String> = (0..3)
        .map(|_| format!("http://127.0.0.1:{}", closed_port()))
        .collect();
    std::fs::write(
        dir.path().join("route.cfg"),
        format!(
            "<photosrv>\n chooser jump\n <test>\n  <shards>\n   shard1 {}\n  </shards>\n </test>\n</photosrv>\n",
            replicas.join(" ")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::write(dir.path().join("a.jpg"), b"a").unwrap();
    std::fs::write(dir.path().join("b/c.jpg"), b"c").unwrap();
    let (ok, out, err) = shoal(
        dir.path(),
        &[
            "upload",
            "-c",
            "route.cfg",
            "--dc",
            "test",
            "--local",
            "--connect-timeout",
            "500ms",
        ],
        "a.jpg\n./b/c.jpg\n\nmissing.jpg\n",
    );
    assert!(!ok, "stderr: {err}");
    let mut listed: Vec<&str> = out.lines().collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        ["./b/c.jpg", "a.jpg", "missing.jpg"],
        "stderr: {err}"
    );
    assert!(
        err.contains("0 stored") && err.contains("3 failed"),
        "{err}"
    );
    assert!(err.contains("write quorum not reached"), "{err}");
    assert!(
        err.trim_end()
            .ends_with("3 of 3 item(s) failed; they are listed on stdout for a retry"),
        "{err}"
    );
}

#[test]
fn a_missing_migration_ring_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("route.cfg"),
        "<photosrv>\n <test>\n  <shards>\n   shard1 http://127.0.0.1:1\n  </shards>\n </test>\n</photosrv>\n",
    )
    .unwrap();
    let (ok, out, err) = shoal(
        dir.path(),
        &["upload", "-c", "route.cfg", "--dc", "test", "--migration"],
        "http://127.0.0.1:1/a.jpg\n",
    );
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("no <migration> ring"), "{err}");
}
