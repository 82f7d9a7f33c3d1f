//! Two `shoal repair --journal` runs on one journal: while the first is replaying (held up by a
//! storage node that takes its connection but does not answer until the test lets it), a
//! second is refused at once with a message naming the journal, the router's appends to the
//! journal go through, and once the first finishes every entry has been replayed exactly once
//! (counted in the target node's access log).

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use shoal_router::journal::{self, Entry};
use shoal_testkit::webdav::{Node, nginx_or_skip, photosrv_config};

/// A TCP relay to a node that accepts connections at once but passes nothing either way
/// until [`Gate::open`]: a storage node that is slow to answer, for exactly as long as the
/// test needs.
struct Gate {
    port: u16,
    open: Arc<(Mutex<bool>, Condvar)>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gate {
    fn start(to: SocketAddr) -> Gate {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, a, s) = (open.clone(), accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let (o, s) = (o.clone(), s.clone());
                std::thread::spawn(move || {
                    let (lock, cv) = &*o;
                    let mut is_open = lock.lock().unwrap();
                    while !*is_open && !s.load(Ordering::SeqCst) {
                        is_open = cv
                            .wait_timeout(is_open, Duration::from_millis(100))
                            .unwrap()
                            .0;
                    }
                    drop(is_open);
                    let Ok(upstream) = TcpStream::connect(to) else {
                        return;
                    };
                    relay(client, upstream);
                });
            }
        });
        Gate {
            port,
            open,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn open(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.open();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies bytes both ways until either side closes.
fn relay(a: TcpStream, b: TcpStream) {
    let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    let (mut a, mut b) = (a, b);
    let _ = std::io::copy(&mut b, &mut a);
    let _ = a.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// A `shoal repair` process, killed if the test ends before it does.
struct Repair(Option<Child>);

impl Repair {
    fn start(cfg: &Path, journal: &Path) -> Repair {
        let child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["repair", "--dc", "test", "-c"])
            .arg(cfg)
            .arg("--journal")
            .arg(journal)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run shoal repair");
        Repair(Some(child))
    }

    fn exited(&mut self) -> bool {
        self.0
            .as_mut()
            .is_none_or(|c| c.try_wait().unwrap().is_some())
    }

    /// Waits at most `limit` for it to exit; its output, or `None` if it is still running.
    fn wait(&mut self, limit: Duration) -> Option<Output> {
        let deadline = Instant::now() + limit;
        while !self.exited() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut child = self.0.take()?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
        Some(Output {
            status: child.wait().unwrap(),
            stdout: out,
            stderr: err,
        })
    }
}

impl Drop for Repair {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {}; stdout: {}; stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_second_journal_repair_is_refused_while_one_runs_and_every_entry_is_replayed_once() {
    if !nginx_or_skip("route_repair") {
        return;
    }
    let source = Node::start();
    let target = Node::start_logging_requests();
    let gate = Gate::start(target.addr());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("photosrv.cfg");
    std::fs::write(
        &cfg,
        photosrv_config("jump", &[vec![source.url(), gate.url()]], None),
    )
    .unwrap();
    let jpath = dir.path().join("journal");
    // The node behind the gate missed three PUTs; the source has the files.
    let paths: Vec<String> = (0..3).map(|i| format!("/r/{i}.jpg")).collect();
    std::fs::create_dir_all(source.root().join("r")).unwrap();
    for p in paths.iter().chain([&"/r/late.jpg".to_string()]) {
        std::fs::write(source.root().join(&p[1..]), p.as_bytes()).unwrap();
    }
    let missed: Vec<Entry> = paths
        .iter()
        .map(|p| Entry::now("PUT", &gate.url(), p))
        .collect();
    journal::append(&jpath, &missed).unwrap();

    let mut first = Repair::start(&cfg, &jpath);
    let deadline = Instant::now() + Duration::from_secs(20);
    while gate.accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            !first.exited(),
            "the first repair ended before it reached the gate: {}",
            text(&first.wait(Duration::ZERO).unwrap())
        );
        assert!(Instant::now() < deadline, "the first repair never copied");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first repair is replaying (held at the gate). The router keeps journalling: its
    // append is not held up by the repair.
    let started = Instant::now();
    journal::append(&jpath, &[Entry::now("PUT", &gate.url(), "/r/late.jpg")]).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an append waited {:?} for the repair",
        started.elapsed()
    );
    // A second repair now: refused at once, changing nothing.
    let mut second = Repair::start(&cfg, &jpath);
    let second_early = second.wait(Duration::from_secs(10));
    gate.open();
    let first_out = first
        .wait(Duration::from_secs(60))
        .expect("the first repair finishes once the gate opens");
    let second_out = second_early
        .clone()
        .or_else(|| second.wait(Duration::from_secs(60)))
        .expect("the second repair ended");
    let puts = |p: &str| {
        let line = format!("PUT {p} ");
        target
            .requests()
            .iter()
            .filter(|r| r.starts_with(&line))
            .count()
    };
    let counts: Vec<usize> = paths.iter().map(|p| puts(p)).collect();

    assert!(
        second_early.is_some(),
        "the second repair ran alongside the first instead of being refused: {}; PUTs per entry {counts:?}",
        text(&second_out)
    );
    let err = String::from_utf8_lossy(&second_out.stderr);
    assert!(!second_out.status.success(), "{}", text(&second_out));
    assert!(
        err.contains(&jpath.display().to_string()) && err.contains("another `shoal repair`"),
        "{}",
        text(&second_out)
    );
    assert!(first_out.status.success(), "{}", text(&first_out));
    assert_eq!(counts, [1, 1, 1], "each missed PUT replayed exactly once");
    for p in &paths {
        assert_eq!(target.read(p).unwrap(), p.as_bytes());
    }
    // What the router appended meanwhile waits for the next repair, which replays it once.
    let (left, _) = journal::read(&jpath).unwrap();
    let left: Vec<&[u8]> = left.iter().map(|e| e.path.as_slice()).collect();
    assert_eq!(left, [&b"/r/late.jpg"[..]]);
    let third = Repair::start(&cfg, &jpath)
        .wait(Duration::from_secs(60))
        .unwrap();
    assert!(third.status.success(), "{}", text(&third));
    assert_eq!(puts("/r/late.jpg"), 1);
    assert_eq!(journal::read(&jpath).unwrap().0.len(), 0);
    assert_eq!(counts, paths.iter().map(|p| puts(p)).collect::<Vec<_>>());
}
