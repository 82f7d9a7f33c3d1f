//! Gets of many clients merged into one downstream request: each client still gets exactly
//! its own hits, in its key order, with duplicates and misses, against a real memcached;
//! and the per-command counters of `stats proxy` count them.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_memcache::route::Distribution;
use support::Memcached;
use support::shoal::Shoal;

/// Key `i` holds a value only when `i` is even (odd keys are misses).
fn expected(keys: &[usize], cas: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for k in keys.iter().filter(|k| *k % 2 == 0) {
        let v = format!("v{k}");
        out.extend_from_slice(format!("VALUE k{k} {k} {}", v.len()).as_bytes());
        if cas {
            out.extend_from_slice(b" CAS");
        }
        out.extend_from_slice(format!("\r\n{v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"END\r\n");
    out
}

/// `VALUE k f n cas` → `VALUE k f n CAS`.
fn mask_cas(reply: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(reply);
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        let toks: Vec<&str> = line.trim_end().split(' ').collect();
        if toks[0] == "VALUE" && toks.len() == 5 {
            out.push_str(&format!(
                "{} {} {} {} CAS\r\n",
                toks[0], toks[1], toks[2], toks[3]
            ));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

#[test]
fn concurrent_clients_get_their_own_hits_from_merged_gets() {
    let Some(mc) = Memcached::start() else {
        return;
    };
    let mut cfg = ProxyConfig::new(
        "merge",
        Servers::List {
            members: vec![mc.addr()],
            distribution: Distribution::Ketama,
        },
    );
    cfg.pool.conns = 1; // every client's gets share one connection: they do get merged
    let shoal = Shoal::start(cfg);
    let mut setup = shoal.client();
    let mut sets = Vec::new();
    for k in (0..40).step_by(2) {
        sets.extend_from_slice(
            format!("set k{k} {k} 0 {}\r\nv{k}\r\n", format!("v{k}").len()).as_bytes(),
        );
    }
    let stored = setup.call(&sets);
    assert_eq!(stored, b"STORED\r\n".repeat(20));

    let threads: Vec<_> = (0..8)
        .map(|t| {
            let port = shoal.port;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let (mut req, mut want) = (Vec::new(), Vec::new());
                for i in 0..60usize {
                    // single keys, several keys, a key twice, hits and misses
                    let keys: Vec<usize> = match i % 4 {
                        0 => vec![(t + i) % 40],
                        1 => vec![(t * 3 + i) % 40, (i * 7) % 40],
                        2 => vec![i % 40, (i + 1) % 40, i % 40],
                        _ => vec![(t + 2 * i) % 40],
                    };
                    let cas = i % 5 == 0;
                    let names: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
                    let cmd = if cas { "gets" } else { "get" };
                    req.extend_from_slice(format!("{cmd} {}\r\n", names.join(" ")).as_bytes());
                    want.extend(expected(&keys, cas));
                }
                s.write_all(&req).unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut got = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                while Instant::now() < deadline && mask_cas(&got).len() < want.len() {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(e) => panic!("read: {e}"),
                    }
                }
                assert_eq!(
                    String::from_utf8_lossy(&mask_cas(&got)),
                    String::from_utf8_lossy(&want),
                    "client {t}"
                );
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Per-command counters: 8 clients × 60 requests, one in five a `gets`; 20 sets.
    let stats = String::from_utf8_lossy(&setup.call(b"stats proxy\r\n")).into_owned();
    for want in [
        "merge:pstd_stats:cmd_get 384\r\n",
        "merge:pstd_stats:cmd_gets 96\r\n",
        "merge:pstd_stats:cmd_set 20\r\n",
        "merge:pstd_stats:cmd_stats 1\r\n",
        "merge:pstd_stats:cmd_meta 1\r\n", // the `mn` after each call
    ] {
        assert!(stats.contains(want), "no {want:?} in {stats}");
    }
}
