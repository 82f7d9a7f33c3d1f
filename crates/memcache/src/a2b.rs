//! ascii → binary (moxi's "a2b", `downstream_protocol=binary`): a classic ascii command as
//! the binary request that means the same to memcached, and the binary reply as the ascii
//! reply memcached would have given. Over binary, requests carry a vBucket id, so ascii
//! clients get the NOT_MY_VBUCKET retry of a vBucket map too.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ascii::{ArithKind, AsciiRequest, Get, Response, StoreKind, Value};
use crate::binary::{BinaryRequest, BinaryResponse, Opcode, Status};

/// What an ascii command was, for turning its binary reply back into ascii.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `set` ... `cas`.
    Store(StoreKind),
    /// `incr`/`decr`.
    Arith,
    /// `delete`.
    Delete,
    /// `touch`.
    Touch,
}

/// memcached's ascii exptime as a binary one: a negative exptime expires at once in ascii
/// (memcached uses `REALTIME_MAXDELTA + 1`, an absolute time long past); cast as is it would
/// be a unix time far in the future.
pub fn exptime(t: i32) -> u32 {
    if t < 0 {
        60 * 60 * 24 * 30 + 1
    } else {
        t as u32
    }
}

/// The binary request of a single-key ascii command (storage, incr/decr, delete, touch),
/// loud even when the client said `noreply` (the proxy needs to know it is done), and what
/// it was. `None` for the others.
pub fn request(req: &AsciiRequest) -> Option<(BinaryRequest, Kind)> {
    Some(match req {
        AsciiRequest::Store(s) => {
            let op = match s.kind {
                StoreKind::Set | StoreKind::Cas(_) => Opcode::Set,
                StoreKind::Add => Opcode::Add,
                StoreKind::Replace => Opcode::Replace,
                StoreKind::Append => Opcode::Append,
                StoreKind::Prepend => Opcode::Prepend,
            };
            let extras = match op {
                Opcode::Append | Opcode::Prepend => Bytes::new(),
                _ => {
                    let mut e = BytesMut::with_capacity(8);
                    e.put_u32(s.flags);
                    e.put_u32(exptime(s.exptime));
                    e.freeze()
                }
            };
            let mut b = BinaryRequest::new(op as u8, extras, s.key.clone(), s.value.clone());
            if let StoreKind::Cas(cas) = s.kind {
                // Binary CAS 0 means "no CAS", but an ascii `cas` with 0 must fail: no item
                // has CAS u64::MAX, so it gets NOT_FOUND or EXISTS as in ascii.
                b.header.cas = if cas == 0 { u64::MAX } else { cas };
            }
            (b, Kind::Store(s.kind))
        }
        AsciiRequest::Arith(a) => {
            let op = match a.kind {
                ArithKind::Incr => Opcode::Increment,
                ArithKind::Decr => Opcode::Decrement,
            };
            let mut e = BytesMut::with_capacity(20);
            e.put_u64(a.delta);
            e.put_u64(0);
            e.put_u32(u32::MAX); // never create: ascii answers NOT_FOUND
            let b = BinaryRequest::new(op as u8, e.freeze(), a.key.clone(), Bytes::new());
            (b, Kind::Arith)
        }
        AsciiRequest::Delete(d) => (
            BinaryRequest::new(
                Opcode::Delete as u8,
                Bytes::new(),
                d.key.clone(),
                Bytes::new(),
            ),
            Kind::Delete,
        ),
        AsciiRequest::Touch(t) => (
            BinaryRequest::new(
                Opcode::Touch as u8,
                Bytes::copy_from_slice(&exptime(t.exptime).to_be_bytes()),
                t.key.clone(),
                Bytes::new(),
            ),
            Kind::Touch,
        ),
        _ => return None,
    })
}

/// Appends the binary request for one key of `g`: GETK(Q) or GATK(Q) with `opaque`.
pub fn encode_get(
    g: &Get,
    key: &Bytes,
    opaque: u32,
    quiet: bool,
    vbucket: u16,
    dst: &mut BytesMut,
) {
    let (op, extras) = match (g.touch, quiet) {
        (None, true) => (Opcode::GetKQ, Bytes::new()),
        (None, false) => (Opcode::GetK, Bytes::new()),
        (Some(t), q) => (
            if q { Opcode::GatKQ } else { Opcode::GatK },
            Bytes::copy_from_slice(&exptime(t).to_be_bytes()),
        ),
    };
    let mut b = BinaryRequest::new(op as u8, extras, key.clone(), Bytes::new());
    b.header.opaque = opaque;
    b.header.vbucket_or_status = vbucket;
    b.encode(dst);
}

