//! `shoal hash`: where does a key live?
//!
//! Prints `KEY<TAB>OWNER` per key, OWNER exactly as the member was given, using the same
//! placement the doors and the systems they replace use (libmemcached ketama, libvbucket
//! vBucket maps, groupcache rings, photosrv jump/chash, ...).

use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use shoal_ring::{Algorithm, Ring, VBucketMap};

/// Arguments of `shoal hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Placement algorithm: ketama, ketama-compat, libvbucket-ketama, vbucket, modula,
    /// groupcache, galaxycache, jump, chash or rendezvous.
    #[arg(long, short = 'a', value_name = "ALGORITHM")]
    pub algorithm: String,

    /// Comma-separated members. ketama, modula, rendezvous: `host:port[:weight]`;
    /// groupcache, galaxycache: peer URLs as given to Go's HTTPPool.Set;
    /// jump, chash: shard names in shard order. Not used with vbucket.
    #[arg(long, short = 's', value_name = "MEMBERS")]
    pub servers: Option<String>,

    /// vBucket map (moxi/libvbucket JSON) for `--algorithm vbucket`.
    #[arg(long, value_name = "FILE")]
    pub vbucket_map: Option<PathBuf>,

    /// Keys to place. With none, keys are read from stdin, one per line.
    #[arg(value_name = "KEY")]
    pub keys: Vec<String>,
}

/// Runs `shoal hash`.
pub fn run(args: HashArgs) -> anyhow::Result<()> {
    let ring = build_ring(&args)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = if args.keys.is_empty() {
        place_lines(ring.as_ref(), io::stdin().lock(), &mut out)
    } else {
        args.keys
            .iter()
            .try_for_each(|k| write_placement(ring.as_ref(), k.as_bytes(), &mut out))
            .and_then(|()| out.flush())
    };
    match result {
        // A closed pipe (`shoal hash ... | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing placements"),
    }
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

fn place_lines(ring: &dyn Ring, mut input: impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        write_placement(ring, &line, out)?;
    }
    out.flush()
}

fn write_placement(ring: &dyn Ring, key: &[u8], out: &mut impl Write) -> io::Result<()> {
    out.write_all(key)?;
    out.write_all(b"\t")?;
    // A vBucket whose master is -1 has no owner; say so rather than guess.
    let owner = ring.owner(key).map_or("-", |m| m.name.as_str());
    out.write_all(owner.as_bytes())?;
    out.write_all(b"\n")
}
