//! Background work: polling the roster and checking replica health.

use std::time::Duration;

use http::{HeaderMap, Method};
use tokio::task::JoinHandle;

use crate::body::empty;
use crate::roster::{Roster, fingerprint};
use crate::router::Router;
use crate::upstream::{request, send};

impl Router {
    /// Starts the roster poller (with a roster) and health checks (when enabled). Abort the
    /// handles to stop them.
    pub fn spawn_background(&self) -> Vec<JoinHandle<()>> {
        let mut out = Vec::new();
        if self.inner.settings.load().roster.is_some() {
            let r = self.clone();
            out.push(tokio::spawn(async move { r.poll_roster().await }));
        }
        if let Some(every) = self.inner.settings.load().health_interval {
            let r = self.clone();
            out.push(tokio::spawn(async move { r.health_loop(every).await }));
        }
        out
    }

    async fn poll_roster(self) {
        let Some(path) = self.inner.settings.load().roster.clone() else {
            return;
        };
        let mut seen = fingerprint(&path).ok();
        let mut tick = tokio::time::interval(self.inner.settings.load().roster_check);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = match fingerprint(&path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(roster = %path.display(), error = %e, "cannot stat roster; keeping the last one");
                    continue;
                }
            };
            if seen.as_ref() == Some(&now) {
                continue;
            }
            match Roster::load(&path) {
                Ok(roster) => {
                    tracing::info!(
                        roster = %path.display(),
                        hosts = roster.hosts.len(),
                        ignored_lines = roster.ignored_lines,
                        "roster reloaded"
                    );
                    self.apply_roster(&roster);
                    seen = Some(now);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read roster; keeping the last one"),
            }
        }
    }

    async fn health_loop(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check_health_once().await;
        }
    }

    /// Checks every replica once: `HEAD /` answered below 500 within the health timeout is
    /// healthy; anything else is not.
    pub async fn check_health_once(&self) {
        let timeout = self.inner.settings.load().health_timeout;
        let mut set = tokio::task::JoinSet::new();
        for r in &self.inner.topo.load_full().all {
            let Ok(req) = request(r, Method::HEAD, "/", HeaderMap::new(), empty()) else {
                continue;
            };
            let (client, r) = (self.inner.client.clone(), r.clone());
            set.spawn(async move {
                let ok = matches!(
                    send(client, r.clone(), req, timeout).await,
                    Ok(resp) if !resp.status().is_server_error()
                );
                if r.set_healthy(ok) {
                    if ok {
                        tracing::info!(replica = r.base(), "replica healthy again");
                    } else {
                        tracing::warn!(replica = r.base(), "replica failed its health check");
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
    }
}
