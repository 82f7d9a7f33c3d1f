//! One GET of a config URL with hyper's HTTP/1.1 client, its body read as a config stream.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use super::{HttpUrl, RestError, Splitter, servers_from_config};
use crate::proxy::Servers;

/// Time to connect and to get the response head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest single config.
const MAX_CONFIG: usize = 16 << 20;

/// Aborts the connection task when the exchange is over, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// GETs `url` and calls `apply` with each config of its body. `Ok` when the body ended
/// after at least one valid config; an error for a failed exchange, a bad config or a body
/// without any config. The body itself has no idle limit: a streaming URL is quiet until the
/// cluster changes (TCP keepalive is on, as in moxi).
pub(super) async fn stream_configs(
    url: &HttpUrl,
    auth: Option<&(String, String)>,
    apply: &mut (impl FnMut(Servers) + Send),
) -> Result<(), RestError> {
    let http_err = |e: &dyn std::fmt::Display| RestError::Http {
        url: url.text.clone(),
        message: e.to_string(),
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect(url))
        .await
        .map_err(|_| RestError::Connect {
            url: url.text.clone(),
            message: "timed out".into(),
        })??;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http_err(&e))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let mut req = http::Request::get(url.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::ACCEPT, "application/json");
    if let Some((user, password)) = url.auth.as_ref().or(auth)
        && !user.is_empty()
    {
        let basic = base64(format!("{user}:{password}").as_bytes());
        req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| http_err(&e))?;
    let resp = tokio::time::timeout(HEAD_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| http_err(&"no response head in time"))?
        .map_err(|e| http_err(&e))?;
    match resp.status().as_u16() {
        200..=299 => {}
        401 => return Err(RestError::Unauthorized(url.text.clone())),
        status => {
            return Err(RestError::Status {
                url: url.text.clone(),
                status,
            });
        }
    }
    let mut body = resp.into_body();
    let mut splitter = Splitter::new(MAX_CONFIG);
    let mut applied = false;
    let mut use_config = |config: &[u8]| -> Result<(), RestError> {
        let servers = servers_from_config(config)?;
        tracing::debug!(url = %url.text, "REST config received");
        apply(servers);
        applied = true;
        Ok(())
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| http_err(&e))?;
        if let Ok(data) = frame.into_data() {
            for config in splitter.push(&data)? {
                use_config(&config)?;
            }
        }
    }
    if let Some(last) = splitter.finish() {
        use_config(&last)?;
    }
    if applied {
        Ok(())
    } else {
        Err(RestError::BadConfig(format!("{}: an empty body", url.text)))
    }
}

async fn connect(url: &HttpUrl) -> Result<tokio::net::TcpStream, RestError> {
    let err = |e: std::io::Error| RestError::Connect {
        url: url.text.clone(),
        message: e.to_string(),
    };
    let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(err)?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(err)?;
        socket.set_keepalive(true).map_err(err)?;
        match socket.connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header.
fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
