//! The shard map: photosrv's Config::General file or its TOML twin, for one data centre.
//!
//! photosrv form (see [`crate::simpleconf`] for the grammar):
//!
//! ```text
//! <photosrv>
//!     chooser jump                  # or chash (the default)
//!     <earth>                       # a data centre, chosen with --dc
//!         <shards>
//!             shard1   http://10.0.0.1:8080 http://10.0.0.2:8080
//!             shard2,2 http://10.0.0.3:8080 http://10.0.0.4:8080
//!         </shards>
//!     </earth>
//!     <migration> chooser jump  <earth> <shards> ... </shards> </earth> </migration>
//!     <prefix_rewrite>
//!         /images/org/  /images/max500/
//!     </prefix_rewrite>
//! </photosrv>
//! ```
//!
//! TOML form (a file whose name ends in `.toml`):
//!
//! ```toml
//! chooser = "jump"
//! [prefix_rewrite]
//! "/images/org/" = "/images/max500/"
//! [[dc.earth.shards]]
//! name = "shard1"
//! replicas = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
//! [[dc.earth.shards]]
//! name = "shard2"
//! weight = 2
//! replicas = ["http://10.0.0.3:8080", "http://10.0.0.4:8080"]
//! [migration]
//! chooser = "jump"
//! # [[migration.dc.earth.shards]] ...
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::RouteError;
use crate::normalize::{DroppedRule, Rewrites};
use crate::replica::NodeName;
use crate::simpleconf::{self, Block};

/// Which hash picks a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chooser {
    /// SipHash-2-4 (key 0) and jump hash.
    Jump,
    /// leveldb's hash on a 160-point ring (photosrv's default).
    Chash,
}

impl Chooser {
    /// photosrv's rule: `jump`, `chash`, or empty for chash.
    pub fn parse(s: &str) -> Result<Self, RouteError> {
        match s {
            "jump" => Ok(Chooser::Jump),
            "chash" | "" => Ok(Chooser::Chash),
            other => Err(RouteError::config(format!(
                "bad chooser {other:?}: expected jump or chash"
            ))),
        }
    }

    /// `jump` or `chash`.
    pub fn name(self) -> &'static str {
        match self {
            Chooser::Jump => "jump",
            Chooser::Chash => "chash",
        }
    }
}

/// One shard: its name (`shardN`), weight and replica base URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// The name as configured, e.g. `shard3`; it is also the ring's bucket name.
    pub name: String,
    /// The number after `shard`, which orders the shards.
    pub index: i64,
    /// Relative weight (1 unless `shardN,W`).
    pub weight: u32,
    /// Replica base URLs (`http://host:port[/base]`).
    pub replicas: Vec<String>,
}

/// A ring: its chooser and its shards in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingSpec {
    /// The hash.
    pub chooser: Chooser,
    /// Shards sorted by index.
    pub shards: Vec<ShardSpec>,
}

/// The router's view of the configuration for one data centre.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The data centre (lower-cased).
    pub dc: String,
    /// The ring in use (photosrv's primary).
    pub primary: RingSpec,
    /// The ring being migrated to, if configured for this data centre.
    pub migration: Option<RingSpec>,
    /// Valid prefix rewrites.
    pub rewrites: Rewrites,
    /// Rewrite rules dropped by validation (logged at start).
    pub dropped_rewrites: Vec<DroppedRule>,
    /// Shard lines that named one storage node more than once, each naming its file and line
    /// (logged at start). Such a line is read as naming the node once: it holds one copy of
    /// each file, so it is one replica and counts once toward the write quorum.
    pub duplicate_replicas: Vec<String>,
}

impl RouteConfig {
    /// Reads `path` (TOML if it ends in `.toml`, else photosrv's grammar) for data centre `dc`.
    pub fn load(path: &Path, dc: &str) -> Result<Self, RouteError> {
        let text = std::fs::read_to_string(path).map_err(|e| RouteError::io(path, e))?;
        if path.extension().is_some_and(|e| e == "toml") {
            Self::from_toml(&text, dc)
        } else {
            Self::from_photosrv(&simpleconf::parse(&text, path)?, dc)
        }
    }

