//! gce-cache-cluster's `cachecluster.ini`, accepted as is.
//!
//! ```ini
//! [cache]
//! port = 9080              ; the peer (groupcache) port of every member
//! [cluster]
//! port = 9999              ; the gossip (UDP) port of every member
//! heartbeat = 250          ; ms; gce-cache-cluster parsed but ignored it; here: the gossip probe period
//! [match]
//! project = my-project     ; empty: read from the metadata server
//! zone = us-central1-b     ; empty: read from the metadata server
//! network_interface = nic0
//! tags = http-server       ; comma-separated; all must be on the instance
//! [meta]
//! service = web            ; every item must be in the instance metadata with this value
//! ```
//!
//! `gc_percent` and `periodic_release` (Go runtime knobs) are accepted and ignored.

use std::collections::BTreeMap;

use crate::membership::MembershipError;

/// The settings of a gce-cache-cluster ini file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GceIni {
    /// `[cache] port`.
    pub cache_port: u16,
    /// `[cluster] port` (gce-cache-cluster's default 9999 when 0 or missing).
    pub cluster_port: u16,
    /// `[cluster] heartbeat`, milliseconds (0: not set).
    pub heartbeat_ms: u64,
    /// `[match] project`.
    pub project: String,
    /// `[match] zone`.
    pub zone: String,
    /// `[match] network_interface`.
    pub network_interface: String,
    /// `[match] tags`.
    pub tags: Vec<String>,
    /// `[meta]` items.
    pub meta: BTreeMap<String, String>,
}

impl GceIni {
    /// Parse the file's text. Unknown sections or keys are errors naming them.
    pub fn parse(text: &str) -> Result<GceIni, MembershipError> {
        let mut ini = GceIni::default();
        let mut section = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_ascii_lowercase();
                continue;
            }
            let bad = |message: String| MembershipError::Config {
                key: "gce ini",
                message: format!("line {}: {message}", n + 1),
            };
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key = value, got {line:?}")))?;
            let (k, v) = (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            );
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("[{section}] {k}: expected a number, got {v:?}")))
            };
            match (section.as_str(), k.as_str()) {
                ("cache", "port") => {
                    ini.cache_port = port(num(&v)?).ok_or_else(|| bad(format!("bad port {v}")))?
                }
                ("cache", "gc_percent" | "periodic_release") => {}
                ("cluster", "port") => {
                    ini.cluster_port = port(num(&v)?).ok_or_else(|| bad(format!("bad port {v}")))?
                }
                ("cluster", "heartbeat") => ini.heartbeat_ms = num(&v)?,
                ("match", "project") => ini.project = v,
                ("match", "zone") => ini.zone = v,
                ("match", "network_interface") => ini.network_interface = v,
                ("match", "tags") => {
                    ini.tags = v
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                ("meta", _) => {
                    ini.meta.insert(k, v);
                }
                _ => return Err(bad(format!("unknown key [{section}] {k}"))),
            }
        }
        if ini.cluster_port == 0 {
            ini.cluster_port = 9999;
        }
        Ok(ini)
    }
}

fn port(n: u64) -> Option<u16> {
    u16::try_from(n).ok()
}

fn strip_comment(line: &str) -> &str {
    let cut = line.find([';', '#']).unwrap_or(line.len());
    &line[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gce_cache_cluster_files() {
        let ini = GceIni::parse(
            "[cache]\nport = 9080\ngc_percent = 15\n[cluster]\nport = 9999\nheartbeat = 250\n\
             [match]\nproject = p\nzone = us-central1-b ; comment\nnetwork_interface = nic0\n\
             tags = http-server, cache\n[meta]\nservice = web\n",
        )
        .unwrap();
        assert_eq!(ini.cache_port, 9080);
        assert_eq!(ini.heartbeat_ms, 250);
        assert_eq!(ini.zone, "us-central1-b");
        assert_eq!(ini.tags, ["http-server", "cache"]);
        assert_eq!(ini.meta.get("service").map(String::as_str), Some("web"));
        assert_eq!(GceIni::parse("").unwrap().cluster_port, 9999);
        let e = GceIni::parse("[match]\ncolour = red\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key [match] colour"), "{e}");
    }
}
