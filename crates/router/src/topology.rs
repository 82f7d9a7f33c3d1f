//! The rings, their shards and replicas, and which of them a path maps to.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{RingSpec, RouteConfig};
use crate::migration::MigrationState;
use crate::placement::ShardRing;
use crate::replica::{NodeName, Replica};
use crate::{RouteError, normalize::Rewrites};

/// One ring with its shards' replicas.
#[derive(Debug)]
pub struct Layer {
    /// `primary` or `migration`.
    pub name: &'static str,
    /// The configuration it was built from.
    pub spec: RingSpec,
    /// Placement.
    pub ring: ShardRing,
    /// Replicas of each shard, in [`RingSpec::shards`] order.
    pub replicas: Vec<Vec<Arc<Replica>>>,
}

impl Layer {
    /// Whether `other` places and stores as this ring does: the same chooser, shards (names,
    /// weights) and replicas (the same nodes, however their URLs are spelled).
    pub fn same_as(&self, other: &Layer) -> bool {
        let shards = |l: &Layer| {
            l.spec
                .shards
                .iter()
                .map(|s| (s.name.clone(), s.weight))
                .collect::<Vec<_>>()
        };
        let nodes = |l: &Layer| {
            l.replicas
                .iter()
                .map(|r| r.iter().map(|x| x.name().clone()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        self.spec.chooser == other.spec.chooser
            && shards(self) == shards(other)
            && nodes(self) == nodes(other)
    }
}

/// The shard of one ring that a path maps to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `primary` or `migration`.
    pub ring: &'static str,
    /// The shard's name (`shard2`).
    pub shard: String,
    /// The shard's configured replicas, in configuration order.
    pub replicas: Vec<Arc<Replica>>,
}

/// Everything placement needs, built once from the configuration.
#[derive(Debug)]
pub struct Topology {
    /// The data centre.
    pub dc: String,
    /// The ring in use.
    pub primary: Layer,
    /// The ring being migrated to.
    pub migration: Option<Layer>,
    /// Prefix rewrites.
    pub rewrites: Rewrites,
    /// Every distinct replica, in first-seen order.
    pub all: Vec<Arc<Replica>>,
}

impl Topology {
    /// Builds rings and replicas. A node named in several shards or rings, however its URL is
    /// spelled, is one [`Replica`] (by its [`NodeName`]), so writes reach it once; a shard
    /// that names one node twice holds it once, so the write quorum counts distinct nodes
    /// (the config reader drops such repeats already and names their line; this keeps a
    /// [`RouteConfig`] built in code to the same rule).
    pub fn new(cfg: &RouteConfig) -> Result<Self, RouteError> {
        Self::keeping(cfg, None)
    }

    /// [`Topology::new`], reusing the replicas of `older` that `cfg` still names (by
    /// [`NodeName`]): a reload keeps their health, roster flag and counters.
    pub fn keeping(cfg: &RouteConfig, older: Option<&Topology>) -> Result<Self, RouteError> {
        let old: HashMap<&NodeName, &Arc<Replica>> = older
            .map(|t| t.all.iter().map(|r| (r.name(), r)).collect())
            .unwrap_or_default();
        let mut by_name: HashMap<NodeName, Arc<Replica>> = HashMap::new();
        let mut all = Vec::new();
        let mut layer = |name, spec: &RingSpec| -> Result<Layer, RouteError> {
            let mut replicas = Vec::new();
            for s in &spec.shards {
                let mut list: Vec<Arc<Replica>> = Vec::new();
                for url in &s.replicas {
                    let r = by_name
                        .entry(NodeName::parse(url)?)
                        .or_insert_with_key(|name| {
                            let r = old.get(name).map_or_else(
                                || Arc::new(Replica::named(name.clone())),
                                |&r| r.clone(),
                            );
                            all.push(r.clone());
                            r
                        })
                        .clone();
                    if !list.iter().any(|x| Arc::ptr_eq(x, &r)) {
                        list.push(r);
                    }
                }
                replicas.push(list);
            }
            Ok(Layer {
                name,
                spec: spec.clone(),
                ring: ShardRing::new(spec)?,
                replicas,
            })
        };
        let primary = layer("primary", &cfg.primary)?;
        let migration = cfg
            .migration
            .as_ref()
            .map(|m| layer("migration", m))
            .transpose()?;
        Ok(Topology {
            dc: cfg.dc.clone(),
            primary,
            migration,
            rewrites: cfg.rewrites.clone(),
            all,
        })
    }

    /// The shards `path` (normalised, with its leading `/`; any bytes) maps to in `state`: the
    /// migration ring's first, then the primary's, as reads should try them. Writes go to all
    /// of them. In `new` without a migration ring (a reload has just made it the primary ring,
    /// see [`crate::Router::reload`]), the primary's.
    pub fn targets(&self, path: &[u8], state: MigrationState) -> Vec<Target> {
        let key = path.strip_prefix(b"/").unwrap_or(path);
        let pick = |l: &Layer| {
            let i = l.ring.shard(key);
            Target {
                ring: l.name,
                shard: l
                    .spec
                    .shards
                    .get(i)
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                replicas: l.replicas.get(i).cloned().unwrap_or_default(),
            }
        };
        let m = self.migration.as_ref();
        match state {
            MigrationState::Old => vec![pick(&self.primary)],
            MigrationState::New => vec![pick(m.unwrap_or(&self.primary))],
            MigrationState::Both => m
                .map(pick)
                .into_iter()
                .chain([pick(&self.primary)])
                .collect(),
        }
    }
}
