//! `DELETE /cache/<path>` on the admin port: forget an object's metadata now, rather than
//! when `meta_ttl` runs out, on this node and on every member of its cluster. The next
//! request asks the origin again; chunk keys name the object's version, so a changed
//! object gets new chunks and the old ones age out of memory and disk.
//!
//! Varnish's `PURGE` and nginx's `proxy_cache_purge` do this for one cache; in a cluster
//! the owner of the metadata and every node's hot cache hold it, so the remove goes to all
//! of them ([`Cluster::remove`], the owner first).

use std::sync::Arc;

use axum::{
    Json, Router,
    http::{StatusCode, Uri},
    routing::delete,
};
use serde_json::{Value, json};
use shoal_cluster::Cluster;
use shoal_proxy::Store;

/// The admin route prefix; the rest of the URL is the object's path as clients request it.
const PREFIX: &str = "/cache";

/// The purge route, for the admin app.
pub fn router(store: Arc<Store>, cluster: Option<Cluster>) -> Router {
    let handler = move |uri: Uri| {
        let (store, cluster) = (store.clone(), cluster.clone());
        async move { purge(&store, cluster.as_ref(), &uri).await }
    };
    // `/cache` and `/cache/` name no object: a 400 that says so, not a bare 404.
    Router::new()
        .route(&format!("{PREFIX}/{{*path}}"), delete(handler.clone()))
        .route(&format!("{PREFIX}/"), delete(handler.clone()))
        .route(PREFIX, delete(handler))
}

async fn purge(store: &Store, cluster: Option<&Cluster>, uri: &Uri) -> (StatusCode, Json<Value>) {
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let path = match shoal_proxy::path::object_path(raw) {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => return bad(format!("no object path in {:?}", uri.path())),
        Err(e) => return bad(format!("bad object path {raw:?}: {e}")),
    };
    let Some(cluster) = cluster else {
        let was_here = store.meta_group().remove(path.as_bytes());
        tracing::info!(%path, was_here, "purged");
        return (
            StatusCode::OK,
            Json(json!({ "path": path, "in_memory": was_here })),
        );
    };
    let group = store.meta_group().name();
    let removal = match cluster.remove(group, path.as_bytes()).await {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": e.to_string() })),
            );
        }
    };
    let failed: Vec<Value> = removal
        .failed
        .iter()
        .map(|(member, e)| json!({ "member": member, "error": e.to_string() }))
        .collect();
    tracing::info!(
        %path,
        was_here = removal.was_here,
        confirmed = removal.confirmed.len(),
        failed = failed.len(),
        "purged"
    );
    // A member that did not confirm may still serve the old metadata until its `meta_ttl`:
    // not a success, so a script retries (removing again is harmless).
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    let body = json!({
        "path": path,
        "in_memory": removal.was_here,
        "members_confirmed": removal.confirmed,
        "members_failed": failed,
    });
    (status, Json(body))
}

fn bad(error: String) -> (StatusCode, Json<Value>) {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error })))
}
