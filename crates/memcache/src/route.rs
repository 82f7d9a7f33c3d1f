//! Which server a key goes to: a ring from `shoal-ring` (libmemcached's ketama, ketama-compat
//! and modula, or twemproxy's ketama and modula with its `hash:` and `hash_tag:`) or a vBucket
//! map, plus twemproxy's opt-in "eject" mode, which re-shards over the servers that are not in
//! their retry interval.

use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use parking_lot::RwLock;
use shoal_ring::{
    Algorithm, Ketama, Modula, Ring, RingError, TwemproxyHash, VBucketMap, build,
    twemproxy_hash_tag,
};

/// twemproxy (nutcracker) placement of a ketama or modula pool: the pool's `hash:` and
/// `hash_tag:`. With it the servers are twemproxy server lines, `host:port:weight [name]`
/// (the weight may be left out here), sorted and tie-broken as nutcracker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Twemproxy {
    /// The key hash (`hash:`); [`Default`] is nutcracker's, `fnv1a_64`. A ketama continuum's
    /// points are MD5 whatever this says.
    pub hash: TwemproxyHash,
    /// `hash_tag:` (two bytes such as `{}`): a key is placed by the part between the first
    /// opening byte and the next closing byte, when that part is not empty
    /// ([`twemproxy_hash_tag`]); `None` places it by the whole key.
    pub hash_tag: Option<[u8; 2]>,
}

use crate::pool::Pool;

/// A `--distribution`, and with twemproxy options (`--hash`, `--hash-tag`, a nutcracker.yml
/// pool) twemproxy's form of ketama or modula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// libmemcached weighted ketama (= twemproxy md5 + ketama for unnamed servers): the default.
    Ketama,
    /// libmemcached non-weighted ketama with MD5.
    KetamaCompat,
    /// libmemcached modula.
    Modula,
    /// A moxi/libvbucket vBucket map.
    Vbucket,
    /// twemproxy `distribution: ketama` ([`Ketama::twemproxy_with`]).
    TwemproxyKetama(Twemproxy),
    /// twemproxy `distribution: modula` ([`Modula::twemproxy`]).
    TwemproxyModula(Twemproxy),
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
    /// The name `FromStr` accepts (for twemproxy's forms, that of their distribution: the
    /// hash is [`twemproxy`](Self::twemproxy)'s).
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Ketama | Distribution::TwemproxyKetama(_) => "ketama",
            Distribution::KetamaCompat => "ketama-compat",
            Distribution::Modula | Distribution::TwemproxyModula(_) => "modula",
            Distribution::Vbucket => "vbucket",
        }
    }

    /// twemproxy's placement, for its forms of ketama and modula.
    pub fn twemproxy(self) -> Option<Twemproxy> {
        match self {
            Distribution::TwemproxyKetama(t) | Distribution::TwemproxyModula(t) => Some(t),
            _ => None,
        }
    }

    /// This distribution placed as twemproxy places it with `t`: ketama and modula have a
    /// twemproxy form; ketama-compat and vbucket do not (the error says so).
    pub fn with_twemproxy(self, t: Twemproxy) -> Result<Distribution, String> {
        match self {
            Distribution::Ketama | Distribution::TwemproxyKetama(_) => {
                Ok(Distribution::TwemproxyKetama(t))
            }
            Distribution::Modula | Distribution::TwemproxyModula(_) => {
                Ok(Distribution::TwemproxyModula(t))
            }
            Distribution::KetamaCompat | Distribution::Vbucket => Err(format!(
                "twemproxy's hash and hash_tag apply to ketama and modula, not {}",
                self.name()
            )),
        }
    }
}

/// The ring of `dist` over `servers`.
fn ring(dist: Distribution, servers: &[&str]) -> Result<Box<dyn Ring>, RingError> {
    Ok(match dist {
        Distribution::Ketama => build(Algorithm::Ketama, servers)?,
        Distribution::KetamaCompat => build(Algorithm::KetamaCompat, servers)?,
        Distribution::Modula => build(Algorithm::Modula, servers)?,
        Distribution::TwemproxyKetama(t) => Box::new(Ketama::twemproxy_with(servers, t.hash)?),
        Distribution::TwemproxyModula(t) => Box::new(Modula::twemproxy(servers, t.hash)?),
        Distribution::Vbucket => return Err(RingError::VBucketMapRequired),
    })
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
    /// A ring, and the distribution it was built with (the eject mode builds another).
    Ring(Box<dyn Ring>, Distribution),
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
    /// twemproxy's `hash_tag:`: keys are cut to their tag before the ring sees them.
    hash_tag: Option<[u8; 2]>,
    eject: bool,
    ejected: ArcSwapOption<Ejected>,
}

impl Router {
    /// A router over `servers` (`host:port[:weight]`, or twemproxy's server lines for its
    /// distributions) for a ring distribution. With `eject`, a ring of the same distribution
    /// over the live servers takes the keys while a server is in its retry interval, as
    /// twemproxy's `auto_eject_hosts` rebuilds its continuum (same hash, same hash tag).
    pub fn new(dist: Distribution, servers: &[&str], eject: bool) -> Result<Router, RingError> {
        let ring = ring(dist, servers)?;
        Ok(Router {
            names: servers.iter().map(|s| s.to_string()).collect(),
            hash_tag: dist.twemproxy().and_then(|t| t.hash_tag),
            kind: Kind::Ring(ring, dist),
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
            hash_tag: None,
            eject: false,
            ejected: ArcSwapOption::empty(),
        })
    }

    /// A router with no servers: every key gets `None`.
    pub fn none() -> Router {
        Router {
            names: Vec::new(),
            kind: Kind::None,
            hash_tag: None,
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
            Kind::Ring(ring, dist) => {
                // twemproxy cuts the key to its hash tag first; a slice, nothing copied.
                let key = match self.hash_tag {
                    Some(tag) => twemproxy_hash_tag(key, tag),
                    None => key,
                };
                let server = if self.eject {
                    self.route_live(ring.as_ref(), *dist, key, pool)?
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
        dist: Distribution,
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
                let Ok(ring) = self::ring(dist, &names) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twemproxy_forms_exist_for_ketama_and_modula_only() {
        let t = Twemproxy {
            hash: TwemproxyHash::Murmur,
            hash_tag: Some(*b"{}"),
        };
        let k = Distribution::Ketama.with_twemproxy(t).unwrap();
        assert_eq!(k, Distribution::TwemproxyKetama(t));
        assert_eq!((k.name(), k.twemproxy()), ("ketama", Some(t)));
        let m = Distribution::Modula.with_twemproxy(t).unwrap();
        assert_eq!((m.name(), m.twemproxy()), ("modula", Some(t)));
        assert_eq!(Distribution::Modula.twemproxy(), None);
        for d in [Distribution::KetamaCompat, Distribution::Vbucket] {
            let e = d.with_twemproxy(t).unwrap_err();
            assert!(
                e.contains("ketama and modula") && e.contains(d.name()),
                "{e}"
            );
        }
        assert_eq!(Twemproxy::default().hash, TwemproxyHash::Fnv1a_64);
    }
}
