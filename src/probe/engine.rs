//! The probe engine: raw sockets, scheduling and reply matching for `vmpath probe`.
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
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::packet::{self, Probe, Reply, ReplyKind};
use super::report::{Flow, Hop, Outcome};
use super::route::{LocalRoute, Router};
use crate::error::{Error, Result};

/// Which flows are traced hop by hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopsMode {
    /// Failing flows plus a few reaching ones.
    Needed,
    /// Every flow.
    All,
    /// None: classify only.
    None,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub dst: IpAddr,
    pub port: u16,
    /// Source ports, one flow each.
    pub sports: Vec<u16>,
    /// When false, ports that are in use locally are skipped (and replaced) instead of failing.
    pub explicit_sports: bool,
    pub max_ttl: u8,
    pub source: Option<IpAddr>,
    pub interface: Option<String>,
    pub repeat: u32,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Bound on the whole run (pacing for rate limits stops here).
    pub max_time: Duration,
    pub hops: HopsMode,
}

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

/// Burst and rate of a Linux router's ICMP limiter towards one destination.
const RL_BURST: f64 = 6.0;
const RL_RATE: f64 = 1.0;
/// Reaching flows traced in `needed` mode: within one ICMP burst per router.
const REPRESENTATIVES: usize = 5;
/// Consecutive silent hops after which a failing flow is not followed further.
const GAP: u8 = 3;
/// Retries of one silent hop.
const HOP_RETRIES: u8 = 6;

#[derive(Debug, Clone, Copy)]
struct Sent {
    flow: usize,
    at: Instant,
}

/// A silent probe to send again, and the routers expected to answer it.
struct Retry {
    flow: usize,
    ttl: u8,
    responders: BTreeSet<IpAddr>,
}

impl Retry {
    /// With no idea who will answer, pace as if one unknown router did (the unspecified
    /// address stands for it).
    fn new(flow: usize, ttl: u8, mut responders: BTreeSet<IpAddr>, v6: bool) -> Retry {
        if responders.is_empty() {
            responders.insert(if v6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            });
        }
        Retry {
            flow,
            ttl,
            responders,
        }
    }
}

/// Per traced flow: per TTL, the answer (and the seq of the probe it answered), or silence.
type HopMap = HashMap<usize, BTreeMap<u8, Option<(Answer, u32)>>>;

/// The highest TTL that answered (0: none).
fn last_answered(hm: &BTreeMap<u8, Option<(Answer, u32)>>) -> u8 {
    hm.iter()
        .filter(|(_, a)| a.is_some())
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(0)
}

/// Who answered `ttl` for the other flows that share flow `i`'s previous hop: the routers a
/// retry of (i, ttl) is expected to reach.
fn expected_responders(hops: &HopMap, i: usize, ttl: u8) -> BTreeSet<IpAddr> {
    let prev_of = |hm: &BTreeMap<u8, Option<(Answer, u32)>>| {
        hm.get(&ttl.saturating_sub(1))
            .copied()
            .flatten()
            .map(|(a, _)| a.from)
    };
    let Some(mine) = hops.get(&i) else {
        return BTreeSet::new();
    };
    let prev = prev_of(mine);
    hops.iter()
        .filter(|(j, other)| **j != i && (ttl == 1 || prev_of(other) == prev))
        .filter_map(|(_, other)| other.get(&ttl).copied().flatten().map(|(a, _)| a.from))
        .collect()
}

/// Each flow's full-TTL attempts and their answers.
type Attempts = Vec<Vec<Option<Answer>>>;

#[derive(Debug, Clone, Copy)]
struct Answer {
    from: IpAddr,
    kind: ReplyKind,
    rtt: Duration,
}

