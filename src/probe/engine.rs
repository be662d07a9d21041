//! The probe engine: sends probes on a [`Network`], matches the replies, and follows the
//! schedule of [`super::schedule`].
//!
//! Schedule (ICMP rate limiting is not loss: a Linux router answers about 6 time-exceeded at once
//! to one destination, then about 1 a second):
//! 1. one full-TTL SYN per flow and attempt (`--repeat`): SYN-ACK, RST or ICMP unreachable
//!    classify every flow without needing a single time-exceeded. Silent flows are retried, paced,
//!    only when other flows got ICMP errors (which are rate limited) and time allows;
//! 2. hop by hop, TTL after TTL, only for the flows that need it: every failing flow and a few
//!    reaching ones (one burst's worth: enough to find the ECMP branches), or every flow with
//!    `--hops all`. Hop 1 is probed once per local next hop (every flow the local kernel sends
//!    to the same neighbour meets the same router first) and marked `inferred` for the rest.
//!    A silent hop on a path that goes on answering is retried when the routers' modelled token
//!    buckets allow, and marked `rate-limited` when it stays silent.
//!
//! Each flow keeps its source port reserved by a bound TCP socket for the whole run, so no local
//! connection can take it; a SYN-ACK is answered by the kernel's RST for that unconnected socket
//! and by our own RST, so nothing is left half-open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::net::{self, Channel, Network, Received, Setup};
use super::packet::{self, Probe, Reply, ReplyKind};
use super::report::Flow;
use super::schedule::{self, Answer, Buckets, HopMap, HopTrace, Retry, HOP_RETRIES};
use crate::error::Result;

pub use super::config::Config;
pub use super::schedule::HopsMode;

/// What a run produced.
#[derive(Debug)]
pub struct Outcomes {
    pub source: IpAddr,
    pub flows: Vec<Flow>,
    pub probes_sent: usize,
    pub elapsed: Duration,
    /// Time spent in the classification phase.
    pub classify_elapsed: Duration,
    /// Ports skipped because a local socket held them.
    pub skipped_ports: Vec<u16>,
}

/// Run a probe in the current thread's network namespace.
pub fn run(cfg: Config) -> Result<Outcomes> {
    cfg.validate()?;
    let (mut net, setup) = net::open(&cfg)?;
    Ok(run_on(&mut net, cfg, setup))
}

/// Run a probe on `net`, for the flows of `setup`.
pub fn run_on<N: Network>(net: &mut N, cfg: Config, setup: Setup) -> Outcomes {
    let v6 = cfg.dst.is_ipv6();
    let Setup {
        started,
        source,
        sports,
        skipped,
        routes,
        seq_base,
        retry_seed,
    } = setup;
    let mut e = Engine {
        flow_of_port: sports.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
        sports,
        cfg,
        src: source,
        net,
        seq_base,
        retry_seed,
        counter: 0,
        sent: HashMap::new(),
        last_sent: HashMap::new(),
        records: HashMap::new(),
        answers: HashMap::new(),
        buckets: Buckets::default(),
        started,
    };
    let (attempts, classify_elapsed) = e.classify();
    let mut flows: Vec<Flow> = e
        .sports
        .iter()
        .enumerate()
        .map(|(i, sport)| {
            let route = routes.get(i).cloned().flatten();
            schedule::flow_from_attempts(*sport, &attempts[i], route, v6)
        })
        .collect();
    if e.cfg.hops != HopsMode::None {
        e.trace(&mut flows);
    }
    Outcomes {
        source: e.src,
        flows,
        probes_sent: e.counter as usize,
        elapsed: e.net.now().saturating_duration_since(e.started),
        classify_elapsed,
        skipped_ports: skipped,
    }
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    flow: usize,
    at: Instant,
}

/// Each flow's full-TTL attempts and their answers.
type Attempts = Vec<Vec<Option<Answer>>>;

struct Engine<'n, N: Network> {
    cfg: Config,
    src: IpAddr,
    net: &'n mut N,
    seq_base: u32,
    /// Shuffles the order of retries (see [`schedule::retry_order`]).
    retry_seed: u64,
    counter: u32,
    sent: HashMap<u32, Sent>,
    /// Each flow's most recent probe.
    last_sent: HashMap<usize, u32>,
    /// Record Route options echoed in TCP replies, by the seq of the probe they answer.
    records: HashMap<u32, Vec<Ipv4Addr>>,
    answers: HashMap<u32, Answer>,
    buckets: Buckets,
    flow_of_port: HashMap<u16, usize>,
    sports: Vec<u16>,
    started: Instant,
}

