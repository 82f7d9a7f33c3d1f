//! Splitting a config stream on four newlines, and turning one config into [`Servers`].

use serde_json::Value;
use shoal_ring::VBucketMap;

use super::RestError;
use crate::proxy::Servers;
use crate::route::Distribution;

const DELIMITER: &[u8] = b"\n\n\n\n";

/// Splits a streamed body into configs at each `\n\n\n\n`, wherever the reads split it.
#[derive(Debug)]
pub struct Splitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched (the delimiter may still end just after them).
    scanned: usize,
    max: usize,
}

impl Splitter {
    /// A splitter that refuses a config longer than `max` bytes.
    pub fn new(max: usize) -> Splitter {
        Splitter {
            buf: Vec::new(),
            scanned: 0,
            max,
        }
    }

    /// Adds what was read; returns the configs it completed (blank ones, such as Couchbase's
    /// heartbeat newlines, are dropped). A config longer than the limit is refused however
    /// the reads split it.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, RestError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            let from = self.scanned.saturating_sub(DELIMITER.len() - 1);
            match memchr::memmem::find(&self.buf[from..], DELIMITER) {
                Some(i) => {
                    let end = from + i;
                    if end > self.max {
                        return Err(RestError::TooLarge(self.max));
                    }
                    let config: Vec<u8> = self.buf.drain(..end + DELIMITER.len()).collect();
                    self.scanned = 0;
                    let config = &config[..end];
                    if !config.trim_ascii().is_empty() {
                        out.push(config.to_vec());
                    }
                }
                None => {
                    self.scanned = self.buf.len();
                    break;
                }
            }
        }
        // The rest may end with the first bytes of a delimiter, which are not the config's.
        let newlines = self.buf.iter().rev().take_while(|&&b| b == b'\n').count();
        if self.buf.len() - newlines.min(DELIMITER.len() - 1) > self.max {
            return Err(RestError::TooLarge(self.max));
        }
        Ok(out)
    }

    /// What is left at the end of the body (the one config of a non-streaming URL), if it
    /// is not blank.
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.buf.trim_ascii().is_empty()).then_some(self.buf)
    }
}

fn bad(what: impl Into<String>) -> RestError {
    RestError::BadConfig(what.into())
}

/// One config: a vBucket map (with or without the `vBucketServerMap` envelope; from a
/// `"buckets"` list, the bucket named `default`, else the first), or with
/// `"nodeLocator":"ketama"` the servers of `vBucketServerMap.serverList`, else of `nodes[]`
/// (hostname without its REST port, plus `ports.direct`; nodes whose `status` is not
/// `healthy` skipped), hashed with libmemcached weighted ketama as moxi does.
pub fn servers_from_config(body: &[u8]) -> Result<Servers, RestError> {
    let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
    let mut value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if let Some(Value::Array(buckets)) = value.get_mut("buckets") {
        let at = buckets
            .iter()
            .position(|b| b.get("name").and_then(Value::as_str) == Some("default"))
            .unwrap_or(0);
        if at >= buckets.len() {
            return Err(bad("an empty \"buckets\" list"));
        }
        value = buckets.swap_remove(at);
    }
    if value.get("nodeLocator").and_then(Value::as_str) == Some("ketama") {
        let members = ketama_members(&value)?;
        return Ok(Servers::List {
            members,
            distribution: Distribution::Ketama,
        });
    }
    let json = value.to_string();
    VBucketMap::from_json(&json).map_err(|e| bad(e.to_string()))?;
    Ok(Servers::VBucket(json))
}

fn ketama_members(config: &Value) -> Result<Vec<String>, RestError> {
    let list = config
        .get("vBucketServerMap")
        .and_then(|m| m.get("serverList"))
        .and_then(Value::as_array);
    let members: Vec<String> = match list {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => config
            .get("nodes")
            .and_then(Value::as_array)
            .map(|nodes| nodes.iter().filter_map(node_member).collect())
            .unwrap_or_default(),
    };
    if members.is_empty() {
        return Err(bad("nodeLocator ketama without servers"));
    }
    Ok(members)
}

