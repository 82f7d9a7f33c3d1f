//! The storage nodes learn the client's address from `X-Forwarded-For`, as they did behind
//! photosrv (Go's reverse proxy sets it) and as nginx's `$proxy_add_x_forwarded_for` does:
//! earlier hops' values first, then the client. Against a real nginx node that logs the
//! header.

#![allow(clippy::unwrap_used)]

mod support;

use http::{Method, StatusCode};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_carry_the_client_in_x_forwarded_for() {
    if !nginx_or_skip("x-forwarded-for") {
        return;
    }
    let node = Node::start_logging_requests();
    let cfg = config(&photosrv_config("jump", &[vec![node.url()]], None));
    let front = Front::start(&cfg, settings()).await;
    let r = put(&front.url("/f/a.jpg"), "abc").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = get(&front.url("/f/a.jpg")).await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"abc"[..]));
    let proxied = [("x-forwarded-for", "10.0.0.9, 10.0.0.10")];
    let r = call(Method::GET, &front.url("/f/a.jpg"), &proxied, vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(Method::DELETE, &front.url("/f/a.jpg"), &proxied, vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // nginx writes a request's line once it is done: wait for all four (and the testkit's
    // own readiness probe, which did not come through the router).
    let seen = || -> Vec<(String, String)> {
        node.requests()
            .into_iter()
            .zip(node.forwarded_for())
            .filter(|(r, _)| !r.contains("/.nginx-id"))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen().len() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pair = |r: &str, f: &str| (r.to_string(), f.to_string());
    assert_eq!(
        seen(),
        [
            pair("PUT /f/a.jpg HTTP/1.1", "127.0.0.1"),
            pair("GET /f/a.jpg HTTP/1.1", "127.0.0.1"),
            pair("GET /f/a.jpg HTTP/1.1", "10.0.0.9, 10.0.0.10, 127.0.0.1"),
            pair("DELETE /f/a.jpg HTTP/1.1", "10.0.0.9, 10.0.0.10, 127.0.0.1"),
        ]
    );
}
