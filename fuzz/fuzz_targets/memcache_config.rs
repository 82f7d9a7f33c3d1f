//! shoal memcache's configuration forms as arbitrary text: moxi's `-z` (server lists,
//! vBucket maps, REST URLs) and `-Z`, nutcracker.yml, a REST config body and its stream,
//! config URLs and server addresses. Never a panic; whatever is accepted builds its router
//! (or is refused with an error), and a server address or URL written back out parses to
//! the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_memcache::config::{ZConfig, parse_behaviors, parse_nutcracker, parse_z};
use shoal_memcache::pool::{PoolOptions, ServerAddr};
use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_memcache::rest::{HttpUrl, RestSource, Splitter, servers_from_config};
use shoal_memcache::route::Router;

/// What the proxy does with a server list or a map: its router, then each server's address.
fn build(servers: &Servers) {
    let router = match servers {
        Servers::List {
            members,
            distribution,
        } => {
            // A ring of thousands of members is slow to build and proves nothing more.
            if members.len() > 64 {
                return;
            }
            let m: Vec<&str> = members.iter().map(String::as_str).collect();
            Router::new(*distribution, &m, false)
        }
        Servers::VBucket(json) => Router::vbucket(json),
        Servers::Pending => return,
    };
    let Ok(router) = router else { return };
    for s in router.servers() {
        server_addr(s);
        // A member its ring accepts is one the pool can connect to (a vBucket map's server
        // list is not checked by the map: the pool refuses what it cannot use).
        if !router.is_vbucket() {
            assert!(ServerAddr::parse(s).is_some(), "the ring takes {s:?}");
        }
    }
    if router.is_vbucket() {
        for vb in [0, 1, 2, 3, 255, 1023, u16::MAX] {
            for wrong in [0, 1, 2, usize::MAX] {
                router.not_my_vbucket(vb, wrong);
            }
        }
    }
}

fn server_addr(s: &str) {
    if let Some(a) = ServerAddr::parse(s) {
        assert!(!a.host.is_empty() && a.port > 0, "{s:?} -> {a:?}");
        let again = ServerAddr::parse(&a.authority());
        assert_eq!(again.as_ref(), Some(&a), "{s:?} -> {:?}", a.authority());
    }
}

fn http_url(s: &str) {
    if let Ok(u) = HttpUrl::parse(s) {
        assert!(u.port > 0 && !u.host.is_empty(), "{s:?} -> {u:?}");
        // The URL without its user info names the same place.
        let again = HttpUrl::parse(&u.text).expect("the URL's own text parses");
        assert_eq!(
            (&again.host, again.port, &again.path, &again.text),
            (&u.host, u.port, &u.path, &u.text),
            "{s:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A value that starts with `.` or `/` names a file to read: not the fuzzer's business.
    if !text.trim().starts_with(['.', '/']) {
        match parse_z(text) {
            Ok(ZConfig::Static(listeners)) => {
                for l in &listeners {
                    assert!(l.port > 0);
                    build(&l.servers);
                }
            }
            Ok(ZConfig::Rest(source)) => assert!(!source.urls.is_empty()),
            Err(_) => {}
        }
        let mut pool = PoolOptions::default();
        if parse_behaviors(text, &mut pool).is_ok() {
            assert!(pool.conns >= 1 && pool.conns <= 64, "{pool:?}");
        }
    }
    if let Ok(pools) = parse_nutcracker(text) {
        assert!(!pools.is_empty());
        for p in &pools {
            let cfg = p.proxy_config(&ProxyConfig::new("base", Servers::Pending));
            build(&cfg.servers);
        }
    }
    if let Ok(servers) = servers_from_config(text.as_bytes()) {
        build(&servers);
    }
    // A streamed REST body, split on `\n\n\n\n` wherever the reads cut it: no config over
    // the limit, and the same configs (or a refusal) in one read as byte by byte.
    const MAX: usize = 64;
    let mut whole = Splitter::new(MAX);
    let a = whole.push(data);
    let mut bytewise = Splitter::new(MAX);
    let mut b = Ok(Vec::new());
    for c in data.chunks(1) {
        match bytewise.push(c) {
            Ok(mut got) => {
                if let Ok(all) = &mut b {
                    all.append(&mut got);
                }
            }
            Err(e) => {
                b = Err(e);
                break;
            }
        }
    }
    if let Ok(configs) = &a {
        assert!(
            configs.iter().all(|c| c.len() <= MAX),
            "a config over {MAX} bytes"
        );
    }
    match (&a, &b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the configs depend on the read boundaries");
            assert_eq!(whole.finish(), bytewise.finish());
        }
        (Err(_), Err(_)) => {}
        _ => panic!("in one read: {a:?}; byte by byte: {b:?}"),
    }
    let _ = RestSource::parse(text);
    for line in text.lines() {
        http_url(line);
        server_addr(line);
    }
});
