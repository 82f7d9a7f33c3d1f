//! Metric names, all `shoal_route_*`.

/// Statuses whose request counters are resolved once, at start.
const COMMON: [u16; 14] = [
    200, 201, 204, 206, 304, 400, 404, 405, 412, 416, 500, 502, 503, 504,
];
const METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "DELETE", "other"];

/// `shoal_route_requests_total{method,status}` handles for every method and common status,
/// resolved once so the hot path does no label formatting or registry lookup. Resolve them
/// after the metrics recorder is installed: handles taken before it are no-ops.
pub(crate) struct RequestCounters {
    table: Vec<metrics::Counter>,
}

impl RequestCounters {
    pub(crate) fn new() -> Self {
        let mut table = Vec::with_capacity(METHODS.len() * COMMON.len());
        for m in METHODS {
            for s in COMMON {
                table.push(metrics::counter!(
                    "shoal_route_requests_total",
                    "method" => m,
                    "status" => s.to_string()
                ));
            }
        }
        RequestCounters { table }
    }

    /// Counts one request.
    pub(crate) fn request(&self, method: &http::Method, status: u16) {
        let label = method_label(method);
        let m = METHODS.iter().position(|x| *x == label).unwrap_or(4);
        match COMMON.iter().position(|&s| s == status) {
            Some(i) => match self.table.get(m * COMMON.len() + i) {
                Some(c) => c.increment(1),
                None => slow(label, status),
            },
            None => slow(label, status),
        }
    }
}

/// A status without a pre-resolved handle.
fn slow(method: &'static str, status: u16) {
    metrics::counter!(
        "shoal_route_requests_total",
        "method" => method,
        "status" => status.to_string()
    )
    .increment(1);
}

fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        _ => "other",
    }
}

/// A hedge request was sent.
pub(crate) fn hedge() {
    metrics::counter!("shoal_route_hedges_total").increment(1);
}

/// A multi-HEAD round ended on its timeout.
pub(crate) fn multi_head_timeout() {
    metrics::counter!("shoal_route_multi_head_timeouts_total").increment(1);
}

/// A read was retried on another replica.
pub(crate) fn retry() {
    metrics::counter!("shoal_route_retries_total").increment(1);
}

/// A write did not reach its quorum.
pub(crate) fn quorum_failure() {
    metrics::counter!("shoal_route_write_quorum_failures_total").increment(1);
}

/// Replica writes recorded in the repair journal.
pub(crate) fn journaled(n: usize) {
    metrics::counter!("shoal_route_journal_entries_total").increment(n as u64);
}
