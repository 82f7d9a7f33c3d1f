//! Hand-made requests to a peer port: HTTP/1.1 over a plain socket (so nothing tidies the
//! request line), and gRPC frames over HTTP/2.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply: status, head (lower-cased), body.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Send `method target` with `headers` (each `name: value`) to `url` over HTTP/1.1 and read
/// the reply until the server closes (`Connection: close`); within 10 seconds.
pub async fn http1(url: &str, method: &str, target: &str, headers: &[&str]) -> Raw {
    let addr = url.trim_start_matches("http://");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if method != "GET" && method != "HEAD" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        // The server may reset after answering a request it refused: keep what came.
        let _ = s.read_to_end(&mut buf).await;
        buf
    };
    let buf = super::within(10, "a raw HTTP/1.1 request", exchange).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head in {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).to_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Raw {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    }
}

/// A protobuf varint.
fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A `GetRequest { galaxy, key }` as protobuf.
pub fn get_request(galaxy: &str, key: &[u8]) -> Vec<u8> {
    let mut m = vec![0x0a];
    varint(galaxy.len(), &mut m);
    m.extend_from_slice(galaxy.as_bytes());
    m.push(0x12);
    varint(key.len(), &mut m);
    m.extend_from_slice(key);
    m
}

/// Call gRPC `method` of `galaxycachepb.GalaxyCache` with `message` (raw protobuf bytes)
/// over HTTP/2; the `grpc-status` and `grpc-message` (from the headers of a trailers-only
/// reply, else from the trailers).
pub async fn grpc(url: &str, method: &str, message: &[u8], auth: Option<&str>) -> (i32, String) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    grpc_with(url, method, message, &headers).await
}

/// [`grpc`] with extra request `headers`.
pub async fn grpc_with(
    url: &str,
    method: &str,
    message: &[u8],
    headers: &[(&str, &str)],
) -> (i32, String) {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    let mut req = http::Request::post(format!("{url}/galaxycachepb.GalaxyCache/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(frame))).unwrap();
    let exchange = async {
        let resp = client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let field = |name: &str| {
            parts
                .headers
                .get(name)
                .or_else(|| trailers.get(name))
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let code = field("grpc-status").unwrap().parse().unwrap();
        let message = field("grpc-message").unwrap_or_default();
        (code, percent_decode(&message))
    };
    super::within(10, "a raw gRPC request", exchange).await
}

/// gRPC percent-encodes `grpc-message`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
