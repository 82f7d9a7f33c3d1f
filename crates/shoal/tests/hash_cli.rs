//! `shoal hash` as an operator runs it: the real binary, keys on stdin or as arguments.

// Test helpers: a panic is the test failing, with the message saying why.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn shoal(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shoal");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn vectors(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ring/tests/vectors")
        .join(name)
}

struct Column {
    algo: String,
    members: Vec<String>,
    cells: Vec<usize>,
}

/// Reads the ring crate's golden tables (`#col name algo members`, a header, `key cells...`).
fn read_table(path: &Path) -> (Vec<Vec<u8>>, Vec<Column>) {
    let text = std::fs::read(path).unwrap();
    let (mut keys, mut cols, mut header_seen) = (Vec::new(), Vec::<Column>::new(), false);
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if header_seen {
            let mut f = line.split(|&b| b == b'\t');
            keys.push(f.next().unwrap().to_vec());
            for c in &mut cols {
                let cell = std::str::from_utf8(f.next().unwrap()).unwrap();
                // Multi-owner cells list several indices; the owner is the first.
                c.cells
                    .push(cell.split(',').next().unwrap().parse().unwrap());
            }
        } else if let Some(col) = line.strip_prefix(b"#col\t") {
            let f: Vec<&str> = std::str::from_utf8(col).unwrap().splitn(3, '\t').collect();
            cols.push(Column {
                algo: f[1].to_string(),
                members: f[2].split(',').map(str::to_owned).collect(),
                cells: Vec::new(),
            });
        } else if !line.starts_with(b"#") {
            header_seen = true;
        }
    }
    (keys, cols)
}

/// The `shoal hash` flags for a golden column's algorithm: an [`shoal_ring::Algorithm`] by
/// name, or a nutcracker pool (`ketama-twemproxy/hash=murmur/hash_tag={}`) as `--hash` and
/// `--hash-tag`; `None` for what `shoal hash` does not offer.
fn hash_flags(algo: &str) -> Option<Vec<String>> {
    if shoal_ring::Algorithm::ALL.iter().any(|a| a.name() == algo) {
        return Some(vec!["--algorithm".into(), algo.into()]);
    }
    let mut parts = algo.split('/');
    let distribution = parts.next()?.strip_suffix("-twemproxy")?;
    // nutcracker's pools in the table name their hash, but for md5 + ketama.
    let mut flags = vec![
        "--algorithm".into(),
        distribution.into(),
        "--hash".into(),
        "md5".into(),
    ];
    for part in parts {
        match part.split_once('=')? {
            ("hash", h) => flags[3] = h.into(),
            ("hash_tag", t) => flags.extend(["--hash-tag".into(), t.into()]),
            _ => return None,
        }
    }
    Some(flags)
}

