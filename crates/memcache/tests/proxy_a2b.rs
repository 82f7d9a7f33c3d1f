//! ascii clients, binary downstream (`downstream_protocol=binary`, moxi's a2b), against real
//! memcached: the same random stream of classic commands gets byte for byte the replies of a
//! plain memcached and of an ascii-downstream proxy; multi-gets, gats, stats and flush_all
//! go over binary.
#![allow(clippy::unwrap_used)]

mod stream;
mod support;

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use shoal_memcache::Protocol;
use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_memcache::route::Distribution;
use stream::{normalise, random_command};
use support::Memcached;
use support::shoal::{Client, Shoal};

fn config(servers: &[Memcached], downstream: Protocol) -> ProxyConfig {
    let mut cfg = ProxyConfig::new(
        "a2b",
        Servers::List {
            members: servers.iter().map(Memcached::addr).collect(),
            distribution: Distribution::Ketama,
        },
    );
    cfg.pool.timeout = Duration::from_millis(2000);
    cfg.downstream = downstream;
    cfg
}

/// A memcached's counter, asked directly.
fn stat(m: &Memcached, name: &str) -> u64 {
    let stats = String::from_utf8(Client::connect(m.port).call(b"stats\r\n")).unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn random_classic_stream_matches_plain_memcached_and_ascii_downstream() {
    let Some(a2b_servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let Some(a2a_servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let Some(plain) = Memcached::start() else {
        return;
    };
    let a2b = Shoal::start(config(&a2b_servers, Protocol::Binary));
    let a2a = Shoal::start(config(&a2a_servers, Protocol::Ascii));
    let (mut via_b, mut via_a) = (a2b.client(), a2a.client());
    let mut direct = Client::connect(plain.port);
    let mut rng = StdRng::seed_from_u64(62);
    for round in 0..60 {
        let mut req = Vec::new();
        for _ in 0..15 {
            let mut one = Vec::new();
            random_command(&mut rng, &mut one, false);
            if one.starts_with(b"get xxxxx") {
                req = one;
                break;
            }
            req.extend_from_slice(&one);
        }
        let p = normalise(&direct.call_v(&req));
        let b = normalise(&via_b.call_v(&req));
        let a = normalise(&via_a.call_v(&req));
        let show = |x: &[u8]| String::from_utf8_lossy(&x[..x.len().min(3000)]).into_owned();
        assert!(
            p == b && a == b,
            "round {round}: replies differ\nrequest: {:?}\nplain: {:?}\na2b:   {:?}\na2a:   {:?}",
            String::from_utf8_lossy(&req[..req.len().min(2000)]),
            show(&p),
            show(&b),
            show(&a)
        );
    }
    // The gets reached the servers (that they went as binary, the mock servers of
    // `proxy_vbucket.rs` show: they speak nothing else).
    let gets: u64 = a2b_servers.iter().map(|m| stat(m, "cmd_get")).sum();
    assert!(gets > 0);
    let stats = String::from_utf8(via_b.call(b"stats proxy\r\n")).unwrap();
    assert!(
        stats.contains("STAT a2b:behavior:downstream_protocol binary\r\n"),
        "{stats}"
    );
}

#[test]
fn classic_commands_over_binary_read_like_ascii() {
    let Some(servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let shoal = Shoal::start(config(&servers, Protocol::Binary));
    let mut c = shoal.client();
    assert_eq!(c.call(b"set a 5 0 2\r\nhi\r\n"), b"STORED\r\n");
    assert_eq!(c.call(b"add a 0 0 1\r\nx\r\n"), b"NOT_STORED\r\n");
    assert_eq!(c.call(b"replace zz 0 0 1\r\nx\r\n"), b"NOT_STORED\r\n");
    assert_eq!(c.call(b"append zz 0 0 1\r\nx\r\n"), b"NOT_STORED\r\n");
    assert_eq!(c.call(b"prepend a 0 0 1\r\n<\r\n"), b"STORED\r\n");
    assert_eq!(c.call(b"cas zz 0 0 1 7\r\nx\r\n"), b"NOT_FOUND\r\n");
    assert_eq!(c.call(b"cas a 0 0 1 0\r\nx\r\n"), b"EXISTS\r\n");
    let gets = String::from_utf8(c.call(b"gets a\r\n")).unwrap();
    let cas: u64 = gets.split_whitespace().nth(4).unwrap().parse().unwrap();
    let cas_set = format!("cas a 9 0 1 {cas}\r\nz\r\n");
    assert_eq!(c.call(cas_set.as_bytes()), b"STORED\r\n");
    assert_eq!(c.call(b"get a\r\n"), b"VALUE a 9 1\r\nz\r\nEND\r\n");
    assert_eq!(
        c.call(b"incr a 1\r\n"),
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    assert_eq!(c.call(b"incr nothere 1\r\n"), b"NOT_FOUND\r\n");
    assert_eq!(
        c.call(b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\n"),
        b"STORED\r\n15\r\n0\r\n"
    );
    assert_eq!(
        c.call(b"touch n 100\r\ntouch zz 1\r\n"),
        b"TOUCHED\r\nNOT_FOUND\r\n"
    );
    assert_eq!(
        c.call(b"gat 0 n a zz n\r\n"),
        // memcached decrements in place: "15" became "0 ", padded to its old length.
        &b"VALUE n 0 2\r\n0 \r\nVALUE a 9 1\r\nz\r\nVALUE n 0 2\r\n0 \r\nEND\r\n"[..]
    );
    assert_eq!(
        c.call(b"set gone 0 -1 1\r\nx\r\nget gone\r\n"),
        b"STORED\r\nEND\r\n"
    );
    assert_eq!(
        c.call(b"delete n\r\ndelete n\r\ndelete n noreply\r\n"),
        b"DELETED\r\nNOT_FOUND\r\n"
    );
    // Broadcast over binary: stats summed, reset, flush.
    let stats = String::from_utf8(c.call(b"stats\r\n")).unwrap();
    assert!(stats.contains("STAT curr_items 1\r\n"), "{stats}");
    assert!(stats.ends_with("END\r\n"), "{stats}");
    let settings = String::from_utf8(c.call(b"stats settings\r\n")).unwrap();
    assert!(settings.contains("STAT maxconns "), "{settings}");
    assert_eq!(c.call(b"stats reset\r\n"), b"RESET\r\n");
    assert_eq!(c.call(b"stats nonsense\r\n"), b"ERROR\r\n");
    assert_eq!(
        c.call(b"flush_all\r\nget a\r\nflush_all noreply\r\n"),
        b"OK\r\nEND\r\n"
    );
    assert_eq!(
        c.call(b"version\r\nverbosity 1\r\n"),
        b"VERSION 1.6.18-shoal\r\nOK\r\n"
    );
    // Both flushes reached every server.
    for m in &servers {
        let direct = String::from_utf8(Client::connect(m.port).call(b"stats\r\n")).unwrap();
        assert!(direct.contains("STAT cmd_flush 2\r\n"), "{direct}");
    }
    // A get over several servers counts its keys and its repeats, as on the ascii path
    // (30 keys cannot all land on one of three servers).
    let counter = |c: &mut Client, name: &str| -> u64 {
        let stats = String::from_utf8(c.call(b"stats proxy\r\n")).unwrap();
        let line = format!("a2b:pstd_stats:{name} ");
        stats
            .lines()
            .find_map(|l| l.strip_prefix("STAT ")?.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
            .parse()
            .unwrap()
    };
    let (keys0, dedupe0) = (
        counter(&mut c, "tot_multiget_keys"),
        counter(&mut c, "tot_multiget_keys_dedupe"),
    );
    let keys: Vec<String> = (0..30).map(|i| format!("mk{i}")).collect();
    assert_eq!(
        c.call(format!("get {} mk0\r\n", keys.join(" ")).as_bytes()),
        b"END\r\n"
    );
    assert_eq!(counter(&mut c, "tot_multiget_keys") - keys0, 31);
    assert_eq!(counter(&mut c, "tot_multiget_keys_dedupe") - dedupe0, 1);
}

#[test]
fn a2b_dead_server_errors_and_front_cache() {
    let Some(live) = Memcached::start() else {
        return;
    };
    let dead = format!("127.0.0.1:{}", support::free_port());
    let mut cfg = ProxyConfig::new(
        "a2b",
        Servers::List {
            members: vec![live.addr(), dead],
            distribution: Distribution::Ketama,
        },
    );
    cfg.downstream = Protocol::Binary;
    cfg.pool.connect_timeout = Duration::from_millis(200);
    cfg.front_cache = shoal_memcache::proxy::FrontCacheOptions {
        max: 100,
        lifespan: Duration::from_secs(60),
        spec: shoal_memcache::proxy::FrontCacheOptions::prefixes("fc:"),
        unspec: Vec::new(),
    };
    let shoal = Shoal::start(cfg);
    let mut c = shoal.client();
    // Which keys land on the dead server: the proxy's answers tell.
    let mut good = None;
    let mut bad = None;
    for i in 0..50 {
        let k = format!("fc:{i}");
        let r = c.call(format!("set {k} 0 0 1\r\nv\r\n").as_bytes());
        if r == b"STORED\r\n" {
            good.get_or_insert(k);
        } else {
            // Refused connects, then (after 5) its retry interval.
            let text = String::from_utf8_lossy(&r);
            assert!(
                text == "SERVER_ERROR proxy downstream connect failed 127.0.0.1\r\n"
                    || text == "SERVER_ERROR proxy downstream unavailable 127.0.0.1\r\n",
                "{text}"
            );
            bad.get_or_insert(k);
        }
    }
    let (good, bad) = (good.unwrap(), bad.unwrap());
    // A get spanning the dead server fails as a whole; noreply to it stays silent.
    let r = c.call(format!("get {good} {bad}\r\n").as_bytes());
    assert!(r.starts_with(b"SERVER_ERROR proxy downstream "), "{r:?}");
    assert_eq!(c.call(format!("delete {bad} noreply\r\n").as_bytes()), b"");
    // The front cache fills from binary replies: the second get does not reach memcached.
    let want = format!("VALUE {good} 0 1\r\nv\r\nEND\r\n");
    assert_eq!(
        c.call(format!("get {good}\r\n").as_bytes()),
        want.as_bytes()
    );
    let hits = stat(&live, "get_hits");
    assert_eq!(
        c.call(format!("get {good}\r\n").as_bytes()),
        want.as_bytes()
    );
    assert_eq!(stat(&live, "get_hits"), hits);
}
