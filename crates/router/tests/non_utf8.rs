//! Paths that are not UTF-8 once percent-decoded, against real nginx WebDAV nodes. photosrv
//! decoded with Go's `url.QueryUnescape`, which yields arbitrary bytes, hashed those bytes and
//! forwarded them re-encoded, so a Latin-1 file name (`caf%E9.jpg`, the byte 0xE9 on disk)
//! was served. The router must place, store, serve, journal and repair such a path by its
//! exact bytes.

#![allow(clippy::unwrap_used)]

mod support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use http::{Method, StatusCode};
use shoal_router::journal;
use support::*;

/// `bytes` (a path relative to a node's data root) as a file system path, byte for byte.
fn on_disk(node: &Node, bytes: &[u8]) -> PathBuf {
    node.root().join(OsStr::from_bytes(bytes))
}

/// The shard (0-based) photosrv's jump chooser gives `key` among `n` shards.
fn jump_shard(key: &[u8], n: usize) -> usize {
    shoal_ring::jump_hash(shoal_ring::hash::siphash24_zero(key), n).unwrap()
}

/// Two shards of two nodes each.
fn two_by_two() -> (Vec<Node>, shoal_router::RouteConfig) {
    let nodes: Vec<Node> = (0..4).map(|_| Node::start()).collect();
    let shards = vec![
        nodes[..2].iter().map(Node::url).collect(),
        nodes[2..].iter().map(Node::url).collect(),
    ];
    let cfg = config(&photosrv_config("jump", &shards, None));
    (nodes, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latin1_path_put_through_the_router_is_stored_under_the_raw_byte_and_read_back() {
    if !nginx_or_skip("latin-1 round trip") {
        return;
    }
    let (nodes, cfg) = two_by_two();
    let front = Front::start(&cfg, settings()).await;
    let key: &[u8] = b"x/caf\xe9.jpg";
    // Pinned (scripts/ring-vectors/models.py): shard 0 for the raw byte, 1 for UTF-8's é.
    let home = jump_shard(key, 2);
    assert_eq!((home, jump_shard("x/caf\u{e9}.jpg".as_bytes(), 2)), (0, 1));
    let body = content(41, 70_000);
    let r = put(&front.url("/x/caf%E9.jpg"), body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers["x-shoal-stored"], "2/2");
    for (i, n) in nodes.iter().enumerate() {
        let here = i / 2 == home;
        assert_eq!(on_disk(n, key).is_file(), here, "node {i}");
        if here {
            assert_eq!(std::fs::read(on_disk(n, key)).unwrap(), body, "node {i}");
            // The one file in x/ is named with the single byte 0xE9, not its UTF-8 form.
            let names: Vec<Vec<u8>> = std::fs::read_dir(n.root().join("x"))
                .unwrap()
                .map(|e| e.unwrap().file_name().as_bytes().to_vec())
                .collect();
            assert_eq!(names, [b"caf\xe9.jpg".to_vec()], "node {i}");
        }
    }
    // Read back, encoded once or twice, and with lower-case hex.
    for raw in ["/x/caf%E9.jpg", "/x/caf%25E9.jpg", "/x/caf%e9.jpg"] {
        let r = get(&front.url(raw)).await;
        assert_eq!(r.status, StatusCode::OK, "{raw}");
        assert_eq!(r.body, body, "{raw}");
    }
    let r = call(Method::DELETE, &front.url("/x/caf%E9.jpg"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(nodes.iter().all(|n| !on_disk(n, key).exists()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_put_on_disk_under_a_non_utf8_name_is_served() {
    if !nginx_or_skip("non-UTF-8 name on disk") {
        return;
    }
    let (nodes, cfg) = two_by_two();
    let front = Front::start(&cfg, settings()).await;
    // A directory and a file name that are not UTF-8, as an old photosrv cluster holds them.
    let key: &[u8] = b"old/\xff\xfe/na\xefve+1.jpg";
    let home = jump_shard(key, 2);
    // On one replica of its shard only: the read finds it on whichever it asks.
    let node = &nodes[home * 2 + 1];
    std::fs::create_dir_all(on_disk(node, b"old/\xff\xfe")).unwrap();
    std::fs::write(on_disk(node, key), b"placed by hand").unwrap();
    for _ in 0..4 {
        let r = get(&front.url("/old/%FF%FE/na%EFve+1.jpg")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(&r.body[..], b"placed by hand");
    }
    let e = front.router.explain("/old/%FF%FE/na%EFve+1.jpg").unwrap();
    assert_eq!(e.targets[0].shard, format!("shard{}", home + 1));
    assert_eq!(
        e.targets[0].replicas,
        [nodes[home * 2].url(), nodes[home * 2 + 1].url()]
    );
}

/// A replica that missed a non-UTF-8 write is journalled and repaired from the journal; a
/// non-UTF-8 file that only one replica holds is found by listing and copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_copies_non_utf8_names_from_the_journal_and_by_listing() {
    if !nginx_or_skip("non-UTF-8 repair") {
        return;
    }
    let (mut nodes, front, _dir, jpath) = journalled_shard_of_three().await;
    nodes[2].stop();
    let r = put(&front.url("/j/caf%E9.jpg"), "journalled").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (entries, bad) = journal::read(&jpath).unwrap();
    assert_eq!(bad, 0);
    assert_eq!(entries.len(), 1);
    let missed: &[u8] = entries[0].path.as_ref();
    assert_eq!(missed, b"/j/caf\xe9.jpg");
    nodes[2].restart();
    front.router.check_health_once().await;
    let report = front.router.repair_journal(&jpath, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        std::fs::read(on_disk(&nodes[2], b"j/caf\xe9.jpg")).unwrap(),
        b"journalled"
    );
    assert_eq!(journal::read(&jpath).unwrap().0.len(), 0);

    // Listing: a file on one node only, in a directory whose name is not UTF-8 either.
    let key: &[u8] = b"l/\xe9t\xe9/\xa0x.jpg";
    std::fs::create_dir_all(on_disk(&nodes[0], b"l/\xe9t\xe9")).unwrap();
    std::fs::write(on_disk(&nodes[0], key), b"listed").unwrap();
    let report = front.router.repair_by_listing(false, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for n in &nodes[1..] {
        assert_eq!(std::fs::read(on_disk(n, key)).unwrap(), b"listed");
    }
    assert_eq!(report.copied.len(), 2, "{:?}", report.copied);
}