/// Every golden column whose placement `shoal hash` offers must come out of the binary exactly
/// as the real system (libmemcached, nutcracker, or the reference model) placed it.
#[test]
fn hash_places_keys_where_the_reference_systems_do() {
    let mut checked = 0;
    for table in ["memcached.tsv", "models.tsv"] {
        let (keys, cols) = read_table(&vectors(table));
        let mut stdin = Vec::new();
        for k in &keys {
            stdin.extend_from_slice(k);
            stdin.push(b'\n');
        }
        for (col, flags) in cols.iter().filter_map(|c| Some((c, hash_flags(&c.algo)?))) {
            let servers = col.members.join(",");
            let mut args = vec!["hash", "--servers", &servers];
            args.extend(flags.iter().map(String::as_str));
            let out = shoal(&args, &stdin);
            assert!(
                out.status.success(),
                "{}: {}",
                col.algo,
                String::from_utf8_lossy(&out.stderr)
            );
            let lines: Vec<&[u8]> = out
                .stdout
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(lines.len(), keys.len(), "{} {servers}", col.algo);
            for ((line, key), &want) in lines.iter().zip(&keys).zip(&col.cells) {
                let mut expected = key.clone();
                expected.push(b'\t');
                expected.extend_from_slice(col.members[want].as_bytes());
                assert_eq!(
                    String::from_utf8_lossy(line),
                    String::from_utf8_lossy(&expected),
                    "{} over {servers}",
                    col.algo
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} golden columns were usable");
}

#[test]
fn keys_as_arguments_and_arbitrary_bytes_on_stdin() {
    let servers = "127.0.0.1:11411,127.0.0.1:11412,127.0.0.1:11413";
    let out = shoal(&["hash", "-a", "ketama", "-s", servers, "a", "b"], b"");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, "a\t127.0.0.1:11412\nb\t127.0.0.1:11411\n");

    // Non-UTF-8 bytes, spaces and a final line without a newline all pass through untouched.
    let out = shoal(
        &["hash", "-a", "jump", "-s", "shard1,shard2"],
        b"\xff\xfe key\nlast",
    );
    assert!(out.status.success());
    let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
    assert!(
        lines[0].starts_with(b"\xff\xfe key\tshard"),
        "{:?}",
        lines[0]
    );
    assert!(lines[1].starts_with(b"last\tshard"), "{:?}", lines[1]);
    assert_eq!(lines.len(), 3, "two placements and the final newline");
}

#[test]
fn vbucket_maps_from_a_file() {
    let dir = std::env::temp_dir().join(format!("shoal-hash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("map.json");
    std::fs::write(
        &map,
        r#"{"vBucketServerMap":{"hashAlgorithm":"CRC","numReplicas":0,
            "serverList":["10.0.0.1:11210","10.0.0.2:11210","10.0.0.3:11210","10.0.0.4:11210"],
            "vBucketMap":[[0],[1],[2],[3]]}}"#,
    )
    .unwrap();
    let map_arg = map.to_str().unwrap();
    let out = shoal(
        &[
            "hash",
            "-a",
            "vbucket",
            "--vbucket-map",
            map_arg,
            "hello",
            "name",
            "tomorrow",
            "another key",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libvbucket's own vectors: hello→0, name→3, tomorrow→1, "another key"→2.
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "hello\t10.0.0.1:11210\nname\t10.0.0.4:11210\ntomorrow\t10.0.0.2:11210\nanother key\t10.0.0.3:11210\n"
    );

    let bad = dir.join("bad.json");
    for (json, needle) in [
        (
            r#"{"numReplicas":0,"serverList":["a:1"],"vBucketMap":[[0],[0],[0]]}"#,
            "power of two",
        ),
        (
            r#"{"numReplicas":0,"serverList":["a:1"],"vBucketMap":[[0],[1]]}"#,
            "1",
        ),
        (
            r#"{"numReplicas":0,"serverList":["a:1"],"vBucketMap":"#,
            "JSON",
        ),
    ] {
        std::fs::write(&bad, json).unwrap();
        let out = shoal(
            &[
                "hash",
                "-a",
                "vbucket",
                "--vbucket-map",
                bad.to_str().unwrap(),
                "k",
            ],
            b"",
        );
        assert_one_line_error(&out, needle);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(out.stdout.is_empty(), "nothing placed on error");
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert!(err.starts_with("shoal: error: "), "{err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{needle:?} not in {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_gives_one_clear_line_and_a_failing_exit() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["hash", "-a", "ketamax", "-s", "h:1", "k"],
            "unknown algorithm",
        ),
        (
            &["hash", "-a", "ketama", "-s", "127.0.0.1", "k"],
            "host:port",
        ),
        (&["hash", "-a", "ketama", "-s", "h:99999", "k"], "port"),
        (&["hash", "-a", "ketama", "-s", "h:1:0", "k"], "weight"),
        (&["hash", "-a", "ketama", "-s", "h:1,,h:2", "k"], "empty"),
        (&["hash", "-a", "ketama", "k"], "--servers"),
        (&["hash", "-a", "vbucket", "k"], "--vbucket-map"),
        (
            &[
                "hash",
                "-a",
                "vbucket",
                "--vbucket-map",
                "/nonexistent/map.json",
                "k",
            ],
            "/nonexistent/map.json",
        ),
        (
            &[
                "hash",
                "-a",
                "modula",
                "-s",
                "h:1",
                "--vbucket-map",
                "m.json",
                "k",
            ],
            "only used with",
        ),
        (
            &["hash", "-a", "jump", "--hash", "md5", "-s", "a,b", "k"],
            "with --algorithm ketama or modula",
        ),
        (
            &["hash", "-a", "ketama", "--hash", "MD5", "-s", "h:1:1", "k"],
            "one of one_at_a_time, md5",
        ),
        (
            &[
                "hash",
                "-a",
                "modula",
                "--hash-tag",
                "{",
                "-s",
                "h:1:1",
                "k",
            ],
            "exactly two bytes",
        ),
        (
            &[
                "hash",
                "-a",
                "ketama",
                "--hash",
                "md5",
                "-s",
                "h:1:1 a,h:2:1 a",
                "k",
            ],
            "\"a\"",
        ),
    ];
    for (args, needle) in cases {
        let out = shoal(args, b"");
        assert_one_line_error(&out, needle);
    }
}

#[test]
fn help_lists_the_doors() {
    let out = shoal(&["--help"], b"");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("hash"), "{text}");
    let out = shoal(&["--version"], b"");
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("shoal "));
}

/// `--paths` (photosrv's choosers): `/a/b.jpg`, its encoded, doubled-slash and query forms
/// all land where the key `a/b.jpg` does; without it the slash is part of the key; a path photosrv refuses is one error
/// line naming it, and `--paths` with another algorithm is refused.
#[test]
fn paths_place_request_paths_as_the_router_does() {
    let shards = "shard1,shard2,shard3,shard4";
    let owner = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        text.trim_end().rsplit('\t').next().unwrap().to_string()
    };
    let key = "a/b.jpg";
    for algo in ["jump", "chash"] {
        let want = owner(shoal(&["hash", "-a", algo, "-s", shards, key], b""));
        let paths = "/a/b.jpg\n//a//b.jpg?w=100\n/a/%62.jpg\n";
        let out = shoal(
            &["hash", "-a", algo, "-s", shards, "--paths"],
            paths.as_bytes(),
        );
        assert!(out.status.success(), "{algo}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        for (line, path) in text.lines().zip(paths.lines()) {
            assert_eq!(line, format!("{path}\t{want}"), "{algo}");
        }
    }
    // Without --paths the leading slash is hashed too, and here lands elsewhere.
    assert_eq!(
        owner(shoal(&["hash", "-a", "jump", "-s", shards, key], b"")),
        "shard1"
    );
    assert_eq!(
        owner(shoal(
            &["hash", "-a", "jump", "-s", shards, "/a/b.jpg"],
            b""
        )),
        "shard4"
    );

    let out = shoal(
        &[
            "hash",
            "-a",
            "jump",
            "-s",
            shards,
            "--paths",
            "/a/../etc/passwd",
        ],
        b"",
    );
    assert_one_line_error(&out, "path \"/a/../etc/passwd\" is refused");
    let out = shoal(&["hash", "-a", "ketama", "-s", "h:1", "--paths", "/x"], b"");
    assert_one_line_error(&out, "--paths is for photosrv's choosers");
}

