//! The read client against scripted upstreams on loopback: framings, pooling and bad answers
//! that nginx would not produce on demand.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// One scripted answer: written in these pieces (a pause between them, so the client sees
/// them in separate reads), then the connection is closed when `close` is set.
struct Reply {
    pieces: Vec<Vec<u8>>,
    close: bool,
}

fn reply(text: &str) -> Reply {
    Reply {
        pieces: vec![text.as_bytes().to_vec()],
        close: false,
    }
}

fn in_pieces(pieces: &[&str]) -> Reply {
    Reply {
        pieces: pieces.iter().map(|p| p.as_bytes().to_vec()).collect(),
        close: false,
    }
}

fn then_close(mut r: Reply) -> Reply {
    r.close = true;
    r
}

/// A loopback server answering each request head it reads with the next scripted reply.
struct Upstream {
    replica: Arc<Replica>,
    heads: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

async fn upstream(replies: Vec<Reply>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let queue = Arc::new(Mutex::new(VecDeque::from(replies)));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (h, c) = (heads.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (queue, heads) = (queue.clone(), h.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut b = [0u8; 4096];
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&b[..n]),
                        }
                    }
                    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head: Vec<u8> = got.drain(..end).collect();
                    heads.lock().push(String::from_utf8(head).unwrap());
                    let Some(r) = queue.lock().pop_front() else {
                        return;
                    };
                    for (i, p) in r.pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        if s.write_all(p).await.is_err() {
                            return;
                        }
                    }
                    if r.close {
                        return;
                    }
                }
            });
        }
    });
    Upstream {
        replica: Arc::new(Replica::new(&format!("http://{addr}")).unwrap()),
        heads,
        connections,
    }
}

fn dial() -> Dial {
    Dial {
        connect_timeout: Duration::from_secs(2),
        idle_per_host: 8,
        tls: shoal_tls::client_config(rustls::RootCertStore::empty()).unwrap(),
    }
}

fn get(path: &str) -> ReadRequest {
    ReadRequest::new(Method::GET, path.to_string(), &HeaderMap::new())
}

async fn body_of(resp: Response<ReadBody>) -> Result<Vec<u8>, BoxError> {
    Ok(resp.into_body().collect().await?.to_bytes().to_vec())
}

#[tokio::test]
async fn a_length_framed_body_arrives_whole_and_its_connection_is_reused() {
    let up = upstream(vec![
        in_pieces(&[
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n01",
            "2345",
            "6789",
        ]),
        reply("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n"),
    ])
    .await;
    let resp = fetch(&up.replica, &get("/a/b.jpg?v=1"), &dial())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["etag"], "\"x\"");
    assert_eq!(resp.headers()["content-length"], "10");
    assert_eq!(body_of(resp).await.unwrap(), b"0123456789");
    let resp = fetch(&up.replica, &get("/c"), &dial()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_of(resp).await.unwrap(), b"no\n");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    let heads = up.heads.lock();
    let port = up.replica.authority().rsplit_once(':').unwrap().1;
    assert_eq!(
        heads[0],
        format!("GET /a/b.jpg?v=1 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n")
    );
    assert!(heads[1].starts_with("GET /c HTTP/1.1\r\n"), "{}", heads[1]);
}

#[tokio::test]
async fn a_chunked_body_is_decoded_across_reads_with_extensions_and_trailers() {
    let up = upstream(vec![
        in_pieces(&[
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
            "lo\r\n",
            "6\r\n world\r",
            "\n0\r\nX-Checksum: abc\r\n",
            "\r\n",
        ]),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ])
    .await;
    let resp = fetch(&up.replica, &get("/x"), &dial()).await.unwrap();
    assert!(resp.headers().get("transfer-encoding").is_none());
    assert_eq!(body_of(resp).await.unwrap(), b"hello world");
    let resp = fetch(&up.replica, &get("/y"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"ok");
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "a cleanly ended chunked body leaves its connection reusable"
    );
}

