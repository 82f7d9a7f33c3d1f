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

/// Whether Go's `http.ServeMux` answers `/_groupcache/<group>/<key>` with a redirect to a
/// cleaned path: it cleans the *decoded* path, so a key that starts with `/`, holds `//`,
/// or has a `.` or `..` segment never reaches a Go owner's `HTTPPool`, however escaped.
fn go_mux_redirects(key: &[u8]) -> bool {
    let segments: Vec<&[u8]> = key.split(|&b| b == b'/').collect();
    let last = segments.len() - 1;
    segments
        .iter()
        .enumerate()
        .any(|(i, s)| *s == b"." || *s == b".." || (s.is_empty() && i != last))
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

    // golang/groupcache has no remove and takes a DELETE for a GET: a remove reaching it is
    // reported as failed, not confirmed, while the shoal member removes.
    let removal = nodes[0].cluster.remove(GROUP, go_owned[0]).await.unwrap();
    assert_eq!(removal.confirmed, vec![nodes[1].url.clone()]);
    assert_eq!(removal.failed.len(), 1, "{:?}", removal.failed);
    assert_eq!(removal.failed[0].0, go_url);
    assert!(
        removal.failed[0]
            .1
            .to_string()
            .contains("cannot remove keys"),
        "{}",
        removal.failed[0].1
    );

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

    // Random awkward keys (bytes that are not UTF-8, '+', '/', '%', '?', '#', '&', ...)
    // make the trip both ways, byte-identical, each loaded once in the whole cluster. Keys
    // with a space are left out: Go's client sends a space as '+' and its server keeps the
    // '+' (golang/groupcache#25), so a Go owner loads another key; shoal's client does the
    // same, to place and fetch keys exactly as Go peers do.
    let mut seen = std::collections::HashSet::new();
    let awkward: Vec<Vec<u8>> = random_keys(3000)
        .into_iter()
        .filter(|k| !k.is_empty() && !k.contains(&b' ') && k.len() > 2)
        .filter(|k| !go_mux_redirects(k))
        .filter(|k| seen.insert(k.clone()))
        .take(150)
        .collect();
    assert!(awkward.iter().any(|k| std::str::from_utf8(k).is_err()));
    assert!(
        awkward
            .iter()
            .any(|k| k.contains(&b'+') && k.contains(&b'%'))
    );
    let loads_so_far = |nodes: &[Node], go_total: Vec<u8>| -> usize {
        nodes.iter().map(|n| n.loader.total()).sum::<usize>()
            + String::from_utf8(go_total)
                .unwrap()
                .trim()
                .parse::<usize>()
                .unwrap()
    };
    let before = loads_so_far(&nodes, go_get(api, "/loads".into()).await.1);
    let mut owners = std::collections::HashSet::new();
    for k in &awkward {
        owners.insert(nodes[0].cluster.owner(k).unwrap());
        for node in &nodes {
            assert_eq!(node.group.get(k).await.unwrap(), value_of(k), "{k:?}");
        }
        let (status, body) = go_get(api, format!("/get?hex={}", hex(k))).await;
        assert_eq!((status, body.as_slice()), (200, &value_of(k)[..]), "{k:?}");
    }
    assert_eq!(owners.len(), 3, "the awkward keys land on every member");
    let after = loads_so_far(&nodes, go_get(api, "/loads".into()).await.1);
    assert_eq!(
        after - before,
        awkward.len(),
        "each awkward key loaded once across shoal and Go"
    );

    // A key whose path Go's ServeMux would clean ("a//b"): the Go owner answers with a
    // redirect to another key's path ("a/b"). Go's own client would follow it and get that
    // key's value; shoal's does not follow redirects, and loads the key itself.
    let unclean = (0..200)
        .map(|i| format!("dbl//slash-{i}").into_bytes())
        .find(|k| nodes[0].cluster.owner(k).unwrap() == go_url)
        .unwrap();
    assert!(go_mux_redirects(&unclean));
    assert_eq!(
        nodes[0].group.get(&unclean).await.unwrap(),
        value_of(&unclean)
    );
    assert_eq!(
        nodes[0].loader.of(&unclean),
        1,
        "loaded here, not redirected"
    );
    assert_eq!(
        go_loads(api, &unclean).await,
        0,
        "the Go owner never loaded it"
    );

    // shoal's "not found" reaches a Go asker as an error status (Go has no "not found"):
    // Go then loads locally, as after any peer error, and its getter fails too.
    let missing_on_shoal = (0..50)
        .map(|i| [MISSING, format!("r{i}").as_bytes()].concat())
        .find(|k| nodes[0].cluster.owner(k).unwrap() == nodes[1].url)
        .unwrap();
    let (status, _) = go_get(api, format!("/get?hex={}", hex(&missing_on_shoal))).await;
    assert_eq!(status, 500);
    assert_eq!(
        nodes[1].loader.of(&missing_on_shoal),
        1,
        "shoal's owner ran its loader"
    );
    assert_eq!(
        go_loads(api, &missing_on_shoal).await,
        1,
        "Go loaded it locally after shoal's 404"
    );

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
