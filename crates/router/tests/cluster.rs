//! 2 shards × 3 nginx replicas behind the router: placement on disk, exact bytes, ranges,
//! conditional requests, and each read mode past a dead replica.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use shoal_router::{ReadMode, Settings};
use support::*;

fn cluster() -> (Vec<Node>, String) {
    let nodes: Vec<Node> = (0..6).map(|_| Node::start()).collect();
    let shards = vec![
        nodes[..3].iter().map(Node::url).collect(),
        nodes[3..].iter().map(Node::url).collect(),
    ];
    (nodes, photosrv_config("jump", &shards, None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_on_every_replica_of_their_shard_only_and_read_back_exactly() {
    if !nginx_or_skip("cluster") {
        return;
    }
    let (nodes, text) = cluster();
    let cfg = config(&text);
    let front = Front::start(&cfg, settings()).await;
    let sizes = [0usize, 1, 4096, 65_537, 3 << 20];
    let mut files = Vec::new();
    for i in 0..12u64 {
        let path = format!("/images/{i}/photo-{i}.jpg");
        let body = content(i, sizes[i as usize % sizes.len()]);
        let r = put(&front.url(&path), body.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.body);
        assert_eq!(r.headers["x-shoal-stored"], "3/3");
        files.push((path, body));
    }
    for (path, body) in &files {
        let shard = &front.router.explain(path).unwrap().targets[0].shard;
        let owners = if shard == "shard1" { 0..3 } else { 3..6 };
        for (n, node) in nodes.iter().enumerate() {
            assert_eq!(
                node.has(path),
                owners.contains(&n),
                "{path} on node {n} ({shard})"
            );
            if owners.contains(&n) {
                assert_eq!(node.read(path).unwrap(), *body, "{path} bytes on node {n}");
            }
        }
        let r = get(&front.url(path)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], &body[..], "{path}");
    }
    // A file missing from one replica is stored anew: nginx answers 201 there and 204 on
    // the others, and the client hears 201 whichever replica finished first.
    let (path, body) = &files[1];
    let shard = &front.router.explain(path).unwrap().targets[0].shard;
    let one = if shard == "shard1" { 1 } else { 4 };
    std::fs::remove_file(nodes[one].root().join(&path[1..])).unwrap();
    for _ in 0..5 {
        let r = put(&front.url(path), body.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.body);
        assert_eq!(r.headers["x-shoal-stored"], "3/3");
        assert!(nodes[one].has(path));
        std::fs::remove_file(nodes[one].root().join(&path[1..])).unwrap();
    }
    let r = put(&front.url(path), body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Ranges, HEAD and conditionals pass through.
    let (path, body) = &files[4];
    let r = call(
        Method::GET,
        &front.url(path),
        &[("range", "bytes=100-1099")],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &body[100..1100]);
    assert_eq!(
        r.headers["content-range"],
        format!("bytes 100-1099/{}", body.len())
    );
    let r = call(
        Method::GET,
        &front.url(path),
        &[("range", "bytes=-10")],
        vec![],
    )
    .await;
    assert_eq!(&r.body[..], &body[body.len() - 10..]);
    let r = call(Method::HEAD, &front.url(path), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-length"], body.len().to_string());
    assert!(r.body.is_empty());
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    let r = call(
        Method::GET,
        &front.url(path),
        &[("if-none-match", &etag)],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    // Normalisation: the same file through an un-normalised path; a query is passed along.
    let r = get(&front.url("/images//4/photo-4%2Ejpg?w=100")).await;
    assert_eq!(&r.body[..], &body[..]);
    // Missing files are 404 after every replica was asked; DELETE removes from all.
    assert_eq!(
        get(&front.url("/images/nope.jpg")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(Method::DELETE, &front.url(path), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(nodes.iter().all(|n| !n.has(path)));
    assert_eq!(get(&front.url(path)).await.status, StatusCode::NOT_FOUND);
    // Deleting it again: no replica has it, so 404 as from nginx itself, and no replica
    // missed anything.
    let r = call(Method::DELETE, &front.url(path), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.headers["x-shoal-stored"], "3/3");
}

/// Every replica choice, with short timings.
fn read_modes() -> [ReadMode; 3] {
    [
        ReadMode::Random,
        ReadMode::MultiHead {
            timeout: Duration::from_millis(200),
        },
        ReadMode::Hedged {
            delay: Duration::from_millis(20),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_mode_retries_past_a_dead_replica() {
    if !nginx_or_skip("read modes") {
        return;
    }
    let (mut nodes, text) = cluster();
    let cfg = config(&text);
    let paths: Vec<String> = (0..10).map(|i| format!("/r/{i}.bin")).collect();
    {
        let front = Front::start(&cfg, settings()).await;
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(
                put(&front.url(p), content(i as u64, 5000)).await.status,
                StatusCode::CREATED
            );
        }
    }
    nodes[0].stop();
    nodes[4].stop();
    for mode in read_modes() {
        let front = Front::start(
            &cfg,
            Settings {
                read_mode: mode,
                ..settings()
            },
        )
        .await;
        for _round in 0..3 {
            for (i, p) in paths.iter().enumerate() {
                let r = get(&front.url(p)).await;
                assert_eq!(r.status, StatusCode::OK, "{mode:?} {p}: {:?}", r.body);
                assert_eq!(&r.body[..], &content(i as u64, 5000)[..]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_replica_is_answered_around_by_hedging_and_multi_head() {
    if !nginx_or_skip("hanging replica") {
        return;
    }
    let hang = Hang::start();
    let nodes: Vec<Node> = (0..2).map(|_| Node::start()).collect();
    let shard = vec![hang.url(), nodes[0].url(), nodes[1].url()];
    let cfg = config(&photosrv_config("jump", &[shard], None));
    for n in &nodes {
        std::fs::write(n.root().join("f.txt"), b"hello").unwrap();
    }
    for (mode, bound) in [
        (
            ReadMode::Hedged {
                delay: Duration::from_millis(50),
            },
            Duration::from_millis(1500),
        ),
        (
            ReadMode::MultiHead {
                timeout: Duration::from_millis(100),
            },
            Duration::from_millis(1500),
        ),
    ] {
        let front = Front::start(
            &cfg,
            Settings {
                read_mode: mode,
                ..settings()
            },
        )
        .await;
        for _ in 0..15 {
            let t = std::time::Instant::now();
            let r = get(&front.url("/f.txt")).await;
            assert_eq!(
                (r.status, &r.body[..]),
                (StatusCode::OK, &b"hello"[..]),
                "{mode:?}"
            );
            assert!(t.elapsed() < bound, "{mode:?} took {:?}", t.elapsed());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_405_and_400() {
    if !nginx_or_skip("bad input") {
        return;
    }
    let node = Node::start();
    let cfg = config(&photosrv_config("chash", &[vec![node.url()]], None));
    let front = Front::start(&cfg, settings()).await;
    for m in ["POST", "PATCH", "OPTIONS", "PROPFIND", "MKCOL"] {
        let r = call(
            Method::from_bytes(m.as_bytes()).unwrap(),
            &front.url("/a.jpg"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(r.headers["allow"], "GET, HEAD, PUT, DELETE");
    }
    for p in [
        "/a/../etc/passwd",
        "/a/%2e%2e/b",
        "/%252e%252e/x",
        "/.htaccess",
        "/a/./b",
        "/a%zz",
    ] {
        let r = get(&front.url(p)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{p}");
        let r = put(&front.url(p), "x").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{p}");
    }
    assert!(
        std::fs::read_dir(node.root()).unwrap().next().is_none(),
        "nothing was written"
    );
    assert_eq!(get(&front.url("/")).await.status, StatusCode::NOT_FOUND);
    let ro = Front::start(
        &cfg,
        Settings {
            read_only: true,
            ..settings()
        },
    )
    .await;
    let r = put(&ro.url("/a.jpg"), "x").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET, HEAD");
}

/// A replica that answers every request with a 500 (and keeps the connection open), and
/// the count of requests it answered.
fn failing_replica() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let reply = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops";
                            if (&conn).write_all(reply).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (url, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_answering_5xx_is_read_around_in_every_mode() {
    if !nginx_or_skip("5xx replica") {
        return;
    }
    let good = Node::start();
    let (bad, asked) = failing_replica();
    let cfg = config(&photosrv_config("jump", &[vec![bad, good.url()]], None));
    // The file is on the good replica only (written to its disk).
    std::fs::create_dir_all(good.root().join("f")).unwrap();
    std::fs::write(good.root().join("f/x.bin"), content(7, 3000)).unwrap();
    for mode in read_modes() {
        let front = Front::start(
            &cfg,
            Settings {
                read_mode: mode,
                ..settings()
            },
        )
        .await;
        // Random order: over 10 reads the failing replica is asked first about half the
        // time, and every read must still end at the good one.
        for _ in 0..10 {
            let r = get(&front.url("/f/x.bin")).await;
            assert_eq!(r.status, StatusCode::OK, "{mode:?}: {:?}", r.body);
            assert_eq!(&r.body[..], &content(7, 3000)[..]);
        }
    }
    assert!(
        asked.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the failing replica was asked, and read around"
    );
}

/// nginx's DAV module deletes a whole directory tree for a DELETE whose path ends in `/`. A
/// client script deleting `/images/$name` with an empty name would wipe every file under
/// `/images/` on each replica of the shard; the router writes files, never directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_of_a_directory_is_refused_and_deletes_nothing() {
    if !nginx_or_skip("directory DELETE") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let shard = nodes.iter().map(Node::url).collect();
    let cfg = config(&photosrv_config("jump", &[shard], None));
    let front = Front::start(&cfg, settings()).await;
    let r = put(&front.url("/images/a.jpg"), "photo").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    for p in [
        "/images/",
        "/images//",
        "/images%2F",
        "/images%252F",
        "/images/?x=1",
    ] {
        let r = call(Method::DELETE, &front.url(p), &[], vec![]).await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{p}: {:?}",
            r.body
        );
        assert_eq!(r.headers["allow"], "GET, HEAD", "{p}");
        let r = put(&front.url(p), "x").await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{p}: {:?}",
            r.body
        );
        for n in &nodes {
            assert!(
                n.has("/images/a.jpg"),
                "{p} deleted the tree on {}",
                n.url()
            );
        }
    }
    // A file is still deleted as before.
    let r = call(Method::DELETE, &front.url("/images/a.jpg"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    for n in &nodes {
        assert!(!n.has("/images/a.jpg"));
    }
}
