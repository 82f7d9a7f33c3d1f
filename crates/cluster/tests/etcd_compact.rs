//! A watch that etcd compacts under the watcher (real etcd 3.4 from Debian's `etcd-server`).
//!
//! The watcher's node is stalled (its runtime's only thread is blocked, as a node under a
//! long GC-like pause or CPU starvation would be): etcd cannot deliver, the watcher falls
//! behind (etcd moves it to its slow "victim" watchers), members change, and the history
//! holding those changes is compacted. When the node runs again, etcd answers the watch
//! with `compact_revision`: the events are gone, so the source must list the prefix again.
//! The test checks that it did (`shoal_etcd_relists_total{reason="compacted"}`) and that
//! its member set is right afterwards.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::etcd::{Etcd, available};
use etcd_client::Client;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use shoal_cluster::{EtcdConfig, EtcdMembership};

const PREFIX: &str = "/compact/members";

fn relists(snap: &Snapshotter, reason: &str) -> u64 {
    snap.snapshot()
        .into_vec()
        .iter()
        .filter(|(k, ..)| k.key().name() == "shoal_etcd_relists_total")
        .filter(|(k, ..)| {
            k.key()
                .labels()
                .any(|l| l.key() == "reason" && l.value() == reason)
        })
        .map(|(.., v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

#[test]
fn a_compacted_watch_lists_again_and_finds_the_changes_it_missed() {
    if !available() {
        return;
    }
    let etcd = Etcd::start();
    let test_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut client = test_rt
        .block_on(Client::connect([etcd.url()], None))
        .unwrap();
    // A member that will leave while the watcher is stalled.
    test_rt
        .block_on(client.put(format!("{PREFIX}/leaver"), "http://127.0.0.1:41202", None))
        .unwrap();

    // The watching node: its own one-thread runtime (so one blocking task stalls it) with
    // its own metrics recorder (the thread's local recorder covers all its tasks).
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let url = etcd.url();
    let node = std::thread::spawn(move || {
        let _local = metrics::set_default_local_recorder(&recorder);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut c = EtcdConfig::new(vec![url], "http://127.0.0.1:41201");
            c.prefix = PREFIX.into();
            c.ttl = Duration::from_secs(30); // outlives the stall
            c.max_backoff = Duration::from_millis(500);
            let m = Arc::new(EtcdMembership::start(c));
            tx.send((m.clone(), tokio::runtime::Handle::current()))
                .unwrap();
            let _ = stop_rx.await;
        });
    });
    let (member, node_rt) = rx.recv().unwrap();
    let urls = |m: &EtcdMembership| -> Vec<String> { m.current().members.clone() };
    let wait = |what: &str, want: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while urls(&member) != want {
            assert!(
                Instant::now() < deadline,
                "{what}: have {:?}, want {want:?}",
                urls(&member)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    wait(
        "first list",
        &["http://127.0.0.1:41201", "http://127.0.0.1:41202"],
    );
    assert_eq!(relists(&snap, "compacted"), 0);

    // Stall the node, then write more under the prefix than etcd can hold for a watcher
    // that does not read (HTTP/2 window, gRPC send quota, a 128-response channel): the
    // watcher becomes a slow one, its position stuck before the writes that follow.
    let stall = Duration::from_secs(4);
    node_rt.spawn(async move { std::thread::sleep(stall) });
    let stalled = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let filler = "x".repeat(16 << 10);
    test_rt.block_on(async {
        for _ in 0..300 {
            // Not a URL: counted as a bad value and ignored by the watcher.
            client
                .put(format!("{PREFIX}/filler"), filler.as_str(), None)
                .await
                .unwrap();
        }
        client
            .delete(format!("{PREFIX}/filler"), None)
            .await
            .unwrap();
        // The changes the watcher must not miss: one member leaves, one joins.
        client
            .delete(format!("{PREFIX}/leaver"), None)
            .await
            .unwrap();
        let put = client
            .put(format!("{PREFIX}/joiner"), "http://127.0.0.1:41203", None)
            .await
            .unwrap();
        let rev = put.header().unwrap().revision();
        client.compact(rev, None).await.unwrap();
    });
    assert!(
        stalled.elapsed() < stall,
        "the writes took longer than the stall ({:?}); the watcher may have kept up",
        stalled.elapsed()
    );
    // Still the old view: the node has not run since.
    assert_eq!(
        urls(&member),
        ["http://127.0.0.1:41201", "http://127.0.0.1:41202"]
    );

    // The node runs again: etcd tells it the watch was compacted; it lists again.
    wait(
        "after the compacted watch",
        &["http://127.0.0.1:41201", "http://127.0.0.1:41203"],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while relists(&snap, "compacted") == 0 {
        assert!(
            Instant::now() < deadline,
            "the watch was not reported compacted (shoal_etcd_relists_total)"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    // A watch that works again: a later change arrives through it.
    test_rt
        .block_on(client.put(format!("{PREFIX}/late"), "http://127.0.0.1:41204", None))
        .unwrap();
    wait(
        "a change after the re-list",
        &[
            "http://127.0.0.1:41201",
            "http://127.0.0.1:41203",
            "http://127.0.0.1:41204",
        ],
    );
    drop(member);
    let _ = stop_tx.send(());
    node.join().unwrap();
}