#[tokio::test]
async fn a_body_without_length_ends_with_the_connection_which_is_not_reused() {
    let up = upstream(vec![
        then_close(in_pieces(&["HTTP/1.1 200 OK\r\n\r\nuntil ", "the end"])),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ])
    .await;
    let resp = fetch(&up.replica, &get("/x"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"until the end");
    let resp = fetch(&up.replica, &get("/y"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"ok");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn head_204_and_304_have_no_body_and_interim_answers_are_skipped() {
    let up = upstream(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        reply("HTTP/1.1 204 No Content\r\n\r\n"),
        reply("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"),
        in_pieces(&[
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
        ]),
    ])
    .await;
    let head = ReadRequest::new(Method::HEAD, "/x".into(), &HeaderMap::new());
    let resp = fetch(&up.replica, &head, &dial()).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "1000");
    assert!(http_body::Body::is_end_stream(resp.body()));
    assert_eq!(body_of(resp).await.unwrap(), b"");
    let resp = fetch(&up.replica, &get("/y"), &dial()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(body_of(resp).await.unwrap(), b"");
    let resp = fetch(&up.replica, &get("/z"), &dial()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(body_of(resp).await.unwrap(), b"");
    let resp = fetch(&up.replica, &get("/w"), &dial()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("link").is_none(),
        "interim headers stay out"
    );
    assert_eq!(body_of(resp).await.unwrap(), b"body");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn hop_by_hop_response_headers_stay_behind() {
    let up = upstream(vec![reply(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\n\
         X-Private: secret\r\nUpgrade: h2c\r\nX-Kept: 1\r\nContent-Length: 0\r\n\r\n",
    )])
    .await;
    let resp = fetch(&up.replica, &get("/x"), &dial()).await.unwrap();
    let names: Vec<&str> = resp.headers().keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-kept", "content-length"]);
}

#[test]
fn a_read_forwards_only_end_to_end_request_headers() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "router.example"),
        ("connection", "keep-alive, x-hop, x-forwarded-for"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("content-length", "5"),
        ("transfer-encoding", "chunked"),
        ("range", "bytes=0-9"),
        ("x-forwarded-for", "10.0.0.1"),
    ] {
        h.append(k, HeaderValue::from_static(v));
    }
    let req = ReadRequest::new(Method::GET, "/p%20q?x=1".into(), &h);
    let on_80 = Replica::new("http://Store.example/base/").unwrap();
    assert_eq!(
        String::from_utf8(req.head_for(&on_80)).unwrap(),
        "GET /base/p%20q?x=1 HTTP/1.1\r\nhost: store.example\r\n\
         range: bytes=0-9\r\nx-forwarded-for: 10.0.0.1\r\n\r\n"
    );
    let on_8080 = Replica::new("http://10.0.0.2:8080").unwrap();
    assert!(
        String::from_utf8(req.head_for(&on_8080))
            .unwrap()
            .starts_with("GET /p%20q?x=1 HTTP/1.1\r\nhost: 10.0.0.2:8080\r\n")
    );
    // The default port is the scheme's: 443 is left out for https, 80 kept.
    let host = |url: &str| {
        let head = String::from_utf8(req.head_for(&Replica::new(url).unwrap())).unwrap();
        head.lines().nth(1).unwrap().to_owned()
    };
    assert_eq!(host("https://h"), "host: h");
    assert_eq!(host("https://h:80"), "host: h:80");
    assert_eq!(host("http://h:443"), "host: h:443");
}

#[tokio::test]
async fn a_pooled_connection_the_replica_closed_is_replaced_without_an_error() {
    // The replica closes after its first answer without saying so, as one restarting would.
    let up = upstream(vec![
        then_close(reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
    ])
    .await;
    let resp = fetch(&up.replica, &get("/a"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"a");
    // Let the close arrive, whether or not the reactor has seen it before the checkout.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resp = fetch(&up.replica, &get("/b"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"b");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_fresh_connection_closed_before_an_answer_is_an_error_not_a_retry_loop() {
    let up = upstream(vec![]).await;
    let err = fetch(&up.replica, &get("/a"), &dial()).await.unwrap_err();
    assert!(matches!(err, FetchError::Exchange(_)), "{err}");
    assert!(
        err.to_string().contains("closed before a response"),
        "{err}"
    );
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let r = Arc::new(Replica::new(&format!("http://{addr}")).unwrap());
    let err = fetch(&r, &get("/a"), &dial()).await.unwrap_err();
    assert!(matches!(err, FetchError::Connect(_)), "{err}");
    assert!(err.to_string().starts_with(r.base()), "{err}");
}

async fn head_error(response: &str) -> String {
    let up = upstream(vec![reply(response)]).await;
    fetch(&up.replica, &get("/a"), &dial())
        .await
        .unwrap_err()
        .to_string()
}

#[tokio::test]
async fn bad_heads_are_errors_that_name_the_problem() {
    assert!(
        head_error("HTTP/1.1 OK\r\n\r\n")
            .await
            .contains("bad response head")
    );
    assert!(
        head_error("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab")
            .await
            .contains("two different Content-Lengths")
    );
    assert!(
        head_error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
            .await
            .contains("bad Content-Length")
    );
    assert!(
        head_error("HTTP/1.1 101 Switching Protocols\r\n\r\n")
            .await
            .contains("101")
    );
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    assert!(
        head_error(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"))
            .await
            .contains("more than 100 headers")
    );
    let long = format!("HTTP/1.1 200 OK\r\nX-Long: {}\r\n", "v".repeat(MAX_HEAD));
    assert!(head_error(&long).await.contains("longer than 64 KiB"));
}

async fn body_error(response: Reply) -> String {
    let up = upstream(vec![response]).await;
    let resp = fetch(&up.replica, &get("/a"), &dial()).await.unwrap();
    body_of(resp).await.unwrap_err().to_string()
}

#[tokio::test]
async fn a_body_cut_short_or_badly_chunked_ends_in_an_error() {
    let short = then_close(reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"));
    assert!(body_error(short).await.contains("before the body's end"));
    let bad_size = reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert!(body_error(bad_size).await.contains("bad chunk-size line"));
    let no_crlf = reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd");
    assert!(body_error(no_crlf).await.contains("not followed by CRLF"));
    let empty_size = then_close(reply(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n\r\n",
    ));
    assert!(body_error(empty_size).await.contains("bad chunk-size line"));
    let torn = then_close(reply(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ));
    assert!(body_error(torn).await.contains("before the body's end"));
}

#[tokio::test]
async fn a_length_beside_a_transfer_coding_is_dropped_and_the_connection_not_reused() {
    let up = upstream(vec![
        reply(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nabc\r\n0\r\n\r\n",
        ),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ])
    .await;
    let resp = fetch(&up.replica, &get("/x"), &dial()).await.unwrap();
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(body_of(resp).await.unwrap(), b"abc");
    let resp = fetch(&up.replica, &get("/y"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"ok");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_close_and_http_1_0_answers_are_not_reused() {
    let up = upstream(vec![
        reply("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na"),
        reply("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb"),
        reply("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nc"),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd"),
        reply("HTTP/1.0 200 OK\r\nConnection: close, keep-alive\r\nContent-Length: 1\r\n\r\ne"),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nf"),
    ])
    .await;
    for (path, want) in [
        ("/a", b"a"),
        ("/b", b"b"),
        ("/c", b"c"),
        ("/d", b"d"),
        ("/e", b"e"),
        ("/f", b"f"),
    ] {
        let resp = fetch(&up.replica, &get(path), &dial()).await.unwrap();
        assert_eq!(body_of(resp).await.unwrap(), want);
    }
    // a, b, then c, d and e on one connection (1.0 with keep-alive is reused, `close`
    // wins over `keep-alive`), then f.
    assert_eq!(up.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_body_dropped_half_read_takes_its_connection_with_it() {
    let up = upstream(vec![
        in_pieces(&["HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc", "def"]),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ])
    .await;
    let mut resp = fetch(&up.replica, &get("/x"), &dial()).await.unwrap();
    let first = resp.body_mut().frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "abc");
    drop(resp);
    let resp = fetch(&up.replica, &get("/y"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"ok");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_pool_keeps_at_most_its_limit_per_replica() {
    let up = upstream(
        (0..6)
            .map(|_| reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"))
            .collect(),
    )
    .await;
    let dial = Dial {
        idle_per_host: 1,
        ..dial()
    };
    let reqs = [get("/a"), get("/b"), get("/c"), get("/d")];
    // Two reads at once need two connections; only one stays for the next two reads.
    let (a, b) = tokio::join!(
        fetch(&up.replica, &reqs[0], &dial),
        fetch(&up.replica, &reqs[1], &dial)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    assert_eq!(body_of(a).await.unwrap(), b"x");
    assert_eq!(body_of(b).await.unwrap(), b"x");
    let (c, d) = tokio::join!(
        fetch(&up.replica, &reqs[2], &dial),
        fetch(&up.replica, &reqs[3], &dial)
    );
    assert_eq!(body_of(c.unwrap()).await.unwrap(), b"x");
    assert_eq!(body_of(d.unwrap()).await.unwrap(), b"x");
    assert_eq!(up.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_pooled_connection_closed_after_taking_the_request_is_retried_on_a_new_one() {
    // Open when checked out, closed on the request: the race a keep-alive timeout makes.
    let silent_close = Reply {
        pieces: Vec::new(),
        close: true,
    };
    let up = upstream(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"),
        silent_close,
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
    ])
    .await;
    let resp = fetch(&up.replica, &get("/a"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"a");
    let resp = fetch(&up.replica, &get("/b"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"b");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    assert_eq!(up.heads.lock().len(), 3, "/b was sent twice");
}

#[tokio::test]
async fn an_idle_connection_keeps_no_large_read_buffer() {
    // The body's last bytes come alone, so the buffer's view has room left over when the body
    // ends, in an allocation its frames share.
    let big = "x".repeat(300 * 1024);
    let up = upstream(vec![in_pieces(&[
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}",
            big.len() + 10
        ),
        "0123456789",
    ])])
    .await;
    let resp = fetch(&up.replica, &get("/big"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap().len(), big.len() + 10);
    let mut conn = checkout(up.replica.pool_id()).expect("the connection was pooled");
    // The body's frames are gone, so a buffer still on the body's allocation could take it
    // all back; a let-go one has none.
    assert!(
        !conn.buf.try_reclaim(64 * 1024),
        "the idle connection still holds the body's read buffer"
    );
}

#[tokio::test]
async fn a_node_that_closes_on_a_request_gets_it_twice_at_most() {
    let silent_close = || Reply {
        pieces: Vec::new(),
        close: true,
    };
    let mut replies: Vec<Reply> = (0..3)
        .map(|_| reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"))
        .collect();
    replies.extend((0..5).map(|_| silent_close()));
    let up = upstream(replies).await;
    // Three connections in the pool.
    let reqs = [get("/a"), get("/b"), get("/c")];
    let d = dial();
    let (a, b, c) = tokio::join!(
        fetch(&up.replica, &reqs[0], &d),
        fetch(&up.replica, &reqs[1], &d),
        fetch(&up.replica, &reqs[2], &d)
    );
    for r in [a, b, c] {
        assert_eq!(body_of(r.unwrap()).await.unwrap(), b"x");
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 3);
    let err = fetch(&up.replica, &get("/poison"), &dial())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("closed before a response"),
        "{err}"
    );
    let heads = up.heads.lock();
    let sent = heads
        .iter()
        .filter(|h| h.starts_with("GET /poison "))
        .count();
    assert_eq!(sent, 2, "once on a pooled connection, once on a new one");
    assert!(
        checkout(up.replica.pool_id()).is_none(),
        "the other idle ones were dropped"
    );
}

#[tokio::test]
async fn a_coding_list_with_a_trailing_comma_is_still_chunked_and_a_lone_1xx_is_named() {
    let up = upstream(vec![reply(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )])
    .await;
    let resp = fetch(&up.replica, &get("/x"), &dial()).await.unwrap();
    assert_eq!(body_of(resp).await.unwrap(), b"abc");
    let lone = then_close(reply("HTTP/1.1 100 Continue\r\n\r\n"));
    let up = upstream(vec![lone]).await;
    let err = fetch(&up.replica, &get("/x"), &dial()).await.unwrap_err();
    assert!(
        err.to_string().contains("after an interim (1xx) answer"),
        "{err}"
    );
}
