//! libvbucket's ketama, used for `"nodeLocator":"ketama"` configs (memcached buckets).
//!
//! - Servers are identified by their authority, always `host:port` (unlike libmemcached, the
//!   port is kept even when it is 11211), and **sorted by `strcmp`** before the continuum is
//!   built, so the order members are given in does not matter. [`Ring::members`] still
//!   returns them in the order given; owners are mapped back to that order.
//! - 160 points per server: for `hh` in `0..40`, `md5("<authority>-<hh>")` gives 4 points,
//!   its little-endian words. Weights are ignored (libvbucket has none).
//! - Key hash: the first 4 bytes of `md5(key)`, little-endian; the owner is the server of the
//!   first point `>=` the hash, wrapping. libvbucket finds it with libketama's own binary
//!   search; the generator checks that search against a plain lower bound on every vector.
//!
//! Why the libmemcached vectors also pin this: with equal weights and a port other than 11211,
//! libmemcached's weighted ketama builds exactly these points (160 per server, same names
//! `host:port-<i>`, same words), so for members given in sorted order the two rings must
//! agree key for key, wherever libmemcached's float math gives 160 points per server (not,
//! e.g., for 25 servers). `tests/golden.rs` checks that, and `tests/vectors/models.tsv`
//! has a table from an independent model of libvbucket (with its libketama search).
//!
//! [`Ring::members`]: crate::Ring::members

use crate::continuum::{Continuum, Tie};
use crate::hash::{md5_le, md5_words};
use crate::member::{Server, parse_servers};
use crate::{Member, RingError, ring_by_index};

/// libvbucket ketama; see the module docs.
#[derive(Debug, Clone)]
pub struct LibvbucketKetama {
    members: Vec<Member>,
    continuum: Continuum,
}

impl LibvbucketKetama {
    /// Builds the ring over `host:port[:weight]` members (weights are accepted and ignored).
    pub fn new(members: &[&str]) -> Result<Self, RingError> {
        let (members, servers) = parse_servers(members)?;
        Ok(Self::from_servers(members, &servers))
    }

    pub(crate) fn from_servers(members: Vec<Member>, servers: &[Server]) -> Self {
        let authorities: Vec<String> = servers.iter().map(Server::authority).collect();
        let mut sorted: Vec<usize> = (0..authorities.len()).collect();
        sorted.sort_by(|&a, &b| authorities[a].as_bytes().cmp(authorities[b].as_bytes()));
        let mut items = Vec::with_capacity(authorities.len() * 160);
        // Insert in sorted-server order so that ties resolve as libvbucket's do: the point of
        // the server that sorts first comes first.
        for &i in &sorted {
            for hh in 0..40 {
                for w in md5_words(format!("{}-{}", authorities[i], hh).as_bytes()) {
                    items.push((w, i as u32));
                }
            }
        }
        LibvbucketKetama {
            members,
            continuum: Continuum::build(items, Tie::First, &[]),
        }
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        self.continuum.lookup(md5_le(key))
    }

    /// Ring walk: the distinct servers met clockwise from the key's point.
    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        self.continuum.walk(md5_le(key), n, self.members.len())
    }
}

ring_by_index!(LibvbucketKetama);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ring;

    #[test]
    fn member_order_does_not_change_placement() {
        let a =
            LibvbucketKetama::new(&["10.0.0.1:11210", "10.0.0.2:11210", "10.0.0.3:11210"]).unwrap();
        let b =
            LibvbucketKetama::new(&["10.0.0.3:11210", "10.0.0.1:11210", "10.0.0.2:11210"]).unwrap();
        assert_eq!(b.members()[0].name, "10.0.0.3:11210");
        for i in 0..2000 {
            let k = format!("key-{i}");
            assert_eq!(a.owner(k.as_bytes()), b.owner(k.as_bytes()));
        }
    }
}
