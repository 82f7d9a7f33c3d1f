//! The front cache (moxi's `front_cache_*`): a second get is answered without the server
//! (its `get_hits` stays), writes through the proxy invalidate, `flush_all` empties it, only
//! spec'd prefixes are cached, and items expire after their lifespan.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use shoal_memcache::proxy::{FrontCacheOptions, ProxyConfig, Servers};
use shoal_memcache::route::Distribution;
use support::Memcached;
use support::shoal::{Client, Shoal};

fn proxy(m: &Memcached, lifespan: Duration) -> Shoal {
    let mut cfg = ProxyConfig::new(
        "fc",
        Servers::List {
            members: vec![m.addr()],
            distribution: Distribution::Ketama,
        },
    );
    cfg.front_cache = FrontCacheOptions {
        max: 100,
        lifespan,
        spec: FrontCacheOptions::prefixes("fc:|hot:"),
        unspec: FrontCacheOptions::prefixes("fc:never"),
    };
    Shoal::start(cfg)
}

/// The server's own `get_hits`, asked directly.
fn get_hits(m: &Memcached) -> u64 {
    let stats = String::from_utf8(Client::connect(m.port).call(b"stats\r\n")).unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT get_hits "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn hits_skip_the_server_and_writes_invalidate() {
    let Some(m) = Memcached::start() else {
        return;
    };
    let shoal = proxy(&m, Duration::from_secs(60));
    let mut c = shoal.client();
    assert_eq!(c.call(b"set fc:k 5 0 2\r\nv1\r\n"), b"STORED\r\n");
    assert_eq!(c.call(b"set hot:j 0 0 1\r\nj\r\n"), b"STORED\r\n");
    assert_eq!(c.call(b"set other 0 0 1\r\no\r\n"), b"STORED\r\n");
    let both = b"VALUE fc:k 5 2\r\nv1\r\nVALUE hot:j 0 1\r\nj\r\nEND\r\n";
    let h0 = get_hits(&m);
    assert_eq!(c.call(b"get fc:k hot:j\r\n"), both); // fills
    assert_eq!(get_hits(&m), h0 + 2);
    assert_eq!(c.call(b"get fc:k hot:j\r\n"), both); // from the cache
    assert_eq!(c.call(b"get fc:k\r\n"), b"VALUE fc:k 5 2\r\nv1\r\nEND\r\n");
    assert_eq!(
        get_hits(&m),
        h0 + 2,
        "cached gets must not reach the server"
    );
    // gets (with cas) and keys outside the spec always go to the server.
    assert!(c.call(b"gets fc:k\r\n").starts_with(b"VALUE fc:k 5 2 "));
    assert_eq!(c.call(b"get other\r\n"), b"VALUE other 0 1\r\no\r\nEND\r\n");
    assert_eq!(c.call(b"get other\r\n"), b"VALUE other 0 1\r\no\r\nEND\r\n");
    assert_eq!(get_hits(&m), h0 + 5);
    let st = String::from_utf8(c.call(b"stats proxy\r\n")).unwrap();
    assert!(
        st.contains("STAT fc:pstd_stats:tot_front_cache_hits 2\r\n"),
        "{st}"
    );
    // A write through the proxy invalidates, even with noreply.
    for write in [
        &b"set fc:k 0 0 2 noreply\r\nv2\r\n"[..],
        b"append fc:k 0 0 1\r\nx\r\n",
        b"touch fc:k 100\r\n",
    ] {
        let _ = c.call(write);
        let direct = Client::connect(m.port).call(b"get fc:k\r\n");
        assert_eq!(c.call(b"get fc:k\r\n"), direct, "after {write:?}");
    }
    assert_eq!(c.call(b"delete fc:k\r\n"), b"DELETED\r\n");
    assert_eq!(c.call(b"get fc:k\r\n"), b"END\r\n");
    // flush_all empties it: hot:j is asked from the (now empty) server.
    assert_eq!(c.call(b"get hot:j\r\n"), b"VALUE hot:j 0 1\r\nj\r\nEND\r\n");
    assert_eq!(c.call(b"flush_all\r\n"), b"OK\r\n");
    assert_eq!(c.call(b"get hot:j\r\n"), b"END\r\n");
    // The unspec prefix is never cached.
    assert_eq!(c.call(b"set fc:never 0 0 1\r\nn\r\n"), b"STORED\r\n");
    let h1 = get_hits(&m);
    let _ = c.call(b"get fc:never\r\n");
    let _ = c.call(b"get fc:never\r\n");
    assert_eq!(get_hits(&m), h1 + 2);
}

