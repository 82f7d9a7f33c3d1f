//! Regressions found in review, each against real memcached on loopback: requests that
//! used to put a shared downstream connection out of step or fail other clients' requests.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shoal_memcache::pool::ServerStats;
use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_memcache::route::Distribution;
use support::Memcached;
use support::bin::{self, req, store_extras};
use support::shoal::{Client, Shoal};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const NOOP: u8 = 0x0a;
const VERBOSITY: u8 = 0x1b;

/// One server, one downstream connection per protocol: every request of every client
/// shares it.
fn one_conn(server: &Memcached) -> ProxyConfig {
    let mut cfg = ProxyConfig::new(
        "reg",
        Servers::List {
            members: vec![server.addr()],
            distribution: Distribution::Ketama,
        },
    );
    cfg.pool.conns = 1;
    cfg.pool.timeout = Duration::from_secs(2);
    cfg
}

/// memcached 1.6.18 answers a binary VERBOSITY with UNKNOWN_COMMAND and then skips 4 bytes
/// more than the frame. Forwarded on a shared connection, those 4 bytes come out of the next
/// request and the rest is read as requests the proxy never sent: a VERBOSITY carrying a
/// crafted body made the server answer a smuggled GET, and that answer went to the next
/// request on the connection (here the client's GET of a missing key got another key's
/// value). The proxy must answer VERBOSITY itself.
#[test]
fn binary_verbosity_is_not_forwarded_to_a_shared_connection() {
    let Some(mc) = Memcached::start() else { return };
    let shoal = Shoal::start(one_conn(&mc));
    let mut c = shoal.client();
    let stored = bin::call(
        &mut c.s,
        &req(SET, 1, 0, &store_extras(0, 0), b"secret", b"s3cr3t"),
        SET,
        1,
    );
    assert_eq!(stored[0].status, 0);

    // VERBOSITY #2 is laid out so that, read 4 bytes late, its header is a NOOP and its
    // body a GET of "secret" and five NOOPs.
    let v1 = req(VERBOSITY, 2, 0, &[0, 0, 0, 1], b"", b"");
    let mut smuggled = vec![0u8; 4]; // the rest of the misread header (its cas)
    smuggled.extend_from_slice(&req(GET, 7, 0, b"", b"secret", b""));
    for _ in 0..5 {
        smuggled.extend_from_slice(&req(NOOP, 7, 0, b"", b"", b""));
    }
    assert!((128..1 << 16).contains(&smuggled.len()));
    let mut v2 = req(VERBOSITY, 0, 0, &[], b"", &smuggled);
    v2[4] = 0x80; // extras length 128: read late, the magic byte
    v2[5] = NOOP; // data type: read late, the opcode
    let mut pipeline = v1;
    pipeline.extend_from_slice(&v2);
    pipeline.extend_from_slice(&req(GET, 3, 0, b"", b"missing", b""));
    pipeline.extend_from_slice(&req(NOOP, 4, 0, b"", b"", b""));
    let frames = bin::call(&mut c.s, &pipeline, NOOP, 4);
    let replies: Vec<(u8, u16, u32)> = frames
        .iter()
        .map(|f| (f.opcode, f.status, f.opaque))
        .collect();
    assert_eq!(
        replies,
        [
            (VERBOSITY, 0x81, 2),
            (VERBOSITY, 0x81, 0),
            (GET, 1, 3),
            (NOOP, 0, 4)
        ],
        "{frames:?}"
    );
    assert!(frames.iter().all(|f| f.value != b"s3cr3t"), "{frames:?}");
}

const STAT: u8 = 0x10;

