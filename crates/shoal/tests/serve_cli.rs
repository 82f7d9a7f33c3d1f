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

/// A node restarted while its origin is down serves what its disk tier holds, marked STALE,
/// within `stale_if_error` past `meta_ttl`; with `--stale-if-error 0s` it answers 502.
#[test]
fn after_a_restart_the_disk_tier_answers_stale_while_the_origin_is_down() {
    use common::origin::{PATH, metric, object, origin, wait_until};
    let data = object(100_000);
    let o = origin(data.clone());
    let cache = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", o.addr);
    let mut args = vec![
        "--origin",
        &url,
        "--chunk-size",
        "16KiB",
        "--dir",
        cache.path().to_str().unwrap(),
        "--meta-ttl",
        "1s",
    ];
    let meta_ttl = Duration::from_secs(1);
    {
        let s = serve(&args);
        let (status, head, body) = http(s.addr, PATH, "");
        assert!(status == 200 && body == data, "{head}");
        wait_until(
            "7 chunks and the metadata on disk",
            Duration::from_secs(10),
            || {
                let (_, _, body) = http(s.admin.unwrap(), "/status", "");
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                v["stats"]["disk"]["writes"] == 8
            },
        );
    }
    drop(o); // the origin is gone: connections are refused
    std::thread::sleep(meta_ttl + Duration::from_millis(200));

    let s = serve(&args);
    let (status, head, body) = http(s.addr, PATH, "");
    assert_eq!(status, 200, "{head}");
    assert!(body == data);
    assert!(
        head.to_ascii_lowercase().contains("x-cache: stale"),
        "{head}"
    );
    let (status, head, body) = http(s.addr, PATH, "Range: bytes=20000-20009\r\n");
    assert!(status == 206 && body == data[20000..20010], "{head}");
    let stale = metric(
        s.admin.unwrap(),
        "shoal_cache_stale_total",
        &[r#"group="meta""#],
    );
    assert!(stale >= 1.0, "shoal_cache_stale_total = {stale}");
    drop(s);

    args.extend(["--stale-if-error", "0s"]);
    let s = serve(&args);
    let (status, head, _) = http(s.addr, PATH, "");
    assert_eq!(status, 502, "{head}");
}
