//! NOT_MY_VBUCKET with mock binary servers: moxi's rotation rule, the forward map, and the
//! bounded retry (at most 2 × servers re-sends), seen by a binary client.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shoal_memcache::Protocol;
use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_ring::vbucket_of;
use support::shoal::Shoal;

/// A binary memcached stand-in: answers NOT_MY_VBUCKET (0x07) to everything when `refuse`,
/// else a GET hit whose value names the server. Stops (and joins) on drop.
struct Mock {
    port: u16,
    seen: Arc<AtomicUsize>,
    /// (opcode, vBucket id) of every request but NOOPs, in arrival order.
    heard: Arc<Mutex<Vec<(u8, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn response(opcode: u8, status: u16, opaque: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = vec![0x81, opcode, 0, 0, extras.len() as u8, 0];
    r.extend_from_slice(&status.to_be_bytes());
    r.extend_from_slice(&((extras.len() + value.len()) as u32).to_be_bytes());
    r.extend_from_slice(opaque);
    r.extend_from_slice(&[0; 8]);
    r.extend_from_slice(extras);
    r.extend_from_slice(value);
    r
}

fn serve_conn(
    mut s: TcpStream,
    name: &'static str,
    refuse: bool,
    delay: Duration,
    seen: &AtomicUsize,
    heard: &Mutex<Vec<(u8, u16)>>,
    stop: &AtomicBool,
) {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        while buf.len() >= 24 {
            let body = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
            if buf.len() < 24 + body {
                break;
            }
            let (op, opaque) = (buf[1], buf[12..16].to_vec());
            if op != 0x0a {
                heard
                    .lock()
                    .unwrap()
                    .push((op, u16::from_be_bytes([buf[6], buf[7]])));
            }
            buf.drain(..24 + body);
            if op != 0x0a {
                std::thread::sleep(delay);
            }
            let reply = if op == 0x0a {
                response(op, 0, &opaque, &[], &[]) // NOOP
            } else if refuse {
                seen.fetch_add(1, Ordering::Relaxed);
                response(op, 0x07, &opaque, &[], b"Not my vbucket")
            } else {
                seen.fetch_add(1, Ordering::Relaxed);
                response(op, 0, &opaque, &[0, 0, 0, 0], name.as_bytes())
            };
            if s.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

impl Mock {
    fn start(name: &'static str, refuse: bool) -> Mock {
        Self::start_slow(name, refuse, Duration::ZERO)
    }

    /// A mock that waits `delay` before answering each request.
    fn start_slow(name: &'static str, refuse: bool, delay: Duration) -> Mock {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, heard2, stop2) = (seen.clone(), heard.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let (seen, heard, stop) = (seen2.clone(), heard2.clone(), stop2.clone());
                        conns.push(std::thread::spawn(move || {
                            serve_conn(s, name, refuse, delay, &seen, &heard, &stop)
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Mock {
            port,
            seen,
            heard,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::Relaxed)
    }

    fn heard(&self) -> Vec<(u8, u16)> {
        self.heard.lock().unwrap().clone()
    }
}

/// A binary GET of `key`; returns (status, value).
fn binary_get(port: u16, key: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut req = vec![0x80, 0x00];
    req.extend_from_slice(&(key.len() as u16).to_be_bytes());
    req.extend_from_slice(&[0, 0, 0, 0]);
    req.extend_from_slice(&(key.len() as u32).to_be_bytes());
    req.extend_from_slice(&[0xAB, 0xCD, 0, 1]);
    req.extend_from_slice(&[0; 8]);
    req.extend_from_slice(key);
    s.write_all(&req).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if got.len() >= 24 {
            let body = u32::from_be_bytes([got[8], got[9], got[10], got[11]]) as usize;
            if got.len() >= 24 + body {
                assert_eq!(&got[12..16], &[0xAB, 0xCD, 0, 1], "opaque kept");
                let extras = got[4] as usize;
                let status = u16::from_be_bytes([got[6], got[7]]);
                return (status, got[24 + extras..24 + body].to_vec());
            }
        }
        assert!(Instant::now() < deadline, "no reply: {got:?}");
        match s.read(&mut buf) {
            Ok(0) => panic!("proxy closed the connection"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn proxy(mocks: &[&Mock], map: &str, forward: Option<&str>) -> Shoal {
    proxy_with(mocks, map, forward, Protocol::Ascii)
}

fn proxy_with(mocks: &[&Mock], map: &str, forward: Option<&str>, down: Protocol) -> Shoal {
    proxy_timed(mocks, map, forward, down, Duration::from_secs(2))
}

fn proxy_timed(
    mocks: &[&Mock],
    map: &str,
    forward: Option<&str>,
    down: Protocol,
    timeout: Duration,
) -> Shoal {
    let servers: Vec<String> = mocks
        .iter()
        .map(|m| format!("\"127.0.0.1:{}\"", m.port))
        .collect();
    let fwd = forward
        .map(|f| format!(",\"vBucketMapForward\":{f}"))
        .unwrap_or_default();
    let json = format!(
        "{{\"numReplicas\":0,\"serverList\":[{}],\"vBucketMap\":{map}{fwd}}}",
        servers.join(",")
    );
    let mut cfg = ProxyConfig::new("vb", Servers::VBucket(json));
    cfg.pool.timeout = timeout;
    cfg.downstream = down;
    Shoal::start(cfg)
}

#[test]
fn not_my_vbucket_rotates_to_the_next_server_and_remembers() {
    let (a, b) = (Mock::start("A", true), Mock::start("B", false));
    let shoal = proxy(&[&a, &b], "[[0],[0],[0],[0]]", None);
    assert_eq!(binary_get(shoal.port, b"k1"), (0, b"B".to_vec()));
    assert_eq!((a.seen(), b.seen()), (1, 1), "one refusal, one retry");
    // The map now names B for that vBucket: no second trip to A.
    assert_eq!(binary_get(shoal.port, b"k1"), (0, b"B".to_vec()));
    assert_eq!((a.seen(), b.seen()), (1, 2));
}

#[test]
fn not_my_vbucket_follows_the_forward_map() {
    let (a, b, c) = (
        Mock::start("A", true),
        Mock::start("B", false),
        Mock::start("C", false),
    );
    // Rotation would pick B; the forward map says C.
    let shoal = proxy(&[&a, &b, &c], "[[0],[0]]", Some("[[2],[2]]"));
    assert_eq!(binary_get(shoal.port, b"key"), (0, b"C".to_vec()));
    assert_eq!((a.seen(), b.seen(), c.seen()), (1, 0, 1));
}

#[test]
fn not_my_vbucket_everywhere_gives_up_after_twice_the_servers() {
    let (a, b) = (Mock::start("A", true), Mock::start("B", true));
    let shoal = proxy(&[&a, &b], "[[0],[1]]", None);
    let (status, _) = binary_get(shoal.port, b"k");
    assert_eq!(status, 0x07, "the last refusal is the client's answer");
    // The first try and at most 2 × 2 retries.
    assert_eq!(a.seen() + b.seen(), 5);
    let stats = shoal.client().call(b"stats proxy\r\n");
    let text = String::from_utf8_lossy(&stats);
    assert!(
        text.contains("vb:pstd_stats:tot_retry_vbucket 4\r\n"),
        "{text}"
    );
}

#[test]
fn ascii_clients_over_binary_carry_the_vbucket_and_follow_not_my_vbucket() {
    let (a, b) = (Mock::start("A", true), Mock::start("B", false));
    let shoal = proxy_with(&[&a, &b], "[[0],[0],[0],[0]]", None, Protocol::Binary);
    let mut c = shoal.client();
    // A refuses, B answers: the ascii client sees B's value and never the refusal.
    assert_eq!(
        c.call(b"get k1 k2\r\n"),
        b"VALUE k1 0 1\r\nB\r\nVALUE k2 0 1\r\nB\r\nEND\r\n"
    );
    assert_eq!(c.call(b"set k3 0 0 1\r\nx\r\n"), b"STORED\r\n");
    assert_eq!(
        c.call(b"delete k3\r\ntouch k3 5\r\n"),
        b"DELETED\r\nTOUCHED\r\n"
    );
    // Every request carried its key's vBucket: GETKQ for the gets, then loud retries.
    let (v1, v2, v3) = (
        vbucket_of(b"k1", 4),
        vbucket_of(b"k2", 4),
        vbucket_of(b"k3", 4),
    );
    let heard_a = a.heard();
    assert!(
        heard_a.contains(&(0x0d, v1)) && heard_a.contains(&(0x0d, v2)),
        "{heard_a:?}"
    );
    let heard_b = b.heard();
    for want in [(0x0c, v1), (0x0c, v2), (0x01, v3), (0x04, v3), (0x1c, v3)] {
        assert!(heard_b.contains(&want), "{want:?} not in {heard_b:?}");
    }
    // The map learnt: k1 now goes straight to B, as a quiet get.
    let before = a.seen();
    assert_eq!(c.call(b"get k1\r\n"), b"VALUE k1 0 1\r\nB\r\nEND\r\n");
    assert_eq!(a.seen(), before);
    assert_eq!(b.heard().last(), Some(&(0x0d, v1)));
}

#[test]
fn ascii_clients_over_binary_get_a_server_error_when_every_server_refuses() {
    let (a, b) = (Mock::start("A", true), Mock::start("B", true));
    let shoal = proxy_with(&[&a, &b], "[[0],[1]]", None, Protocol::Binary);
    let mut c = shoal.client();
    assert_eq!(
        c.call(b"set k 0 0 1\r\nx\r\nget k\r\n"),
        b"SERVER_ERROR not my vbucket\r\nSERVER_ERROR not my vbucket\r\n"
    );
    // Each request: the first try and at most 2 x 2 retries.
    assert_eq!(a.seen() + b.seen(), 10);
}

#[test]
fn ascii_clients_over_binary_follow_the_forward_map() {
    let (a, b, c) = (
        Mock::start("A", true),
        Mock::start("B", false),
        Mock::start("C", false),
    );
    // Rotation would pick B; the forward map says C.
    let shoal = proxy_with(
        &[&a, &b, &c],
        "[[0],[0]]",
        Some("[[2],[2]]"),
        Protocol::Binary,
    );
    let mut client = shoal.client();
    assert_eq!(
        client.call(b"get key\r\n"),
        b"VALUE key 0 1\r\nC\r\nEND\r\n"
    );
    assert_eq!(client.call(b"set other 0 0 1\r\nx\r\n"), b"STORED\r\n");
    assert_eq!((a.seen(), b.seen(), c.seen()), (1, 0, 2));
}

/// Refusals that each take most of the request timeout: the retries (up to twice per
/// server) outlast the client connection's own wait for the reply. The binary client must
/// then get a binary error for its request (BUSY, as for a timeout), not the ascii
/// `SERVER_ERROR` line that used to be written into its binary stream.
#[test]
fn slow_refusals_outlasting_the_wait_answer_a_binary_client_in_binary() {
    let a = Mock::start_slow("a", true, Duration::from_millis(700));
    let b = Mock::start_slow("b", true, Duration::from_millis(700));
    let shoal = proxy_timed(
        &[&a, &b],
        "[[0],[0],[0],[0]]",
        None,
        Protocol::Ascii,
        Duration::from_secs(1),
    );
    let t = Instant::now();
    let (status, _) = binary_get(shoal.port, b"k");
    assert_eq!(status, 0x85, "BUSY: the request timed out");
    // The client waits for the connect timeout and twice the request timeout (2.4 s); the
    // five refusals take 3.5 s.
    assert!(
        t.elapsed() < Duration::from_millis(3200),
        "{:?}",
        t.elapsed()
    );
}
