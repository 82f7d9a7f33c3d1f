//! A group in front of a slow fake database: the first get of a key waits for the
//! database, repeats are memory hits, and a crowd asking for the same missing key causes
//! one query.
//!
//! Run with `cargo run -p shoal-cache --example quickstart`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_cache::{GetOptions, Group, LoadError, Loaded, Loader};

/// A "database" that takes 50 ms per query.
struct SlowDb {
    rows: HashMap<&'static str, &'static str>,
    queries: AtomicUsize,
}

impl Loader for SlowDb {
    async fn load(&self, key: Bytes) -> Result<Loaded, LoadError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let key = std::str::from_utf8(&key).map_err(|_| LoadError::NotFound)?;
        match self.rows.get(key) {
            Some(row) => Ok(Loaded::new(*row)),
            None => Err(LoadError::NotFound),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), LoadError> {
    let db = SlowDb {
        rows: HashMap::from([("user:1", "Ada Lovelace"), ("user:2", "Grace Hopper")]),
        queries: AtomicUsize::new(0),
    };
    let users = Group::builder("users", 16 << 20).build(db);

    for attempt in 1..=3 {
        let started = Instant::now();
        let got = users.get_with(b"user:1", GetOptions::default()).await?;
        println!(
            "get user:1 #{attempt}: {:?} from {:?} in {:?}",
            got.value,
            got.source,
            started.elapsed()
        );
    }

    let started = Instant::now();
    let crowd: Vec<_> = (0..100)
        .map(|_| {
            let users = Arc::clone(&users);
            tokio::spawn(async move { users.get(b"user:2").await })
        })
        .collect();
    for get in crowd {
        get.await.expect("get task panicked")?;
    }
    println!("100 concurrent gets of user:2 in {:?}", started.elapsed());

    match users.get(b"user:404").await {
        Err(e) if e.is_not_found() => println!("get user:404: not found (not a failure)"),
        other => println!("get user:404: unexpected {other:?}"),
    }

    let s = users.stats();
    println!(
        "gets {}  main hits {}  loads {}  joined {}  not found {}  cached {} items / {} bytes",
        s.gets, s.main_hits, s.loads, s.loads_joined, s.not_found, s.main_items, s.main_bytes
    );
    Ok(())
}
