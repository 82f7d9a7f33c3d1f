//! Opening connections to peers: TCP, then TLS when the peer URL is `https`. One connector
//! serves the HTTP clients (through hyper-util's pool) and the gRPC channels (through
//! tonic), so every transport shares the same TLS and timeout behaviour.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::tls::ClientTls;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connection to a peer.
#[derive(Debug)]
pub(crate) enum PeerStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for PeerStream {
    fn connected(&self) -> Connected {
        match self {
            PeerStream::Plain(_) => Connected::new(),
            PeerStream::Tls(s) => {
                let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                let c = Connected::new();
                if h2 { c.negotiated_h2() } else { c }
            }
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            PeerStream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            PeerStream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            PeerStream::Plain(s) => s.is_write_vectored(),
            PeerStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Connects to `http://` URIs over TCP and to `https://` URIs over TLS with `tls`.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    tls: Option<ClientTls>,
    timeout: Duration,
    always_tls: bool,
}

impl Connector {
    pub(crate) fn new(tls: Option<ClientTls>, timeout: Duration) -> Self {
        Connector {
            tls,
            timeout,
            always_tls: false,
        }
    }

    /// Use TLS whatever the URI's scheme. For tonic: once any crate in the build (here
    /// etcd-client) turns on a tonic TLS feature, tonic refuses `https://` endpoints that
    /// have no tonic TLS config, so gRPC channels to `https` peers are given `http://` URIs
    /// and this connector still speaks TLS.
    pub(crate) fn always_tls(mut self) -> Self {
        self.always_tls = true;
        self
    }

    async fn connect(self, uri: Uri) -> io::Result<TokioIo<PeerStream>> {
        let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_owned());
        let host = uri.host().ok_or_else(|| invalid("no host in peer URI"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let https = self.always_tls || uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let work = async {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            if !https {
                return Ok(PeerStream::Plain(tcp));
            }
            let config = self
                .tls
                .as_ref()
                .map(|t| t.load_full())
                .ok_or_else(|| invalid("https peer, but this cluster has no TLS configured"))?;
            let name =
                ServerName::try_from(host.clone()).map_err(|_| invalid("bad TLS server name"))?;
            let tls = TlsConnector::from(config).connect(name, tcp).await?;
            Ok(PeerStream::Tls(Box::new(tls)))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(stream) => stream.map(TokioIo::new),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<PeerStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<PeerStream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}
