//! `shoal serve` with live membership: real processes joined by gossip in front of one
//! counting HTTP origin, a shared peer secret, and the one-line errors of conflicting flags.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

mod common;
use common::origin::{
    Origin, free_port, get, metric, object, origin, read_and_check, wait_converged, wait_until,
};
use common::serve::Serve as Node;

/// Starts `shoal serve` for `me` over the origin, with `extra` flags; waits until its client,
/// admin and peer ports listen.
fn node(o: &Origin, me: &str, extra: &[&str]) -> Node {
    let origin = format!("http://{}/", o.addr);
    let mut args = vec![
        "--admin-listen",
        "127.0.0.1:0",
        "--origin",
        &origin,
        "--self",
        me,
        "--chunk-size",
        "1MiB",
    ];
    args.extend_from_slice(extra);
    common::serve::start(&args, &["admin on", "peers on"])
}

/// `n` loopback peer URLs (`http` or `https`) on free ports.
fn peer_urls(scheme: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| format!("{scheme}://127.0.0.1:{}", free_port()))
        .collect()
}

/// The UDP address a node gossips on (`shoal serve: gossip on ADDR`).
fn gossip_addr(n: &Node) -> String {
    let line = n
        .lines
        .iter()
        .find(|l| l.contains("gossip on"))
        .expect("a gossip line");
    line.rsplit(' ').next().unwrap().to_owned()
}

/// Three nodes, the first gossiping alone and the others seeded with it.
fn gossip_cluster(o: &Origin, extra: &[&str]) -> (Vec<Node>, Vec<String>) {
    gossip_cluster_of("http", o, extra)
}

fn gossip_cluster_of(scheme: &str, o: &Origin, extra: &[&str]) -> (Vec<Node>, Vec<String>) {
    let peers = peer_urls(scheme, 3);
    let mut args = vec!["--gossip", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let first = node(o, &peers[0], &args);
    let seed = gossip_addr(&first);
    let mut nodes = vec![first];
    for me in &peers[1..] {
        let mut args = args.clone();
        args.extend_from_slice(&["--seeds", &seed]);
        nodes.push(node(o, me, &args));
    }
    let admins: Vec<SocketAddr> = nodes.iter().map(|n| n.admin.unwrap()).collect();
    wait_converged(&admins, &peers, Duration::from_secs(30));
    (nodes, peers)
}

/// `clients` concurrent readers of the whole object, spread over the nodes.
fn read_everywhere(nodes: &[Node], want: &bytes::Bytes, clients: usize) {
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let readers: Vec<_> = (0..clients)
        .map(|i| {
            let (addr, want) = (addrs[i % addrs.len()], want.clone());
            std::thread::spawn(move || read_and_check(addr, &want))
        })
        .collect();
    for (i, r) in readers.into_iter().enumerate() {
        if let Err(e) = r.join().unwrap() {
            panic!("client {i}: {e}");
        }
    }
}

#[test]
fn gossip_nodes_converge_and_load_each_chunk_once() {
    let data = object(8 << 20);
    let o = origin(data.clone());
    let (nodes, peers) = gossip_cluster(&o, &[]);
    read_everywhere(&nodes, &data, 30);
    // `shoal members` against a real node: every member alive, the shares add up.
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["members", "--admin"])
        .arg(format!("http://{}", nodes[1].admin.unwrap()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("{} (self)", peers[1])), "{text}");
    let mut total = 0.0;
    for p in &peers {
        let line = text.lines().find(|l| l.contains(p.as_str())).expect(p);
        assert!(line.contains("alive"), "{line}");
        let pct = line
            .split_whitespace()
            .last()
            .unwrap()
            .trim_end_matches('%');
        total += pct.parse::<f64>().unwrap();
    }
    assert!(
        (total - 100.0).abs() < 0.5,
        "shares add up to {total}%: {text}"
    );
    assert!(text.contains("3 of 3 members in the ring"), "{text}");
    o.seen.assert_one_read_per_chunk(data.len(), 1 << 20);
    let heads = o.seen.heads.load(Ordering::SeqCst);
    assert!((1..=3).contains(&heads), "{heads} HEADs");
}

