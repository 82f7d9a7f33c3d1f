//! Bad input on the peer port: each gets the status documented in the crate docs, is
//! counted in `shoal_peer_bad_requests_total` (or `requests_total{result=unknown_group}`,
//! `auth_failures_total`), and the server goes on serving.

mod common;

use common::raw::{get_request, grpc, http1};
use common::recorded::{Recorded, default_group, start_recorded};
use common::{Counting, GROUP, value_of};
use shoal_cluster::{MAX_KEY_BYTES, Secret};

const BAD: &str = "shoal_peer_bad_requests_total";

fn bad(node: &Recorded, protocol: &str, reason: &str) -> u64 {
    node.counter(BAD, &[("protocol", protocol), ("reason", reason)])
}

async fn still_serves(node: &Recorded) {
    let r = http1(
        &node.url,
        "GET",
        &format!("/_galaxycache/{GROUP}/fine"),
        &[],
    )
    .await;
    assert_eq!((r.status, r.body), (200, value_of(b"fine").to_vec()));
}

#[tokio::test]
async fn malformed_paths_methods_and_deadlines_are_400_404_405() {
    let nodes = start_recorded(1, Counting::default, |b| b, default_group).await;
    let n = &nodes[0];
    let cases: [(&str, &str, u16, &str, &str); 13] = [
        // (method, target, status, protocol label, reason)
        ("GET", "/_galaxycache/", 400, "native", "malformed_path"),
        (
            "GET",
            "/_galaxycache/things",
            400,
            "native",
            "malformed_path",
        ),
        ("GET", "/_galaxycache//k", 400, "native", "malformed_path"),
        (
            "GET",
            "/_galaxycache/things/%zz",
            400,
            "native",
            "malformed_path",
        ),
        (
            "GET",
            "/_galaxycache/%ff/k",
            400,
            "native",
            "malformed_path",
        ),
        (
            "GET",
            "/_galaxycache_peek/things/%4",
            400,
            "native",
            "malformed_path",
        ),
        (
            "GET",
            "/_groupcache/things/a%",
            400,
            "groupcache",
            "malformed_path",
        ),
        ("GET", "/", 404, "native", "unknown_path"),
        ("GET", "/metrics", 404, "native", "unknown_path"),
        ("POST", "/_galaxycache/things/k", 405, "native", "method"),
        // DELETE removes on a fetch path (tests/remove.rs), and nowhere else.
        (
            "DELETE",
            "/_galaxycache_peek/things/k",
            405,
            "native",
            "method",
        ),
        (
            "DELETE",
            "/_groupcache/",
            400,
            "groupcache",
            "malformed_path",
        ),
        ("PUT", "/_galaxycache/things/k", 405, "native", "method"),
    ];
    for (i, (method, target, status, protocol, reason)) in cases.iter().enumerate() {
        let before = bad(n, protocol, reason);
        let r = http1(&n.url, method, target, &[]).await;
        assert_eq!(r.status, *status, "case {i}: {method} {target}: {r:?}");
        assert_eq!(bad(n, protocol, reason), before + 1, "case {i}: counted");
        if *status == 405 {
            let fetch_path = !target.starts_with("/_galaxycache_peek/");
            let allow = if fetch_path {
                "allow: get, head, delete\r\n"
            } else {
                "allow: get, head\r\n"
            };
            assert!(r.head.contains(allow), "{r:?}");
        }
    }
    let r = http1(
        &n.url,
        "GET",
        "/_galaxycache/things/k",
        &["X-Shoal-Deadline-Ms: soon"],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(bad(n, "native", "bad_deadline"), 1);
    assert_eq!(n.loader.total(), 0, "nothing bad reached the loader");
    assert_eq!(n.served("bad_request"), cases.len() as u64 + 1);
    still_serves(n).await;
}

#[tokio::test]
async fn unknown_groups_are_404_in_each_protocols_words() {
    let nodes = start_recorded(1, Counting::default, |b| b, default_group).await;
    let n = &nodes[0];
    // galaxycache: the status header says the galaxy (not the key) was not found.
    let r = http1(&n.url, "GET", "/_galaxycache/nope/k", &[]).await;
    assert_eq!(r.status, 404);
    assert!(
        r.head.contains("x-galaxycache-galaxy-status: not found"),
        "{r:?}"
    );
    // groupcache: Go's text.
    let r = http1(&n.url, "GET", "/_groupcache/nope/k", &[]).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (404, &b"no such group: nope"[..])
    );
    // gRPC: InvalidArgument, as galaxycache's server says.
    let (code, message) = grpc(&n.url, "GetFromPeer", &get_request("nope", b"k"), None).await;
    assert_eq!(code, tonic::Code::InvalidArgument as i32, "{message}");
    assert!(message.starts_with("no such galaxy"), "{message}");
    for protocol in ["native", "groupcache", "grpc"] {
        let n_unknown = n.counter(
            "shoal_peer_requests_total",
            &[("protocol", protocol), ("result", "unknown_group")],
        );
        assert_eq!(n_unknown, 1, "{protocol}");
    }
    still_serves(n).await;
}

