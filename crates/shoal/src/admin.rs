//! The admin HTTP server every door runs: `/healthz`, `/metrics` (Prometheus text) and
//! `/status` (JSON).
//!
//! A door plugs in what it knows: a status function (its part of `/status`) and collectors,
//! which copy counters kept elsewhere (a group's stats, a pool's sizes) into metrics just
//! before each scrape, so the hot path never touches the metrics registry.

use std::{sync::Arc, time::Instant};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{shutdown::Shutdown, telemetry};

type StatusFn = Arc<dyn Fn() -> Value + Send + Sync>;
type Collector = Arc<dyn Fn() + Send + Sync>;

/// What the admin server serves; build it with [`Admin::new`] and the `with_*` methods.
#[derive(Clone)]
pub struct Admin {
    door: &'static str,
    started: Instant,
    status: Option<StatusFn>,
    collectors: Vec<Collector>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("door", &self.door)
            .field("collectors", &self.collectors.len())
            .finish()
    }
}

impl Admin {
    /// An admin server for the door named `door` (`serve`, `route`, `memcache`).
    ///
    /// Installs the process-wide metrics recorder if nothing has yet, so that metrics
    /// recorded from now on are kept for `/metrics`.
    pub fn new(door: &'static str) -> Self {
        telemetry::metrics();
        Admin {
            door,
            started: Instant::now(),
            status: None,
            collectors: Vec::new(),
        }
    }

    /// Adds the door's own fields to `/status` (merged into the top-level object).
    pub fn with_status(mut self, f: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        self.status = Some(Arc::new(f));
        self
    }

    /// Runs `f` before every `/metrics` render, to publish counters kept elsewhere.
    pub fn with_collector(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.collectors.push(Arc::new(f));
        self
    }

    /// The routes, for embedding in another axum app.
    pub fn router(self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(render_metrics))
            .route("/status", get(render_status))
            .with_state(Arc::new(self))
    }

    /// Serves the admin routes on `listener` until `shutdown` fires.
    pub async fn serve(self, listener: TcpListener, shutdown: Shutdown) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
    }
}

async fn render_metrics(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let handle = telemetry::metrics();
    for collect in &admin.collectors {
        collect();
    }
    handle.run_upkeep();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

async fn render_status(State(admin): State<Arc<Admin>>) -> Json<Value> {
    let mut out = json!({
        "door": admin.door,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": admin.started.elapsed().as_secs(),
    });
    if let (Some(status), Value::Object(map)) = (&admin.status, &mut out)
        && let Value::Object(extra) = status()
    {
        map.extend(extra);
    }
    Json(out)
}
