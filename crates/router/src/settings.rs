//! How the router behaves: replica choice, quorum, timeouts, and the files it keeps.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How a read picks its replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// A random replica (photosrv's default); on failure, the next.
    Random,
    /// HEAD every replica; forward to a random one that answered below 400 within `timeout`
    /// (photosrv's `-headtimeoutms`), else to a random replica.
    MultiHead {
        /// How long to wait for HEAD answers.
        timeout: Duration,
    },
    /// Ask one replica; if it has not answered after `delay`, ask another; first answer wins.
    Hedged {
        /// When to send the hedge.
        delay: Duration,
    },
}

/// How many replicas of a shard must store a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// More than half of the shard's replicas.
    Majority,
    /// Every replica.
    All,
    /// A fixed number (capped at the shard's replica count).
    Count(usize),
}

impl Quorum {
    /// The number needed out of `replicas`.
    pub fn of(self, replicas: usize) -> usize {
        match self {
            Quorum::Majority => replicas / 2 + 1,
            Quorum::All => replicas,
            Quorum::Count(n) => n.clamp(1, replicas.max(1)),
        }
    }
}

impl std::fmt::Display for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quorum::Majority => f.write_str("majority"),
            Quorum::All => f.write_str("all"),
            Quorum::Count(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Quorum {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "majority" => Ok(Quorum::Majority),
            "all" => Ok(Quorum::All),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Quorum::Count(n)),
                _ => Err(format!(
                    "invalid write quorum {s:?}: expected majority, all or a positive number"
                )),
            },
        }
    }
}

/// Everything but the shard map.
///
/// [`Router::update_settings`](crate::Router::update_settings) puts new settings in force for
/// the next request (SIGHUP in `shoal route`). The connect timeout, the idle pool size, the
/// health-check period, the roster and its polling period, and the files (migration state,
/// journal) are fixed at start: the connection pools, the background tasks and the open
/// journal are built from them ([`Settings::changes`] says which is which).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Replica choice for GET and HEAD. Default: hedged after 50ms.
    pub read_mode: ReadMode,
    /// Write quorum. Default: majority.
    pub write_quorum: Quorum,
    /// Refuse PUT and DELETE (photosrv's behaviour). Default: false.
    pub read_only: bool,
    /// TCP connect timeout to a replica. Default: 2s.
    pub connect_timeout: Duration,
    /// Wait for a replica's response headers on reads. Default: 30s.
    pub response_timeout: Duration,
    /// Longest wait for the next piece of a body once it has started: a replica's response
    /// body, a replica taking a PUT body, or the client sending one. A stalled response is cut
    /// off (the client sees it end early); a stalled PUT replica counts as failed. Default: 30s.
    pub body_timeout: Duration,
    /// Whole replica write (body and answer). Default: 10 minutes.
    pub write_timeout: Duration,
    /// Idle pooled connections kept per replica. Default: 64.
    pub pool_idle_per_host: usize,
    /// Health-check period; `None` disables health checks. Default: 2s.
    pub health_interval: Option<Duration>,
    /// Timeout of one health check. Default: 1s.
    pub health_timeout: Duration,
    /// photosrv's roster file; `None` disables roster filtering.
    pub roster: Option<PathBuf>,
    /// How often the roster is polled. Default: 1s.
    pub roster_check: Duration,
    /// Where the migration state is kept; `None` keeps it in memory only.
    pub migration_state: Option<PathBuf>,
    /// Key required by the migration switch; `None` (or empty) disables switching.
    pub migration_key: Option<String>,
    /// Repair journal; `None` logs missed writes instead of recording them.
    pub journal: Option<PathBuf>,
    /// A PEM file of CA certificates trusted for `https://` storage nodes besides the
    /// system's (a private CA); `None` trusts the system's CAs alone.
    pub storage_ca: Option<PathBuf>,
}

/// One setting that differs between two [`Settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Its name: the field's name, which is also the `[route]` key of `shoal route` (its
    /// long flag with `_` for `-`).
    pub name: &'static str,
    /// Whether it can change while the router runs.
    pub live: bool,
}

