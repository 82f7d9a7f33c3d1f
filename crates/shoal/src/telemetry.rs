//! Logs and metrics setup shared by the doors.
//!
//! Logs go to stderr through `tracing`, filtered by `RUST_LOG` (default `info`). Metrics are
//! recorded with the `metrics` facade into one process-wide Prometheus recorder, rendered by
//! the admin server's `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Starts logging to stderr. Safe to call more than once (later calls do nothing).
///
/// Colours only on a terminal, and not with `NO_COLOR` set: logs sent to a file or the journal
/// stay plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logging and the metrics recorder, for the doors that serve `/metrics`. The recorder must
/// be in place before anything resolves a metric handle: a handle made earlier (a static
/// cluster's peer clients, the gossip agent's first gauges) would stay on the no-op recorder
/// and never reach `/metrics`.
pub fn init() {
    init_logging();
    metrics();
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// If another recorder was installed first (an embedding program's), shoal's metrics go there
/// and this handle renders an empty page rather than failing.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}
