//! vBucket maps as moxi and libvbucket use them (Couchbase/Membase buckets).
//!
//! A key's vBucket is `((crc32(key) >> 16) & 0x7fff) & (N - 1)` for N vBuckets (a power of
//! two), whatever `hashAlgorithm` the JSON claims (libvbucket never reads it). The owner is
//! the vBucket's master, `vBucketMap[vb][0]`, an index into `serverList`. A master of `-1`
//! means the vBucket has no server right now: [`Ring::owner`] then returns `None` for its
//! keys (the one case where a non-empty ring has no owner; a proxy answers such keys with an
//! error, as moxi does).
//!
//! JSON: libvbucket's format, with or without the `vBucketServerMap` envelope:
//! `{"numReplicas":1, "serverList":["h1:11210","h2:11210"], "vBucketMap":[[0,1],[1,0]],
//! "vBucketMapForward":[[1,0],[0,1]]}`; `vBucketMapForward` is optional, other fields
//! (`hashAlgorithm`, `name`, `nodes`, ...) are ignored, and `$HOST` in `serverList` is left as
//! is. The map is mutable state: moxi's "not my vBucket" rule
//! ([`VBucketMap::found_incorrect_master`]) rewrites it, so a proxy keeps it behind its own
//! lock or swaps copies.
//!
//! [`Ring::owner`]: crate::Ring::owner

use serde::Deserialize;

use crate::continuum::Seen;
use crate::hash::crc32;
use crate::{Member, RingError, ring_by_index};

/// The vBucket of `key` among `num_vbuckets` (a power of two; masked with `num_vbuckets - 1`).
pub fn vbucket_of(key: &[u8], num_vbuckets: usize) -> u16 {
    let mask = num_vbuckets.saturating_sub(1) as u32;
    (((crc32(key) >> 16) & 0x7fff) & mask) as u16
}

#[derive(Deserialize)]
struct RawMap {
    #[serde(rename = "numReplicas")]
    num_replicas: u64,
    #[serde(rename = "serverList")]
    server_list: Vec<String>,
    #[serde(rename = "vBucketMap")]
    map: Vec<Vec<i64>>,
    #[serde(rename = "vBucketMapForward", default)]
    forward: Option<Vec<Vec<i64>>>,
}

/// A vBucket map; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VBucketMap {
    members: Vec<Member>,
    /// `numReplicas + 1` server indices per vBucket, flattened; -1 = none.
    map: Vec<i32>,
    forward: Option<Vec<i32>>,
    stride: usize,
}

fn flatten(
    field: &'static str,
    rows: &[Vec<i64>],
    servers: usize,
    num_replicas: u64,
) -> Result<Vec<i32>, RingError> {
    if rows.is_empty() || rows.len() > 65536 || !rows.len().is_power_of_two() {
        return Err(RingError::VBucketCount {
            field,
            count: rows.len(),
        });
    }
    let stride = num_replicas as usize + 1;
    let mut flat = Vec::with_capacity(rows.len() * stride);
    for (vbucket, row) in rows.iter().enumerate() {
        if row.len() != stride {
            return Err(RingError::VBucketReplicas {
                field,
                vbucket,
                got: row.len(),
                expected: stride,
                num_replicas,
            });
        }
        for &index in row {
            if index < -1 || index >= servers as i64 {
                return Err(RingError::VBucketServerIndex {
                    field,
                    vbucket,
                    index,
                    servers,
                });
            }
            flat.push(index as i32);
        }
    }
    Ok(flat)
}

impl VBucketMap {
    /// Parses and validates a libvbucket/moxi vBucket map.
    pub fn from_json(json: &str) -> Result<Self, RingError> {
        let bad_json = |e: serde_json::Error| RingError::VBucketJson(e.to_string());
        let mut value: serde_json::Value = serde_json::from_str(json).map_err(bad_json)?;
        if let Some(inner) = value.get_mut("vBucketServerMap").filter(|v| v.is_object()) {
            value = inner.take();
        }
        let raw: RawMap = serde_json::from_value(value).map_err(bad_json)?;
        if raw.num_replicas > 4 {
            return Err(RingError::VBucketTooManyReplicas(raw.num_replicas));
        }
        if raw.server_list.is_empty() {
            return Err(RingError::VBucketNoServers);
        }
        let servers = raw.server_list.len();
        let map = flatten("vBucketMap", &raw.map, servers, raw.num_replicas)?;
        let forward = match &raw.forward {
            None => None,
            Some(rows) => {
                if rows.len() != raw.map.len() {
                    return Err(RingError::VBucketForwardLength {
                        forward: rows.len(),
                        map: raw.map.len(),
                    });
                }
                Some(flatten(
                    "vBucketMapForward",
                    rows,
                    servers,
                    raw.num_replicas,
                )?)
            }
        };
        let members = raw
            .server_list
            .into_iter()
            .map(|name| Member { name, weight: 1 })
            .collect();
        Ok(VBucketMap {
            members,
            map,
            forward,
            stride: raw.num_replicas as usize + 1,
        })
    }