impl Settings {
    /// The settings that differ from `self` in `new`, in declaration order.
    pub fn changes(&self, new: &Settings) -> Vec<Change> {
        // Destructured whole, so that a new field cannot be left out of the comparison.
        let Settings {
            read_mode,
            write_quorum,
            read_only,
            connect_timeout,
            response_timeout,
            body_timeout,
            write_timeout,
            pool_idle_per_host,
            health_interval,
            health_timeout,
            roster,
            roster_check,
            migration_state,
            migration_key,
            journal,
            storage_ca,
        } = self;
        let mut out = Vec::new();
        let mut check = |name: &'static str, differs: bool, live: bool| {
            if differs {
                out.push(Change { name, live });
            }
        };
        let mode = |m: ReadMode| match m {
            ReadMode::Random => ("random", None),
            ReadMode::MultiHead { timeout } => ("multi-head", Some(timeout)),
            ReadMode::Hedged { delay } => ("hedged", Some(delay)),
        };
        let ((mode_a, wait_a), (mode_b, wait_b)) = (mode(*read_mode), mode(new.read_mode));
        check("chooser_mode", mode_a != mode_b, true);
        if mode_a == mode_b && wait_a != wait_b {
            let name = if mode_a == "hedged" {
                "hedge_delay"
            } else {
                "head_timeout"
            };
            check(name, true, true);
        }
        check("write_quorum", *write_quorum != new.write_quorum, true);
        check("read_only", *read_only != new.read_only, true);
        check(
            "connect_timeout",
            *connect_timeout != new.connect_timeout,
            false,
        );
        check(
            "response_timeout",
            *response_timeout != new.response_timeout,
            true,
        );
        check("body_timeout", *body_timeout != new.body_timeout, true);
        check("write_timeout", *write_timeout != new.write_timeout, true);
        check(
            "pool_idle_per_host",
            *pool_idle_per_host != new.pool_idle_per_host,
            false,
        );
        // The health loop reads its period once, when it starts.
        check(
            "health_interval",
            *health_interval != new.health_interval,
            false,
        );
        check(
            "health_timeout",
            *health_timeout != new.health_timeout,
            true,
        );
        check("roster", *roster != new.roster, false);
        check("roster_check", *roster_check != new.roster_check, false);
        check(
            "migration_state",
            *migration_state != new.migration_state,
            false,
        );
        check("migration_key", *migration_key != new.migration_key, true);
        check("journal", *journal != new.journal, false);
        check("storage_ca", *storage_ca != new.storage_ca, false);
        out
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            read_mode: ReadMode::Hedged {
                delay: Duration::from_millis(50),
            },
            write_quorum: Quorum::Majority,
            read_only: false,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(600),
            pool_idle_per_host: 64,
            health_interval: Some(Duration::from_secs(2)),
            health_timeout: Duration::from_secs(1),
            roster: None,
            roster_check: Duration::from_secs(1),
            migration_state: None,
            migration_key: None,
            journal: None,
            storage_ca: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums() {
        assert_eq!(Quorum::Majority.of(3), 2);
        assert_eq!(Quorum::Majority.of(2), 2);
        assert_eq!(Quorum::Majority.of(1), 1);
        assert_eq!(Quorum::All.of(3), 3);
        assert_eq!(Quorum::Count(5).of(3), 3);
        assert_eq!("2".parse::<Quorum>().unwrap(), Quorum::Count(2));
        assert!("0".parse::<Quorum>().is_err());
        for q in ["majority", "all", "2"] {
            assert_eq!(q.parse::<Quorum>().unwrap().to_string(), q);
        }
    }

    #[test]
    fn changes_name_each_setting_and_whether_it_is_live() {
        let a = Settings::default();
        assert!(a.changes(&a.clone()).is_empty());
        let b = Settings {
            read_mode: ReadMode::Hedged {
                delay: Duration::from_millis(20),
            },
            write_quorum: Quorum::All,
            pool_idle_per_host: 8,
            migration_key: Some("k".into()),
            roster: Some("/r".into()),
            ..a.clone()
        };
        let got: Vec<(&str, bool)> = a.changes(&b).iter().map(|c| (c.name, c.live)).collect();
        assert_eq!(
            got,
            [
                ("hedge_delay", true),
                ("write_quorum", true),
                ("pool_idle_per_host", false),
                ("roster", false),
                ("migration_key", true),
            ]
        );
        // Another mode is a chooser_mode change, whatever its timeout.
        let c = Settings {
            read_mode: ReadMode::MultiHead {
                timeout: Duration::from_millis(50),
            },
            ..a.clone()
        };
        let got: Vec<&str> = a.changes(&c).iter().map(|c| c.name).collect();
        assert_eq!(got, ["chooser_mode"]);
    }
}
