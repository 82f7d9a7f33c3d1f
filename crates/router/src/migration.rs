//! photosrv's dual-ring migration state, and the file it is kept in.

use std::fmt;
use std::io::Write;
use std::path::Path;

use crate::RouteError;

/// Which ring(s) serve requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    /// The primary ring only (photosrv `msOldConfig`).
    Old = 0,
    /// Reads try the migration ring, then the primary; writes go to both (`msBothConfigs`).
    Both = 1,
    /// The migration ring only (`msNewConfig`).
    New = 2,
}

impl MigrationState {
    /// photosrv's name, which is what the state file holds.
    pub fn photosrv_name(self) -> &'static str {
        match self {
            MigrationState::Old => "msOldConfig",
            MigrationState::Both => "msBothConfigs",
            MigrationState::New => "msNewConfig",
        }
    }

    /// From photosrv's names or `old`, `both`, `new`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "msOldConfig" | "old" => Some(MigrationState::Old),
            "msBothConfigs" | "both" => Some(MigrationState::Both),
            "msNewConfig" | "new" => Some(MigrationState::New),
            _ => None,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => MigrationState::Both,
            2 => MigrationState::New,
            _ => MigrationState::Old,
        }
    }

    /// Reads the state file; a missing file means [`MigrationState::Old`].
    pub fn load(path: &Path) -> Result<Self, RouteError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).ok_or_else(|| {
                RouteError::Migration(format!(
                    "{}: invalid migration state {:?} (expected msOldConfig, msBothConfigs or msNewConfig)",
                    path.display(),
                    text.trim()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MigrationState::Old),
            Err(e) => Err(RouteError::io(path, e)),
        }
    }

    /// Writes the state file atomically and durably (temp file, fsync, rename).
    pub fn store(self, path: &Path) -> Result<(), RouteError> {
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.photosrv_name().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| RouteError::io(path, e))
    }
}

impl fmt::Display for MigrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.photosrv_name())
    }
}

/// Compares two keys in time independent of where they differ.
pub(crate) fn keys_match(given: &str, want: &str) -> bool {
    let (a, b) = (given.as_bytes(), want.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        assert_eq!(MigrationState::load(&p).unwrap(), MigrationState::Old);
        MigrationState::Both.store(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "msBothConfigs");
        assert_eq!(MigrationState::load(&p).unwrap(), MigrationState::Both);
        std::fs::write(&p, "sideways").unwrap();
        assert!(
            MigrationState::load(&p)
                .unwrap_err()
                .to_string()
                .contains("sideways")
        );
    }

    #[test]
    fn keys() {
        assert!(keys_match("s3cret", "s3cret"));
        assert!(!keys_match("s3cre", "s3cret"));
        assert!(!keys_match("s3creT", "s3cret"));
        assert!(!keys_match("", "x"));
    }
}
