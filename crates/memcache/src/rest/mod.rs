//! REST/HTTP vBucket configuration (moxi's `-z url=...`, libconflate's "rest" thread).
//!
//! A [`RestSource`] is a list of `http://` URLs tried in order, with optional HTTP basic
//! auth. Each URL's body is a stream of configs separated by four newlines (Couchbase's
//! `bucketsStreaming` endpoints), or, for a URL that closes after one answer, one config.
//! A config is a vBucket map (applied as [`Servers::VBucket`]) or, with
//! `"nodeLocator":"ketama"`, a server list hashed with libmemcached's weighted ketama, as
//! moxi does. [`watch`] runs the loop and hands every valid config to a callback:
//!
//! - a body that is not a valid config, a failed connect or an HTTP error: the next URL;
//! - HTTP 401: an error line, then the next URL (moxi exits the process instead);
//! - the stream ends after a valid config: one second, then again from the first URL;
//! - every URL failed: one second, then again from the first URL.
//!
//! Unlike moxi, a delimiter split across two reads is found (moxi only looks at the end of
//! each read), and `url=A,http://B` keeps `B` (moxi drops it).

mod body;
mod http;
mod url;

use std::sync::Arc;
use std::time::Duration;

pub use body::{Splitter, servers_from_config};
pub use url::{HttpUrl, RestSource};

use crate::proxy::{Proxy, Servers};

/// Time between rounds over the URLs (moxi's 1 s).
pub const ROUND_PAUSE: Duration = Duration::from_secs(1);

/// Why a URL gave no (more) configs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// A URL that is not `http://[user:password@]host[:port][/path]`.
    #[error("bad config URL {0:?}: expected http://[user:password@]host[:port][/path]")]
    BadUrl(String),
    /// The TCP connect failed or timed out.
    #[error("connect to {url}: {message}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The HTTP exchange failed (a broken stream, a response head that did not come).
    #[error("GET {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// HTTP 401: the user or password is wrong.
    #[error("GET {0}: authentication failure (HTTP 401)")]
    Unauthorized(String),
    /// Another non-2xx status.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A body that is not a usable config.
    #[error("bad config: {0}")]
    BadConfig(String),
    /// A config larger than the limit.
    #[error("config larger than {0} bytes")]
    TooLarge(usize),
}

/// Gets configs from `source` forever, calling `apply` with each valid one (the same config
/// may come again, from a re-polled URL). Cancel by dropping the future.
pub async fn watch(source: RestSource, mut apply: impl FnMut(Servers) + Send) {
    loop {
        for url in &source.urls {
            match http::stream_configs(url, source.auth.as_ref(), &mut apply).await {
                Ok(()) => break,
                Err(e @ RestError::Unauthorized(_)) => {
                    tracing::error!(error = %e, "REST config: trying the next URL")
                }
                Err(e) => tracing::warn!(error = %e, "REST config: trying the next URL"),
            }
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}

/// Runs [`watch`] for `proxy`: each new config replaces its servers without touching client
/// connections ([`Proxy::set_servers`]); a config equal to the one in force is skipped, so a
/// re-polled URL changes nothing (and keeps NOT_MY_VBUCKET corrections).
pub async fn feed(proxy: Arc<Proxy>, source: RestSource) {
    let mut last: Option<Servers> = None;
    watch(source, move |servers| {
        if last.as_ref() == Some(&servers) {
            return;
        }
        match proxy.set_servers(servers.clone()) {
            Ok(kept) => {
                let n = proxy.cluster().router.servers().len();
                tracing::info!(
                    proxy = %proxy.config().name,
                    servers = n,
                    kept_connections = kept,
                    "REST config applied"
                );
                last = Some(servers);
            }
            Err(e) => tracing::warn!(error = %e, "REST config not applied"),
        }
    })
    .await
}
