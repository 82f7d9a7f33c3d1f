//! The HTTP front: accept connections and hand each request to the [`Router`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use shoal_access_log::{AccessLog, Logged};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::router::{RenderedClient, Router};

/// Limits of the front server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; more wait in the listen backlog. Default: 10,000.
    pub max_connections: usize,
    /// Time a client has to send its request headers. Default: 30s.
    pub header_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown. Default: 30s.
    pub drain: Duration,
    /// Write a line per request here (`None`, the default: no access log).
    pub access_log: Option<Arc<AccessLog>>,
    /// Serve HTTPS with this configuration (ALPN `h2` and `http/1.1`; see
    /// [`shoal_tls::server_config`]); `None`, the default: plain HTTP/1.1 and h2c.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(30),
            access_log: None,
            tls: None,
        }
    }
}

/// Serves `router` on `listener` (HTTP/1.1 and h2c, or HTTPS with `limits.tls`) until
/// `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let acceptor = limits.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let r = router.clone();
        let log = limits.access_log.clone();
        let client = RenderedClient::new(peer.ip().to_canonical());
        let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let r = r.clone();
            req.extensions_mut().insert(client.clone());
            let started = log.as_ref().map(|l| l.start(&req, peer));
            async move {
                let resp = r.handle(req).await;
                Ok::<_, std::convert::Infallible>(match started {
                    Some(s) => s.wrap(resp),
                    None => resp.map(Logged::off),
                })
            }
        });
        let Some(acceptor) = acceptor.clone() else {
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(permit);
            });
            continue;
        };
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let within = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            // hyper's header timeout starts once TLS is up: bound the wait for the first
            // byte and the handshake here, so an idle connection cannot hold a slot.
            let mut first = [0u8; 1];
            match tokio::time::timeout(within, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let Some(tls) = shoal_tls::accept(&acceptor, stream, first[0], within, peer).await
            else {
                return;
            };
            let conn = builder
                .serve_connection(TokioIo::new(tls), svc)
                .into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain time; closing them");
    }
    Ok(())
}
