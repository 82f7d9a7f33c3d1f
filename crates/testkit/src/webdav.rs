//! nginx WebDAV storage nodes on loopback (Debian's nginx with the dav-ext module): what
//! `shoal route` shards over, for the router's suites and the `shoal` binary's. Each node
//! has its own prefix, config, pid file, logs and data root, answers its own id at
//! `/.nginx-id` (so a probe never mistakes another test's listener for it), and is killed
//! through its child handle when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{answers, free_port};

const NGINX: &str = "/usr/sbin/nginx";
const DAV_EXT: &str = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so";

/// Whether nginx with the dav-ext module is installed. Without it: under `CI=true` the test
/// fails, naming the script that installs it; elsewhere it is skipped, loudly.
pub fn nginx_or_skip(test: &str) -> bool {
    if Path::new(NGINX).exists() && Path::new(DAV_EXT).exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: nginx or libnginx-mod-http-dav-ext is missing; run scripts/install-deps");
    }
    eprintln!(
        "SKIPPED {test}: nginx with the dav-ext module is not installed (scripts/install-deps)"
    );
    false
}

/// One nginx WebDAV node with its own prefix, config, pid file, logs and data root.
#[derive(Debug)]
pub struct Node {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Whether nginx keeps an access log ([`Node::requests`]).
    log_requests: bool,
    /// A second, HTTPS listener: its port, certificate and key files.
    tls: Option<(u16, PathBuf, PathBuf)>,
}

impl Node {
    pub fn start() -> Node {
        Node::launch_new(false, None)
    }

    /// A node that logs every request it answers, for tests that count what reached it.
    pub fn start_logging_requests() -> Node {
        Node::launch_new(true, None)
    }

    /// A node that also serves HTTPS (same data) with the PEM `cert` and `key`: see
    /// [`Node::https_url`].
    pub fn start_with_tls(cert: &Path, key: &Path) -> Node {
        Node::launch_new(false, Some((cert.to_owned(), key.to_owned())))
    }

    /// [`Node::start_with_tls`] that also logs requests ([`Node::start_logging_requests`]).
    pub fn start_with_tls_logging_requests(cert: &Path, key: &Path) -> Node {
        Node::launch_new(true, Some((cert.to_owned(), key.to_owned())))
    }

    fn launch_new(log_requests: bool, tls: Option<(PathBuf, PathBuf)>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut n = Node {
            child: None,
            port: free_port(),
            dir,
            log_requests,
            tls: tls.map(|(c, k)| (free_port(), c, k)),
        };
        for sub in ["data", "tmp", "logs"] {
            std::fs::create_dir_all(n.dir.path().join(sub)).unwrap();
        }
        // The port is free when picked (shoal-testkit), but something may still take it
        // before nginx binds it; then nginx exits, and the node is tried again on a new port.
        for _ in 0..5 {
            if n.launch() {
                return n;
            }
            n.port = free_port();
            if let Some(t) = &mut n.tls {
                t.0 = free_port();
            }
        }
        panic!("nginx lost its port to another listener 5 times in a row");
    }