/// memcached 1.6.18 answers `stats sizes_enable` and `stats sizes_disable` with their
/// `STAT sizes_status` line and no `END` (binary: no empty STAT after it). Framed as a
/// stats reply up to `END`, the proxy took the next request's reply on the shared
/// connection as the rest of it, and every later reply went to the request before.
#[test]
fn stats_sizes_enable_without_end_does_not_shift_later_replies() {
    let Some(mc) = Memcached::start() else { return };
    let shoal = Shoal::start(one_conn(&mc));
    let mut c = shoal.client();
    assert_eq!(c.call(b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    for (cmd, status) in [("sizes_enable", "enabled"), ("sizes_disable", "disabled")] {
        let r = c.call(format!("stats {cmd}\r\nget k\r\n").as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&r),
            format!("STAT sizes_status {status}\r\nVALUE k 0 1\r\nv\r\nEND\r\n")
        );
    }

    let mut b = shoal.client();
    for (cmd, status) in [
        (&b"sizes_enable"[..], &b"enabled"[..]),
        (b"sizes_disable", b"disabled"),
    ] {
        let mut pipeline = req(STAT, 1, 0, b"", cmd, b"");
        pipeline.extend_from_slice(&req(GET, 2, 0, b"", b"k", b""));
        pipeline.extend_from_slice(&req(NOOP, 3, 0, b"", b"", b""));
        let frames = bin::call(&mut b.s, &pipeline, NOOP, 3);
        let got: Vec<(u8, u32, &[u8], &[u8])> = frames
            .iter()
            .map(|f| (f.opcode, f.opaque, &f.key[..], &f.value[..]))
            .collect();
        assert_eq!(
            got,
            [
                (STAT, 1, &b"sizes_status"[..], status),
                (GET, 2, b"", b"v"),
                (NOOP, 3, b"", b"")
            ],
            "{frames:?}"
        );
    }
}

/// `stats cachedump` answers `ITEM` lines and `stats detail dump` `PREFIX` lines, which the
/// proxy could not read: the server connection was closed as out of step, and the requests
/// of other clients in flight on it failed with `SERVER_ERROR proxy downstream protocol
/// error`. They now pass through (the lines of every server, then one `END`).
#[test]
fn stats_cachedump_and_detail_dump_pass_through_without_failing_other_requests() {
    let Some(mc) = Memcached::start() else { return };
    let shoal = Shoal::start(one_conn(&mc));
    let mut c = shoal.client();
    assert_eq!(c.call(b"set p:k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    // A new item shows in the dump once memcached's LRU maintainer has moved it.
    let mut direct = support::shoal::Client::connect(mc.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !direct
        .call(b"stats cachedump 1 10\r\n")
        .starts_with(b"ITEM p:k ")
    {
        assert!(Instant::now() < deadline, "p:k never in the cachedump");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = c.call(b"stats cachedump 1 10\r\nget p:k\r\n");
    assert_eq!(
        String::from_utf8_lossy(&r),
        "ITEM p:k [1 b; 0 s]\r\nEND\r\nVALUE p:k 0 1\r\nv\r\nEND\r\n"
    );
    let r = c.call(b"stats detail on\r\nget p:k\r\nstats detail dump\r\nget p:k\r\n");
    assert_eq!(
        String::from_utf8_lossy(&r),
        "OK\r\nVALUE p:k 0 1\r\nv\r\nEND\r\nPREFIX p get 1 hit 1 set 0 del 0\r\nEND\r\n\
         VALUE p:k 0 1\r\nv\r\nEND\r\n"
    );
    assert_eq!(c.call(b"stats detail off\r\n"), b"OK\r\n");
}

/// memcached reads a client into a 16 KiB buffer and closes the connection when what is
/// left unparsed there is an unfinished line over 2048 bytes (unless it is a `get`). The
/// proxy applies the same rule to its own reads, but read less than memcached does (as
/// little as 4 KiB, what was left of its buffer), so a pipeline memcached serves whole,
/// such as `incr`s and a long `gat` in one 10 KiB write, had the connection closed.
#[test]
fn a_pipeline_memcached_reads_whole_is_not_cut_by_a_short_read() {
    let Some(mc) = Memcached::start() else { return };
    let shoal = Shoal::start(one_conn(&mc));
    let mut c = shoal.client();
    let gat = long_gat("r");
    let mut total = 0;
    for round in 0..=8 {
        let incrs = round * 97;
        let mut pipeline = b"incr n 1\r\n".repeat(incrs);
        pipeline.extend_from_slice(gat.as_bytes());
        assert!(pipeline.len() < 16 * 1024);
        if round == 0 {
            pipeline = b"set n 0 0 1\r\n0\r\n".to_vec();
            pipeline.extend_from_slice(gat.as_bytes());
        }
        let r = c.call_until(&pipeline, Duration::from_secs(10), |b| {
            b.ends_with(b"END\r\n")
        });
        let mut want: String = (total + 1..=total + incrs)
            .map(|n| format!("{n}\r\n"))
            .collect();
        if round == 0 {
            want.push_str("STORED\r\n");
        }
        want.push_str("END\r\n");
        assert_eq!(String::from_utf8_lossy(&r), want, "round {round}");
        total += incrs;
    }
}

/// A `gat` of 250 keys of 30 bytes: a 7.7 KiB line.
fn long_gat(tag: &str) -> String {
    let keys: Vec<String> = (0..250)
        .map(|i| format!("{tag}{i:04}_{}", "x".repeat(24 - tag.len())))
        .collect();
    format!("gat 0 {}\r\n", keys.join(" "))
}

/// A counter of server 0.
fn server_stat(shoal: &Shoal, pick: fn(&ServerStats) -> &AtomicU64) -> u64 {
    let cluster = shoal.proxy.cluster();
    pick(cluster.pool.servers()[0].stats()).load(Ordering::Relaxed)
}

/// With memcached stopped, `a` pipelines `incrs` increments of `n` and then `b` sends
/// `long_line`. They pile up on the one server connection, and when memcached goes on it
/// reads them 16 KiB at a time, the first read ending inside the long line (the incrs take
/// 10 bytes each).
fn incrs_then_a_long_line(
    shoal: &Shoal,
    mc: &Memcached,
    (a, b): (&mut Client, &mut Client),
    incrs: usize,
    long_line: &[u8],
) {
    let before = server_stat(shoal, |s| &s.requests);
    mc.pause(true);
    a.s.write_all(&b"incr n 1\r\n".repeat(incrs)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    b.s.write_all(long_line).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server_stat(shoal, |s| &s.requests) < before + incrs as u64 + 1 {
        assert!(
            Instant::now() < deadline,
            "the proxy did not write the requests"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    mc.pause(false);
}

/// The same rule on the server side: a long `gat` (legal: memcached serves it when it comes
/// in one read) pipelined on a shared connection behind other clients' requests can be cut
/// by one of memcached's reads. memcached then closes the connection and drops the replies
/// it has not sent yet, and the proxy re-sent those requests although memcached had run
/// them: an `incr` counted twice. The proxy must send a `gat` in lines memcached always
/// reads whole.
#[test]
fn a_long_gat_line_does_not_get_other_clients_requests_run_twice() {
    let Some(mc) = Memcached::start() else { return };
    let shoal = Shoal::start(one_conn(&mc));
    let mut a = shoal.client();
    let mut b = shoal.client();
    assert_eq!(a.call(b"set n 0 0 1\r\n0\r\n"), b"STORED\r\n");
    // Fewer than a client may have waiting for replies (1024).
    let incrs = 1000;
    incrs_then_a_long_line(
        &shoal,
        &mc,
        (&mut a, &mut b),
        incrs,
        long_gat("g").as_bytes(),
    );
    let rb = b.call_until(b"", Duration::from_secs(5), |r| r.ends_with(b"\r\n"));
    assert_eq!(String::from_utf8_lossy(&rb), "END\r\n");
    let ra = a.call_until(b"", Duration::from_secs(5), |r| {
        r.ends_with(format!("\r\n{incrs}\r\n").as_bytes())
    });
    let want: String = (1..=incrs).map(|n| format!("{n}\r\n")).collect();
    assert!(
        ra == want.as_bytes(),
        "{}",
        String::from_utf8_lossy(&ra[ra.len().saturating_sub(300)..])
    );
    assert_eq!(a.call(b"get n\r\n"), b"VALUE n 0 4\r\n1000\r\nEND\r\n");
    // Split in several lines, the gat still answers in the client's key order.
    let gat = long_gat("h");
    let keys: Vec<&str> = gat.trim_end().split(' ').skip(2).collect();
    for k in [keys[249], keys[0], keys[130]] {
        assert_eq!(
            a.call(format!("set {k} 0 0 1\r\nv\r\n").as_bytes()),
            b"STORED\r\n"
        );
    }
    let want: String = [keys[0], keys[130], keys[249]]
        .iter()
        .map(|k| format!("VALUE {k} 0 1\r\nv\r\n"))
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&a.call(gat.as_bytes())),
        format!("{want}END\r\n")
    );
}

/// A long meta line (no valid one is over 2048 bytes, but memcached serves it when it comes
/// in one read, so the proxy forwards it) pipelined behind other clients' `incr`s can be cut
/// by one of memcached's reads: memcached then closes the connection after running the
/// `incr`s, without their replies. moxi's retry re-sent them, counting each twice. Only
/// requests that may run twice are re-sent now: the `incr`s whose replies were lost say the
/// connection closed (they may or may not have run, as with any lost reply), and none runs
/// twice.
#[test]
fn a_closed_connection_never_gets_an_incr_run_twice() {
    let Some(mc) = Memcached::start() else { return };
    let shoal = Shoal::start(one_conn(&mc));
    let mut a = shoal.client();
    let mut b = shoal.client();
    assert_eq!(a.call(b"set n 0 0 1\r\n0\r\n"), b"STORED\r\n");
    let connects = server_stat(&shoal, |s| &s.connects);
    let incrs = 1000;
    let long_mg = format!("mg k v O{}\r\n", "x".repeat(8000));
    incrs_then_a_long_line(&shoal, &mc, (&mut a, &mut b), incrs, long_mg.as_bytes());
    let ra = a.call_until(b"", Duration::from_secs(10), |r| {
        r.split(|&c| c == b'\n').count() > incrs
    });
    let ra = String::from_utf8_lossy(&ra).into_owned();
    let lines: Vec<&str> = ra.split_terminator("\r\n").collect();
    assert_eq!(
        lines.len(),
        incrs,
        "{}",
        &ra[ra.len().saturating_sub(300)..]
    );
    let counted: Vec<u64> = lines.iter().filter_map(|l| l.parse().ok()).collect();
    let closed = lines
        .iter()
        .filter(|l| l.starts_with("SERVER_ERROR proxy downstream closed"))
        .count();
    let other = lines.len() - counted.len() - closed;
    assert_eq!(other, 0, "{}", &ra[ra.len().saturating_sub(300)..]);
    assert!(
        server_stat(&shoal, |s| &s.connects) > connects,
        "memcached did not close the connection: the test proves nothing"
    );
    // memcached ran the incrs it read before closing, including those whose replies it
    // dropped: the counter is between the numbers answered and the incrs sent, never above.
    let value = String::from_utf8(a.call(b"get n\r\n")).unwrap();
    let n: usize = value
        .lines()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{value}"));
    assert!(
        (counted.len()..=incrs).contains(&n),
        "counter {n}: {} incrs answered with a number, {closed} closed, {incrs} sent",
        counted.len()
    );
    // The long line's own client lost its connection or got an error; others go on.
    assert_eq!(a.call(b"incr n 1\r\n"), format!("{}\r\n", n + 1).as_bytes());
}

/// `me <key> b` looks up the base64-decoded key in memcached 1.6.18 (the only flag `me`
/// reads). The proxy dropped everything after the key, so the server looked up the base64
/// text itself and answered `EN` for an item that is there.
#[test]
fn meta_debug_keeps_its_base64_flag() {
    let Some(mc) = Memcached::start() else { return };
    let shoal = Shoal::start(one_conn(&mc));
    let mut c = shoal.client();
    assert_eq!(c.call(b"ms a2V5 1 b\r\nx\r\n"), b"HD\r\n");
    let r = String::from_utf8(c.call(b"me a2V5 b\r\nme a2V5\r\nme key\r\n")).unwrap();
    let lines: Vec<&str> = r.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 3, "{r}");
    assert!(lines[0].starts_with("ME a2V5 exp=-1 "), "{r}");
    assert_eq!(lines[1], "EN", "{r}");
    // memcached names a key stored in base64 by its base64 form.
    assert!(lines[2].starts_with("ME a2V5 exp=-1 "), "{r}");
}

/// memcached runs a connection's requests in order. A reload gives the proxy new server
/// connections; a client's requests sent after it went on them while its earlier ones
/// could still wait on the old connections, so a `get` right after a `set` could overtake
/// it at the server and read the old value.
#[test]
fn a_reload_does_not_let_a_clients_later_request_overtake_an_earlier_one() {
    let Some(mc) = Memcached::start() else { return };
    let cfg = one_conn(&mc);
    let shoal = Shoal::start(cfg.clone());
    let mut c = shoal.client();
    assert_eq!(c.call(b"set k 0 0 3\r\nold\r\n"), b"STORED\r\n");
    let written = || {
        let cluster = shoal.proxy.cluster();
        let stats = cluster.pool.servers()[0].stats();
        stats.requests.load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = written();
    // memcached stopped: the set waits on the old connection behind 500 other requests.
    mc.pause(true);
    let mut pipeline = b"touch x 0\r\n".repeat(500);
    pipeline.extend_from_slice(b"set k 0 0 3\r\nnew\r\n");
    c.s.write_all(&pipeline).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while written() < before + 501 {
        assert!(
            Instant::now() < deadline,
            "the proxy did not write the requests"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    {
        let _rt = shoal.handle().enter(); // the new pool's connection tasks start there
        // A changed pool setting: new server connections (the same config keeps the old).
        let mut cfg = cfg;
        cfg.pool.timeout += Duration::from_millis(1);
        let old = shoal.proxy.cluster().pool.clone();
        shoal.proxy.reload(cfg).unwrap();
        assert!(!Arc::ptr_eq(&old, &shoal.proxy.cluster().pool));
    }
    c.s.write_all(b"get k\r\n").unwrap();
    // Let the get reach the new connection, if the proxy sends it at once.
    let deadline = Instant::now() + Duration::from_millis(500);
    while written() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    mc.pause(false);
    let r = c.call_until(b"", Duration::from_secs(5), |r| r.ends_with(b"END\r\n"));
    let mut want = "NOT_FOUND\r\n".repeat(500);
    want.push_str("STORED\r\nVALUE k 0 3\r\nnew\r\nEND\r\n");
    assert_eq!(String::from_utf8_lossy(&r), want);
}

/// memcached's `total_connections`, read on a connection of its own (which it counts).
fn total_connections(mc: &Memcached) -> u64 {
    let mut s = mc.connect();
    s.write_all(b"stats\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"END\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "memcached closed during stats");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("STAT total_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total_connections in {text}"))
}

/// A reload (SIGHUP) that leaves the servers and the pool settings as they were keeps the
/// downstream connections and their counters: it used to reconnect every server.
#[test]
fn a_reload_that_keeps_servers_and_pool_settings_keeps_the_connections() {
    let Some(mc) = Memcached::start() else { return };
    let cfg = one_conn(&mc);
    let shoal = Shoal::start(cfg.clone());
    let mut c = shoal.client();
    assert_eq!(c.call(b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    let pool = shoal.proxy.cluster().pool.clone();
    let before = total_connections(&mc);
    {
        let _rt = shoal.handle().enter();
        let mut cfg = cfg;
        cfg.version = "9.9.9".into();
        shoal.proxy.reload(cfg).unwrap();
    }
    assert_eq!(
        c.call(b"version\r\n"),
        b"VERSION 9.9.9\r\n",
        "the reload took"
    );
    assert_eq!(c.call(b"get k\r\n"), b"VALUE k 0 1\r\nv\r\nEND\r\n");
    assert!(Arc::ptr_eq(&pool, &shoal.proxy.cluster().pool));
    assert_eq!(
        total_connections(&mc),
        before + 1,
        "no new connection from the proxy (only this stats one)"
    );
}

/// Reads one reply to a `get` off `c`: its values and `END`, or an error line (10 s at most).
fn get_reply(c: &mut support::shoal::Client) -> String {
    let r = c.call_until(b"", Duration::from_secs(10), |r| {
        r.ends_with(b"END\r\n") || (r.starts_with(b"SERVER_ERROR") && r.ends_with(b"\r\n"))
    });
    String::from_utf8_lossy(&r).into_owned()
}

/// A client connection took the time it waits for a reply (the connect timeout and twice the
/// request timeout) from the config in force when it connected, so a reload that raised the
/// timeout did not reach it: with the timeout raised from 300 ms to 30 s, a server taking
/// 3 s to answer gave a client connected before the reload `SERVER_ERROR proxy downstream
/// timeout` after 1 s, though the new server connection still waited for the reply.
#[test]
fn a_reload_that_raises_the_timeout_reaches_clients_connected_before_it() {
    let Some(mc) = Memcached::start() else { return };
    let mut cfg = one_conn(&mc);
    cfg.pool.timeout = Duration::from_millis(300);
    let shoal = Shoal::start(cfg.clone());
    let mut c = shoal.client();
    assert_eq!(c.call(b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    {
        let _rt = shoal.handle().enter(); // the new pool's connection tasks start there
        cfg.pool.timeout = Duration::from_secs(30);
        shoal.proxy.reload(cfg).unwrap();
    }
    mc.pause(true);
    c.s.write_all(b"get k\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    mc.pause(false);
    assert_eq!(get_reply(&mut c), "VALUE k 0 1\r\nv\r\nEND\r\n");
}

/// The other way round: with the timeout cut from 30 s to 300 ms, a client connected before
/// the reload gets its `SERVER_ERROR` from a server that does not answer within the new
/// timeout, not the old one. (This passed before too: the reload's new server connections
/// time the request out at the new value themselves, before the client's wait ends.)
#[test]
fn a_reload_that_shortens_the_timeout_reaches_clients_connected_before_it() {
    let Some(mc) = Memcached::start() else { return };
    let mut cfg = one_conn(&mc);
    cfg.pool.timeout = Duration::from_secs(30);
    let shoal = Shoal::start(cfg.clone());
    let mut c = shoal.client();
    assert_eq!(c.call(b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    {
        let _rt = shoal.handle().enter();
        cfg.pool.timeout = Duration::from_millis(300);
        shoal.proxy.reload(cfg).unwrap();
    }
    mc.pause(true);
    let asked = Instant::now();
    c.s.write_all(b"get k\r\n").unwrap();
    let reply = get_reply(&mut c);
    let took = asked.elapsed();
    mc.pause(false);
    assert!(
        reply.starts_with("SERVER_ERROR proxy downstream timeout"),
        "{reply:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{reply:?} after {took:?}");
}
