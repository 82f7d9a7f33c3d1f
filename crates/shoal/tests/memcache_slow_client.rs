//! A client that pipelines many gets of a large value and does not read its replies must not
//! make the proxy hold them all: the proxy stops taking that client's requests while the
//! replies waiting for it pass a byte budget, as memcached stops reading a connection whose
//! replies it cannot write. Once the client reads, every reply comes, complete and in order.
//! Before, up to 1,024 replies waited per connection whatever their size: 1,000 gets of a
//! 1 MB value made the proxy hold about 1 GB for that one client.
//!
//! The same budget counts requests still out: a client pipelining large `set`s to a server
//! that has stopped reading is no longer read past it either (before, the proxy took 400
//! sets of 1 MB into that server's queue, 400 MB).
#![allow(clippy::unwrap_used)]

#[path = "../../memcache/tests/support/mod.rs"]
mod support;

mod common;
use common::memcache::{Proc, start};

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::shoal::Client;
use support::{Memcached, bin, free_port};

/// The value's size: under memcached's 1 MiB item limit with its item header counted.
const SIZE: usize = 1_000_000;
/// Gets pipelined without reading: 1 GB of replies.
const GETS: usize = 1000;
/// The proxy's peak RSS must stay below this (holding every reply takes about 1 GB).
const MAX_HWM_KB: u64 = 200 * 1024;
/// The flags the value is stored with.
const FLAGS: u32 = 7;

/// A value whose bytes tell where they are, so a reply cut short or out of place shows.
fn value() -> Vec<u8> {
    (0..SIZE).map(|i| b'a' + (i % 23) as u8).collect()
}

fn proxy(m: &Memcached, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let servers = m.addr();
    let mut args = vec!["--listen", &listen, "--servers", &servers];
    args.extend_from_slice(extra);
    (start(&args, &[port]), port)
}

/// A line of `/proc/PID/status` (`VmHWM`, `VmRSS`), in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// memcached's `get_hits`: how many of the gets it has answered.
fn get_hits(m: &Memcached) -> u64 {
    let mut c = Client::connect(m.port);
    let stats = String::from_utf8(c.call(b"stats\r\n")).unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT get_hits "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no get_hits in {stats}"))
}

/// Waits (at most 30 s) until the server has stopped answering gets for a second: either
/// every get was answered or the proxy stopped sending them. Returns the hits so far.
fn until_the_proxy_settles(m: &Memcached, proxy: &Proc) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (get_hits(m), Instant::now());
    while last.0 < GETS as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let hits = get_hits(m);
        if hits != last.0 {
            last = (hits, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    eprintln!(
        "server answered {} gets; proxy VmRSS {} kB, VmHWM {} kB",
        last.0,
        status_kb(proxy.0.id(), "VmRSS"),
        status_kb(proxy.0.id(), "VmHWM")
    );
    last.0
}

/// The replies as they must come: each `GETS` times the same bytes but for a few of each
/// (the binary opaque and CAS), which `variable` names and `check` is given.
struct Expected<'a> {
    reply: &'a [u8],
    variable: std::ops::Range<usize>,
    check: &'a mut dyn FnMut(usize, &[u8]),
}

/// Reads everything `GETS` replies hold (at most 60 s) and compares it as it comes.
fn read_all(s: &mut TcpStream, e: Expected<'_>) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut replies, mut at) = (0usize, 0usize);
    let mut variable = vec![0u8; e.variable.len()];
    let mut buf = vec![0u8; 256 * 1024];
    while replies < GETS {
        assert!(
            Instant::now() < deadline,
            "only {replies} replies (and {at} bytes) in 60 s"
        );
        let n = match s.read(&mut buf) {
            Ok(0) => panic!("closed after {replies} replies"),
            Ok(n) => n,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(err) => panic!("read: {err}"),
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            assert!(replies < GETS, "more than {GETS} replies");
            let k = chunk.len().min(e.reply.len() - at);
            let (got, rest) = chunk.split_at(k);
            // This chunk holds bytes at..at + k of the reply: compare them but for the
            // variable ones, which are kept for `check`.
            let part = |lo: usize, hi: usize| (lo.max(at), hi.min(at + k));
            let (v0, v1) = (e.variable.start, e.variable.end);
            for (lo, hi) in [part(0, v0), part(v1, e.reply.len())] {
                assert!(
                    lo >= hi || got[lo - at..hi - at] == e.reply[lo..hi],
                    "reply {replies} differs in bytes {lo}..{hi}: {:?}",
                    String::from_utf8_lossy(&got[lo - at..(hi - at).min(lo - at + 60)])
                );
            }
            let (lo, hi) = part(v0, v1);
            if lo < hi {
                variable[lo - v0..hi - v0].copy_from_slice(&got[lo - at..hi - at]);
            }
            at += k;
            chunk = rest;
            if at == e.reply.len() {
                (e.check)(replies, &variable);
                replies += 1;
                at = 0;
            }
        }
    }
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    match s.read(&mut buf) {
        Ok(n) if n > 0 => panic!("{n} bytes after the last reply"),
        _ => {}
    }
}

/// Sends `pipeline` (`GETS` gets of the value) without reading, checks that the proxy held
/// far less than the replies, then reads them all.
fn pipeline_without_reading(m: &Memcached, shoal: &Proc, port: u16, pipeline: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(pipeline).unwrap();
    let hits = until_the_proxy_settles(m, shoal);
    let hwm = status_kb(shoal.0.id(), "VmHWM");
    assert!(
        hwm < MAX_HWM_KB,
        "proxy peak RSS {hwm} kB with a client not reading {GETS} replies of {SIZE} bytes \
         ({hits} answered by the server)"
    );
    s
}

