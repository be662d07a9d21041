//! A fake [`Network`] for the engine's tests: a modelled path of Linux routers (ECMP by
//! 5-tuple, each with the kernel's ICMP limiter towards our address: a burst of 6, then 1 a
//! second) on virtual time, answering the probes it is sent with the real replies captured in
//! `tests/fixtures/probe/` (time exceeded, SYN-ACK, RST, admin-prohibited unreachable), their
//! addresses, ports, sequence numbers and quotes patched to answer each probe, checksums
//! recomputed. A SYN-ACK answering a Record Route probe echoes the option, filled in.
//!
//! Every link takes [`LINK`] each way, so the router at hop `k` answers after `2k` links.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::fixtures::get;
use super::net::{Channel, Network, Received, Setup};
use super::packet;
use super::route::LocalRoute;

/// One link's latency, each way.
pub const LINK: Duration = Duration::from_micros(500);

/// What the destination does with a SYN to the probed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// SYN-ACK.
    Open,
    /// RST.
    Closed,
    /// ICMP administratively prohibited (rate limited like a router's errors).
    Rejected,
}

/// Linux's ICMP limiter towards one destination: 6 tokens, 1 more a second, full at first.
#[derive(Debug, Clone)]
struct Limiter {
    tokens: f64,
    at: Duration,
}

impl Limiter {
    fn new() -> Limiter {
        Limiter {
            tokens: 6.0,
            at: Duration::ZERO,
        }
    }
    fn allow(&mut self, now: Duration) -> bool {
        self.tokens = (self.tokens + now.saturating_sub(self.at).as_secs_f64()).min(6.0);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One router.
#[derive(Debug, Clone)]
pub struct Router {
    pub addr: IpAddr,
    /// Its next hops towards the destination (indices into [`Lab::routers`]); none: the
    /// destination is next.
    pub next: Vec<usize>,
    /// Sends ICMP errors at all.
    pub icmp: bool,
    /// Forwards traffic. `false`: a blackhole that still answers TTL expiry (a forward-chain
    /// drop: Linux checks the TTL first).
    pub forwards: bool,
    limiter: Limiter,
}

impl Router {
    pub fn new(addr: &str, next: &[usize]) -> Router {
        Router {
            addr: addr.parse().expect("router address"),
            next: next.to_vec(),
            icmp: true,
            forwards: true,
            limiter: Limiter::new(),
        }
    }
}

/// The modelled path from our host to the destination.
#[derive(Debug, Clone)]
pub struct Lab {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub port: u16,
    pub dst_port: Port,
    /// Our host's next hops (indices into `routers`), chosen per flow like the routers' ECMP.
    pub first: Vec<usize>,
    pub routers: Vec<Router>,
    dst_limiter: Limiter,
}

impl Lab {
    pub fn new(src: &str, dst: &str, first: &[usize], routers: Vec<Router>) -> Lab {
        Lab {
            src: src.parse().expect("source"),
            dst: dst.parse().expect("destination"),
            port: 8080,
            dst_port: Port::Open,
            first: first.to_vec(),
            routers,
            dst_limiter: Limiter::new(),
        }
    }

    /// The routers (indices) a flow from `sport` meets, in order.
    pub fn path(&self, sport: u16) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = self.first[ecmp(sport, usize::MAX, self.first.len())];
        while out.len() < 64 {
            out.push(at);
            let next = &self.routers[at].next;
            if next.is_empty() {
                break;
            }
            at = next[ecmp(sport, at, next.len())];
        }
        out
    }

    /// The address of the router a flow meets at `hop` (1: the first).
    pub fn hop(&self, sport: u16, hop: usize) -> Option<IpAddr> {
        let p = self.path(sport);
        hop.checked_sub(1)
            .and_then(|k| p.get(k))
            .map(|r| self.routers[*r].addr)
    }

    /// A run's setup on this lab: our address, the ports, and the local route of each flow (its
    /// first router as the gateway, one interface per first router).
    pub fn setup(&self, base: Instant, sports: &[u16]) -> Setup {
        let routes = sports
            .iter()
            .map(|s| {
                let first = self.path(*s)[0];
                let k = self.first.iter().position(|f| *f == first).unwrap_or(0);
                Some(LocalRoute {
                    gateway: Some(self.routers[first].addr),
                    dev: format!("eth{k}"),
                    oif: 2 + k as u32,
                    prefsrc: None,
                })
            })
            .collect();
        Setup {
            started: base,
            source: self.src,
            sports: sports.to_vec(),
            skipped: Vec::new(),
            routes,
            seq_base: 0x1000_0000,
            retry_seed: 1,
        }
    }
}

/// ECMP: a hash of the flow's 5-tuple (only its source port varies here) and the router.
fn ecmp(sport: u16, router: usize, n: usize) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in sport
        .to_be_bytes()
        .into_iter()
        .chain((router as u32).to_be_bytes())
    {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as usize % n.max(1)
}

/// What a packet we were sent was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Syn,
    /// A SYN with the Record Route option.
    RecordRoute,
    Rst,
}