#[test]
fn members_file_nodes_converge_and_load_each_chunk_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members");
    let peers = peer_urls("http", 2);
    // The second node is added later: the first starts alone and picks it up on reload.
    std::fs::write(&file, format!("# the cluster\n{}\n", peers[0])).unwrap();
    let data = object(4 << 20);
    let o = origin(data.clone());
    let args = [
        "--members-file",
        file.to_str().unwrap(),
        "--members-refresh",
        "200ms",
    ];
    let mut nodes = vec![node(&o, &peers[0], &args)];
    std::fs::write(&file, format!("{}\n{}\n", peers[0], peers[1])).unwrap();
    nodes.push(node(&o, &peers[1], &args));
    let admins: Vec<SocketAddr> = nodes.iter().map(|n| n.admin.unwrap()).collect();
    wait_converged(&admins, &peers, Duration::from_secs(30));
    read_everywhere(&nodes, &data, 8);
    o.seen.assert_one_read_per_chunk(data.len(), 1 << 20);
}

#[test]
fn sighup_reloads_the_members_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members");
    let peers = peer_urls("http", 2);
    std::fs::write(&file, format!("{}\n", peers[0])).unwrap();
    let data = object(1 << 20);
    let o = origin(data.clone());
    // Checked only every hour: only SIGHUP can make node 0 see the change in time.
    let args = [
        "--members-file",
        file.to_str().unwrap(),
        "--members-refresh",
        "1h",
    ];
    let first = node(&o, &peers[0], &args);
    std::fs::write(&file, format!("{}\n{}\n", peers[0], peers[1])).unwrap();
    let second = node(&o, &peers[1], &args);
    let admins = [first.admin.unwrap(), second.admin.unwrap()];
    std::thread::sleep(Duration::from_millis(500));
    let urls = |admin| {
        shares(admin)
            .into_iter()
            .map(|(u, _)| u)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        urls(admins[0]),
        [peers[0].clone()],
        "no reload before SIGHUP"
    );
    first.signal("HUP");
    wait_converged(&admins, &peers, Duration::from_secs(10));
}

#[test]
fn gossip_metrics_and_a_crashed_node_marked_down() {
    let data = object(2 << 20);
    let o = origin(data.clone());
    let (mut nodes, peers) = gossip_cluster(&o, &[]);
    let admin = nodes[0].admin.unwrap();
    assert_eq!(metric(admin, "shoal_members", &["state=\"alive\""]), 3.0);
    assert!(metric(admin, "shoal_ring_version", &[]) >= 2.0);
    assert!(
        metric(
            admin,
            "shoal_membership_changes_total",
            &["source=\"gossip\""]
        ) >= 1.0
    );
    for direction in ["in", "out"] {
        let d = format!("direction=\"{direction}\"");
        assert!(
            metric(admin, "shoal_gossip_packets_total", &[&d]) > 0.0,
            "{direction}"
        );
        assert!(
            metric(admin, "shoal_gossip_bytes_total", &[&d]) > 0.0,
            "{direction}"
        );
    }
    let text = String::from_utf8(get(admin, "/metrics", "").1).unwrap();
    assert!(text.contains("shoal_gossip_local_health"), "{text}");

    // kill -9: probing finds it, it is suspected, then declared down; the others keep
    // answering every request meanwhile (its chunks from the origin, then the new owners).
    drop(nodes.pop());
    let crashed = peers[2].clone();
    let reader = {
        let (addr, data) = (nodes[1].addr, data.clone());
        std::thread::spawn(move || read_and_check(addr, &data))
    };
    wait_until(
        "the crashed node declared down",
        Duration::from_secs(20),
        || {
            shares(admin)
                .iter()
                .all(|(url, share)| *url != crashed || *share == 0.0)
                && metric(admin, "shoal_members", &["state=\"alive\""]) == 2.0
        },
    );
    assert!(metric(admin, "shoal_gossip_suspicions_total", &[]) >= 1.0);
    reader.join().unwrap().unwrap();
    for n in &nodes {
        read_and_check(n.addr, &data).unwrap();
    }
}

