//! `shoal memcache` processes in moxi's test topologies against real memcached: a chain of
//! five proxies, one proxy fanning out to four servers, several proxies fanning in on the
//! same servers; and the `[memcache]` TOML section with the `/metrics` names on the admin port.
#![allow(clippy::unwrap_used)]

#[path = "../../memcache/tests/support/mod.rs"]
mod support;

mod common;
use common::memcache::{Proc, http_get, start};

use std::process::Command;

use support::bin;
use support::shoal::Client;
use support::{Memcached, free_port};

/// A proxy on a free port in front of `servers`.
fn proxy(servers: &[String], extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let list = servers.join(",");
    let mut args = vec!["--listen", &listen, "--servers", &list];
    args.extend_from_slice(extra);
    (start(&args, &[port]), port)
}

fn value(key: &str, v: &str) -> Vec<u8> {
    format!("VALUE {key} 0 {}\r\n{v}\r\nEND\r\n", v.len()).into_bytes()
}

/// How many of the servers on `ports` hold `key`, asked directly.
fn holders(ports: &[u16], key: &str) -> usize {
    ports
        .iter()
        .filter(|p| {
            Client::connect(**p)
                .call(format!("get {key}\r\n").as_bytes())
                .starts_with(b"VALUE ")
        })
        .count()
}

#[test]
fn chain_of_five_proxies() {
    chain(&[]);
}

/// The same chain with every hop sending binary downstream: ascii at the head, binary
/// from there on (a2b, then b2b four times).
#[test]
fn chain_of_five_a2b_proxies() {
    chain(&["--downstream-protocol", "binary"]);
}

fn chain(extra: &[&str]) {
    let Some(m) = Memcached::start() else {
        return;
    };
    // Built from the tail: each proxy's only server is the next proxy.
    let mut procs = Vec::new();
    let mut next = m.addr();
    let mut ports = Vec::new();
    let mut args = vec!["--timeout", "2s"];
    args.extend_from_slice(extra);
    for _ in 0..5 {
        let (p, port) = proxy(&[next.clone()], &args);
        procs.push(p);
        ports.push(port);
        next = format!("127.0.0.1:{port}");
    }
    let (head, tail) = (ports[4], ports[0]);
    let mut h = Client::connect(head);
    let mut t = Client::connect(tail);
    let mut direct = Client::connect(m.port);
    for i in 0..20 {
        let (k, v) = (format!("chain{i}"), format!("v{i}"));
        let set = format!("set {k} 0 0 {}\r\n{v}\r\n", v.len());
        assert_eq!(h.call(set.as_bytes()), b"STORED\r\n");
        assert_eq!(t.call(format!("get {k}\r\n").as_bytes()), value(&k, &v));
        assert_eq!(
            direct.call(format!("get {k}\r\n").as_bytes()),
            value(&k, &v)
        );
    }
    // A multi-get, incr, delete and a noreply set all make it through five hops.
    let got = h.call(b"get chain3 nothere chain1\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "VALUE chain3 0 2\r\nv3\r\nVALUE chain1 0 2\r\nv1\r\nEND\r\n"
    );
    assert_eq!(
        h.call(b"set n 0 0 1 noreply\r\n5\r\nincr n 10\r\n"),
        b"15\r\n"
    );
    assert_eq!(direct.call(b"get n\r\n"), value("n", "15"));
    assert_eq!(h.call(b"delete n\r\n"), b"DELETED\r\n");
    assert_eq!(t.call(b"get n\r\n"), b"END\r\n");
    // A binary client's quiet pipeline at the head: SETQ, GETKQ hit and miss, NOOP.
    let mut b = Client::connect(head).s;
    let mut req = bin::req(0x11, 1, 0, &bin::store_extras(4, 0), b"bk", b"binval");
    req.extend(bin::req(0x0d, 2, 0, &[], b"bk", b""));
    req.extend(bin::req(0x0d, 3, 0, &[], b"nothere", b""));
    req.extend(bin::req(0x0a, 4, 0, &[], b"", b""));
    let got = bin::call(&mut b, &req, 0x0a, 4);
    let seen: Vec<(u8, u32, &[u8])> = got
        .iter()
        .map(|f| (f.opcode, f.opaque, &f.value[..]))
        .collect();
    assert_eq!(seen, [(0x0d, 2, &b"binval"[..]), (0x0a, 4, &b""[..])]);
    assert_eq!(
        direct.call(b"get bk\r\n"),
        b"VALUE bk 4 6\r\nbinval\r\nEND\r\n"
    );
}

