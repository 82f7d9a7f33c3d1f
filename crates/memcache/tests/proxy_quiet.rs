//! Quiet commands through the proxy against real memcached: binary pipelines of GETQ, GETKQ,
//! SETQ, DELETEQ... ended by a NOOP, compared byte for byte with a direct memcached
//! connection (CAS zeroed); meta commands with `q` and `mn`; and `--eject`, where a killed
//! server's keys move to the others and come back after the retry interval (libmemcached
//! ketama, and a twemproxy modula pool rebuilt with its own hash, hash tag and name order).
#![allow(clippy::unwrap_used)]

mod stream;
mod support;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_memcache::route::{Distribution, Twemproxy};
use shoal_ring::{Modula, Ring, TwemproxyHash, twemproxy_hash_tag};
use support::Memcached;
use support::bin::{self, arith_extras, req, store_extras, without_cas};
use support::shoal::{Client, Shoal};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const INCR: u8 = 0x05;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const SETQ: u8 = 0x11;
const ADDQ: u8 = 0x12;
const REPLACEQ: u8 = 0x13;
const DELETEQ: u8 = 0x14;
const INCRQ: u8 = 0x15;
const DECRQ: u8 = 0x16;
const APPENDQ: u8 = 0x19;
const PREPENDQ: u8 = 0x1a;
const FLUSHQ: u8 = 0x18;
const TOUCH: u8 = 0x1c;
const GATQ: u8 = 0x1e;
const GATKQ: u8 = 0x24;

fn config(servers: &[Memcached], eject: bool) -> ProxyConfig {
    let mut cfg = ProxyConfig::new(
        "q",
        Servers::List {
            members: servers.iter().map(Memcached::addr).collect(),
            distribution: Distribution::Ketama,
        },
    );
    cfg.eject = eject;
    cfg.pool.timeout = Duration::from_millis(500);
    cfg.pool.connect_timeout = Duration::from_millis(200);
    // Long enough that the ejection outlives the checks below on a loaded machine.
    cfg.pool.retry_interval = Duration::from_millis(if eject { 2000 } else { 400 });
    cfg.pool.max_errors = 1;
    cfg
}

/// A pipeline of quiet commands (hits, misses, successes and failures) with a NOOP at the
/// end, keys spread over the servers.
fn quiet_pipeline(round: u32) -> Vec<u8> {
    let k = |i: u32| format!("q{round}-{i}").into_bytes();
    let mut p = Vec::new();
    let mut o = round * 100;
    let mut next = || {
        o += 1;
        o
    };
    p.extend(req(SET, next(), 0, &store_extras(7, 0), &k(1), b"one"));
    p.extend(req(SETQ, next(), 0, &store_extras(8, 0), &k(2), b"two"));
    p.extend(req(SETQ, next(), 0, &store_extras(0, 0), &k(3), b"three"));
    p.extend(req(ADDQ, next(), 0, &store_extras(0, 0), &k(1), b"exists")); // refused: loud
    p.extend(req(GETQ, next(), 0, &[], &k(1), b"")); // hit
    p.extend(req(GETQ, next(), 0, &[], &k(99), b"")); // miss: silent
    p.extend(req(GETKQ, next(), 0, &[], &k(2), b"")); // hit, with key
    p.extend(req(GETKQ, next(), 0, &[], &k(98), b"")); // miss: silent
    p.extend(req(DELETEQ, next(), 0, &[], &k(3), b"")); // silent
    p.extend(req(DELETEQ, next(), 0, &[], &k(3), b"")); // NOT_FOUND: loud
    p.extend(req(INCRQ, next(), 0, &arith_extras(5, 10, 0), &k(4), b"")); // creates 10
    p.extend(req(INCRQ, next(), 0, &arith_extras(5, 10, 0), &k(4), b"")); // 15
    p.extend(req(DECRQ, next(), 0, &arith_extras(1, 0, 0), &k(1), b"")); // non-numeric
    p.extend(req(
        INCR,
        next(),
        0,
        &arith_extras(1, 0, 0xffff_ffff),
        &k(4),
        b"",
    )); // 16
    p.extend(req(APPENDQ, next(), 0, &[], &k(1), b"+a"));
    p.extend(req(PREPENDQ, next(), 0, &[], &k(97), b"x")); // NOT_STORED: loud
    p.extend(req(REPLACEQ, next(), 0, &store_extras(0, 0), &k(96), b"r")); // loud
    p.extend(req(GATKQ, next(), 0, &100u32.to_be_bytes(), &k(2), b""));
    p.extend(req(GETK, next(), 0, &[], &k(1), b""));
    p.extend(req(GET, next(), 0, &[], &k(95), b"")); // loud miss
    p.extend(req(TOUCH, next(), 0, &100u32.to_be_bytes(), &k(1), b""));
    p.extend(req(GATQ, next(), 0, &0u32.to_be_bytes(), &k(2), b"")); // hit
    p.extend(req(GATQ, next(), 0, &0u32.to_be_bytes(), &k(94), b"")); // miss: silent
    p.extend(req(FLUSHQ, next(), 0, &[], b"", b"")); // every server, silent
    p.extend(req(GETQ, next(), 0, &[], &k(1), b"")); // flushed: silent
    p.extend(req(GETK, next(), 0, &[], &k(2), b"")); // loud miss with the key
    p.extend(req(NOOP, round, 0, &[], b"", b""));
    p
}

