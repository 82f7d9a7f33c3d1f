//! DNS and GCE discovery against loopback: `localhost` resolves to loopback members, and a
//! local HTTP server answers as the GCE metadata server and Compute API do (paginated,
//! with one instance missing its fields); the instances found seed gossip.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use shoal_cluster::{
    DnsConfig, DnsMembership, GceConfig, GceDiscovery, GceIni, GossipConfig, GossipMembership,
    Membership,
};

async fn wait_for(what: &str, within: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn dns_membership_resolves_localhost_to_loopback_members() {
    // This node is 127.0.0.2 (not what localhost resolves to), so the lookup must add members.
    let mut c = DnsConfig::new("localhost", 47001, "http://127.0.0.2:47001");
    c.interval = Duration::from_millis(100);
    let dns = DnsMembership::start(c);
    let rx = dns.subscribe();
    assert_eq!(
        rx.borrow().members,
        ["http://127.0.0.2:47001"],
        "starts alone"
    );
    wait_for("localhost resolved", Duration::from_secs(5), || {
        rx.borrow().version > 1
    })
    .await;
    let members = rx.borrow().members.clone();
    assert!(
        members.contains(&"http://127.0.0.1:47001".to_owned()),
        "{members:?}"
    );
    assert!(
        members
            .iter()
            .all(|m| m.starts_with("http://127.0.0.") || m.starts_with("http://[::1]:")),
        "{members:?}"
    );
}

/// Path (with query) → JSON body.
type Answers = Arc<HashMap<String, String>>;

async fn serve(answers: Answers) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answers = answers.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    let authorized = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        == Some("Bearer tok")
                        || req.headers().get("metadata-flavor").is_some();
                    let body = answers.get(&pq).cloned();
                    async move {
                        let mut r =
                            Response::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
                        if !authorized {
                            *r.status_mut() = StatusCode::UNAUTHORIZED;
                        } else if body.is_none() {
                            *r.status_mut() = StatusCode::NOT_FOUND;
                        }
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gce_discovery_matches_instances_and_seeds_gossip() {
    // The only test in this binary that reads metrics (the recorder is global).
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    recorder.install().unwrap();
    // A gossip node already running on 127.0.0.1:<port>: GCE will point the newcomer at it.
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let old = GossipMembership::start(GossipConfig::new(bind, "http://127.0.0.1:48001").fast())
        .await
        .unwrap();
    let port = old.local_addr().port();

    let list = "/compute/v1/projects/p/zones/z/instances?filter=status%20eq%20RUNNING";
    let answers: Answers = Arc::new(HashMap::from([
        (
            "/computeMetadata/v1/instance/service-accounts/default/token".to_owned(),
            r#"{"access_token":"tok","expires_in":3599,"token_type":"Bearer"}"#.to_owned(),
        ),
        (
            list.to_owned(),
            r#"{"items":[
                {"name":"ok","tags":{"items":["cache"]},"metadata":{"items":[{"key":"service","value":"web"}]},
                 "networkInterfaces":[{"name":"nic0","networkIP":"127.0.0.1"}]},
                {"name":"other-service","tags":{"items":["cache"]},"metadata":{"items":[{"key":"service","value":"db"}]},
                 "networkInterfaces":[{"name":"nic0","networkIP":"127.0.0.9"}]}
               ],"nextPageToken":"page 2"}"#.to_owned(),
        ),
        (
            format!("{list}&pageToken=page%202"),
            r#"{"items":[
                {"name":"no-nics","tags":{"items":["cache"]},"metadata":{"items":[{"key":"service","value":"web"}]}},
                {"name":"untagged","networkInterfaces":[{"name":"nic0","networkIP":"127.0.0.8"}]}
               ]}"#.to_owned(),
        ),
    ]));
    let server = serve(answers).await;

    let ini = GceIni::parse(&format!(
        "[cache]\nport = 48002\n[cluster]\nport = {port}\nheartbeat = 250\n\
         [match]\nproject = p\nzone = z\nnetwork_interface = nic0\ntags = cache\n[meta]\nservice = web\n"
    ))
    .unwrap();
    let mut config = GceConfig::from_ini(&ini);
    config.endpoint = format!("http://{server}");
    config.metadata = Some(format!("http://{server}"));
    config.interval = Duration::from_millis(200);
    let gce = GceDiscovery::start(config);
    let seeds = gce.seeds();
    wait_for("instances listed", Duration::from_secs(5), || {
        !seeds.borrow().is_empty()
    })
    .await;
    assert_eq!(
        *seeds.borrow(),
        vec![SocketAddr::from(([127, 0, 0, 1], port))]
    );
    // The instance without NICs was counted (once per listing), never a crash.
    let bad: u64 = snap
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == "shoal_membership_bad_values_total")
        .filter(|(k, ..)| {
            k.key()
                .labels()
                .any(|l| l.key() == "source" && l.value() == "gce")
        })
        .map(|(.., v)| match v {
            DebugValue::Counter(c) => c,
            _ => 0,
        })
        .sum();
    assert!(bad >= 1, "missing fields counted: {bad}");

    // The newcomer has no seeds of its own: GCE's list makes it join.
    let new = GossipMembership::start(GossipConfig::new(bind, "http://127.0.0.1:48002").fast())
        .await
        .unwrap();
    new.seed_from(gce.seeds());
    wait_for("joined through GCE seeds", Duration::from_secs(5), || {
        new.current().members.len() == 2 && old.current().members.len() == 2
    })
    .await;
}
