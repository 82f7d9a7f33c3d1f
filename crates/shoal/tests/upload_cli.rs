//! `shoal upload` as an operator runs it: the real binary, items on stdin, failures on stdout
//! (one per line, as read) and a non-zero exit against closed ports; a local tree into real
//! nginx WebDAV nodes with progress lines (stderr not a terminal) and the progress bar (on a
//! pseudo-terminal, through util-linux `script`). The library's upload behaviour is tested in
//! `crates/router/tests/upload.rs`.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    shoal_testkit::free_port()
}

/// Runs shoal in `dir` with `stdin`; kills it if it has not finished within 30s.
fn shoal(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let (ok, out, err) = shoal_bytes(dir, args, stdin.as_bytes());
    (ok, String::from_utf8(out).unwrap(), err)
}

/// [`shoal`] with any bytes in and out on stdin and stdout (file names need not be UTF-8).
fn shoal_bytes(dir: &std::path::Path, args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shoal");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
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
    let (mut out, mut err) = (Vec::new(), String::new());
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
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
    // The replica's own failure, not a body stall it never had.
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("took no body data"), "{err}");
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

/// 2 shards × 3 nginx replicas: a tree of 24 files uploaded with `--local` lands on every
/// replica of the shard `shoal hash --paths` names and on no other node, with one progress
/// line per item under `--progress-interval 0s`; `--check` then skips all of them; on a
/// terminal the progress bar with rate and ETA is drawn.
#[test]
fn a_local_tree_lands_on_its_shards_with_progress_and_check_skips_it() {
    if !nginx_or_skip("upload_cli") {
        return;
    }
    let nodes: Vec<Node> = (0..6).map(|_| Node::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let urls = |r: std::ops::Range<usize>| nodes[r].iter().map(Node::url).collect::<Vec<_>>();
    std::fs::write(
        dir.path().join("route.cfg"),
        photosrv_config("jump", &[urls(0..3), urls(3..6)], None),
    )
    .unwrap();
    let mut items = String::new();
    for i in 0..24 {
        let rel = format!("img/{}/{i}.jpg", i % 3);
        std::fs::create_dir_all(dir.path().join(format!("img/{}", i % 3))).unwrap();
        std::fs::write(dir.path().join(&rel), format!("bytes of {i}").repeat(i + 1)).unwrap();
        items.push_str(&format!("./{rel}\n"));
    }
    let upload = ["upload", "-c", "route.cfg", "--dc", "test", "--local"];
    let (ok, out, err) = shoal(
        dir.path(),
        &[
            &upload[..],
            &["--workers", "4", "--progress-interval", "0s"],
        ]
        .concat(),
        &items,
    );
    assert!(ok, "stderr: {err}");
    assert!(out.is_empty(), "nothing failed: {out}");
    let progress = err.lines().filter(|l| l.contains("/24 done, ")).count();
    assert_eq!(progress, 24, "one progress line per item: {err}");
    assert!(err.contains("ETA"), "{err}");
    assert!(
        err.contains("24 stored, 0 already present, 0 missing at the source, 0 failed"),
        "{err}"
    );

    // Where `shoal hash --paths` says, and nowhere else.
    let paths: Vec<String> = items
        .lines()
        .map(|l| l.trim_start_matches('.').to_string())
        .collect();
    let hash = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["hash", "-a", "jump", "-s", "shard1,shard2", "--paths"])
        .args(&paths)
        .output()
        .unwrap();
    let placed = String::from_utf8(hash.stdout).unwrap();
    let mut per_shard = [0, 0];
    for (line, path) in placed.lines().zip(&paths) {
        let shard = usize::from(line.ends_with("\tshard2"));
        per_shard[shard] += 1;
        let want = std::fs::read(dir.path().join(&path[1..])).unwrap();
        for (i, n) in nodes.iter().enumerate() {
            if i / 3 == shard {
                assert_eq!(
                    n.read(path).as_deref(),
                    Some(&want[..]),
                    "{path} on {}",
                    n.url()
                );
            } else {
                assert!(!n.has(path), "{path} also on {}", n.url());
            }
        }
    }
    assert!(per_shard[0] > 0 && per_shard[1] > 0, "{per_shard:?}");

    let (ok, _, err) = shoal(dir.path(), &[&upload[..], &["--check"]].concat(), &items);
    assert!(ok, "stderr: {err}");
    assert!(err.contains("0 stored, 24 already present"), "{err}");

    // On a terminal: the bar, with position, rate and ETA.
    std::fs::write(dir.path().join("items"), &items).unwrap();
    let cmd = format!(
        "{} upload -c route.cfg --dc test --local -f items",
        env!("CARGO_BIN_EXE_shoal")
    );
    let tty = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output();
    match tty {
        Ok(o) => {
            let screen = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success(), "{screen}");
            assert!(
                screen.contains("/24 ") && screen.contains("ETA"),
                "{screen:?}"
            );
            assert!(screen.contains("24 stored"), "{screen:?}");
            assert!(
                !screen.contains(" done, "),
                "no log lines on a terminal: {screen:?}"
            );
        }
        Err(e) => eprintln!("SKIPPED the progress-bar check: util-linux script: {e}"),
    }
}

/// Local file names are bytes on Unix, and `find` prints them as such: a Latin-1 name (the
/// byte 0xE9) is read from stdin as it is, stored on the nodes under the same bytes (so a GET
/// of `caf%E9.jpg` through the router finds it, as photosrv's did), and a failed one is
/// printed on stdout exactly as read.
#[test]
fn local_files_whose_names_are_not_utf8_are_stored_under_their_raw_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    if !nginx_or_skip("upload_cli non-UTF-8") {
        return;
    }
    let nodes: Vec<Node> = (0..2).map(|_| Node::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("route.cfg"),
        photosrv_config("jump", &[nodes.iter().map(Node::url).collect()], None),
    )
    .unwrap();
    let at = |root: &std::path::Path, name: &[u8]| root.join(OsStr::from_bytes(name));
    std::fs::create_dir_all(at(dir.path(), b"d\xff")).unwrap();
    std::fs::write(at(dir.path(), b"caf\xe9.jpg"), b"latin-1").unwrap();
    std::fs::write(at(dir.path(), b"d\xff/x.jpg"), b"in a latin-1 directory").unwrap();
    let (ok, out, err) = shoal_bytes(
        dir.path(),
        &["upload", "-c", "route.cfg", "--dc", "test", "--local"],
        b"caf\xe9.jpg\n./d\xff/x.jpg\nmissing\xe9.jpg\n",
    );
    assert!(!ok, "the missing file fails the run: {err}");
    assert_eq!(out, b"missing\xe9.jpg\n", "stderr: {err}");
    assert!(
        err.contains("2 stored") && err.contains("1 failed"),
        "{err}"
    );
    for n in &nodes {
        assert_eq!(
            std::fs::read(at(&n.root(), b"caf\xe9.jpg")).unwrap(),
            b"latin-1"
        );
        assert_eq!(
            std::fs::read(at(&n.root(), b"d\xff/x.jpg")).unwrap(),
            b"in a latin-1 directory"
        );
    }
}