#[test]
fn binary_quiet_pipelines_match_a_direct_memcached_byte_for_byte() {
    let Some(servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let Some(plain) = Memcached::start() else {
        return;
    };
    let shoal = Shoal::start(config(&servers, false));
    let mut via = shoal.client().s;
    let mut direct = plain.connect();
    for round in 1..=5 {
        let p = quiet_pipeline(round);
        let a = bin::call(&mut direct, &p, NOOP, round);
        let b = bin::call(&mut via, &p, NOOP, round);
        assert_eq!(
            without_cas(&a),
            without_cas(&b),
            "round {round}\nplain: {a:?}\nshoal: {b:?}"
        );
        // What memcached answers: the loud ones, the hits and the failures, and the NOOP.
        let statuses: Vec<(u8, u16)> = b.iter().map(|f| (f.opcode, f.status)).collect();
        assert_eq!(
            statuses,
            [
                (SET, 0),
                (ADDQ, 2),
                (GETQ, 0),
                (GETKQ, 0),
                (DELETEQ, 1),
                (DECRQ, 6),
                (INCR, 0),
                (PREPENDQ, 5),
                (REPLACEQ, 1),
                (GATKQ, 0),
                (GETK, 0),
                (GET, 1),
                (TOUCH, 0),
                (GATQ, 0),
                (GETK, 1),
                (NOOP, 0),
            ]
        );
        assert_eq!(b[6].value, 16u64.to_be_bytes());
        assert_eq!(b[10].value, b"one+a");
    }
    // The keys really are spread: every server got some of them.
    for m in &servers {
        let stats = String::from_utf8(Client::connect(m.port).call(b"stats\r\n")).unwrap();
        assert!(!stats.contains("STAT cmd_set 0\r\n"), "{stats}");
    }
}

/// Random binary streams (every opcode memcached 1.6 serves but VERSION and STAT, quiet
/// forms, values up to 100 kB, an unknown opcode) to a plain memcached and through shoal to
/// three: the same frames, byte for byte with CAS zeroed, in the same order.
#[test]
fn random_binary_streams_match_a_direct_memcached_byte_for_byte() {
    let Some(servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let Some(plain) = Memcached::start() else {
        return;
    };
    let shoal = Shoal::start(config(&servers, false));
    let mut via = shoal.client().s;
    let mut direct = plain.connect();
    let mut rng = StdRng::seed_from_u64(0x005e_edb1);
    let mut opaque = 0u32;
    for round in 0..150 {
        let mut p = Vec::new();
        for _ in 0..rng.random_range(1..12) {
            opaque += 1;
            stream::random_binary_command(&mut rng, &mut p, opaque);
        }
        opaque += 1;
        p.extend_from_slice(&bin::req(NOOP, opaque, 0, &[], &[], &[]));
        let a = bin::call(&mut direct, &p, NOOP, opaque);
        let b = bin::call(&mut via, &p, NOOP, opaque);
        if without_cas(&a) != without_cas(&b) {
            let brief = |fs: &[bin::Frame]| {
                fs.iter()
                    .map(|f| (f.opcode, f.status, f.opaque, f.value.len()))
                    .collect::<Vec<_>>()
            };
            panic!(
                "round {round}: frames differ\nplain: {:?}\nshoal: {:?}",
                brief(&a),
                brief(&b)
            );
        }
    }
}

#[test]
fn meta_quiet_flags_and_mn_through_the_proxy() {
    let Some(servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let shoal = Shoal::start(config(&servers, false));
    let mut c = shoal.client();
    // Quiet successes say nothing; failures and hits still answer; `mn` closes the batch.
    let got = c.call_until(
        b"ms mq1 2 q\r\nhi\r\nms mq2 2 q T0 F5\r\nyo\r\nmg nothere v q\r\nmg mq1 v q\r\n\
          md nothere q\r\nmd mq2 q\r\nma nothere q\r\nmg mq2 v q k\r\nmn\r\n",
        Duration::from_secs(5),
        |b| b.ends_with(b"MN\r\n"),
    );
    assert_eq!(
        String::from_utf8_lossy(&got),
        "VA 2\r\nhi\r\nNF\r\nNF\r\nMN\r\n",
        "quiet meta replies"
    );
    // The same through one memcached directly, each command in its own read (memcached
    // 1.6.18 drops replies that follow a quiet miss in the same read, so a loaded machine
    // that batches two of them anyway gets another try).
    let direct = || {
        let mut direct = servers[0].connect();
        for cmd in [
            &b"ms mq1 2 q\r\nhi\r\n"[..],
            b"ms mq2 2 q T0 F5\r\nyo\r\n",
            b"mg nothere v q\r\n",
            b"mg mq1 v q\r\n",
            b"md nothere q\r\n",
            b"md mq2 q\r\n",
            b"ma nothere q\r\n",
            b"mg mq2 v q k\r\n",
        ] {
            std::io::Write::write_all(&mut direct, cmd).unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        Client { s: direct }.call_until(b"mn\r\n", Duration::from_secs(5), |b| {
            b.ends_with(b"MN\r\n")
        })
    };
    let mut plain = direct();
    for _ in 0..2 {
        if plain == got {
            break;
        }
        plain = direct();
    }
    assert_eq!(
        String::from_utf8_lossy(&plain),
        String::from_utf8_lossy(&got)
    );
    // A lone `mn` is answered by the proxy itself.
    assert_eq!(
        c.call_until(b"mn\r\n", Duration::from_secs(5), |b| b
            .ends_with(b"MN\r\n")),
        b"MN\r\n"
    );
}

/// The servers whose memcached holds `key`, asked directly (a dead one holds nothing).
fn holder(servers: &[Memcached], key: &str) -> Vec<usize> {
    (0..servers.len())
        .filter(|i| {
            if std::net::TcpStream::connect(("127.0.0.1", servers[*i].port)).is_err() {
                return false;
            }
            let r = Client::connect(servers[*i].port).call(format!("get {key}\r\n").as_bytes());
            r.starts_with(b"VALUE ")
        })
        .collect()
}

#[test]
fn eject_reshards_a_killed_servers_keys_and_takes_it_back() {
    let Some(mut servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let shoal = Shoal::start(config(&servers, true));
    let mut c = shoal.client();
    let members: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let m: Vec<&str> = members.iter().map(String::as_str).collect();
    let ring = shoal_ring::build(shoal_ring::Algorithm::Ketama, &m).unwrap();
    let on = |want: usize, tag: &str| -> String {
        (0..10_000)
            .map(|i| format!("{tag}{i}"))
            .find(|k| shoal_ring::Ring::owner_index(&ring, k.as_bytes()) == Some(want))
            .unwrap()
    };
    let victim = on(1, "ej");
    let other = on(0, "ej");
    assert_eq!(
        c.call(format!("set {victim} 0 0 1\r\na\r\n").as_bytes()),
        b"STORED\r\n"
    );
    assert_eq!(holder(&servers, &victim), [1]);
    let port = servers[1].port;
    servers[1].kill();
    // The first request finds it dead (one error is enough here); from then on its keys go
    // to the live servers, as twemproxy's auto_eject_hosts does.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.call(format!("set {victim} 0 0 1\r\nb\r\n").as_bytes());
        if r == b"STORED\r\n" {
            break;
        }
        assert!(
            r.starts_with(b"SERVER_ERROR "),
            "{}",
            String::from_utf8_lossy(&r)
        );
        assert!(Instant::now() < deadline, "never re-sharded");
    }
    let moved = holder(&servers, &victim);
    assert!(moved == [0] || moved == [2], "{moved:?}");
    assert_eq!(
        c.call(format!("get {victim}\r\n").as_bytes()),
        format!("VALUE {victim} 0 1\r\nb\r\nEND\r\n").as_bytes()
    );
    // Keys of live servers did not move.
    assert_eq!(
        c.call(format!("set {other} 0 0 1\r\no\r\n").as_bytes()),
        b"STORED\r\n"
    );
    assert_eq!(holder(&servers, &other), [0]);
    let stats = String::from_utf8(c.call(b"stats proxy\r\n")).unwrap();
    assert!(
        stats.contains(&format!("q:server:127.0.0.1:{port}:down 1\r\n")),
        "{stats}"
    );

    // Back on its port: after the retry interval its keys return to it.
    servers[1] = Memcached::start_on("127.0.0.1", Some(port)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.call(format!("set {victim} 0 0 1\r\nc\r\n").as_bytes());
        assert!(
            r == b"STORED\r\n" || r.starts_with(b"SERVER_ERROR "),
            "{r:?}"
        );
        if holder(&servers, &victim).contains(&1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never got its keys back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        c.call(format!("get {victim}\r\n").as_bytes()),
        format!("VALUE {victim} 0 1\r\nc\r\nEND\r\n").as_bytes()
    );
}

/// twemproxy's `auto_eject_hosts` rebuilds the pool's modula slots over the live servers with
/// the pool's hash, its hash tag and its name order: a killed server's key goes where
/// `Modula::twemproxy` over the two live lines puts the key's tag, which (for the key picked)
/// is neither where libmemcached's modula nor the untagged key would go.
#[test]
fn eject_rebuilds_a_twemproxy_pool_with_its_hash_and_tag() {
    let Some(mut servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    // Names sort c, b, a: the slots run in the reverse of the list.
    let lines: Vec<String> = servers
        .iter()
        .zip(["a", "b", "c"].iter().rev())
        .map(|(s, n)| format!("{}:1 {n}", s.addr()))
        .collect();
    let t = Twemproxy {
        hash: TwemproxyHash::Murmur,
        hash_tag: Some(*b"{}"),
    };
    let mut cfg = config(&servers, true);
    cfg.servers = Servers::List {
        members: lines.clone(),
        distribution: Distribution::TwemproxyModula(t),
    };
    let shoal = Shoal::start(cfg);
    let mut c = shoal.client();
    let all: Vec<&str> = lines.iter().map(String::as_str).collect();
    let live = [all[0], all[2]];
    let full = Modula::twemproxy(&all, t.hash).unwrap();
    let tw = Modula::twemproxy(&live, t.hash).unwrap();
    let lib = Modula::new(&live.map(|l| l.split(' ').next().unwrap())).unwrap();
    let live_index = |i: usize| [0, 2][i];
    let victim = (0..10_000)
        .map(|i| format!("user{{{i}}}:x{}", i * 7))
        .find(|k| {
            let cut = twemproxy_hash_tag(k.as_bytes(), *b"{}");
            let want = tw.owner_index(cut);
            full.owner_index(cut) == Some(1)
                && want != lib.owner_index(cut)
                && want != tw.owner_index(k.as_bytes())
        })
        .unwrap();
    let cut = twemproxy_hash_tag(victim.as_bytes(), *b"{}");
    let after = live_index(tw.owner_index(cut).unwrap());
    assert_eq!(
        c.call(format!("set {victim} 0 0 1\r\na\r\n").as_bytes()),
        b"STORED\r\n"
    );
    assert_eq!(holder(&servers, &victim), [1]);
    servers[1].kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.call(format!("set {victim} 0 0 1\r\nb\r\n").as_bytes()) != b"STORED\r\n" {
        assert!(Instant::now() < deadline, "never re-sharded");
    }
    assert_eq!(holder(&servers, &victim), [after], "{victim}");
}
