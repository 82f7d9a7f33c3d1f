//! Repair from the journal after a replica returns, and a 2 → 3 shard migration
//! (old → both → new) with reads running throughout, finished by repair and clean-up.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::StatusCode;
use shoal_router::{MigrationState, Settings, journal};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_replica_is_repaired_from_the_journal() {
    if !nginx_or_skip("journal repair") {
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
    let front = Front::start(
        &cfg,
        Settings {
            journal: Some(jpath.clone()),
            ..settings()
        },
    )
    .await;
    std::fs::write(nodes[2].root().join("gone.jpg"), b"stale").unwrap();
    nodes[2].stop();
    let body = content(3, 1 << 20);
    assert_eq!(
        put(&front.url("/p/kept.jpg"), body.clone()).await.status,
        StatusCode::CREATED
    );
    let r = call(http::Method::DELETE, &front.url("/gone.jpg"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(journal::read(&jpath).unwrap().0.len(), 2);
    nodes[2].restart();
    front.router.check_health_once().await;
    let dry = front.router.repair_journal(&jpath, true).await.unwrap();
    assert_eq!((dry.copied.len(), dry.deleted.len()), (1, 1));
    assert!(!nodes[2].has("/p/kept.jpg"), "a dry run changes nothing");
    let report = front.router.repair_journal(&jpath, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(nodes[2].read("/p/kept.jpg").unwrap(), body);
    assert!(!nodes[2].has("/gone.jpg"));
    assert_eq!(journal::read(&jpath).unwrap().0.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_to_three_shards_old_both_new_with_reads_running() {
    if !nginx_or_skip("migration") {
        return;
    }
    let nodes: Vec<Node> = (0..9).map(|_| Node::start()).collect();
    let shard = |i: usize| {
        nodes[i * 3..i * 3 + 3]
            .iter()
            .map(Node::url)
            .collect::<Vec<_>>()
    };
    let old = vec![shard(0), shard(1)];
    let new = vec![shard(0), shard(1), shard(2)];
    let cfg = config(&photosrv_config("jump", &old, Some(&new)));
    let s = Settings {
        migration_key: Some("k".into()),
        ..settings()
    };
    let front = Front::start(&cfg, s).await;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..30u64 {
        let p = format!("/m/old-{i}.jpg");
        let b = content(i, 3000 + i as usize);
        assert_eq!(
            put(&front.url(&p), b.clone()).await.status,
            StatusCode::CREATED
        );
        files.push((p, b));
    }
    // Readers run through every switch; none may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        let (files, base) = (files.clone(), front.url(""));
        tokio::spawn(async move {
            for _ in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for (p, b) in &files {
                    let r = get(&format!("{base}{p}")).await;
                    reads.fetch_add(1, Ordering::Relaxed);
                    if r.status != StatusCode::OK || r.body[..] != b[..] {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    front
        .router
        .switch_migration(MigrationState::Both, "k")
        .unwrap();
    for i in 0..10u64 {
        let p = format!("/m/both-{i}.jpg");
        let b = content(100 + i, 2000);
        let r = put(&front.url(&p), b.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        files.push((p, b));
    }
    assert!(
        front.router.repair_by_listing(false, true).await.is_err(),
        "no clean-up in both"
    );
    let report = front.router.repair_by_listing(false, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(!report.copied.is_empty(), "some files moved to shard3");
    front
        .router
        .switch_migration(MigrationState::New, "k")
        .unwrap();
    for (p, b) in &files {
        let r = get(&front.url(p)).await;
        assert_eq!(
            (r.status, &r.body[..]),
            (StatusCode::OK, &b[..]),
            "{p} after finish"
        );
    }
    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    assert!(reads.load(Ordering::Relaxed) >= 30);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "reads failed during the migration"
    );
    // Clean-up: every file on its new shard's replicas only.
    let report = front.router.repair_by_listing(false, true).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for (p, b) in &files {
        let home = &front.router.explain(p).unwrap().targets[0].shard;
        let i: usize = home.trim_start_matches("shard").parse::<usize>().unwrap() - 1;
        for (n, node) in nodes.iter().enumerate() {
            let want = n / 3 == i;
            assert_eq!(node.has(p), want, "{p} on node {n}, home {home}");
            if want {
                assert_eq!(node.read(p).unwrap(), *b);
            }
        }
    }
}