/// A router's ICMP token bucket as we model it from the replies we saw.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn level(&self, now: Instant) -> f64 {
        (self.tokens + now.duration_since(self.at).as_secs_f64() * RL_RATE).min(RL_BURST)
    }
    fn spend(&mut self, now: Instant) {
        self.tokens = self.level(now) - 1.0;
        self.at = now;
    }
    /// When it will next hold a whole token.
    fn ready_at(&self, now: Instant) -> Instant {
        let l = self.level(now);
        if l >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - l) / RL_RATE + 0.05)
        }
    }
}

struct Engine {
    cfg: Config,
    src: IpAddr,
    send: Socket,
    icmp: Socket,
    tcp: Socket,
    seq_base: u32,
    counter: u32,
    sent: HashMap<u32, Sent>,
    /// Each flow's most recent probe.
    last_sent: HashMap<usize, u32>,
    /// Record Route options echoed in TCP replies, by the seq of the probe they answer.
    records: HashMap<u32, Vec<std::net::Ipv4Addr>>,
    answers: HashMap<u32, Answer>,
    buckets: HashMap<IpAddr, Bucket>,
    flow_of_port: HashMap<u16, usize>,
    sports: Vec<u16>,
    started: Instant,
}

fn raw(domain: Domain, proto: i32) -> io::Result<Socket> {
    let s = Socket::new(domain, Type::RAW, Some(Protocol::from(proto)))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Run a probe in the current thread's network namespace.
pub fn run(cfg: Config) -> Result<Outcomes> {
    let started = Instant::now();
    let v6 = cfg.dst.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let src = match cfg.source {
        Some(s) => s,
        None => pick_source(&cfg)?,
    };
    if src.is_ipv6() != v6 {
        return Err(Error::usage(format!(
            "--source {src} is not the same address family as {}",
            cfg.dst
        )));
    }
    let need_raw = |e: io::Error| {
        if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::EACCES) {
            Error::privilege(format!(
                "cannot open a raw socket: {e}. vmpath probe needs CAP_NET_RAW: run it as root, or \
                 grant it once with `sudo setcap cap_net_raw,cap_net_admin+ep $(command -v vmpath)`"
            ))
        } else {
            Error::unknown(format!("cannot open a raw socket: {e}"))
        }
    };
    let send = raw(domain, libc::IPPROTO_RAW).map_err(need_raw)?;
    let icmp = raw(
        domain,
        if v6 {
            libc::IPPROTO_ICMPV6
        } else {
            libc::IPPROTO_ICMP
        },
    )
    .map_err(need_raw)?;
    let tcp = raw(domain, libc::IPPROTO_TCP).map_err(need_raw)?;
    if let Some(dev) = &cfg.interface {
        for s in [&send, &icmp, &tcp] {
            s.bind_device(Some(dev.as_bytes())).map_err(|e| {
                Error::unknown(format!(
                    "cannot bind to interface {dev}: {e} (check the name with `ip link`)"
                ))
            })?;
        }
    }
    // Reserve the source ports.
    let mut reserved = Vec::new();
    let mut sports = Vec::new();
    let mut skipped = Vec::new();
    let mut next_auto = cfg.sports.iter().copied().max().unwrap_or(33000);
    let mut queue: std::collections::VecDeque<u16> = cfg.sports.iter().copied().collect();
    let want = cfg.sports.len();
    let mut tries = 0;
    while sports.len() < want && tries < want + 1024 {
        tries += 1;
        let p = match queue.pop_front() {
            Some(p) => p,
            None if !cfg.explicit_sports && next_auto < u16::MAX => {
                next_auto += 1;
                next_auto
            }
            None => break,
        };
        match reserve(domain, src, p) {
            Ok(s) => {
                reserved.push(s);
                sports.push(p);
            }
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                if cfg.explicit_sports {
                    return Err(Error::unknown(format!(
                        "source port {p} is in use on this host: pick other ports with --sports"
                    )));
                }
                skipped.push(p);
            }
            Err(e) => {
                return Err(Error::unknown(format!(
                    "cannot reserve source port {p} on {src}: {e}"
                )))
            }
        }
    }
    if sports.len() < want {
        return Err(Error::unknown(format!(
            "could only reserve {} of {want} source ports",
            sports.len()
        )));
    }
    let seq_base = {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
            .unwrap_or(0x5eed_1234);
        t ^ std::process::id().rotate_left(8)
    };
    let mut e = Engine {
        flow_of_port: sports.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
        sports,
        cfg,
        src,
        send,
        icmp,
        tcp,
        seq_base,
        counter: 0,
        sent: HashMap::new(),
        last_sent: HashMap::new(),
        records: HashMap::new(),
        answers: HashMap::new(),
        buckets: HashMap::new(),
        started,
    };
    let routes = e.local_routes();
    let (attempts, classify_elapsed) = e.classify();
    let mut flows: Vec<Flow> = e
        .sports
        .iter()
        .enumerate()
        .map(|(i, sport)| flow_from_attempts(*sport, &attempts[i], routes[i].clone(), v6))
        .collect();
    if e.cfg.hops != HopsMode::None {
        e.trace(&mut flows);
    }
    drop(reserved);
    Ok(Outcomes {
        source: e.src,
        flows,
        probes_sent: e.counter as usize,
        elapsed: e.started.elapsed(),
        classify_elapsed,
        skipped_ports: skipped,
    })
}

