//! The proxy against real memcached servers: byte-for-byte replies compared with a plain
//! memcached (differential), multi-get order and de-duplication, broadcast stats, and
//! faults (a killed server, a stopped one).
#![allow(clippy::unwrap_used)]

mod stream;
mod support;

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_memcache::route::{Distribution, Router};
use stream::{normalise, random_command};
use support::Memcached;
use support::shoal::{Client, Shoal};

fn three() -> Option<Vec<Memcached>> {
    (0..3).map(|_| Memcached::start()).collect()
}

fn config(servers: &[Memcached]) -> ProxyConfig {
    let mut cfg = ProxyConfig::new(
        "test",
        Servers::List {
            members: servers.iter().map(Memcached::addr).collect(),
            distribution: Distribution::Ketama,
        },
    );
    cfg.pool.timeout = Duration::from_millis(500);
    cfg.pool.connect_timeout = Duration::from_millis(200);
    cfg.pool.retry_interval = Duration::from_millis(300);
    cfg.pool.max_errors = 2;
    cfg
}

/// A key owned by server `want` (by the same ring the proxy uses).
fn key_on(servers: &[Memcached], want: usize, tag: &str) -> String {
    let members: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let m: Vec<&str> = members.iter().map(String::as_str).collect();
    let ring = shoal_ring::build(shoal_ring::Algorithm::Ketama, &m).unwrap();
    (0..10_000)
        .map(|i| format!("{tag}{i}"))
        .find(|k| shoal_ring::Ring::owner_index(&ring, k.as_bytes()) == Some(want))
        .unwrap()
}

#[test]
fn differential_random_stream_matches_plain_memcached() {
    let Some(backends) = three() else { return };
    let Some(plain) = Memcached::start() else {
        return;
    };
    let shoal = Shoal::start(config(&backends));
    let mut via = shoal.client();
    let mut direct = Client::connect(plain.port);
    let mut rng = StdRng::seed_from_u64(6);
    for round in 0..60 {
        let mut req = Vec::new();
        for _ in 0..15 {
            let mut one = Vec::new();
            random_command(&mut rng, &mut one, true);
            if one.starts_with(b"get xxxxx") {
                req = one;
                break;
            }
            req.extend_from_slice(&one);
        }
        // Every tenth round ends with `quit`: the replies before it, then both close.
        let (a, b) = if round % 10 == 9 && !req.starts_with(b"get xxxxx") {
            req.extend_from_slice(b"quit\r\n");
            let ((a, a_closed), (b, b_closed)) =
                (direct.call_to_close(&req), via.call_to_close(&req));
            assert!(
                a_closed && b_closed,
                "round {round}: quit closed plain {a_closed}, shoal {b_closed}"
            );
            direct = Client::connect(plain.port);
            via = shoal.client();
            (normalise(&a), normalise(&b))
        } else {
            (
                normalise(&direct.call_v(&req)),
                normalise(&via.call_v(&req)),
            )
        };
        assert!(
            a == b,
            "round {round}: replies differ\nrequest: {:?}\nplain:   {:?}\nshoal:   {:?}",
            String::from_utf8_lossy(&req[..req.len().min(2000)]),
            String::from_utf8_lossy(&a[..a.len().min(3000)]),
            String::from_utf8_lossy(&b[..b.len().min(3000)])
        );
    }
}

#[test]
fn multiget_answers_in_key_order_once_per_key_asked() {
    let Some(servers) = three() else { return };
    let shoal = Shoal::start(config(&servers));
    let mut c = shoal.client();
    let keys: Vec<String> = (0..3).map(|i| key_on(&servers, i, "m")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            c.call(format!("set {k} {i} 0 1\r\n{i}\r\n").as_bytes()),
            b"STORED\r\n"
        );
    }
    let (a, b, z) = (&keys[0], &keys[1], &keys[2]);
    let got = c.call(format!("get {z} {a} nothere {b} {a}\r\n").as_bytes());
    let want = format!(
        "VALUE {z} 2 1\r\n2\r\nVALUE {a} 0 1\r\n0\r\nVALUE {b} 1 1\r\n1\r\nVALUE {a} 0 1\r\n0\r\nEND\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
    let stats = String::from_utf8(c.call(b"stats proxy\r\n")).unwrap();
    assert!(
        stats.contains("test:pstd_stats:tot_multiget_keys_dedupe 1\r\n"),
        "{stats}"
    );
    // Broadcast stats: curr_items summed over the three, pid the first server's.
    let stats = String::from_utf8(c.call(b"stats\r\n")).unwrap();
    assert!(stats.contains("STAT curr_items 3\r\n"), "{stats}");
    assert!(stats.ends_with("END\r\n"));
    assert_eq!(c.call(b"flush_all\r\n"), b"OK\r\n");
    assert_eq!(c.call(format!("get {a} {b}\r\n").as_bytes()), b"END\r\n");
    assert!(c.call(b"version\r\n").starts_with(b"VERSION 1.6.18-shoal"));
}