/// Weighted photosrv shards (`shard2:3`, the config's `shard2,3`): `shoal hash --paths` names
/// the shard `shoal route --explain` names for the same config, for jump and chash.
#[test]
fn weighted_shards_place_as_the_router_does() {
    let dir = tempfile::tempdir().unwrap();
    for chooser in ["jump", "chash"] {
        let cfg = dir.path().join(format!("{chooser}.cfg"));
        std::fs::write(
            &cfg,
            format!(
                "<photosrv>\n chooser {chooser}\n <test>\n  <shards>\n   shard1 http://127.0.0.1:1\n   \
                 shard2,3 http://127.0.0.1:2\n   shard3,0 http://127.0.0.1:3\n  </shards>\n </test>\n</photosrv>\n"
            ),
        )
        .unwrap();
        let paths: Vec<String> = (0..40).map(|i| format!("/w/{i}.jpg")).collect();
        let mut args = vec![
            "hash",
            "-a",
            chooser,
            "-s",
            "shard1,shard2:3,shard3:0",
            "--paths",
        ];
        args.extend(paths.iter().map(String::as_str));
        let out = shoal(&args, b"");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let placed = String::from_utf8(out.stdout).unwrap();
        let mut per = [0; 3];
        for (line, path) in placed.lines().zip(&paths) {
            let explain = shoal(
                &[
                    "route",
                    "-c",
                    cfg.to_str().unwrap(),
                    "--dc",
                    "test",
                    "--explain",
                    path,
                ],
                b"",
            );
            let text = String::from_utf8(explain.stdout).unwrap();
            let shard = text
                .lines()
                .find_map(|l| l.strip_prefix("primary\t"))
                .and_then(|l| l.split('\t').next())
                .unwrap_or_else(|| panic!("{text}"));
            assert_eq!(line, format!("{path}\t{shard}"), "{chooser}");
            per[usize::from(shard.as_bytes()[5] - b'1')] += 1;
        }
        assert_eq!(per[2], 0, "{chooser}: weight 0 takes nothing");
        assert!(
            per[1] > per[0],
            "{chooser}: weight 3 takes more than weight 1: {per:?}"
        );
    }
    for (servers, needle) in [
        ("shard1:x", "bad weight \"x\" for shard \"shard1\""),
        (":2,shard2", "shard 1 has no name"),
        ("a:0,a:2", "shard \"a\" is listed twice"),
        ("a:0,b:0", "every shard has weight 0"),
        (
            "a:4000000000",
            "shard a has weight 4000000000: at most 10000",
        ),
    ] {
        let out = shoal(&["hash", "-a", "chash", "-s", servers, "k"], b"");
        assert_one_line_error(&out, needle);
    }
}