fn reserve(domain: Domain, src: IpAddr, port: u16) -> io::Result<Socket> {
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    // A TIME-WAIT left by an earlier connection (a traceroute -T, say) does not hold the port
    // for our raw probes; a live socket without SO_REUSEADDR still does, and refuses the bind.
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(SocketAddr::new(src, port)))?;
    Ok(s)
}

/// The source address the kernel would use towards the destination.
fn pick_source(cfg: &Config) -> Result<IpAddr> {
    let domain = if cfg.dst.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| {
        Error::unknown(format!(
            "cannot open a UDP socket to pick a source address: {e}"
        ))
    })?;
    if let Some(dev) = &cfg.interface {
        s.bind_device(Some(dev.as_bytes())).map_err(|e| {
            Error::unknown(format!(
                "cannot bind to interface {dev}: {e} (check the name with `ip link`)"
            ))
        })?;
    }
    s.connect(&SockAddr::from(SocketAddr::new(cfg.dst, cfg.port)))
        .map_err(|e| {
            Error::unknown(format!(
                "no route to {} from this network namespace: {e} (check `ip route get {}`)",
                cfg.dst, cfg.dst
            ))
        })?;
    s.local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip())
        .ok_or_else(|| Error::unknown("cannot read the source address the kernel picked"))
}

fn flow_from_attempts(
    sport: u16,
    attempts: &[Option<Answer>],
    route: Option<LocalRoute>,
    v6: bool,
) -> Flow {
    let outcome_of = |a: &Option<Answer>| match a.map(|a| a.kind) {
        Some(ReplyKind::SynAck) => Outcome::Open,
        Some(ReplyKind::Rst) => Outcome::Closed,
        Some(ReplyKind::Unreachable { .. }) => Outcome::Unreachable,
        _ => Outcome::Silent,
    };
    let outs: Vec<Outcome> = attempts.iter().map(outcome_of).collect();
    // The flow's outcome: the most frequent one (ties: the better one).
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for o in &outs {
        *counts.entry(*o).or_default() += 1;
    }
    let outcome = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(o, _)| *o)
        .unwrap_or(Outcome::Silent);
    let best = attempts
        .iter()
        .flatten()
        .find(|a| outcome_of(&Some(**a)) == outcome);
    let code = best.and_then(|a| match a.kind {
        ReplyKind::Unreachable { code } => Some(code),
        _ => None,
    });
    Flow {
        sport,
        outcome,
        icmp_code: code,
        icmp_meaning: code.map(|c| packet::unreachable_name(v6, c)),
        reply_from: best.map(|a| a.from),
        rtt_ms: best.map(|a| a.rtt.as_secs_f64() * 1e3),
        consistent: counts.len() <= 1,
        attempts: outs,
        local_route: route,
        traced: false,
        hops: Vec::new(),
        last_responding_hop: None,
        recorded_route: None,
        hops_from: None,
    }
}

