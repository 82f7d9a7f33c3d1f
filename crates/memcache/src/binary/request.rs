//! Binary requests: framing, memcached 1.6.18's shape checks (`dispatch_bin_command`), and
//! encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::header::{HEADER_LEN, Header, Opcode, REQUEST_MAGIC, RESPONSE_MAGIC, Status};
use crate::Limits;
use crate::ascii::line::KEY_MAX;
use crate::error::{Action, ErrorKind, ProtocolError};

/// A binary request. Unknown opcodes are kept as generic frames (the proxy answers them
/// with [`error_reply`] and [`Status::UNKNOWN_COMMAND`], as memcached does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRequest {
    /// The header; its lengths always match the parts below.
    pub header: Header,
    /// Extras (flags and exptime for sets, delta for incr, ...).
    pub extras: Bytes,
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
}

impl BinaryRequest {
    /// A request with `opcode` and the given parts; lengths are filled in, the rest is zero.
    pub fn new(opcode: u8, extras: Bytes, key: Bytes, value: Bytes) -> Self {
        let mut header = Header {
            magic: REQUEST_MAGIC,
            opcode,
            ..Header::default()
        };
        set_lengths(&mut header, &extras, &key, &value);
        Self {
            header,
            extras,
            key,
            value,
        }
    }

    /// The opcode, if it is one memcached knows.
    pub fn opcode(&self) -> Option<Opcode> {
        self.header.known_opcode()
    }

    /// Whether the opcode is a quiet one.
    pub fn is_quiet(&self) -> bool {
        self.opcode().is_some_and(Opcode::is_quiet)
    }

    /// The opaque the reply must echo.
    pub fn opaque(&self) -> u32 {
        self.header.opaque
    }

    /// Appends the request; header lengths are taken from the parts.
    pub fn encode(&self, dst: &mut BytesMut) {
        let mut header = self.header;
        set_lengths(&mut header, &self.extras, &self.key, &self.value);
        dst.reserve(HEADER_LEN + header.body_len as usize);
        header.encode(dst);
        dst.put_slice(&self.extras);
        dst.put_slice(&self.key);
        dst.put_slice(&self.value);
    }
}

fn set_lengths(h: &mut Header, extras: &Bytes, key: &Bytes, value: &Bytes) {
    h.extras_len = extras.len() as u8;
    h.key_len = key.len() as u16;
    h.body_len = (extras.len() + key.len() + value.len()) as u32;
}

/// memcached's reply to a refused binary request: status, the request's opcode and opaque,
/// and memcached's text for the status as the body.
pub fn error_reply(request: &Header, status: Status) -> Bytes {
    let text = status.memcached_text();
    let mut b = BytesMut::with_capacity(HEADER_LEN + text.len());
    Header {
        magic: RESPONSE_MAGIC,
        opcode: request.opcode,
        vbucket_or_status: status.0,
        body_len: text.len() as u32,
        opaque: request.opaque,
        ..Header::default()
    }
    .encode(&mut b);
    b.put_slice(text);
    b.freeze()
}

fn refuse(h: &Header, kind: ErrorKind, status: Status, action: Action) -> ProtocolError {
    ProtocolError::new(kind, error_reply(h, status), action)
}

/// How much of the body memcached reads as part of the request.
enum Body {
    /// All of it.
    Whole,
    /// Extras and key only; memcached parses the rest as the next request.
    ExtrasAndKey,
    /// A value that may be too large to keep.
    Value,
}

/// The shape memcached requires for `op`, or `None` when it refuses the request.
fn shape(op: Option<Opcode>, ext: usize, key: usize, body: usize) -> Option<Body> {
    use Opcode::*;
    let Some(op) = op else {
        return Some(Body::Whole); // unknown: answered UNKNOWN_COMMAND, body swallowed
    };
    let ok = match op.loud() {
        Version | Noop | Quit | SaslListMechs => ext == 0 && key == 0 && body == 0,
        Flush => key == 0 && body == ext && (ext == 0 || ext == 4),
        Set | Add | Replace => ext == 8 && key != 0 && body >= key + 8,
        Get | GetK => ext == 0 && body == key && key > 0,
        Delete => key > 0 && ext == 0 && body == key,
        Increment | Decrement => key > 0 && ext == 20 && body == key + ext,
        Append | Prepend => key > 0 && ext == 0,
        Stat => ext == 0,
        SaslAuth | SaslStep => ext == 0 && key != 0,
        Touch | Gat | GatK => ext == 4 && key != 0,
        // Not served by memcached 1.6.18 (UNKNOWN_COMMAND, body swallowed), whatever its shape.
        Verbosity => true,
        _ => true,
    };
    ok.then_some(match op.loud() {
        Set | Add | Replace | Append | Prepend => Body::Value,
        Stat | Touch | Gat | GatK => Body::ExtrasAndKey,
        _ => Body::Whole,
    })
}