    /// Starts nginx and waits until it answers: false if it exited because its port was taken.
    fn launch(&mut self) -> bool {
        let d = self.dir.path().display();
        let access_log = if self.log_requests {
            format!("{d}/logs/access.log forwarded")
        } else {
            "off".to_string()
        };
        let tls = match &self.tls {
            Some((port, cert, key)) => format!(
                "  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {};\n  \
                 ssl_certificate_key {};\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        let conf = format!(
            "load_module {DAV_EXT};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {d}/logs/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n log_format forwarded '$remote_addr - - [$time_local] \"$request\" $status \
             $body_bytes_sent \"$http_referer\" \"$http_user_agent\" \"$http_x_forwarded_for\" $connection';\n\
             access_log {access_log};\n client_body_temp_path {d}/tmp/body;\n\
             proxy_temp_path {d}/tmp/proxy;\n fastcgi_temp_path {d}/tmp/fcgi;\n\
             uwsgi_temp_path {d}/tmp/uwsgi;\n scgi_temp_path {d}/tmp/scgi;\n\
             client_max_body_size 0;\n\
             server {{\n  listen 127.0.0.1:{port};\n{tls}  root {d}/data;\n\
               location = /.nginx-id {{ return 200 \"{d}\"; }}\n\
               location / {{\n   dav_methods PUT DELETE MKCOL;\n   dav_ext_methods PROPFIND OPTIONS;\n\
                create_full_put_path on;\n   dav_access user:rw group:r all:r;\n  }}\n }}\n}}\n",
            port = self.port
        );
        let conf_path = self.dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let log = std::fs::read_to_string(self.dir.path().join("logs/error.log"))
                    .unwrap_or_default();
                if log.contains("Address already in use") {
                    return false;
                }
                panic!("nginx exited with {status}: {log}");
            }
            // The probe checks that nginx itself answers, not another test's listener.
            if answers(
                self.addr(),
                "/.nginx-id",
                &self.dir.path().display().to_string(),
            ) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not answer on {} within 10 s",
                self.addr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT` of a node started with [`Node::start_with_tls`].
    pub fn https_url(&self) -> String {
        let (port, _, _) = self
            .tls
            .as_ref()
            .expect("a node started with start_with_tls");
        format!("https://127.0.0.1:{port}")
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Whether the node stores `path` (read from its disk, not through HTTP).
    pub fn has(&self, path: &str) -> bool {
        self.root().join(path.trim_start_matches('/')).is_file()
    }

    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root().join(path.trim_start_matches('/'))).ok()
    }

    /// The request lines (`PUT /a.jpg HTTP/1.1`) this node has answered, in order; only for
    /// a node started with [`Node::start_logging_requests`]. nginx writes each line once the
    /// request is done.
    pub fn requests(&self) -> Vec<String> {
        self.log_fields(|l| l.split('"').nth(1))
    }

    /// The `X-Forwarded-For` header of each request this node has answered, in order (`-`
    /// when there was none); only for a node started with [`Node::start_logging_requests`].
    pub fn forwarded_for(&self) -> Vec<String> {
        self.log_fields(|l| l.rsplit('"').nth(1))
    }

    /// nginx's connection serial number of each request this node has answered, in order:
    /// requests that share one are on one kept-alive connection. Only for a node that logs
    /// requests.
    pub fn connections(&self) -> Vec<String> {
        self.log_fields(|l| l.rsplit(' ').next())
    }

    /// One field of each access log line, picked by `field`.
    fn log_fields(&self, field: impl Fn(&str) -> Option<&str>) -> Vec<String> {
        assert!(
            self.log_requests,
            "start the node with start_logging_requests"
        );
        let log =
            std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| field(l).map(str::to_string))
            .collect()
    }

    /// Kills the node (through its child handle) and waits until its port is closed.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join("nginx.pid"));
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.launch(),
            "nginx could not bind its old port {} again",
            self.port
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A photosrv config for data centre `test` with one shard per replica list (`shard1`,
/// `shard2`, ... in order), and optionally a `<migration>` ring, both with `chooser`.
pub fn photosrv_config(
    chooser: &str,
    shards: &[Vec<String>],
    migration: Option<&[Vec<String>]>,
) -> String {
    let block = |shards: &[Vec<String>]| {
        let mut s = String::from("  <test>\n   <shards>\n");
        for (i, reps) in shards.iter().enumerate() {
            s.push_str(&format!("    shard{} {}\n", i + 1, reps.join(" ")));
        }
        s.push_str("   </shards>\n  </test>\n");
        s
    };
    let mut s = format!("<photosrv>\n chooser {chooser}\n{}", block(shards));
    if let Some(m) = migration {
        s.push_str(&format!(
            " <migration>\n  chooser {chooser}\n{}</migration>\n",
            block(m)
        ));
    }
    s.push_str("</photosrv>\n");
    s
}
