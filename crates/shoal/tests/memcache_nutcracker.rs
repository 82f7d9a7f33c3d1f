//! `shoal memcache` in twemproxy's place: `--nutcracker nutcracker.yml` against the real
//! nutcracker 0.5.0 on the same file and the same memcached servers (every key must land on
//! the server nutcracker put it on), `--hash`/`--hash-tag` against nutcracker's golden column,
//! SIGHUP re-reading the yml (and refusing a changed set of pools), the configs both
//! refuse, each with the pool and the problem named, and the stats port (`--stats-port`)
//! against nutcracker's own for the same requests.
#![allow(clippy::unwrap_used)]

#[path = "../../memcache/tests/support/mod.rs"]
mod support;

mod common;
use common::memcache::{Proc, http_get, spawn_listening, start};

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::shoal::Client;
use support::{GoldenColumn, Memcached, free_port, golden_column};

const NUTCRACKER: &str = "/usr/sbin/nutcracker";

/// Whether nutcracker is installed; says loudly when it is not (and fails under `CI=true`).
fn nutcracker_available() -> bool {
    if Path::new(NUTCRACKER).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{NUTCRACKER} is missing: run scripts/install-deps (it installs nutcracker)");
    }
    eprintln!(
        "\n!!! SKIPPED: {NUTCRACKER} is not installed, so shoal was NOT compared with the real \
         twemproxy. Run scripts/install-deps. !!!\n"
    );
    false
}

/// A real nutcracker on `file`, its stats port on loopback too; killed on drop.
fn nutcracker(file: &Path, dir: &Path, ports: &[u16]) -> Proc {
    nutcracker_with_stats(file, dir, ports, free_port())
}

/// A real nutcracker on `file` with its stats on `127.0.0.1:stats`, refreshed every 100 ms.
fn nutcracker_with_stats(file: &Path, dir: &Path, ports: &[u16], stats: u16) -> Proc {
    let mut cmd = Command::new(NUTCRACKER);
    cmd.arg("-c")
        .arg(file)
        .args([
            "-a",
            "127.0.0.1",
            "-s",
            &stats.to_string(),
            "-v",
            "4",
            "-i",
            "100",
        ])
        .arg("-o")
        .arg(dir.join("nutcracker.log"))
        .arg("-p")
        .arg(dir.join("nutcracker.pid"))
        .stderr(Stdio::null());
    let log = dir.join("nutcracker.log");
    spawn_listening(cmd, ports, || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        format!("nutcracker ({log})")
    })
}

