//! A get that names one key many times (`get k k k ... k`, up to a 1 MiB line) is answered
//! as memcached answers it, one `VALUE` block per mention, without the proxy holding a copy
//! of the value per mention: its peak RSS (`VmHWM`) stays far below the size of the reply.
//! Before, a 1 MiB value named ~500k times made the proxy try to allocate hundreds of GB.
#![allow(clippy::unwrap_used)]

#[path = "../../memcache/tests/support/mod.rs"]
mod support;

mod common;
use common::memcache::{Proc, start};

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::shoal::Client;
use support::{Memcached, free_port};

/// The value's size: under memcached's 1 MiB item limit with its item header counted.
const SIZE: usize = 1_000_000;
/// Mentions of the key in the get: a 600 MB reply.
const MENTIONS: usize = 600;
/// The proxy's peak RSS must stay below this (a copy per mention would be 600 MB).
const MAX_HWM_KB: u64 = 200 * 1024;

fn proxy(servers: &[Memcached], extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let list = servers
        .iter()
        .map(Memcached::addr)
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec!["--listen", &listen, "--servers", &list];
    args.extend_from_slice(extra);
    (start(&args, &[port]), port)
}

/// The peak resident set of process `pid`, in kB.
fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// What a get's reply held: its `VALUE` header lines (in order) and its size in bytes.
#[derive(Debug, Default)]
struct Streamed {
    headers: Vec<String>,
    bytes: u64,
}

/// Sends `req` and reads the reply as it comes, keeping the header lines but not the data:
/// `VALUE` blocks (each data block ending in `\r\n`) and then `END`.
fn get_streaming(port: u16, req: &[u8]) -> Streamed {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(req).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Streamed::default();
    // The line being read, data bytes still to skip, and whether a data block just ended
    // (so that its "\r\n" comes next, as an empty line).
    let mut line: Vec<u8> = Vec::new();
    let mut skip = 0usize;
    let mut after_data = false;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "no END after {} bytes ({} values)",
            got.bytes,
            got.headers.len()
        );
        let n = match s.read(&mut buf) {
            Ok(0) => panic!("closed after {} bytes", got.bytes),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => panic!("read: {e}"),
        };
        got.bytes += n as u64;
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            if skip > 0 {
                let k = skip.min(chunk.len());
                skip -= k;
                chunk = &chunk[k..];
                continue;
            }
            let Some(nl) = chunk.iter().position(|b| *b == b'\n') else {
                line.extend_from_slice(chunk);
                assert!(line.len() < 1024, "no line end: {line:?}");
                break;
            };
            line.extend_from_slice(&chunk[..=nl]);
            chunk = &chunk[nl + 1..];
            let text = String::from_utf8(std::mem::take(&mut line)).unwrap();
            let text = text
                .strip_suffix("\r\n")
                .unwrap_or_else(|| panic!("{text:?}"));
            if std::mem::take(&mut after_data) {
                assert_eq!(text, "", "data block not ended by \\r\\n");
                continue;
            }
            if text == "END" {
                assert!(chunk.is_empty(), "after END: {chunk:?}");
                return got;
            }
            skip = match text.split(' ').collect::<Vec<_>>()[..] {
                ["VALUE", _, _, len] | ["VALUE", _, _, len, _] => len.parse().unwrap(),
                _ => panic!("not a VALUE line: {text:?}"),
            };
            after_data = true;
            got.headers.push(text.to_owned());
        }
    }
}

/// Stores the big value as `key` through the proxy, sends `verb` naming it `MENTIONS` times
/// (with `extra` keys after each mention), and checks the reply and the proxy's peak RSS.
fn repeated_get(shoal: &Proc, port: u16, verb: &str, key: &str, extra: &[String]) -> Vec<String> {
    let mut c = Client::connect(port);
    let mut set = format!("set {key} 7 0 {SIZE}\r\n").into_bytes();
    set.extend(std::iter::repeat_n(b'x', SIZE));
    set.extend_from_slice(b"\r\n");
    assert_eq!(c.call(&set), b"STORED\r\n");
    let mut req = verb.to_owned();
    for i in 0..MENTIONS {
        req.push(' ');
        req.push_str(key);
        if let Some(e) = extra.get(i) {
            req.push(' ');
            req.push_str(e);
        }
    }
    req.push_str("\r\n");
    let got = get_streaming(port, req.as_bytes());
    let hwm = vm_hwm_kb(shoal.0.id());
    eprintln!(
        "{verb}: {} values, {} bytes, proxy VmHWM {hwm} kB",
        got.headers.len(),
        got.bytes
    );
    let values: Vec<String> = got
        .headers
        .into_iter()
        .filter(|h| h.starts_with(&format!("VALUE {key} ")))
        .collect();
    assert_eq!(values.len(), MENTIONS);
    assert!(got.bytes >= (MENTIONS * SIZE) as u64);
    assert!(
        hwm < MAX_HWM_KB,
        "proxy peak RSS {hwm} kB for a {} byte reply",
        got.bytes
    );
    values
}

fn assert_all(headers: &[String], want: &str) {
    assert!(headers.iter().all(|h| h == want), "{:?}", headers.first());
}

#[test]
fn repeated_key_get_on_one_server_keeps_one_copy() {
    let Some(m) = Memcached::start() else { return };
    let (p, port) = proxy(std::slice::from_ref(&m), &[]);
    let headers = repeated_get(&p, port, "get", "big", &[]);
    assert_all(&headers, &format!("VALUE big 7 {SIZE}"));
}

#[test]
fn repeated_key_gets_on_one_server_keeps_one_copy_and_its_cas() {
    let Some(m) = Memcached::start() else { return };
    let (p, port) = proxy(std::slice::from_ref(&m), &[]);
    let headers = repeated_get(&p, port, "gets", "big", &[]);
    let first = headers[0].clone();
    let cas = first.strip_prefix(&format!("VALUE big 7 {SIZE} ")).unwrap();
    assert!(cas.parse::<u64>().is_ok(), "{first}");
    assert_all(&headers, &first);
}

#[test]
fn repeated_key_get_split_over_servers_keeps_one_copy() {
    let Some(servers) = (0..3)
        .map(|_| Memcached::start())
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let (p, port) = proxy(&servers, &[]);
    // Small keys between the mentions: 30 of them land on more than one of three servers.
    let mut c = Client::connect(port);
    let small: Vec<String> = (0..30).map(|i| format!("small{i}")).collect();
    for k in &small {
        assert_eq!(
            c.call(format!("set {k} 0 0 1\r\ns\r\n").as_bytes()),
            b"STORED\r\n"
        );
    }
    let used = servers
        .iter()
        .filter(|m| {
            let mut direct = Client::connect(m.port);
            let stats = String::from_utf8(direct.call(b"stats\r\n")).unwrap();
            !stats.contains("STAT curr_items 0\r\n")
        })
        .count();
    assert!(used >= 2, "the keys are all on one server");
    let headers = repeated_get(&p, port, "get", "big", &small);
    assert_all(&headers, &format!("VALUE big 7 {SIZE}"));
}

#[test]
fn repeated_key_get_over_binary_downstream_keeps_one_copy() {
    let Some(m) = Memcached::start() else { return };
    let (p, port) = proxy(
        std::slice::from_ref(&m),
        &["--downstream-protocol", "binary"],
    );
    let headers = repeated_get(&p, port, "get", "big", &[]);
    assert_all(&headers, &format!("VALUE big 7 {SIZE}"));
}
