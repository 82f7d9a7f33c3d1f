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
            crate::reserve_ahead(buf, need);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ascii::AsciiRequest;
    use crate::reply;

    fn feed(
        d: &mut Decoder,
        buf: &mut BytesMut,
        more: &[u8],
    ) -> Vec<Result<Request, ProtocolError>> {
        buf.extend_from_slice(more);
        let mut out = Vec::new();
        loop {
            match d.decode(buf) {
                Ok(None) => return out,
                Ok(Some(r)) => out.push(Ok(r)),
                Err(e) => {
                    let close = e.is_close();
                    out.push(Err(e));
                    if close {
                        return out;
                    }
                }
            }
        }
    }

    #[test]
    fn value_arriving_byte_by_byte() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let input = b"set k 1 2 5 noreply\r\nhello\r\nget k\r\n";
        let mut got = Vec::new();
        for b in input {
            got.extend(feed(&mut d, &mut buf, &[*b]));
        }
        assert_eq!(got.len(), 2);
        let Ok(Request::Ascii(AsciiRequest::Store(s))) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(
            (&s.value[..], s.flags, s.exptime, s.noreply),
            (&b"hello"[..], 1, 2, true)
        );
        assert!(buf.is_empty());
        assert_eq!(d.protocol(), Some(Protocol::Ascii));
    }

    #[test]
    fn too_large_value_is_swallowed_across_reads() {
        let limits = Limits {
            max_item_size: 4,
            ..Limits::default()
        };
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let got = feed(&mut d, &mut buf, b"set k 0 0 10\r\n01234");
        assert_eq!(got.len(), 1);
        let e = got[0].as_ref().unwrap_err();
        assert_eq!(&e.reply()[..], reply::TOO_LARGE);
        assert_eq!(e.action(), Action::Swallow(12));
        assert!(feed(&mut d, &mut buf, b"56789\r").is_empty());
        let got = feed(&mut d, &mut buf, b"\nmn\r\n");
        assert!(matches!(&got[..], [Ok(Request::Meta(_))]), "{got:?}");
    }

    #[test]
    fn bad_data_chunk_then_the_rest_parses_as_commands() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let got = feed(&mut d, &mut buf, b"set k 0 0 1\r\nxyz\r\n");
        let replies: Vec<&[u8]> = got
            .iter()
            .map(|r| &r.as_ref().unwrap_err().reply()[..])
            .collect();
        assert_eq!(replies, [reply::BAD_DATA_CHUNK, reply::ERROR]);
    }

    #[test]
    fn long_lines_close_unless_multiget() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let got = feed(&mut d, &mut buf, &[b'x'; 2049]);
        assert!(got[0].as_ref().unwrap_err().is_close());
        assert!(
            d.decode(&mut BytesMut::from(&b"mn\r\n"[..])).is_err(),
            "stays closed"
        );

        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let line: Vec<u8> = b"get".iter().copied().chain(b" key".repeat(2000)).collect();
        for chunk in line.chunks(100) {
            assert!(feed(&mut d, &mut buf, chunk).is_empty());
        }
        let got = feed(&mut d, &mut buf, b"\r\n");
        let Ok(Request::Ascii(AsciiRequest::Get(g))) = &got[0] else {
            panic!()
        };
        assert_eq!(g.keys.len(), 2000);
    }

    #[test]
    fn binary_is_picked_from_the_first_byte() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut noop = BytesMut::new();
        binary::BinaryRequest::new(
            0x0a,
            Default::default(),
            Default::default(),
            Default::default(),
        )
        .encode(&mut noop);
        let got = feed(&mut d, &mut buf, &noop);
        assert!(matches!(&got[..], [Ok(Request::Binary(_))]));
        assert_eq!(d.protocol(), Some(Protocol::Binary));
        // Ascii on a binary connection is a bad header: closed without a reply.
        let got = feed(&mut d, &mut buf, b"get a b c d e f g h i j k\r\n");
        let e = got[0].as_ref().unwrap_err();
        assert!(e.is_close() && e.reply().is_empty());
    }
}