    /// The number of vBuckets (a power of two, 1 to 65536).
    pub fn num_vbuckets(&self) -> usize {
        self.map.len() / self.stride
    }

    /// `numReplicas`.
    pub fn num_replicas(&self) -> usize {
        self.stride - 1
    }

    /// True when the map came with a `vBucketMapForward`.
    pub fn has_forward_map(&self) -> bool {
        self.forward.is_some()
    }

    /// The vBucket of `key` in this map.
    #[inline]
    pub fn vbucket_of(&self, key: &[u8]) -> u16 {
        vbucket_of(key, self.num_vbuckets())
    }

    fn entry(&self, vb: u16, i: usize) -> Option<usize> {
        let pos = usize::from(vb).checked_mul(self.stride)?.checked_add(i)?;
        if i >= self.stride {
            return None;
        }
        self.map.get(pos).and_then(|&s| usize::try_from(s).ok())
    }

    /// The master of vBucket `vb` (an index into `serverList`); `None` for `-1` or a vBucket
    /// past the end of the map.
    pub fn master(&self, vb: u16) -> Option<usize> {
        self.entry(vb, 0)
    }

    /// Replica `i` (0-based, so `vBucketMap[vb][i + 1]`) of vBucket `vb`.
    pub fn replica(&self, vb: u16, i: usize) -> Option<usize> {
        self.entry(vb, i.checked_add(1)?)
    }

    /// libvbucket's `vbucket_found_incorrect_master`, called when server `wrong_server`
    /// answered NOT_MY_VBUCKET for `vb`: with a forward map, the vBucket's whole entry (master
    /// and replicas) is copied from it; otherwise, if the master is still `wrong_server`, the
    /// next server (`(master + 1) % servers`) becomes master. Returns the master now in the
    /// map (`None` for -1 or an out-of-range `vb`, which changes nothing).
    pub fn found_incorrect_master(&mut self, vb: u16, wrong_server: usize) -> Option<usize> {
        let start = usize::from(vb) * self.stride;
        let end = start + self.stride;
        if end > self.map.len() {
            return None;
        }
        if let Some(fwd) = &self.forward {
            self.map[start..end].copy_from_slice(&fwd[start..end]);
        } else if usize::try_from(self.map[start]).ok() == Some(wrong_server) {
            let next = (wrong_server + 1) % self.members.len();
            self.map[start] = next as i32;
        }
        self.master(vb)
    }

    #[inline]
    fn index(&self, key: &[u8]) -> Option<usize> {
        self.master(self.vbucket_of(key))
    }

    /// The vBucket's chain: master, then replicas in map order, skipping -1 and repeats.
    fn indices(&self, key: &[u8], n: usize) -> Vec<usize> {
        let vb = self.vbucket_of(key);
        let mut seen = Seen::new(self.members.len());
        (0..self.stride)
            .filter_map(|i| self.entry(vb, i))
            .filter(|&s| seen.insert(s))
            .take(n)
            .collect()
    }
}

