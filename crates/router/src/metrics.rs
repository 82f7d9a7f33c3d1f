//! Metric names, all `shoal_route_*`.

/// Requests by method and status: `shoal_route_requests_total{method,status}`.
pub(crate) fn request(method: &http::Method, status: u16) {
    metrics::counter!(
        "shoal_route_requests_total",
        "method" => method_label(method),
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
