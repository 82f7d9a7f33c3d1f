//! Writes under faults: quorum with one replica down (journalled), refusal with two down,
//! the roster (garbage lines, symlink swaps and in-place edits), and the migration switch.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use shoal_router::{MigrationState, Settings, journal};
use support::*;

fn one_shard(nodes: &[Node]) -> String {
    photosrv_config("jump", &[nodes.iter().map(Node::url).collect()], None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_down_writes_reach_quorum_and_the_miss_is_journalled() {
    if !nginx_or_skip("one down") {
        return;
    }
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let cfg = config(&one_shard(&nodes));
    let (front, _dir, jpath) = Front::journalled(&cfg, settings()).await;
    nodes[1].stop();
    let body = content(7, 200_000);
    let r = put(&front.url("/a/one-down.jpg"), body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers["x-shoal-stored"], "2/3");
    assert!(nodes[0].has("/a/one-down.jpg") && nodes[2].has("/a/one-down.jpg"));
    let (entries, bad) = journal::read(&jpath).unwrap();
    assert_eq!(bad, 0);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].replica, nodes[1].url());
    assert_eq!(
        (
            entries[0].op.as_str(),
            std::str::from_utf8(&entries[0].path).unwrap()
        ),
        ("PUT", "/a/one-down.jpg")
    );
    // Reads still succeed, and the next write skips the node marked unhealthy.
    assert_eq!(
        &get(&front.url("/a/one-down.jpg")).await.body[..],
        &body[..]
    );
    let r = call(
        http::Method::DELETE,
        &front.url("/a/one-down.jpg"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (entries, _) = journal::read(&jpath).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].op, "DELETE");
    assert_eq!(front.router.status().repair_backlog, 2);
    // Back up: a health check restores it.
    nodes[1].restart();
    front.router.check_health_once().await;
    assert!(
        front.router.status().rings[0].shards[0]
            .replicas
            .iter()
            .all(|r| r.healthy)
    );
}

/// Without health checks (`--health-interval 0`, and `shoal upload`, which runs none) nothing
/// would ever mark a replica healthy again: one connect error, a node restarting for a
/// second, must not take it out of every later write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_health_checks_a_connect_error_does_not_skip_the_replica_for_ever() {
    if !nginx_or_skip("no health checks") {
        return;
    }
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let cfg = config(&one_shard(&nodes));
    let front = Front::start(&cfg, settings()).await;
    nodes[1].stop();
    nodes[2].stop();
    let r = put(&front.url("/h/during.jpg"), "x").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    nodes[1].restart();
    nodes[2].restart();
    let r = put(&front.url("/h/after.jpg"), "y").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers["x-shoal-stored"], "3/3");
    assert!(nodes.iter().all(|n| n.has("/h/after.jpg")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_down_writes_fail_with_a_clear_5xx() {
    if !nginx_or_skip("two down") {
        return;
    }
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let cfg = config(&one_shard(&nodes));
    let front = Front::start(&cfg, settings()).await;
    nodes[0].stop();
    nodes[2].stop();
    // Not yet known to be down: sent, failed, refused with 502.
    let r = put(&front.url("/b/two-down.jpg"), "data").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let msg = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        msg.contains("quorum not reached") && msg.contains("1 of 3"),
        "{msg}"
    );
    // Known to be down: refused before the body is read, 503.
    front.router.check_health_once().await;
    let r = put(&front.url("/b/two-down.jpg"), "data").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let msg = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        msg.contains("nothing stored") && msg.contains("quorum is 2"),
        "{msg}"
    );
    // Reads of what the survivor has still work.
    std::fs::write(nodes[1].root().join("old.jpg"), b"old").unwrap();
    assert_eq!(&get(&front.url("/old.jpg")).await.body[..], b"old");
}