/// Every request the proxy queued for a server or wrote to it has left its queues (the
/// gauges of twemproxy's stats port), whatever happened to it.
fn queues_are_empty(shoal: &Shoal) {
    use std::sync::atomic::Ordering::Relaxed;
    for s in shoal.proxy.cluster().pool.servers() {
        let st = s.stats();
        for (name, v) in [
            ("in_queue", &st.in_queue),
            ("in_queue_bytes", &st.in_queue_bytes),
            ("out_queue", &st.out_queue),
            ("out_queue_bytes", &st.out_queue_bytes),
        ] {
            assert_eq!(v.load(Relaxed), 0, "{} {name}", s.addr().authority());
        }
    }
}

#[test]
fn killed_server_fails_fast_and_comes_back() {
    let Some(mut servers) = three() else { return };
    let shoal = Shoal::start(config(&servers));
    let mut c = shoal.client();
    let keys: Vec<String> = (0..3).map(|i| key_on(&servers, i, "f")).collect();
    for k in &keys {
        assert_eq!(
            c.call(format!("set {k} 0 0 1\r\nv\r\n").as_bytes()),
            b"STORED\r\n"
        );
    }
    let port = servers[1].port;
    servers[1].kill();
    for _ in 0..3 {
        let t = Instant::now();
        let r = c.call(format!("get {}\r\n", keys[1]).as_bytes());
        assert!(
            r.starts_with(b"SERVER_ERROR "),
            "{}",
            String::from_utf8_lossy(&r)
        );
        assert!(
            t.elapsed() < Duration::from_millis(700),
            "{:?}",
            t.elapsed()
        );
        for k in [&keys[0], &keys[2]] {
            let r = c.call(format!("get {k}\r\n").as_bytes());
            assert!(r.starts_with(b"VALUE "), "{}", String::from_utf8_lossy(&r));
        }
    }
    servers[1] = Memcached::start_on("127.0.0.1", Some(port)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.call(format!("set {} 0 0 1\r\nw\r\n", keys[1]).as_bytes());
        if r == b"STORED\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "server never came back: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = c.call(format!("get {}\r\n", keys[1]).as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&r),
        format!("VALUE {} 0 1\r\nw\r\nEND\r\n", keys[1])
    );
    queues_are_empty(&shoal);
    let cluster = shoal.proxy.cluster();
    let st = cluster.pool.servers()[1].stats();
    use std::sync::atomic::Ordering::Relaxed;
    assert!(
        st.eofs.load(Relaxed) + st.conn_errors.load(Relaxed) >= 1,
        "the killed server's connection end is counted"
    );
    assert_eq!(st.connections.load(Relaxed), 1, "one connection again");
}

