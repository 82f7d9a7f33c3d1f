//! The route door's admin app: the shared `/healthz`, `/metrics`, `/status`, plus photosrv's
//! migration switch at `/migration/{start,abort,finish}` (GET or POST, `key` in the query or
//! a form body).

use std::collections::HashMap;

use axum::Router as App;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use shoal_router::{MigrationState, RouteError, Router};

use crate::admin::Admin;

/// The admin app for `router`.
pub fn app(router: Router) -> App {
    let status = router.clone();
    let backlog = router.clone();
    let base = Admin::new("route")
        .with_status(move || serde_json::to_value(status.status()).unwrap_or_default())
        .with_collector(move || {
            backlog.repair_backlog();
        })
        .router();
    let switch = App::new()
        .route("/migration/start", get(start).post(start))
        .route("/migration/abort", get(abort).post(abort))
        .route("/migration/finish", get(finish).post(finish))
        .with_state(router);
    base.merge(switch)
}

type Reply = (StatusCode, String);

async fn start(s: State<Router>, q: Query<HashMap<String, String>>, body: String) -> Reply {
    switch(&s.0, MigrationState::Both, &q.0, &body).await
}

async fn abort(s: State<Router>, q: Query<HashMap<String, String>>, body: String) -> Reply {
    switch(&s.0, MigrationState::Old, &q.0, &body).await
}

async fn finish(s: State<Router>, q: Query<HashMap<String, String>>, body: String) -> Reply {
    switch(&s.0, MigrationState::New, &q.0, &body).await
}

/// Switches, then answers once the writes placed under the previous state have finished, so
/// a `shoal repair --list` started after the answer sees everything they wrote.
async fn switch(r: &Router, to: MigrationState, q: &HashMap<String, String>, body: &str) -> Reply {
    let key = q
        .get("key")
        .cloned()
        .or_else(|| form_key(body))
        .unwrap_or_default();
    match r.switch_migration(to, &key) {
        Ok(msg) => match r.drain_writes().await {
            0 => (StatusCode::OK, msg),
            left => (
                StatusCode::OK,
                format!(
                    "{msg}; {left} write(s) placed under the previous state are still running: wait before repair"
                ),
            ),
        },
        Err(e @ RouteError::Io { .. }) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `key=...` from an `application/x-www-form-urlencoded` body.
fn form_key(body: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "key").then(|| {
            let bytes = shoal_router::normalize::unescape(v, true).ok()?;
            String::from_utf8(bytes).ok()
        })?
    })
}
