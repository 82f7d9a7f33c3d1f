//! Shared harness: in-process nodes on loopback, a deterministic counting loader, certs.
#![allow(dead_code, clippy::unwrap_used)]

pub mod etcd;
pub mod netns;
pub mod process;
pub mod raw;
pub mod recorded;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use shoal_cache::{Group, LoadError, Loaded, Loader, NeverPromote};
use shoal_cluster::{Cluster, ClusterBuilder, PeerServer};
use tokio::net::TcpListener;

/// The value every node's loader produces for `key`.
pub fn value_of(key: &[u8]) -> Bytes {
    let mut v = b"value-of:".to_vec();
    v.extend_from_slice(key);
    Bytes::from(v)
}

/// Keys starting with this do not exist.
pub const MISSING: &[u8] = b"missing/";

/// Counts loads per key; optionally slow.
#[derive(Clone, Default)]
pub struct Counting {
    pub loads: Arc<Mutex<HashMap<Vec<u8>, usize>>>,
    pub total: Arc<AtomicUsize>,
    pub delay: Duration,
}

impl Counting {
    pub fn slow(delay: Duration) -> Self {
        Counting {
            delay,
            ..Default::default()
        }
    }
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
    pub fn of(&self, key: &[u8]) -> usize {
        self.loads.lock().get(key).copied().unwrap_or(0)
    }
}

impl Loader for Counting {
    async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
        self.total.fetch_add(1, Ordering::SeqCst);
        *self.loads.lock().entry(key.to_vec()).or_default() += 1;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if key.starts_with(MISSING) {
            return Err(LoadError::NotFound);
        }
        Ok(Loaded::new(value_of(&key)))
    }
}

/// One in-process node.
pub struct Node {
    pub url: String,
    pub cluster: Cluster,
    pub group: Arc<Group>,
    pub loader: Counting,
    pub server: Option<PeerServer>,
}

impl Node {
    /// Stop serving (the node's port then refuses connections).
    pub async fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

pub const GROUP: &str = "things";

/// Bind `n` loopback listeners and name them.
pub async fn listeners(n: usize, scheme: &str) -> (Vec<TcpListener>, Vec<String>) {
    let mut ls = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("{scheme}://{}", l.local_addr().unwrap()));
        ls.push(l);
    }
    (ls, urls)
}

/// Start `n` nodes that all list every member; `configure` sets each node's builder.
pub async fn start(
    n: usize,
    loader: impl Fn() -> Counting,
    configure: impl Fn(ClusterBuilder) -> ClusterBuilder,
) -> Vec<Node> {
    start_with(n, "http", loader, configure).await
}

pub async fn start_with(
    n: usize,
    scheme: &str,
    loader: impl Fn() -> Counting,
    configure: impl Fn(ClusterBuilder) -> ClusterBuilder,
) -> Vec<Node> {
    let (ls, urls) = listeners(n, scheme).await;
    let members: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut nodes = Vec::new();
    for (l, url) in ls.into_iter().zip(&urls) {
        let cluster = configure(Cluster::builder(url.as_str()))
            .build(&members)
            .unwrap();
        let loader = loader();
        let group = cluster
            .group(
                Group::builder(GROUP, 16 << 20).promoter(NeverPromote),
                loader.clone(),
            )
            .unwrap();
        let server = cluster.serve_on(l).unwrap();
        nodes.push(Node {
            url: url.clone(),
            cluster,
            group,
            loader,
            server: Some(server),
        });
    }
    nodes
}

/// Keys `prefix0..prefixN`.
pub fn keys(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .collect()
}

/// Run `fut` or fail the test after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish within {secs}s"),
    }
}

/// A CA and certificates for loopback members, in PEM.
pub struct Pki {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A fresh CA and one certificate for `127.0.0.1` and `localhost` signed by it.
pub fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Two nodes listing the same members (`127.0.0.1:port`) but placing keys with different
/// algorithms, so they disagree about owners.
pub async fn start_two_rings(protocol: shoal_cluster::Protocol) -> Vec<Node> {
    use shoal_cluster::Algorithm;
    let (ls, urls) = listeners(2, "http").await;
    let members: Vec<String> = urls
        .iter()
        .map(|u| u.trim_start_matches("http://").to_owned())
        .collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let mut nodes = Vec::new();
    for ((l, url), algorithm) in ls
        .into_iter()
        .zip(&members)
        .zip([Algorithm::Groupcache, Algorithm::Rendezvous])
    {
        let cluster = Cluster::builder(url.as_str())
            .protocol(protocol)
            .algorithm(algorithm)
            .build(&refs)
            .unwrap();
        let loader = Counting::slow(Duration::from_millis(50));
        let group = cluster
            .group(
                Group::builder(GROUP, 16 << 20).promoter(NeverPromote),
                loader.clone(),
            )
            .unwrap();
        let server = cluster.serve_on(l).unwrap();
        nodes.push(Node {
            url: url.clone(),
            cluster,
            group,
            loader,
            server: Some(server),
        });
    }
    nodes
}