/// photosrv hashed the bytes Go's `url.QueryUnescape` gave, UTF-8 or not: `shoal hash --paths`
/// and `shoal route --explain` place a Latin-1 path (`caf%E9.jpg`, the byte 0xE9) by exactly
/// those bytes, given percent-encoded or raw. Among 10 jump shards `x/caf\xE9.jpg` is shard9
/// and the UTF-8 spelling `x/caf\xC3\xA9.jpg` shard7 (pinned from
/// scripts/ring-vectors/models.py).
#[test]
fn non_utf8_paths_are_placed_by_their_raw_bytes_as_the_router_does() {
    let shards: Vec<String> = (1..=10).map(|i| format!("shard{i}")).collect();
    let shards = shards.join(",");
    let hash = ["hash", "-a", "jump", "-s", shards.as_str(), "--paths"];
    let out = shoal(
        &[
            &hash[..],
            &["/x/caf%E9.jpg", "/x/caf%25E9.jpg", "/x/caf%C3%A9.jpg"],
        ]
        .concat(),
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "/x/caf%E9.jpg\tshard9\n/x/caf%25E9.jpg\tshard9\n/x/caf%C3%A9.jpg\tshard7\n"
    );
    // Raw bytes on stdin, as a path and as a key.
    let out = shoal(&hash, b"/x/caf\xe9.jpg\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"/x/caf\xe9.jpg\tshard9\n");
    let out = shoal(&hash[..5], b"x/caf\xe9.jpg\n");
    assert_eq!(out.stdout, b"x/caf\xe9.jpg\tshard9\n");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("photosrv.cfg");
    let lines: String = (1..=10)
        .map(|i| format!("   shard{i} http://127.0.0.1:{i}\n"))
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "<photosrv>\n chooser jump\n <test>\n  <shards>\n{lines}  </shards>\n </test>\n</photosrv>\n"
        ),
    )
    .unwrap();
    let out = shoal(
        &[
            "route",
            "-c",
            cfg.to_str().unwrap(),
            "--dc",
            "test",
            "--explain",
            "/x/caf%E9.jpg",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\nprimary\tshard9\thttp://127.0.0.1:9\n"),
        "{text}"
    );
    // Bytes that are not UTF-8 are shown percent-encoded, as they are sent upstream.
    assert!(
        text.starts_with("path\t/x/caf%E9.jpg\nkey\tx/caf%E9.jpg\n"),
        "{text}"
    );
}