#[test]
fn stopped_server_times_out_without_stalling_the_others() {
    let Some(servers) = three() else { return };
    let shoal = Shoal::start(config(&servers));
    let mut c = shoal.client();
    let keys: Vec<String> = (0..3).map(|i| key_on(&servers, i, "s")).collect();
    for k in &keys {
        assert_eq!(
            c.call(format!("set {k} 0 0 1\r\nv\r\n").as_bytes()),
            b"STORED\r\n"
        );
    }
    servers[2].pause(true);
    let slow_key = keys[2].clone();
    let port = shoal.port;
    let slow = std::thread::spawn(move || {
        let mut c = Client::connect(port);
        let t = Instant::now();
        let r = c.call(format!("get {slow_key}\r\n").as_bytes());
        (r, t.elapsed())
    });
    // Meanwhile, other clients' keys on the other servers are answered at once.
    let mut fast = shoal.client();
    for _ in 0..20 {
        let t = Instant::now();
        let r = fast.call(format!("get {} {}\r\n", keys[0], keys[1]).as_bytes());
        assert!(r.starts_with(b"VALUE "), "{}", String::from_utf8_lossy(&r));
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (r, took) = slow.join().unwrap();
    servers[2].pause(false);
    assert_eq!(
        String::from_utf8_lossy(&r),
        "SERVER_ERROR proxy downstream timeout 127.0.0.1\r\n"
    );
    // Counted against that server in `stats proxy`.
    let stats = String::from_utf8(
        c.call_until(b"stats proxy\r\n", Duration::from_secs(5), |b| {
            b.ends_with(b"END\r\n")
        }),
    )
    .unwrap();
    let id = servers[2].addr();
    assert!(
        stats.contains(&format!(":server:{id}:timeouts 1\r\n")),
        "{stats}"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    queues_are_empty(&shoal);
}

#[test]
fn vbucket_router_follows_the_map() {
    let json = r#"{"numReplicas":0,"serverList":["a:1","b:2"],"vBucketMap":[[0],[0],[0],[1]]}"#;
    let r = Router::vbucket(json).unwrap();
    assert_eq!(r.servers(), ["a:1", "b:2"]);
    assert!(r.is_vbucket());
    // moxi's test vectors with 4 vBuckets: "name" is in vBucket 3, owned by server 1.
    assert_eq!(r.not_my_vbucket(3, 1), Some(0));
}

#[test]
fn memccapable_ascii_and_binary_pass_through_the_proxy() {
    const TOOL: &str = "/usr/bin/memccapable";
    if !std::path::Path::new(TOOL).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{TOOL} is missing: run scripts/install-deps (libmemcached-tools)"
        );
        eprintln!("\n!!! SKIPPED: {TOOL} is not installed (scripts/install-deps) !!!\n");
        return;
    }
    let Some(servers) = three() else { return };
    let shoal = Shoal::start(config(&servers));
    for flag in ["-a", "-b"] {
        let mut child = std::process::Command::new(TOOL)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &shoal.port.to_string(),
                "-t",
                "5",
                flag,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("memccapable {flag} did not finish");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        assert!(
            status.success() && out.contains("All tests passed"),
            "memccapable {flag}:\n{out}"
        );
    }
}

/// A connection that closes before any byte of its reply: the request is sent again, once,
/// on a new connection (the server may just have closed an idle connection), and counted.
#[test]
fn a_request_on_a_connection_closed_before_replying_is_retried_once() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let mut requests = Vec::new();
        // The first connection reads a request and closes without a word.
        let (first, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&first).read_line(&mut line).unwrap();
        requests.push(line);
        drop(first);
        // The second answers like a memcached without the key.
        let (second, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(second.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        requests.push(line);
        (&second).write_all(b"END\r\n").unwrap();
        requests
    });
    let mut cfg = ProxyConfig::new(
        "test",
        Servers::List {
            members: vec![addr.clone()],
            distribution: Distribution::Ketama,
        },
    );
    cfg.pool.timeout = Duration::from_secs(5);
    let shoal = Shoal::start(cfg);
    let mut c = shoal.client();
    assert_eq!(c.call(b"get k\r\n"), b"END\r\n");
    assert_eq!(server.join().unwrap(), ["get k\r\n", "get k\r\n"]);
    let stats = String::from_utf8(
        c.call_until(b"stats proxy\r\n", Duration::from_secs(5), |b| {
            b.ends_with(b"END\r\n")
        }),
    )
    .unwrap();
    assert!(
        stats.contains(&format!(":server:{addr}:retries 1\r\n")),
        "{stats}"
    );
    // Written twice, answered once, and nothing left counted as queued or in flight.
    queues_are_empty(&shoal);
    let cluster = shoal.proxy.cluster();
    let st = cluster.pool.servers()[0].stats();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        (st.requests.load(Relaxed), st.responses.load(Relaxed)),
        (2, 1)
    );
    // The first connection's end, and the second's once the test server is gone.
    assert!((1..=2).contains(&st.eofs.load(Relaxed)));
}

