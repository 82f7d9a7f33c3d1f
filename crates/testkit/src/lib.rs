//! Helpers shared by shoal's test suites.
//!
//! [`free_port`] hands out loopback ports for processes the tests start (nginx, memcached,
//! etcd, shoal nodes), which must be told their port before they bind it. Asking the kernel
//! for port 0 and releasing it leaves a window in which any other socket bound to port 0, or
//! any outgoing connection, may be given the same port: the child then fails to bind, or a
//! readiness probe reaches the wrong listener (a CI run failed that way). So ports come from
//! below the kernel's ephemeral range, where neither kind of socket is ever placed, and one
//! test process never hands out the same port twice.

pub mod webdav;

/// Sends the signal `name` (`TERM`, `HUP`, `STOP`, `CONT`, ...) to `child`, with kill(1): the
/// workspace forbids the `unsafe` a direct kill(2) would need.
///
/// # Panics
/// When the signal cannot be sent.
pub fn signal(child: &std::process::Child, name: &str) {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lowest port handed out.
const LOW: u16 = 20_000;

/// A loopback port that is free for TCP and UDP now, outside the kernel's ephemeral range,
/// and not handed out before by this process. Falls back to a kernel-chosen port when the
/// ephemeral range leaves no room below it.
///
/// # Panics
/// When no port is free at all.
#[allow(clippy::expect_used)]
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let high = ephemeral_start();
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    if high <= LOW + 1000 {
        return kernel_port(given);
    }
    let span = u32::from(high - LOW);
    // Different test processes start at different places, so they rarely probe the same ports.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..span {
        let port = LOW + (seed.wrapping_add(i) % span) as u16;
        if !given.contains(&port) && free_for_both(port) {
            given.insert(port);
            return port;
        }
    }
    kernel_port(given)
}

/// Whether `GET path` over HTTP/1.0 on `addr` answers with exactly `body` (any status):
/// false when nothing listens, or something else does.
pub fn answers(addr: SocketAddr, path: &str, body: &str) -> bool {
    raw_get(addr, path).is_some_and(|r| r.ends_with(format!("\r\n\r\n{body}").as_bytes()))
}

/// Whether `GET path` over HTTP/1.0 on `addr` answers 200: false when nothing listens, or
/// what listens does not speak HTTP.
pub fn answers_ok(addr: SocketAddr, path: &str) -> bool {
    raw_get(addr, path)
        .is_some_and(|r| r.starts_with(b"HTTP/1.1 200 ") || r.starts_with(b"HTTP/1.0 200 "))
}

/// The whole reply to `GET path` over HTTP/1.0 (200 ms to connect, 2 s to answer).
fn raw_get(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    write!(s, "GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").ok()?;
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    Some(reply)
}

/// A loopback address where TCP connects hang, as to a host that drops packets: a listener
/// with a backlog of 0 that never accepts, its one queue slot taken. The kernel drops further
/// SYNs, so a connect there ends only by the connecting side's timeout.
#[derive(Debug)]
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

impl Blackhole {
    /// # Panics
    /// When the listener cannot be made, or the kernel keeps accepting connections into it.
    #[allow(clippy::expect_used)]
    pub fn start() -> Blackhole {
        use socket2::{Domain, Socket, Type};
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        l.listen(0).expect("listen");
        let addr = l
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("a loopback address");
        let mut queued = Vec::new();
        for _ in 0..8 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(c) => queued.push(c),
                Err(_) => {
                    return Blackhole {
                        addr,
                        _listener: l,
                        _queued: queued,
                    };
                }
            }
        }
        panic!("a listener with a backlog of 0 took 8 connections: connects to it never hang");
    }
}

fn free_for_both(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[allow(clippy::expect_used)]
fn kernel_port(given: &mut HashSet<u16>) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no loopback port is free")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// The first port of `ip_local_port_range` (32768 when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_to_a_blackhole_time_out() {
        let b = Blackhole::start();
        let e = TcpStream::connect_timeout(&b.addr, Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    }

    #[test]
    fn answers_tells_the_expected_server_from_others() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = [0u8; 256];
                let _ = c.read(&mut buf);
                c.write_all(b"HTTP/1.0 200 OK\r\n\r\nid-1").unwrap();
            }
        });
        assert!(answers(addr, "/id", "id-1"));
        assert!(!answers(addr, "/id", "id-2"));
        server.join().unwrap();
        let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
        assert!(!answers(closed, "/id", "id-1"));
    }

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        if ephemeral_start() > LOW + 1000 {
            assert!(ports.iter().all(|&p| (LOW..ephemeral_start()).contains(&p)));
        }
        // Each can still be bound (nothing took it).
        for p in ports {
            assert!(free_for_both(p), "{p}");
        }
    }
}
