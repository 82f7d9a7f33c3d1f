//! TLS between peers: mTLS over every protocol, and who is refused.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::sync::Arc;

use common::recorded::{default_group, start_recorded_with};
use common::{Counting, GROUP, pki, start_with, value_of};
use shoal_cluster::{Cluster, PeerError, Protocol, TlsConfig};

const AUTH_FAILURES: &str = "shoal_peer_auth_failures_total";
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls(p: &common::Pki) -> TlsConfig {
    TlsConfig::from_pem(p.ca.clone(), p.cert.clone(), p.key.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_talk_over_mutual_tls() {
    let p = pki();
    for protocol in [Protocol::Native, Protocol::Grpc, Protocol::Groupcache] {
        let nodes = start_with(3, "https", Counting::default, |b| {
            b.protocol(protocol).tls(tls(&p))
        })
        .await;
        for node in &nodes {
            for k in common::keys("t", 10) {
                assert_eq!(
                    node.group.get(&k).await.unwrap(),
                    value_of(&k),
                    "{protocol}"
                );
            }
        }
        assert_eq!(
            nodes.iter().map(|n| n.loader.total()).sum::<usize>(),
            10,
            "{protocol}"
        );
        assert_eq!(nodes[0].group.stats().peer_errors, 0, "{protocol}");
    }
}

#[tokio::test]
async fn strangers_are_refused() {
    let p = pki();
    let nodes = start_with(2, "https", Counting::default, |b| b.tls(tls(&p))).await;
    let target = nodes[1].url.as_str();

    // A client whose certificate comes from another CA.
    let other = pki();
    let stranger = Cluster::builder("https://127.0.0.1:1")
        .tls(tls(&other))
        .build(&["https://127.0.0.1:1", target])
        .unwrap();
    let e = stranger
        .client(target)
        .unwrap()
        .fetch(GROUP, b"k")
        .await
        .unwrap_err();
    assert!(matches!(e, PeerError::Connect { .. }), "{e:?}");

    // A client without TLS configured cannot reach an https member.
    let plain = Cluster::builder("http://127.0.0.1:1")
        .build(&["http://127.0.0.1:1", target])
        .unwrap();
    let e = plain
        .client(target)
        .unwrap()
        .fetch(GROUP, b"k")
        .await
        .unwrap_err();
    assert!(matches!(e, PeerError::Connect { .. }), "{e:?}");

    // A client that trusts the CA but shows no certificate gets no answer.
    let answer = certless_request(&p, target.trim_start_matches("https://")).await;
    assert!(
        !matches!(&answer, Ok(b) if b.starts_with(b"HTTP/1.1 200")),
        "a client without a certificate was served"
    );
    assert_eq!(nodes[1].loader.total(), 0);
}

/// Sends a peer request over TLS that trusts `p`'s CA but shows no client certificate.
async fn certless_request(p: &common::Pki, addr: &str) -> std::io::Result<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in
        <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(
            p.ca.as_bytes(),
        )
    {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let answer = async {
        let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        s.write_all(b"GET /_galaxycache/things/k HTTP/1.1\r\nhost: x\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    common::within(10, "certless client", answer).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_are_counted() {
    let p = pki();
    let nodes = start_recorded_with(
        2,
        "https",
        Counting::default,
        |b| b.tls(tls(&p)),
        default_group,
    )
    .await;
    let target = nodes[1].url.clone();
    let addr = target.trim_start_matches("https://");
    let refused = || nodes[1].counter(AUTH_FAILURES, &[("protocol", "tls")]);

    // Members complete their handshakes: nothing is counted.
    for k in common::keys("ok", 10) {
        assert_eq!(nodes[0].group.get(&k).await.unwrap(), value_of(&k));
    }
    assert_eq!(refused(), 0, "a member's handshake was counted as refused");

    // 1. Plain HTTP on the TLS port.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /_galaxycache/things/k HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = common::within(10, "plain client", tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"), "plain HTTP was served");

    // 2. A certificate from another CA.
    let other = pki();
    let stranger = Cluster::builder("https://127.0.0.1:1")
        .tls(tls(&other))
        .build(&["https://127.0.0.1:1", &target])
        .unwrap();
    let fetched = stranger.client(&target).unwrap().fetch(GROUP, b"k").await;
    assert!(fetched.is_err(), "a stranger was served");

    // 3. No client certificate at all.
    let answer = certless_request(&p, addr).await;
    assert!(!matches!(&answer, Ok(b) if b.starts_with(b"HTTP/1.1 200")));

    // The server counts each refusal once its side of the handshake gives up.
    let counted = async {
        while refused() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    common::within(10, "three refused handshakes counted", counted).await;
    assert_eq!(refused(), 3);
    // Refusals are not peer requests: none was served.
    assert_eq!(
        nodes[1].counter(AUTH_FAILURES, &[("protocol", "native")]),
        0
    );
}

#[tokio::test]
async fn bad_tls_material_is_a_config_error() {
    let e = Cluster::builder("https://127.0.0.1:1")
        .tls(TlsConfig::from_pem("not pem", "not pem", "not pem"))
        .build(&["https://127.0.0.1:1"])
        .unwrap_err();
    assert!(e.to_string().starts_with("config: tls"), "{e}");
    let e = Cluster::builder("https://127.0.0.1:1")
        .build(&["https://127.0.0.1:1"])
        .unwrap_err();
    assert!(e.to_string().contains("TLS certificates"), "{e}");
}

/// `Cluster::reload_tls` puts new certificates in force for the next handshake, as a server
/// and as a client: a member moved to a new CA is refused by one still on the old, and
/// accepted once both have moved, over each protocol. Material that does not build is an
/// error and leaves the certificates in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_certificates_take_the_next_handshake() {
    for protocol in [Protocol::Native, Protocol::Grpc, Protocol::Groupcache] {
        let (old, new) = (pki(), pki());
        let nodes = start_with(2, "https", Counting::default, |b| {
            b.protocol(protocol).tls(tls(&old))
        })
        .await;
        let ask = |from: usize, key: &'static [u8]| {
            let client = nodes[from].cluster.client(&nodes[1 - from].url).unwrap();
            async move { client.fetch(GROUP, key).await }
        };
        // No connection was made yet: each fetch below starts with a handshake.
        nodes[1].cluster.reload_tls(&tls(&new)).unwrap();
        let e = ask(0, b"a").await.unwrap_err();
        assert!(matches!(e, PeerError::Connect { .. }), "{protocol}: {e}");

        let garbage = TlsConfig::from_pem("not a CA", new.cert.clone(), new.key.clone());
        let e = nodes[0].cluster.reload_tls(&garbage).unwrap_err();
        assert!(e.to_string().contains("tls ca"), "{protocol}: {e}");

        nodes[0].cluster.reload_tls(&tls(&new)).unwrap();
        assert_eq!(
            ask(0, b"b").await.unwrap().value,
            value_of(b"b"),
            "{protocol}"
        );
        assert_eq!(
            ask(1, b"c").await.unwrap().value,
            value_of(b"c"),
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn a_cluster_without_tls_cannot_reload_to_tls() {
    let nodes = common::start(1, Counting::default, |b| b).await;
    let e = nodes[0].cluster.reload_tls(&tls(&pki())).unwrap_err();
    assert!(e.to_string().contains("without TLS"), "{e}");
}
