//! What `shoal route` reports on its admin port, on the real binary in front of real nginx
//! WebDAV nodes: request counts by method and status, per-replica latency and errors, hedges,
//! multi-HEAD timeouts, write quorum failures, the repair backlog, and `/status` with shards,
//! replicas and their health as the periodic health check sees it. The read-mode flags
//! (`--chooser-mode`, `--hedge-delay`, `--head-timeout`) are shown to take effect.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::origin::{metric, wait_until};
use common::route::{Hang, Route, free_addr, request};
use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};

/// A photosrv config with one shard over `replicas`, written into `dir`.
fn one_shard(dir: &Path, name: &str, replicas: &[String]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, photosrv_config("jump", &[replicas.to_vec()], None)).unwrap();
    p
}

/// `--chooser-mode hedged --hedge-delay 400ms` over a hanging replica and a good one: every
/// read succeeds, the ones that went to the hanging replica first are hedged (each of those
/// waited the delay, so the flag took effect), and the counters and the good replica's
/// latency histogram say so.
#[test]
fn hedges_requests_and_replica_latency_are_counted() {
    if !nginx_or_skip("route_metrics hedges") {
        return;
    }
    let (hang, node) = (Hang::start(), Node::start());
    std::fs::write(node.root().join("f.txt"), b"hello").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_shard(dir.path(), "hedged.cfg", &[hang.url(), node.url()]);
    let r = Route::start(
        &cfg,
        &[
            "--health-interval",
            "0",
            "--chooser-mode",
            "hedged",
            "--hedge-delay",
            "400ms",
        ],
    );
    // The hanging replica is first in about half the reads: 16 make a read without it
    // first, and one with it, all but certain (1 in 65,536 each).
    let reads = 16;
    let mut waited = 0;
    for _ in 0..reads {
        let t = Instant::now();
        assert_eq!(
            request(r.front, "GET", "/f.txt", b""),
            (200, "hello".into())
        );
        if t.elapsed() >= Duration::from_millis(400) {
            waited += 1;
        }
    }
    let hedges = metric(r.admin, "shoal_route_hedges_total", &[]);
    assert!(hedges >= 1.0, "no read went to the hanging replica first?");
    assert!(
        hedges <= f64::from(waited),
        "{hedges} hedges but only {waited} reads waited the 400ms delay"
    );
    assert!(hedges < f64::from(reads), "every read hedged: {hedges}");
    let ok = metric(
        r.admin,
        "shoal_route_requests_total",
        &["method=\"GET\"", "status=\"200\""],
    );
    assert_eq!(ok, f64::from(reads));
    let good = format!("replica=\"{}\"", node.url());
    let timed = metric(
        r.admin,
        "shoal_route_replica_latency_seconds_count",
        &[&good],
    );
    assert_eq!(timed, f64::from(reads), "one timed answer per read");
}

/// `--chooser-mode multi-head --head-timeout 600ms`: a HEAD round that a hanging replica
/// never answers ends on the timeout (not the default 100ms), is counted every time (a
/// per-request timeout as long as the round's once raced it and lost a third of the counts),
/// and the read is served by the replica that answered.
#[test]
fn multi_head_timeouts_are_counted_and_the_flag_sets_the_wait() {
    if !nginx_or_skip("route_metrics multi-head") {
        return;
    }
    let (hang, node) = (Hang::start(), Node::start());
    std::fs::write(node.root().join("f.txt"), b"hello").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_shard(dir.path(), "mh.cfg", &[hang.url(), node.url()]);
    let r = Route::start(
        &cfg,
        &[
            "--health-interval",
            "0",
            "--chooser-mode",
            "multi-head",
            "--head-timeout",
            "600ms",
        ],
    );
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(
            request(r.front, "GET", "/f.txt", b""),
            (200, "hello".into())
        );
        assert!(
            t.elapsed() >= Duration::from_millis(550),
            "the round ended before --head-timeout: {:?}",
            t.elapsed()
        );
    }
    assert_eq!(
        metric(r.admin, "shoal_route_multi_head_timeouts_total", &[]),
        3.0
    );
    assert_eq!(metric(r.admin, "shoal_route_hedges_total", &[]), 0.0);
    let hung = format!("replica=\"{}\"", hang.url());
    assert_eq!(
        metric(r.admin, "shoal_route_replica_errors_total", &[&hung]),
        3.0,
        "each unanswered HEAD is an error of its replica"
    );
}