/// `set KEY 0 0 1` for every key on one connection, pipelined (nutcracker has no `mn`), and
/// every reply read: each must be `STORED`.
fn set_all(port: u16, keys: &[String], value: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut req = String::new();
    for k in keys {
        req.push_str(&format!("set {k} 0 0 {}\r\n{value}\r\n", value.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let want = "STORED\r\n".repeat(keys.len());
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < want.len() && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading replies on {port}: {e}"),
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        want,
        "sets through port {port}"
    );
}

/// For each key, the index of the one server in `servers` holding it (asked directly).
fn where_are(servers: &[Memcached], keys: &[String]) -> Vec<usize> {
    let mut at = vec![usize::MAX; keys.len()];
    for (i, m) in servers.iter().enumerate() {
        let mut c = Client::connect(m.port);
        for (chunk_no, chunk) in keys.chunks(20).enumerate() {
            let reply = c.call(format!("get {}\r\n", chunk.join(" ")).as_bytes());
            let reply = String::from_utf8(reply).unwrap();
            for line in reply.lines().filter(|l| l.starts_with("VALUE ")) {
                let key = line.split(' ').nth(1).unwrap();
                let k = chunk_no * 20 + chunk.iter().position(|c| c == key).unwrap();
                assert_eq!(at[k], usize::MAX, "{key} is on two servers");
                at[k] = i;
            }
        }
    }
    for (k, a) in keys.iter().zip(&at) {
        assert_ne!(*a, usize::MAX, "{k} is on no server");
    }
    at
}

fn flush(servers: &[Memcached]) {
    for m in servers {
        assert_eq!(Client::connect(m.port).call(b"flush_all\r\n"), b"OK\r\n");
    }
}

/// Two pools on three memcached servers: `alpha` fnv1a_64 + ketama + `hash_tag: "{}"` with
/// unequal weights, `beta` murmur + modula with named servers (whose names sort in the reverse
/// of the list), with the keys nutcracker and shoal both know and ignore.
fn two_pools(alpha: u16, beta: u16, m: &[Memcached]) -> String {
    format!(
        "alpha:
  listen: 127.0.0.1:{alpha}
  hash: fnv1a_64
  hash_tag: \"{{}}\"
  distribution: ketama
  auto_eject_hosts: false
  timeout: 2000
  server_retry_timeout: 30000
  server_failure_limit: 2
  servers:
   - {a}:1
   - {b}:1
   - {c}:2
beta:
  listen: 127.0.0.1:{beta}
  hash: murmur
  distribution: modula
  redis: false
  preconnect: false
  server_connections: 2
  backlog: 128
  servers:
   - {a}:1 zeta
   - {b}:2 eta
   - {c}:1 theta
",
        a = m[0].addr(),
        b = m[1].addr(),
        c = m[2].addr()
    )
}

/// Keys with and without hash tags (several keys per tag). Untagged keys differ in their
/// first bytes: nutcracker's fnv1a_64 (a 32-bit FNV with the 64-bit prime cut to 0x1b3)
/// spreads keys that differ only in their last bytes over a small arc of the continuum.
fn keys(prefix: &str) -> Vec<String> {
    (0..300)
        .map(|i| match i % 3 {
            0 => format!("{i}:{prefix}:plain"),
            1 => format!("{prefix}:user:{{{}}}:{i}", i % 23),
            _ => format!("{{{prefix}{}}}.{i}", i % 7),
        })
        .collect()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-twem-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn nutcracker_yml_places_every_key_where_the_real_nutcracker_does() {
    if !Memcached::available() || !nutcracker_available() {
        return;
    }
    let servers: Vec<Memcached> = (0..3).map(|_| Memcached::start().unwrap()).collect();
    let dir = temp_dir("diff");
    let (alpha_keys, beta_keys) = (keys("a"), keys("b"));

    // shoal, with the admin port and one worker thread.
    let (sa, sb, admin) = (free_port(), free_port(), free_port());
    let file = dir.join("shoal.yml");
    std::fs::write(&file, two_pools(sa, sb, &servers)).unwrap();
    let admin_addr = format!("127.0.0.1:{admin}");
    let shoal = start(
        &[
            "--nutcracker",
            file.to_str().unwrap(),
            "--admin-listen",
            &admin_addr,
            "--threads",
            "1",
        ],
        &[sa, sb, admin],
    );
    set_all(sa, &alpha_keys, "s");
    set_all(sb, &beta_keys, "s");
    let shoal_alpha = where_are(&servers, &alpha_keys);
    let shoal_beta = where_are(&servers, &beta_keys);
    // Pool names are the listeners' names.
    let stats = String::from_utf8(Client::connect(sa).call(b"stats proxy\r\n")).unwrap();
    for line in [
        "STAT alpha:info:distribution ketama\r\n",
        "STAT alpha:info:hash fnv1a_64\r\n",
        "STAT alpha:info:hash_tag {}\r\n",
        "STAT alpha:behavior:downstream_timeout 2000\r\n",
        "STAT alpha:behavior:downstream_conn_max 1\r\n",
        "STAT alpha:behavior:connect_max_errors 2\r\n",
    ] {
        assert!(stats.contains(line), "{line:?} not in {stats}");
    }
    let stats = String::from_utf8(Client::connect(sb).call(b"stats proxy\r\n")).unwrap();
    assert!(stats.contains("STAT beta:info:hash murmur\r\n"), "{stats}");
    assert!(
        stats.contains("STAT beta:behavior:downstream_conn_max 2\r\n"),
        "{stats}"
    );
    let metrics = http_get(admin, "/metrics");
    assert!(metrics.contains("proxy=\"beta\""), "{metrics}");
    drop(shoal);
    flush(&servers);

    // The real nutcracker, on the same file with its own ports.
    let (na, nb) = (free_port(), free_port());
    let file = dir.join("nutcracker.yml");
    std::fs::write(&file, two_pools(na, nb, &servers)).unwrap();
    let nc = nutcracker(&file, &dir, &[na, nb]);
    set_all(na, &alpha_keys, "n");
    set_all(nb, &beta_keys, "n");
    let nc_alpha = where_are(&servers, &alpha_keys);
    let nc_beta = where_are(&servers, &beta_keys);
    drop(nc);

    for (name, keys, shoal, nc) in [
        ("alpha", &alpha_keys, &shoal_alpha, &nc_alpha),
        ("beta", &beta_keys, &shoal_beta, &nc_beta),
    ] {
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                shoal[i], nc[i],
                "{name}: {k} went to server {} through shoal, {} through nutcracker",
                shoal[i], nc[i]
            );
        }
        // Every server got keys: the comparison covers them all.
        for s in 0..3 {
            assert!(nc.iter().filter(|x| **x == s).count() > 5, "{name}: {nc:?}");
        }
    }
    // The tag places keys: every key of one tag on one server.
    let tagged: Vec<usize> = (0..alpha_keys.len())
        .filter(|i| alpha_keys[*i].starts_with("a:user:{5}:"))
        .map(|i| shoal_alpha[i])
        .collect();
    assert!(tagged.len() > 3 && tagged.iter().all(|s| *s == tagged[0]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--servers` with twemproxy's server lines, `--hash murmur --hash-tag {} --distribution
/// modula`: keys land where nutcracker put them in the golden table's
/// `twem_modula_tag_murmur_w112` column, on memcached servers at the column's own addresses.
#[test]
fn hash_flags_place_keys_as_nutcracker_did() {
    let Some(GoldenColumn {
        header,
        members,
        servers,
        rows,
    }) = golden_column("twem_modula_tag_murmur_w112")
    else {
        return;
    };
    assert!(header.contains("\tmodula-twemproxy/hash=murmur/hash_tag={}\t"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let list = members.join(",");
    let args = [
        "--listen",
        &listen,
        "--servers",
        &list,
        "--distribution",
        "modula",
    ];
    let _p = start(
        &[&args[..], &["--hash", "murmur", "--hash-tag", "{}"]].concat(),
        &[port],
    );
    let keys: Vec<String> = rows.iter().map(|(k, _)| (*k).to_owned()).collect();
    set_all(port, &keys, "h");
    let got = where_are(&servers, &keys);
    let mut tagged = 0;
    for ((k, owner), got) in rows.iter().zip(&got) {
        assert_eq!(
            owner, got,
            "{k} is on {} not {}",
            members[*got], members[*owner]
        );
        tagged += usize::from(shoal_ring::twemproxy_hash_tag(k.as_bytes(), *b"{}") != k.as_bytes());
    }
    assert!(tagged > 100, "only {tagged} keys have a tag");
}

/// SIGHUP re-reads the yml (nutcracker cannot): a pool's new servers take its keys on the same
/// client connection; a file whose pools changed is refused, logged, and the old config stays.
#[test]
fn sighup_rereads_the_nutcracker_yml_and_keeps_its_pools() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let dir = temp_dir("hup");
    let file = dir.join("nutcracker.yml");
    let port = free_port();
    let pool = |name: &str, port: u16, server: &Memcached| {
        format!(
            "{name}:\n  listen: 127.0.0.1:{port}\n  hash: md5\n  servers:\n   - {}:1\n",
            server.addr()
        )
    };
    std::fs::write(&file, pool("one", port, &a)).unwrap();
    let log = dir.join("stderr.log");
    let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["memcache", "--nutcracker", file.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let shoal = Proc::new(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "shoal did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Client::connect(port);
    assert_eq!(c.call(b"set k 0 0 1\r\na\r\n"), b"STORED\r\n");
    assert_eq!(
        Client::connect(a.port).call(b"get k\r\n"),
        b"VALUE k 0 1\r\na\r\nEND\r\n"
    );

    std::fs::write(&file, pool("one", port, &b)).unwrap();
    shoal_testkit::signal(&shoal.0, "HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.call(b"get k\r\n") != b"END\r\n" {
        assert!(Instant::now() < deadline, "reload never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.call(b"set k 0 0 1\r\nb\r\n"), b"STORED\r\n");
    assert_eq!(
        Client::connect(b.port).call(b"get k\r\n"),
        b"VALUE k 0 1\r\nb\r\nEND\r\n"
    );

    // A second pool: refused (its port would not be listened on), and pool one keeps b.
    let more = format!("{}{}", pool("one", port, &a), pool("two", free_port(), &a));
    std::fs::write(&file, more).unwrap();
    shoal_testkit::signal(&shoal.0, "HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("reload refused")
    {
        assert!(Instant::now() < deadline, "no refusal logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("one@127.0.0.1:{port}, two@")),
        "{logged}"
    );
    assert_eq!(c.call(b"get k\r\n"), b"VALUE k 0 1\r\nb\r\nEND\r\n");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the real nutcracker says of `file` with `-t` (test the configuration and exit).
fn nutcracker_accepts(file: &Path) -> bool {
    Command::new(NUTCRACKER)
        .arg("-t")
        .arg("-c")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn bad_nutcracker_configs_name_the_pool_and_the_problem() {
    let dir = temp_dir("bad");
    let file = dir.join("nutcracker.yml");
    let good = "  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:11211:1\n";
    // (the pool's extra lines, what the error says, whether nutcracker 0.5.0 refuses it too)
    let cases = [
        ("  bogus: 1\n", "unknown key \"bogus\"", true),
        ("  redis: true\n", "redis: true is not supported", false),
        (
            "  distribution: random\n",
            "distribution random is not supported",
            false,
        ),
        ("  hash: fnv1a\n", "unknown twemproxy hash \"fnv1a\"", true),
        (
            "  hash_tag: \"{\"\n",
            "hash_tag \"{\" must be exactly two characters",
            true,
        ),
        (
            "  hash_tag: \"<<>\"\n",
            "must be exactly two characters",
            true,
        ),
        ("  timeout: -1\n", "timeout \"-1\" is not a number", true),
        (
            "  redis_auth: secret\n",
            "redis_auth is only valid for a redis pool",
            true,
        ),
    ];
    let nc = nutcracker_available();
    for (extra, says, nc_refuses) in cases {
        std::fs::write(&file, format!("pool_x:\n{extra}{good}")).unwrap();
        let err = refused(&["--nutcracker", file.to_str().unwrap()]);
        assert!(
            err.contains("pool \"pool_x\"") && err.contains(says),
            "{extra:?}: {err}"
        );
        if nc {
            assert_eq!(
                nutcracker_accepts(&file),
                !nc_refuses,
                "nutcracker on {extra:?}"
            );
        }
    }
    std::fs::write(
        &file,
        "pool_x:\n  listen: /tmp/shoal-x.sock 0777\n  servers:\n   - 127.0.0.1:11211:1\n",
    )
    .unwrap();
    let err = refused(&["--nutcracker", file.to_str().unwrap()]);
    assert!(
        err.contains("pool \"pool_x\"") && err.contains("unix socket listeners are not supported"),
        "{err}"
    );
    // Flags that a pool sets for itself do not combine with --nutcracker.
    std::fs::write(&file, format!("pool_x:\n{good}")).unwrap();
    let err = refused(&["--nutcracker", file.to_str().unwrap(), "--conns", "2"]);
    assert!(
        err.contains("--conns") && err.contains("server_connections"),
        "{err}"
    );
    // --hash and --hash-tag on the command line.
    let servers = ["--servers", "127.0.0.1:1:1"];
    let err = refused(&[&servers[..], &["--hash", "FNV1A_64"]].concat());
    assert!(
        err.contains("--hash") && err.contains("fnv1a_64, fnv1_32"),
        "{err}"
    );
    let err = refused(&[&servers[..], &["--hash-tag", "{"]].concat());
    assert!(
        err.contains("--hash-tag") && err.contains("exactly two bytes"),
        "{err}"
    );
    let err = refused(
        &[
            &servers[..],
            &["--hash", "md5", "--distribution", "ketama-compat"],
        ]
        .concat(),
    );
    assert!(
        err.contains("ketama and modula, not ketama-compat"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `shoal memcache ARGS`, which must fail at once with one `shoal: error:` line (one
/// that starts serving instead is killed after 10 s).
fn refused(args: &[&str]) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("memcache")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc::new(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} was accepted: shoal is serving"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{args:?} was accepted");
    let mut err = String::new();
    p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.starts_with("shoal: error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

/// The JSON object a stats port writes before it closes.
fn stats_json(port: u16) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// On one connection to `port`: for every key, a set, then a get, each answered before the
/// next; then a get of a key nobody set. Returns the connection (still open).
fn set_then_get_each(port: u16, keys: &[String]) -> Client {
    let mut c = Client::connect(port);
    for k in keys {
        let set = format!("set {k} 0 0 5\r\nhello\r\n");
        assert_eq!(
            c.call_until(set.as_bytes(), Duration::from_secs(5), |r| r
                .ends_with(b"\r\n")),
            b"STORED\r\n"
        );
        let get = format!("get {k}\r\n");
        let want = format!("VALUE {k} 0 5\r\nhello\r\nEND\r\n");
        assert_eq!(
            c.call_until(get.as_bytes(), Duration::from_secs(5), |r| r
                .ends_with(b"END\r\n")),
            want.as_bytes()
        );
    }
    let none = c.call_until(b"get nobody-set-this\r\n", Duration::from_secs(5), |r| {
        r.ends_with(b"END\r\n")
    });
    assert_eq!(none, b"END\r\n");
    c
}

/// The sorted keys of a JSON object.
fn keys_of(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// Total `requests` over every server of every pool.
fn total_requests(v: &serde_json::Value) -> u64 {
    v.as_object()
        .unwrap()
        .values()
        .filter_map(serde_json::Value::as_object)
        .flat_map(|pool| pool.values().filter_map(|s| s.get("requests")?.as_u64()))
        .sum()
}

#[test]
fn the_stats_port_reports_what_nutcracker_reports_for_the_same_requests() {
    if !Memcached::available() || !nutcracker_available() {
        return;
    }
    let servers: Vec<Memcached> = (0..3).map(|_| Memcached::start().unwrap()).collect();
    let dir = temp_dir("stats");
    let (alpha_keys, beta_keys): (Vec<String>, Vec<String>) = (
        (0..40).map(|i| format!("{i}:stats:a")).collect(),
        (0..30).map(|i| format!("{i}:stats:b")).collect(),
    );
    // Each pool: a set and a get per key, and one get that misses.
    let expected = 2 * (alpha_keys.len() + beta_keys.len()) as u64 + 2;

    let (na, nb, ns) = (free_port(), free_port(), free_port());
    let file = dir.join("nutcracker.yml");
    std::fs::write(&file, two_pools(na, nb, &servers)).unwrap();
    let _nc = nutcracker_with_stats(&file, &dir, &[na, nb], ns);
    let _nc_clients = (
        set_then_get_each(na, &alpha_keys),
        set_then_get_each(nb, &beta_keys),
    );
    // nutcracker publishes its counters every stats interval (100 ms here).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut theirs = stats_json(ns);
    while total_requests(&theirs) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        theirs = stats_json(ns);
    }

    let (sa, sb, ss) = (free_port(), free_port(), free_port());
    let file = dir.join("shoal.yml");
    std::fs::write(&file, two_pools(sa, sb, &servers)).unwrap();
    let stats_port = ss.to_string();
    let _shoal = start(
        &[
            "--nutcracker",
            file.to_str().unwrap(),
            "--stats-port",
            &stats_port,
            "--stats-addr",
            "127.0.0.1",
        ],
        &[sa, sb, ss],
    );
    let _shoal_clients = (
        set_then_get_each(sa, &alpha_keys),
        set_then_get_each(sb, &beta_keys),
    );
    let ours = stats_json(ss);

    assert_eq!(total_requests(&theirs), expected, "nutcracker: {theirs}");
    assert_eq!(ours["service"], "nutcracker");
    assert_eq!(ours["version"], "0.5.0-shoal");
    assert_eq!(keys_of(&ours), keys_of(&theirs), "top level");
    for pool in ["alpha", "beta"] {
        let (o, t) = (&ours[pool], &theirs[pool]);
        assert_eq!(keys_of(o), keys_of(t), "{pool}: fields and server names");
        for field in [
            "client_connections",
            "client_eof",
            "client_err",
            "forward_error",
            "server_ejects",
            "fragments",
        ] {
            assert_eq!(o[field], t[field], "{pool}.{field}: {o} against {t}");
        }
        for (name, server) in t.as_object().unwrap() {
            if !server.is_object() {
                continue;
            }
            assert_eq!(keys_of(&o[name]), keys_of(server), "{pool}.{name}");
            // The same requests, the same bytes, the same replies, nothing left queued.
            for field in [
                "requests",
                "request_bytes",
                "responses",
                "response_bytes",
                "server_eof",
                "server_err",
                "server_timedout",
                "server_ejected_at",
                "in_queue",
                "in_queue_bytes",
                "out_queue",
                "out_queue_bytes",
            ] {
                assert_eq!(
                    o[name][field], server[field],
                    "{pool}.{name}.{field}: {o} against {t}"
                );
            }
            let requests = server["requests"].as_u64().unwrap();
            assert!(
                requests > 0,
                "{pool}.{name}: the comparison should cover every server"
            );
            assert_eq!(
                o[name]["server_connections"], 1,
                "{pool}.{name}: one client, one connection"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