#[test]
fn fanout_one_proxy_four_servers() {
    let Some(servers) = (0..4)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let addrs: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let (_p, port) = proxy(&addrs, &[]);
    let mut c = Client::connect(port);
    let members: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let ring = shoal_ring::build(shoal_ring::Algorithm::Ketama, &members).unwrap();
    let mut per_server = [0usize; 4];
    let keys: Vec<String> = (0..200).map(|i| format!("fan:{i}")).collect();
    for k in &keys {
        assert_eq!(
            c.call(format!("set {k} 0 0 1\r\nx\r\n").as_bytes()),
            b"STORED\r\n"
        );
    }
    for k in &keys {
        let owner = shoal_ring::Ring::owner_index(&ring, k.as_bytes()).unwrap();
        per_server[owner] += 1;
        // Exactly on its ketama owner, and nowhere else.
        let found: Vec<usize> = (0..4)
            .filter(|i| {
                Client::connect(servers[*i].port)
                    .call(format!("get {k}\r\n").as_bytes())
                    .starts_with(b"VALUE ")
            })
            .collect();
        assert_eq!(found, [owner], "{k}");
    }
    assert!(per_server.iter().all(|n| *n > 10), "{per_server:?}");
    // Read back through the proxy in one multi-get spanning all four.
    let all = format!("get {}\r\n", keys.join(" "));
    let got = c.call(all.as_bytes());
    let want: Vec<u8> = keys
        .iter()
        .flat_map(|k| format!("VALUE {k} 0 1\r\nx\r\n").into_bytes())
        .chain(b"END\r\n".iter().copied())
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

#[test]
fn fanout_in_proxies_agree_on_placement() {
    let Some(servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let addrs: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let ports: Vec<u16> = servers.iter().map(|m| m.port).collect();
    let proxies: Vec<(Proc, u16)> = (0..3).map(|_| proxy(&addrs, &[])).collect();
    let mut clients: Vec<Client> = proxies.iter().map(|(_, p)| Client::connect(*p)).collect();
    for i in 0..60 {
        let (k, v) = (format!("in:{i}"), format!("{i}"));
        let set = format!("set {k} 0 0 {}\r\n{v}\r\n", v.len());
        assert_eq!(clients[i % 3].call(set.as_bytes()), b"STORED\r\n");
        let get = format!("get {k}\r\n");
        assert_eq!(clients[(i + 1) % 3].call(get.as_bytes()), value(&k, &v));
        assert_eq!(clients[(i + 2) % 3].call(get.as_bytes()), value(&k, &v));
        assert_eq!(holders(&ports, &k), 1, "{k} stored once");
    }
    // A delete through one is seen by the others.
    assert_eq!(clients[0].call(b"delete in:5\r\n"), b"DELETED\r\n");
    assert_eq!(clients[2].call(b"get in:5\r\n"), b"END\r\n");
}

#[test]
fn toml_config_section_and_metrics_names() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shoal.toml");
    std::fs::write(
        &file,
        format!(
            "[memcache]\nlisten = \"127.0.0.1:{port}\"\nservers = [\"{}\", \"{}:2\"]\n\
             distribution = \"modula\"\ntimeout = \"700ms\"\nconnect_timeout = \"150ms\"\n\
             admin_listen = \"127.0.0.1:{admin}\"\nbehaviors = \"downstream_conn_max=3\"\n",
            a.addr(),
            b.addr()
        ),
    )
    .unwrap();
    let _p = start(&["--config", file.to_str().unwrap()], &[port, admin]);
    let mut c = Client::connect(port);
    let stats = String::from_utf8(c.call(b"stats proxy\r\n")).unwrap();
    for want in [
        format!("STAT {port}:info:distribution modula\r\n"),
        format!("STAT {port}:behavior:downstream_timeout 700\r\n"),
        format!("STAT {port}:behavior:connect_timeout 150\r\n"),
        format!("STAT {port}:behavior:downstream_conn_max 3\r\n"),
    ] {
        assert!(stats.contains(&want), "{want:?} not in {stats}");
    }
    // modula over a and b (weight 2): both get keys, and each key is on exactly one.
    for i in 0..20 {
        let k = format!("t{i}");
        assert_eq!(
            c.call(format!("set {k} 0 0 1\r\nv\r\n").as_bytes()),
            b"STORED\r\n"
        );
        assert_eq!(holders(&[a.port, b.port], &k), 1);
    }
    assert_eq!(
        c.call(b"get t1 t2\r\n")
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        5
    );
    let _ = c.call(b"get nothere\r\n");
    let metrics = http_get(admin, "/metrics");
    for name in [
        format!("shoal_memcache_proxy_counter{{proxy=\"{port}\",counter=\"cmd_set\"}} 20"),
        format!("shoal_memcache_proxy_counter{{proxy=\"{port}\",counter=\"cmd_get\"}} 2"),
        format!(
            "shoal_memcache_server_total{{proxy=\"{port}\",server=\"{}\",what=\"requests\"}}",
            a.addr()
        ),
        format!(
            "shoal_memcache_server_total{{proxy=\"{port}\",server=\"{}\",what=\"timeouts\"}} 0",
            b.addr()
        ),
        format!(
            "shoal_memcache_server_down{{proxy=\"{port}\",server=\"{}\"}} 0",
            a.addr()
        ),
    ] {
        assert!(metrics.contains(&name), "{name} not in\n{metrics}");
    }
}

#[test]
fn a2b_with_a_vbucket_map_places_keys_by_the_map() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("map.json");
    std::fs::write(
        &map,
        format!(
            r#"{{"vBucketServerMap":{{"numReplicas":0,"serverList":["{}","{}"],"vBucketMap":[[0],[1],[1],[0]]}}}}"#,
            a.addr(),
            b.addr()
        ),
    )
    .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _p = start(
        &[
            "--listen",
            &listen,
            "--distribution",
            "vbucket",
            "--vbucket-map",
            map.to_str().unwrap(),
            "--downstream-protocol",
            "binary",
        ],
        &[port],
    );
    let mut c = Client::connect(port);
    let stats = String::from_utf8(c.call(b"stats proxy\r\n")).unwrap();
    assert!(
        stats.contains(&format!(
            "STAT {port}:behavior:downstream_protocol binary\r\n"
        )),
        "{stats}"
    );
    let masters = [a.port, b.port, b.port, a.port];
    for i in 0..40 {
        let k = format!("vb{i}");
        assert_eq!(
            c.call(format!("set {k} 3 0 1\r\nv\r\n").as_bytes()),
            b"STORED\r\n"
        );
        let owner = masters[usize::from(shoal_ring::vbucket_of(k.as_bytes(), 4))];
        let direct = Client::connect(owner).call(format!("get {k}\r\n").as_bytes());
        assert_eq!(direct, format!("VALUE {k} 3 1\r\nv\r\nEND\r\n").as_bytes());
    }
    assert_eq!(
        c.call(b"get vb1 vb2 nothere\r\n"),
        b"VALUE vb1 3 1\r\nv\r\nVALUE vb2 3 1\r\nv\r\nEND\r\n"
    );
}

#[test]
fn bad_downstream_protocol_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "memcache",
            "--servers",
            "127.0.0.1:1",
            "--downstream-protocol",
            "morse",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--downstream-protocol") && err.contains("morse"),
        "{err}"
    );
}
