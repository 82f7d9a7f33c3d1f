//! REST/HTTP vBucket configs (moxi's `-z url=...`) from a small in-test HTTP server: a
//! streamed body whose delimiter arrives split over two reads, a map change seen by a client
//! that stays connected, downstream connections kept when the server list stays, and
//! 401 → garbage → good URLs with basic auth and a `nodeLocator: ketama` config.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_memcache::proxy::{ProxyConfig, Servers};
use shoal_memcache::rest::{RestSource, feed};
use shoal_memcache::route::{Distribution, Router};
use support::Memcached;
use support::shoal::{Client, Shoal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the mock answers on one connection.
enum Reply {
    /// A whole body with this status.
    Whole(u16, Vec<u8>),
    /// A chunked 200 whose chunks come from the channel (ends when it closes).
    Stream(mpsc::Receiver<Vec<u8>>),
}

/// Serves `reply()` on every connection; records each request head. Returns the URL.
async fn mock(
    reply: impl Fn() -> Reply + Send + Sync + 'static,
    heads: Arc<Mutex<Vec<String>>>,
) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/pools/default/bucketsStreaming/default",
        l.local_addr().unwrap()
    );
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (reply, heads) = (reply.clone(), heads.clone());
            tokio::spawn(async move { serve(s, reply(), &heads).await });
        }
    });
    url
}

async fn serve(mut s: TcpStream, reply: Reply, heads: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&b[..n]),
            _ => return,
        }
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    match reply {
        Reply::Whole(status, body) => {
            let h = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(h.as_bytes()).await;
            let _ = s.write_all(&body).await;
        }
        Reply::Stream(mut rx) => {
            let h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = s.write_all(h.as_bytes()).await;
            while let Some(chunk) = rx.recv().await {
                let mut out = format!("{:x}\r\n", chunk.len()).into_bytes();
                out.extend_from_slice(&chunk);
                out.extend_from_slice(b"\r\n");
                if s.write_all(&out).await.is_err() {
                    return;
                }
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        }
    }
    let _ = s.shutdown().await;
}

fn vbucket_config(server: &str, vbuckets: usize) -> String {
    let map = vec!["[0]"; vbuckets].join(",");
    format!(
        r#"{{"name":"default","nodeLocator":"vbucket","vBucketServerMap":{{"hashAlgorithm":"CRC",
        "numReplicas":0,"serverList":["{server}"],"vBucketMap":[{map}]}}}}"#
    )
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn vbucket_json(shoal: &Shoal) -> String {
    match &shoal.proxy.config().servers {
        Servers::VBucket(j) => j.clone(),
        _ => String::new(),
    }
}

#[test]
fn streamed_configs_split_delimiter_and_a_map_change_seen_by_a_connected_client() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let shoal = Shoal::start(ProxyConfig::new("rest", Servers::Pending));
    let rt = shoal.handle();
    let (tx, rx) = mpsc::channel(8);
    let rx = Mutex::new(Some(rx));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let url = rt.block_on(mock(
        move || match rx.lock().unwrap().take() {
            Some(rx) => Reply::Stream(rx),
            None => Reply::Whole(503, Vec::new()),
        },
        heads,
    ));
    let source = RestSource::parse(&format!("url={url}")).unwrap();
    rt.spawn(feed(shoal.proxy.clone(), source));

    let mut c = shoal.client();
    // No config yet: keys have no server.
    assert_eq!(
        c.call(b"get k\r\n"),
        b"SERVER_ERROR a server is not available\r\n"
    );
    // The first config's delimiter comes in two reads: moxi would never see it.
    let first = vbucket_config(&a.addr(), 1);
    tx.blocking_send(format!("{first}\n\n").into_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    tx.blocking_send(b"\n\n".to_vec()).unwrap();
    wait_for("the first config", || {
        c.call(b"set k 0 0 1\r\na\r\n") == b"STORED\r\n"
    });
    assert_eq!(
        Client::connect(a.port).call(b"get k\r\n"),
        b"VALUE k 0 1\r\na\r\nEND\r\n"
    );
    // Same server list, another map: the downstream connections stay.
    let pool = shoal.proxy.cluster().pool.clone();
    tx.blocking_send(format!("{}\n\n\n\n", vbucket_config(&a.addr(), 2)).into_bytes())
        .unwrap();
    wait_for("the second map", || {
        vbucket_json(&shoal).contains("[[0],[0]]")
    });
    assert!(Arc::ptr_eq(&pool, &shoal.proxy.cluster().pool));
    // Another server: the same client connection sees the change.
    tx.blocking_send(format!("{}\n\n\n\n", vbucket_config(&b.addr(), 1)).into_bytes())
        .unwrap();
    wait_for("the move to server b", || {
        c.call(b"get k\r\n") == b"END\r\n"
    });
    assert!(!Arc::ptr_eq(&pool, &shoal.proxy.cluster().pool));
    assert_eq!(c.call(b"set k 0 0 1\r\nb\r\n"), b"STORED\r\n");
    assert_eq!(
        Client::connect(b.port).call(b"get k\r\n"),
        b"VALUE k 0 1\r\nb\r\nEND\r\n"
    );
}

