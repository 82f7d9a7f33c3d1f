//! The proxy's metrics, through the `metrics` facade (the binary installs the recorder).
//!
//! | name | labels | what |
//! |---|---|---|
//! | `shoal_http_requests_total` | `status` | replies by status |
//! | `shoal_http_request_duration_seconds` | | time to the reply's headers |
//! | `shoal_http_bytes_out_total` | | body bytes sent |
//! | `shoal_http_connections_total` | | connections accepted |
//! | `shoal_proxy_chunks_total` | `source` | chunks served: `memory_main`, `memory_hot`, `peer`, `disk`, `joined`, `origin` |
//! | `shoal_origin_requests_total` | `op`, `result` | origin stats and reads |
//! | `shoal_origin_bytes_total` | | bytes read from the origin |

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics::{Counter, Histogram, counter, histogram};

const STATUSES: [&str; 12] = [
    "200", "206", "304", "400", "404", "405", "412", "416", "500", "502", "503", "504",
];

const CHUNK_SOURCES: [&str; 6] = [
    "memory_main",
    "memory_hot",
    "peer",
    "disk",
    "joined",
    "origin",
];

/// Handles resolved once, on the first request (after the binary installed its recorder),
/// so the hot path does no registry lookups.
struct Handles {
    by_status: Vec<(u16, Counter)>,
    other: Counter,
    latency: Histogram,
    bytes_out: Counter,
    chunks: Vec<(&'static str, Counter)>,
}

fn handles() -> &'static Handles {
    static H: OnceLock<Handles> = OnceLock::new();
    H.get_or_init(|| Handles {
        by_status: STATUSES
            .iter()
            .map(|s| {
                let code = s.parse().unwrap_or(0);
                (code, counter!("shoal_http_requests_total", "status" => *s))
            })
            .collect(),
        other: counter!("shoal_http_requests_total", "status" => "other"),
        latency: histogram!("shoal_http_request_duration_seconds"),
        bytes_out: counter!("shoal_http_bytes_out_total"),
        chunks: CHUNK_SOURCES
            .iter()
            .map(|s| (*s, counter!("shoal_proxy_chunks_total", "source" => *s)))
            .collect(),
    })
}

/// Count one reply.
pub(crate) fn record(status: StatusCode, elapsed: Duration) {
    let h = handles();
    let code = status.as_u16();
    match h.by_status.iter().find(|(c, _)| *c == code) {
        Some((_, counter)) => counter.increment(1),
        None => h.other.increment(1),
    }
    h.latency.record(elapsed.as_secs_f64());
}

/// Count body bytes sent.
pub(crate) fn bytes_out(n: u64) {
    handles().bytes_out.increment(n);
}

/// Count one chunk served, by where it came from (one of the `source` labels above).
pub(crate) fn chunk(source: &'static str) {
    if let Some((_, c)) = handles().chunks.iter().find(|(s, _)| *s == source) {
        c.increment(1);
    }
}
