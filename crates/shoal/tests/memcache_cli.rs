//! `shoal memcache` as a process: moxi's `-z`/`-Z` forms with several listeners (and the
//! inline-JSON and `url=` forms), weighted `--servers` against pylibmc's placement, the admin
//! port, SIGHUP reload of a `-z` file, a clear one-line error for a bad config, and
//! `--max-item-size` against memcached `-I 2m`.
#![allow(clippy::unwrap_used)]

#[path = "../../memcache/tests/support/mod.rs"]
mod support;

mod common;
use common::memcache::{http_get, start};

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use support::shoal::Client;
use support::{GoldenColumn, Memcached, free_port, golden_column};

#[test]
fn moxi_forms_two_listeners_behaviours_and_admin() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let (p1, p2, admin) = (free_port(), free_port(), free_port());
    let z = format!("{p1}={};{p2}={},{}", a.addr(), a.addr(), b.addr());
    let admin_addr = format!("127.0.0.1:{admin}");
    let shoal = start(
        &[
            "-z",
            &z,
            "-Z",
            "downstream_timeout=300,connect_timeout=100,downstream_conn_max=2,cycle=200,\
             client_reply_budget=2097152",
            "-t",
            "1",
            "--admin-listen",
            &admin_addr,
        ],
        &[p1, p2, admin],
    );
    let mut c1 = Client::connect(p1);
    assert_eq!(c1.call(b"set k 0 0 2\r\nhi\r\n"), b"STORED\r\n");
    assert_eq!(c1.call(b"get k\r\n"), b"VALUE k 0 2\r\nhi\r\nEND\r\n");
    // The first listener only has server a: the key is there.
    let mut direct = Client::connect(a.port);
    assert_eq!(direct.call(b"get k\r\n"), b"VALUE k 0 2\r\nhi\r\nEND\r\n");
    let mut c2 = Client::connect(p2);
    let stats = String::from_utf8(c2.call(b"stats proxy\r\n")).unwrap();
    assert!(
        stats.contains(&format!("STAT {p2}:behavior:downstream_timeout 300\r\n")),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("STAT {p2}:behavior:downstream_conn_max 2\r\n")),
        "{stats}"
    );
    assert!(
        stats.contains(&format!(
            "STAT {p2}:behavior:client_reply_budget 2097152\r\n"
        )),
        "{stats}"
    );
    let metrics = http_get(admin, "/metrics");
    assert!(metrics.contains("shoal_memcache_server_total"), "{metrics}");
    let status = http_get(admin, "/status");
    assert!(status.contains("\"door\":\"memcache\""), "{status}");
    // Its log went to a file: plain text, no terminal colours.
    let log = std::fs::read_to_string(shoal.1.as_ref().unwrap()).unwrap();
    assert!(log.contains("memcache proxy listening"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log:?}");
}