ring_by_index!(VBucketMap);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ring;

    #[test]
    fn vbucket_ids_match_libvbucket() {
        let keys = [
            "hello",
            "doctor",
            "name",
            "continue",
            "yesterday",
            "tomorrow",
            "another key",
        ];
        let got: Vec<u16> = keys.iter().map(|k| vbucket_of(k.as_bytes(), 4)).collect();
        assert_eq!(got, [0, 0, 3, 3, 0, 1, 2]);
    }

    const MAP: &str = r#"{"hashAlgorithm":"CRC","numReplicas":1,
        "serverList":["a:11210","b:11210","c:11210"],
        "vBucketMap":[[0,1],[1,2],[2,0],[-1,-1]],
        "vBucketMapForward":[[1,2],[2,0],[0,1],[1,0]]}"#;

    #[test]
    fn parses_with_and_without_envelope() {
        let plain = VBucketMap::from_json(MAP).unwrap();
        let wrapped =
            VBucketMap::from_json(&format!(r#"{{"name":"default","vBucketServerMap":{MAP}}}"#))
                .unwrap();
        assert_eq!(plain, wrapped);
        assert_eq!(plain.num_vbuckets(), 4);
        assert_eq!(plain.num_replicas(), 1);
        assert_eq!(plain.members()[2].name, "c:11210");
        assert_eq!(plain.master(1), Some(1));
        assert_eq!(plain.replica(1, 0), Some(2));
        assert_eq!(plain.master(3), None);
        assert_eq!(plain.master(4), None);
    }

    #[test]
    fn owner_is_the_master_and_none_for_minus_one() {
        let m = VBucketMap::from_json(MAP).unwrap();
        // "hello" → vb 0 → server 0; "tomorrow" → vb 1; "another key" → vb 2; "name" → vb 3.
        assert_eq!(m.owner(b"hello").unwrap().name, "a:11210");
        assert_eq!(
            m.owners(b"tomorrow", 5)
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["b:11210", "c:11210"]
        );
        assert_eq!(m.owner_index(b"another key"), Some(2));
        assert_eq!(m.owner(b"name"), None);
        assert!(m.owners(b"name", 2).is_empty());
    }

    #[test]
    fn incorrect_master_uses_the_forward_map_when_there_is_one() {
        let mut m = VBucketMap::from_json(MAP).unwrap();
        assert_eq!(m.found_incorrect_master(3, 0), Some(1));
        assert_eq!(m.replica(3, 0), Some(0));
        assert_eq!(m.found_incorrect_master(9, 0), None);
    }

    #[test]
    fn incorrect_master_moves_to_the_next_server_without_forward_map() {
        let json = r#"{"numReplicas":0,"serverList":["a:1","b:1","c:1"],"vBucketMap":[[2],[0]]}"#;
        let mut m = VBucketMap::from_json(json).unwrap();
        assert_eq!(
            m.found_incorrect_master(0, 1),
            Some(2),
            "not the master: unchanged"
        );
        assert_eq!(m.found_incorrect_master(0, 2), Some(0), "wraps to server 0");
        assert_eq!(m.found_incorrect_master(1, 0), Some(1));
    }

    #[test]
    fn bad_maps_say_what_is_wrong() {
        let e = |j: &str| VBucketMap::from_json(j).unwrap_err().to_string();
        let m = |rows: &str| {
            format!(r#"{{"numReplicas":0,"serverList":["a:1","b:1"],"vBucketMap":{rows}}}"#)
        };
        assert!(
            e(&m("[[0],[1],[0]]")).contains("vBucketMap has 3 entries, expected a power of two")
        );
        assert!(e(&m("[]")).contains("vBucketMap has 0 entries"));
        assert!(
            e(&m("[[0],[2]]"))
                .contains("vBucketMap[1] names server 2, but serverList has 2 servers")
        );
        assert!(e(&m("[[0],[-2]]")).contains("vBucketMap[1] names server -2"));
        assert!(
            e(&m("[[0],[0,1]]"))
                .contains("vBucketMap[1] has 2 server indices, but numReplicas 0 means 1")
        );
        assert!(
            e(r#"{"numReplicas":0,"serverList":[],"vBucketMap":[[0]]}"#)
                .contains("serverList is empty")
        );
        assert!(
            e(r#"{"numReplicas":5,"serverList":["a:1"],"vBucketMap":[[0]]}"#)
                .contains("numReplicas is 5")
        );
        assert!(
            e(r#"{"serverList":["a:1"],"vBucketMap":[[0]]}"#)
                .contains("missing field `numReplicas`")
        );
        assert!(e("{").starts_with("bad vBucket map JSON: "));
        let fwd = r#"{"numReplicas":0,"serverList":["a:1"],"vBucketMap":[[0],[0]],"vBucketMapForward":[[0]]}"#;
        assert!(e(fwd).contains("vBucketMapForward has 1 entries but vBucketMap has 2"));
        let big = format!(
            r#"{{"numReplicas":0,"serverList":["a:1"],"vBucketMap":[{}]}}"#,
            vec!["[0]"; 131072].join(",")
        );
        assert!(e(&big).contains("131072 entries"));
    }
}
