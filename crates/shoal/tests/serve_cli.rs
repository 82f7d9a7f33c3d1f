//! `shoal serve` as an operator runs it: the real binary over a directory, on loopback.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

mod common;
use common::serve::Serve;

/// `shoal serve` with an admin port, ready once both addresses are printed.
fn serve(args: &[&str]) -> Serve {
    let mut all = vec!["--admin-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    common::serve::start(&all, &["admin on"])
}

fn http(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    (head[9..12].parse().unwrap(), head, raw[end + 4..].to_vec())
}

#[test]
fn serve_over_a_directory_with_ranges_status_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("blob.bin"), &data).unwrap();
    let s = serve(&[
        "--origin",
        dir.path().to_str().unwrap(),
        "--chunk-size",
        "64KiB",
    ]);

    let (status, head, body) = http(s.addr, "/blob.bin", "Range: bytes=100000-200000\r\n");
    assert_eq!(status, 206, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-range: bytes 100000-200000/300000")
    );
    assert!(body == data[100_000..=200_000]);
    let (status, _, body) = http(s.addr, "/blob.bin", "");
    assert!(status == 200 && body == data);
    assert_eq!(http(s.addr, "/%2e%2e/etc/passwd", "").0, 400);

    let (status, _, body) = http(s.admin.unwrap(), "/status", "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["door"], "serve");
    assert_eq!(v["chunk_size"], 65536);
    assert_eq!(v["stats"]["chunks"]["loads"], 5);
    let (_, _, body) = http(s.admin.unwrap(), "/metrics", "");
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("shoal_http_requests_total{status=\"206\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("shoal_cache_loads_total{group=\"chunks\"} 5"),
        "{text}"
    );
}

#[test]
fn config_file_and_chunkproxy_aliases() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"0123456789").unwrap();
    let conf = dir.path().join("shoal.toml");
    std::fs::write(
        &conf,
        format!(
            "[serve]\norigin = {:?}\nmemory = \"8MiB\"\n",
            dir.path().to_str().unwrap()
        ),
    )
    .unwrap();
    let s = serve(&[
        "--config",
        conf.to_str().unwrap(),
        "--size-c",
        "1",
        "--size-m",
        "4",
    ]);
    let (status, _, body) = http(s.addr, "/a.txt", "Range: bytes=-3\r\n");
    assert_eq!((status, body.as_slice()), (206, &b"789"[..]));
    let (_, _, body) = http(s.admin.unwrap(), "/status", "");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["chunk_size"], 1 << 20);

    // --url is --origin; config errors are one line and exit 1 before binding.
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "serve",
            "--url",
            "/nonexistent/dir",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("shoal: error: origin directory") && err.lines().count() == 1,
        "{err}"
    );
    std::fs::write(&conf, "[serve]\nchunk = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["serve", "--config", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown field `chunk`")
    );
}