#[test]
fn sighup_reloads_a_z_file_without_dropping_clients() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("shoal-mc-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.cfg");
    std::fs::write(&file, format!("{port} = {}\n", a.addr())).unwrap();
    let arg = file.to_str().unwrap().to_owned();
    let shoal = start(&["-z", &arg], &[port]);
    let mut c = Client::connect(port);
    assert_eq!(c.call(b"set k 0 0 1\r\na\r\n"), b"STORED\r\n");
    std::fs::write(&file, format!("{port} = {}\n", b.addr())).unwrap();
    let ok = Command::new("kill")
        .args(["-HUP", &shoal.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Same client connection: once the reload is in, `k` is on an empty server.
    while c.call(b"get k\r\n") != b"END\r\n" {
        assert!(Instant::now() < deadline, "reload never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.call(b"set k 0 0 1\r\nb\r\n"), b"STORED\r\n");
    let mut direct = Client::connect(b.port);
    assert_eq!(direct.call(b"get k\r\n"), b"VALUE k 0 1\r\nb\r\nEND\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_is_one_line_and_exits_non_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["memcache", "-z", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("shoal: error: -z"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["memcache", "--servers", "127.0.0.1:1", "--threads", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("shoal: error:"), "{err}");
    assert!(
        err.contains("--threads") && err.contains("1 to 1024"),
        "{err}"
    );
}

/// An HTTP server on a loopback port that answers every GET with `body` (then closes);
/// stopped and joined on drop.
struct HttpBody {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpBody {
    fn start(body: String) -> HttpBody {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(n) if n > 0 => head.extend_from_slice(&b[..n]),
                        _ => break,
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        HttpBody {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HttpBody {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn rest_config_file_with_a_garbage_url_then_a_good_one() {
    let Some(a) = Memcached::start() else {
        return;
    };
    let garbage = HttpBody::start("this is not JSON".into());
    let good = HttpBody::start(format!(
        r#"{{"numReplicas":0,"serverList":["{}"],"vBucketMap":[[0],[0]]}}"#,
        a.addr()
    ));
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("shoal-mc-rest-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rest.cfg");
    let urls = format!(
        "url=http://127.0.0.1:{}/pools/default|http://127.0.0.1:{}/pools/default\n",
        garbage.port, good.port
    );
    std::fs::write(&file, urls).unwrap();
    let behaviours = format!("port_listen={port}");
    let _shoal = start(&["-z", file.to_str().unwrap(), "-Z", &behaviours], &[port]);
    let mut c = Client::connect(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.call(b"set k 0 0 1\r\nr\r\n") != b"STORED\r\n" {
        assert!(
            Instant::now() < deadline,
            "the good URL's config never came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut direct = Client::connect(a.port);
    assert_eq!(direct.call(b"get k\r\n"), b"VALUE k 0 1\r\nr\r\nEND\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--servers h:p:w` on the command line: keys land where libmemcached's weighted ketama
/// (pylibmc, `ketama_weighted`) puts them, per the golden table's `ketama_w112` column, on
/// memcached servers at the column's own addresses.
#[test]
fn weighted_servers_on_the_command_line_place_keys_as_pylibmc_does() {
    let Some(GoldenColumn {
        members,
        servers,
        mut rows,
        ..
    }) = golden_column("ketama_w112")
    else {
        return;
    };
    rows.truncate(400);
    assert_eq!(rows.len(), 400);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let list = members.join(",");
    let _p = start(&["--listen", &listen, "--servers", &list], &[port]);
    let mut c = Client::connect(port);
    for (k, _) in &rows {
        assert_eq!(
            c.call(format!("set {k} 0 0 1\r\nw\r\n").as_bytes()),
            b"STORED\r\n"
        );
    }
    let mut held = [0; 3];
    for (k, owner) in &rows {
        let got = Client::connect(servers[*owner].port).call(format!("get {k}\r\n").as_bytes());
        assert!(
            got.starts_with(b"VALUE "),
            "{k} is not on {} as pylibmc says",
            members[*owner]
        );
        held[*owner] += 1;
    }
    // Weight 2 on the third: it holds about half.
    assert!(held[2] > held[0] && held[2] > held[1], "{held:?}");
}

/// moxi's `-z 'PORT={json}'` (an inline vBucket map) and `-z url=...` (a REST config) given on
/// the command line of a live process.
#[test]
fn inline_json_and_url_forms_of_z_on_the_command_line() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    // Four vBuckets: 0 and 3 on a, 1 and 2 on b.
    let port = free_port();
    let z = format!(
        r#"{port}={{"numReplicas":0,"serverList":["{}","{}"],"vBucketMap":[[0],[1],[1],[0]]}}"#,
        a.addr(),
        b.addr()
    );
    let p = start(&["-z", &z], &[port]);
    let mut c = Client::connect(port);
    let masters = [&a, &b, &b, &a];
    for i in 0..24 {
        let k = format!("vb{i}");
        assert_eq!(
            c.call(format!("set {k} 0 0 1\r\nj\r\n").as_bytes()),
            b"STORED\r\n"
        );
        let owner = masters[usize::from(shoal_ring::vbucket_of(k.as_bytes(), 4))];
        let got = Client::connect(owner.port).call(format!("get {k}\r\n").as_bytes());
        assert_eq!(got, format!("VALUE {k} 0 1\r\nj\r\nEND\r\n").into_bytes());
    }
    drop(p);

    let body = HttpBody::start(format!(
        r#"{{"numReplicas":0,"serverList":["{}"],"vBucketMap":[[0],[0]]}}"#,
        b.addr()
    ));
    let port = free_port();
    let url = format!(
        "url=http://127.0.0.1:{}/pools/default/bucketsStreaming/default",
        body.port
    );
    let _p = start(&["-z", &url, "-Z", &format!("port_listen={port}")], &[port]);
    let mut c = Client::connect(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.call(b"set viaurl 0 0 1\r\nu\r\n") != b"STORED\r\n" {
        assert!(Instant::now() < deadline, "the URL's config never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        Client::connect(b.port).call(b"get viaurl\r\n"),
        b"VALUE viaurl 0 1\r\nu\r\nEND\r\n"
    );
}

/// Answers every `get` line on `s` with `END` until the connection ends.
fn answer_gets(s: std::net::TcpStream) {
    use std::io::{BufRead, BufReader, Write};
    let mut w = s.try_clone().unwrap();
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { return };
        if line.starts_with("get ") && w.write_all(b"END\r\n").is_err() {
            return;
        }
    }
}

/// A server connection that closes just as a request for it comes in: the request, taken by
/// the connection's writer but not written yet, must go out on the next connection. It was
/// dropped with the writer instead (`SERVER_ERROR proxy downstream closed`, no retry) when
/// the close and the request were seen in the same turn, which stopping the proxy while both
/// happen arranges.
#[test]
fn a_request_arriving_as_its_server_connection_closes_goes_out_on_the_next() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap().port();
    let (conns, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { return };
            let _ = conns.send(s.try_clone().unwrap());
            std::thread::spawn(move || answer_gets(s));
        }
    });
    let port = free_port();
    let servers = format!("127.0.0.1:{server}");
    let listen = format!("127.0.0.1:{port}");
    let args = ["--listen", &listen, "--servers", &servers, "--conns", "1"];
    let shoal = start(&[&args[..], &["--threads", "1"]].concat(), &[port]);
    let mut c = Client::connect(port);
    let reply = |c: &mut Client, req: &[u8]| {
        let r = c.call_until(req, Duration::from_secs(5), |r| r.ends_with(b"\r\n"));
        String::from_utf8_lossy(&r).into_owned()
    };
    for round in 0..20 {
        assert_eq!(reply(&mut c, b"get a\r\n"), "END\r\n", "round {round}");
        let conn: std::net::TcpStream = accepted
            .recv_timeout(Duration::from_secs(5))
            .expect("the proxy connected");
        shoal_testkit::signal(&shoal.0, "STOP");
        let _ = conn.shutdown(std::net::Shutdown::Both);
        c.s.write_all(b"get b\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        shoal_testkit::signal(&shoal.0, "CONT");
        assert_eq!(reply(&mut c, b""), "END\r\n", "round {round}: get b");
    }
}

/// Servers started with `memcached -I 2m` store values up to 2 MB. `--max-item-size 2MiB`
/// lets such values through the proxy both ways; with the default (memcached's own 1 MiB) a
/// larger set gets memcached's own refusal from the proxy, and a larger value already on a
/// server is refused as a reply the proxy will not hold, with the connection still usable.
#[test]
fn max_item_size_follows_the_servers_own_limit() {
    let Some(m) = Memcached::start_with(&["-I", "2m"]) else {
        return;
    };
    let value: Vec<u8> = (0..1_500_000).map(|i| b'a' + (i % 26) as u8).collect();
    let mut set = format!("set big 3 0 {}\r\n", value.len()).into_bytes();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    let mut stored = format!("VALUE big 3 {}\r\n", value.len()).into_bytes();
    stored.extend_from_slice(&value);
    stored.extend_from_slice(b"\r\nEND\r\n");
    let ends = |r: &[u8]| r.ends_with(b"\r\n");
    let within = Duration::from_secs(10);

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _default = start(&["--listen", &listen, "--servers", &m.addr()], &[port]);
    let default_port = port;
    let mut c = Client::connect(port);
    assert_eq!(
        String::from_utf8(c.call_until(&set, within, ends)).unwrap(),
        "SERVER_ERROR object too large for cache\r\n"
    );
    assert_eq!(
        c.call(b"version\r\n").len(),
        b"VERSION 1.6.18-shoal\r\n".len()
    );

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _large = start(
        &[
            "--listen",
            &listen,
            "--servers",
            &m.addr(),
            "--max-item-size",
            "2MiB",
        ],
        &[port],
    );
    let mut c = Client::connect(port);
    assert_eq!(c.call_until(&set, within, ends), b"STORED\r\n");
    let got = c.call_until(b"get big\r\n", within, |r| r.ends_with(b"END\r\n"));
    assert!(got == stored, "get through the proxy: {} bytes", got.len());
    let mut c = Client::connect(default_port);
    let got = c.call_until(b"get big\r\n", within, ends);
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "SERVER_ERROR proxy downstream protocol error 127.0.0.1\r\n"
    );
    assert_eq!(
        c.call(b"version\r\n").len(),
        b"VERSION 1.6.18-shoal\r\n".len()
    );

    for bad in ["512", "2GiB"] {
        let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["memcache", "--servers", &m.addr(), "--max-item-size", bad])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("--max-item-size") && err.contains("1KiB to 1GiB"),
            "{err}"
        );
    }
}

/// With `--max-item-size 1GiB`, a set line announcing a 1 GiB value does not make the proxy
/// reserve a gigabyte before the value comes: 40 such connections, a few bytes each, leave
/// its address space (VmSize) within a few hundred MB of where it was.
#[test]
fn announced_large_values_are_not_reserved_before_they_come() {
    use std::io::Write;
    let Some(m) = Memcached::start() else {
        return;
    };
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let p = start(
        &[
            "--listen",
            &listen,
            "--servers",
            &m.addr(),
            "--max-item-size",
            "1GiB",
        ],
        &[port],
    );
    let vm_size_kb = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", p.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap()
    };
    let before = vm_size_kb();
    let conns: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"set big 0 0 1073741824\r\nabc").unwrap();
            s
        })
        .collect();
    // Every connection's line has been read once the proxy answers a fresh client.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        Client::connect(port).call(b"version\r\n").len(),
        b"VERSION 1.6.18-shoal\r\n".len()
    );
    let grown = vm_size_kb().saturating_sub(before);
    assert!(
        grown < 1024 * 1024,
        "address space grew by {grown} kB for {} announced 1 GiB values",
        conns.len()
    );
}
