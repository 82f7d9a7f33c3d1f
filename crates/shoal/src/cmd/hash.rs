//! `shoal hash`: where does a key live?
//!
//! Prints `KEY<TAB>OWNER` per key, OWNER exactly as the member was given, using the same
//! placement the doors and the systems they replace use (libmemcached ketama, libvbucket
//! vBucket maps, groupcache rings, photosrv jump/chash, ...).
//!
//! With `--paths` (photosrv's choosers, `jump` and `chash`) each key is a request path, placed
//! as `shoal route` places it: decoded and normalised as photosrv does, then hashed without its
//! leading slash. Without it keys are hashed as given, which is photosrv's key form. A path
//! photosrv would refuse is an error naming the path. Prefix rewrites and replicas need the
//! config: `shoal route -c FILE --explain PATH` shows them.
//!
//! A jump or chash shard may carry a weight, `shard1:2` (photosrv's `shard1,2` line): then the
//! placement is the router's weighted shard ring ([`ShardRing`]), the same code `shoal route`
//! runs.
//!
//! `--hash NAME` and `--hash-tag XY` with `ketama` or `modula` place keys as a nutcracker.yml
//! pool with that `hash:`, `hash_tag:` and `distribution:` does, the same code `shoal memcache`
//! runs; members are then nutcracker's server lines, `host:port:weight [name]`.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use shoal_ring::{Algorithm, Ketama, Modula, Ring, TwemproxyHash, VBucketMap, twemproxy_hash_tag};
use shoal_router::normalize::{Rewrites, normalize_request_path};
use shoal_router::placement::ShardRing;
use shoal_router::{Chooser, RingSpec, ShardSpec};

/// Arguments of `shoal hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Placement algorithm: ketama, ketama-compat, libvbucket-ketama, vbucket, modula,
    /// groupcache, galaxycache, jump, chash or rendezvous.
    #[arg(long, short = 'a', value_name = "ALGORITHM")]
    pub algorithm: String,

    /// Comma-separated members. ketama, modula, rendezvous: `host:port[:weight]`;
    /// groupcache, galaxycache: peer URLs as given to Go's HTTPPool.Set;
    /// jump, chash: shard names in shard order, `name:weight` for a weight other than 1.
    /// Not used with vbucket.
    #[arg(long, short = 's', value_name = "MEMBERS")]
    pub servers: Option<String>,

    /// vBucket map (moxi/libvbucket JSON) for `--algorithm vbucket`.
    #[arg(long, value_name = "FILE")]
    pub vbucket_map: Option<PathBuf>,

    /// twemproxy's key hash, by nutcracker's name (fnv1a_64, murmur, md5, ...), with
    /// --algorithm ketama or modula: keys are placed as nutcracker's `hash:` and
    /// `distribution:` place them. Members are nutcracker's server lines,
    /// `host:port:weight [name]`.
    #[arg(long, value_name = "NAME")]
    pub hash: Option<String>,

    /// twemproxy's `hash_tag`, two bytes such as `{}`: a key is placed by the part between
    /// them (twemproxy placement; the hash is fnv1a_64, nutcracker's default, unless --hash
    /// names another).
    #[arg(long, value_name = "XY")]
    pub hash_tag: Option<String>,

    /// With jump or chash: keys are request paths (`/images/a.jpg?w=1`), normalised and
    /// hashed as `shoal route` does.
    #[arg(long)]
    pub paths: bool,

    /// Keys to place. With none, keys are read from stdin, one per line.
    #[arg(value_name = "KEY")]
    pub keys: Vec<String>,
}

