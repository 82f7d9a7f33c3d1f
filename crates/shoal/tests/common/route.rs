//! A `shoal route` process for the binary's router tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::origin::get;

/// A loopback address on a port from shoal-testkit.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], shoal_testkit::free_port()))
}

/// A running `shoal route` (data centre `test`), killed on drop.
pub struct Route {
    pub child: Child,
    pub front: SocketAddr,
    pub admin: SocketAddr,
}

impl Route {
    /// Starts `shoal route -c cfg --dc test` on free ports with `extra` flags (which should
    /// say `--health-interval`), and returns once its admin server answers `/status`: a bare
    /// connect could reach another listener, and says nothing about the server behind it.
    pub fn start(cfg: &Path, extra: &[&str]) -> Route {
        let (front, admin) = (free_addr(), free_addr());
        let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["route", "--dc", "test", "-c"])
            .arg(cfg)
            .args(["--listen", &front.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("run shoal route");
        let mut r = Route {
            child,
            front,
            admin,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !shoal_testkit::answers_ok(admin, "/status") {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("shoal route exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "shoal route never answered /status on {admin}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// `/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = get(self.admin, "/status", "");
        assert_eq!(code, 200, "/status");
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close` and a 20s read deadline: the status and the
/// body (status 0 when no answer came). A body is sent as a form, which is what the admin
/// port's switches read and what storage nodes store as given.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    try_request(addr, method, path, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// [`request`], with a failed connect or write as an error.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// A listener that accepts connections and never answers: a replica that hangs.
pub struct Hang {
    pub addr: SocketAddr,
}

impl Hang {
    pub fn start() -> Hang {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in l.incoming().flatten() {
                held.push(c);
            }
        });
        Hang { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