/// A replica that answers a 4xx (nginx's 409: a directory where the file goes) while the
/// others store the write has missed it like a replica that failed: journalled for repair.
/// When every replica refuses, the refusal is the answer and nothing is journalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_refusing_a_write_the_others_stored_is_journalled() {
    if !nginx_or_skip("one refuses") {
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
    let cfg = config(&one_shard(&nodes));
    let (front, _dir, jpath) = Front::journalled(&cfg, settings()).await;
    std::fs::create_dir_all(nodes[1].root().join("c/x.jpg/inside")).unwrap();
    let r = put(&front.url("/c/x.jpg"), "photo").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers["x-shoal-stored"], "2/3");
    let (entries, _) = journal::read(&jpath).unwrap();
    let got: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.op.as_str(),
                e.replica.as_str(),
                std::str::from_utf8(&e.path).unwrap(),
            )
        })
        .collect();
    let miss = nodes[1].url();
    assert_eq!(got, [("PUT", miss.as_str(), "/c/x.jpg")]);
    // Every replica refuses: the client gets the refusal, the journal nothing more.
    for n in [&nodes[0], &nodes[2]] {
        std::fs::remove_file(n.root().join("c/x.jpg")).unwrap();
        std::fs::create_dir_all(n.root().join("c/x.jpg/inside")).unwrap();
    }
    let r = put(&front.url("/c/x.jpg"), "photo").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(journal::read(&jpath).unwrap().0.len(), 1);
    // One stores it, two refuse: short of the quorum, and both refusers are journalled.
    std::fs::remove_dir_all(nodes[0].root().join("c/x.jpg")).unwrap();
    let r = put(&front.url("/c/x.jpg"), "photo").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    let msg = String::from_utf8_lossy(&r.body).to_string();
    assert!(msg.contains("refused with 409"), "{msg}");
    let (entries, _) = journal::read(&jpath).unwrap();
    let mut late: Vec<&str> = entries[1..].iter().map(|e| e.replica.as_str()).collect();
    late.sort_unstable();
    let mut want = [nodes[1].url(), nodes[2].url()];
    want.sort_unstable();
    assert_eq!(late, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_filters_counts_garbage_and_reloads_on_swap_or_edit() {
    if !nginx_or_skip("roster") {
        return;
    }
    let nodes: Vec<Node> = (0..2).map(|_| Node::start()).collect();
    for n in &nodes {
        std::fs::write(n.root().join("f.txt"), format!("{}", n.port)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b, link) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("roster"),
    );
    let authority = |n: &Node| format!("127.0.0.1:{}", n.port);
    std::fs::write(
        &a,
        format!(
            "# live\nnode0 {}\ngarbage\nalso-garbage\n\n",
            authority(&nodes[0])
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let cfg = config(&one_shard(&nodes));
    let s = Settings {
        roster: Some(link.clone()),
        roster_check: Duration::from_millis(50),
        ..settings()
    };
    let front = Front::start(&cfg, s).await;
    let tasks = front.router.spawn_background();
    let st = front.router.status();
    assert_eq!((st.roster_hosts, st.roster_ignored_lines), (1, 2));
    for _ in 0..5 {
        assert_eq!(
            get(&front.url("/f.txt")).await.body,
            nodes[0].port.to_string()
        );
    }
    let wait_for = |want: u16| {
        let url = front.url("/f.txt");
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if get(&url).await.body == want.to_string() {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "roster reload never routed to {want}"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    };
    // Swap the symlink (photosrv's way).
    std::fs::write(&b, format!("node1 {}\n", authority(&nodes[1]))).unwrap();
    let tmp = dir.path().join("roster.tmp");
    std::os::unix::fs::symlink(&b, &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    wait_for(nodes[1].port).await;
    assert_eq!(front.router.status().roster_ignored_lines, 0);
    // Edit the target in place (photosrv never noticed this).
    std::fs::write(&b, format!("node0 {}\n", authority(&nodes[0]))).unwrap();
    wait_for(nodes[0].port).await;
    // A roster with none of this shard's nodes: reads are refused clearly.
    std::fs::write(&b, "x 10.9.9.9:1\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&front.url("/f.txt")).await.status != StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            Instant::now() < deadline,
            "roster without the shard's nodes never applied"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_switch_needs_a_key_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("migrationState");
    let shards = vec![vec!["http://127.0.0.1:1".to_string()]];
    let two = vec![shards[0].clone(), vec!["http://127.0.0.1:2".to_string()]];
    let cfg = config(&photosrv_config("jump", &shards, Some(&two)));
    let base = Settings {
        migration_state: Some(state.clone()),
        ..settings()
    };
    // No key configured: even the empty key is refused (photosrv let it through).
    let r = shoal_router::Router::new(&cfg, base.clone()).unwrap();
    let e = r
        .switch_migration(MigrationState::Both, "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no migration key"), "{e}");
    let keyed = Settings {
        migration_key: Some("k3y".into()),
        ..base
    };
    let r = shoal_router::Router::new(&cfg, keyed.clone()).unwrap();
    assert!(
        r.switch_migration(MigrationState::Both, "")
            .unwrap_err()
            .to_string()
            .contains("invalid key")
    );
    assert!(r.switch_migration(MigrationState::Both, "k3").is_err());
    let msg = r.switch_migration(MigrationState::Both, "k3y").unwrap();
    assert_eq!(
        msg,
        "currentMigrationState = msBothConfigs (was msOldConfig)"
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "msBothConfigs");
    let again = shoal_router::Router::new(&cfg, keyed.clone()).unwrap();
    assert_eq!(again.migration_state(), MigrationState::Both);
    // No migration ring: both/new refused; and a persisted `both` without one fails at start.
    let plain = config(&photosrv_config("jump", &shards, None));
    assert!(shoal_router::Router::new(&plain, keyed.clone()).is_err());
    std::fs::write(&state, "msOldConfig").unwrap();
    let r = shoal_router::Router::new(&plain, keyed).unwrap();
    let e = r
        .switch_migration(MigrationState::New, "k3y")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing migration ring"), "{e}");
}

/// Two switches at once (an operator's retry, two scripts): the state file and the state in
/// effect must agree afterwards, and the file must stay valid, or a restart brings the router
/// up in another state, or not at all.
#[test]
fn concurrent_migration_switches_leave_the_file_and_the_state_in_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("migrationState");
    let shards = vec![vec!["http://127.0.0.1:1".to_string()]];
    let two = vec![shards[0].clone(), vec!["http://127.0.0.1:2".to_string()]];
    let cfg = config(&photosrv_config("jump", &shards, Some(&two)));
    let s = Settings {
        migration_state: Some(state.clone()),
        migration_key: Some("k".into()),
        ..settings()
    };
    let r = shoal_router::Router::new(&cfg, s).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for round in 0..100 {
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|sc| {
            for to in [MigrationState::Both, MigrationState::New] {
                let (r, barrier) = (&r, &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    let _ = r.switch_migration(to, "k");
                });
            }
        });
        let on_disk = MigrationState::load(&state);
        assert!(
            matches!(on_disk, Ok(s) if s == r.migration_state()),
            "round {round}: file says {on_disk:?}, the router runs {}",
            r.migration_state()
        );
        if Instant::now() > deadline {
            break;
        }
    }
}
