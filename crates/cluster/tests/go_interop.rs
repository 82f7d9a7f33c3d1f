//! Interop with golang/groupcache: two shoal nodes and one Go groupcache node (Debian's
//! golang-github-golang-groupcache-dev) in one cluster over the groupcache protocol.
//! They must agree on every key's owner (crc32 ring, 50 replicas, `i + url`) and load each
//! key once, whoever asks.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::{Guard, free_port, hex, http_get, http_post, require, scratch, wait_http};
use common::{Counting, GROUP, MISSING, Node, keys, listeners, value_of};
use shoal_cache::{Group, NeverPromote};
use shoal_cluster::{Algorithm, Cluster, Protocol};

const GO: &str = "/usr/bin/go";
const GOPATH: &str = "/usr/share/gocode";
const GROUPCACHE_SRC: &str = "/usr/share/gocode/src/github.com/golang/groupcache/http.go";

/// Build the Go peer into the scratch directory (GOPATH mode, no network).
fn build_go_peer() -> std::path::PathBuf {
    let dir = scratch("go");
    let bin = dir.join("groupcache_peer");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/groupcache_peer/main.go");
    let out = Command::new(GO)
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", dir.join("cache"))
        .env("GOFLAGS", "")
        .output()
        .expect("running go build");
    assert!(
        out.status.success(),
        "go build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

async fn go_get(api: SocketAddr, path: String) -> (u16, Vec<u8>) {
    tokio::task::spawn_blocking(move || http_get(api, &path))
        .await
        .unwrap()
        .expect("the Go node's API answers")
}

async fn go_loads(api: SocketAddr, key: &[u8]) -> usize {
    let (_, body) = go_get(api, format!("/loads?hex={}", hex(key))).await;
    String::from_utf8(body).unwrap().trim().parse().unwrap()
}

/// Keys that need care on the wire: spaces, `+`, `/`, `%`, bytes that are not UTF-8.
fn random_keys(n: usize) -> Vec<Vec<u8>> {
    const AWKWARD: &[u8] = b" +/%?#&=.~-_";
    let mut state = 0x9e37_79b9_7f4a_7c15_u64; // xorshift64*, fixed seed: reproducible
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut ks: Vec<Vec<u8>> = [
        &b""[..],
        b" ",
        b"+",
        b"/",
        b"%",
        b"%2F",
        b"a b",
        b"\xff\xfe",
    ]
    .map(<[u8]>::to_vec)
    .to_vec();
    while ks.len() < n {
        let len = (next() % 24) as usize;
        let key = (0..len)
            .map(|_| match next() % 4 {
                0 => AWKWARD[(next() % AWKWARD.len() as u64) as usize],
                1 => (next() % 256) as u8,
                _ => b'a' + (next() % 26) as u8,
            })
            .collect();
        ks.push(key);
    }
    ks
}

/// golang/groupcache's `HTTPPool` picks the same owner as shoal's groupcache ring for
/// thousands of random keys.
async fn ownership_agrees(api: SocketAddr, node: &Node, members: &[&str]) {
    let ks = random_keys(3000);
    assert!(ks.iter().any(|k| std::str::from_utf8(k).is_err()));
    let body: String = ks.iter().map(|k| hex(k) + "\n").collect();
    let (status, reply) =
        tokio::task::spawn_blocking(move || http_post(api, "/owners", body.as_bytes()))
            .await
            .unwrap()
            .expect("the Go node's API answers");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let go_owners: Vec<&str> = std::str::from_utf8(&reply).unwrap().lines().collect();
    assert_eq!(go_owners.len(), ks.len());
    let ring = shoal_ring::build(Algorithm::Groupcache, members).unwrap();
    let mut per_member = std::collections::HashMap::new();
    for (k, go_owner) in ks.iter().zip(go_owners) {
        let ours = node.cluster.owner(k).unwrap();
        assert_eq!(go_owner, ours, "owner of {k:?}");
        assert_eq!(ring.owner(k).unwrap().name, ours);
        *per_member.entry(ours).or_insert(0) += 1;
    }
    assert_eq!(
        per_member.len(),
        members.len(),
        "every member owns some keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_and_go_groupcache_share_one_cluster() {
    if !require(
        "the groupcache interop test",
        "golang-go golang-github-golang-groupcache-dev",
        &[Path::new(GO), Path::new(GROUPCACHE_SRC)],
    ) {
        return;
    }
    let bin = tokio::task::spawn_blocking(build_go_peer).await.unwrap();

    let (ls, mut urls) = listeners(2, "http").await;
    let go_url = format!("http://127.0.0.1:{}", free_port());
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    urls.push(go_url.clone());
    let members: Vec<&str> = urls.iter().map(String::as_str).collect();

    let mut go = Guard::spawn(
        "go groupcache peer",
        Command::new(&bin)
            .arg("-self")
            .arg(&go_url)
            .arg("-peers")
            .arg(members.join(","))
            .arg("-api")
            .arg(api.to_string()),
    );
    let mut nodes = Vec::new();
    for (l, url) in ls.into_iter().zip(&urls) {
        let cluster = Cluster::builder(url.as_str())
            .protocol(Protocol::Groupcache)
            .algorithm(Algorithm::Groupcache)
            .build(&members)
            .unwrap();
        let loader = Counting::default();
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
    let go_ready = tokio::task::spawn_blocking(move || {
        wait_http(api, "/loads", Duration::from_secs(20), &mut go);
        go
    });
    let _go = go_ready.await.unwrap();

    ownership_agrees(api, &nodes[0], &members).await;

    // Keys whose owner is the Go node, asked from shoal: Go loads them, shoal does not.
    let ks = keys("interop-", 60);
    let go_owned: Vec<_> = ks
        .iter()
        .filter(|k| nodes[0].cluster.owner(k).unwrap() == go_url)
        .collect();
    let rust_owned: Vec<_> = ks
        .iter()
        .filter(|k| nodes[0].cluster.owner(k).unwrap() == nodes[1].url)
        .collect();
    assert!(
        go_owned.len() >= 5 && rust_owned.len() >= 5,
        "{} {}",
        go_owned.len(),
        rust_owned.len()
    );
    for k in &go_owned {
        assert_eq!(nodes[0].group.get(k).await.unwrap(), value_of(k));
        assert_eq!(go_loads(api, k).await, 1, "Go owns {k:?} and loads it once");
    }
    assert_eq!(nodes[0].loader.total(), 0);
    assert_eq!(nodes[0].group.stats().peer_errors, 0);

    // Keys owned by the second shoal node, asked from Go: shoal loads them, Go does not.
    for k in &rust_owned {
        let (status, body) = go_get(api, format!("/get?hex={}", hex(k))).await;
        assert_eq!((status, body.as_slice()), (200, &value_of(k)[..]));
        assert_eq!(go_loads(api, k).await, 0, "Go asked shoal for {k:?}");
        assert_eq!(nodes[1].loader.of(k), 1);
    }

    // Everyone asks for every key: still one load per key in the whole cluster.
    for k in &ks {
        for node in &nodes {
            assert_eq!(node.group.get(k).await.unwrap(), value_of(k));
        }
        let (status, _) = go_get(api, format!("/get?hex={}", hex(k))).await;
        assert_eq!(status, 200);
    }
    let mut total: usize = nodes.iter().map(|n| n.loader.total()).sum();
    let (_, go_total) = go_get(api, "/loads".into()).await;
    total += String::from_utf8(go_total)
        .unwrap()
        .trim()
        .parse::<usize>()
        .unwrap();
    assert_eq!(total, ks.len(), "one load per key across shoal and Go");

    // Keys with bytes that need escaping make the trip too (not spaces: Go's client sends
    // them as '+', golang/groupcache#25).
    for k in [&b"a/b"[..], b"100%", "ключ".as_bytes(), b"semi;colon"] {
        let owner = nodes[0].cluster.owner(k).unwrap();
        let asker = if owner == go_url {
            &nodes[0]
        } else {
            &nodes[1]
        };
        assert_eq!(asker.group.get(k).await.unwrap(), value_of(k), "{k:?}");
        let (status, body) = go_get(api, format!("/get?hex={}", hex(k))).await;
        assert_eq!((status, body.as_slice()), (200, &value_of(k)[..]), "{k:?}");
    }

    // Go has no "not found": its 500 makes shoal load locally, where it is NotFound.
    let missing = (0..50)
        .map(|i| [MISSING, format!("{i}").as_bytes()].concat())
        .find(|k| nodes[0].cluster.owner(k).unwrap() == go_url)
        .unwrap();
    assert!(
        nodes[0]
            .group
            .get(&missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(go_loads(api, &missing).await, 1);
}
