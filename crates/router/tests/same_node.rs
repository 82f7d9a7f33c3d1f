//! One storage node spelled two ways (`http://127.0.0.1:8080`, `HTTP://127.0.0.1:08080/`,
//! `http://h` and `http://h:80`, ...) is one replica: a write reaches it once, a write quorum
//! counts it once, the roster and the journal find it by any spelling. Against real nginx
//! nodes, counting the requests each answered from its access log.

#![allow(clippy::unwrap_used)]

mod support;

use http::StatusCode;
use shoal_router::journal::{self, Entry};
use shoal_router::{MigrationState, Router, Settings};
use support::*;

/// Another spelling of `node`'s URL: upper-case scheme, a leading zero in the port, a
/// trailing slash. The same node to any HTTP client, and to the URL standard.
fn respelled(node: &Node) -> String {
    format!("HTTP://127.0.0.1:0{}/", node.port)
}

/// How many `method path` requests `node` answered.
fn count(node: &Node, method: &str, path: &str) -> usize {
    let line = format!("{method} {path} ");
    node.requests()
        .iter()
        .filter(|r| r.starts_with(&line))
        .count()
}

/// In migration state `both` a write goes to both rings' shards. A node that is in both, spelled
/// differently in each, must get the PUT once, and count once in `x-shoal-stored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_both_a_node_named_in_both_rings_two_ways_is_written_once() {
    if !nginx_or_skip("same node in both rings") {
        return;
    }
    let a = Node::start_logging_requests();
    let (b, c) = (Node::start(), Node::start());
    let cfg = config(&photosrv_config(
        "jump",
        &[vec![a.url(), b.url()]],
        Some(&[vec![respelled(&a), c.url()]]),
    ));
    let s = Settings {
        migration_key: Some("k".into()),
        ..settings()
    };
    let front = Front::start(&cfg, s).await;
    front
        .router
        .switch_migration(MigrationState::Both, "k")
        .unwrap();
    let r = put(&front.url("/m/once.jpg"), "once").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(count(&a, "PUT", "/m/once.jpg"), 1, "{:?}", a.requests());
    // Three distinct nodes took it.
    assert_eq!(r.headers["x-shoal-stored"], "3/3");
    for n in [&a, &b, &c] {
        assert_eq!(n.read("/m/once.jpg").unwrap(), b"once");
    }
    let r = call(http::Method::DELETE, &front.url("/m/once.jpg"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(count(&a, "DELETE", "/m/once.jpg"), 1, "{:?}", a.requests());
    // Both rings list the one replica, under one name.
    let st = front.router.status();
    let urls: Vec<&str> = st
        .rings
        .iter()
        .map(|ring| ring.shards[0].replicas[0].url.as_str())
        .collect();
    assert_eq!(urls, [a.url().as_str(), a.url().as_str()]);
}

/// A shard line that names node A twice (two spellings) and a node that is down: the write
/// quorum is a majority of the *distinct* nodes, A and the dead one, so A alone is not a
/// quorum. Counting A twice would call the write stored with one copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_naming_one_node_twice_needs_a_quorum_of_distinct_nodes() {
    if !nginx_or_skip("same node twice in a shard") {
        return;
    }
    let a = Node::start_logging_requests();
    let down = format!("http://127.0.0.1:{}", shoal_testkit::free_port());
    for (i, twin) in [format!("{}/", a.url()), respelled(&a)].iter().enumerate() {
        let cfg = config(&photosrv_config(
            "jump",
            &[vec![a.url(), twin.clone(), down.clone()]],
            None,
        ));
        let (front, _dir, jpath) = Front::journalled(&cfg, settings()).await;
        let path = format!("/q/{i}.jpg");
        let r = put(&front.url(&path), "one copy").await;
        assert_eq!(
            r.status,
            StatusCode::BAD_GATEWAY,
            "{twin}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains("1 of 2 replicas, quorum 2"), "{twin}: {body}");
        assert_eq!(count(&a, "PUT", &path), 1, "{twin}: {:?}", a.requests());
        // The dead node's miss is journalled; A's copy is not a miss.
        let (entries, _) = journal::read(&jpath).unwrap();
        let missed: Vec<&str> = entries.iter().map(|e| e.replica.as_str()).collect();
        assert_eq!(missed, [down.as_str()], "{twin}");
        // The second spelling is dropped from the shard as the file is read.
        assert_eq!(cfg.primary.shards[0].replicas, [a.url(), down.clone()]);
    }
}

/// A journal written under another spelling of a node (by a router from before canonical
/// names, or before the config was respelled) is replayed to that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_entry_finds_its_node_under_another_spelling() {
    if !nginx_or_skip("journal spelling") {
        return;
    }
    let nodes: Vec<Node> = (0..2).map(|_| Node::start()).collect();
    let cfg = config(&photosrv_config(
        "jump",
        &[nodes.iter().map(Node::url).collect()],
        None,
    ));
    let dir = tempfile::tempdir().unwrap();
    let jpath = dir.path().join("journal");
    std::fs::create_dir_all(nodes[0].root().join("j")).unwrap();
    std::fs::write(nodes[0].root().join("j/old.jpg"), b"old").unwrap();
    let old_spelling = format!("http://127.0.0.1:0{}", nodes[1].port);
    journal::append(&jpath, &[Entry::now("PUT", &old_spelling, "/j/old.jpg")]).unwrap();
    let router = Router::new(&cfg, settings()).unwrap();
    let report = router.repair_journal(&jpath, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(nodes[1].read("/j/old.jpg").unwrap(), b"old");
    assert_eq!(journal::read(&jpath).unwrap().0.len(), 0);
}
