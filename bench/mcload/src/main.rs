//! `mcload HOST:PORT [conns] [seconds] [max_ops]`: a closed-loop memcached ascii load, one
//! blocking connection per thread, 90% `get` / 10% `set` of 100-byte values over 10,000
//! 32-byte keys (memcaslap's mix in `bench/memcache/run.sh`). Every request's latency is
//! kept, so p50/p99/p99.9 are exact. Prints one line: `ops/s p50_us p99_us p999_us errors`.
//! The keys are set once first. The run is bounded by `seconds` (default 10) and `max_ops` (default 10 million).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const KEYS: u64 = 10_000;
const VALUE: usize = 100;

fn key(i: u64) -> String {
    format!("mcload-key-{i:021}")
}

/// A small xorshift generator: no dependency, different per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Reads one reply: for a get, up to `END`; for a set, one line. False on a bad reply.
fn read_reply(
    rd: &mut BufReader<TcpStream>,
    line: &mut String,
    get: bool,
) -> std::io::Result<bool> {
    loop {
        line.clear();
        if rd.read_line(line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if !get {
            return Ok(line == "STORED\r\n");
        }
        if line == "END\r\n" {
            return Ok(true);
        }
        let Some(len) = line
            .strip_prefix("VALUE ")
            .and_then(|r| r.split(' ').nth(2))
            .and_then(|n| n.trim().parse::<usize>().ok())
        else {
            return Ok(false);
        };
        let mut data = vec![0u8; len + 2];
        rd.read_exact(&mut data)?;
    }
}

fn worker(addr: String, seed: u64, until: Instant, max_ops: u64) -> (Vec<u32>, u64) {
    let mut lat = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let Ok(s) = TcpStream::connect(&addr) else {
        return (lat, 1);
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut wr) = s.try_clone() else {
        return (lat, 1);
    };
    let mut rd = BufReader::new(s);
    let mut rng = Rng(seed | 1);
    let value = "v".repeat(VALUE);
    let mut line = String::new();
    let mut req = Vec::with_capacity(256);
    for _ in 0..max_ops {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        let k = key(rng.next() % KEYS);
        let get = !rng.next().is_multiple_of(10);
        req.clear();
        if get {
            req.extend_from_slice(format!("get {k}\r\n").as_bytes());
        } else {
            req.extend_from_slice(format!("set {k} 0 0 {VALUE}\r\n{value}\r\n").as_bytes());
        }
        let ok = wr
            .write_all(&req)
            .and_then(|_| read_reply(&mut rd, &mut line, get));
        match ok {
            Ok(true) => {}
            Ok(false) => errors += 1,
            Err(_) => return (lat, errors + 1),
        }
        lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    (lat, errors)
}

/// Sets every key once (pipelined, 100 at a time), so that gets hit as in memcaslap's run.
fn preload(addr: &str) -> std::io::Result<()> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut wr = s.try_clone()?;
    let mut rd = BufReader::new(s);
    let value = "v".repeat(VALUE);
    let mut line = String::new();
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(100) {
        let mut req = Vec::new();
        for i in chunk {
            req.extend_from_slice(format!("set {} 0 0 {VALUE}\r\n{value}\r\n", key(*i)).as_bytes());
        }
        wr.write_all(&req)?;
        for _ in chunk {
            read_reply(&mut rd, &mut line, false)?;
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(addr) = args.get(1).cloned() else {
        eprintln!("usage: mcload HOST:PORT [conns] [seconds] [max_ops]");
        std::process::exit(2);
    };
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (conns, secs, max_ops) = (arg(2, 64), arg(3, 10), arg(4, 10_000_000));
    if let Err(e) = preload(&addr) {
        eprintln!("mcload: preloading {addr}: {e}");
        std::process::exit(1);
    }
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let per = max_ops / conns.max(1);
    let threads: Vec<_> = (0..conns)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || worker(addr, 0x9E37_79B9_7F4A_7C15 ^ (i + 1), until, per))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        match t.join() {
            Ok((lat, e)) => {
                all.extend(lat);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |q: f64| {
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).copied().unwrap_or(0)
    };
    println!(
        "{:.0} {} {} {} {}",
        all.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        errors
    );
}