#[test]
fn a_starved_node_knows_it_is_slow_and_accuses_no_one() {
    let data = object(1 << 20);
    let o = origin(data.clone());
    let (nodes, peers) = gossip_cluster(&o, &[]);
    let admin = nodes[0].admin.unwrap();
    assert_eq!(metric(admin, "shoal_gossip_local_health", &[]), 0.0);
    // Starve node 0: stopped most of the time, its timers fire late (Lifeguard's sign of a
    // slow node), so it raises its local health score and stretches its own suspicion
    // timeouts rather than declaring the healthy others down.
    for _ in 0..4 {
        nodes[0].signal("STOP");
        std::thread::sleep(Duration::from_millis(700));
        nodes[0].signal("CONT");
        std::thread::sleep(Duration::from_millis(150));
    }
    let score = metric(admin, "shoal_gossip_local_health", &[]);
    assert!(score >= 1.0, "local health score {score}");
    let states: Vec<String> = {
        let v: serde_json::Value = serde_json::from_slice(&get(admin, "/members", "").1).unwrap();
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["state"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(states.len(), peers.len());
    assert!(
        states.iter().all(|s| s == "alive" || s == "suspect"),
        "node 0 declared a healthy member down: {states:?}"
    );
    let admins: Vec<SocketAddr> = nodes.iter().map(|n| n.admin.unwrap()).collect();
    wait_converged(&admins, &peers, Duration::from_secs(20));
}

#[test]
fn a_dns_name_that_does_not_resolve_does_not_delay_start_up() {
    let data = object(1 << 20);
    let o = origin(data.clone());
    let me = format!("http://127.0.0.1:{}", free_port());
    let n = node(
        &o,
        &me,
        &[
            "--dns",
            "no-such-name.invalid:7071",
            "--members-refresh",
            "200ms",
        ],
    );
    read_and_check(n.addr, &data).unwrap();
    assert_eq!(shares(n.admin.unwrap()), [(me, 1.0)], "alone, and serving");
}

/// Each member's share of the key space, as a running node reports it (`/members`).
fn shares(admin: SocketAddr) -> Vec<(String, f64)> {
    let v: serde_json::Value = serde_json::from_slice(&get(admin, "/members", "").1).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let url = m["url"].as_str().unwrap().to_owned();
            (url, m["share"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn rendezvous_placement_gives_a_newcomer_one_nth_of_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members");
    let peers = peer_urls("http", 5);
    std::fs::write(&file, peers[..4].join("\n")).unwrap();
    let data = object(2 << 20);
    let o = origin(data.clone());
    let args = [
        "--members-file",
        file.to_str().unwrap(),
        "--members-refresh",
        "200ms",
        "--placement",
        "rendezvous",
    ];
    let mut nodes: Vec<Node> = peers[..4].iter().map(|p| node(&o, p, &args)).collect();
    let admins: Vec<SocketAddr> = nodes.iter().map(|n| n.admin.unwrap()).collect();
    wait_converged(&admins, &peers[..4], Duration::from_secs(30));
    // 10,000 sampled keys per estimate: one standard deviation is about 0.004.
    for (url, share) in shares(admins[0]) {
        assert!((share - 0.25).abs() <= 0.025, "{url} owns {share} of 4");
    }

    std::fs::write(&file, peers.join("\n")).unwrap();
    nodes.push(node(&o, &peers[4], &args));
    let admins: Vec<SocketAddr> = nodes.iter().map(|n| n.admin.unwrap()).collect();
    wait_converged(&admins, &peers, Duration::from_secs(30));
    // Rendezvous moves keys only to the newcomer, so its share is the key space that
    // moved: within 10% of the ideal 1/5, on every node's ring.
    for admin in &admins {
        let newcomer = shares(*admin)
            .into_iter()
            .find(|(url, _)| *url == peers[4])
            .unwrap()
            .1;
        assert!(
            (newcomer - 0.2).abs() <= 0.02,
            "the newcomer owns {newcomer}"
        );
    }
    read_everywhere(&nodes, &data, 5);
    o.seen.assert_one_read_per_chunk(data.len(), 1 << 20);
}

#[test]
fn peer_secret_refuses_strangers_and_the_cluster_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("peer-secret");
    std::fs::write(&secret, "correct-horse-battery-staple\n").unwrap();
    let secret = secret.to_str().unwrap();
    let data = object(4 << 20);
    let o = origin(data.clone());
    let (nodes, peers) = gossip_cluster(&o, &["--peer-secret-file", secret]);

    let peer: SocketAddr = peers[0].trim_start_matches("http://").parse().unwrap();
    let (status, _) = get(peer, "/_galaxycache/chunks/x", "");
    assert_eq!(status, 401, "no secret");
    let wrong = "Authorization: Bearer correct-horse-battery-stapler\r\n";
    assert_eq!(
        get(peer, "/_galaxycache/meta/x", wrong).0,
        401,
        "wrong secret"
    );
    let right = "Authorization: Bearer correct-horse-battery-staple\r\n";
    assert_ne!(
        get(peer, "/_galaxycache/meta/x", right).0,
        401,
        "the secret"
    );

    // Peers that could not authenticate would each read the origin themselves.
    read_everywhere(&nodes, &data, 12);
    o.seen.assert_one_read_per_chunk(data.len(), 1 << 20);
}

/// A fresh CA and a certificate for `127.0.0.1` signed by it: (CA, certificate, key) in PEM.
fn peer_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Peers over mTLS; then every node's files move to a new CA, and a SIGHUP puts them in
/// force on the peer port (a bad pair is refused and the port keeps its certificate).
#[test]
fn mtls_between_peers() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (ca_pem, cert_pem, key_pem) = peer_pki();
    let (ca, cert, key) = (
        file("ca.pem", &ca_pem),
        file("node.pem", &cert_pem),
        file("node.key", &key_pem),
    );
    let old_ca = file("old-ca.pem", &ca_pem);
    let data = object(4 << 20);
    let o = origin(data.clone());
    let tls = [
        "--peer-tls-ca",
        ca.as_str(),
        "--peer-tls-cert",
        cert.as_str(),
        "--peer-tls-key",
        key.as_str(),
    ];
    let (nodes, peers) = gossip_cluster_of("https", &o, &tls);

    // Plain HTTP to the peer port gets no HTTP answer (the TLS handshake fails).
    let peer: SocketAddr = peers[0].trim_start_matches("https://").parse().unwrap();
    let mut s = std::net::TcpStream::connect(peer).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::{Read, Write};
    let _ = s.write_all(b"GET /_galaxycache/meta/x HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/1.1 2"),
        "plain HTTP was answered: {got:?}"
    );

    read_everywhere(&nodes, &data, 12);
    o.seen.assert_one_read_per_chunk(data.len(), 1 << 20);

    // Renewal with a new CA: the files change in place, then SIGHUP.
    let presents = |ca: &str| common::tls::trusted_for(peer, std::path::Path::new(ca), "127.0.0.1");
    assert!(presents(&old_ca) && !presents(&file("new-ca.pem", &peer_pki().0)));
    let (new_ca, new_cert, new_key) = peer_pki();
    let new_ca_file = file("new-ca.pem", &new_ca);
    // Half a renewal first: a key that does not match the certificate is refused whole.
    file("node.key", &peer_pki().2);
    nodes[0].signal("HUP");
    let admin = nodes[0].admin.unwrap();
    let refused = r#"result="error""#;
    wait_until("the bad pair refused", Duration::from_secs(10), || {
        metric(
            admin,
            "shoal_tls_reloads_total",
            &[r#"certificate="peer""#, refused],
        ) == 1.0
    });
    assert!(
        presents(&old_ca),
        "a bad pair replaced the certificate in force"
    );
    file("ca.pem", &new_ca);
    file("node.pem", &new_cert);
    file("node.key", &new_key);
    for n in &nodes {
        n.signal("HUP");
    }
    wait_until(
        "the peer port presents the new certificate",
        Duration::from_secs(10),
        || presents(&new_ca_file),
    );
    assert!(!presents(&old_ca));
    let ok = [r#"certificate="peer""#, r#"result="ok""#];
    wait_until("the reload counted", Duration::from_secs(10), || {
        metric(admin, "shoal_tls_reloads_total", &ok) == 1.0
    });
}

/// Runs `shoal serve ARGS` expecting it to refuse them: exit 1, one `shoal: error:` line.
fn refused(args: &[&str]) -> String {
    refused_with(&[], args)
}

fn refused_with(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .envs(env.iter().copied())
        .args([
            "serve",
            "--origin",
            "http://127.0.0.1:1/",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
        ])
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.starts_with("shoal: error: ") && err.lines().count() == 1,
        "{args:?}: {err}"
    );
    assert!(out.stdout.is_empty(), "nothing was bound or printed");
    err
}

#[test]
fn conflicting_or_incomplete_flags_are_one_error_line() {
    let me = "http://127.0.0.1:7071";
    let e = refused(&[
        "--self",
        me,
        "--gossip",
        "127.0.0.1:0",
        "--members-file",
        "/etc/shoal/members",
    ]);
    assert!(e.contains("--gossip and --members-file"), "{e}");
    let e = refused(&["--self", me, "--peers", me, "--dns", "shoal.internal:7071"]);
    assert!(e.contains("--peers and --dns"), "{e}");
    let e = refused(&[
        "--self",
        me,
        "--members-file",
        "/m",
        "--seeds",
        "127.0.0.1:7946",
    ]);
    assert!(
        e.contains("--seeds") && e.contains("used only with --gossip"),
        "{e}"
    );
    let e = refused(&["--gossip", "127.0.0.1:0"]);
    assert!(e.contains("self"), "{e}");
    let e = refused(&["--self", me, "--coord", "http://127.0.0.1:2379"]);
    assert!(e.contains("--cluster"), "{e}");
    let e = refused(&["--self", me, "--dns", "shoal.internal"]);
    assert!(e.contains("NAME:PORT"), "{e}");
    let e = refused(&[
        "--self",
        me,
        "--peers",
        me,
        "--peer-secret-file",
        "/nonexistent/s",
    ]);
    assert!(
        e.contains("--peer-secret-file") && e.contains("/nonexistent/s"),
        "{e}"
    );
    let e = refused(&["--self", me, "--peers", me, "--peer-secret", "short"]);
    assert!(
        e.contains("at least 16 characters") && !e.contains("short"),
        "{e}"
    );
    let e = refused_with(
        &[("SHOAL_PEER_SECRET", "too-short")],
        &["--self", me, "--peers", me],
    );
    assert!(
        e.contains("at least 16 characters") && !e.contains("too-short"),
        "{e}"
    );
    let e = refused(&["--peer-secret", "0123456789abcdef0"]);
    assert!(e.contains("used only in a cluster"), "{e}");
    let e = refused(&["--self", me, "--peers", me, "--peer-tls-cert", "/c.pem"]);
    assert!(e.contains("all three together"), "{e}");
}

#[cfg(not(feature = "etcd"))]
#[test]
fn coord_without_the_etcd_feature_says_how_to_build_it() {
    let e = refused(&[
        "--self",
        "http://127.0.0.1:7071",
        "--coord",
        "http://127.0.0.1:2379",
        "--cluster",
        "c",
    ]);
    assert!(e.contains("--features etcd"), "{e}");
}
