//! The two HTTP calls GCE discovery makes: a bearer token from the metadata server, and
//! the Compute API's instance list (paginated), matched as gce-cache-cluster matches.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use crate::transport::connect::Connector;

/// The largest answer read (a page of instances is far smaller).
const MAX_BODY: usize = 16 << 20;
/// The most pages followed in one listing.
const MAX_PAGES: usize = 100;

/// Why a listing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("GET {url}: {message}")]
    Http { url: String, message: String },
    #[error("GET {url}: status {status}")]
    Status { url: String, status: StatusCode },
    #[error("GET {url}: {message}")]
    Answer { url: String, message: String },
}

/// An error and its causes ("client error (Connect): ... invalid peer certificate").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// What to match.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) tags: Vec<String>,
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) network_interface: String,
}

/// The result of one listing: matching internal IPs, and instances skipped for missing
/// fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) ips: Vec<IpAddr>,
    pub(crate) malformed: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Api {
    client: Client<Connector, Empty<Bytes>>,
}

/// TLS for `https://` endpoints: the roots in `ca_pem`, or Mozilla's (webpki-roots), so
/// the real `https://compute.googleapis.com` is verified with no system store needed.
pub(crate) fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("GCE ca_pem: {e}"))?;
                roots.add(cert).map_err(|e| format!("GCE ca_pem: {e}"))?;
            }
            if roots.is_empty() {
                return Err("GCE ca_pem: no certificate in it".into());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("GCE TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The client speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Api {
    pub(crate) fn new(tls: Arc<ClientConfig>) -> Self {
        let connector = Connector::new(
            Some(std::sync::Arc::new(arc_swap::ArcSwap::new(tls))),
            std::time::Duration::from_secs(3),
        );
        Api {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The text of a metadata server value (`{metadata}/computeMetadata/v1/{path}`).
    pub(crate) async fn metadata_text(
        &self,
        metadata: &str,
        path: &str,
    ) -> Result<String, ApiError> {
        let url = format!(
            "{}/computeMetadata/v1/{path}",
            metadata.trim_end_matches('/')
        );
        let body = self.get(&url, &[("Metadata-Flavor", "Google")]).await?;
        let text = String::from_utf8(body.to_vec()).map_err(|_| ApiError::Answer {
            url: url.clone(),
            message: "not UTF-8 text".into(),
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(ApiError::Answer {
                url,
                message: "empty".into(),
            });
        }
        Ok(text.to_owned())
    }

    async fn get_json(&self, url: &str, headers: &[(&str, &str)]) -> Result<Value, ApiError> {
        let body = self.get(url, headers).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Answer {
            url: url.to_owned(),
            message: format!("not JSON: {e}"),
        })
    }

    async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Bytes, ApiError> {
        let http_err = |message: String| ApiError::Http {
            url: url.to_owned(),
            message,
        };
        let mut req = Request::get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| http_err(e.to_string()))?;
        let resp =
            tokio::time::timeout(std::time::Duration::from_secs(10), self.client.request(req))
                .await
                .map_err(|_| http_err("timed out".into()))?
                .map_err(|e| http_err(chain(&e)))?;
        if !resp.status().is_success() {
            return Err(ApiError::Status {
                url: url.to_owned(),
                status: resp.status(),
            });
        }
        Ok(Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| http_err(e.to_string()))?
            .to_bytes())
    }

    /// An access token from the metadata server (`{metadata}/computeMetadata/v1/instance/
    /// service-accounts/default/token`).
    pub(crate) async fn token(&self, metadata: &str) -> Result<String, ApiError> {
        let url = format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/token",
            metadata.trim_end_matches('/')
        );
        let v = self
            .get_json(&url, &[("Metadata-Flavor", "Google")])
            .await?;
        v.get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ApiError::Answer {
                url,
                message: "no access_token in the answer".into(),
            })
    }

    /// RUNNING instances of `project`/`zone` that match `filter`, following
    /// `nextPageToken`.
    pub(crate) async fn list(
        &self,
        endpoint: &str,
        project: &str,
        zone: &str,
        token: Option<&str>,
        filter: &Filter,
    ) -> Result<Found, ApiError> {
        let base = format!(
            "{}/compute/v1/projects/{project}/zones/{zone}/instances?filter=status%20eq%20RUNNING",
            endpoint.trim_end_matches('/')
        );
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        let mut found = Found::default();
        let mut page: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let url = match &page {
                Some(p) => format!("{base}&pageToken={}", encode(p)),
                None => base.clone(),
            };
            let v = self.get_json(&url, &headers).await?;
            match v.get("items") {
                None => {}
                Some(Value::Array(items)) => {
                    for inst in items {
                        match_instance(inst, filter, &mut found);
                    }
                }
                Some(_) => {
                    return Err(ApiError::Answer {
                        url,
                        message: "items is not a list".into(),
                    });
                }
            }
            page = v
                .get("nextPageToken")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if page.as_deref().is_none_or(str::is_empty) {
                break;
            }
        }
        found.ips.sort();
        found.ips.dedup();
        Ok(found)
    }
}

