//! `shoal upload`'s library half against real nginx WebDAV nodes: local trees on every
//! replica of their shard only, `check` skipping what is present, URL sources that 404 or
//! fail, deletes, and a replica down (quorum met, the miss journalled).

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shoal_router::upload::{self, Mode, Outcome, UploadOptions};
use shoal_router::{Router, Settings, journal};
use support::*;

/// Runs an upload and returns each line's outcome, in input order.
async fn load(router: &Router, lines: &[&str], opts: &UploadOptions) -> Vec<Outcome> {
    let mut got = std::collections::HashMap::new();
    let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let fut = upload::run(router, lines.clone(), opts, |l, o| {
        got.insert(l.to_string(), o.clone());
    });
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("upload finished within 60s");
    lines.iter().map(|l| got[l].clone()).collect()
}

fn local(root: &Path) -> UploadOptions {
    UploadOptions {
        mode: Mode::Local,
        local_root: Some(root.to_path_buf()),
        ..UploadOptions::default()
    }
}

fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (p, body) in files {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, body).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_tree_lands_on_every_replica_of_its_shard_only_and_deletes_remove_it() {
    if !nginx_or_skip("upload tree") {
        return;
    }
    let nodes: Vec<Node> = (0..6).map(|_| Node::start()).collect();
    let shards = vec![
        nodes[..3].iter().map(Node::url).collect(),
        nodes[3..].iter().map(Node::url).collect(),
    ];
    let router = Router::new(&config(&photosrv_config("jump", &shards, None)), settings()).unwrap();
    let src = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..16u64)
        .map(|i| {
            let len = [0usize, 1, 5000, 300_000][i as usize % 4];
            (format!("images/{}/p-{i}.jpg", i % 3), content(i, len))
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    write_tree(src.path(), &refs);
    // photosrv's key rule: `./` stripped, `//` collapsed.
    let lines: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, (p, _))| match i % 3 {
            0 => format!("./{p}"),
            1 => p.replacen('/', "//", 1),
            _ => p.clone(),
        })
        .collect();
    let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let opts = UploadOptions {
        workers: 3,
        ..local(src.path())
    };
    for (l, o) in line_refs.iter().zip(load(&router, &line_refs, &opts).await) {
        assert_eq!(
            o,
            Outcome::Stored {
                stored: "3/3".into()
            },
            "{l}"
        );
    }
    let mut per_shard = [0, 0];
    for (p, body) in &files {
        let shard = &router.explain(format!("/{p}")).unwrap().targets[0].shard;
        let owners = if shard == "shard1" { 0..3 } else { 3..6 };
        per_shard[usize::from(shard != "shard1")] += 1;
        for (n, node) in nodes.iter().enumerate() {
            assert_eq!(node.has(p), owners.contains(&n), "{p} on node {n}");
            if owners.contains(&n) {
                assert_eq!(node.read(p).unwrap(), *body, "{p} bytes on node {n}");
            }
        }
    }
    assert!(per_shard[0] > 0 && per_shard[1] > 0, "{per_shard:?}");
    // Delete mode takes keys; half the files go from every replica.
    let gone: Vec<&str> = files.iter().step_by(2).map(|(p, _)| p.as_str()).collect();
    let del = UploadOptions {
        mode: Mode::Delete,
        ..UploadOptions::default()
    };
    assert!(
        load(&router, &gone, &del)
            .await
            .iter()
            .all(|o| *o == Outcome::Deleted)
    );
    for (i, (p, _)) in files.iter().enumerate() {
        let on = nodes.iter().filter(|n| n.has(p)).count();
        assert_eq!(on, if i % 2 == 0 { 0 } else { 3 }, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_skips_files_already_present_and_uploads_the_rest() {
    if !nginx_or_skip("upload check") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let cfg = config(&photosrv_config(
        "jump",
        &[nodes.iter().map(Node::url).collect()],
        None,
    ));
    let router = Router::new(&cfg, settings()).unwrap();
    let src = tempfile::tempdir().unwrap();
    write_tree(
        src.path(),
        &[
            ("a.jpg", content(1, 100)),
            ("b.jpg", content(2, 100)),
            ("c.jpg", content(3, 100)),
        ],
    );
    let first = load(&router, &["a.jpg", "b.jpg"], &local(src.path())).await;
    assert!(
        first.iter().all(|o| matches!(o, Outcome::Stored { .. })),
        "{first:?}"
    );
    // Mark a.jpg on every replica: a re-upload would overwrite the marker. b.jpg vanishes.
    for n in &nodes {
        std::fs::write(n.root().join("a.jpg"), b"marker").unwrap();
        std::fs::remove_file(n.root().join("b.jpg")).unwrap();
    }
    let opts = UploadOptions {
        check: true,
        ..local(src.path())
    };
    let got = load(&router, &["a.jpg", "b.jpg", "c.jpg"], &opts).await;
    assert_eq!(got[0], Outcome::Present);
    assert!(matches!(got[1], Outcome::Stored { .. }), "{got:?}");
    assert!(matches!(got[2], Outcome::Stored { .. }), "{got:?}");
    for n in &nodes {
        assert_eq!(n.read("a.jpg").unwrap(), b"marker", "a.jpg was PUT again");
        assert_eq!(n.read("b.jpg").unwrap(), content(2, 100));
        assert_eq!(n.read("c.jpg").unwrap(), content(3, 100));
    }
    // Without check, the marker is overwritten.
    load(&router, &["a.jpg"], &local(src.path())).await;
    assert_eq!(nodes[0].read("a.jpg").unwrap(), content(1, 100));
}

/// A source that answers `reply` to every request (then holds the connection), until dropped.
struct Canned {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Canned {
    fn start() -> Canned {
        Self::answering(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops",
        )
    }

    /// Answers with headers promising 1000 bytes, sends 10, and stalls.
    fn stalling() -> Canned {
        Self::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
    }

    fn answering(reply: &'static [u8]) -> Canned {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in l.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let _ = c.write_all(reply);
                held.push(c);
            }
        });
        Canned {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_sources_that_404_are_skipped_and_other_failures_are_listed() {
    if !nginx_or_skip("upload urls") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let origin = Node::start();
    let bad = Canned::start();
    std::fs::create_dir_all(origin.root().join("x")).unwrap();
    std::fs::write(origin.root().join("x/ok.jpg"), content(9, 70_000)).unwrap();
    let cfg = config(&photosrv_config(
        "jump",
        &[nodes.iter().map(Node::url).collect()],
        None,
    ));
    let router = Router::new(&cfg, settings()).unwrap();
    let ok = format!("{}/x/ok.jpg", origin.url());
    let missing = format!("{}/x/missing.jpg", origin.url());
    let five = format!("http://127.0.0.1:{}/y/five.jpg", bad.port);
    let lines = [ok.as_str(), missing.as_str(), five.as_str(), "not a url"];
    let got = load(&router, &lines, &UploadOptions::default()).await;
    assert_eq!(
        got[0],
        Outcome::Stored {
            stored: "3/3".into()
        }
    );
    assert_eq!(got[1], Outcome::SourceMissing);
    assert!(
        matches!(&got[2], Outcome::Failed(m) if m.contains("500")),
        "{got:?}"
    );
    assert!(got[3].is_failure());
    for n in &nodes {
        assert_eq!(n.read("x/ok.jpg").unwrap(), content(9, 70_000));
        assert!(!n.has("x/missing.jpg") && !n.has("y/five.jpg"));
    }
}

/// An `https://` source is fetched over TLS, its certificate checked like a storage node's
/// (the system's CAs and `storage_ca`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_url_sources_are_fetched_over_tls() {
    if !nginx_or_skip("upload https urls") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let origin = Node::start_with_tls(&cert, &key);
    std::fs::create_dir_all(origin.root().join("t")).unwrap();
    std::fs::write(origin.root().join("t/a.jpg"), content(11, 90_000)).unwrap();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let cfg = config(&photosrv_config(
        "jump",
        &[nodes.iter().map(Node::url).collect()],
        None,
    ));
    let url = format!("{}/t/a.jpg", origin.https_url());

    // Not trusting the source's CA: a failure naming the certificate, nothing stored.
    let router = Router::new(&cfg, settings()).unwrap();
    let got = load(&router, &[url.as_str()], &UploadOptions::default()).await;
    assert!(
        matches!(&got[0], Outcome::Failed(m) if m.contains("certificate")),
        "{got:?}"
    );
    assert!(nodes.iter().all(|n| !n.has("t/a.jpg")));

    let trusting = Settings {
        storage_ca: Some(ca),
        ..settings()
    };
    let router = Router::new(&cfg, trusting).unwrap();
    let got = load(&router, &[url.as_str()], &UploadOptions::default()).await;
    assert_eq!(
        got[0],
        Outcome::Stored {
            stored: "3/3".into()
        }
    );
    for n in &nodes {
        assert_eq!(n.read("t/a.jpg").unwrap(), content(11, 90_000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_down_uploads_reach_quorum_and_the_journal_records_the_misses() {
    if !nginx_or_skip("upload one down") {
        return;
    }
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let jpath = dir.path().join("journal");
    let cfg = config(&photosrv_config(
        "jump",
        &[nodes.iter().map(Node::url).collect()],
        None,
    ));
    let router = Router::new(
        &cfg,
        Settings {
            journal: Some(jpath.clone()),
            ..settings()
        },
    )
    .unwrap();
    nodes[1].stop();
    let src = tempfile::tempdir().unwrap();
    let names = ["d/1.jpg", "d/2.jpg", "d/3.jpg"];
    let files: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (*n, content(5, 1000))).collect();
    write_tree(src.path(), &files);
    let got = load(&router, &names, &local(src.path())).await;
    for o in &got {
        assert_eq!(
            *o,
            Outcome::Stored {
                stored: "2/3".into()
            }
        );
    }
    let (entries, bad) = journal::read(&jpath).unwrap();
    assert_eq!(bad, 0);
    let mut missed: Vec<&str> = entries
        .iter()
        .map(|e| std::str::from_utf8(&e.path).unwrap())
        .collect();
    missed.sort_unstable();
    assert_eq!(missed, ["/d/1.jpg", "/d/2.jpg", "/d/3.jpg"]);
    assert!(
        entries
            .iter()
            .all(|e| e.replica == nodes[1].url() && e.op == "PUT")
    );
    for n in [&nodes[0], &nodes[2]] {
        assert!(names.iter().all(|p| n.has(p)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_stalls_mid_body_fails_within_the_write_timeout_and_stores_nothing() {
    if !nginx_or_skip("upload stall") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let stall = Canned::stalling();
    let cfg = config(&photosrv_config(
        "jump",
        &[nodes.iter().map(Node::url).collect()],
        None,
    ));
    let router = Router::new(
        &cfg,
        Settings {
            write_timeout: Duration::from_millis(800),
            ..settings()
        },
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/s/stall.jpg", stall.port);
    let got = load(&router, &[url.as_str()], &UploadOptions::default()).await;
    assert!(
        matches!(&got[0], Outcome::Failed(m) if m.contains("write-timeout")),
        "{got:?}"
    );
    // nginx renames a PUT's temporary file into place only once the body is complete.
    assert!(nodes.iter().all(|n| !n.has("s/stall.jpg")));
}
