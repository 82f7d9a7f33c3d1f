//! Hosts in network namespaces of our own, for tests that need a real network partition.
//!
//! Topology: one "switch" namespace holds two bridges, `brA` and `brB`, joined by a veth
//! pair (the trunk). Host `i` is a namespace whose `eth0` (10.77.0.{i+1}/24) is a veth into
//! one of the bridges. [`Net::partition`] takes the trunk down, so packets between the
//! halves are silently lost, as on a real network; [`Net::heal`] brings it back. Nothing is
//! added to the test's own namespace: the test reaches hosts by running code on a thread
//! that has entered a host's namespace ([`Net::enter`]).
//!
//! Namespace names carry the process id and a counter, so parallel runs never share one;
//! they are deleted on drop, also when a test panics. Processes started in a host must be
//! dropped (killed) before the `Net`.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::process::require;

const IP: &str = "/usr/sbin/ip";

/// The network namespaces of one test; deleted on drop.
pub struct Net {
    switch: String,
    hosts: Vec<String>,
    created: Vec<String>,
}

fn ip(args: &[&str]) -> Result<Output, String> {
    let out = Command::new(IP)
        .args(args)
        .output()
        .map_err(|e| format!("running {IP}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// Hosts `0..half_a` on bridge A, the rest of `hosts` on bridge B, all connected.
    ///
    /// `None` when namespaces cannot be made here (not root, no iproute2): the test is then
    /// skipped loudly, or, under `CI=true`, fails naming `scripts/install-deps`.
    pub fn create(hosts: usize, half_a: usize) -> Option<Net> {
        if !require("the network partition test", "iproute2", &[Path::new(IP)]) {
            return None;
        }
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "shoal-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::SeqCst)
        );
        let mut net = Net {
            switch: format!("{prefix}-sw"),
            hosts: (0..hosts).map(|i| format!("{prefix}-h{i}")).collect(),
            created: Vec::new(),
        };
        match net.build(half_a) {
            Ok(()) => Some(net),
            Err(e) => {
                let msg = format!(
                    "the network partition test needs network namespaces (root, iproute2; \
                     run scripts/install-deps): {e}"
                );
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{msg}");
                }
                eprintln!("\n!!! SKIPPED: {msg}\n");
                None
            }
        }
    }

    fn add_ns(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn build(&mut self, half_a: usize) -> Result<(), String> {
        let sw = self.switch.clone();
        self.add_ns(&sw)?;
        for br in ["brA", "brB"] {
            ip(&["-n", &sw, "link", "add", br, "type", "bridge"])?;
            ip(&["-n", &sw, "link", "set", br, "up"])?;
        }
        ip(&[
            "-n", &sw, "link", "add", "tA", "type", "veth", "peer", "name", "tB",
        ])?;
        for (end, br) in [("tA", "brA"), ("tB", "brB")] {
            ip(&["-n", &sw, "link", "set", end, "master", br])?;
            ip(&["-n", &sw, "link", "set", end, "up"])?;
        }
        for (i, host) in self.hosts.clone().iter().enumerate() {
            self.add_ns(host)?;
            let port = format!("h{i}");
            ip(&[
                "-n", host, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &sw,
            ])?;
            let addr = format!("{}/24", Self::addr_of(i));
            ip(&["-n", host, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", host, "link", "set", "eth0", "up"])?;
            let br = if i < half_a { "brA" } else { "brB" };
            ip(&["-n", &sw, "link", "set", &port, "master", br])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
        }
        Ok(())
    }

    /// The address of host `i`.
    pub fn addr_of(i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 77, 0, u8::try_from(i + 1).unwrap()))
    }

    /// A command that runs `program` inside host `i`.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new(IP);
        c.args(["netns", "exec", &self.hosts[i], program]);
        c
    }

    /// Run `f` on a thread that has entered host `i`'s network namespace (sockets it opens
    /// live there), and return what it returns.
    pub fn enter<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.hosts[i]);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("entering {path}: {e}"));
            f()
        })
    }

    /// Cut the trunk between the halves: their packets are lost from now on.
    pub fn partition(&self) {
        ip(&["-n", &self.switch, "link", "set", "tA", "down"]).unwrap();
    }

    /// Join the halves again.
    pub fn heal(&self) {
        ip(&["-n", &self.switch, "link", "set", "tA", "up"]).unwrap();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth ends in it (and so their peers).
        for name in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cleaning up network namespace {name}: {e}");
            }
        }
    }
}