#[test]
fn unauthorized_then_garbage_then_a_good_ketama_url() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let shoal = Shoal::start(ProxyConfig::new("rest", Servers::Pending));
    let rt = shoal.handle();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let denied = rt.block_on(mock(|| Reply::Whole(401, Vec::new()), heads.clone()));
    let garbage = rt.block_on(mock(
        || Reply::Whole(200, b"<html>not a config</html>".to_vec()),
        Arc::default(),
    ));
    let good_body = format!(
        r#"{{"name":"default","nodeLocator":"ketama","nodes":[
        {{"hostname":"127.0.0.1:8091","ports":{{"direct":{}}},"status":"healthy"}},
        {{"hostname":"127.0.0.1:8091","ports":{{"direct":{}}},"status":"healthy"}}]}}"#,
        a.port, b.port
    );
    let good = rt.block_on(mock(
        move || Reply::Whole(200, good_body.clone().into_bytes()),
        Arc::default(),
    ));
    let source = RestSource::parse(&format!("{denied},{garbage},{good}")).unwrap();
    let source = RestSource {
        auth: Some(("user".into(), "pw".into())),
        ..source
    };
    rt.spawn(feed(shoal.proxy.clone(), source));
    let members = vec![a.addr(), b.addr()];
    let want = Servers::List {
        members: members.clone(),
        distribution: Distribution::Ketama,
    };
    wait_for("the good URL's config", || {
        shoal.proxy.config().servers == want
    });
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.contains("authorization: basic dxnlcjpwdw=="), "{head}");
    // Keys land where libmemcached's weighted ketama puts them.
    let names: Vec<&str> = members.iter().map(String::as_str).collect();
    let router = Router::new(Distribution::Ketama, &names, false).unwrap();
    let servers = [&a, &b];
    let mut c = shoal.client();
    let cluster = shoal.proxy.cluster();
    for i in 0..20 {
        let key = format!("key{i}");
        let set = format!("set {key} 0 0 1\r\nx\r\n");
        assert_eq!(c.call(set.as_bytes()), b"STORED\r\n");
        let owner = router.route(key.as_bytes(), &cluster.pool).unwrap().server;
        let got = Client::connect(servers[owner].port).call(format!("get {key}\r\n").as_bytes());
        assert_eq!(got, format!("VALUE {key} 0 1\r\nx\r\nEND\r\n").into_bytes());
    }
}

/// The first URL streams a config, then its stream drops halfway through the next one (and
/// the URL answers 503 from then on): the half config is not applied, the feed moves on to
/// the second URL, and a client that stayed connected follows its config to the other server.
#[test]
fn a_dropped_stream_fails_over_to_the_next_url() {
    let (Some(a), Some(b)) = (Memcached::start(), Memcached::start()) else {
        return;
    };
    let shoal = Shoal::start(ProxyConfig::new("rest", Servers::Pending));
    let rt = shoal.handle();
    let (tx, rx) = mpsc::channel(8);
    let rx = Mutex::new(Some(rx));
    let first = rt.block_on(mock(
        move || match rx.lock().unwrap().take() {
            Some(rx) => Reply::Stream(rx),
            None => Reply::Whole(503, Vec::new()),
        },
        Arc::default(),
    ));
    let to_b = vbucket_config(&b.addr(), 1);
    let second_heads = Arc::new(Mutex::new(Vec::new()));
    let second = rt.block_on(mock(
        move || Reply::Whole(200, to_b.clone().into_bytes()),
        second_heads.clone(),
    ));
    let source = RestSource::parse(&format!("url={first},{second}")).unwrap();
    rt.spawn(feed(shoal.proxy.clone(), source));

    let mut c = shoal.client();
    tx.blocking_send(format!("{}\n\n\n\n", vbucket_config(&a.addr(), 1)).into_bytes())
        .unwrap();
    wait_for("the streamed config", || {
        c.call(b"set k 0 0 1\r\na\r\n") == b"STORED\r\n"
    });
    assert_eq!(
        Client::connect(a.port).call(b"get k\r\n"),
        b"VALUE k 0 1\r\na\r\nEND\r\n"
    );
    assert!(
        second_heads.lock().unwrap().is_empty(),
        "the second URL is not asked while the first streams"
    );
    // Half of a config pointing nowhere, then the stream ends.
    let half = vbucket_config("127.0.0.1:1", 1);
    tx.blocking_send(half.as_bytes()[..half.len() / 2].to_vec())
        .unwrap();
    drop(tx);
    wait_for("the second URL's config", || {
        c.call(b"get k\r\n") == b"END\r\n"
    });
    assert!(
        vbucket_json(&shoal).contains(&b.addr()),
        "{}",
        vbucket_json(&shoal)
    );
    assert_eq!(c.call(b"set k 0 0 1\r\nb\r\n"), b"STORED\r\n");
    assert_eq!(
        Client::connect(b.port).call(b"get k\r\n"),
        b"VALUE k 0 1\r\nb\r\nEND\r\n"
    );
}
