//! Which server a key goes to: a ring from `shoal-ring` (ketama, ketama-compat, modula) or a
//! vBucket map, plus twemproxy's opt-in "eject" mode, which re-shards over the servers that
//! are not in their retry interval.

use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use parking_lot::RwLock;
use shoal_ring::{Algorithm, Ring, RingError, VBucketMap, build};

use crate::pool::Pool;

/// A `--distribution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// libmemcached weighted ketama (= twemproxy md5 + ketama): the default.
    Ketama,
    /// libmemcached non-weighted ketama with MD5.
    KetamaCompat,
    /// libmemcached modula.
    Modula,
    /// A moxi/libvbucket vBucket map.
    Vbucket,
}

impl FromStr for Distribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ketama" | "ketama-weighted" => Distribution::Ketama,
            "ketama-compat" => Distribution::KetamaCompat,
            "modula" => Distribution::Modula,
            "vbucket" => Distribution::Vbucket,
            _ => {
                return Err(format!(
                    "unknown distribution {s:?}: expected ketama, ketama-compat, modula or vbucket"
                ));
            }
        })
    }
}

impl Distribution {
    /// The name `FromStr` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Ketama => "ketama",
            Distribution::KetamaCompat => "ketama-compat",
            Distribution::Modula => "modula",
            Distribution::Vbucket => "vbucket",
        }
    }
}

/// Where a key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Index of the server in the pool.
    pub server: usize,
    /// The key's vBucket, with a vBucket map.
    pub vbucket: Option<u16>,
}

#[derive(Debug)]
enum Kind {
    Ring(Box<dyn Ring>, Algorithm),
    VBucket(RwLock<VBucketMap>),
    /// No servers (no config yet): no key has a server.
    None,
}

/// A ring over the servers that were live when it was built.
#[derive(Debug)]
struct Ejected {
    live: Vec<bool>,
    ring: Box<dyn Ring>,
    /// Ring member index → pool server index.
    index: Vec<usize>,
}

/// Routes keys to servers.
#[derive(Debug)]
pub struct Router {
    kind: Kind,
    names: Vec<String>,
    eject: bool,
    ejected: ArcSwapOption<Ejected>,
}

impl Router {
    /// A router over `servers` (`host:port[:weight]`) for a ring distribution.
    pub fn new(dist: Distribution, servers: &[&str], eject: bool) -> Result<Router, RingError> {
        let algorithm = match dist {
            Distribution::Ketama => Algorithm::Ketama,
            Distribution::KetamaCompat => Algorithm::KetamaCompat,
            Distribution::Modula => Algorithm::Modula,
            Distribution::Vbucket => return Err(RingError::VBucketMapRequired),
        };
        let ring = build(algorithm, servers)?;
        Ok(Router {
            names: servers.iter().map(|s| s.to_string()).collect(),
            kind: Kind::Ring(ring, algorithm),
            eject,
            ejected: ArcSwapOption::empty(),
        })
    }

    /// A router over a vBucket map (moxi's JSON); the servers are its `serverList`.
    pub fn vbucket(json: &str) -> Result<Router, RingError> {
        let map = VBucketMap::from_json(json)?;
        Ok(Router {
            names: shoal_ring::Ring::members(&map)
                .iter()
                .map(|m| m.name.clone())
                .collect(),
            kind: Kind::VBucket(RwLock::new(map)),
            eject: false,
            ejected: ArcSwapOption::empty(),
        })
    }

    /// A router with no servers: every key gets `None`.
    pub fn none() -> Router {
        Router {
            names: Vec::new(),
            kind: Kind::None,
            eject: false,
            ejected: ArcSwapOption::empty(),
        }
    }

    /// The servers, as given.
    pub fn servers(&self) -> &[String] {
        &self.names
    }

    /// Whether this is a vBucket router.
    pub fn is_vbucket(&self) -> bool {
        matches!(self.kind, Kind::VBucket(_))
    }

    /// The server (and vBucket) for `key`; `None` when no server can take it.
    pub fn route(&self, key: &[u8], pool: &Pool) -> Option<Route> {
        match &self.kind {
            Kind::None => None,
            Kind::VBucket(map) => {
                let map = map.read();
                let vb = map.vbucket_of(key);
                map.master(vb).map(|server| Route {
                    server,
                    vbucket: Some(vb),
                })
            }
            Kind::Ring(ring, algorithm) => {
                let server = if self.eject {
                    self.route_live(ring.as_ref(), *algorithm, key, pool)?
                } else {
                    ring.owner_index(key)?
                };
                Some(Route {
                    server,
                    vbucket: None,
                })
            }
        }
    }

    fn route_live(
        &self,
        ring: &dyn Ring,
        algorithm: Algorithm,
        key: &[u8],
        pool: &Pool,
    ) -> Option<usize> {
        let live: Vec<bool> = pool.servers().iter().map(|s| !s.is_down()).collect();
        if live.iter().all(|l| *l) || live.iter().all(|l| !*l) {
            return ring.owner_index(key);
        }
        let cached = self.ejected.load();
        let ejected = match cached.as_ref().filter(|e| e.live == live) {
            Some(e) => e.clone(),
            None => {
                let index: Vec<usize> = (0..live.len()).filter(|i| live[*i]).collect();
                let names: Vec<&str> = index.iter().map(|i| self.names[*i].as_str()).collect();
                let Ok(ring) = build(algorithm, &names) else {
                    return ring.owner_index(key);
                };
                tracing::info!(
                    live = names.len(),
                    "eject: re-sharded over the live servers"
                );
                let e = Arc::new(Ejected { live, ring, index });
                self.ejected.store(Some(e.clone()));
                e
            }
        };
        let i = ejected.ring.owner_index(key)?;
        ejected.index.get(i).copied()
    }

    /// moxi's NOT_MY_VBUCKET rule: server `wrong` refused vBucket `vb`; returns the master
    /// to try next.
    pub fn not_my_vbucket(&self, vb: u16, wrong: usize) -> Option<usize> {
        match &self.kind {
            Kind::VBucket(map) => map.write().found_incorrect_master(vb, wrong),
            Kind::Ring(..) | Kind::None => None,
        }
    }
}
