//! `DELETE /cache/<path>` on the admin port: forget an object's metadata now, rather than
//! when `meta_ttl` runs out, on this node and on every member of its cluster. The next
//! request asks the origin again; chunk keys name the object's version, so a changed
//! object gets new chunks and the old ones age out of memory and disk.
//!
//! Varnish's `PURGE` and nginx's `proxy_cache_purge` do this for one cache; in a cluster
//! the owner of the metadata and every node's hot cache hold it, so the remove goes to all
//! of them ([`Cluster::remove`], the owner first).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Json, Router,
    extract::ConnectInfo,
    http::{StatusCode, Uri},
    routing::delete,
};
use serde_json::{Value, json};
use shoal_cluster::Cluster;
use shoal_proxy::Store;

/// The admin route prefix; the rest of the URL is the object's path as clients request it.
const PREFIX: &str = "/cache";

/// Who may purge (`purge_from`). A purge makes every member ask the origin again, so an
/// admin port opened to a network for Prometheus should not also open purging to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeFrom {
    /// Clients on 127.0.0.0/8 or ::1 (the default).
    Loopback,
    /// Any client that reaches the admin port.
    Any,
    /// Nobody: purging is off.
    Off,
}

impl PurgeFrom {
    /// The setting's value (`loopback`, `any`, `off`; checked when settings load).
    pub fn parse(value: &str) -> PurgeFrom {
        match value.trim() {
            "any" => PurgeFrom::Any,
            "off" => PurgeFrom::Off,
            _ => PurgeFrom::Loopback,
        }
    }

    fn admits(self, client: SocketAddr) -> bool {
        match self {
            PurgeFrom::Loopback => {
                client.ip().is_loopback()
                    || matches!(client.ip(), std::net::IpAddr::V6(v6)
                    if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
            }
            PurgeFrom::Any => true,
            PurgeFrom::Off => false,
        }
    }
}

/// The purge route, for an admin app served with `ConnectInfo<SocketAddr>`.
pub fn router(store: Arc<Store>, cluster: Option<Cluster>, from: PurgeFrom) -> Router {
    let handler = move |ConnectInfo(client): ConnectInfo<SocketAddr>, uri: Uri| {
        let (store, cluster) = (store.clone(), cluster.clone());
        async move {
            if !from.admits(client) {
                let why = match from {
                    PurgeFrom::Off => "purging is off here (purge_from = \"off\")".to_owned(),
                    _ => format!(
                        "purging is allowed from loopback only (purge_from = \"loopback\"), \
                         not from {}",
                        client.ip()
                    ),
                };
                return (StatusCode::FORBIDDEN, Json(json!({ "error": why })));
            }
            purge(&store, cluster.as_ref(), &uri).await
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_admits_loopback_clients_only() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        let lo = PurgeFrom::parse("loopback");
        assert!(lo.admits(at("127.0.0.1:5000")) && lo.admits(at("127.8.9.10:1")));
        assert!(lo.admits(at("[::1]:1")) && lo.admits(at("[::ffff:127.0.0.1]:1")));
        assert!(!lo.admits(at("10.0.0.1:1")) && !lo.admits(at("[::ffff:10.0.0.1]:1")));
        assert!(!lo.admits(at("[2001:db8::1]:1")));
        assert!(PurgeFrom::parse("any").admits(at("10.0.0.1:1")));
        assert!(!PurgeFrom::parse("off").admits(at("127.0.0.1:1")));
    }
}
