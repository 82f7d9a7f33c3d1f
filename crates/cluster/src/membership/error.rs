//! [`MembershipError`]: why a membership source could not start.

/// Why a membership source could not start. Failures after start-up (a seed that does not
/// answer, etcd down, DNS or GCE failing) are never errors: the source keeps its last member
/// set, logs, and retries with back-off.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// A setting is invalid.
    #[error("membership config: {key}: {message}")]
    Config {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A local I/O failure (binding a port, reading a file).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl MembershipError {
    /// Whether trying again could help (a port in use may be freed; a bad setting won't be).
    pub fn is_retryable(&self) -> bool {
        matches!(self, MembershipError::Io { .. })
    }
}
