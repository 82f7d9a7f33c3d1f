//! The gossip task: owns foca, the UDP socket and foca's timers, in one loop so that
//! packets, timers and commands are handled strictly one at a time and in order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foca::{
    AccumulatingRuntime, Config, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, State,
    Timer,
};
use foca_rand::SeedableRng;
use foca_rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::health::LocalHealth;
use super::id::NodeId;
use super::seal::{Reject, Sealer};
use crate::membership::{Backoff, Condition, MemberInfo, MemberState, Publisher};
use crate::metrics::membership as m;

/// Commands from the [`GossipMembership`](super::GossipMembership) handle.
#[derive(Debug)]
pub(crate) enum Command {
    /// Leave the cluster (tell the others), then stop.
    Leave(oneshot::Sender<()>),
    /// Add seed addresses (and try them now).
    Seeds(Vec<SocketAddr>),
}

type Swim = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

pub(crate) struct Agent {
    pub(crate) foca: Swim,
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) sealer: Sealer,
    pub(crate) publisher: Publisher,
    pub(crate) seeds: Vec<SocketAddr>,
    pub(crate) base: Config,
    pub(crate) health: LocalHealth,
    pub(crate) join_backoff: Backoff,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: HashMap<u64, (Timer<NodeId>, bool)>,
    seq: u64,
    runtime: AccumulatingRuntime<NodeId>,
    suspects: HashSet<SocketAddr>,
    logged: HashSet<&'static str>,
    join: Condition,
    /// Set on a graceful leave: foca then reports this node as gone, which is no news.
    leaving: bool,
}

impl Agent {
    pub(crate) fn new(
        id: NodeId,
        config: Config,
        socket: Arc<UdpSocket>,
        sealer: Sealer,
        publisher: Publisher,
        seeds: Vec<SocketAddr>,
    ) -> Self {
        let seed = id.generation ^ u64::from(id.addr.port()).rotate_left(32);
        let rng = StdRng::seed_from_u64(seed);
        Agent {
            foca: Foca::new(id, config.clone(), rng, PostcardCodec),
            socket,
            sealer,
            publisher,
            seeds,
            health: LocalHealth::new(config.probe_rtt / 2),
            base: config,
            join_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            timers: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            runtime: AccumulatingRuntime::new(),
            suspects: HashSet::new(),
            logged: HashSet::new(),
            join: Condition::default(),
            leaving: false,
        }
    }

