//! A get's reply holding each value it found once, with the order the client's keys name
//! them in. A get line may be 1 MiB long, so one key can be named ~500k times: memcached
//! streams a `VALUE` block per mention from one item, and so must the proxy, or a 1 MiB
//! value makes it hold hundreds of GB. The writer streams it ([`Values::write_to`]): headers
//! are gathered in the output buffer, large values are written from their own buffer.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::client::{WRITE_AT, flush};
use crate::ascii::Value;

/// Values at least this long are written from their own buffer instead of being copied into
/// the output buffer (below it, the extra write costs more than the copy).
const DIRECT: usize = 16 * 1024;

/// The values of a get, each once, and per client key that was found the index of its
/// value (a key named twice appears twice).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Values {
    /// The distinct values.
    pub found: Vec<Value>,
    /// Indices into `found`, in the client's key order.
    pub order: Vec<u32>,
}

impl Values {
    /// The reply to `keys` (in the client's order, repeats included) from `found`, which
    /// holds at most one value per key (a later one for the same key wins).
    pub(crate) fn for_keys(keys: &[Bytes], found: Vec<Value>) -> Values {
        let mut index: HashMap<&[u8], u32> = HashMap::with_capacity(found.len());
        for (i, v) in found.iter().enumerate() {
            index.insert(&v.key, i as u32);
        }
        let order = keys
            .iter()
            .filter_map(|k| index.get(&k[..]).copied())
            .collect();
        Values { found, order }
    }

    /// The bytes the reply holds (each value once, however often the client named it).
    pub(crate) fn held_bytes(&self) -> usize {
        self.found.iter().map(|v| v.key.len() + v.data.len()).sum()
    }

    /// Writes the reply memcached writes (`VALUE` blocks in key order, then `END`), leaving
    /// the last bytes in `out` for the caller's next flush.
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        out: &mut BytesMut,
    ) -> std::io::Result<()> {
        for &i in &self.order {
            let Some(v) = self.found.get(i as usize) else {
                continue;
            };
            v.encode_header(out);
            if v.data.len() >= DIRECT {
                flush(wr, out).await?;
                wr.write_all(&v.data).await?;
            } else {
                out.extend_from_slice(&v.data);
            }
            out.extend_from_slice(b"\r\n");
            if out.len() >= WRITE_AT {
                flush(wr, out).await?;
            }
        }
        out.extend_from_slice(b"END\r\n");
        Ok(())
    }

    /// The whole reply in one buffer.
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut wr = Vec::new();
        let mut out = BytesMut::new();
        rt.block_on(async {
            self.write_to(&mut wr, &mut out).await.expect("write");
            flush(&mut wr, &mut out).await.expect("flush");
        });
        wr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(k: &'static str, cas: Option<u64>, data: Bytes) -> Value {
        Value {
            key: Bytes::from_static(k.as_bytes()),
            flags: 3,
            cas,
            data,
        }
    }

    fn keys(ks: &[&'static str]) -> Vec<Bytes> {
        ks.iter()
            .map(|k| Bytes::from_static(k.as_bytes()))
            .collect()
    }

    #[test]
    fn repeats_in_key_order_from_one_copy() {
        let found = vec![
            val("a", None, Bytes::from_static(b"1")),
            val("b", None, Bytes::from_static(b"22")),
        ];
        let v = Values::for_keys(&keys(&["b", "a", "nothere", "b", "b"]), found);
        assert_eq!(v.found.len(), 2);
        assert_eq!(v.order, [1, 0, 1, 1]);
        assert_eq!(
            v.to_vec(),
            b"VALUE b 3 2\r\n22\r\nVALUE a 3 1\r\n1\r\nVALUE b 3 2\r\n22\r\nVALUE b 3 2\r\n22\r\nEND\r\n"
        );
    }

    #[test]
    fn gets_keeps_the_cas() {
        let found = vec![val("k", Some(77), Bytes::from_static(b"v"))];
        let v = Values::for_keys(&keys(&["k", "k"]), found);
        assert_eq!(
            v.to_vec(),
            b"VALUE k 3 1 77\r\nv\r\nVALUE k 3 1 77\r\nv\r\nEND\r\n"
        );
    }

    #[test]
    fn nothing_found_is_just_end() {
        let v = Values::for_keys(&keys(&["x", "y", "x"]), Vec::new());
        assert!(v.order.is_empty());
        assert_eq!(v.to_vec(), b"END\r\n");
        assert_eq!(Values::default().to_vec(), b"END\r\n");
    }

    #[test]
    fn large_and_small_values_interleave_in_order() {
        // A value past DIRECT goes out from its own buffer, between the headers and small
        // values gathered around it; past WRITE_AT the gathered bytes are flushed.
        let big = Bytes::from(vec![b'x'; DIRECT + 5]);
        let small = Bytes::from(vec![b's'; 1000]);
        let found = vec![val("big", None, big.clone()), val("s", None, small.clone())];
        let ks: Vec<Bytes> = (0..200)
            .map(|i| Bytes::from_static(if i % 3 == 0 { b"big" } else { b"s" }))
            .collect();
        let v = Values::for_keys(&ks, found);
        let mut want = Vec::new();
        for k in &ks {
            let data = if &k[..] == b"big" { &big } else { &small };
            want.extend_from_slice(
                format!(
                    "VALUE {} 3 {}\r\n",
                    std::str::from_utf8(k).unwrap(),
                    data.len()
                )
                .as_bytes(),
            );
            want.extend_from_slice(data);
            want.extend_from_slice(b"\r\n");
        }
        want.extend_from_slice(b"END\r\n");
        assert_eq!(v.to_vec(), want);
    }
}