impl<N: Network> Engine<'_, N> {
    fn left(&self) -> Duration {
        self.cfg
            .max_time
            .saturating_sub(self.net.now().saturating_duration_since(self.started))
    }

    fn flow_label(&self, flow: usize) -> u32 {
        (u32::from(self.sports[flow]).wrapping_mul(2654435761) ^ self.seq_base) & 0xfffff
    }

    fn send_probe(&mut self, flow: usize, ttl: u8) -> u32 {
        self.send_probe_opt(flow, ttl, false)
    }

    /// Send a probe; with `record_route`, an IPv4 probe carrying the Record Route option.
    fn send_probe_opt(&mut self, flow: usize, ttl: u8, record_route: bool) -> u32 {
        self.counter = self.counter.wrapping_add(1);
        let seq = self.seq_base.wrapping_add(self.counter.wrapping_mul(0x101));
        let p = Probe {
            src: self.src,
            dst: self.cfg.dst,
            sport: self.sports[flow],
            dport: self.cfg.port,
            ttl,
            seq,
            ip_id: ((self.counter % 65535) + 1) as u16,
            flow_label: self.flow_label(flow),
        };
        let pkt = packet::build_syn(&p).and_then(|syn| {
            if record_route {
                packet::with_record_route(&syn)
            } else {
                Some(syn)
            }
        });
        if let Some(pkt) = pkt {
            // A failed send (ENOBUFS, EHOSTUNREACH) is a silent probe, reported as such.
            let _ = self.net.send(&pkt);
        }
        let at = self.net.now();
        self.sent.insert(seq, Sent { flow, at });
        seq
    }

    fn send_rst(&mut self, sport: u16, ack_seq: u32, flow: usize) {
        if let Some(pkt) = packet::build_rst(
            self.src,
            self.cfg.dst,
            sport,
            self.cfg.port,
            ack_seq,
            self.flow_label(flow),
        ) {
            let _ = self.net.send(&pkt);
        }
    }

    /// Read every pending reply without blocking.
    fn drain(&mut self) {
        for _ in 0..8192 {
            let Some(r) = self.net.recv() else {
                break;
            };
            if let Some(reply) = self.parse(&r) {
                self.accept(reply);
            }
        }
    }

    /// A received packet as a reply; IPv4 TCP replies' Record Route options are kept on the way.
    fn parse(&mut self, r: &Received) -> Option<Reply> {
        match (self.src, r.from) {
            (IpAddr::V4(_), _) => {
                let reply = packet::parse_v4(&r.data);
                if let (Some(reply), Channel::Tcp) = (&reply, r.channel) {
                    if let Some(rec) = packet::record_route(&r.data) {
                        self.records.entry(reply.key.seq).or_insert(rec);
                    }
                }
                reply
            }
            (IpAddr::V6(local), Some(IpAddr::V6(f))) => match r.channel {
                Channel::Icmp => packet::parse_v6_icmp(&r.data, f),
                Channel::Tcp => packet::parse_v6_tcp(&r.data, f, local),
            },
            _ => None,
        }
    }

    fn accept(&mut self, r: Reply) {
        let k = r.key;
        if k.src != self.src || k.dst != self.cfg.dst || k.dport != self.cfg.port {
            return;
        }
        let Some(&flow) = self.flow_of_port.get(&k.sport) else {
            return;
        };
        let tcp_reply = matches!(r.kind, ReplyKind::SynAck | ReplyKind::Rst | ReplyKind::Ack);
        let (seq, sent) = match self.sent.get(&k.seq).copied() {
            Some(s) if r.kind != ReplyKind::Ack => (k.seq, s),
            // A challenge ACK (or an answer to a probe whose seq we no longer know) proves the
            // destination answered this 5-tuple: credit the flow's latest probe.
            _ if tcp_reply && r.from == self.cfg.dst => match self.last_sent.get(&flow) {
                Some(&s) => match self.sent.get(&s) {
                    Some(x) => (s, *x),
                    None => return,
                },
                None => return,
            },
            _ => return,
        };
        if sent.flow != flow {
            return;
        }
        if let Some(id) = k.ip_id {
            let expect = (((k.seq.wrapping_sub(self.seq_base)) / 0x101) % 65535 + 1) as u16;
            if id != expect {
                return;
            }
        }
        let now = self.net.now();
        if matches!(
            r.kind,
            ReplyKind::TimeExceeded | ReplyKind::Unreachable { .. } | ReplyKind::TooBig { .. }
        ) {
            self.buckets.heard(r.from, now);
        }
        if matches!(r.kind, ReplyKind::SynAck | ReplyKind::Ack) {
            self.send_rst(k.sport, k.seq.wrapping_add(1), flow);
        }
        let kind = if r.kind == ReplyKind::Ack {
            ReplyKind::SynAck
        } else {
            r.kind
        };
        self.answers.entry(seq).or_insert(Answer {
            from: r.from,
            kind,
            rtt: now.saturating_duration_since(sent.at),
        });
    }

    /// Wait for replies until `done()` or `until`.
    fn pump(&mut self, until: Instant, done: &dyn Fn(&Self) -> bool) {
        for _ in 0..100_000 {
            self.drain();
            if done(self) || self.net.now() >= until {
                return;
            }
            self.net.wait(until);
        }
    }

    fn answered(&self, seqs: &[u32]) -> bool {
        seqs.iter().all(|s| self.answers.contains_key(s))
    }

    fn round_timeout(&self) -> Duration {
        let max_rtt = self.answers.values().map(|a| a.rtt).max();
        schedule::round_timeout(max_rtt, self.cfg.timeout)
    }

    /// Send one probe per item at `ttl` (or as each item says) and wait one round for the
    /// answers: until every one of them answered, or the round timeout (within the run's bound).
    fn round(&mut self, probes: &[(usize, u8)]) -> Vec<u32> {
        let seqs: Vec<u32> = probes
            .iter()
            .map(|(flow, ttl)| self.send_probe(*flow, *ttl))
            .collect();
        let until = self.net.now() + self.round_timeout().min(self.left());
        self.pump(until, &|e: &Self| e.answered(&seqs));
        seqs
    }

    /// Phase 1: full-TTL SYNs. Returns each flow's attempts and the time they took.
    fn classify(&mut self) -> (Attempts, Duration) {
        let n = self.sports.len();
        let mut out: Attempts = vec![Vec::new(); n];
        let start = self.net.now();
        for _attempt in 0..self.cfg.repeat.max(1) {
            let seqs: Vec<u32> = (0..n)
                .map(|f| self.send_probe(f, self.cfg.max_ttl))
                .collect();
            let until = self.net.now() + self.cfg.timeout;
            self.pump(until, &|e: &Self| e.answered(&seqs));
            // Silent flows while others got (rate-limited) ICMP errors: retry, paced.
            let icmp_from: BTreeSet<IpAddr> = seqs
                .iter()
                .filter_map(|s| self.answers.get(s))
                .filter(|a| matches!(a.kind, ReplyKind::Unreachable { .. }))
                .map(|a| a.from)
                .collect();
            let mut final_seq: Vec<u32> = seqs.clone();
            if !icmp_from.is_empty() {
                let v6 = self.cfg.dst.is_ipv6();
                let items: Vec<Retry> = (0..n)
                    .filter(|f| !self.answers.contains_key(&seqs[*f]))
                    .map(|f| Retry::new(f, self.cfg.max_ttl, icmp_from.clone(), v6))
                    .collect();
                for (i, s) in self.retry_batch(&items) {
                    final_seq[items[i].flow] = s;
                }
            }
            for f in 0..n {
                out[f].push(self.answers.get(&final_seq[f]).copied());
            }
        }
        (out, self.net.now().saturating_duration_since(start))
    }

    /// Retry silent probes, paced by the modelled ICMP token buckets of the routers expected to
    /// answer them: each wave sends as many probes as those routers hold tokens (in parallel
    /// across routers), waits one round, and tries the rest again, up to HOP_RETRIES times each,
    /// within the run's time bound. Returns, per item, the seq of the probe that was answered.
    fn retry_batch(&mut self, items: &[Retry]) -> HashMap<usize, u32> {
        let mut got = HashMap::new();
        let mut tries = vec![0u8; items.len()];
        for _wave in 0..(HOP_RETRIES as usize * items.len() + 8) {
            let pending = schedule::pending(&tries, &got);
            if pending.is_empty() {
                break;
            }
            let now = self.net.now();
            let wave = schedule::wave(items, &pending, &self.buckets, now);
            if wave.is_empty() {
                // Wait for the first expected responder to hold a token again.
                let ready = schedule::wave_ready(items, &pending, &self.buckets, now);
                if ready.saturating_duration_since(self.started) + self.round_timeout()
                    > self.cfg.max_time
                {
                    break;
                }
                self.pump(ready, &|_: &Self| false);
                continue;
            }
            if self.left() < self.round_timeout() {
                break;
            }
            for i in &wave {
                tries[*i] += 1;
            }
            let probes: Vec<(usize, u8)> = wave
                .iter()
                .map(|i| (items[*i].flow, items[*i].ttl))
                .collect();
            let seqs = self.round(&probes);
            let now = self.net.now();
            let heard: Vec<(usize, Option<IpAddr>)> = wave
                .iter()
                .zip(&seqs)
                .map(|(i, s)| (*i, self.answers.get(s).map(|a| a.from)))
                .collect();
            for (i, s) in wave.iter().zip(&seqs) {
                if self.answers.contains_key(s) {
                    got.insert(*i, *s);
                }
            }
            for r in schedule::drained_by(items, &heard) {
                self.buckets.drain(r, now);
            }
        }
        got
    }

    /// Retry `items` and record the answers in `hops`; returns how many answered.
    fn apply_retries(&mut self, items: &[Retry], hops: &mut HopMap) -> usize {
        let got: BTreeMap<usize, Answer> = self
            .retry_batch(items)
            .into_iter()
            .filter_map(|(k, s)| self.answers.get(&s).map(|a| (k, *a)))
            .collect();
        schedule::apply_answers(items, &got, hops);
        got.len()
    }

    /// IPv4: one full-TTL SYN with the Record Route option per reaching flow. Each router on the
    /// way writes its outgoing address and the destination echoes the option in its answer, so
    /// flows with the same record took the same routers (forward and back) without a single
    /// ICMP message. Returns the groups of [`schedule::record_groups`].
    fn record_routes(&mut self, flows: &mut [Flow]) -> Vec<Vec<usize>> {
        if self.cfg.dst.is_ipv6() {
            return Vec::new();
        }
        let reached: Vec<usize> = (0..flows.len())
            .filter(|i| flows[*i].outcome.reached())
            .collect();
        let seqs: Vec<(usize, u32)> = reached
            .iter()
            .map(|i| (*i, self.send_probe_opt(*i, self.cfg.max_ttl, true)))
            .collect();
        let all: Vec<u32> = seqs.iter().map(|x| x.1).collect();
        let until = self.net.now() + self.round_timeout().min(self.left());
        self.pump(until, &|e: &Self| {
            all.iter().all(|s| e.records.contains_key(s))
        });
        let records: Vec<(usize, Option<&Vec<Ipv4Addr>>)> = seqs
            .iter()
            .map(|(i, s)| (*i, self.records.get(s)))
            .collect();
        schedule::record_groups(flows, &records)
    }

    /// Phase 2: hop by hop.
    fn trace(&mut self, flows: &mut [Flow]) {
        let groups = if self.cfg.hops == HopsMode::Needed {
            self.record_routes(flows)
        } else {
            Vec::new()
        };
        let chosen = schedule::choose_traced(flows, &groups, self.cfg.hops);
        let dst = self.cfg.dst;
        let mut t = HopTrace::new(flows, chosen);
        for ttl in 1..=self.cfg.max_ttl {
            let active = t.active();
            if active.is_empty() || self.left().is_zero() {
                break;
            }
            let senders = t.senders(&active, ttl);
            let probes: Vec<(usize, u8)> = senders.iter().map(|i| (*i, ttl)).collect();
            let seqs = self.round(&probes);
            let got: BTreeMap<usize, Answer> = senders
                .iter()
                .zip(&seqs)
                .filter_map(|(i, s)| self.answers.get(s).map(|a| (*i, *a)))
                .collect();
            let now = self.net.now();
            for r in schedule::drained_after_ttl(&got, seqs.len(), dst) {
                self.buckets.drain(r, now);
            }
            t.record(flows, ttl, &active, &got, dst);
        }
        // Silent hops on paths that answer later (or whose siblings answered at that TTL):
        // rate limiting until proven otherwise. Retry them, paced.
        let v6 = dst.is_ipv6();
        let order = schedule::retry_order(&t.hops, self.retry_seed);
        let items = schedule::silent_hop_retries(&t.hops, &order, v6);
        self.apply_retries(&items, &mut t.hops);
        // A failing flow's first silent hop may be rate limiting too: retry it while other flows
        // with the same previous hop got an answer at that TTL, and follow on when it answers.
        for _ in 0..self.cfg.max_ttl {
            let items = schedule::frontier_retries(&t.hops, &order, flows, self.cfg.max_ttl, v6);
            if items.is_empty() || self.apply_retries(&items, &mut t.hops) == 0 {
                break;
            }
        }
        schedule::fill_hops(flows, &t.hops, &t.hop1_of, dst);
        // Flows that recorded the same route as a traced one share its hops.
        schedule::share_recorded_hops(flows, &groups);
    }
}