#[test]
fn items_expire_after_their_lifespan() {
    let Some(m) = Memcached::start() else {
        return;
    };
    let shoal = proxy(&m, Duration::from_millis(150));
    let mut c = shoal.client();
    assert_eq!(c.call(b"set fc:t 0 0 3\r\nold\r\n"), b"STORED\r\n");
    assert_eq!(c.call(b"get fc:t\r\n"), b"VALUE fc:t 0 3\r\nold\r\nEND\r\n");
    // Changed behind the proxy's back: only the lifespan brings the new value.
    let mut direct = Client::connect(m.port);
    assert_eq!(direct.call(b"set fc:t 0 0 3\r\nnew\r\n"), b"STORED\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.call(b"get fc:t\r\n") != b"VALUE fc:t 0 3\r\nnew\r\nEND\r\n" {
        assert!(Instant::now() < deadline, "the cached item never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = String::from_utf8(c.call(b"stats proxy\r\n")).unwrap();
    assert!(!st.contains("tot_front_cache_expires 0\r\n"), "{st}");
}

/// Meta writes (ms, md, ma) and binary writes (SET, SETQ, APPEND, INCR, DELETEQ, TOUCH) through
/// the proxy invalidate a cached key too: after each, an ascii get through the proxy answers
/// what the server holds.
#[test]
fn meta_and_binary_writes_invalidate() {
    use support::bin::{self, arith_extras, req, store_extras};
    let Some(m) = Memcached::start() else {
        return;
    };
    let shoal = proxy(&m, Duration::from_secs(60));
    let mut c = shoal.client();
    let mut b = shoal.client().s;
    let mut opaque = 0;
    let mut binary = |frame: Vec<u8>| {
        opaque += 1;
        let mut p = frame;
        p.extend_from_slice(&req(0x0a, opaque, 0, &[], &[], &[]));
        let _ = bin::call(&mut b, &p, 0x0a, opaque);
    };
    let check = |c: &mut Client, key: &str, what: &str| {
        let direct = Client::connect(m.port).call(format!("get {key}\r\n").as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&c.call(format!("get {key}\r\n").as_bytes())),
            String::from_utf8_lossy(&direct),
            "after {what}"
        );
    };
    let cache = |c: &mut Client, key: &str| {
        let first = c.call(format!("get {key}\r\n").as_bytes());
        assert_eq!(c.call(format!("get {key}\r\n").as_bytes()), first);
    };
    let before = |c: &mut Client| {
        String::from_utf8(c.call(b"stats proxy\r\n"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("STAT fc:pstd_stats:tot_front_cache_hits "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap()
    };
    assert_eq!(c.call(b"set fc:m 0 0 2\r\nv1\r\n"), b"STORED\r\n");
    cache(&mut c, "fc:m");
    assert!(
        before(&mut c) >= 1,
        "the second get came from the front cache"
    );

    // Meta.
    for (write, reply) in [
        (&b"ms fc:m 2\r\nv2\r\n"[..], &b"HD\r\n"[..]),
        (b"ms fc:m 1 MA q\r\nx\r\n", b""),
        (b"md fc:m q\r\n", b""),
    ] {
        cache(&mut c, "fc:m");
        assert_eq!(c.call(write), reply, "{write:?}");
        check(&mut c, "fc:m", &String::from_utf8_lossy(write));
    }
    assert_eq!(c.call(b"set fc:n 0 0 1\r\n5\r\n"), b"STORED\r\n");
    cache(&mut c, "fc:n");
    assert_eq!(c.call(b"ma fc:n D3 v\r\n"), b"VA 1\r\n8\r\n");
    check(&mut c, "fc:n", "ma");

    // Binary, starting from a stored (and cached) value again.
    assert_eq!(c.call(b"set fc:m 0 0 2\r\nv0\r\n"), b"STORED\r\n");
    for (frame, what) in [
        (req(0x01, 0, 0, &store_extras(0, 0), b"fc:m", b"b1"), "SET"),
        (req(0x11, 0, 0, &store_extras(3, 0), b"fc:m", b"b2"), "SETQ"),
        (req(0x0e, 0, 0, &[], b"fc:m", b"+a"), "APPEND"),
        (
            req(0x1c, 0, 0, &100u32.to_be_bytes(), b"fc:m", b""),
            "TOUCH",
        ),
        (req(0x14, 0, 0, &[], b"fc:m", b""), "DELETEQ"),
        (
            req(0x01, 0, 0, &store_extras(0, 0), b"fc:n", b"41"),
            "SET n",
        ),
        (
            req(0x05, 0, 0, &arith_extras(1, 0, 0), b"fc:n", b""),
            "INCR",
        ),
    ] {
        let key = if what.ends_with(" n") || what == "INCR" {
            "fc:n"
        } else {
            "fc:m"
        };
        cache(&mut c, key);
        binary(frame);
        check(&mut c, key, what);
    }
    assert_eq!(c.call(b"get fc:n\r\n"), b"VALUE fc:n 0 2\r\n42\r\nEND\r\n");
    assert_eq!(c.call(b"get fc:m\r\n"), b"END\r\n");
}
