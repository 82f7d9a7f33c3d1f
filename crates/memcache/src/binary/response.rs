//! Binary responses: decoding what servers send and encoding what the proxy sends back.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::header::{HEADER_LEN, Header, RESPONSE_MAGIC, Status};
use crate::error::ResponseError;

/// A binary response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryResponse {
    /// The header; its lengths always match the parts below.
    pub header: Header,
    /// Extras (the flags of a get hit, ...).
    pub extras: Bytes,
    /// The key (getk, gatk, stat names).
    pub key: Bytes,
    /// The value (or an error text).
    pub value: Bytes,
}

impl BinaryResponse {
    /// A response to `opcode` with the given status, opaque and parts.
    pub fn new(
        opcode: u8,
        status: Status,
        opaque: u32,
        extras: Bytes,
        key: Bytes,
        value: Bytes,
    ) -> Self {
        let header = Header {
            magic: RESPONSE_MAGIC,
            opcode,
            key_len: key.len() as u16,
            extras_len: extras.len() as u8,
            data_type: 0,
            vbucket_or_status: status.0,
            body_len: (extras.len() + key.len() + value.len()) as u32,
            opaque,
            cas: 0,
        };
        Self {
            header,
            extras,
            key,
            value,
        }
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.header.status()
    }

    /// Appends the response; header lengths are taken from the parts.
    pub fn encode(&self, dst: &mut BytesMut) {
        let mut h = self.header;
        h.key_len = self.key.len() as u16;
        h.extras_len = self.extras.len() as u8;
        h.body_len = (self.extras.len() + self.key.len() + self.value.len()) as u32;
        dst.reserve(HEADER_LEN + h.body_len as usize);
        h.encode(dst);
        dst.put_slice(&self.extras);
        dst.put_slice(&self.key);
        dst.put_slice(&self.value);
    }
}

/// Decodes one binary response from the front of `buf`: `Ok(None)` until it is complete.
/// Bodies over `max_body` bytes are refused.
pub fn decode_binary_response(
    buf: &mut BytesMut,
    max_body: usize,
) -> Result<Option<BinaryResponse>, ResponseError> {
    let Some(h) = Header::parse(buf) else {
        return Ok(None);
    };
    if h.magic != RESPONSE_MAGIC {
        return Err(ResponseError::BadMagic);
    }
    let (ext, key, body) = (
        usize::from(h.extras_len),
        usize::from(h.key_len),
        h.body_len as usize,
    );
    if ext + key > body {
        return Err(ResponseError::Malformed);
    }
    if body > max_body {
        return Err(ResponseError::TooLarge);
    }
    if buf.len() < HEADER_LEN + body {
        crate::reserve_ahead(buf, HEADER_LEN + body);
        return Ok(None);
    }
    let mut frame = buf.split_to(HEADER_LEN + body).freeze();
    frame.advance(HEADER_LEN);
    let extras = frame.split_to(ext);
    let key = frame.split_to(key);
    Ok(Some(BinaryResponse {
        header: h,
        extras,
        key,
        value: frame,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_my_vbucket_round_trip() {
        let r = BinaryResponse::new(
            0x00,
            Status::NOT_MY_VBUCKET,
            9,
            Bytes::new(),
            Bytes::new(),
            Bytes::from_static(b"nmvb"),
        );
        let mut b = BytesMut::new();
        r.encode(&mut b);
        assert_eq!(&b[6..8], &[0, 7]);
        let mut partial = BytesMut::from(&b[..27]);
        assert_eq!(decode_binary_response(&mut partial, 1 << 20), Ok(None));
        let d = decode_binary_response(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(d, r);
        assert_eq!(d.status(), Status::NOT_MY_VBUCKET);
        assert!(b.is_empty());
    }

    #[test]
    fn refuses_bad_magic_and_huge_bodies() {
        let mut b = BytesMut::from(&[0x80u8; 24][..]);
        assert_eq!(
            decode_binary_response(&mut b, 10),
            Err(ResponseError::BadMagic)
        );
        let r = BinaryResponse::new(
            0,
            Status::NO_ERROR,
            0,
            Bytes::new(),
            Bytes::new(),
            Bytes::from_static(b"0123456789x"),
        );
        let mut b = BytesMut::new();
        r.encode(&mut b);
        assert_eq!(
            decode_binary_response(&mut b, 10),
            Err(ResponseError::TooLarge)
        );
    }
}
