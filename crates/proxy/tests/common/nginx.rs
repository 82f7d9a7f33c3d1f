//! A real nginx serving a directory, started by the test on a free loopback port with its own
//! prefix and config, killed through its handle on drop.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// nginx serving `root`, or `None` (after saying so loudly) when nginx is not installed
    /// outside CI. In CI (`CI=true`) a missing nginx fails the test.
    pub fn start(root: &Path) -> Option<Nginx> {
        if !Path::new(NGINX).exists() {
            let msg = format!("{NGINX} is missing: run scripts/install-deps");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED (not in CI): {msg}");
            return None;
        }
        // The port is free when picked (shoal-testkit), but something may still take it
        // before nginx binds it; then nginx exits and a readiness probe may reach the other
        // listener. So the probe checks that nginx itself answers, and a lost port is
        // retried with a new one.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = shoal_testkit::free_port();
            let mut child = spawn(dir.path(), root, port);
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let log =
                        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("nginx exited with {status}: {log}");
                }
                if shoal_testkit::answers(addr, "/.nginx-id", &dir.path().display().to_string()) {
                    return Some(Nginx { child, addr, dir });
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx did not answer on {addr} within 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("nginx lost its port to another listener 5 times in a row");
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

fn spawn(dir: &Path, root: &Path, port: u16) -> Child {
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  default_type application/octet-stream;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n  sendfile on;\n  tcp_nopush off;\n\
         server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
             location = /.nginx-id {{ return 200 \"{d}\"; }}\n  }}\n}}\n",
        root = root.display()
    );
    std::fs::File::create(dir.join("nginx.conf"))
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    Command::new(NGINX)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nginx")
}
