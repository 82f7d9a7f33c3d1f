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
#[derive(Debug, Clone)]
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
    }
}