fn node_member(node: &Value) -> Option<String> {
    if let Some(status) = node.get("status").and_then(Value::as_str)
        && status != "healthy"
    {
        return None;
    }
    let hostname = node.get("hostname")?.as_str()?;
    let port = node.get("ports")?.get("direct")?.as_u64()?;
    let host = match hostname.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or("")),
        None => hostname.split(':').next().unwrap_or("").to_owned(),
    };
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_every_read_boundary() {
        let stream = b"{\"a\":1}\n\n\n\n\n\n\n\n{\"b\":2}\n\n\n\n{\"c\":3}";
        for cut in 0..=stream.len() {
            for cut2 in cut..=stream.len() {
                let mut s = Splitter::new(1 << 20);
                let mut got = s.push(&stream[..cut]).unwrap();
                got.extend(s.push(&stream[cut..cut2]).unwrap());
                got.extend(s.push(&stream[cut2..]).unwrap());
                assert_eq!(got, [&b"{\"a\":1}"[..], b"{\"b\":2}"], "cuts {cut} {cut2}");
                assert_eq!(s.finish().as_deref(), Some(&b"{\"c\":3}"[..]));
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_and_limits() {
        let mut s = Splitter::new(8);
        let mut got = Vec::new();
        for b in b"12345\n\n\n\n  \n\n\n\n" {
            got.extend(s.push(&[*b]).unwrap());
        }
        assert_eq!(got, [b"12345".to_vec()]);
        assert!(s.finish().is_none());
        let mut s = Splitter::new(8);
        assert!(matches!(s.push(b"123456789"), Err(RestError::TooLarge(8))));
    }

    /// Found by the `memcache_config` fuzz target: the limit was checked on what the last
    /// read left, so a config of up to `max` bytes was refused when a read ended inside the
    /// delimiter after it (the delimiter's first newlines counted as config), and a config
    /// of any length was taken when it came in one read with its delimiter.
    #[test]
    fn the_limit_holds_whatever_the_reads() {
        let input: &[u8] = b"[\" \nn\n@ \nn\n!\n\n@\n\n\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\n\nQQQQQQ\n\n\n=\n\n\n\x0b\n\n\n@ \nn\n\n\n@\n\n\n\n\n\n\n";
        let mut s = Splitter::new(64);
        let whole = s.push(input).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].len(), 62);
        let mut s = Splitter::new(64);
        let mut got = Vec::new();
        for b in input {
            got.extend(s.push(&[*b]).unwrap());
        }
        assert_eq!(got, whole, "byte by byte");

        let long = [&[b'x'; 65][..], b"\n\n\n\n{}"].concat();
        assert!(matches!(
            Splitter::new(64).push(&long),
            Err(RestError::TooLarge(64))
        ));
        let mut s = Splitter::new(64);
        assert!(s.push(&[b'x'; 64]).unwrap().is_empty());
        assert!(s.push(b"\n\n\n").unwrap().is_empty());
        assert!(matches!(s.push(b"x"), Err(RestError::TooLarge(64))));
    }

    #[test]
    fn vbucket_and_ketama_configs() {
        let vb = br#"{"name":"default","vBucketServerMap":{"numReplicas":0,
            "serverList":["127.0.0.1:1"],"vBucketMap":[[0],[0]]}}"#;
        assert!(matches!(servers_from_config(vb), Ok(Servers::VBucket(_))));
        let nodes = br#"{"nodeLocator":"ketama","nodes":[
            {"hostname":"10.0.0.1:8091","ports":{"direct":11211},"status":"healthy"},
            {"hostname":"10.0.0.2:8091","ports":{"direct":11212},"status":"warmup"},
            {"hostname":"10.0.0.3","ports":{"direct":11213}}]}"#;
        let want = Servers::List {
            members: vec!["10.0.0.1:11211".into(), "10.0.0.3:11213".into()],
            distribution: Distribution::Ketama,
        };
        assert_eq!(servers_from_config(nodes).unwrap(), want);
        let list = br#"{"nodeLocator":"ketama","vBucketServerMap":{"serverList":["a:1","b:2"]},
            "nodes":[]}"#;
        assert!(
            matches!(servers_from_config(list), Ok(Servers::List { members, .. }) if members.len() == 2)
        );
        let buckets = br#"{"buckets":[{"name":"x","nodeLocator":"ketama",
            "vBucketServerMap":{"serverList":["x:1"]}},{"name":"default","nodeLocator":"ketama",
            "vBucketServerMap":{"serverList":["d:1"]}}]}"#;
        assert!(
            matches!(servers_from_config(buckets), Ok(Servers::List { members, .. }) if members == ["d:1"])
        );
        for garbage in [
            &b"hello"[..],
            b"{}",
            b"{\"nodeLocator\":\"ketama\"}",
            b"\xff",
        ] {
            assert!(servers_from_config(garbage).is_err());
        }
    }
}
