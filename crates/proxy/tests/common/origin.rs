//! A small in-test HTTP origin that counts its requests: HEAD, single-range GET, If-Match,
//! and switches to answer every range with 200, to be slow, or to go away.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Body, ETag and any extra response headers.
type Object = (Bytes, String, Vec<(String, String)>);

#[derive(Default)]
pub struct State {
    objects: Mutex<HashMap<String, Object>>,
    /// GETs by (path, Range header).
    pub gets: Mutex<Vec<(String, String)>>,
    pub heads: AtomicUsize,
    /// Every request.
    pub requests: AtomicUsize,
    pub ignore_ranges: AtomicBool,
    /// Answer every request with 503 Service Unavailable.
    pub unavailable: AtomicBool,
    pub delay_ms: AtomicU64,
    /// Requests being answered now, and the most there ever were at once.
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

pub struct TestOrigin {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.shut();
    }
}

impl TestOrigin {
    pub async fn start() -> TestOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let (tx, mut rx) = oneshot::channel::<()>();
        let st = state.clone();
        tokio::spawn(async move {
            // Connection tasks live in the set: stopping the origin drops them all.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    Ok((stream, _)) = listener.accept() => {
                        let st = st.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| {
                                let st = st.clone();
                                async move { Ok::<_, Infallible>(answer(&st, req).await) }
                            });
                            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                }
            }
        });
        TestOrigin {
            addr,
            state,
            stop: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/base/", self.addr)
    }

    pub fn put(&self, path: &str, data: impl Into<Bytes>, etag: &str) {
        self.put_with_headers(path, data, etag, &[]);
    }

    /// An object answered with `headers` besides the usual ones (a name may repeat).
    pub fn put_with_headers(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        etag: &str,
        headers: &[(&str, &str)],
    ) {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.state.objects.lock().insert(
            path.to_owned(),
            (data.into(), format!("\"{etag}\""), headers),
        );
    }

    /// Delete the object at `path`.
    pub fn remove(&self, path: &str) {
        self.state.objects.lock().remove(path);
    }

    /// Stop listening and drop every open connection.
    pub fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn gets(&self) -> Vec<(String, String)> {
        self.state.gets.lock().clone()
    }
}

async fn answer(st: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = st.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    if st.unavailable.load(Ordering::Relaxed) {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let path = req
        .uri()
        .path()
        .strip_prefix("/base/")
        .unwrap_or("")
        .to_owned();
    let obj = st.objects.lock().get(&path).cloned();
    let Some((data, etag, extra)) = obj else {
        return status(StatusCode::NOT_FOUND);
    };
    let base = || {
        let mut b = Response::builder()
            .header(header::ETAG, &etag)
            .header(header::CONTENT_TYPE, "application/x-test")
            .header(header::LAST_MODIFIED, "Sun, 06 Nov 1994 08:49:37 GMT");
        for (n, v) in &extra {
            b = b.header(n.as_str(), v.as_str());
        }
        b
    };
    if req.method() == http::Method::HEAD {
        st.heads.fetch_add(1, Ordering::Relaxed);
        return base()
            .header(header::CONTENT_LENGTH, data.len())
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    st.gets.lock().push((path, range.clone()));
    if let Some(want) = req.headers().get(header::IF_MATCH)
        && want.as_bytes() != etag.as_bytes()
    {
        return status(StatusCode::PRECONDITION_FAILED);
    }
    let parsed = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
    match parsed {
        Some((a, b)) if !st.ignore_ranges.load(Ordering::Relaxed) && a < data.len() => {
            let b = b.min(data.len() - 1);
            base()
                .status(StatusCode::PARTIAL_CONTENT)
                .header(
                    header::CONTENT_RANGE,
                    format!("bytes {a}-{b}/{}", data.len()),
                )
                .body(Full::new(data.slice(a..b + 1)))
                .unwrap()
        }
        _ => base().body(Full::new(data)).unwrap(),
    }
}

fn status(s: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(s)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