/// A get hit as the ascii `VALUE`: flags from the extras, CAS when the client asked `gets`.
pub fn value(r: &BinaryResponse, key: &Bytes, cas: bool) -> Value {
    let flags = r
        .extras
        .get(..4)
        .map_or(0, |f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]));
    Value {
        key: key.clone(),
        flags,
        cas: cas.then_some(r.header.cas),
        data: r.value.clone(),
    }
}

/// The ascii line for a binary error status that has no closer ascii meaning.
pub fn server_error(status: Status) -> Response {
    let text = match status {
        Status::NOT_MY_VBUCKET => &b"not my vbucket"[..],
        Status::VALUE_TOO_LARGE => b"object too large for cache",
        Status::OUT_OF_MEMORY => b"out of memory storing object",
        Status::BUSY | Status::TEMPORARY_FAILURE => b"temporary failure",
        other if !other.memcached_text().is_empty() => other.memcached_text(),
        _ => b"unexpected binary status",
    };
    Response::ServerError(Bytes::from_static(text))
}

/// memcached's ascii reply for the binary reply `r` to a command of `kind`.
pub fn reply(kind: Kind, r: &BinaryResponse) -> Response {
    let st = r.status();
    match (kind, st) {
        (Kind::Store(_), Status::NO_ERROR) => Response::Stored,
        (Kind::Store(StoreKind::Cas(_)), Status::KEY_EXISTS) => Response::Exists,
        (Kind::Store(StoreKind::Cas(_)), Status::KEY_NOT_FOUND) => Response::NotFound,
        (Kind::Store(_), Status::KEY_EXISTS | Status::KEY_NOT_FOUND | Status::ITEM_NOT_STORED) => {
            Response::NotStored
        }
        (Kind::Arith, Status::NO_ERROR) => match r.value.get(..8) {
            Some(v) => Response::Number(u64::from_be_bytes(v.try_into().unwrap_or([0; 8]))),
            None => server_error(Status::INTERNAL_ERROR),
        },
        (Kind::Arith, Status::NON_NUMERIC) => Response::ClientError(Bytes::from_static(
            b"cannot increment or decrement non-numeric value",
        )),
        (Kind::Delete, Status::NO_ERROR) => Response::Deleted,
        (Kind::Touch, Status::NO_ERROR) => Response::Touched,
        (_, Status::KEY_NOT_FOUND) => Response::NotFound,
        (_, other) => server_error(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: Status, value: &'static [u8]) -> BinaryResponse {
        BinaryResponse::new(
            0,
            status,
            0,
            Bytes::new(),
            Bytes::new(),
            Bytes::from_static(value),
        )
    }

    fn text(r: Response) -> Vec<u8> {
        let mut out = BytesMut::new();
        r.encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn replies_read_like_memcacheds() {
        let cas = Kind::Store(StoreKind::Cas(3));
        let add = Kind::Store(StoreKind::Add);
        assert_eq!(
            text(reply(cas, &resp(Status::KEY_EXISTS, b""))),
            b"EXISTS\r\n"
        );
        assert_eq!(
            text(reply(cas, &resp(Status::KEY_NOT_FOUND, b""))),
            b"NOT_FOUND\r\n"
        );
        assert_eq!(
            text(reply(add, &resp(Status::KEY_EXISTS, b""))),
            b"NOT_STORED\r\n"
        );
        let n = resp(Status::NO_ERROR, &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(text(reply(Kind::Arith, &n)), b"258\r\n");
        assert_eq!(
            text(reply(Kind::Arith, &resp(Status::NON_NUMERIC, b""))),
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        );
        assert_eq!(
            text(reply(Kind::Delete, &resp(Status::KEY_NOT_FOUND, b""))),
            b"NOT_FOUND\r\n"
        );
        assert_eq!(
            text(reply(Kind::Touch, &resp(Status::NOT_MY_VBUCKET, b""))),
            b"SERVER_ERROR not my vbucket\r\n"
        );
    }

    #[test]
    fn cas_zero_and_negative_exptime_keep_their_ascii_meaning() {
        let req = AsciiRequest::Store(crate::ascii::Store {
            kind: StoreKind::Cas(0),
            key: Bytes::from_static(b"k"),
            flags: 5,
            exptime: -1,
            value: Bytes::from_static(b"v"),
            noreply: false,
        });
        let (b, _) = request(&req).unwrap();
        assert_eq!(b.header.cas, u64::MAX);
        assert_eq!(&b.extras[..], &[0, 0, 0, 5, 0, 0x27, 0x8d, 0x01]);
    }
}
