//! Ascii replies (classic and meta): incremental decoding of what servers send, with
//! pipelining, and encoding of what the proxy sends back.

use bytes::{BufMut, Bytes, BytesMut};

use super::line::{Tokens, iter};
use super::request::put_num;
use crate::Limits;
use crate::error::ResponseError;
use crate::num::strtoull;

/// One ascii reply element. A multi-get reply is several `Value`s then `End`, and a `stats`
/// reply several `Stat`s then `End`, so a proxy can merge and reorder them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `VALUE <key> <flags> <bytes> [<cas>]` and its data block.
    Value(Value),
    /// `END`.
    End,
    /// `STORED`.
    Stored,
    /// `NOT_STORED`.
    NotStored,
    /// `EXISTS`.
    Exists,
    /// `NOT_FOUND`.
    NotFound,
    /// `DELETED`.
    Deleted,
    /// `TOUCHED`.
    Touched,
    /// `OK`.
    Ok,
    /// `RESET` (after `stats reset`).
    Reset,
    /// The new value after `incr`/`decr`.
    Number(u64),
    /// `STAT <name> <value>`.
    Stat {
        /// The statistic's name.
        name: Bytes,
        /// Its value (the rest of the line).
        value: Bytes,
    },
    /// `VERSION <version>`.
    Version(Bytes),
    /// A line of a `stats cachedump` (`ITEM <key> [...]`) or `stats detail dump`
    /// (`PREFIX <prefix> ...`) reply, kept whole; the reply ends with `END`.
    Listing(Bytes),
    /// `ERROR`.
    Error,
    /// `CLIENT_ERROR <message>`.
    ClientError(Bytes),
    /// `SERVER_ERROR <message>`.
    ServerError(Bytes),
    /// A meta reply.
    Meta(MetaResponse),
}

/// A `VALUE` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The key.
    pub key: Bytes,
    /// Client flags.
    pub flags: u32,
    /// The CAS value (`gets`, `gats`).
    pub cas: Option<u64>,
    /// The data, without `\r\n`.
    pub data: Bytes,
}

impl Value {
    /// Appends the `VALUE <key> <flags> <bytes> [<cas>]\r\n` line, without the data (which
    /// a streaming writer may send from its own buffer).
    pub(crate) fn encode_header(&self, dst: &mut BytesMut) {
        dst.put_slice(b"VALUE ");
        dst.put_slice(&self.key);
        put_num(dst, self.flags);
        put_num(dst, self.data.len());
        if let Some(c) = self.cas {
            put_num(dst, c);
        }
        dst.put_slice(b"\r\n");
    }
}

/// The two-letter code of a meta reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaCode {
    /// `HD`: success, no value.
    Hd,
    /// `VA <size>`: a value follows.
    Va,
    /// `EN`: miss.
    En,
    /// `NF`: not found.
    Nf,
    /// `NS`: not stored.
    Ns,
    /// `EX`: exists (CAS mismatch).
    Ex,
    /// `MN`: the no-op's reply.
    Mn,
    /// `ME <key> <debug pairs>`.
    Me,
}

impl MetaCode {
    const ALL: [(MetaCode, &'static [u8]); 8] = [
        (MetaCode::Hd, b"HD"),
        (MetaCode::Va, b"VA"),
        (MetaCode::En, b"EN"),
        (MetaCode::Nf, b"NF"),
        (MetaCode::Ns, b"NS"),
        (MetaCode::Ex, b"EX"),
        (MetaCode::Mn, b"MN"),
        (MetaCode::Me, b"ME"),
    ];

    /// The code as sent.
    pub fn as_bytes(self) -> &'static [u8] {
        Self::ALL[self as usize].1
    }

    fn from_bytes(b: &[u8]) -> Option<MetaCode> {
        Self::ALL.iter().find(|(_, t)| *t == b).map(|(c, _)| *c)
    }
}

/// A meta reply: its code, its flag tokens (for `ME`, the key and the debug pairs) and the
/// value of a `VA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaResponse {
    /// The code.
    pub code: MetaCode,
    /// Return flags as sent (`t30`, `Oopaque`, `kkey`, ...).
    pub flags: Vec<Bytes>,
    /// The value of a `VA` reply.
    pub value: Option<Bytes>,
}

const FIXED: [(&[u8], Response); 10] = [
    (b"END", Response::End),
    (b"STORED", Response::Stored),
    (b"NOT_STORED", Response::NotStored),
    (b"EXISTS", Response::Exists),
    (b"NOT_FOUND", Response::NotFound),
    (b"DELETED", Response::Deleted),
    (b"TOUCHED", Response::Touched),
    (b"OK", Response::Ok),
    (b"RESET", Response::Reset),
    (b"ERROR", Response::Error),
];

