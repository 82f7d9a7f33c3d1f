//! Repair from the journal after a replica returns, and a 2 → 3 shard migration
//! (old → both → new) with uploads and reads running throughout, finished by repair and
//! clean-up.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use http::StatusCode;
use shoal_router::{MigrationState, Settings, journal};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_replica_is_repaired_from_the_journal() {
    if !nginx_or_skip("journal repair") {
        return;
    }
    let (mut nodes, front, _dir, jpath) = journalled_shard_of_three().await;
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

/// A replica missed a DELETE; the file was uploaded again afterwards, to every replica. The
/// journal's DELETE is older than what the replica holds now: replaying it must not take
/// the new file off that replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_delete_does_not_remove_a_file_uploaded_again_since() {
    if !nginx_or_skip("stale delete") {
        return;
    }
    let (mut nodes, front, _dir, jpath) = journalled_shard_of_three().await;
    assert_eq!(
        put(&front.url("/r/again.jpg"), "first").await.status,
        StatusCode::CREATED
    );
    nodes[2].stop();
    let r = call(
        http::Method::DELETE,
        &front.url("/r/again.jpg"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    nodes[2].restart();
    front.router.check_health_once().await;
    let r = put(&front.url("/r/again.jpg"), "second").await;
    assert_eq!(r.headers["x-shoal-stored"], "3/3");
    let report = front.router.repair_journal(&jpath, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for n in &nodes {
        assert_eq!(
            n.read("/r/again.jpg").as_deref(),
            Some(&b"second"[..]),
            "{} lost the file uploaded after the delete it missed",
            n.url()
        );
    }
    assert_eq!(journal::read(&jpath).unwrap().0.len(), 0);
    // A DELETE that is still the last word is replayed as before.
    nodes[1].stop();
    let r = call(
        http::Method::DELETE,
        &front.url("/r/again.jpg"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    nodes[1].restart();
    let report = front.router.repair_journal(&jpath, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.deleted.len(), 1);
    assert!(nodes.iter().all(|n| !n.has("/r/again.jpg")));
}

/// nginx writes a PROPFIND href as XML: `a&b.jpg` is listed as `a&amp;b.jpg`. Listing must
/// read it as the file's name, or such a file is never copied to a replica that lacks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_repairs_files_whose_names_are_escaped_in_xml() {
    if !nginx_or_skip("xml names") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let cfg = config(&photosrv_config(
        "jump",
        &[nodes.iter().map(Node::url).collect()],
        None,
    ));
    let front = Front::start(&cfg, settings()).await;
    let names = ["/x/a&b.jpg", "/x/<tag>.jpg", "/x/q\"'.jpg"];
    for name in names {
        for n in &nodes[..2] {
            let file = n.root().join(name.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, name).unwrap();
        }
    }
    let report = front.router.repair_by_listing(false, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for name in names {
        assert_eq!(
            nodes[2].read(name).as_deref(),
            Some(name.as_bytes()),
            "{name} copied; report {:?}",
            report.copied
        );
    }
}

/// nginx's ETag and Last-Modified come from the file's mtime. A copy made by repair must keep
/// the source's, or reads (and a cache revalidating with If-None-Match or If-Range) get a
/// different validator from each replica, and 200s where 304s and 206s were due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repaired_copy_keeps_the_sources_last_modified_and_etag() {
    if !nginx_or_skip("repair mtime") {
        return;
    }
    let (mut nodes, front, _dir, jpath) = journalled_shard_of_three().await;
    nodes[2].stop();
    let r = put(&front.url("/v/photo.jpg"), content(9, 5000)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Last-Modified has a resolution of one second: repair a second later at least.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    nodes[2].restart();
    let report = front.router.repair_journal(&jpath, false).await.unwrap();
    assert_eq!(report.copied.len(), 1, "{:?}", report.failed);
    let mut seen = Vec::new();
    for n in &nodes {
        let r = call(
            http::Method::HEAD,
            &format!("{}/v/photo.jpg", n.url()),
            &[],
            vec![],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        seen.push((
            r.headers["last-modified"].clone(),
            r.headers["etag"].clone(),
        ));
    }
    assert!(seen.iter().all(|v| *v == seen[0]), "{seen:?}");
}

/// Files acknowledged by the router: (path, content seed, length, phase of the upload).
type Acked = Arc<Mutex<Vec<(String, u64, usize, u8)>>>;

const PHASES: [&str; 3] = ["old", "both", "new"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_to_three_shards_old_both_new_with_uploads_and_reads_running() {
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
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20u64 {
        let p = format!("/m/old-{i}.jpg");
        assert_eq!(
            put(&front.url(&p), content(i, 3000)).await.status,
            StatusCode::CREATED
        );
        acked.lock().push((p, i, 3000, 0));
    }
    // Uploaders and readers run through every switch and repair; no request may fail. Each
    // loop is bounded in count, and the whole run in time.
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU8::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let reads: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let mut load = tokio::task::JoinSet::new();
    for w in 0..2u64 {
        let (stop, phase, acked, failures) =
            (stop.clone(), phase.clone(), acked.clone(), failures.clone());
        let base = front.url("");
        load.spawn(async move {
            for i in 0..20_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let p = format!("/m/w{w}/up-{i}.jpg");
                let (seed, len) = (100_000 * (w + 1) + i, 500 + (i as usize * 37) % 4000);
                let at = phase.load(Ordering::Relaxed);
                let r = put(&format!("{base}{p}"), content(seed, len)).await;
                if r.status == StatusCode::CREATED {
                    acked.lock().push((p, seed, len, at));
                } else {
                    failures.lock().push(format!(
                        "PUT {p} in phase {}: {} {:?}",
                        PHASES[at as usize], r.status, r.body
                    ));
                }
                // Paced, so the uploads last through every phase.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    for rd in 0..2usize {
        let (stop, phase, acked, failures, reads) = (
            stop.clone(),
            phase.clone(),
            acked.clone(),
            failures.clone(),
            reads.clone(),
        );
        let base = front.url("");
        load.spawn(async move {
            for i in 0..50_000usize {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // Alternate between the newest acknowledged file and an older one.
                let pick = {
                    let a = acked.lock();
                    let k = if i % 2 == 0 {
                        a.len() - 1
                    } else {
                        (i * 7 + rd) % a.len()
                    };
                    a[k].clone()
                };
                let at = phase.load(Ordering::Relaxed);
                let r = get(&format!("{base}{}", pick.0)).await;
                reads[at as usize].fetch_add(1, Ordering::Relaxed);
                if r.status != StatusCode::OK || r.body[..] != content(pick.1, pick.2)[..] {
                    failures.lock().push(format!(
                        "GET {} (uploaded in phase {}) in phase {}: {} ({} bytes)",
                        pick.0,
                        PHASES[pick.3 as usize],
                        PHASES[at as usize],
                        r.status,
                        r.body.len()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    let started = Instant::now();
    let pause = || tokio::time::sleep(Duration::from_millis(500));
    let router = &front.router;
    pause().await;
    // Each repair starts right after its switch, while uploads placed under the previous
    // state may still be running: the drain is what makes the listing see them.
    router.switch_migration(MigrationState::Both, "k").unwrap();
    phase.store(1, Ordering::Relaxed);
    assert_eq!(router.drain_writes().await, 0, "writes placed under old");
    let report = router.repair_by_listing(false, false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(!report.copied.is_empty(), "some files moved to shard3");
    assert!(
        router.repair_by_listing(false, true).await.is_err(),
        "no clean-up in both"
    );
    pause().await;
    router.switch_migration(MigrationState::New, "k").unwrap();
    phase.store(2, Ordering::Relaxed);
    assert_eq!(router.drain_writes().await, 0, "writes placed under both");
    let report = router.repair_by_listing(false, true).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(!report.deleted.is_empty(), "misplaced copies were removed");
    pause().await;
    stop.store(true, Ordering::Relaxed);
    while let Some(j) = load.join_next().await {
        j.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the migration under load hung"
    );
    let failures = failures.lock().clone();
    assert!(
        failures.is_empty(),
        "{} request(s) failed during the migration, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let acked = acked.lock().clone();
    for (n, name) in PHASES.iter().enumerate() {
        let count = acked.iter().filter(|f| f.3 as usize == n).count();
        assert!(
            count >= 2,
            "only {count} upload(s) acknowledged in phase {name}"
        );
        let r = reads[n].load(Ordering::Relaxed);
        assert!(r >= 10, "only {r} read(s) in phase {name}");
    }
    // The post-migration clean-up once the load has stopped: every file on its new shard's
    // replicas only, with its bytes, and readable through the router.
    let report = router.repair_by_listing(false, true).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for (p, seed, len, _) in &acked {
        let b = content(*seed, *len);
        let home = &router.explain(p).unwrap().targets[0].shard;
        let i: usize = home.trim_start_matches("shard").parse::<usize>().unwrap() - 1;
        for (n, node) in nodes.iter().enumerate() {
            let want = n / 3 == i;
            assert_eq!(node.has(p), want, "{p} on node {n}, home {home}");
            if want {
                assert_eq!(node.read(p).unwrap(), b, "{p} on node {n}");
            }
        }
        let r = get(&front.url(p)).await;
        assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b[..]), "{p}");
    }
}