/// Runs `shoal hash`.
pub fn run(args: HashArgs) -> anyhow::Result<()> {
    let placement = build_placement(&args)?;
    if args.paths
        && !matches!(
            args.algorithm.parse(),
            Ok(Algorithm::Jump | Algorithm::Chash)
        )
    {
        bail!(
            "--paths is for photosrv's choosers (--algorithm jump or chash), not {}",
            args.algorithm
        );
    }
    let placer = Placer {
        placement,
        paths: args.paths,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = if args.keys.is_empty() {
        placer.place_lines(io::stdin().lock(), &mut out)
    } else {
        args.keys
            .iter()
            .try_for_each(|k| placer.write(k.as_bytes(), &mut out))
            .and_then(|()| out.flush())
    };
    match result {
        // A closed pipe (`shoal hash ... | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(anyhow::anyhow!(e)),
        other => other.context("writing placements"),
    }
}

/// What places the keys.
enum Placement {
    Ring(Box<dyn Ring>),
    /// A twemproxy pool's ring, and its hash tag.
    Twemproxy(Box<dyn Ring>, Option<[u8; 2]>),
    /// jump or chash with weights: the router's shard ring, and the shard names.
    Shards(ShardRing, Vec<String>),
}

impl Placement {
    fn owner(&self, key: &[u8]) -> Option<&str> {
        match self {
            Placement::Ring(r) => r.owner(key).map(|m| m.name.as_str()),
            Placement::Twemproxy(r, tag) => {
                let key = tag.map_or(key, |t| twemproxy_hash_tag(key, t));
                r.owner(key).map(|m| m.name.as_str())
            }
            Placement::Shards(r, names) => names.get(r.shard(key)).map(String::as_str),
        }
    }
}

/// Builds the placement the arguments describe, with one clear error for each kind of bad
/// input.
fn build_placement(args: &HashArgs) -> anyhow::Result<Placement> {
    let algorithm: Algorithm = args.algorithm.parse()?;
    if args.hash.is_some() || args.hash_tag.is_some() {
        return twemproxy_pool(algorithm, args);
    }
    if let (Algorithm::Jump | Algorithm::Chash, Some(servers)) = (algorithm, &args.servers)
        && servers.contains(':')
    {
        if args.vbucket_map.is_some() {
            bail!("--vbucket-map is only used with --algorithm vbucket");
        }
        return weighted_shards(algorithm, servers);
    }
    build_ring(args).map(Placement::Ring)
}

/// A nutcracker pool: `--hash` (fnv1a_64 when only `--hash-tag` is given) over ketama or
/// modula, with `--hash-tag`.
fn twemproxy_pool(algorithm: Algorithm, args: &HashArgs) -> anyhow::Result<Placement> {
    if !matches!(algorithm, Algorithm::Ketama | Algorithm::Modula) {
        bail!(
            "--hash and --hash-tag are twemproxy's: use them with --algorithm ketama or modula, \
             not {algorithm}"
        );
    }
    if args.vbucket_map.is_some() {
        bail!("--vbucket-map is only used with --algorithm vbucket");
    }
    let hash: TwemproxyHash = match &args.hash {
        Some(h) => h.parse().map_err(|e| anyhow::anyhow!("--hash: {e}"))?,
        None => TwemproxyHash::default(),
    };
    let tag = match &args.hash_tag {
        Some(t) => Some(<[u8; 2]>::try_from(t.as_bytes()).map_err(|_| {
            anyhow::anyhow!("--hash-tag {t:?}: must be exactly two bytes, such as {{}}")
        })?),
        None => None,
    };
    let Some(servers) = &args.servers else {
        bail!("--servers is required with --algorithm {algorithm}");
    };
    let members = split_members(servers)?;
    let ring: Box<dyn Ring> = if algorithm == Algorithm::Ketama {
        Box::new(Ketama::twemproxy_with(&members, hash)?)
    } else {
        Box::new(Modula::twemproxy(&members, hash)?)
    };
    Ok(Placement::Twemproxy(ring, tag))
}

/// `name:weight,...` over jump or chash, as the router weighs photosrv's `shardN,WEIGHT`.
/// Names are hashed as given: photosrv's config reader lower-cases them, so write them so.
fn weighted_shards(algorithm: Algorithm, servers: &str) -> anyhow::Result<Placement> {
    let mut shards: Vec<ShardSpec> = Vec::new();
    for (i, m) in split_members(servers)?.into_iter().enumerate() {
        let (name, weight) = match m.split_once(':') {
            Some((n, w)) => (
                n,
                w.parse::<u32>()
                    .map_err(|_| anyhow::anyhow!("--servers: bad weight {w:?} for shard {n:?}"))?,
            ),
            None => (m, 1),
        };
        if name.is_empty() {
            bail!("--servers {servers:?}: shard {} has no name", i + 1);
        }
        if shards.iter().any(|s| s.name == name) {
            bail!("--servers {servers:?}: shard {name:?} is listed twice");
        }
        shards.push(ShardSpec {
            name: name.to_string(),
            index: i64::try_from(i)?,
            weight,
            replicas: Vec::new(),
        });
    }
    if shards.iter().all(|s| s.weight == 0) {
        bail!("--servers {servers:?}: every shard has weight 0");
    }
    let chooser = if algorithm == Algorithm::Jump {
        Chooser::Jump
    } else {
        Chooser::Chash
    };
    let names = shards.iter().map(|s| s.name.clone()).collect();
    let ring = ShardRing::new(&RingSpec { chooser, shards })?;
    Ok(Placement::Shards(ring, names))
}

/// Builds the ring the arguments describe, with one clear error for each kind of bad input.
pub fn build_ring(args: &HashArgs) -> anyhow::Result<Box<dyn Ring>> {
    let algorithm: Algorithm = args.algorithm.parse()?;
    if algorithm == Algorithm::Vbucket {
        if args.servers.is_some() {
            bail!(
                "--servers is not used with --algorithm vbucket: the members come from the map's serverList"
            );
        }
        let Some(path) = &args.vbucket_map else {
            bail!("--algorithm vbucket needs --vbucket-map FILE");
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read vBucket map {}", path.display()))?;
        let map = VBucketMap::from_json(&text)
            .with_context(|| format!("vBucket map {}", path.display()))?;
        return Ok(Box::new(map));
    }
    if args.vbucket_map.is_some() {
        bail!("--vbucket-map is only used with --algorithm vbucket");
    }
    let Some(servers) = &args.servers else {
        bail!("--servers is required with --algorithm {algorithm}");
    };
    let members = split_members(servers)?;
    Ok(shoal_ring::build(algorithm, &members)?)
}

/// Splits a comma-separated member list, trimming blanks around each member.
fn split_members(list: &str) -> anyhow::Result<Vec<&str>> {
    let members: Vec<&str> = list.split(',').map(str::trim).collect();
    if let Some(pos) = members.iter().position(|m| m.is_empty()) {
        bail!("--servers {list:?}: member {} is empty", pos + 1);
    }
    Ok(members)
}

/// Places keys and writes `KEY<TAB>OWNER` lines.
struct Placer {
    placement: Placement,
    /// `--paths`: each key is a request path.
    paths: bool,
}

impl Placer {
    fn place_lines(&self, mut input: impl BufRead, out: &mut impl Write) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            self.write(&line, out)?;
        }
        out.flush()
    }

    fn write(&self, key: &[u8], out: &mut impl Write) -> io::Result<()> {
        let hashed = if self.paths {
            Some(path_key(key)?)
        } else {
            None
        };
        out.write_all(key)?;
        out.write_all(b"\t")?;
        // A vBucket whose master is -1 has no owner; say so rather than guess.
        let owner = self
            .placement
            .owner(hashed.as_deref().unwrap_or(key))
            .unwrap_or("-");
        out.write_all(owner.as_bytes())?;
        out.write_all(b"\n")
    }
}

/// The key photosrv hashes for request path `raw`: normalised, without its leading slash.
/// Bytes, as photosrv hashed them: a path whose decoding is not UTF-8 (`caf%E9.jpg`, or the
/// raw byte 0xE9 on stdin) is placed by those bytes.
fn path_key(raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut path = normalize_request_path(raw, &Rewrites::default()).map_err(|why| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {:?} is refused: {why}", String::from_utf8_lossy(raw)),
        )
    })?;
    if path.first() == Some(&b'/') {
        path.remove(0);
    }
    Ok(path)
}
