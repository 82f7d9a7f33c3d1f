//! A rolling restart of five `shoal serve` nodes joined by gossip, under steady client load:
//! every node in turn gets SIGTERM (it leaves gossip and drains), exits, and starts again on
//! the same peer and gossip ports. No client request may fail, and thanks to warm handoff
//! (new owners ask previous ones, and a leaving node answers them for `--peer-drain`) the
//! origin may be read for at most 1.2× the object (measured: 1.00×; without the peer drain,
//! 1.00–1.28×).

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::origin::{Origin, free_port, object, origin, read_and_check, wait_converged};
use common::serve::Serve;

const NODES: usize = 5;
const CHUNK: usize = 64 << 10;

struct Slot {
    me: String,
    gossip: u16,
}

fn start(o: &Origin, slots: &[Slot], i: usize) -> Serve {
    let origin_url = format!("http://{}/", o.addr);
    let gossip = format!("127.0.0.1:{}", slots[i].gossip);
    // Every other member's gossip address: whoever is up lets the node in.
    let seeds: Vec<String> = (0..slots.len())
        .filter(|&j| j != i)
        .map(|j| format!("127.0.0.1:{}", slots[j].gossip))
        .collect();
    let seeds = seeds.join(",");
    common::serve::start(
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--origin",
            &origin_url,
            "--self",
            &slots[i].me,
            "--chunk-size",
            "64KiB",
            "--gossip",
            &gossip,
            "--seeds",
            &seeds,
        ],
        &["admin on", "peers on"],
    )
}

#[test]
fn rolling_restart_of_five_under_load_fails_no_request_and_reads_the_origin_once() {
    let data = object(4 << 20);
    let o = origin(data.clone());
    let slots: Vec<Slot> = (0..NODES)
        .map(|_| Slot {
            me: format!("http://127.0.0.1:{}", free_port()),
            gossip: free_port(),
        })
        .collect();
    let peers: Vec<String> = slots.iter().map(|s| s.me.clone()).collect();
    let mut nodes: Vec<Serve> = (0..NODES).map(|i| start(&o, &slots, i)).collect();
    let admins =
        |nodes: &[Serve]| -> Vec<SocketAddr> { nodes.iter().map(|n| n.admin.unwrap()).collect() };
    wait_converged(&admins(&nodes), &peers, Duration::from_secs(30));

    // Clients read the whole object over and over from the nodes that are up.
    let up: Arc<Mutex<Vec<Option<SocketAddr>>>> =
        Arc::new(Mutex::new(nodes.iter().map(|n| Some(n.addr)).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let deadline = Instant::now() + Duration::from_secs(120);
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (up, stop, done, failed, data) = (
                up.clone(),
                stop.clone(),
                done.clone(),
                failed.clone(),
                data.clone(),
            );
            std::thread::spawn(move || {
                let mut n = c;
                while !stop.load(Ordering::SeqCst) && n < 100_000 && Instant::now() < deadline {
                    let target = {
                        let up = up.lock().unwrap();
                        let live: Vec<SocketAddr> = up.iter().flatten().copied().collect();
                        live[n % live.len()]
                    };
                    if let Err(e) = read_and_check(target, &data) {
                        eprintln!("client {c}, request {n} to {target}: {e}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    n += 4;
                }
            })
        })
        .collect();

    let wait_for_requests = |at_least: usize| {
        let until = Instant::now() + Duration::from_secs(30);
        while done.load(Ordering::SeqCst) < at_least {
            assert!(Instant::now() < until, "the clients stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for_requests(20);
    for i in 0..NODES {
        // Clients stop picking the node (as a load balancer would), then it shuts down
        // gracefully: requests already on it finish.
        up.lock().unwrap()[i] = None;
        // A load balancer's deregistration delay: a client that picked the node just
        // before gets its connection in before the listener closes.
        std::thread::sleep(Duration::from_millis(200));
        nodes[i].sigterm();
        assert!(nodes[i].wait_exit(Duration::from_secs(30)), "node {i} exit");
        nodes[i] = start(&o, &slots, i);
        wait_converged(&admins(&nodes), &peers, Duration::from_secs(30));
        up.lock().unwrap()[i] = Some(nodes[i].addr);
        let so_far = done.load(Ordering::SeqCst);
        wait_for_requests(so_far + 10);
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }

    let (done, failed) = (done.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("{done} requests during the rolling restart, {failed} failed");
    assert_eq!(failed, 0, "no client request may fail");
    let reads = o.seen.gets.lock().unwrap().len();
    let chunks = data.len().div_ceil(CHUNK);
    eprintln!(
        "origin range reads: {reads} for {chunks} chunks ({:.2}x the object)",
        reads as f64 / chunks as f64
    );
    assert!(
        reads as f64 <= 1.2 * chunks as f64,
        "{reads} origin reads for {chunks} chunks: warm handoff should keep it within 1.2x"
    );
}