/// One packet the engine sent, at a virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub at: Duration,
    pub kind: Kind,
    pub sport: u16,
    pub ttl: u8,
    pub seq: u32,
}

/// The fake network: the lab, a virtual clock, the replies on their way, and what was sent.
pub struct FakeNet {
    pub lab: Lab,
    base: Instant,
    now: Duration,
    queue: BTreeMap<(Duration, u64), Received>,
    n: u64,
    pub sent: Vec<Sent>,
}

impl FakeNet {
    pub fn new(lab: Lab) -> FakeNet {
        FakeNet {
            lab,
            base: Instant::now(),
            now: Duration::ZERO,
            queue: BTreeMap::new(),
            n: 0,
            sent: Vec::new(),
        }
    }

    /// Virtual time zero.
    pub fn base(&self) -> Instant {
        self.base
    }

    fn deliver(&mut self, after: Duration, r: Received) {
        self.n += 1;
        self.queue.insert((self.now + after, self.n), r);
    }

    /// A probe on its way: the router where its TTL runs out answers (when its limiter lets
    /// it), a blackhole drops it, or the destination answers.
    fn forward(&mut self, pkt: &[u8], s: Sent) {
        let path = self.lab.path(s.sport);
        for (k, r) in path.iter().enumerate() {
            let hop = k as u32 + 1;
            let arrival = self.now + LINK * hop;
            let router = &mut self.lab.routers[*r];
            if u32::from(s.ttl) == hop {
                if router.icmp && router.limiter.allow(arrival) {
                    let from = router.addr;
                    let reply = icmp_error(self.lab.src, from, pkt, IcmpKind::TimeExceeded);
                    self.deliver(LINK * 2 * hop, reply);
                }
                return;
            }
            if !router.forwards {
                return;
            }
        }
        let hop = path.len() as u32 + 1;
        let back = LINK * 2 * hop;
        let (src, dst) = (self.lab.src, self.lab.dst);
        let ends = (src, dst, self.lab.port);
        match self.lab.dst_port {
            Port::Open => {
                let mut record: Vec<IpAddr> =
                    path.iter().map(|r| self.lab.routers[*r].addr).collect();
                record.push(dst);
                record.extend(path.iter().rev().map(|r| self.lab.routers[*r].addr));
                let rr = (s.kind == Kind::RecordRoute).then_some(record.as_slice());
                self.deliver(back, tcp_reply(ends, s, "synack", rr));
            }
            Port::Closed => self.deliver(back, tcp_reply(ends, s, "rst", None)),
            Port::Rejected => {
                if self.lab.dst_limiter.allow(self.now + LINK * hop) {
                    self.deliver(back, icmp_error(src, dst, pkt, IcmpKind::Prohibited));
                }
            }
        }
    }
}

impl Network for FakeNet {
    fn now(&self) -> Instant {
        self.base + self.now
    }

    fn send(&mut self, pkt: &[u8]) -> std::io::Result<()> {
        let s = read_sent(pkt, self.now).expect("the engine sends SYNs and RSTs");
        self.sent.push(s);
        if s.kind != Kind::Rst {
            self.forward(pkt, s);
        }
        Ok(())
    }

    fn recv(&mut self) -> Option<Received> {
        let first = *self.queue.keys().next()?;
        if first.0 > self.now {
            return None;
        }
        self.queue.remove(&first)
    }

    fn wait(&mut self, until: Instant) {
        let until = until.saturating_duration_since(self.base);
        let next = self.queue.keys().next().map_or(until, |k| k.0.min(until));
        self.now = self.now.max(next);
    }
}

/// The fields of a packet the engine sent.
fn read_sent(pkt: &[u8], at: Duration) -> Option<Sent> {
    let (ttl, tcp, options) = match pkt.first()? >> 4 {
        4 => {
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            (*pkt.get(8)?, pkt.get(ihl..)?, ihl > 20)
        }
        _ => (*pkt.get(7)?, pkt.get(40..)?, false),
    };
    let flags = *tcp.get(13)?;
    let kind = match (flags & 0x04 != 0, options) {
        (true, _) => Kind::Rst,
        (false, true) => Kind::RecordRoute,
        (false, false) => Kind::Syn,
    };
    Some(Sent {
        at,
        kind,
        sport: u16::from_be_bytes([tcp[0], tcp[1]]),
        ttl,
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
    })
}

