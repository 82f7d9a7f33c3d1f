//! Merging the `stats` replies of several servers (moxi's rules, with its "smallest" bug
//! fixed), and the proxy's own counters.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// Stats whose first server's value is kept.
const FIRST: &[&str] = &[
    "pid",
    "version",
    "libevent",
    "ep_dbname",
    "ep_storage_type",
    "ep_flusher_state",
    "ep_warmup_thread",
];

/// Stats whose smallest value is kept (moxi keeps the largest, by mistake).
const SMALLEST: &[&str] = &[
    "uptime",
    "time",
    "pointer_size",
    "limit_maxbytes",
    "accepting_conns",
    "chunk_size",
    "chunk_per_page",
    "age",
];

/// Merges `STAT name value` lists, one per server, in server order: a name keeps the
/// position it first appeared at. Values are combined by the rule for the part of the name
/// after its last `:`: "first" names keep the first value, "smallest" names the smallest
/// number, and the rest are summed (as floats with six decimals when either has a `.`, else
/// as unsigned integers). A value that is not a number keeps the first one seen.
pub fn merge_stats(per_server: &[Vec<(Bytes, Bytes)>]) -> Vec<(Bytes, Bytes)> {
    let mut out: Vec<(Bytes, Bytes)> = Vec::new();
    let mut index = std::collections::HashMap::<Bytes, usize>::new();
    for list in per_server {
        for (name, value) in list {
            match index.get(name) {
                None => {
                    index.insert(name.clone(), out.len());
                    out.push((name.clone(), value.clone()));
                }
                Some(&i) => {
                    let merged = merge_one(name, &out[i].1, value);
                    out[i].1 = merged;
                }
            }
        }
    }
    out
}

fn merge_one(name: &[u8], a: &Bytes, b: &Bytes) -> Bytes {
    let suffix = match name.iter().rposition(|c| *c == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    let suffix = std::str::from_utf8(suffix).unwrap_or("");
    if FIRST.contains(&suffix) {
        return a.clone();
    }
    let (Some(x), Some(y)) = (text(a), text(b)) else {
        return a.clone();
    };
    let float = x.contains('.') || y.contains('.');
    if SMALLEST.contains(&suffix) {
        return match (float, x.parse::<u64>(), y.parse::<u64>()) {
            (false, Ok(p), Ok(q)) => Bytes::from(p.min(q).to_string()),
            _ => match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) if q < p => b.clone(),
                _ => a.clone(),
            },
        };
    }
    if float {
        match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => Bytes::from(format!("{:.6}", p + q)),
            _ => a.clone(),
        }
    } else {
        match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(p), Ok(q)) => Bytes::from(p.wrapping_add(q).to_string()),
            _ => a.clone(),
        }
    }
}

fn text(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok().filter(|s| !s.is_empty())
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The proxy's own counters (`stats proxy`, `/metrics`).
        #[derive(Debug, Default)]
        pub struct ProxyStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl ProxyStats {
            /// Every counter with its name, in a fixed order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Client connections accepted.
    tot_conns,
    /// Client connections open now.
    curr_conns,
    /// Client connections the client closed.
    tot_client_eof,
    /// Client connections ended by a read or write error.
    tot_client_conn_errors,
    /// Requests decoded.
    tot_requests,
    /// Requests refused by the codec (malformed).
    tot_client_errors,
    /// Requests answered with a downstream error.
    tot_downstream_errors,
    /// Requests answered by the proxy itself (version, verbosity, mn, noop, stats proxy).
    tot_local,
    /// Requests that multi-key gets were split into, one per server.
    tot_multiget_fragments,
    /// Keys in multi-key gets.
    tot_multiget_keys,
    /// Keys of multi-key gets not sent again because they were already asked for.
    tot_multiget_keys_dedupe,
    /// Broadcast requests (flush_all, stats).
    tot_broadcast,
    /// NOT_MY_VBUCKET replies that led to a retry.
    tot_retry_vbucket,
    /// Gets answered from the front cache.
    tot_front_cache_hits,
    /// Gets the front cache could not answer (a key absent or expired).
    tot_front_cache_misses,
    /// Front-cache items found expired.
    tot_front_cache_expires,
    /// Ascii `get` requests (per request, not per key).
    cmd_get,
    /// Ascii `gets` requests.
    cmd_gets,
    /// Ascii `gat` and `gats` requests.
    cmd_gat,
    /// Ascii `set`.
    cmd_set,
    /// Ascii `add`.
    cmd_add,
    /// Ascii `replace`.
    cmd_replace,
    /// Ascii `append`.
    cmd_append,
    /// Ascii `prepend`.
    cmd_prepend,
    /// Ascii `cas`.
    cmd_cas,
    /// Ascii `incr`.
    cmd_incr,
    /// Ascii `decr`.
    cmd_decr,
    /// Ascii `delete`.
    cmd_delete,
    /// Ascii `touch`.
    cmd_touch,
    /// Ascii `flush_all`.
    cmd_flush_all,
    /// Ascii `stats` (all forms, `stats proxy` included).
    cmd_stats,
    /// Ascii `version`, `verbosity` and `quit`.
    cmd_other,
    /// Meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`).
    cmd_meta,
    /// Binary requests of any opcode.
    cmd_binary,
}

impl ProxyStats {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        pairs
            .iter()
            .map(|(a, b)| (Bytes::from(a.to_string()), Bytes::from(b.to_string())))
            .collect()
    }

    #[test]
    fn first_smallest_and_sums() {
        let a = list(&[
            ("pid", "10"),
            ("uptime", "500"),
            ("curr_items", "3"),
            ("rusage_user", "0.500000"),
            ("items:1:age", "9"),
            ("version", "1.6.18"),
        ]);
        let b = list(&[
            ("pid", "20"),
            ("uptime", "20"),
            ("curr_items", "4"),
            ("rusage_user", "0.250000"),
            ("items:1:age", "30"),
            ("extra", "1"),
            ("version", "1.6.9"),
        ]);
        let m = merge_stats(&[a, b]);
        let get = |k: &str| {
            m.iter()
                .find(|(n, _)| &n[..] == k.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).to_string())
        };
        assert_eq!(get("pid").as_deref(), Some("10"));
        assert_eq!(get("uptime").as_deref(), Some("20"), "smallest really is");
        assert_eq!(get("items:1:age").as_deref(), Some("9"));
        assert_eq!(get("curr_items").as_deref(), Some("7"));
        assert_eq!(get("rusage_user").as_deref(), Some("0.750000"));
        assert_eq!(get("version").as_deref(), Some("1.6.18"));
        assert_eq!(m.last().map(|p| &p.0[..]), Some(&b"extra"[..]));
    }
}
