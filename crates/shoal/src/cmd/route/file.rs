//! The `[route]` table of a TOML shard map: every `shoal route` setting, below the flags and
//! `SHOAL_ROUTE_*` variables in precedence (defaults → file → environment → flags).
//!
//! ```toml
//! [route]
//! listen = "127.0.0.1:8888"
//! write_quorum = "all"
//! hedge_delay = "20ms"
//! journal = "/var/lib/shoal/route.journal"
//! ```
//!
//! photosrv's Config::General files have no such table: with them, flags and variables only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::ConfigError;
use crate::units::HumanDuration;

/// The `[route]` table; each key is the flag's long name with `_` for `-`, and defaults to
/// the flag's default.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteSection {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--admin-listen` (an address or `"off"`).
    pub admin_listen: Option<super::AdminListen>,
    /// `--roster`.
    pub roster: Option<PathBuf>,
    /// `--roster-check`.
    pub roster_check: Option<HumanDuration>,
    /// `--migration-state`.
    pub migration_state: Option<PathBuf>,
    /// `--migration-key`.
    pub migration_key: Option<String>,
    /// `--chooser-mode`.
    pub chooser_mode: Option<String>,
    /// `--head-timeout`.
    pub head_timeout: Option<HumanDuration>,
    /// `--hedge-delay`.
    pub hedge_delay: Option<HumanDuration>,
    /// `--write-quorum`.
    pub write_quorum: Option<String>,
    /// `--read-only`.
    pub read_only: Option<bool>,
    /// `--journal`.
    pub journal: Option<PathBuf>,
    /// `--connect-timeout`.
    pub connect_timeout: Option<HumanDuration>,
    /// `--response-timeout`.
    pub response_timeout: Option<HumanDuration>,
    /// `--write-timeout`.
    pub write_timeout: Option<HumanDuration>,
    /// `--body-timeout`.
    pub body_timeout: Option<HumanDuration>,
    /// `--runtimes`.
    pub runtimes: Option<usize>,
    /// `--health-interval`.
    pub health_interval: Option<HumanDuration>,
    /// `--health-timeout`.
    pub health_timeout: Option<HumanDuration>,
    /// `--pool-idle-per-host`.
    pub pool_idle_per_host: Option<usize>,
    /// `--storage-ca`.
    pub storage_ca: Option<PathBuf>,
    /// `--header-timeout`.
    pub header_timeout: Option<HumanDuration>,
    /// `--access-log`.
    pub access_log: Option<PathBuf>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
}

/// The `[route]` table of `config` when it is a TOML file (else all defaults). The rest of the
/// file is the shard map, which the router library reads and checks.
pub fn load(config: &Path) -> Result<RouteSection, ConfigError> {
    if config.extension().is_none_or(|e| e != "toml") {
        return Ok(RouteSection::default());
    }
    let text = std::fs::read_to_string(config).map_err(|source| ConfigError::Read {
        path: config.to_path_buf(),
        source,
    })?;
    let parse_err = |message: String| ConfigError::Parse {
        path: config.to_path_buf(),
        message: message.replace('\n', " "),
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
    match table.get("route") {
        None => Ok(RouteSection::default()),
        Some(v) => v
            .clone()
            .try_into::<RouteSection>()
            .map_err(|e| parse_err(format!("[route]: {}", e.message()))),
    }
}
