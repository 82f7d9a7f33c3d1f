//! A members file, reloaded when it changes (polled) or on SIGHUP: one peer URL per line
//! (or comma-separated), `#` starts a comment. A file that cannot be read or has a bad
//! URL leaves the last member set in force and is logged once per change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Condition, MemberInfo, MemberSet, MemberState, Membership, Publisher, validate};

/// Membership from a file; see the [module docs](self).
#[derive(Debug)]
pub struct FileMembership {
    publisher: Publisher,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FileMembership {
    /// Read `path` now (an unreadable file starts this node alone), then every `interval`
    /// and on SIGHUP.
    pub fn start(self_url: &str, path: impl Into<PathBuf>, interval: Duration) -> Self {
        let publisher = Publisher::new("file", self_url);
        let path = path.into();
        let mut condition = Condition::default();
        let mut last = load(&path, &publisher, &mut condition, None);
        let p = publisher.clone();
        let task = tokio::spawn(async move {
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                let hup_recv = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = hup_recv => tracing::info!(path = %path.display(), "members file: SIGHUP, reloading"),
                }
                last = load(&path, &p, &mut condition, last.take());
            }
        });
        FileMembership {
            publisher,
            task: Mutex::new(Some(task)),
        }
    }
}

/// Read and publish the file if its text changed; returns the text read.
fn load(
    path: &Path,
    publisher: &Publisher,
    condition: &mut Condition,
    last: Option<String>,
) -> Option<String> {
    let what = format!("members file {}", path.display());
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            condition.failed(&what, &e);
            return last;
        }
    };
    if last.as_deref() == Some(text.as_str()) {
        return last;
    }
    let urls: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    match validate(&urls) {
        Ok(_) => {
            condition.ok(&what);
            publisher.publish(
                urls.iter()
                    .map(|u| MemberInfo {
                        url: (*u).to_owned(),
                        state: MemberState::Alive,
                    })
                    .collect(),
            );
            Some(text)
        }
        Err(e) => {
            condition.failed(&what, &e);
            // Remember the bad text so it is not re-parsed (and re-logged) every poll.
            Some(text)
        }
    }
}

impl Drop for FileMembership {
    fn drop(&mut self) {
        if let Some(t) = self.task.get_mut().take() {
            t.abort();
        }
    }
}

impl Membership for FileMembership {
    fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>> {
        self.publisher.subscribe()
    }
    fn states(&self) -> Vec<MemberInfo> {
        self.publisher.states()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reloads_on_change_and_keeps_the_last_good_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("members");
        std::fs::write(&path, "http://127.0.0.1:1\n# comment\nhttp://127.0.0.1:2\n").unwrap();
        let m = FileMembership::start("http://127.0.0.1:1", &path, Duration::from_millis(20));
        let rx = m.subscribe();
        assert_eq!(
            rx.borrow().members,
            ["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );

        std::fs::write(&path, "http://127.0.0.1:1, http://127.0.0.1:3").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while rx.borrow().members != ["http://127.0.0.1:1", "http://127.0.0.1:3"] {
            assert!(std::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let version = rx.borrow().version;
        std::fs::write(&path, "not a url at all").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            rx.borrow().version,
            version,
            "a bad file keeps the last list"
        );
        assert_eq!(
            rx.borrow().members,
            ["http://127.0.0.1:1", "http://127.0.0.1:3"]
        );
    }
}