/// A server whose TCP connects hang (a full listen queue: the kernel drops the SYNs): its
/// keys fail after `connect_timeout`, well before the request timeout, counted as connect
/// errors and not as request timeouts; the other server's keys are answered meanwhile.
#[test]
fn a_server_that_never_completes_a_connect_fails_on_the_connect_timeout() {
    let Some(good) = Memcached::start() else {
        return;
    };
    let hole = shoal_testkit::Blackhole::start();
    let members = vec![good.addr(), hole.addr.to_string()];
    let mut cfg = ProxyConfig::new(
        "test",
        Servers::List {
            members: members.clone(),
            distribution: Distribution::Ketama,
        },
    );
    cfg.pool.timeout = Duration::from_secs(4);
    cfg.pool.connect_timeout = Duration::from_millis(300);
    cfg.pool.retry_interval = Duration::from_millis(100);
    cfg.pool.max_errors = 100;
    let shoal = Shoal::start(cfg);
    let m: Vec<&str> = members.iter().map(String::as_str).collect();
    let ring = shoal_ring::build(shoal_ring::Algorithm::Ketama, &m).unwrap();
    let on = |want: usize| {
        (0..10_000)
            .map(|i| format!("c{i}"))
            .find(|k| shoal_ring::Ring::owner_index(&ring, k.as_bytes()) == Some(want))
            .unwrap()
    };
    let (here, there) = (on(0), on(1));
    let mut c = shoal.client();
    assert_eq!(
        c.call(format!("set {here} 0 0 1\r\nv\r\n").as_bytes()),
        b"STORED\r\n"
    );
    let t = Instant::now();
    let r = c.call(format!("get {there}\r\n").as_bytes());
    let took = t.elapsed();
    assert!(
        r.starts_with(b"SERVER_ERROR "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "the connect timeout is 300ms and the request timeout 4s: took {took:?}"
    );
    let r = c.call(format!("get {here}\r\n").as_bytes());
    assert!(r.starts_with(b"VALUE "), "{}", String::from_utf8_lossy(&r));
    let stats = String::from_utf8(
        c.call_until(b"stats proxy\r\n", Duration::from_secs(5), |b| {
            b.ends_with(b"END\r\n")
        }),
    )
    .unwrap();
    let id = &hole.addr;
    let connect_errors: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("STAT test:server:{id}:connect_errors ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connect_errors for {id}: {stats}"));
    assert!(connect_errors >= 1, "{stats}");
    assert!(
        stats.contains(&format!("STAT test:server:{id}:timeouts 0\r\n")),
        "{stats}"
    );
}

/// Two servers that answer a get only once both have been asked (a barrier between them,
/// as if each took as long as the other's request to arrive): a multi-get over both keys
/// completes only if the proxy sends the parts in parallel; sent one after the other, the
/// first part would wait for the second for ever and the get would time out.
#[test]
fn a_multiget_asks_its_servers_in_parallel() {
    let arrived = std::sync::Arc::new((std::sync::Mutex::new(0usize), std::sync::Condvar::new()));
    let servers: Vec<String> = (0..2).map(|_| barrier_server(arrived.clone())).collect();
    let mut cfg = ProxyConfig::new(
        "test",
        Servers::List {
            members: servers.clone(),
            distribution: Distribution::Ketama,
        },
    );
    cfg.pool.timeout = Duration::from_secs(3);
    let shoal = Shoal::start(cfg);
    let m: Vec<&str> = servers.iter().map(String::as_str).collect();
    let ring = shoal_ring::build(shoal_ring::Algorithm::Ketama, &m).unwrap();
    let on = |want: usize| {
        (0..10_000)
            .map(|i| format!("p{i}"))
            .find(|k| shoal_ring::Ring::owner_index(&ring, k.as_bytes()) == Some(want))
            .unwrap()
    };
    let (a, b) = (on(0), on(1));
    let r = shoal.client().call(format!("get {a} {b}\r\n").as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&r),
        format!("VALUE {a} 0 1\r\nx\r\nVALUE {b} 0 1\r\nx\r\nEND\r\n")
    );
    assert_eq!(*arrived.0.lock().unwrap(), 2);
}

/// A memcached stand-in on a loopback port: every key exists with value `x`; a `get` is
/// answered once `arrived` counts two gets (across both servers), or after 10 s.
fn barrier_server(
    arrived: std::sync::Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>,
) -> String {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { return };
                    let mut words = line.split_whitespace();
                    match words.next() {
                        Some("get" | "gets") => {
                            let keys: Vec<&str> = words.collect();
                            let (count, cv) = &*arrived;
                            let mut n = count.lock().unwrap();
                            *n += 1;
                            cv.notify_all();
                            let _ = cv
                                .wait_timeout_while(n, Duration::from_secs(10), |n| *n < 2)
                                .unwrap();
                            let mut out = String::new();
                            for k in keys {
                                out.push_str(&format!("VALUE {k} 0 1\r\nx\r\n"));
                            }
                            out.push_str("END\r\n");
                            let _ = w.write_all(out.as_bytes());
                        }
                        Some("version") => {
                            let _ = w.write_all(b"VERSION 1.6.18\r\n");
                        }
                        _ => {
                            let _ = w.write_all(b"ERROR\r\n");
                        }
                    }
                }
            });
        }
    });
    addr
}
