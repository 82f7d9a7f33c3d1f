//! `--access-log FILE` of `shoal serve` and `shoal route`: the log is opened before the
//! doors start (a path that cannot be opened stops the start, naming it) and reopened on
//! SIGUSR1, as nginx reopens its logs for logrotate.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
pub use shoal_access_log::AccessLog;

/// Opens the access log at `path` (`None`: no access log). Needs a tokio runtime, which then
/// reopens the file on each SIGUSR1.
pub fn open(path: Option<&Path>) -> anyhow::Result<Option<Arc<AccessLog>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let log = AccessLog::open(path)
        .with_context(|| format!("cannot open access log {}", path.display()))?;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut usr1 = signal(SignalKind::user_defined1()).context("listening for SIGUSR1")?;
        let reopen = log.clone();
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                reopen.reopen();
                tracing::info!(path = %reopen.path().display(), "access log reopened");
            }
        });
    }
    Ok(Some(log))
}

/// Writes out every line queued so far: called once the doors have stopped, so that the
/// last requests' lines are in the file when the process exits.
pub async fn flush(log: Option<Arc<AccessLog>>) {
    if let Some(log) = log {
        let _ = tokio::task::spawn_blocking(move || log.flush()).await;
    }
}
