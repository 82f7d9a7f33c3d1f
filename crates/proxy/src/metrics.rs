//! The proxy's metrics, through the `metrics` facade (the binary installs the recorder).
//!
//! | name | labels | what |
//! |---|---|---|
//! | `shoal_http_requests_total` | `status` | replies by status |
//! | `shoal_http_request_duration_seconds` | | time to the reply's headers |
//! | `shoal_http_bytes_out_total` | | body bytes sent |
//! | `shoal_http_connections_total` | | connections accepted |
//! | `shoal_proxy_chunks_total` | `source` | chunks served: `memory_main`, `memory_hot`, `peer`, `joined`, `origin` |
//! | `shoal_origin_requests_total` | `op`, `result` | origin stats and reads |
//! | `shoal_origin_bytes_total` | | bytes read from the origin |

use std::time::Duration;

use http::StatusCode;
use metrics::{counter, histogram};

/// Count one reply.
pub(crate) fn record(status: StatusCode, elapsed: Duration) {
    let label: &'static str = match status.as_u16() {
        200 => "200",
        206 => "206",
        304 => "304",
        400 => "400",
        404 => "404",
        405 => "405",
        412 => "412",
        416 => "416",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => "other",
    };
    counter!("shoal_http_requests_total", "status" => label).increment(1);
    histogram!("shoal_http_request_duration_seconds").record(elapsed.as_secs_f64());
}