#[test]
fn disk_tier_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
    std::fs::write(dir.path().join("d.bin"), &data).unwrap();
    let args = [
        "--origin",
        dir.path().to_str().unwrap(),
        "--chunk-size",
        "16KiB",
        "--dir",
        cache.path().to_str().unwrap(),
        "--size-d",
        "64",
    ];
    let disk = |s: &Serve| -> serde_json::Value {
        let (_, _, body) = http(s.admin.unwrap(), "/status", "");
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["stats"]["disk"].clone()
    };
    {
        let s = serve(&args);
        assert!(http(s.addr, "/d.bin", "").2 == data);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Seven chunks and the object's metadata.
        while disk(&s)["writes"] != 8 {
            assert!(std::time::Instant::now() < deadline, "{}", disk(&s));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let s = serve(&args);
    assert!(http(s.addr, "/d.bin", "").2 == data);
    let d = disk(&s);
    assert_eq!(
        (d["hits"].as_u64(), d["items"].as_u64()),
        (Some(8), Some(8)),
        "{d}"
    );
}

/// The value of the first sample of `name` with `labels` in a Prometheus text page.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(labels) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Random single ranges, multiple ranges and whole GETs of three objects from 4 threads,
/// every body checked byte for byte; returns how many replies were checked.
fn read_everything(addr: SocketAddr, files: &[(String, Vec<u8>)]) -> usize {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                scope.spawn(move || {
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                    let mut next = move |n: usize| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x % n as u64) as usize
                    };
                    for i in 0..60 {
                        let (name, data) = &files[next(files.len())];
                        let path = format!("/{name}");
                        let a = next(data.len());
                        let b = (a + next(200_000)).min(data.len() - 1);
                        match i % 3 {
                            0 => {
                                let (status, head, body) = http(addr, &path, "");
                                assert_eq!(status, 200, "{head}");
                                assert!(body == *data, "whole {path}");
                            }
                            1 => {
                                let r = format!("Range: bytes={a}-{b}\r\n");
                                let (status, head, body) = http(addr, &path, &r);
                                assert_eq!(status, 206, "{head}");
                                assert!(body == data[a..=b], "{path} {a}-{b}");
                            }
                            _ => {
                                // Two parts, one in each half; each part's bytes in the body.
                                let half = data.len() / 2;
                                let (a, b) = (a % half, (b % half).max(a % half));
                                let c = half + next(half - 70_000);
                                let r = format!("Range: bytes={a}-{b},{c}-{}\r\n", c + 69_999);
                                let (status, head, body) = http(addr, &path, &r);
                                assert_eq!(status, 206, "{head}");
                                for (from, to) in [(a, b), (c, c + 69_999)] {
                                    let part = &data[from..=to];
                                    assert!(
                                        body.windows(part.len()).any(|w| w == part),
                                        "{path} part {from}-{to} of {a}-{b},{c}-"
                                    );
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().map(|h| h.join().unwrap()).count() * 60
    })
}

#[test]
fn chunks_are_sent_with_sendfile_and_keep_their_bytes_under_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = [1_000_003usize, 300_000, 3 * 65_536 + 17]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let name = format!("f{i}.bin");
            let data: Vec<u8> = (0..n as u64)
                .map(|j| (j.wrapping_mul(2654435761) >> (8 + i)) as u8)
                .collect();
            std::fs::write(dir.path().join(&name), &data).unwrap();
            (name, data)
        })
        .collect();
    for sendfile in ["on", "off"] {
        // 1 MiB of memory for 1.5 MB of objects: chunks are evicted and their slots reused
        // while replies read them.
        let s = serve(&[
            "--origin",
            dir.path().to_str().unwrap(),
            "--chunk-size",
            "64KiB",
            "--memory",
            "1MiB",
            "--sendfile",
            sendfile,
        ]);
        assert_eq!(read_everything(s.addr, &files), 240);
        let (_, _, body) = http(s.admin.unwrap(), "/metrics", "");
        let text = String::from_utf8(body).unwrap();
        let evictions = sample(&text, "shoal_cache_evictions_total", "group=\"chunks\"");
        assert!(
            evictions.unwrap_or(0.0) > 0.0,
            "no chunk was evicted: {text}"
        );
        let sent = sample(&text, "shoal_http_sendfile_bytes_total", "").unwrap_or(0.0);
        if sendfile == "on" {
            // Far more than the objects' size: replies of cached chunks went out this way.
            assert!(sent > 10e6, "{sent} bytes sent with sendfile: {text}");
            let arena = sample(&text, "shoal_arena_bytes", "").unwrap();
            assert!(
                arena <= 2.0 * 1_048_576.0,
                "{arena} bytes in the memory file"
            );
        } else {
            assert_eq!(sent, 0.0, "--sendfile off still used sendfile");
        }
    }
}

#[test]
fn sendfile_takes_on_or_off() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["serve", "--origin", ".", "--sendfile", "maybe"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected on or off"), "{err}");
}