/// Decodes one reply element from the front of `buf`: `Ok(None)` until it is complete
/// (nothing is consumed then). Lines are capped at `limits.max_line`, values at
/// `limits.max_item_size`.
pub fn decode_response(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Response>, ResponseError> {
    let scan = buf.len().min(limits.max_line + 2);
    let Some(nl) = memchr::memchr(b'\n', &buf[..scan]) else {
        if buf.len() >= limits.max_line + 2 {
            return Err(ResponseError::LineTooLong);
        }
        return Ok(None);
    };
    let end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let line = &buf[..end];
    let t = Tokens::new(line);
    let first = t.get(line, 0);
    // Replies with a data block: how long it is, before anything is consumed.
    let block = match first {
        b"VALUE" if t.len() == 4 || t.len() == 5 => Some(parse_len(t.get(line, 3), limits)?),
        b"VA" if t.len() >= 2 => Some(parse_len(t.get(line, 1), limits)?),
        // A `VALUE` or `VA` line without its length (or with more than memcached writes):
        // where its data block ends cannot be known.
        b"VALUE" | b"VA" => return Err(ResponseError::Malformed),
        _ => None,
    };
    let frame_len = nl + 1 + block.map_or(0, |n| n + 2);
    if buf.len() < frame_len {
        crate::reserve_ahead(buf, frame_len);
        return Ok(None);
    }
    let frame = buf.split_to(frame_len).freeze();
    let line = frame.slice(..end);
    let data = match block {
        Some(n) => {
            if &frame[nl + 1 + n..] != b"\r\n" {
                return Err(ResponseError::BadDataChunk);
            }
            Some(frame.slice(nl + 1..nl + 1 + n))
        }
        None => None,
    };
    parse_line(&line, &t, data).map(Some)
}

fn parse_len(tok: &[u8], limits: &Limits) -> Result<usize, ResponseError> {
    let n = strtoull(tok).ok_or(ResponseError::Malformed)?;
    match usize::try_from(n) {
        Ok(n) if n <= limits.max_item_size => Ok(n),
        _ => Err(ResponseError::TooLarge),
    }
}

/// The rest of the line after token `i` (and the space after it).
fn rest_after(line: &Bytes, t: &Tokens, i: usize) -> Bytes {
    let start = t
        .range(i)
        .map_or(line.len(), |r| (r.end + 1).min(line.len()));
    line.slice(start..)
}

fn parse_line(line: &Bytes, t: &Tokens, data: Option<Bytes>) -> Result<Response, ResponseError> {
    let l = &line[..];
    let first = t.get(l, 0);
    if let Some((_, r)) = FIXED.iter().find(|(w, _)| *w == l) {
        return Ok(r.clone());
    }
    let tok = |i: usize| line.slice(t.range(i).unwrap_or(0..0));
    match first {
        b"VALUE" => {
            let flags = strtoull(t.get(l, 2))
                .and_then(|f| u32::try_from(f).ok())
                .ok_or(ResponseError::Malformed)?;
            let cas = match t.len() {
                5 => Some(strtoull(t.get(l, 4)).ok_or(ResponseError::Malformed)?),
                _ => None,
            };
            Ok(Response::Value(Value {
                key: tok(1),
                flags,
                cas,
                data: data.unwrap_or_default(),
            }))
        }
        b"STAT" if t.len() >= 2 => Ok(Response::Stat {
            name: tok(1),
            value: rest_after(line, t, 1),
        }),
        b"VERSION" => Ok(Response::Version(rest_after(line, t, 0))),
        b"ITEM" | b"PREFIX" if t.len() >= 2 => Ok(Response::Listing(line.clone())),
        b"CLIENT_ERROR" => Ok(Response::ClientError(rest_after(line, t, 0))),
        b"SERVER_ERROR" => Ok(Response::ServerError(rest_after(line, t, 0))),
        _ if !first.is_empty() && first.iter().all(u8::is_ascii_digit) && t.len() == 1 => {
            strtoull(first)
                .map(Response::Number)
                .ok_or(ResponseError::Malformed)
        }
        _ => {
            let code = MetaCode::from_bytes(first).ok_or(ResponseError::Malformed)?;
            let skip = if code == MetaCode::Va { 2 } else { 1 };
            Ok(Response::Meta(MetaResponse {
                code,
                flags: iter(l).skip(skip).map(|r| line.slice(r)).collect(),
                value: data,
            }))
        }
    }
}

impl Response {
    /// Appends the reply as memcached writes it.
    pub fn encode(&self, dst: &mut BytesMut) {
        let fixed = FIXED.iter().find(|(_, r)| r == self);
        if let Some((w, _)) = fixed {
            dst.put_slice(w);
            dst.put_slice(b"\r\n");
            return;
        }
        match self {
            Response::Value(v) => {
                dst.reserve(v.key.len() + v.data.len() + 48);
                v.encode_header(dst);
                dst.put_slice(&v.data);
            }
            Response::Number(n) => dst.put_slice(n.to_string().as_bytes()),
            Response::Stat { name, value } => {
                dst.put_slice(b"STAT ");
                dst.put_slice(name);
                dst.put_u8(b' ');
                dst.put_slice(value);
            }
            Response::Version(v) => put_text(dst, b"VERSION", v),
            Response::Listing(l) => dst.put_slice(l),
            Response::ClientError(m) => put_text(dst, b"CLIENT_ERROR", m),
            Response::ServerError(m) => put_text(dst, b"SERVER_ERROR", m),
            Response::Meta(m) => {
                dst.put_slice(m.code.as_bytes());
                if m.code == MetaCode::Va {
                    put_num(dst, m.value.as_ref().map_or(0, Bytes::len));
                }
                for f in &m.flags {
                    dst.put_u8(b' ');
                    dst.put_slice(f);
                }
                if let Some(v) = &m.value {
                    dst.put_slice(b"\r\n");
                    dst.put_slice(v);
                }
            }
            // Fixed words were written above.
            _ => {}
        }
        dst.put_slice(b"\r\n");
    }
}

fn put_text(dst: &mut BytesMut, word: &[u8], text: &[u8]) {
    dst.put_slice(word);
    dst.put_u8(b' ');
    dst.put_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<Response> {
        let mut b = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = decode_response(&mut b, &Limits::default()).unwrap() {
            out.push(r);
        }
        assert!(b.is_empty(), "left over: {b:?}");
        out
    }

    #[test]
    fn pipelined_replies() {
        let got = all(b"VALUE a 5 3 9\r\nxyz\r\nVALUE b 0 0\r\n\r\nEND\r\nSTORED\r\n42\r\nSTAT pid 7\r\nVERSION 1.6.18\r\nCLIENT_ERROR bad data chunk\r\nHD t30 Oab\r\nVA 2 f0\r\nhi\r\nEN\r\nMN\r\n");
        assert_eq!(got.len(), 12);
        let Response::Value(v) = &got[0] else {
            panic!()
        };
        assert_eq!(
            (&v.key[..], v.flags, v.cas, &v.data[..]),
            (&b"a"[..], 5, Some(9), &b"xyz"[..])
        );
        assert_eq!(got[2], Response::End);
        assert_eq!(got[4], Response::Number(42));
        assert_eq!(
            got[5],
            Response::Stat {
                name: Bytes::from_static(b"pid"),
                value: Bytes::from_static(b"7")
            }
        );
        assert_eq!(
            got[7],
            Response::ClientError(Bytes::from_static(b"bad data chunk"))
        );
        let Response::Meta(va) = &got[9] else {
            panic!()
        };
        assert_eq!(va.code, MetaCode::Va);
        assert_eq!(va.value.as_deref(), Some(&b"hi"[..]));
        assert_eq!(va.flags, vec![Bytes::from_static(b"f0")]);
    }

    #[test]
    fn waits_for_the_whole_value() {
        let mut b = BytesMut::from(&b"VALUE a 0 5\r\nhel"[..]);
        assert_eq!(decode_response(&mut b, &Limits::default()), Ok(None));
        assert_eq!(b.len(), 16);
        b.extend_from_slice(b"lo\r\n");
        assert!(
            decode_response(&mut b, &Limits::default())
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn refuses_garbage() {
        let l = Limits::default();
        for bad in [
            &b"WHAT\r\n"[..],
            b"VALUE a x 1\r\nx\r\n",
            b"VALUE a 0 1\r\nxyz\r\n",
        ] {
            assert!(
                decode_response(&mut BytesMut::from(bad), &l).is_err(),
                "{bad:?}"
            );
        }
        let long = vec![b'x'; 20000];
        assert_eq!(
            decode_response(&mut BytesMut::from(&long[..]), &l),
            Err(ResponseError::LineTooLong)
        );
    }

    /// Found by the `memcache_response` fuzz target: a bare `VA` line was read as a value
    /// reply without a value, which the proxy passed on as `VA 0\r\n` with no data block
    /// after it, putting its client out of step.
    #[test]
    fn va_without_its_size_is_malformed() {
        for bad in [&b"VA\n"[..], b"VA\r\n", b"  VA \r\nHD\r\n"] {
            let mut b = BytesMut::from(bad);
            assert_eq!(
                decode_response(&mut b, &Limits::default()),
                Err(ResponseError::Malformed),
                "{bad:?}"
            );
            assert_eq!(&b[..], bad, "nothing consumed");
        }
    }

    /// Found by the `memcache_response` fuzz target: a `VALUE` line with three tokens was
    /// read as a hit with an empty value, without reading the data block that follows; so
    /// was one with six or more, and the data block was then read as reply lines.
    #[test]
    fn value_without_its_length_is_malformed() {
        for bad in [
            &b"VALUE W 0\n"[..],
            b"VALUE k 0\r\n",
            b"VALUE k 0 3 1 2\r\nEND\r\n",
        ] {
            let mut b = BytesMut::from(bad);
            assert_eq!(
                decode_response(&mut b, &Limits::default()),
                Err(ResponseError::Malformed),
                "{bad:?}"
            );
            assert_eq!(&b[..], bad, "nothing consumed");
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let input: &[u8] = b"VALUE k 1 2 3\r\nab\r\nEND\r\nTOUCHED\r\n7\r\nSERVER_ERROR out of memory\r\nME k exp=-1 la=0\r\nVA 1 t5\r\nx\r\nSTAT a b c\r\n";
        let mut out = BytesMut::new();
        for r in all(input) {
            r.encode(&mut out);
        }
        assert_eq!(&out[..], input);
    }
}