    /// Run until told to leave, or until the handle is gone.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // Exported from the start (0: healthy), not only after a first change.
        m::local_health(self.health.score());
        let mut buf = vec![0u8; self.base.max_packet_size.get() + self.sealer.overhead() + 1];
        let mut join_at = Instant::now();
        loop {
            let next_timer = self
                .timers
                .peek()
                .map(|Reverse((at, _))| *at)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let joining = !self.seeds.is_empty() && self.foca.num_members() == 0;
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::Seeds(more)) => {
                        for s in more {
                            if !self.seeds.contains(&s) { self.seeds.push(s); }
                        }
                        join_at = Instant::now();
                    }
                    Some(Command::Leave(done)) => {
                        self.leaving = true;
                        self.step(|f, rt| f.leave_cluster(rt));
                        self.flush().await;
                        tracing::info!(addr = %self.foca.identity().addr, "gossip: left the cluster");
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                got = self.socket.recv_from(&mut buf) => match got {
                    Ok((n, _from)) => self.packet(&buf[..n]),
                    Err(e) => self.log_once("recv", &e),
                },
                () = sleep_until(next_timer) => self.due_timers(),
                () = sleep_until(join_at), if joining => {
                    self.announce_to_seeds();
                    join_at = Instant::now() + self.join_backoff.next_delay();
                }
            }
            self.flush().await;
        }
    }

    fn packet(&mut self, packet: &[u8]) {
        m::gossip_packet("in", packet.len());
        match self.sealer.open(packet) {
            Ok(payload) => {
                let payload = payload.to_vec();
                self.step(|f, rt| f.handle_data(&payload, rt));
            }
            Err(reject) => {
                m::gossip_bad(reject.label());
                let what = match reject {
                    Reject::Garbage => "garbage",
                    Reject::BadKey => "bad_key",
                };
                self.log_once(
                    what,
                    &"dropped a gossip packet (counted in shoal_gossip_bad_packets_total)",
                );
            }
        }
    }

    fn due_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, seq))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some((timer, probe)) = self.pending.remove(&seq) else {
                continue;
            };
            if self.health.timer_fired(now - at, probe) {
                self.health_changed();
            }
            self.step(|f, rt| f.handle_timer(timer, rt));
        }
    }

    fn health_changed(&mut self) {
        let score = self.health.score();
        m::local_health(score);
        let mut config = self.base.clone();
        config.suspect_to_down_after = self.health.scale(self.base.suspect_to_down_after);
        if let Err(e) = self.foca.set_config(config) {
            self.log_once("config", &e);
        }
        tracing::debug!(score, "gossip: local health changed");
    }

    fn announce_to_seeds(&mut self) {
        let me = self.foca.identity().addr;
        let seeds: Vec<SocketAddr> = self.seeds.iter().copied().filter(|s| *s != me).collect();
        if seeds.is_empty() {
            return;
        }
        self.join.failed(
            "gossip join",
            &format!("no answer yet from seeds {seeds:?}"),
        );
        for s in seeds {
            self.step(|f, rt| f.announce(NodeId::seed(s), rt));
        }
    }

    /// Run one foca call against the accumulating runtime.
    fn step(
        &mut self,
        f: impl FnOnce(&mut Swim, &mut AccumulatingRuntime<NodeId>) -> Result<(), foca::Error>,
    ) {
        if let Err(e) = f(&mut self.foca, &mut self.runtime) {
            if matches!(e, foca::Error::MalformedPacket | foca::Error::Decode(_)) {
                m::gossip_bad("undecodable");
                self.log_once("undecodable", &e);
            } else {
                tracing::debug!(error = %e, "gossip: foca refused an input");
            }
        }
    }

    /// Send what foca wants sent, schedule its timers, and publish membership changes.
    async fn flush(&mut self) {
        while let Some((to, data)) = self.runtime.to_send() {
            let packet = self.sealer.seal(&data);
            m::gossip_packet("out", packet.len());
            if let Err(e) = self.socket.send_to(&packet, to.addr).await {
                self.log_once("send", &e);
            }
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let probe = matches!(
                timer,
                Timer::ProbeRandomMember(_) | Timer::SendIndirectProbe { .. }
            );
            let after = if probe {
                self.health.scale(after)
            } else {
                after
            };
            self.seq += 1;
            self.timers.push(Reverse((now + after, self.seq)));
            self.pending.insert(self.seq, (timer, probe));
        }
        let mut changed = false;
        while let Some(n) = self.runtime.to_notify() {
            match n {
                OwnedNotification::MemberUp(id) => {
                    tracing::info!(member = %id.url, addr = %id.addr, "gossip: member up");
                    changed = true;
                }
                OwnedNotification::MemberDown(id) => {
                    tracing::info!(member = %id.url, addr = %id.addr, "gossip: member down");
                    changed = true;
                }
                OwnedNotification::Rename(_, _) | OwnedNotification::Rejoin(_) => changed = true,
                OwnedNotification::Defunct if self.leaving => {}
                OwnedNotification::Defunct => {
                    tracing::warn!(
                        "gossip: this node was declared down; rejoining with a new identity"
                    );
                }
                _ => {}
            }
        }
        if self.foca.num_members() > 0 {
            self.join.ok("gossip join");
            self.join_backoff.reset();
        }
        self.track_states(changed);
    }

    fn track_states(&mut self, changed: bool) {
        let mut infos = Vec::new();
        let mut suspects = HashSet::new();
        for member in self.foca.iter_membership_state() {
            let id = member.id();
            let state = match member.state() {
                State::Alive => MemberState::Alive,
                State::Suspect => {
                    suspects.insert(id.addr);
                    MemberState::Suspect
                }
                State::Down => MemberState::Down,
            };
            infos.push(MemberInfo {
                url: id.url.clone(),
                state,
            });
        }
        let new_suspects = suspects.difference(&self.suspects).count();
        for _ in 0..new_suspects {
            m::suspicion();
        }
        if changed || new_suspects > 0 || suspects.len() != self.suspects.len() {
            self.publisher.publish(infos);
        }
        self.suspects = suspects;
    }

    fn log_once(&mut self, what: &'static str, e: &dyn std::fmt::Display) {
        if self.logged.insert(what) {
            tracing::warn!(error = %e, kind = what, "gossip: problem (logged once per kind)");
        }
    }
}
