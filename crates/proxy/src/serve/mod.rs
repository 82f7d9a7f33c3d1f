//! The HTTP front: HTTP/1.1 and h2c (prior knowledge) on one port, via hyper-util's auto
//! builder, with a connection limit, a header read timeout, a header size cap and graceful
//! shutdown. With [`ServerConfig::tls`] the port speaks HTTPS instead (ALPN `h2`,
//! `http/1.1`); the handshake shares the header read timeout.

mod body;
mod handler;
mod io;
mod plan;
mod stream;

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

pub use self::body::{BodyError, ProxyBody};
pub use self::handler::{Proxy, ProxyConfig};

/// Settings of the listener.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Most client connections open at once; more wait in the kernel's backlog
    /// (default 10,000).
    pub max_connections: usize,
    /// Deadline for a client to send a request's headers (default 10 s).
    pub header_read_timeout: Duration,
    /// Largest request head accepted, in bytes (default 16 KiB; at least 8 KiB). Larger
    /// heads get 431 (HTTP/1.1) or a stream reset (h2).
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight replies (default 10 s).
    pub drain_timeout: Duration,
    /// Longest a client may stall a reply by not reading it (time between two successful
    /// writes, as nginx's `send_timeout`; default 60 s). Then the connection is closed.
    pub send_timeout: Duration,
    /// Serve HTTPS with this configuration (see [`crate::tls::server_config`]); `None`
    /// (the default) serves plain HTTP/1.1 and h2c.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Write a line per request here (`None`, the default: no access log).
    pub access_log: Option<Arc<AccessLog>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            drain_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            tls: None,
            access_log: None,
        }
    }
}

/// Serve `proxy` on `listener` until `shutdown` resolves, then drain.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .writev(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .adaptive_window(true);
    let builder = Arc::new(builder);
    let acceptor = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        metrics::counter!("shoal_http_connections_total").increment(1);
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte = config.header_read_timeout;
        let send_timeout = config.send_timeout;
        let acceptor = acceptor.clone();
        let log = config.access_log.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // hyper's header timeout starts after protocol detection: bound the wait for the
            // first byte here, so an idle connection cannot hold a slot forever.
            let mut probe = [0u8; 1];
            match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let io = io::SendTimeout::new(stream, send_timeout);
            let Some(acceptor) = acceptor else {
                serve_connection(&builder, TokioIo::new(io), proxy, watcher, peer, log).await;
                return;
            };
            if let Some(tls) = shoal_tls::accept(&acceptor, io, probe[0], first_byte, peer).await {
                serve_connection(&builder, TokioIo::new(tls), proxy, watcher, peer, log).await;
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!("drain timeout: closing connections with replies in flight");
        }
    }
    Ok(())
}

async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    proxy: Arc<Proxy>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: std::net::SocketAddr,
    log: Option<Arc<AccessLog>>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let started = log.as_ref().map(|l| l.start(&req, peer));
        async move {
            let resp = proxy.handle(req).await;
            Ok::<_, std::convert::Infallible>(match started {
                Some(s) => s.wrap(resp),
                None => resp.map(Logged::off),
            })
        }
    });
    let conn = builder.serve_connection(io, service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
