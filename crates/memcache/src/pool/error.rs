//! Why a downstream request failed, and the `SERVER_ERROR` line the client gets.

/// What went wrong with a downstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownstreamErrorKind {
    /// No reply within the request timeout.
    Timeout,
    /// The connection closed before the reply was complete.
    Closed,
    /// The TCP connect failed or timed out.
    Connect,
    /// The server failed too often and is left alone until its retry interval passes.
    Unavailable,
    /// The server sent something that is not a memcached reply.
    Protocol,
    /// No server owns the key (an empty ring, a vBucket without a master).
    NoServer,
}

/// A failed downstream request: where (the server's host, as moxi names it) and why.
/// Every kind can be retried later; none is the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("downstream {host}: {kind:?}")]
pub struct DownstreamError {
    kind: DownstreamErrorKind,
    host: String,
}

impl DownstreamError {
    /// An error of `kind` for the server on `host`.
    pub fn new(kind: DownstreamErrorKind, host: impl Into<String>) -> Self {
        Self {
            kind,
            host: host.into(),
        }
    }

    /// Why.
    pub fn kind(&self) -> DownstreamErrorKind {
        self.kind
    }

    /// The ascii reply: moxi's texts (`SERVER_ERROR proxy downstream timeout <host>`,
    /// `... closed <host>`) where moxi has one, with `\r\n`. Like moxi, only the host is
    /// named, not the port.
    pub fn ascii_reply(&self) -> Vec<u8> {
        let what = match self.kind {
            DownstreamErrorKind::Timeout => "proxy downstream timeout",
            DownstreamErrorKind::Closed => "proxy downstream closed",
            DownstreamErrorKind::Connect => "proxy downstream connect failed",
            DownstreamErrorKind::Unavailable => "proxy downstream unavailable",
            DownstreamErrorKind::Protocol => "proxy downstream protocol error",
            DownstreamErrorKind::NoServer => "a server is not available",
        };
        let mut s = format!("SERVER_ERROR {what}");
        if !self.host.is_empty() && self.kind != DownstreamErrorKind::NoServer {
            s.push(' ');
            s.push_str(&self.host);
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// The binary status: moxi answers a timeout with EBUSY and other failures with
    /// EINTERNAL.
    pub fn binary_status(&self) -> crate::binary::Status {
        match self.kind {
            DownstreamErrorKind::Timeout | DownstreamErrorKind::Unavailable => {
                crate::binary::Status::BUSY
            }
            _ => crate::binary::Status::INTERNAL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_moxis() {
        let e = DownstreamError::new(DownstreamErrorKind::Timeout, "127.0.0.1");
        assert_eq!(
            e.ascii_reply(),
            b"SERVER_ERROR proxy downstream timeout 127.0.0.1\r\n"
        );
        let e = DownstreamError::new(DownstreamErrorKind::Closed, "h");
        assert_eq!(
            e.ascii_reply(),
            b"SERVER_ERROR proxy downstream closed h\r\n"
        );
    }
}