/// gce-cache-cluster's rule: every tag present and every `[meta]` item equal; then the NIC
/// named `network_interface`, or the only NIC, gives `networkIP`.
fn match_instance(inst: &Value, filter: &Filter, found: &mut Found) {
    let name = inst
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let tags = strs(inst.pointer("/tags/items"));
    if !filter.tags.iter().all(|t| tags.contains(t)) {
        return;
    }
    let items = inst
        .pointer("/metadata/items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let meta_ok = filter.meta.iter().all(|(k, want)| {
        items.iter().any(|i| {
            i.get("key").and_then(Value::as_str) == Some(k)
                && i.get("value").and_then(Value::as_str) == Some(want)
        })
    });
    if !meta_ok {
        return;
    }
    let Some(nics) = inst.get("networkInterfaces").and_then(Value::as_array) else {
        found
            .malformed
            .push(format!("{name}: no networkInterfaces"));
        return;
    };
    let only = nics.len() == 1;
    for nic in nics {
        let nic_name = nic.get("name").and_then(Value::as_str).unwrap_or("");
        if !(only || nic_name == filter.network_interface) {
            continue;
        }
        match nic
            .get("networkIP")
            .and_then(Value::as_str)
            .map(str::parse::<IpAddr>)
        {
            Some(Ok(ip)) => found.ips.push(ip),
            _ => found
                .malformed
                .push(format!("{name}: NIC {nic_name:?} has no valid networkIP")),
        }
    }
}

/// Percent-encode a page token for a query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_gce_cache_cluster() {
        let filter = Filter {
            tags: vec!["cache".into()],
            meta: [("service".to_owned(), "web".to_owned())].into(),
            network_interface: "nic1".into(),
        };
        let v: Value = serde_json::json!([
            {"name": "a", "tags": {"items": ["cache", "x"]}, "metadata": {"items": [{"key": "service", "value": "web"}]},
             "networkInterfaces": [{"name": "nic0", "networkIP": "10.0.0.1"}]},
            {"name": "b", "tags": {"items": ["cache"]}, "metadata": {"items": [{"key": "service", "value": "web"}]},
             "networkInterfaces": [{"name": "nic0", "networkIP": "10.0.0.2"}, {"name": "nic1", "networkIP": "10.1.0.2"}]},
            {"name": "c", "tags": {"items": ["x"]}, "networkInterfaces": [{"name": "nic0", "networkIP": "10.0.0.3"}]},
            {"name": "d", "tags": {"items": ["cache"]}, "metadata": {"items": [{"key": "service", "value": "db"}]},
             "networkInterfaces": [{"name": "nic0", "networkIP": "10.0.0.4"}]},
            {"name": "e", "tags": {"items": ["cache"]}, "metadata": {"items": [{"key": "service", "value": "web"}]}},
            {"name": "f", "tags": {"items": ["cache"]}, "metadata": {"items": [{"key": "service", "value": "web"}]},
             "networkInterfaces": [{"name": "nic0"}]},
        ]);
        let mut found = Found::default();
        for inst in v.as_array().unwrap() {
            match_instance(inst, &filter, &mut found);
        }
        let ips: Vec<String> = found.ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.0.0.1", "10.1.0.2"]);
        assert_eq!(found.malformed.len(), 2, "{:?}", found.malformed);
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
