//! Which requests may be sent again after their connection closed with no reply.
//!
//! moxi re-sends such a request once (`downstream_retry`). memcached may have run it before
//! the connection closed (it runs what it has read before it writes the replies, and it
//! closes a connection on some malformed input that arrives after other requests), so the
//! re-sent request can run twice. That is harmless for a request whose second run leaves the
//! same data and gets the same answer, and corrupts data otherwise: an `incr` counted twice,
//! an `append` doubled. Only the first kind is re-sent; the others get
//! `SERVER_ERROR proxy downstream closed`, as with retries off, and the client decides, as
//! mcrouter leaves non-idempotent requests to its clients. A request that was never written
//! is always sent on the next connection: the server cannot have run it.

use crate::binary::{HEADER_LEN, Opcode, REQUEST_MAGIC};

/// Whether `wire`, a job's bytes, may run twice. The job's first command decides (a quiet
/// binary command or a `stats` is followed by a NOOP or a `version`, which repeat freely).
/// An empty wire is a merged `get`.
pub(crate) fn repeatable(wire: &[u8]) -> bool {
    match wire.first() {
        None => true,
        Some(&REQUEST_MAGIC) => binary(wire),
        Some(_) => ascii(wire),
    }
}

fn binary(wire: &[u8]) -> bool {
    use Opcode::*;
    if wire.len() < HEADER_LEN {
        return false;
    }
    let cas_set = wire[16..24].iter().any(|&b| b != 0);
    match Opcode::from_u8(wire[1]) {
        Some(Set | SetQ | Replace | ReplaceQ | Delete | DeleteQ) => !cas_set,
        Some(
            Get | GetQ | GetK | GetKQ | Gat | GatQ | GatK | GatKQ | Touch | Noop | Version | Stat
            | Flush | FlushQ,
        ) => true,
        // Add, Increment, Decrement, Append, Prepend (and quiet forms): a second run changes
        // the data or the answer. SASL steps belong to one connection's state. Quit and
        // Verbosity never reach a server.
        _ => false,
    }
}

fn ascii(wire: &[u8]) -> bool {
    let line = wire.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut tokens = line
        .split(|&b| b == b' ' || b == b'\r')
        .filter(|t| !t.is_empty());
    let Some(command) = tokens.next() else {
        return false;
    };
    match command {
        b"get" | b"gets" | b"gat" | b"gats" | b"touch" | b"set" | b"replace" | b"delete"
        | b"stats" | b"flush_all" | b"version" | b"mn" | b"me" | b"md" => true,
        // mg's `N` creates a placeholder and tells only the first asker that it won the
        // right to fill it: asked again, the winner would hear that someone else did.
        b"mg" => !tokens.skip(1).any(|t| t.first() == Some(&b'N')),
        // ms is a set unless its mode says add/append/prepend (`ME`, `MA`, `MP`) or a CAS
        // value makes it compare.
        b"ms" => tokens.skip(2).all(|t| match t {
            [b'C', ..] => false,
            [b'M', mode, ..] => matches!(mode, b'S' | b's' | b'R' | b'r'),
            _ => true,
        }),
        // add, cas, append, prepend, incr, decr, ma.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::BinaryRequest;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn ascii_commands() {
        for yes in [
            &b"get a b\r\n"[..],
            b"gets a\r\n",
            b"gat 10 a\r\n",
            b"set a 0 0 1\r\nx\r\n",
            b"replace a 0 0 1 noreply\r\nx\r\n",
            b"delete a\r\n",
            b"touch a 10\r\n",
            b"stats\r\nversion\r\n",
            b"flush_all\r\n",
            b"mg a v t\r\n",
            b"ms a 1 T10\r\nx\r\n",
            b"ms a 1 MS\r\nx\r\n",
            b"ms a 1 Mr I\r\nx\r\n",
            b"md a q\r\nmn\r\n",
            b"me a\r\n",
            b"",
        ] {
            assert!(repeatable(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"incr a 1\r\n"[..],
            b"decr a 1\r\n",
            b"add a 0 0 1\r\nx\r\n",
            b"append a 0 0 1\r\nx\r\n",
            b"prepend a 0 0 1\r\nx\r\n",
            b"cas a 0 0 1 5\r\nx\r\n",
            b"ma a\r\n",
            b"mg a v N30\r\n",
            b"ms a 1 MA\r\nx\r\n",
            b"ms a 1 ME\r\nx\r\n",
            b"ms a 1 Mp\r\nx\r\n",
            b"ms a 1 C99\r\nx\r\n",
            b"\r\n",
        ] {
            assert!(!repeatable(no), "{}", String::from_utf8_lossy(no));
        }
        // The key is not a flag: a key starting with C, M or N says nothing.
        assert!(repeatable(b"ms Ckey 1\r\nx\r\n"));
        assert!(repeatable(b"mg Nkey v\r\n"));
    }

    fn bin(op: Opcode, cas: u64) -> Bytes {
        let mut r = BinaryRequest::new(
            op as u8,
            Bytes::new(),
            Bytes::from_static(b"k"),
            Bytes::new(),
        );
        r.header.cas = cas;
        let mut out = BytesMut::new();
        r.encode(&mut out);
        out.freeze()
    }

    #[test]
    fn binary_commands() {
        use Opcode::*;
        for op in [
            Get, GetKQ, Gat, Touch, Set, SetQ, Replace, Delete, DeleteQ, Stat, Flush,
        ] {
            assert!(repeatable(&bin(op, 0)), "{op:?}");
        }
        for op in [Add, AddQ, Increment, DecrementQ, Append, PrependQ, SaslStep] {
            assert!(!repeatable(&bin(op, 0)), "{op:?}");
        }
        for op in [Set, ReplaceQ, Delete] {
            assert!(!repeatable(&bin(op, 7)), "{op:?} with a CAS");
        }
        assert!(!repeatable(&bin(Set, 0)[..10]), "a cut header");
    }
}
