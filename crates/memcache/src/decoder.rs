//! The incremental request decoder of one client connection.

use bytes::{Buf, BytesMut};

use crate::ascii::line::{command_end, is_multiget};
use crate::ascii::parse::{Parsed, Pending, parse_line};
use crate::binary::REQUEST_MAGIC;
use crate::error::{Action, ErrorKind, ProtocolError};
use crate::{Limits, Protocol, Request, binary};

/// Decodes the requests of one client connection, in either protocol, from a read buffer.
///
/// Call [`decode`](Self::decode) after every read until it returns `Ok(None)`. On
/// `Err(e)`, write `e.reply()` to the client; unless `e.is_close()`, keep decoding (the
/// decoder skips whatever memcached would skip, such as the value of a too-large `set`).
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    protocol: Option<Protocol>,
    /// Bytes of the current line already searched for `\n`.
    scanned: usize,
    /// Bytes still to drop from the stream.
    swallow: u64,
    /// A storage command whose line was read and whose value block is awaited.
    pending: Option<Pending>,
    closed: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder that picks the protocol from the first byte, as memcached does.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            protocol: None,
            scanned: 0,
            swallow: 0,
            pending: None,
            closed: false,
        }
    }

    /// The connection's protocol, once its first byte has been seen.
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Decodes the next request at the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed (what was complete has been consumed; nothing is
    /// allocated and no byte is searched twice). `Err`: see [`ProtocolError`]; after a
    /// [`Action::Close`] every further call fails the same way.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        if self.closed {
            return Err(ProtocolError::new(
                ErrorKind::Closed,
                bytes::Bytes::new(),
                Action::Close,
            ));
        }
        if self.swallow > 0 {
            let n = usize::try_from(self.swallow)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            buf.advance(n);
            self.swallow -= n as u64;
            if self.swallow > 0 {
                return Ok(None);
            }
        }
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let protocol = *self.protocol.get_or_insert(if first == REQUEST_MAGIC {
            Protocol::Binary
        } else {
            Protocol::Ascii
        });
        let result = match protocol {
            Protocol::Ascii => self.decode_ascii(buf),
            Protocol::Binary => {
                binary::request::decode(buf, &self.limits).map(|r| r.map(Request::Binary))
            }
        };
        if let Err(e) = &result {
            match e.action() {
                Action::Close => self.closed = true,
                Action::Swallow(n) => self.swallow = n,
                Action::Continue => {}
            }
        }
        result
    }

    fn decode_ascii(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        if self.pending.is_none() {
            let Some(nl) = self.find_newline(buf)? else {
                return Ok(None);
            };
            let end = command_end(buf, nl);
            let line = buf.split_to(nl + 1).freeze().slice(..end);
            match parse_line(&line, &self.limits)? {
                Parsed::Done(r) => return Ok(Some(r)),
                Parsed::NeedValue(p) => self.pending = Some(p),
            }
        }
        let need = self.pending.as_ref().map_or(0, Pending::block_len);
        if buf.len() < need {
            buf.reserve(need - buf.len());
            return Ok(None);
        }
        let block = buf.split_to(need).freeze();
        match self.pending.take() {
            Some(p) => p.complete(block).map(Some),
            None => Ok(None),
        }
    }

    /// The index of the `\n` ending the next line, enforcing memcached's line limits.
    fn find_newline(&mut self, buf: &BytesMut) -> Result<Option<usize>, ProtocolError> {
        let from = self.scanned.min(buf.len());
        let found = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i);
        let l = &self.limits;
        let Some(nl) = found else {
            self.scanned = buf.len();
            if buf.len() > l.max_pending_line
                && (!is_multiget(buf) || buf.len() > l.max_multiget_line)
            {
                return Err(line_too_long());
            }
            return Ok(None);
        };
        self.scanned = 0;
        let limit = if is_multiget(&buf[..nl]) {
            l.max_multiget_line
        } else {
            l.max_line
        };
        if nl > limit {
            return Err(line_too_long());
        }
        Ok(Some(nl))
    }
}

/// memcached closes the connection without a word.
fn line_too_long() -> ProtocolError {
    ProtocolError::new(ErrorKind::LineTooLong, bytes::Bytes::new(), Action::Close)
}
