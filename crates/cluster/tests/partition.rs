//! A real network partition of a 5-node gossip cluster (`shoal-cluster-node` processes, each
//! in a network namespace of its own; see `common::netns`): hosts 0-1 and 2-4 are cut
//! apart under client load. Each half sees the other go down and keeps answering every key
//! (owners on the other side are unreachable, so it loads them itself); no request fails.
//! After the link comes back, every node's view converges on all 5 members and every node
//! computes the same ownership.
//!
//! Stated times: each half sees only itself within 10 s of the cut; all views converge
//! within 20 s of healing (down members are re-announced to every 3 s with fast gossip).
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::netns::Net;
use common::process::{Guard, hex, http_get};
use common::value_of;
use serde_json::Value;

const NODE: &str = env!("CARGO_BIN_EXE_shoal-cluster-node");
const HOSTS: usize = 5;
const HALF_A: usize = 2;
const KEYS: usize = 200;

struct Host {
    url: String,
    admin: SocketAddr,
    gossip: SocketAddr,
}

/// Ports the OS hands out inside host `i` (its namespace is empty, but we still ask).
fn ports(net: &Net, i: usize) -> Host {
    let ip = Net::addr_of(i);
    net.enter(i, move || {
        let tcp = |_| {
            TcpListener::bind((ip, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (peer, admin) = (tcp(0), tcp(1));
        let gossip = UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap();
        Host {
            url: format!("http://{ip}:{peer}"),
            admin: SocketAddr::new(ip, admin),
            gossip,
        }
    })
    .join()
    .unwrap()
}

fn spawn(net: &Net, i: usize, h: &Host, seeds: &str) -> Guard {
    let mut cmd = net.command(i, NODE);
    cmd.args(["--self", &h.url, "--admin", &h.admin.to_string()])
        .args(["--gossip", &h.gossip.to_string(), "--fast-gossip", "yes"])
        .args(["--fetch-timeout-ms", "1000"]);
    if !seeds.is_empty() {
        cmd.args(["--seeds", seeds]);
    }
    let mut g = Guard::spawn(&format!("node {i} ({})", h.url), &mut cmd);
    // Reachable only from inside its namespace, so not common::process::wait_http.
    let admin = h.admin;
    let deadline = Instant::now() + Duration::from_secs(20);
    while net
        .enter(i, move || http_get(admin, "/health"))
        .join()
        .unwrap()
        .is_none()
    {
        assert!(g.alive(), "node {i} exited before it answered");
        assert!(
            Instant::now() < deadline,
            "node {i} did not start within 20 s"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    g
}

/// `/members` of host `i`, asked from inside its namespace: `(url, state, share)` of every
/// member it knows, sorted.
fn members(net: &Net, i: usize, admin: SocketAddr) -> Vec<(String, String, String)> {
    let got = net
        .enter(i, move || http_get(admin, "/members"))
        .join()
        .unwrap();
    let Some((200, body)) = got else {
        return Vec::new();
    };
    let v: Value = serde_json::from_slice(&body).unwrap();
    let mut out: Vec<_> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["url"].as_str().unwrap().to_owned(),
                m["state"].as_str().unwrap().to_owned(),
                format!("{:.4}", m["share"].as_f64().unwrap()),
            )
        })
        .collect();
    out.sort();
    out
}

/// The ring members of host `i` (alive or suspect).
fn ring(net: &Net, i: usize, admin: SocketAddr) -> Vec<String> {
    members(net, i, admin)
        .into_iter()
        .filter(|(_, s, _)| s == "alive" || s == "suspect")
        .map(|(u, _, _)| u)
        .collect()
}

/// Poll until each host in `which` has exactly `want` in its ring; returns the time taken.
fn converge(
    net: &Net,
    hosts: &[Host],
    which: &[usize],
    want: &[String],
    within: Duration,
) -> Duration {
    let start = Instant::now();
    let mut want = want.to_vec();
    want.sort();
    loop {
        let views: Vec<Vec<String>> = which
            .iter()
            .map(|&i| ring(net, i, hosts[i].admin))
            .collect();
        if views.iter().all(|v| *v == want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "hosts {which:?} did not converge on {want:?} within {within:?}: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Load {
    done: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<usize>,
}

/// Client load from inside host `from`'s namespace on `targets` (admin addresses of its
/// half), bounded in count and time, until `stop`.
fn load(net: &Net, from: usize, targets: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> Load {
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let (d, f) = (done.clone(), failures.clone());
    let thread = net.enter(from, move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) && n < 50_000 && Instant::now() < deadline {
            let key = format!("load-{}", n % KEYS);
            let target = targets[n % targets.len()];
            let t = Instant::now();
            match http_get(target, &format!("/get?hex={}", hex(key.as_bytes()))) {
                Some((200, body)) if body == value_of(key.as_bytes()).to_vec() => {}
                other => {
                    eprintln!(
                        "request {n} to {target} failed: {:?}",
                        other.map(|(s, _)| s)
                    );
                    f.fetch_add(1, Ordering::SeqCst);
                }
            }
            // The peer timeout is 1 s; a request that waits on an unreachable owner must
            // still be answered soon after it.
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "a request to {target} hung past the peer timeout"
            );
            n += 1;
            d.store(n, Ordering::SeqCst);
        }
        n
    });
    Load {
        done,
        failures,
        thread,
    }
}

fn loads(net: &Net, i: usize, admin: SocketAddr) -> usize {
    let (_, b) = net
        .enter(i, move || http_get(admin, "/loads"))
        .join()
        .unwrap()
        .unwrap();
    String::from_utf8(b).unwrap().parse().unwrap()
}

#[test]
fn a_partitioned_cluster_keeps_serving_on_both_sides_and_converges_after_healing() {
    let Some(net) = Net::create(HOSTS, HALF_A) else {
        return;
    };
    let hosts: Vec<Host> = (0..HOSTS).map(|i| ports(&net, i)).collect();
    // Seeds: the first host of each half, so either half can (re)start on its own.
    let seeds = format!("{},{}", hosts[0].gossip, hosts[HALF_A].gossip);
    // Dropped before `net` (declared after it): the namespaces outlive their processes.
    let mut guards = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        guards.push(spawn(&net, i, h, &seeds));
    }
    let all: Vec<String> = hosts.iter().map(|h| h.url.clone()).collect();
    let everyone: Vec<usize> = (0..HOSTS).collect();
    let took = converge(&net, &hosts, &everyone, &all, Duration::from_secs(10));
    eprintln!("{HOSTS} nodes in namespaces converged in {took:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let half_a: Vec<usize> = (0..HALF_A).collect();
    let half_b: Vec<usize> = (HALF_A..HOSTS).collect();
    let la = load(
        &net,
        0,
        half_a.iter().map(|&i| hosts[i].admin).collect(),
        stop.clone(),
    );
    let lb = load(
        &net,
        HALF_A,
        half_b.iter().map(|&i| hosts[i].admin).collect(),
        stop.clone(),
    );
    std::thread::sleep(Duration::from_millis(500));

    net.partition();
    let cut = Instant::now();
    let urls = |which: &[usize]| -> Vec<String> { which.iter().map(|&i| all[i].clone()).collect() };
    let ta = converge(
        &net,
        &hosts,
        &half_a,
        &urls(&half_a),
        Duration::from_secs(10),
    );
    let tb = converge(
        &net,
        &hosts,
        &half_b,
        &urls(&half_b),
        Duration::from_secs(10),
    );
    eprintln!(
        "partitioned: half A alone after {ta:?}, half B after {tb:?} more ({:?} in all)",
        cut.elapsed()
    );
    // Each half keeps serving every key on its own for a while.
    let (a0, b0) = (
        la.done.load(Ordering::SeqCst),
        lb.done.load(Ordering::SeqCst),
    );
    let loads_a0: usize = half_a.iter().map(|&i| loads(&net, i, hosts[i].admin)).sum();
    let loads_b0: usize = half_b.iter().map(|&i| loads(&net, i, hosts[i].admin)).sum();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until
        && (la.done.load(Ordering::SeqCst) < a0 + 2 * KEYS
            || lb.done.load(Ordering::SeqCst) < b0 + 2 * KEYS)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (a1, b1) = (
        la.done.load(Ordering::SeqCst),
        lb.done.load(Ordering::SeqCst),
    );
    let loads_a: usize = half_a
        .iter()
        .map(|&i| loads(&net, i, hosts[i].admin))
        .sum::<usize>()
        - loads_a0;
    let loads_b: usize = half_b
        .iter()
        .map(|&i| loads(&net, i, hosts[i].admin))
        .sum::<usize>()
        - loads_b0;
    eprintln!(
        "while partitioned: half A answered {} requests ({loads_a} origin loads), half B {} ({loads_b})",
        a1 - a0,
        b1 - b0
    );
    assert!(a1 - a0 >= KEYS && b1 - b0 >= KEYS, "a half stopped serving");
    // Still cut off from each other.
    assert_eq!(ring(&net, 0, hosts[0].admin), urls(&half_a));
    assert_eq!(ring(&net, HALF_A, hosts[HALF_A].admin), urls(&half_b));

    net.heal();
    let took = converge(&net, &hosts, &everyone, &all, Duration::from_secs(20));
    eprintln!("healed: all views converged in {took:?}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (na, nb) = (la.thread.join().unwrap(), lb.thread.join().unwrap());
    eprintln!("{na} requests to half A, {nb} to half B in all");
    assert_eq!(
        la.failures.load(Ordering::SeqCst),
        0,
        "failed requests in half A"
    );
    assert_eq!(
        lb.failures.load(Ordering::SeqCst),
        0,
        "failed requests in half B"
    );

    // Ownership is the same everywhere: every node lists the same members, all alive, with
    // the same share of the key space (computed from its own ring).
    let views: Vec<_> = everyone
        .iter()
        .map(|&i| members(&net, i, hosts[i].admin))
        .collect();
    for (i, v) in views.iter().enumerate() {
        assert_eq!(v, &views[0], "node {i}'s ring differs from node 0's");
        assert_eq!(v.len(), HOSTS);
        assert!(v.iter().all(|(_, s, _)| s == "alive"), "node {i}: {v:?}");
    }
    eprintln!("ownership after healing: {:?}", views[0]);
    drop(guards);
}