/// Decodes one binary request from the front of `buf`.
pub(crate) fn decode(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<BinaryRequest>, ProtocolError> {
    let Some(h) = Header::parse(buf) else {
        return Ok(None);
    };
    if h.magic != REQUEST_MAGIC {
        return Err(ProtocolError::new(
            ErrorKind::BadMagic,
            Bytes::new(),
            Action::Close,
        ));
    }
    let (ext, key, body) = (
        usize::from(h.extras_len),
        usize::from(h.key_len),
        h.body_len as usize,
    );
    if key > body || key + ext > body {
        let kind = ErrorKind::BadBinaryFrame;
        return Err(refuse(&h, kind, Status::UNKNOWN_COMMAND, Action::Close));
    }
    if key > KEY_MAX {
        let kind = ErrorKind::KeyTooLong;
        return Err(refuse(&h, kind, Status::INVALID_ARGUMENTS, Action::Close));
    }
    let op = h.known_opcode();
    let Some(shape) = shape(op, ext, key, body) else {
        let kind = ErrorKind::BadBinaryFrame;
        return Err(refuse(&h, kind, Status::INVALID_ARGUMENTS, Action::Close));
    };
    let frame_body = match shape {
        Body::ExtrasAndKey => ext + key,
        Body::Whole | Body::Value => body,
    };
    let value_len = body - ext - key;
    let too_large = match shape {
        Body::Value => value_len > limits.max_item_size,
        Body::Whole => body > limits.max_binary_body(),
        Body::ExtrasAndKey => false,
    };
    if too_large {
        // memcached reads the header, extras and key, answers, then swallows the rest. It
        // holds the value length in an `int`: a "negative" one swallows nothing.
        if buf.len() < HEADER_LEN + ext + key {
            return Ok(None);
        }
        buf.advance(HEADER_LEN + ext + key);
        let (status, kind) = match op {
            Some(_) => (Status::VALUE_TOO_LARGE, ErrorKind::TooLarge),
            None => (Status::UNKNOWN_COMMAND, ErrorKind::UnknownCommand),
        };
        let skip = if (value_len as i32) < 0 { 0 } else { value_len };
        return Err(refuse(&h, kind, status, Action::Swallow(skip as u64)));
    }
    let total = HEADER_LEN + frame_body;
    if buf.len() < total {
        crate::reserve_ahead(buf, total);
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(HEADER_LEN);
    let extras = frame.split_to(ext);
    let key = frame.split_to(key);
    let mut header = h;
    set_lengths(&mut header, &extras, &key, &frame);
    Ok(Some(BinaryRequest {
        header,
        extras,
        key,
        value: frame,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: u8, extras: &'static [u8], key: &'static [u8], value: &'static [u8]) -> BytesMut {
        let r = BinaryRequest::new(
            op,
            Bytes::from_static(extras),
            Bytes::from_static(key),
            Bytes::from_static(value),
        );
        let mut b = BytesMut::new();
        r.encode(&mut b);
        b
    }

    #[test]
    fn get_round_trips_and_waits_for_the_body() {
        let mut b = req(0x0d, b"", b"key", b"");
        let whole = b.clone();
        let mut part = BytesMut::from(&whole[..26]);
        assert_eq!(decode(&mut part, &Limits::default()), Ok(None));
        let r = decode(&mut b, &Limits::default()).unwrap().unwrap();
        assert_eq!(r.opcode(), Some(Opcode::GetKQ));
        assert!(r.is_quiet());
        assert_eq!(&r.key[..], b"key");
        assert!(b.is_empty());
    }

    #[test]
    fn touch_leaves_the_rest_of_the_body_for_the_next_request() {
        let mut b = req(0x1c, b"\0\0\0\x01", b"k", b"");
        b[11] += 24; // body_len covers a NOOP that follows
        b.extend_from_slice(&req(0x0a, b"", b"", b""));
        let l = Limits::default();
        let t = decode(&mut b, &l).unwrap().unwrap();
        assert_eq!(t.header.body_len, 5);
        let n = decode(&mut b, &l).unwrap().unwrap();
        assert_eq!(n.opcode(), Some(Opcode::Noop));
    }

    #[test]
    fn refusals_echo_opcode_and_opaque() {
        let mut b = req(0x09, b"\0\0\0\0", b"k", b"");
        b[12..16].copy_from_slice(&6u32.to_be_bytes());
        let e = decode(&mut b, &Limits::default()).unwrap_err();
        assert!(e.is_close());
        let mut want = vec![0x81, 0x09, 0, 0, 0, 0, 0, 4, 0, 0, 0, 17, 0, 0, 0, 6];
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(b"Invalid arguments");
        assert_eq!(&e.reply()[..], &want[..]);
    }

    #[test]
    fn too_large_set_swallows_its_value() {
        let l = Limits {
            max_item_size: 4,
            ..Limits::default()
        };
        let mut b = req(0x01, &[0; 8], b"k", b"hello");
        let e = decode(&mut b, &l).unwrap_err();
        assert_eq!(e.action(), Action::Swallow(5));
        assert_eq!(&e.reply()[24..], b"Too large.");
        assert_eq!(&b[..], b"hello");
    }
}
