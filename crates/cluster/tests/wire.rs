//! What crosses the wire, for every protocol: awkward keys, expiry, unknown groups, peeks,
//! oversized values, and the shared secret.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Counting, GROUP, start, value_of};
use shoal_cache::{Group, LoadError, Loaded, loader_fn};
use shoal_cluster::{Cluster, PeerError, Protocol, Secret};
use tokio::time::Instant;

const PROTOCOLS: [Protocol; 3] = [Protocol::Native, Protocol::Grpc, Protocol::Groupcache];

const AWKWARD: [&[u8]; 9] = [
    b"",
    b"plain",
    b"with space",
    b"a+b",
    b"/leading/and//double",
    b"100%",
    b"..",
    b"\xff\x00\xfe not utf-8",
    b"?query#frag",
];

#[tokio::test]
async fn awkward_keys_survive_every_protocol() {
    for protocol in PROTOCOLS {
        let nodes = start(2, Counting::default, |b| b.protocol(protocol)).await;
        let client = nodes[0].cluster.client(&nodes[1].url).unwrap();
        for key in AWKWARD {
            let got = client.fetch(GROUP, key).await;
            assert_eq!(got.unwrap().value, value_of(key), "{protocol}: {key:?}");
        }
        assert_eq!(nodes[1].loader.total(), AWKWARD.len(), "{protocol}");
    }
}

#[tokio::test]
async fn unknown_groups_are_named() {
    for protocol in PROTOCOLS {
        let nodes = start(2, Counting::default, |b| b.protocol(protocol)).await;
        let client = nodes[0].cluster.client(&nodes[1].url).unwrap();
        let e = client.fetch("no/such group", b"k").await.unwrap_err();
        assert!(
            matches!(e, PeerError::UnknownGroup { ref group, .. } if group == "no/such group"),
            "{protocol}: {e:?}"
        );
        assert!(!e.is_retryable());
    }
}

#[tokio::test]
async fn expiry_travels_with_native_and_grpc() {
    for protocol in [Protocol::Native, Protocol::Grpc] {
        let (ls, urls) = common::listeners(2, "http").await;
        let members: Vec<&str> = urls.iter().map(String::as_str).collect();
        let mut servers = Vec::new();
        let mut clusters = Vec::new();
        for (l, url) in ls.into_iter().zip(&urls) {
            let cluster = Cluster::builder(url.as_str())
                .protocol(protocol)
                .build(&members)
                .unwrap();
            cluster
                .group(
                    Group::builder(GROUP, 1 << 20),
                    loader_fn(|key: Bytes| async move {
                        Ok(Loaded::expiring(
                            key,
                            Instant::now() + Duration::from_secs(30),
                        ))
                    }),
                )
                .unwrap();
            servers.push(cluster.serve_on(l).unwrap());
            clusters.push(cluster);
        }
        let client = clusters[0].client(&urls[1]).unwrap();
        let got = client.fetch(GROUP, b"k").await.unwrap();
        let left = got
            .expires
            .expect("an expiry")
            .saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(28) && left <= Duration::from_secs(30),
            "{protocol}: {left:?}"
        );
        // A peek answers from memory only: the key is there now, another is not.
        let peeked = client.peek(GROUP, b"k").await.unwrap();
        assert_eq!(peeked.value, Bytes::from_static(b"k"));
        assert!(peeked.expires.is_some());
        assert!(
            client
                .peek(GROUP, b"never-loaded")
                .await
                .unwrap_err()
                .is_not_found(),
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn groupcache_cannot_peek() {
    let nodes = start(2, Counting::default, |b| b.protocol(Protocol::Groupcache)).await;
    let client = nodes[0].cluster.client(&nodes[1].url).unwrap();
    let e = client.peek(GROUP, b"k").await.unwrap_err();
    assert!(!e.is_not_found() && !e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn oversized_values_are_refused_not_buffered() {
    for protocol in PROTOCOLS {
        let (ls, urls) = common::listeners(2, "http").await;
        let members: Vec<&str> = urls.iter().map(String::as_str).collect();
        let mut keep = Vec::new();
        let mut clusters = Vec::new();
        for (l, url) in ls.into_iter().zip(&urls) {
            let cluster = Cluster::builder(url.as_str())
                .protocol(protocol)
                .max_value_bytes(64 << 10)
                .build(&members)
                .unwrap();
            cluster
                .group(
                    Group::builder(GROUP, 16 << 20),
                    loader_fn(|_key: Bytes| async { Ok(Loaded::new(vec![7u8; 1 << 20])) }),
                )
                .unwrap();
            keep.push(cluster.serve_on(l).unwrap());
            clusters.push(cluster);
        }
        let e = clusters[0]
            .client(&urls[1])
            .unwrap()
            .fetch(GROUP, b"big")
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::BadReply { .. }), "{protocol}: {e:?}");
    }
}

#[tokio::test]
async fn the_shared_secret_is_required() {
    for protocol in PROTOCOLS {
        let good = Secret::new("correct-horse-battery-staple").unwrap();
        let bad = Secret::new("incorrect-horse-battery-staple").unwrap();
        let nodes = start(3, Counting::default, |b| {
            b.protocol(protocol).secret(good.clone())
        })
        .await;
        // Members with the secret talk.
        let c = nodes[0].cluster.client(&nodes[1].url).unwrap();
        assert_eq!(
            c.fetch(GROUP, b"k").await.unwrap().value,
            value_of(b"k"),
            "{protocol}"
        );
        // A client with the wrong secret, or none, is refused before any load.
        for secret in [Some(bad.clone()), None] {
            let mut b = Cluster::builder("http://127.0.0.1:1").protocol(protocol);
            if let Some(s) = secret {
                b = b.secret(s);
            }
            let outsider = b.build(&["http://127.0.0.1:1", &nodes[1].url]).unwrap();
            let e = outsider
                .client(&nodes[1].url)
                .unwrap()
                .fetch(GROUP, b"other")
                .await
                .unwrap_err();
            assert!(
                matches!(e, PeerError::Unauthorized { .. }),
                "{protocol}: {e:?}"
            );
            assert!(!LoadError::from(e).is_retryable());
        }
        assert_eq!(nodes[1].loader.of(b"other"), 0, "{protocol}");
    }
}

#[tokio::test]
async fn a_go_mux_404_is_an_error_not_a_missing_key() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // What a Go node with another base path answers: its mux's 404 page.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "404 page not found\n";
            let reply = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    let me = "http://127.0.0.1:1";
    let c = Cluster::builder(me)
        .protocol(Protocol::Groupcache)
        .build(&[me, &url])
        .unwrap();
    let e = c
        .client(&url)
        .unwrap()
        .fetch(GROUP, b"k")
        .await
        .unwrap_err();
    assert!(matches!(e, PeerError::Status { .. }), "{e:?}");
}
