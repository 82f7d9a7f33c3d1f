//! [`Algorithm`] names and [`build`], the one entry point `shoal hash` and the doors use.

use std::fmt;
use std::str::FromStr;

use crate::member::parse_servers;
use crate::{
    Chash, GroupcacheRing, Jump, Ketama, KetamaCompat, KeyHash, LibvbucketKetama, Modula,
    Rendezvous, Ring, RingError,
};

/// A placement algorithm, by the name operators write in configs and on the command line.
///
/// twemproxy's pools with a `hash:` other than md5, and its modula, are not here: they need a
/// [`TwemproxyHash`](crate::TwemproxyHash) (and maybe a hash tag) besides the members; build
/// them with [`Ketama::twemproxy_with`] and [`Modula::twemproxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `ketama`: libmemcached weighted ketama ([`Ketama`]).
    Ketama,
    /// `ketama-compat`: libmemcached non-weighted ketama with MD5 ([`KetamaCompat`]).
    KetamaCompat,
    /// `libvbucket-ketama`: libvbucket's ketama ([`LibvbucketKetama`]).
    LibvbucketKetama,
    /// `vbucket`: a moxi/libvbucket vBucket map ([`VBucketMap`](crate::VBucketMap)); needs the
    /// map's JSON, so [`build`] refuses it.
    Vbucket,
    /// `modula`: libmemcached modula ([`Modula`]).
    Modula,
    /// `groupcache`: golang/groupcache's ring ([`GroupcacheRing::new`]).
    Groupcache,
    /// `galaxycache`: galaxycache's ring ([`GroupcacheRing::galaxycache`]).
    Galaxycache,
    /// `jump`: photosrv's jump chooser ([`Jump`]).
    Jump,
    /// `chash`: photosrv's chash chooser ([`Chash`]).
    Chash,
    /// `rendezvous`: weighted rendezvous hashing ([`Rendezvous`]).
    Rendezvous,
}

impl Algorithm {
    /// Every algorithm, in the order of this list.
    pub const ALL: [Algorithm; 10] = [
        Algorithm::Ketama,
        Algorithm::KetamaCompat,
        Algorithm::LibvbucketKetama,
        Algorithm::Vbucket,
        Algorithm::Modula,
        Algorithm::Groupcache,
        Algorithm::Galaxycache,
        Algorithm::Jump,
        Algorithm::Chash,
        Algorithm::Rendezvous,
    ];

    /// The name, as [`FromStr`] accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ketama => "ketama",
            Algorithm::KetamaCompat => "ketama-compat",
            Algorithm::LibvbucketKetama => "libvbucket-ketama",
            Algorithm::Vbucket => "vbucket",
            Algorithm::Modula => "modula",
            Algorithm::Groupcache => "groupcache",
            Algorithm::Galaxycache => "galaxycache",
            Algorithm::Jump => "jump",
            Algorithm::Chash => "chash",
            Algorithm::Rendezvous => "rendezvous",
        }
    }

    /// What one member of this algorithm looks like, for help texts.
    pub fn member_syntax(self) -> &'static str {
        match self {
            Algorithm::Ketama
            | Algorithm::KetamaCompat
            | Algorithm::LibvbucketKetama
            | Algorithm::Modula
            | Algorithm::Rendezvous => "host:port[:weight]",
            Algorithm::Vbucket => "a vBucket map (JSON)",
            Algorithm::Groupcache | Algorithm::Galaxycache => "peer URL, e.g. http://10.0.0.1:8080",
            Algorithm::Jump | Algorithm::Chash => "shard name, in shard order",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = RingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| RingError::UnknownAlgorithm {
                name: s.to_owned(),
                expected: Algorithm::ALL.map(Algorithm::name).join(", "),
            })
    }
}

/// Builds the ring for `algorithm` from member strings, each kept verbatim as
/// [`Member::name`](crate::Member::name). See [`Algorithm::member_syntax`] for what a member
/// looks like; duplicates and an empty list are errors. `Algorithm::Vbucket` needs a map, so it
/// returns [`RingError::VBucketMapRequired`]: use [`VBucketMap::from_json`](crate::VBucketMap::from_json).
pub fn build(algorithm: Algorithm, members: &[&str]) -> Result<Box<dyn Ring>, RingError> {
    Ok(match algorithm {
        Algorithm::Ketama => {
            let (m, s) = parse_servers(members)?;
            Box::new(Ketama::from_servers(m, &s))
        }
        Algorithm::KetamaCompat => {
            let (m, s) = parse_servers(members)?;
            Box::new(KetamaCompat::from_servers(m, &s, KeyHash::Md5))
        }
        Algorithm::LibvbucketKetama => {
            let (m, s) = parse_servers(members)?;
            Box::new(LibvbucketKetama::from_servers(m, &s))
        }
        Algorithm::Vbucket => return Err(RingError::VBucketMapRequired),
        Algorithm::Modula => Box::new(Modula::new(members)?),
        Algorithm::Groupcache => Box::new(GroupcacheRing::new(members)?),
        Algorithm::Galaxycache => Box::new(GroupcacheRing::galaxycache(members)?),
        Algorithm::Jump => Box::new(Jump::new(members)?),
        Algorithm::Chash => Box::new(Chash::new(members)?),
        Algorithm::Rendezvous => Box::new(Rendezvous::new(members)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.to_string().parse::<Algorithm>().unwrap(), a);
        }
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let e = "ketamma".parse::<Algorithm>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown algorithm \"ketamma\": expected one of ketama, ketama-compat, libvbucket-ketama, \
             vbucket, modula, groupcache, galaxycache, jump, chash, rendezvous"
        );
    }

    #[test]
    fn vbucket_needs_a_map() {
        let e = build(Algorithm::Vbucket, &["a:1"]).unwrap_err();
        assert_eq!(e, RingError::VBucketMapRequired);
        assert!(e.to_string().contains("VBucketMap::from_json"));
    }

    #[test]
    fn members_are_kept_verbatim() {
        for a in Algorithm::ALL
            .into_iter()
            .filter(|a| *a != Algorithm::Vbucket)
        {
            let given = ["10.0.0.1:11211:2", "[::1]:11300", "cache-b:11211 3"];
            let ring = build(a, &given).unwrap();
            let names: Vec<&str> = ring.members().iter().map(|m| m.name.as_str()).collect();
            assert_eq!(names, given, "{a}");
            assert!(build(a, &[]).is_err(), "{a}");
        }
    }
}
