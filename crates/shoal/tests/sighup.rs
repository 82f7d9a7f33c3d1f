//! SIGHUP, which operators send by habit (`systemctl reload`, nginx's `-s reload`): `shoal
//! route` re-reads its shard map and puts it in force without dropping a request, keeps the
//! old map when the new one does not load, and goes on taking SIGHUPs; `shoal serve`, which
//! has nothing else to reload, keeps serving (the default action of SIGHUP ends a process).

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::origin::get;
use common::route::{Route, request};
use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};

/// The replica URLs of each shard of the primary ring, from `/status`.
fn shards(route: &Route) -> Vec<Vec<String>> {
    route.status()["rings"][0]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["url"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

/// Waits (at most 10 s) until the primary ring is `want`.
fn until_shards(route: &Route, want: &[Vec<String>]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while shards(route) != want {
        assert!(
            Instant::now() < deadline,
            "the shard map is still {:?}, not {want:?}",
            shards(route)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn route_reloads_its_shard_map_on_sighup() {
    if !nginx_or_skip("sighup") {
        return;
    }
    let nodes: Vec<Node> = (0..2).map(|_| Node::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("photosrv.conf");
    let write_map = |replicas: &[&Node]| {
        let urls = replicas.iter().map(|n| n.url()).collect();
        std::fs::write(&cfg, photosrv_config("jump", &[urls], None)).unwrap();
    };
    write_map(&[&nodes[0]]);
    let mut route = Route::start(&cfg, &["--health-interval", "0"]);
    assert_eq!(request(route.front, "PUT", "/h/a.txt", b"a").0, 201);
    assert_eq!(nodes[1].read("h/a.txt"), None);

    // A second replica: the next write reaches both.
    write_map(&[&nodes[0], &nodes[1]]);
    shoal_testkit::signal(&route.child, "HUP");
    until_shards(&route, &[vec![nodes[0].url(), nodes[1].url()]]);
    assert_eq!(request(route.front, "PUT", "/h/b.txt", b"b").0, 201);
    assert_eq!(nodes[1].read("h/b.txt").as_deref(), Some(&b"b"[..]));

    // A map that does not load is logged and the old one kept...
    std::fs::write(&cfg, "<photosrv>\n chooser nope\n</photosrv>\n").unwrap();
    shoal_testkit::signal(&route.child, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        route.child.try_wait().unwrap().is_none(),
        "shoal route exited"
    );
    assert_eq!(shards(&route), [vec![nodes[0].url(), nodes[1].url()]]);
    assert_eq!(request(route.front, "GET", "/h/a.txt", b"").0, 200);

    // ... and the next SIGHUP still reloads.
    write_map(&[&nodes[1]]);
    shoal_testkit::signal(&route.child, "HUP");
    until_shards(&route, &[vec![nodes[1].url()]]);
    assert_eq!(request(route.front, "GET", "/h/b.txt", b"").0, 200);
}

/// The `[route]` table of a TOML map is re-read too: a live setting (`read_only`) changes at
/// the next request and shows in `/status`; a change to one fixed at start (`journal`) is
/// refused whole, so the `read_only` beside it stays as it was; a flag keeps overriding the
/// file.
#[test]
fn route_reloads_its_route_table_on_sighup() {
    if !nginx_or_skip("sighup settings") {
        return;
    }
    let node = Node::start();
    let dead = "http://127.0.0.1:1".to_owned();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("map.toml");
    let write = |route: &str, replicas: &[&str]| {
        let list: Vec<String> = replicas.iter().map(|r| format!("{r:?}")).collect();
        let map = format!(
            "[route]\n{route}\n[[dc.test.shards]]\nname = \"shard1\"\nreplicas = [{}]\n",
            list.join(", ")
        );
        std::fs::write(&cfg, map).unwrap();
    };
    let settings = |route: &Route| route.status()["settings"].clone();
    let until = |route: &Route, key: &str, want: serde_json::Value| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while settings(route)[key] != want {
            assert!(
                Instant::now() < deadline,
                "{key} is still {}, not {want}",
                settings(route)[key]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let url = node.url();
    write("hedge_delay = \"30ms\"", &[&url]);
    let mut route = Route::start(&cfg, &["--health-interval", "0", "--write-quorum", "1"]);
    assert_eq!(settings(&route)["hedge_delay_ms"], 30);
    assert_eq!(request(route.front, "PUT", "/t/a.txt", b"a").0, 201);

    let table = "hedge_delay = \"70ms\"\nread_only = true\nwrite_quorum = \"all\"";
    write(table, &[&url]);
    shoal_testkit::signal(&route.child, "HUP");
    until(&route, "read_only", true.into());
    assert_eq!(settings(&route)["hedge_delay_ms"], 70);
    // The flag still wins over the file.
    assert_eq!(settings(&route)["write_quorum"], "1");
    assert_eq!(request(route.front, "PUT", "/t/b.txt", b"b").0, 405);
    assert_eq!(request(route.front, "GET", "/t/a.txt", b"").0, 200);

    // A journal appears: fixed at start, so the table waits for a restart, read_only = false
    // included. The shard map beside it (a second replica) is reloaded on its own, which
    // says the SIGHUP was handled.
    write(
        "read_only = false\njournal = \"/tmp/x.journal\"",
        &[&url, &dead],
    );
    shoal_testkit::signal(&route.child, "HUP");
    until_shards(&route, &[vec![url.clone(), dead.clone()]]);
    assert!(
        route.child.try_wait().unwrap().is_none(),
        "shoal route exited"
    );
    assert_eq!(settings(&route)["read_only"], true);
    assert_eq!(request(route.front, "PUT", "/t/c.txt", b"c").0, 405);

    // Without the journal, the next SIGHUP applies read_only = false.
    write("read_only = false", &[&url]);
    shoal_testkit::signal(&route.child, "HUP");
    until(&route, "read_only", false.into());
    assert_eq!(
        settings(&route)["hedge_delay_ms"],
        50,
        "back to the default"
    );
    assert_eq!(request(route.front, "PUT", "/t/c.txt", b"c").0, 201);
}

#[test]
fn serve_keeps_serving_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.txt"), "hello").unwrap();
    let mut serve = common::serve::start(
        &[
            "--origin",
            dir.path().to_str().unwrap(),
            "--admin-listen",
            "off",
        ],
        &[],
    );
    for _ in 0..2 {
        serve.signal("HUP");
        std::thread::sleep(Duration::from_millis(300));
        let (status, body) = get(serve.addr, "/x.txt", "");
        assert!(status == 200 && body == b"hello", "{status}");
    }
    serve.sigterm();
    assert!(serve.wait_exit(Duration::from_secs(10)));
}