#[tokio::test]
async fn oversized_keys_are_414_or_invalid_argument() {
    let nodes = start_recorded(1, Counting::default, |b| b, default_group).await;
    let n = &nodes[0];
    // The longest key is served, even with every byte escaped (three times as long).
    let longest = format!("/_galaxycache/{GROUP}/{}", "%FF".repeat(MAX_KEY_BYTES));
    let r = http1(&n.url, "GET", &longest, &[]).await;
    assert_eq!(r.status, 200);
    let one_more = "k".repeat(MAX_KEY_BYTES + 1);
    for (base, protocol) in [("_galaxycache", "native"), ("_groupcache", "groupcache")] {
        let r = http1(&n.url, "GET", &format!("/{base}/{GROUP}/{one_more}"), &[]).await;
        assert_eq!(r.status, 414, "{protocol}");
        assert_eq!(bad(n, protocol, "key_too_long"), 1, "{protocol}");
    }
    let (code, _) = grpc(
        &n.url,
        "GetFromPeer",
        &get_request(GROUP, one_more.as_bytes()),
        None,
    )
    .await;
    assert_eq!(code, tonic::Code::InvalidArgument as i32);
    assert_eq!(bad(n, "grpc", "key_too_long"), 1);
    // Past hyper's 64 KiB URI limit hyper answers itself; we still count it.
    let huge = format!("/_galaxycache/{GROUP}/{}", "k".repeat(70_000));
    let r = http1(&n.url, "GET", &huge, &[]).await;
    assert_eq!(r.status, 414);
    common::within(10, "the unparsable request to be counted", async {
        // Counted when hyper ends the connection, just after it answered.
        for _ in 0..400 {
            if bad(n, "http", "unparsable") == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("not counted");
    })
    .await;
    // A gRPC message over the server's 64 KiB limit.
    let (code, _) = grpc(
        &n.url,
        "GetFromPeer",
        &get_request(GROUP, &[b'k'; 100_000]),
        None,
    )
    .await;
    assert_eq!(code, tonic::Code::OutOfRange as i32);
    assert_eq!(bad(n, "grpc", "too_large"), 1);
    assert_eq!(
        n.loader.total(),
        1,
        "only the longest allowed key was loaded"
    );
    still_serves(n).await;
}

#[tokio::test]
async fn bad_protobuf_and_unknown_methods_on_the_grpc_port() {
    let nodes = start_recorded(1, Counting::default, |b| b, default_group).await;
    let n = &nodes[0];
    for garbage in [
        &[0x0a, 0xff][..],
        &[0x07],
        &[0xff; 16],
        &[0x0a, 0x02, 0xff, 0xfe],
    ] {
        let (code, message) = grpc(&n.url, "GetFromPeer", garbage, None).await;
        assert_eq!(
            code,
            tonic::Code::InvalidArgument as i32,
            "{garbage:?}: {message}"
        );
        assert!(message.starts_with("bad protobuf"), "{message}");
    }
    assert_eq!(bad(n, "grpc", "bad_protobuf"), 4);
    let (code, _) = grpc(&n.url, "NoSuchMethod", &get_request(GROUP, b"k"), None).await;
    assert_eq!(code, tonic::Code::Unimplemented as i32);
    assert_eq!(bad(n, "grpc", "unknown_method"), 1);
    // A good request over the same path still works.
    let (code, _) = grpc(&n.url, "GetFromPeer", &get_request(GROUP, b"k"), None).await;
    assert_eq!(code, 0);
    assert_eq!(n.loader.total(), 1);
    still_serves(n).await;
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_401_or_unauthenticated_and_counted() {
    let secret = Secret::new("the-right-secret-0123").unwrap();
    let nodes = start_recorded(
        1,
        Counting::default,
        |b| b.secret(secret.clone()),
        default_group,
    )
    .await;
    let n = &nodes[0];
    let target = format!("/_galaxycache/{GROUP}/k");
    for auth in [
        &[][..],
        &["Authorization: Bearer the-wrong-secret-0123"],
        &["Authorization: the-right-secret-0123"],
    ] {
        let r = http1(&n.url, "GET", &target, auth).await;
        assert_eq!(r.status, 401, "{auth:?}");
    }
    let r = http1(&n.url, "GET", &format!("/_groupcache/{GROUP}/k"), &[]).await;
    assert_eq!(r.status, 401);
    let (code, _) = grpc(
        &n.url,
        "GetFromPeer",
        &get_request(GROUP, b"k"),
        Some("Bearer nope"),
    )
    .await;
    assert_eq!(code, tonic::Code::Unauthenticated as i32);
    let auth = |p: &str| n.counter("shoal_peer_auth_failures_total", &[("protocol", p)]);
    assert_eq!(
        (auth("native"), auth("groupcache"), auth("grpc")),
        (3, 1, 1)
    );
    assert_eq!(n.loader.total(), 0, "refused before any load");
    // With the secret, the same request is served.
    let r = http1(
        &n.url,
        "GET",
        &target,
        &["Authorization: Bearer the-right-secret-0123"],
    )
    .await;
    assert_eq!(r.status, 200);
}