#[derive(Debug, Clone, Copy)]
enum IcmpKind {
    TimeExceeded,
    Prohibited,
}

/// The ones' complement sum of the parts (each of even length but the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut s: u32 = 0;
    for p in parts {
        for c in p.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        }
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The IPv4 header checksum, recomputed.
fn fix_ipv4(b: &mut [u8]) {
    let ihl = usize::from(b[0] & 0x0f) * 4;
    put16(b, 10, 0);
    let sum = checksum(&[&b[..ihl]]);
    put16(b, 10, sum);
}

/// An ICMP error from `from` to us quoting the probe `pkt` as it arrived (TTL 1), built on the
/// captured reply of that kind (outer header and ICMP header kept, quote replaced).
fn icmp_error(us: IpAddr, from: IpAddr, pkt: &[u8], kind: IcmpKind) -> Received {
    let v6 = us.is_ipv6();
    let name = match (v6, kind) {
        (false, IcmpKind::TimeExceeded) => "v4-time-exceeded",
        (false, IcmpKind::Prohibited) => "v4-unreach-admin",
        (true, IcmpKind::TimeExceeded) => "v6-time-exceeded",
        (true, IcmpKind::Prohibited) => "v6-unreach-admin",
    };
    let t = get(name);
    let mut quote = pkt.to_vec();
    let head = if v6 { 40 } else { usize::from(t[0] & 0x0f) * 4 };
    let mut out = t[..head + 8].to_vec();
    if v6 {
        quote[7] = 1;
        out[8..24].copy_from_slice(&octets(from));
        out[24..40].copy_from_slice(&octets(us));
        out.extend_from_slice(&quote);
        let len = (out.len() - 40) as u16;
        put16(&mut out, 4, len);
        put16(&mut out, 42, 0);
        let pseudo = [&out[8..40], &[0, 0], &len.to_be_bytes(), &[0, 0, 0, 58]].concat();
        let sum = checksum(&[&pseudo, &out[40..]]);
        put16(&mut out, 42, sum);
        return Received {
            channel: Channel::Icmp,
            from: Some(from),
            data: out[40..].to_vec(),
        };
    }
    quote[8] = 1;
    fix_ipv4(&mut quote);
    out[12..16].copy_from_slice(&octets(from));
    out[16..20].copy_from_slice(&octets(us));
    out.extend_from_slice(&quote);
    let len = out.len() as u16;
    put16(&mut out, 2, len);
    fix_ipv4(&mut out);
    put16(&mut out, head + 2, 0);
    let sum = checksum(&[&out[head..]]);
    put16(&mut out, head + 2, sum);
    Received {
        channel: Channel::Icmp,
        from: Some(from),
        data: out,
    }
}

/// The destination's TCP answer from `port` to the probe `s` (`what`: "synack" or "rst"), built
/// on the captured one: addresses, ports and acknowledgement patched, checksums recomputed.
/// `record`: the Record Route option to echo, filled with these addresses (at most 9).
fn tcp_reply(
    (us, dst, port): (IpAddr, IpAddr, u16),
    s: Sent,
    what: &str,
    record: Option<&[IpAddr]>,
) -> Received {
    let v6 = us.is_ipv6();
    let mut out = get(&format!("{}-{what}", if v6 { "v6" } else { "v4" }));
    let (head, alen, sa) = if v6 { (40, 16, 8) } else { (20, 4, 12) };
    out[sa..sa + alen].copy_from_slice(&octets(dst));
    out[sa + alen..sa + 2 * alen].copy_from_slice(&octets(us));
    put16(&mut out, head, port);
    put16(&mut out, head + 2, s.sport);
    out[head + 8..head + 12].copy_from_slice(&s.seq.wrapping_add(1).to_be_bytes());
    put16(&mut out, head + 16, 0);
    let len = (out.len() - head) as u16;
    let pseudo = [
        &out[sa..sa + 2 * alen],
        &[0, 0],
        &len.to_be_bytes(),
        &[0, 0, 0, 6],
    ]
    .concat();
    let sum = checksum(&[&pseudo, &out[head..]]);
    put16(&mut out, head + 16, sum);
    if v6 {
        return Received {
            channel: Channel::Tcp,
            from: Some(dst),
            data: out[40..].to_vec(),
        };
    }
    fix_ipv4(&mut out);
    if let Some(rec) = record {
        out = packet::with_record_route(&out).expect("room for the option");
        let filled: Vec<u8> = rec.iter().take(9).flat_map(|a| octets(*a)).collect();
        out[22] = 4 + filled.len() as u8;
        out[23..23 + filled.len()].copy_from_slice(&filled);
        fix_ipv4(&mut out);
    }
    Received {
        channel: Channel::Tcp,
        from: Some(dst),
        data: out,
    }
}
