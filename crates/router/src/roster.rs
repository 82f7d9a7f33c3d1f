//! photosrv's roster file: the storage nodes that are live right now.
//!
//! Each line is split on whitespace; the **second** field is a live `host:port`, matched
//! against each replica URL's `host:port`; further fields are ignored. photosrv compared the
//! two as written; here both are compared in canonical form (host lower-cased, port explicit,
//! see [`crate::replica::NodeName`]), so a node written `http://10.0.0.1` is matched by the
//! roster's `10.0.0.1` (what photosrv needed) and by `10.0.0.1:80` alike. Blank lines
//! and `#` comments are skipped; other lines with fewer than two fields are garbage: ignored
//! and counted. A roster with no hosts means "no filtering".
//!
//! photosrv reloads only when the roster is a symlink whose target changes. shoal polls both
//! the link target and the file it points to (modification time, size, inode), so a symlink
//! swap and an edit in place are both picked up.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::RouteError;
use crate::replica::host_and_port;

/// A parsed roster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// Live `host:port`s as written; empty means no filtering.
    pub hosts: HashSet<String>,
    /// Lines that were neither blank, comments, nor had two fields.
    pub ignored_lines: usize,
    /// `hosts` in canonical `host:port` form, which [`Roster::allows`] looks up.
    canonical: HashSet<String>,
    /// Hosts written without a port: they also admit an `https://` node on 443.
    portless: HashSet<String>,
}

impl Roster {
    /// Parses roster text.
    pub fn parse(text: &str) -> Self {
        let mut r = Roster::default();
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let mut fields = t.split_whitespace();
            match (fields.next(), fields.next()) {
                (Some(_), Some(host)) => {
                    r.hosts.insert(host.to_string());
                    // A field that is no `host:port` can match nothing; it still counts as a
                    // host, as in photosrv, so such a roster still filters.
                    // Port 0 stands for "none written" (a port of 0 is refused).
                    if let Ok((h, p)) = host_and_port(host, 0) {
                        if p == 0 {
                            r.canonical.insert(format!("{h}:80"));
                            r.portless.insert(h);
                        } else {
                            r.canonical.insert(format!("{h}:{p}"));
                        }
                    }
                }
                _ => r.ignored_lines += 1,
            }
        }
        r
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, RouteError> {
        let text = std::fs::read_to_string(path).map_err(|e| RouteError::io(path, e))?;
        Ok(Self::parse(&text))
    }

    /// Whether the storage node `name` may be used: its `host:port`, or, for an `https://`
    /// node on 443, its host written without a port (which names port 80 for `http://`).
    pub fn allows_node(&self, name: &crate::replica::NodeName) -> bool {
        if self.allows(name.authority()) {
            return true;
        }
        name.is_https()
            && name.authority().ends_with(":443")
            && host_and_port(name.authority(), 443).is_ok_and(|(h, _)| self.portless.contains(&h))
    }

    /// Whether the node at `authority` (`host:port`, in any spelling) may be used.
    pub fn allows(&self, authority: &str) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        match host_and_port(authority, 80) {
            Ok((h, p)) => self.canonical.contains(&format!("{h}:{p}")),
            Err(_) => self.hosts.contains(authority),
        }
    }
}

/// What identifies one version of the roster: the link target and the file's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    target: Option<PathBuf>,
    mtime_ns: i128,
    len: u64,
    ino: u64,
}

/// The roster's current fingerprint, or the error that kept us from taking it.
pub fn fingerprint(path: &Path) -> std::io::Result<Fingerprint> {
    let target = std::fs::read_link(path).ok();
    let m = std::fs::metadata(path)?;
    Ok(Fingerprint {
        target,
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        len: m.len(),
        ino: m.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// photosrv's `TestRoster`, plus garbage counting.
    #[test]
    fn second_column_rule() {
        assert!(Roster::parse("").hosts.is_empty());
        assert!(Roster::parse("\n").hosts.is_empty());
        let r = Roster::parse("\n127.0.0.1 host1\n127.0.0.2 host2\n");
        assert_eq!(r.hosts, HashSet::from(["host1".into(), "host2".into()]));
        let r = Roster::parse("127.0.0.1 host1 extra-fields ignored\n127.0.0.2 host2 x y\n");
        assert_eq!(r.hosts, HashSet::from(["host1".into(), "host2".into()]));
        let r = Roster::parse("# live nodes\ngarbage\n\n  lonely  \n1 127.0.0.1:9001\n");
        assert_eq!(r.ignored_lines, 2);
        assert!(r.allows("127.0.0.1:9001"));
        assert!(!r.allows("127.0.0.1:9002"));
        assert!(Roster::default().allows("anything:1"));
        // Canonical comparison: an implicit port is 80, host names match in any case.
        let r = Roster::parse("a 10.0.0.1\nb Node2:8080\nc 10.0.0.3:80\n");
        assert!(r.allows("10.0.0.1:80") && r.allows("10.0.0.1"));
        assert!(r.allows("node2:8080") && r.allows("NODE2:08080"));
        assert!(r.allows("10.0.0.3:80") && r.allows("10.0.0.3"));
        assert!(!r.allows("10.0.0.1:8080") && !r.allows("node2:80"));
        let node = |url: &str| crate::replica::NodeName::parse(url).unwrap();
        assert!(
            r.allows_node(&node("https://10.0.0.1")),
            "portless: 443 for https"
        );
        assert!(r.allows_node(&node("http://10.0.0.1")));
        assert!(
            !r.allows_node(&node("https://node2:443")),
            "node2 has a port"
        );
        assert!(r.allows_node(&node("https://node2:8080")));
    }

    #[test]
    fn fingerprint_sees_symlink_swaps_and_edits() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, link) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("r"),
        );
        std::fs::write(&a, "x h:1\n").unwrap();
        std::fs::write(&b, "x h:1\n").unwrap();
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let f1 = fingerprint(&link).unwrap();
        let tmp = dir.path().join("r.tmp");
        std::os::unix::fs::symlink(&b, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        let f2 = fingerprint(&link).unwrap();
        assert_ne!(f1, f2);
        std::fs::write(&b, "x h:1\nx h:2\n").unwrap();
        assert_ne!(f2, fingerprint(&link).unwrap());
    }
}