    /// From a parsed photosrv file.
    pub fn from_photosrv(root: &Block, dc: &str) -> Result<Self, RouteError> {
        let dc = check_dc(dc)?;
        let top = root
            .block("photosrv")
            .ok_or_else(|| RouteError::config("no <photosrv> block"))?;
        let mut duplicate_replicas = Vec::new();
        let primary = photosrv_ring(top, &dc, &mut duplicate_replicas)?.ok_or_else(|| {
            let known: Vec<&str> = data_centres(top);
            RouteError::config(format!(
                "data centre {dc:?} has no <shards> under <photosrv> (data centres: {})",
                known.join(", ")
            ))
        })?;
        let migration = match top.block("migration") {
            Some(m) => photosrv_ring(m, &dc, &mut duplicate_replicas)?,
            None => None,
        };
        let pairs: Vec<(&str, &str)> = top
            .block("prefix_rewrite")
            .map(|b| b.items().map(|(k, v, _)| (k, v)).collect())
            .unwrap_or_default();
        let (rewrites, dropped_rewrites) = Rewrites::new(pairs);
        Ok(RouteConfig {
            dc,
            primary,
            migration,
            rewrites,
            dropped_rewrites,
            duplicate_replicas,
        })
    }

    /// From the TOML form.
    pub fn from_toml(text: &str, dc: &str) -> Result<Self, RouteError> {
        let dc = check_dc(dc)?;
        let file: TomlFile = toml::from_str(text)
            .map_err(|e| RouteError::config(e.to_string().replace('\n', " ")))?;
        let mut duplicate_replicas = Vec::new();
        let mut ring = |chooser: &Option<String>, dcs: &BTreeMap<String, TomlDc>, table: &str| {
            let Some(d) = dcs.iter().find(|(k, _)| k.to_lowercase() == dc) else {
                return Ok(None);
            };
            let shards = d
                .1
                .shards
                .iter()
                .map(|s| {
                    let (name, index) =
                        shard_name(&s.name.to_lowercase()).map_err(RouteError::config)?;
                    let replicas = dedup_replicas(&s.replicas, |msg| {
                        duplicate_replicas.push(format!("[{table}.{}] shard {name}: {msg}", d.0));
                    });
                    Ok(ShardSpec {
                        name,
                        index,
                        weight: s.weight,
                        replicas,
                    })
                })
                .collect::<Result<Vec<_>, RouteError>>()?;
            finish_ring(Chooser::parse(chooser.as_deref().unwrap_or(""))?, shards).map(Some)
        };
        let primary = ring(&file.chooser, &file.dc, "dc")?.ok_or_else(|| {
            RouteError::config(format!("data centre {dc:?} has no shards in [dc.{dc}]"))
        })?;
        let migration = match &file.migration {
            Some(m) => ring(&m.chooser, &m.dc, "migration.dc")?,
            None => None,
        };
        let (rewrites, dropped_rewrites) = Rewrites::new(
            file.prefix_rewrite
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str())),
        );
        Ok(RouteConfig {
            dc,
            primary,
            migration,
            rewrites,
            dropped_rewrites,
            duplicate_replicas,
        })
    }
}

fn check_dc(dc: &str) -> Result<String, RouteError> {
    let dc = dc.trim().to_lowercase();
    if dc.is_empty() {
        return Err(RouteError::config(
            "no data centre chosen: pass --dc NAME (photosrv's -dcname)",
        ));
    }
    Ok(dc)
}

fn data_centres(top: &Block) -> Vec<&str> {
    top.entries
        .iter()
        .filter(|(k, n)| {
            matches!(n, simpleconf::Node::Block(b) if b.block("shards").is_some())
                && k != "migration"
        })
        .map(|(k, _)| k.as_str())
        .collect()
}

fn photosrv_ring(
    base: &Block,
    dc: &str,
    duplicate_replicas: &mut Vec<String>,
) -> Result<Option<RingSpec>, RouteError> {
    let Some(shards) = base.block(dc).and_then(|d| d.block("shards")) else {
        return Ok(None);
    };
    let mut specs: Vec<ShardSpec> = Vec::new();
    // Name and index → the line that gave them, for errors naming both lines.
    let mut seen: HashMap<String, &simpleconf::Line> = HashMap::new();
    let mut indices: HashMap<i64, (String, &simpleconf::Line)> = HashMap::new();
    for (key, endpoints, at) in shards.items() {
        let (name, weight) = match key.split_once(',') {
            Some((n, w)) => {
                let w: u32 = w
                    .parse()
                    .ok()
                    .filter(|w| *w <= crate::placement::MAX_WEIGHT)
                    .ok_or_else(|| {
                        at.error(format!(
                            "bad weight {w:?} for shard {dc}>{n}: expected 0 to {}",
                            crate::placement::MAX_WEIGHT
                        ))
                    })?;
                (n, w)
            }
            None => (key, 1),
        };
        let (name, index) = shard_name(name).map_err(|e| at.error(e))?;
        if let Some(first) = seen.insert(name.clone(), at) {
            return Err(at.error(format!(
                "shard {name} is listed twice (first on {})",
                first.place(at)
            )));
        }
        if let Some((other, line)) = indices.insert(index, (name.clone(), at)) {
            return Err(at.error(format!(
                "shard {name} repeats index {index} of shard {other} ({})",
                line.place(at)
            )));
        }
        let endpoints: Vec<String> = endpoints.split_whitespace().map(str::to_string).collect();
        if endpoints.is_empty() {
            return Err(at.error(format!("shard {name} has no replicas")));
        }
        let replicas = dedup_replicas(&endpoints, |msg| {
            duplicate_replicas.push(format!(
                "{}:{}: shard {name}: {msg}",
                at.file.display(),
                at.line
            ));
        });
        specs.push(ShardSpec {
            name,
            index,
            weight,
            replicas,
        });
    }
    let chooser = Chooser::parse(base.values("chooser").next().unwrap_or(""))?;
    finish_ring(chooser, specs).map(Some)
}

