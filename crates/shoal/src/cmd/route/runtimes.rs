//! `--runtimes N`: N single-threaded runtimes, each on its own thread with its own
//! `SO_REUSEPORT` listener on the front address and its own connection pool to the storage
//! nodes. A request is then accepted, forwarded and answered on one thread, without the
//! cross-thread wake-ups of a work-stealing runtime; the kernel spreads new connections over
//! the listeners. Admin, health checks and the roster stay on the main thread.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use shoal_router::{Router, server};

use crate::shutdown::Shutdown;

/// Binds `n` listeners sharing `addr` with `SO_REUSEPORT` (a port of 0 is resolved by the
/// first). Runs inside a runtime; the listeners come back as std ones, to move to threads.
pub fn bind(addr: SocketAddr, n: usize) -> Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n {
        let s = if at.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .context("creating a socket")?;
        s.set_reuseaddr(true).context("SO_REUSEADDR")?;
        s.set_reuseport(true).context("SO_REUSEPORT")?;
        s.bind(at)
            .with_context(|| format!("cannot listen on {at}"))?;
        let l = s
            .listen(1024)
            .with_context(|| format!("cannot listen on {at}"))?;
        at = l.local_addr()?;
        out.push(l.into_std()?);
    }
    Ok(out)
}

/// Serves `router` on each listener from its own thread and runtime until `shutdown`.
pub fn serve(
    listeners: Vec<std::net::TcpListener>,
    router: &Router,
    limits: &server::ServerLimits,
    shutdown: &Shutdown,
) -> Result<Vec<JoinHandle<Result<()>>>> {
    let mut threads = Vec::with_capacity(listeners.len());
    for (i, l) in listeners.into_iter().enumerate() {
        let (router, limits, shutdown) = (router.clone(), limits.clone(), shutdown.clone());
        let t = std::thread::Builder::new()
            .name(format!("route-{i}"))
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a runtime")?;
                rt.block_on(async move {
                    router.use_thread_local_pool();
                    let l = tokio::net::TcpListener::from_std(l)?;
                    server::serve(l, router, limits, async move { shutdown.wait().await }).await?;
                    Ok(())
                })
            })
            .context("starting a runtime thread")?;
        threads.push(t);
    }
    Ok(threads)
}