impl Engine {
    fn left(&self) -> Duration {
        self.cfg.max_time.saturating_sub(self.started.elapsed())
    }

    fn local_routes(&self) -> Vec<Option<LocalRoute>> {
        let Ok(mut r) = Router::open(Duration::from_millis(500)) else {
            return vec![None; self.sports.len()];
        };
        let oif = self
            .cfg
            .interface
            .as_deref()
            .and_then(crate::collect::iface::ifindex)
            .unwrap_or(0);
        self.sports
            .iter()
            .map(|p| {
                r.lookup(self.src, self.cfg.dst, *p, self.cfg.port, oif)
                    .ok()
            })
            .collect()
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
            let to = SockAddr::from(SocketAddr::new(self.cfg.dst, 0));
            // A failed send (ENOBUFS, EHOSTUNREACH) is a silent probe, reported as such.
            let _ = self.send.send_to(&pkt, &to);
        }
        self.sent.insert(
            seq,
            Sent {
                flow,
                at: Instant::now(),
            },
        );
        seq
    }

    fn send_rst(&self, sport: u16, ack_seq: u32, flow: usize) {
        if let Some(pkt) = packet::build_rst(
            self.src,
            self.cfg.dst,
            sport,
            self.cfg.port,
            ack_seq,
            self.flow_label(flow),
        ) {
            let to = SockAddr::from(SocketAddr::new(self.cfg.dst, 0));
            let _ = self.send.send_to(&pkt, &to);
        }
    }

    /// Read every pending reply without blocking.
    fn drain(&mut self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
        for sock_i in 0..2 {
            for _ in 0..4096 {
                let sock = if sock_i == 0 { &self.icmp } else { &self.tcp };
                let (n, from) = match sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(_) => break,
                };
                // SAFETY: recv_from initialised the first n bytes.
                let data: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
                let reply = match (self.src, from.as_socket().map(|a| a.ip())) {
                    (IpAddr::V4(_), _) => {
                        let r = packet::parse_v4(data);
                        if let (Some(r), 1) = (&r, sock_i) {
                            if let Some(rec) = packet::record_route(data) {
                                self.records.entry(r.key.seq).or_insert(rec);
                            }
                        }
                        r
                    }
                    (IpAddr::V6(local), Some(IpAddr::V6(f))) => {
                        if sock_i == 0 {
                            packet::parse_v6_icmp(data, f)
                        } else {
                            packet::parse_v6_tcp(data, f, local)
                        }
                    }
                    _ => None,
                };
                if let Some(r) = reply {
                    self.accept(r);
                }
            }
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
        let now = Instant::now();
        if matches!(
            r.kind,
            ReplyKind::TimeExceeded | ReplyKind::Unreachable { .. } | ReplyKind::TooBig { .. }
        ) {
            self.buckets
                .entry(r.from)
                .or_insert(Bucket {
                    tokens: RL_BURST,
                    at: now,
                })
                .spend(now);
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
            rtt: now.duration_since(sent.at),
        });
    }

    /// Wait for replies until `done()` or `until`.
    fn pump(&mut self, until: Instant, done: &dyn Fn(&Engine) -> bool) {
        let fds = [self.icmp.as_raw_fd(), self.tcp.as_raw_fd()];
        for _ in 0..100_000 {
            self.drain();
            if done(self) {
                return;
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            let ms = until.duration_since(now).as_millis().clamp(1, 1000) as i32;
            let mut p = [
                libc::pollfd {
                    fd: fds[0],
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: fds[1],
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: poll on two valid descriptors with a correctly sized array.
            unsafe {
                libc::poll(p.as_mut_ptr(), 2, ms);
            }
        }
    }

    fn answered(&self, seqs: &[u32]) -> bool {
        seqs.iter().all(|s| self.answers.contains_key(s))
    }

    /// Phase 1: full-TTL SYNs. Returns each flow's attempts.
    fn classify(&mut self) -> (Attempts, Duration) {
        let n = self.sports.len();
        let mut out: Attempts = vec![Vec::new(); n];
        let start = Instant::now();
        for _attempt in 0..self.cfg.repeat.max(1) {
            let seqs: Vec<u32> = (0..n)
                .map(|f| self.send_probe(f, self.cfg.max_ttl))
                .collect();
            let until = Instant::now() + self.cfg.timeout;
            self.pump(until, &|e: &Engine| e.answered(&seqs));
            // Silent flows while others got (rate-limited) ICMP errors: retry, paced.
            let icmp_from: BTreeSet<IpAddr> = seqs
                .iter()
                .filter_map(|s| self.answers.get(s))
                .filter(|a| matches!(a.kind, ReplyKind::Unreachable { .. }))
                .map(|a| a.from)
                .collect();
            let mut final_seq: Vec<u32> = seqs.clone();
            if !icmp_from.is_empty() {
                let items: Vec<Retry> = (0..n)
                    .filter(|f| !self.answers.contains_key(&seqs[*f]))
                    .map(|f| {
                        Retry::new(
                            f,
                            self.cfg.max_ttl,
                            icmp_from.clone(),
                            self.cfg.dst.is_ipv6(),
                        )
                    })
                    .collect();
                for (i, s) in self.retry_batch(&items) {
                    final_seq[items[i].flow] = s;
                }
            }
            for f in 0..n {
                out[f].push(self.answers.get(&final_seq[f]).copied());
            }
        }
        (out, start.elapsed())
    }

    /// Retry silent probes, paced by the modelled ICMP token buckets of the routers expected to
    /// answer them: each wave sends as many probes as those routers hold tokens (in parallel
    /// across routers), waits one round, and tries the rest again, up to HOP_RETRIES times each,
    /// within the run's time bound. Returns, per item, the seq of the probe that was answered.
    fn retry_batch(&mut self, items: &[Retry]) -> HashMap<usize, u32> {
        let mut got = HashMap::new();
        let mut tries = vec![0u8; items.len()];
        for _wave in 0..(HOP_RETRIES as usize * items.len() + 8) {
            let pending: Vec<usize> = (0..items.len())
                .filter(|i| !got.contains_key(i) && tries[*i] < HOP_RETRIES)
                .collect();
            if pending.is_empty() {
                break;
            }
            let now = Instant::now();
            // Tokens per responder, as modelled now; spend them tentatively on this wave.
            let mut level: HashMap<IpAddr, f64> = HashMap::new();
            for i in &pending {
                for r in &items[*i].responders {
                    let l = self
                        .buckets
                        .get(r)
                        .map(|b| b.level(now))
                        .unwrap_or(RL_BURST);
                    level.insert(*r, l);
                }
            }
            let mut wave = Vec::new();
            for i in pending.iter().copied() {
                let pick = items[i]
                    .responders
                    .iter()
                    .filter(|r| level.get(*r).copied().unwrap_or(RL_BURST) >= 1.0)
                    .max_by(|a, b| level[*a].total_cmp(&level[*b]))
                    .copied();
                if let Some(r) = pick {
                    if let Some(l) = level.get_mut(&r) {
                        *l -= 1.0;
                    }
                    wave.push(i);
                }
            }
            if wave.is_empty() {
                // Wait for the first expected responder to hold a token again.
                let ready = pending
                    .iter()
                    .flat_map(|i| items[*i].responders.iter())
                    .filter_map(|r| self.buckets.get(r))
                    .map(|b| b.ready_at(now))
                    .min()
                    .unwrap_or(now + Duration::from_millis(100));
                if ready.saturating_duration_since(self.started) + self.round_timeout()
                    > self.cfg.max_time
                {
                    break;
                }
                let nothing: &dyn Fn(&Engine) -> bool = &|_| false;
                self.pump(ready, nothing);
                continue;
            }
            if self.left() < self.round_timeout() {
                break;
            }
            let sent: Vec<(usize, u32)> = wave
                .iter()
                .map(|i| {
                    tries[*i] += 1;
                    (*i, self.send_probe(items[*i].flow, items[*i].ttl))
                })
                .collect();
            let seqs: Vec<u32> = sent.iter().map(|x| x.1).collect();
            let until = Instant::now() + self.round_timeout().min(self.left());
            self.pump(until, &|e: &Engine| e.answered(&seqs));
            let now = Instant::now();
            // Routers that answered in this wave spent their token on it; an unanswered probe
            // that could have met one of them did (and found it empty). When nothing answered,
            // every candidate is empty.
            let answered_by: BTreeSet<IpAddr> = sent
                .iter()
                .filter_map(|(_, s)| self.answers.get(s).map(|a| a.from))
                .collect();
            let mut drained: BTreeSet<IpAddr> = BTreeSet::new();
            for (i, s) in sent {
                if self.answers.contains_key(&s) {
                    got.insert(i, s);
                } else {
                    let hit: Vec<IpAddr> = items[i]
                        .responders
                        .intersection(&answered_by)
                        .copied()
                        .collect();
                    if hit.is_empty() {
                        drained.extend(items[i].responders.iter().copied());
                    } else {
                        drained.extend(hit);
                    }
                }
            }
            for r in drained {
                self.drain_bucket(r, now);
            }
        }
        got
    }

    /// Retry `items` and record the answers in `hops`; returns how many answered.
    fn apply_retries(&mut self, items: &[Retry], hops: &mut HopMap) -> usize {
        let got = self.retry_batch(items);
        let n = got.len();
        for (k, s) in got {
            let it = &items[k];
            let a = self.answers.get(&s).copied();
            if let Some(hm) = hops.get_mut(&it.flow) {
                hm.insert(it.ttl, a.map(|a| (a, s)));
            }
        }
        n
    }

    /// Record that a router's ICMP bucket is empty now.
    fn drain_bucket(&mut self, r: IpAddr, now: Instant) {
        self.buckets.insert(
            r,
            Bucket {
                tokens: 0.0,
                at: now,
            },
        );
    }

    fn round_timeout(&self) -> Duration {
        let max_rtt = self.answers.values().map(|a| a.rtt).max();
        match max_rtt {
            Some(r) => (r * 3 + Duration::from_millis(30)).min(self.cfg.timeout),
            None => self.cfg.timeout,
        }
    }

    /// IPv4: one full-TTL SYN with the Record Route option per reaching flow. Each router on the
    /// way writes its outgoing address and the destination echoes the option in its answer, so
    /// flows with the same record took the same routers (forward and back) without a single
    /// ICMP message. Returns groups of flows (indices) by identical non-empty record; flows whose
    /// option did not come back filled (stripped, or the answer lost) are in no group.
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
        let until = Instant::now() + self.round_timeout().min(self.left());
        self.pump(until, &|e: &Engine| {
            all.iter().all(|s| e.records.contains_key(s))
        });
        let mut groups: BTreeMap<Vec<std::net::Ipv4Addr>, Vec<usize>> = BTreeMap::new();
        for (i, s) in seqs {
            if let Some(rec) = self.records.get(&s).filter(|r| !r.is_empty()) {
                flows[i].recorded_route = Some(rec.iter().map(|a| IpAddr::V4(*a)).collect());
                groups.entry(rec.clone()).or_default().push(i);
            }
        }
        groups.into_values().collect()
    }

    /// Phase 2: hop by hop.
    fn trace(&mut self, flows: &mut [Flow]) {
        let n = flows.len();
        let groups = if self.cfg.hops == HopsMode::Needed {
            self.record_routes(flows)
        } else {
            Vec::new()
        };
        let mut chosen: Vec<usize> = (0..n)
            .filter(|i| flows[*i].failing() || !flows[*i].consistent)
            .collect();
        match self.cfg.hops {
            HopsMode::All => chosen = (0..n).collect(),
            HopsMode::Needed => {
                // IPv4: reaching flows that recorded the same route took the same routers;
                // trace one of each such group. The rest: a few, spread over the local next hops.
                for g in &groups {
                    if let Some(first) = g.first() {
                        chosen.push(*first);
                    }
                }
                let grouped: BTreeSet<usize> = groups.iter().flatten().copied().collect();
                let mut by_route: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for i in (0..n).filter(|i| !chosen.contains(i) && !grouped.contains(i)) {
                    let k = flows[i]
                        .local_route
                        .as_ref()
                        .map(|r| format!("{:?}{}", r.gateway, r.oif))
                        .unwrap_or_default();
                    by_route.entry(k).or_default().push(i);
                }
                let mut extra = Vec::new();
                for round in 0..REPRESENTATIVES {
                    for v in by_route.values() {
                        if let Some(i) = v.get(round) {
                            if extra.len() < REPRESENTATIVES {
                                extra.push(*i);
                            }
                        }
                    }
                }
                chosen.extend(extra);
                chosen.sort_unstable();
                chosen.dedup();
            }
            HopsMode::None => return,
        }
        // Hop 1 once per local next hop.
        let mut hop1_rep: HashMap<String, usize> = HashMap::new();
        let mut hop1_of: HashMap<usize, usize> = HashMap::new();
        for &i in &chosen {
            if let Some(r) = &flows[i].local_route {
                let k = format!("{:?}{}", r.gateway, r.oif);
                let rep = *hop1_rep.entry(k).or_insert(i);
                hop1_of.insert(i, rep);
            }
        }
        let dst = self.cfg.dst;
        let mut hops: HopMap = HashMap::new();
        let mut done: BTreeSet<usize> = BTreeSet::new();
        let mut silent_run: HashMap<usize, u8> = HashMap::new();
        for ttl in 1..=self.cfg.max_ttl {
            let active: Vec<usize> = chosen
                .iter()
                .copied()
                .filter(|i| !done.contains(i))
                .collect();
            if active.is_empty() || self.left().is_zero() {
                break;
            }
            let mut seqs: Vec<(usize, u32)> = Vec::new();
            for &i in &active {
                if ttl == 1 && hop1_of.get(&i).is_some_and(|rep| *rep != i) {
                    continue;
                }
                seqs.push((i, self.send_probe(i, ttl)));
            }
            let all: Vec<u32> = seqs.iter().map(|s| s.1).collect();
            let until = Instant::now() + self.round_timeout().min(self.left());
            self.pump(until, &|e: &Engine| e.answered(&all));
            let got: HashMap<usize, (Answer, u32)> = seqs
                .iter()
                .filter_map(|(i, s)| self.answers.get(s).map(|a| (*i, (*a, *s))))
                .collect();
            // Some probes of this TTL answered and some did not: the answering routers' buckets
            // are what ran out (the usual case), so model them as drained.
            if !got.is_empty() && got.len() < seqs.len() {
                let now = Instant::now();
                let rs: BTreeSet<IpAddr> = got
                    .values()
                    .map(|(a, _)| a.from)
                    .filter(|a| *a != dst)
                    .collect();
                for r in rs {
                    self.drain_bucket(r, now);
                }
            }
            for &i in &active {
                let a = if ttl == 1 {
                    hop1_of
                        .get(&i)
                        .and_then(|rep| got.get(rep))
                        .copied()
                        .or_else(|| got.get(&i).copied())
                } else {
                    got.get(&i).copied()
                };
                hops.entry(i).or_default().insert(ttl, a);
                match a {
                    Some((ans, _)) => {
                        silent_run.insert(i, 0);
                        if ans.from == dst || !matches!(ans.kind, ReplyKind::TimeExceeded) {
                            done.insert(i);
                        }
                    }
                    None => {
                        let r = silent_run.entry(i).or_insert(0);
                        *r += 1;
                        if flows[i].failing() && *r >= GAP {
                            done.insert(i);
                        }
                    }
                }
            }
        }
        // Silent hops on paths that answer later (or whose siblings answered at that TTL):
        // rate limiting until proven otherwise. Retry them, paced.
        let v6 = self.cfg.dst.is_ipv6();
        let mut items: Vec<Retry> = Vec::new();
        for (&i, hm) in &hops {
            let last = last_answered(hm);
            for (&ttl, _) in hm.iter().filter(|(t, a)| a.is_none() && **t < last) {
                items.push(Retry::new(i, ttl, expected_responders(&hops, i, ttl), v6));
            }
        }
        self.apply_retries(&items, &mut hops);
        // A failing flow's first silent hop may be rate limiting too: retry it while other flows
        // with the same previous hop got an answer at that TTL, and follow on when it answers.
        for _ in 0..self.cfg.max_ttl {
            let mut items = Vec::new();
            for (&i, hm) in &hops {
                if !flows[i].failing() {
                    continue;
                }
                let ttl = last_answered(hm).saturating_add(1);
                if ttl > self.cfg.max_ttl || hm.get(&ttl).is_some_and(|a| a.is_some()) {
                    continue;
                }
                let responders = expected_responders(&hops, i, ttl);
                if !responders.is_empty() {
                    items.push(Retry::new(i, ttl, responders, v6));
                }
            }
            if items.is_empty() || self.apply_retries(&items, &mut hops) == 0 {
                break;
            }
        }
        for (i, hm) in hops {
            let f = &mut flows[i];
            f.traced = true;
            let last_answer = hm
                .iter()
                .filter(|(_, a)| a.is_some())
                .map(|(t, _)| *t)
                .max()
                .unwrap_or(0);
            f.hops = hm
                .iter()
                .map(|(ttl, a)| {
                    let inferred = *ttl == 1 && hop1_of.get(&i).is_some_and(|rep| *rep != i);
                    let note = match a {
                        Some((ans, _)) if ans.from == dst => Some("destination"),
                        Some(_) if inferred => Some("inferred"),
                        Some(_) => None,
                        None if *ttl < last_answer => Some("rate-limited"),
                        None => None,
                    };
                    Hop {
                        ttl: *ttl,
                        address: a.map(|(ans, _)| ans.from),
                        rtt_ms: if inferred {
                            None
                        } else {
                            a.map(|(ans, _)| ans.rtt.as_secs_f64() * 1e3)
                        },
                        note,
                    }
                })
                .collect();
            if f.failing() {
                f.last_responding_hop = f.hops.iter().rev().find(|h| h.address.is_some()).cloned();
            }
        }
        // Flows that recorded the same route as a traced one share its hops.
        for g in &groups {
            let Some(&rep) = g.iter().find(|i| flows[**i].traced) else {
                continue;
            };
            let (rep_sport, rep_hops) = (flows[rep].sport, flows[rep].hops.clone());
            let members: Vec<usize> = g
                .iter()
                .copied()
                .filter(|m| *m != rep && !flows[*m].traced)
                .collect();
            for m in members {
                let f = &mut flows[m];
                f.traced = true;
                f.hops_from = Some(rep_sport);
                f.hops = rep_hops
                    .iter()
                    .map(|h| Hop {
                        ttl: h.ttl,
                        address: h.address,
                        rtt_ms: None,
                        note: Some("recorded-route"),
                    })
                    .collect();
            }
        }
    }
}