fn set_value(port: u16, value: &[u8]) {
    let mut c = Client::connect(port);
    let mut set = format!("set big {FLAGS} 0 {SIZE}\r\n").into_bytes();
    set.extend_from_slice(value);
    set.extend_from_slice(b"\r\n");
    assert_eq!(c.call(&set), b"STORED\r\n");
}

#[test]
fn ascii_gets_of_a_client_that_does_not_read_stay_within_the_reply_budget() {
    let Some(m) = Memcached::start() else { return };
    let (shoal, port) = proxy(&m, &[]);
    let value = value();
    set_value(port, &value);
    let mut s = pipeline_without_reading(&m, &shoal, port, &b"get big\r\n".repeat(GETS));
    let mut reply = format!("VALUE big {FLAGS} {SIZE}\r\n").into_bytes();
    reply.extend_from_slice(&value);
    reply.extend_from_slice(b"\r\nEND\r\n");
    read_all(
        &mut s,
        Expected {
            reply: &reply,
            variable: 0..0,
            check: &mut |_, _| {},
        },
    );
    let hwm = status_kb(shoal.0.id(), "VmHWM");
    eprintln!("after reading every reply: proxy VmHWM {hwm} kB");
    assert!(hwm < MAX_HWM_KB, "proxy peak RSS {hwm} kB");
}

#[test]
fn binary_gets_of_a_client_that_does_not_read_stay_within_the_reply_budget() {
    const GET: u8 = 0x00;
    let Some(m) = Memcached::start() else { return };
    let (shoal, port) = proxy(&m, &["--client-reply-budget", "4MiB"]);
    let stats = String::from_utf8(Client::connect(port).call(b"stats proxy\r\n")).unwrap();
    let want = format!("STAT {port}:behavior:client_reply_budget {}\r\n", 4 << 20);
    assert!(stats.contains(&want), "{stats}");
    let value = value();
    set_value(port, &value);
    let pipeline: Vec<u8> = (0..GETS as u32)
        .flat_map(|i| bin::req(GET, i, 0, &[], b"big", &[]))
        .collect();
    let mut s = pipeline_without_reading(&m, &shoal, port, &pipeline);
    // A GET's response: the header (opaque at 12..16, CAS at 16..24), the flags, the value.
    let mut reply = vec![0x81, GET, 0, 0, 4, 0, 0, 0];
    reply.extend_from_slice(&((4 + SIZE) as u32).to_be_bytes());
    reply.extend_from_slice(&[0; 12]);
    reply.extend_from_slice(&FLAGS.to_be_bytes());
    reply.extend_from_slice(&value);
    let mut cas = None;
    read_all(
        &mut s,
        Expected {
            reply: &reply,
            variable: 12..24,
            check: &mut |i, opaque_cas| {
                let opaque = u32::from_be_bytes(opaque_cas[..4].try_into().unwrap());
                assert_eq!(opaque as usize, i, "replies out of order");
                assert_eq!(
                    *cas.get_or_insert(opaque_cas[4..].to_vec()),
                    &opaque_cas[4..]
                );
            },
        },
    );
    let hwm = status_kb(shoal.0.id(), "VmHWM");
    eprintln!("after reading every reply: proxy VmHWM {hwm} kB");
    assert!(hwm < MAX_HWM_KB, "proxy peak RSS {hwm} kB");
}

/// Sets pipelined to a stopped server: 400 MB.
const SETS: usize = 400;

/// Waits (at most 30 s) until the proxy's peak RSS has not grown for a second; returns it.
fn until_the_peak_settles(proxy: &Proc) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (status_kb(proxy.0.id(), "VmHWM"), Instant::now());
    while Instant::now() < deadline && last.1.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(100));
        let hwm = status_kb(proxy.0.id(), "VmHWM");
        if hwm > last.0 + 1024 {
            last = (hwm, Instant::now());
        }
    }
    last.0
}

#[test]
fn sets_pipelined_to_a_server_that_stopped_reading_stay_within_the_budget() {
    let Some(m) = Memcached::start() else { return };
    let (shoal, port) = proxy(&m, &["--timeout", "60s"]);
    let value = value();
    let mut set = format!("set big {FLAGS} 0 {SIZE}\r\n").into_bytes();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    m.pause(true);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = s.try_clone().unwrap();
    // The proxy stops reading this client: its writes block until the server is back.
    let writer = std::thread::spawn(move || {
        for _ in 0..SETS {
            w.write_all(&set).unwrap();
        }
    });
    let hwm = until_the_peak_settles(&shoal);
    eprintln!("server stopped: proxy VmHWM {hwm} kB");
    m.pause(false);
    assert!(
        hwm < MAX_HWM_KB,
        "proxy peak RSS {hwm} kB with a client pipelining {SETS} sets of {SIZE} bytes to a \
         stopped server"
    );
    // Every set is then stored, and answered in order.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut replies = vec![0u8; SETS * b"STORED\r\n".len()];
    s.read_exact(&mut replies).unwrap();
    assert_eq!(replies, b"STORED\r\n".repeat(SETS));
    writer.join().unwrap();
    let mut c = Client::connect(m.port);
    let mut stored = format!("VALUE big {FLAGS} {SIZE}\r\n").into_bytes();
    stored.extend_from_slice(&value);
    stored.extend_from_slice(b"\r\nEND\r\n");
    assert!(c.call(b"get big\r\n") == stored, "the value stored differs");
    let mut stats = Client::connect(m.port);
    let text = String::from_utf8(stats.call(b"stats\r\n")).unwrap();
    assert!(
        text.contains(&format!("STAT cmd_set {SETS}\r\n")),
        "the server did not run exactly {SETS} sets: {text}"
    );
}
