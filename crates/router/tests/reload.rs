//! `Router::reload` (SIGHUP in `shoal route`): a re-read shard map takes effect for the next
//! request, keeps what it knew of the replicas it still names, and is refused whole when it
//! would leave a migration under way without its ring.

mod support;

use shoal_router::{MigrationState, Router, Settings};
use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};
use support::{Front, config, get, put, settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `/status`'s view of the primary ring: each shard's replica URLs with their health.
fn primary(r: &Router) -> Vec<Vec<(String, bool)>> {
    r.status().rings[0]
        .shards
        .iter()
        .map(|s| {
            s.replicas
                .iter()
                .map(|x| (x.url.clone(), x.healthy))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_reloaded_map_takes_the_next_request_and_keeps_what_it_knew_of_its_replicas() {
    if !nginx_or_skip("reload") {
        return;
    }
    let nodes: Vec<Node> = (0..2).map(|_| Node::start()).collect();
    let dead = "http://127.0.0.1:1".to_string();
    let cfg = config(&photosrv_config(
        "jump",
        &[vec![nodes[0].url(), dead.clone()]],
        None,
    ));
    // One replica of the shard is dead: a write succeeds on one.
    let one = Settings {
        write_quorum: "1".parse().unwrap(),
        ..settings()
    };
    let front = Front::start(&cfg, one).await;
    // The dead replica is found out by a health check...
    front.router.check_health_once().await;
    assert_eq!(
        primary(&front.router),
        vec![vec![(nodes[0].url(), true), (dead.clone(), false)]]
    );
    let put_a = put(&front.url("/r/a.bin"), b"first".to_vec()).await;
    assert_eq!(put_a.status, 201);

    // ... and stays found out in the reloaded map, which adds the second node.
    let reloaded = config(&photosrv_config(
        "jump",
        &[vec![nodes[0].url(), dead.clone(), nodes[1].url()]],
        None,
    ));
    let r = front.router.reload(&reloaded).unwrap();
    assert_eq!((r.shards, r.replicas_added, r.replicas_removed), (1, 1, 0));
    assert_eq!(
        primary(&front.router),
        vec![vec![
            (nodes[0].url(), true),
            (dead.clone(), false),
            (nodes[1].url(), true)
        ]]
    );
    // The next write reaches the new replica too; the earlier one is still read back.
    let put_b = put(&front.url("/r/b.bin"), b"second".to_vec()).await;
    assert_eq!(put_b.status, 201);
    assert_eq!(nodes[1].read("r/b.bin").as_deref(), Some(&b"second"[..]));
    assert_eq!(nodes[1].read("r/a.bin"), None);
    assert_eq!(&get(&front.url("/r/a.bin")).await.body[..], b"first");

    // A map without the dead node drops it.
    let r = front
        .router
        .reload(&config(&photosrv_config(
            "jump",
            &[vec![nodes[0].url(), nodes[1].url()]],
            None,
        )))
        .unwrap();
    assert_eq!((r.replicas_added, r.replicas_removed), (0, 1));
    assert_eq!(
        primary(&front.router),
        vec![vec![(nodes[0].url(), true), (nodes[1].url(), true)]]
    );
}

#[test]
fn a_map_that_would_strand_a_migration_or_change_data_centre_is_refused_whole() {
    let two = |m: bool| {
        config(&photosrv_config(
            "jump",
            &[
                vec!["http://10.0.0.1".into()],
                vec!["http://10.0.0.2".into()],
            ],
            m.then_some(&[vec!["http://10.0.0.3".to_string()]][..]),
        ))
    };
    let router = Router::new(
        &two(true),
        Settings {
            migration_key: Some("k".into()),
            ..settings()
        },
    )
    .unwrap();
    router.switch_migration(MigrationState::Both, "k").unwrap();
    let before = primary(&router);
    let e = router.reload(&two(false)).unwrap_err().to_string();
    assert!(
        e.contains("migration state is msBothConfigs") && e.contains("no migration ring"),
        "{e}"
    );
    assert!(router.status().rings.len() == 2 && primary(&router) == before);
    // Nor may the ring being migrated to change under the migration.
    let elsewhere = config(&photosrv_config(
        "jump",
        &[
            vec!["http://10.0.0.1".into()],
            vec!["http://10.0.0.2".into()],
        ],
        Some(&[vec!["http://10.0.0.9".to_string()]][..]),
    ));
    let e = router.reload(&elsewhere).unwrap_err().to_string();
    assert!(e.contains("migration ring differs"), "{e}");
    // The same rings with the URLs spelled otherwise and a primary replica added are taken.
    let respelled = config(&photosrv_config(
        "jump",
        &[
            vec!["http://10.0.0.1".into(), "http://10.0.0.4".into()],
            vec!["http://10.0.0.2".into()],
        ],
        Some(&[vec!["HTTP://10.0.0.3:80/".to_string()]][..]),
    ));
    assert_eq!(router.reload(&respelled).unwrap().replicas_added, 1);
    // Back to old, the same map is taken.
    router.switch_migration(MigrationState::Old, "k").unwrap();
    let r = router.reload(&two(false)).unwrap();
    assert_eq!((r.shards, r.migration_shards), (2, None));
    assert_eq!(router.status().rings.len(), 1);

    let mut other = two(false);
    other.dc = "elsewhere".into();
    let e = router.reload(&other).unwrap_err().to_string();
    assert!(e.contains("data centre elsewhere"), "{e}");
}

#[test]
fn in_state_new_a_map_whose_primary_is_the_migration_ring_completes_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state");
    let (a, b, c) = ("http://10.0.0.1", "http://10.0.0.2", "http://10.0.0.3");
    let ring = |urls: &[&str]| urls.iter().map(|u| vec![u.to_string()]).collect::<Vec<_>>();
    let migrating = config(&photosrv_config(
        "jump",
        &ring(&[a, b]),
        Some(&ring(&[a, b, c])),
    ));
    let router = Router::new(
        &migrating,
        Settings {
            migration_key: Some("k".into()),
            migration_state: Some(state_file.clone()),
            ..settings()
        },
    )
    .unwrap();
    router.switch_migration(MigrationState::Both, "k").unwrap();
    router.switch_migration(MigrationState::New, "k").unwrap();
    let path = "/p/x.jpg";
    let serving = router.explain(path).unwrap().targets;
    assert_eq!(serving.len(), 1);

    // The primary ring must be the migration ring, node for node (URLs may be respelled).
    let wrong = config(&photosrv_config("jump", &ring(&[a, c, b]), None));
    assert!(router.reload(&wrong).is_err());
    assert_eq!(router.migration_state(), MigrationState::New);
    let done = config(&photosrv_config(
        "jump",
        &ring(&["HTTP://10.0.0.1:80/", b, c]),
        None,
    ));
    let r = router.reload(&done).unwrap();
    assert!(r.completed_migration && r.migration_shards.is_none());
    assert_eq!(router.migration_state(), MigrationState::Old);
    assert_eq!(
        MigrationState::load(&state_file).unwrap(),
        MigrationState::Old,
        "persisted, so a restart on the new map starts in old"
    );
    // Paths stay where state `new` served them.
    let now = router.explain(path).unwrap().targets;
    assert_eq!(now[0].replicas, serving[0].replicas);
    assert_eq!(now[0].shard, serving[0].shard);
}

/// `Router::update_settings` (the `[route]` table on SIGHUP): a live setting takes the next
/// request; a write under way keeps its quorum; a change to a setting fixed at start is
/// refused whole, naming it, and nothing changes.
#[tokio::test]
async fn new_settings_take_the_next_request_and_fixed_ones_are_refused_whole() {
    if !nginx_or_skip("settings reload") {
        return;
    }
    let node = Node::start();
    let dead = "http://127.0.0.1:1".to_string();
    let cfg = config(&photosrv_config(
        "jump",
        &[vec![node.url(), dead.clone()]],
        None,
    ));
    // Majority of two is both: the dead replica fails every write.
    let front = Front::start(&cfg, settings()).await;
    assert_eq!(put(&front.url("/s/a.bin"), b"a".to_vec()).await.status, 502);

    let one = Settings {
        write_quorum: "1".parse().unwrap(),
        ..settings()
    };
    assert_eq!(
        front.router.update_settings(one.clone()).unwrap(),
        ["write_quorum"]
    );
    assert_eq!(front.router.status().settings.write_quorum, "1");
    assert_eq!(put(&front.url("/s/b.bin"), b"b".to_vec()).await.status, 201);
    assert_eq!(node.read("s/b.bin").as_deref(), Some(&b"b"[..]));

    // read_only and a fixed setting together: refused whole, named; writes still work.
    let refused = Settings {
        read_only: true,
        connect_timeout: std::time::Duration::from_secs(9),
        journal: Some("/tmp/elsewhere.journal".into()),
        ..one.clone()
    };
    let e = front
        .router
        .update_settings(refused)
        .unwrap_err()
        .to_string();
    assert!(e.contains("connect_timeout, journal"), "{e}");
    assert!(!e.contains("read_only"), "{e}");
    assert!(!front.router.status().settings.read_only);
    assert_eq!(put(&front.url("/s/c.bin"), b"c".to_vec()).await.status, 201);

    // read_only alone goes through: the next PUT gets 405.
    let ro = Settings {
        read_only: true,
        ..one.clone()
    };
    assert_eq!(front.router.update_settings(ro).unwrap(), ["read_only"]);
    let r = put(&front.url("/s/d.bin"), b"d".to_vec()).await;
    assert_eq!(r.status, 405);
    assert_eq!(&get(&front.url("/s/c.bin")).await.body[..], b"c");
    // The same settings again change nothing.
    let same = Settings {
        read_only: true,
        ..one.clone()
    };
    assert!(front.router.update_settings(same).unwrap().is_empty());

    // A PUT under way when the quorum becomes "all" finishes under quorum 1: stored.
    front.router.update_settings(one).unwrap();
    let mut c = tokio::net::TcpStream::connect(front.addr).await.unwrap();
    let head = "PUT /s/e.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\ne";
    c.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let all = Settings {
        write_quorum: shoal_router::Quorum::All,
        ..settings()
    };
    assert_eq!(front.router.update_settings(all).unwrap(), ["write_quorum"]);
    c.write_all(b"e").await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), c.read(&mut answer))
        .await
        .expect("an answer to the PUT")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(node.read("s/e.bin").as_deref(), Some(&b"ee"[..]));
    // The next one runs under "all", and the dead replica fails it.
    assert_eq!(put(&front.url("/s/f.bin"), b"f".to_vec()).await.status, 502);
}