/// One good replica and two closed ports, quorum 2, no health checks: each PUT reaches one
/// replica (502, both misses journalled; with no check to mark them healthy again, a connect
/// error does not mark the dead replicas down, so the second PUT tries them too). Both are
/// quorum failures; the backlog is the four journal entries, in `/metrics` and `/status`,
/// which also shows the dead replicas' errors. (The 503 of replicas known to be down is
/// tested in the router's `faults` suite, with a health check.)
#[test]
fn quorum_failures_repair_backlog_and_replica_errors() {
    if !nginx_or_skip("route_metrics quorum") {
        return;
    }
    let node = Node::start();
    let dead = [free_addr(), free_addr()].map(|a| format!("http://{a}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_shard(
        dir.path(),
        "q.cfg",
        &[node.url(), dead[0].clone(), dead[1].clone()],
    );
    let journal = dir.path().join("journal");
    let r = Route::start(
        &cfg,
        &[
            "--health-interval",
            "0",
            "--journal",
            journal.to_str().unwrap(),
        ],
    );
    let (code, body) = request(r.front, "PUT", "/a/1.jpg", b"one");
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("write quorum not reached"), "{body}");
    let (code, body) = request(r.front, "PUT", "/a/2.jpg", b"two");
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("write quorum not reached"), "{body}");
    assert_eq!(
        metric(r.admin, "shoal_route_write_quorum_failures_total", &[]),
        2.0
    );
    assert_eq!(
        metric(
            r.admin,
            "shoal_route_requests_total",
            &["method=\"PUT\"", "status=\"502\""]
        ),
        2.0
    );
    assert_eq!(metric(r.admin, "shoal_route_repair_backlog", &[]), 4.0);
    for d in &dead {
        let label = format!("replica=\"{d}\"");
        assert!(metric(r.admin, "shoal_route_replica_errors_total", &[&label]) >= 1.0);
    }

    let s = r.status();
    assert_eq!(s["repair_backlog"], 4, "{s}");
    assert_eq!(s["dc"], "test", "{s}");
    let shard = &s["rings"][0]["shards"][0];
    assert_eq!(shard["name"], "shard1", "{s}");
    let replicas = shard["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3, "{s}");
    for rep in replicas {
        let dead_one = dead.iter().any(|d| rep["url"] == d.as_str());
        assert_eq!(rep["healthy"], true, "{rep}");
        assert_eq!(rep["in_roster"], true, "{rep}");
        if dead_one {
            assert!(rep["errors"].as_u64().unwrap() >= 2, "{rep}");
        } else {
            assert_eq!(rep["errors"], 0, "{rep}");
        }
    }
}

/// `--health-interval 200ms`: a node that stops is shown unhealthy in `/status` by the
/// periodic check alone (no request touches it), and healthy again once it is back.
#[test]
fn the_periodic_health_check_follows_a_node_down_and_back() {
    if !nginx_or_skip("route_metrics health") {
        return;
    }
    let (a, mut b) = (Node::start(), Node::start());
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_shard(dir.path(), "h.cfg", &[a.url(), b.url()]);
    let r = Route::start(&cfg, &["--health-interval", "200ms"]);
    let healthy = |url: String| {
        move |r: &Route| {
            let s = r.status();
            s["rings"][0]["shards"][0]["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .find(|rep| rep["url"] == url.as_str())
                .map(|rep| rep["healthy"] == true)
                .unwrap()
        }
    };
    let (a_ok, b_ok) = (healthy(a.url()), healthy(b.url()));
    assert!(a_ok(&r) && b_ok(&r));
    b.stop();
    wait_until("b shown unhealthy", Duration::from_secs(10), || !b_ok(&r));
    assert!(a_ok(&r), "a stayed healthy");
    b.restart();
    wait_until("b shown healthy again", Duration::from_secs(10), || {
        b_ok(&r)
    });
    assert_eq!(
        metric(r.admin, "shoal_route_requests_total", &[]),
        0.0,
        "the health check is not a request"
    );
}
