//! Nodes whose metrics go to their own debugging recorder, so tests in one binary (which
//! run in parallel) each read their own counters. The handles are resolved while the
//! cluster is built and served, under `metrics::with_local_recorder`.

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use parking_lot::Mutex;
use shoal_cache::GroupBuilder;
use shoal_cluster::{Cluster, ClusterBuilder};

use super::{Counting, GROUP, Node, listeners};

/// A metric's name and labels.
type Name = (String, Vec<(String, String)>);

/// A node and its metrics.
pub struct Recorded {
    pub node: Node,
    pub metrics: Snapshotter,
    /// Counter totals: a snapshot drains the recorder's counters, so they add up here.
    totals: Mutex<HashMap<Name, u64>>,
}

impl std::ops::Deref for Recorded {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl Recorded {
    /// The sum of the counters called `name` with all of `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut totals = self.totals.lock();
        for (k, _, _, v) in self.metrics.snapshot().into_vec() {
            if let DebugValue::Counter(c) = v {
                let ls = k
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                *totals.entry((k.key().name().to_owned(), ls)).or_default() += c;
            }
        }
        totals
            .iter()
            .filter(|((n, _), _)| n == name)
            .filter(|((_, ls), _)| {
                labels
                    .iter()
                    .all(|(l, v)| ls.iter().any(|(x, y)| x == l && y == v))
            })
            .map(|(_, c)| *c)
            .sum()
    }

    /// Peer requests this node served with `result`.
    pub fn served(&self, result: &str) -> u64 {
        self.counter(
            "shoal_peer_requests_total",
            &[("direction", "served"), ("result", result)],
        )
    }
}

/// Start `n` nodes on loopback listing every member; `group` makes each node's group
/// builder (named [`GROUP`]).
pub async fn start_recorded(
    n: usize,
    loader: impl Fn() -> Counting,
    configure: impl Fn(ClusterBuilder) -> ClusterBuilder,
    group: impl Fn() -> GroupBuilder,
) -> Vec<Recorded> {
    start_recorded_with(n, "http", loader, configure, group).await
}

/// [`start_recorded`] with member URLs of `scheme` (`https` for TLS members).
pub async fn start_recorded_with(
    n: usize,
    scheme: &str,
    loader: impl Fn() -> Counting,
    configure: impl Fn(ClusterBuilder) -> ClusterBuilder,
    group: impl Fn() -> GroupBuilder,
) -> Vec<Recorded> {
    let (ls, urls) = listeners(n, scheme).await;
    let members: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut nodes = Vec::new();
    for (l, url) in ls.into_iter().zip(&urls) {
        let recorder = DebuggingRecorder::new();
        let metrics = recorder.snapshotter();
        let loader = loader();
        let node = metrics::with_local_recorder(&recorder, || {
            let cluster = configure(Cluster::builder(url.as_str()))
                .build(&members)
                .unwrap();
            let group = cluster.group(group(), loader.clone()).unwrap();
            let server = cluster.serve_on(l).unwrap();
            Node {
                url: url.clone(),
                cluster,
                group,
                loader,
                server: Some(server),
            }
        });
        nodes.push(Recorded {
            node,
            metrics,
            totals: Mutex::default(),
        });
    }
    nodes
}

/// The group builder the other helpers use, with the default promoter.
pub fn default_group() -> GroupBuilder {
    shoal_cache::Group::builder(GROUP, 16 << 20)
}