/// `urls` with every later spelling of a storage node already listed left out (see
/// [`NodeName`] for what makes two URLs one node), calling `notice` once with what was left
/// out when anything was.
///
/// A shard line that names one node twice (`http://10.0.0.1:8080 http://10.0.0.1:8080/`, or
/// the same URL twice) is read as naming it once, not refused. photosrv started with such a
/// file (it only made that node twice as likely to serve a read), so a deployment switching
/// to shoal keeps starting with it; but the node holds one copy of each file, so it is one
/// replica: it gets each write once and counts once toward the write quorum, which is then a
/// majority of the distinct nodes. The notice (logged at start, naming the line) tells the
/// operator that the shard has fewer replicas than the line shows, most likely a typo for
/// another node. A URL that does not parse is kept as written, for the router to refuse with
/// its own error.
fn dedup_replicas(urls: &[String], notice: impl FnOnce(String)) -> Vec<String> {
    let mut seen: Vec<(String, &str)> = Vec::new();
    let mut repeats: Vec<String> = Vec::new();
    for url in urls {
        let name = NodeName::parse(url).map_or_else(|_| url.clone(), |n| n.to_string());
        match seen.iter().find(|(n, _)| *n == name) {
            Some((_, first)) => repeats.push(format!("{url} (as {first})")),
            None => seen.push((name, url)),
        }
    }
    if !repeats.is_empty() {
        notice(format!(
            "names a storage node more than once: {} left out; the node counts once, as one replica",
            repeats.join(", ")
        ));
    }
    seen.into_iter().map(|(_, url)| url.to_string()).collect()
}

/// `shardN` → (name, N); the error says what is wrong with the name.
fn shard_name(name: &str) -> Result<(String, i64), String> {
    let Some(num) = name.strip_prefix("shard") else {
        return Err(format!("shard name {name:?} must begin with `shard`"));
    };
    let index = num
        .parse::<i64>()
        .map_err(|_| format!("bad shard index {num:?} in {name:?}"))?;
    Ok((name.to_string(), index))
}

fn finish_ring(chooser: Chooser, mut shards: Vec<ShardSpec>) -> Result<RingSpec, RouteError> {
    if shards.is_empty() {
        return Err(RouteError::config("a <shards> block lists no shards"));
    }
    let mut names = HashSet::new();
    let mut indices = HashSet::new();
    for s in &shards {
        if !names.insert(s.name.clone()) {
            return Err(RouteError::config(format!(
                "shard {} is listed twice",
                s.name
            )));
        }
        if !indices.insert(s.index) {
            return Err(RouteError::config(format!(
                "shard {} repeats index {} of another shard",
                s.name, s.index
            )));
        }
        if s.replicas.is_empty() {
            return Err(RouteError::config(format!(
                "shard {} has no replicas",
                s.name
            )));
        }
    }
    if shards.iter().all(|s| s.weight == 0) {
        return Err(RouteError::config("every shard has weight 0"));
    }
    shards.sort_by_key(|s| s.index);
    Ok(RingSpec { chooser, shards })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    chooser: Option<String>,
    #[serde(default)]
    prefix_rewrite: BTreeMap<String, String>,
    #[serde(default)]
    dc: BTreeMap<String, TomlDc>,
    migration: Option<TomlMigration>,
    /// Server settings, read and checked by the `shoal route` command (its `[route]` table),
    /// not by the shard map.
    #[serde(default, rename = "route")]
    _route: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlDc {
    shards: Vec<TomlShard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlShard {
    name: String,
    #[serde(default = "one")]
    weight: u32,
    replicas: Vec<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlMigration {
    chooser: Option<String>,
    #[serde(default)]
    dc: BTreeMap<String, TomlDc>,
}
