//! An in-process `shoal memcache` proxy on a loopback port, and a blocking test client.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_memcache::proxy::{Proxy, ProxyConfig, bind};

/// A proxy on its own tokio runtime; the runtime (and every task) goes on drop.
pub struct Shoal {
    rt: Option<tokio::runtime::Runtime>,
    pub port: u16,
    pub proxy: Arc<Proxy>,
}

impl Drop for Shoal {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Shoal {
    pub fn start(cfg: ProxyConfig) -> Shoal {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let addr = "127.0.0.1:0".parse().expect("addr");
        let (proxy, listener) = rt.block_on(bind(cfg, addr)).expect("bind proxy");
        let port = listener.local_addr().expect("local addr").port();
        rt.spawn(proxy.clone().serve(listener, std::future::pending()));
        Shoal {
            rt: Some(rt),
            port,
            proxy,
        }
    }

    /// The proxy runtime's handle, to run more tasks (a config feed, mock servers) on it.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.as_ref().expect("runtime").handle().clone()
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }
}

/// A blocking client with a read deadline on every call.
pub struct Client {
    pub s: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Client { s }
    }

    /// Sends `req` and reads until `done(reply)` or `within` passes (then returns what came).
    pub fn call_until(
        &mut self,
        req: &[u8],
        within: Duration,
        done: impl Fn(&[u8]) -> bool,
    ) -> Vec<u8> {
        self.s.write_all(req).expect("write");
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        while Instant::now() < deadline && !done(&out) {
            match self.s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        out
    }

    /// Sends `req` (which should end the connection, with `quit`) and reads until the server
    /// closes it, for at most 10 s: the replies, and whether it closed.
    pub fn call_to_close(&mut self, req: &[u8]) -> (Vec<u8>, bool) {
        self.s.write_all(req).expect("write");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        while Instant::now() < deadline {
            match self.s.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    /// Sends `req` followed by `mn`, and returns the replies before the final `MN`.
    pub fn call(&mut self, req: &[u8]) -> Vec<u8> {
        let mut r = req.to_vec();
        r.extend_from_slice(b"mn\r\n");
        let mut out = self.call_until(&r, Duration::from_secs(10), |b| b.ends_with(b"MN\r\n"));
        assert!(
            out.ends_with(b"MN\r\n"),
            "no reply to {:?}: got {:?}",
            String::from_utf8_lossy(req),
            String::from_utf8_lossy(&out)
        );
        out.truncate(out.len() - 4);
        out
    }
}

impl Client {
    pub fn connect_to(host: &str, port: u16) -> Client {
        let s = TcpStream::connect((host, port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Client { s }
    }
}

impl Client {
    /// Sends `req` followed by `version`, and returns the replies before the `VERSION` line
    /// (for streams that contain `mn` themselves).
    pub fn call_v(&mut self, req: &[u8]) -> Vec<u8> {
        let mut r = req.to_vec();
        r.extend_from_slice(b"version\r\n");
        let done = |b: &[u8]| version_at(b).is_some();
        let mut out = self.call_until(&r, Duration::from_secs(10), done);
        let at = version_at(&out)
            .unwrap_or_else(|| panic!("no reply: got {:?}", String::from_utf8_lossy(&out)));
        out.truncate(at);
        out
    }
}

/// Where a final `VERSION ...\r\n` line starts, if the reply ends with one.
fn version_at(b: &[u8]) -> Option<usize> {
    if !b.ends_with(b"\r\n") {
        return None;
    }
    let body = &b[..b.len() - 2];
    let start = body.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
    body[start..].starts_with(b"VERSION ").then_some(start)
}
