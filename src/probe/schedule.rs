//! The probe's schedule, pure: no socket and no clock of its own (every `now` is the caller's).
//!
//! * [`Buckets`]: the routers' ICMP token buckets as modelled from the replies seen. A Linux
//!   router answers about 6 ICMP errors at once to one destination, then about 1 a second.
//! * [`Retry`], [`wave`], [`wave_ready`], [`drained_by`]: silent probes sent again, wave after
//!   wave, only as fast as the routers expected to answer them hold tokens.
//! * [`flow_from_attempts`]: a flow's outcome from its full-TTL attempts.
//! * [`choose_traced`], [`HopTrace`], [`fill_hops`], [`share_recorded_hops`]: which flows are
//!   traced hop by hop, hop 1 once per local next hop, when a flow stops, and the hop maps
//!   turned into [`Hop`] rows with their notes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::packet::{self, ReplyKind};
use super::report::{Flow, Hop, Outcome};
use super::route::LocalRoute;

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

/// Burst and rate of a Linux router's ICMP limiter towards one destination.
pub const RL_BURST: f64 = 6.0;
pub const RL_RATE: f64 = 1.0;
/// Reaching flows traced in `needed` mode: within one ICMP burst per router.
pub const REPRESENTATIVES: usize = 5;
/// Consecutive silent hops after which a failing flow is not followed further.
pub const GAP: u8 = 3;
/// Retries of one silent hop.
pub const HOP_RETRIES: u8 = 6;

/// A reply matched to one of our probes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    pub from: IpAddr,
    pub kind: ReplyKind,
    pub rtt: Duration,
}

/// Per traced flow (by index): per TTL, the answer, or silence.
pub type HopMap = BTreeMap<usize, BTreeMap<u8, Option<Answer>>>;

/// How long to wait for one round of probes: three times the slowest answer seen so far (plus
/// 30 ms), never more than the configured timeout.
pub fn round_timeout(max_rtt: Option<Duration>, timeout: Duration) -> Duration {
    match max_rtt {
        Some(r) => (r * 3 + Duration::from_millis(30)).min(timeout),
        None => timeout,
    }
}

/// A router's ICMP token bucket as we model it from the replies we saw.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn level(&self, now: Instant) -> f64 {
        (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * RL_RATE).min(RL_BURST)
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

/// The modelled ICMP buckets of every router heard from. A router never heard from is full.
#[derive(Debug, Default)]
pub struct Buckets(HashMap<IpAddr, Bucket>);

impl Buckets {
    /// `r` sent us an ICMP error now: it spent a token (a router first heard now was full).
    pub fn heard(&mut self, r: IpAddr, now: Instant) {
        self.0
            .entry(r)
            .or_insert(Bucket {
                tokens: RL_BURST,
                at: now,
            })
            .spend(now);
    }

    /// `r`'s bucket is empty now.
    pub fn drain(&mut self, r: IpAddr, now: Instant) {
        self.0.insert(
            r,
            Bucket {
                tokens: 0.0,
                at: now,
            },
        );
    }

    /// The tokens `r` holds now.
    pub fn level(&self, r: &IpAddr, now: Instant) -> f64 {
        self.0.get(r).map(|b| b.level(now)).unwrap_or(RL_BURST)
    }

    /// When `r` next holds a whole token; `None` for a router never heard from.
    fn ready_at(&self, r: &IpAddr, now: Instant) -> Option<Instant> {
        self.0.get(r).map(|b| b.ready_at(now))
    }
}

/// A silent probe to send again, and the routers expected to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub flow: usize,
    pub ttl: u8,
    pub responders: BTreeSet<IpAddr>,
}

impl Retry {
    /// With no idea who will answer, pace as if one unknown router did (the unspecified
    /// address stands for it).
    pub fn new(flow: usize, ttl: u8, mut responders: BTreeSet<IpAddr>, v6: bool) -> Retry {
        if responders.is_empty() {
            responders.insert(if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
        }
        Retry {
            flow,
            ttl,
            responders,
        }
    }
}

/// The items of a retry batch still to send: not answered, and tried fewer than
/// [`HOP_RETRIES`] times.
pub fn pending<T>(tries: &[u8], answered: &HashMap<usize, T>) -> Vec<usize> {
    (0..tries.len())
        .filter(|i| !answered.contains_key(i) && tries[*i] < HOP_RETRIES)
        .collect()
}

/// The next wave of a retry batch: the `pending` items one of whose expected responders holds a
/// token now. Each item spends one, tentatively, from the fullest of its responders, so a wave
/// sends as many probes as those routers hold tokens, in parallel across routers.
pub fn wave(items: &[Retry], pending: &[usize], buckets: &Buckets, now: Instant) -> Vec<usize> {
    let mut level: HashMap<IpAddr, f64> = HashMap::new();
    for i in pending {
        for r in &items[*i].responders {
            level.insert(*r, buckets.level(r, now));
        }
    }
    let of = |level: &HashMap<IpAddr, f64>, r: &IpAddr| level.get(r).copied().unwrap_or(RL_BURST);
    let mut out = Vec::new();
    for i in pending.iter().copied() {
        let pick = items[i]
            .responders
            .iter()
            .filter(|r| of(&level, r) >= 1.0)
            .max_by(|a, b| of(&level, a).total_cmp(&of(&level, b)))
            .copied();
        if let Some(r) = pick {
            if let Some(l) = level.get_mut(&r) {
                *l -= 1.0;
            }
            out.push(i);
        }
    }
    out
}

/// After an empty wave: when the first expected responder of a pending item holds a token
/// again (100 ms from now when none of them is modelled).
pub fn wave_ready(items: &[Retry], pending: &[usize], buckets: &Buckets, now: Instant) -> Instant {
    pending
        .iter()
        .flat_map(|i| items[*i].responders.iter())
        .filter_map(|r| buckets.ready_at(r, now))
        .min()
        .unwrap_or(now + Duration::from_millis(100))
}

/// The routers a wave left empty, from what it sent: per item, who answered it (`None`:
/// silent). Routers that answered spent their token on the wave; an unanswered probe that could
/// have met one of them did (and found it empty). When it could have met none of them, every
/// router it expected is empty.
pub fn drained_by(items: &[Retry], sent: &[(usize, Option<IpAddr>)]) -> BTreeSet<IpAddr> {
    let answered_by: BTreeSet<IpAddr> = sent.iter().filter_map(|(_, a)| *a).collect();
    let mut drained = BTreeSet::new();
    for (i, _) in sent.iter().filter(|(_, a)| a.is_none()) {
        let hit: Vec<IpAddr> = items[*i]
            .responders
            .intersection(&answered_by)
            .copied()
            .collect();
        if hit.is_empty() {
            drained.extend(items[*i].responders.iter().copied());
        } else {
            drained.extend(hit);
        }
    }
    drained
}

/// The highest TTL that answered (0: none).
pub fn last_answered(hm: &BTreeMap<u8, Option<Answer>>) -> u8 {
    hm.iter()
        .filter(|(_, a)| a.is_some())
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(0)
}

/// Who answered `ttl` for the other flows that share flow `i`'s previous hop: the routers a
/// retry of (i, ttl) is expected to reach.
pub fn expected_responders(hops: &HopMap, i: usize, ttl: u8) -> BTreeSet<IpAddr> {
    let prev_of = |hm: &BTreeMap<u8, Option<Answer>>| {
        hm.get(&ttl.saturating_sub(1))
            .copied()
            .flatten()
            .map(|a| a.from)
    };
    let Some(mine) = hops.get(&i) else {
        return BTreeSet::new();
    };
    let prev = prev_of(mine);
    hops.iter()
        .filter(|(j, other)| **j != i && (ttl == 1 || prev_of(other) == prev))
        .filter_map(|(_, other)| other.get(&ttl).copied().flatten().map(|a| a.from))
        .collect()
}

/// The traced flows in the order their retries go: shuffled by the run's `seed`. Retries take
/// the tokens of a wave in order, and a silent flow's expected responders are often every router
/// its siblings met (it is not known which one it goes through): in flow order, the flows of one
/// path can crowd the head of every wave while another router's tokens go unused.
pub fn retry_order(hops: &HopMap, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = hops.keys().copied().collect();
    let mut x = seed;
    // splitmix64
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..order.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Silent hops on paths that answer later: rate limiting until proven otherwise. One retry for
/// each (flows in `order`), expecting whoever answered that TTL for the flows with the same
/// previous hop.
pub fn silent_hop_retries(hops: &HopMap, order: &[usize], v6: bool) -> Vec<Retry> {
    let mut items = Vec::new();
    for (i, hm) in order.iter().filter_map(|i| Some((*i, hops.get(i)?))) {
        let last = last_answered(hm);
        for (&ttl, _) in hm.iter().filter(|(t, a)| a.is_none() && **t < last) {
            items.push(Retry::new(i, ttl, expected_responders(hops, i, ttl), v6));
        }
    }
    items
}

/// A failing flow's first silent hop may be rate limiting too: retry it (flows in `order`) while
/// other flows with the same previous hop got an answer at that TTL.
pub fn frontier_retries(
    hops: &HopMap,
    order: &[usize],
    flows: &[Flow],
    max_ttl: u8,
    v6: bool,
) -> Vec<Retry> {
    let mut items = Vec::new();
    for (i, hm) in order.iter().filter_map(|i| Some((*i, hops.get(i)?))) {
        if !flows.get(i).is_some_and(Flow::failing) {
            continue;
        }
        let ttl = last_answered(hm).saturating_add(1);
        if ttl > max_ttl || hm.get(&ttl).is_some_and(|a| a.is_some()) {
            continue;
        }
        let responders = expected_responders(hops, i, ttl);
        if !responders.is_empty() {
            items.push(Retry::new(i, ttl, responders, v6));
        }
    }
    items
}

/// Record the answered retries in `hops`: per item (index into `items`), its answer.
pub fn apply_answers(items: &[Retry], got: &BTreeMap<usize, Answer>, hops: &mut HopMap) {
    for (k, a) in got {
        let Some(it) = items.get(*k) else { continue };
        if let Some(hm) = hops.get_mut(&it.flow) {
            hm.insert(it.ttl, Some(*a));
        }
    }
}

/// One flow from its full-TTL attempts: its outcome is the most frequent one (ties: the better
/// one), its details those of the first attempt with that outcome.
pub fn flow_from_attempts(
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

/// The local next hop a flow leaves by, as a key ("" without a known route).
fn next_hop_key(f: &Flow) -> String {
    f.local_route
        .as_ref()
        .map(|r| format!("{:?}{}", r.gateway, r.oif))
        .unwrap_or_default()
}

/// IPv4 Record Route: per reaching flow, the record its answer echoed. Flows with the same
/// non-empty record took the same routers (forward and back); they are grouped (indices), and
/// each gets its `recorded_route`. Flows whose option did not come back filled (stripped, or the
/// answer lost) are in no group.
pub fn record_groups(
    flows: &mut [Flow],
    records: &[(usize, Option<&Vec<Ipv4Addr>>)],
) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<Vec<Ipv4Addr>, Vec<usize>> = BTreeMap::new();
    for (i, rec) in records {
        let (Some(rec), Some(f)) = (rec.filter(|r| !r.is_empty()), flows.get_mut(*i)) else {
            continue;
        };
        f.recorded_route = Some(rec.iter().map(|a| IpAddr::V4(*a)).collect());
        groups.entry(rec.clone()).or_default().push(*i);
    }
    groups.into_values().collect()
}

/// The flows to trace hop by hop (sorted indices): every failing or inconsistent flow; with
/// `All` every flow; with `Needed` also one flow of each Record Route group and, of the others,
/// up to [`REPRESENTATIVES`] spread over the local next hops; with `None` none.
pub fn choose_traced(flows: &[Flow], groups: &[Vec<usize>], mode: HopsMode) -> Vec<usize> {
    let n = flows.len();
    let mut chosen: Vec<usize> = (0..n)
        .filter(|i| flows[*i].failing() || !flows[*i].consistent)
        .collect();
    match mode {
        HopsMode::All => (0..n).collect(),
        HopsMode::None => Vec::new(),
        HopsMode::Needed => {
            chosen.extend(groups.iter().filter_map(|g| g.first().copied()));
            let grouped: BTreeSet<usize> = groups.iter().flatten().copied().collect();
            let mut by_route: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for i in (0..n).filter(|i| !chosen.contains(i) && !grouped.contains(i)) {
                by_route.entry(next_hop_key(&flows[i])).or_default().push(i);
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
            chosen
        }
    }
}

/// Hop 1 once per local next hop: every flow the local kernel sends to the same neighbour meets
/// the same router first. Per chosen flow with a known route, the first chosen flow with the
/// same next hop, whose TTL-1 probe stands for it.
pub fn hop1_representatives(flows: &[Flow], chosen: &[usize]) -> BTreeMap<usize, usize> {
    let mut rep_of_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for &i in chosen {
        if flows[i].local_route.is_some() {
            let rep = *rep_of_key.entry(next_hop_key(&flows[i])).or_insert(i);
            out.insert(i, rep);
        }
    }
    out
}

/// Hop-by-hop tracing, TTL after TTL: which flows go on, and what each TTL gave them.
#[derive(Debug)]
pub struct HopTrace {
    chosen: Vec<usize>,
    /// See [`hop1_representatives`].
    pub hop1_of: BTreeMap<usize, usize>,
    pub hops: HopMap,
    done: BTreeSet<usize>,
    silent_run: BTreeMap<usize, u8>,
}

impl HopTrace {
    pub fn new(flows: &[Flow], chosen: Vec<usize>) -> HopTrace {
        HopTrace {
            hop1_of: hop1_representatives(flows, &chosen),
            chosen,
            hops: HopMap::new(),
            done: BTreeSet::new(),
            silent_run: BTreeMap::new(),
        }
    }

    /// The chosen flows still followed.
    pub fn active(&self) -> Vec<usize> {
        self.chosen
            .iter()
            .copied()
            .filter(|i| !self.done.contains(i))
            .collect()
    }

    /// Of the `active` flows, those that send a probe at `ttl`: at TTL 1 only one per local
    /// next hop.
    pub fn senders(&self, active: &[usize], ttl: u8) -> Vec<usize> {
        active
            .iter()
            .copied()
            .filter(|i| ttl != 1 || self.hop1_of.get(i).is_none_or(|rep| rep == i))
            .collect()
    }

    /// Record what `ttl` gave the `active` flows (`got`: the answers, by the flow that sent the
    /// probe). A flow stops at the destination or at any answer other than time exceeded; a
    /// failing flow also after [`GAP`] silent hops in a row.
    pub fn record(
        &mut self,
        flows: &[Flow],
        ttl: u8,
        active: &[usize],
        got: &BTreeMap<usize, Answer>,
        dst: IpAddr,
    ) {
        for &i in active {
            let a = if ttl == 1 {
                self.hop1_of
                    .get(&i)
                    .and_then(|rep| got.get(rep))
                    .or_else(|| got.get(&i))
                    .copied()
            } else {
                got.get(&i).copied()
            };
            self.hops.entry(i).or_default().insert(ttl, a);
            match a {
                Some(ans) => {
                    self.silent_run.insert(i, 0);
                    if ans.from == dst || !matches!(ans.kind, ReplyKind::TimeExceeded) {
                        self.done.insert(i);
                    }
                }
                None => {
                    let r = self.silent_run.entry(i).or_insert(0);
                    *r += 1;
                    if flows.get(i).is_some_and(Flow::failing) && *r >= GAP {
                        self.done.insert(i);
                    }
                }
            }
        }
    }
}

/// After one TTL of probes of which some answered and some did not: the answering routers'
/// buckets are what ran out (the usual case), so they are modelled as drained. `sent`: how many
/// probes the TTL sent.
pub fn drained_after_ttl(
    got: &BTreeMap<usize, Answer>,
    sent: usize,
    dst: IpAddr,
) -> BTreeSet<IpAddr> {
    if got.is_empty() || got.len() >= sent {
        return BTreeSet::new();
    }
    got.values().map(|a| a.from).filter(|a| *a != dst).collect()
}

/// The traced flows' hop rows from the hop map: `destination` for the final reply, `inferred`
/// (and no RTT) for a hop 1 probed by another flow with the same next hop, `rate-limited` for a
/// silent hop before one that answered; a failing flow's last responding hop.
pub fn fill_hops(flows: &mut [Flow], hops: &HopMap, hop1_of: &BTreeMap<usize, usize>, dst: IpAddr) {
    for (&i, hm) in hops {
        let Some(f) = flows.get_mut(i) else { continue };
        f.traced = true;
        let last_answer = last_answered(hm);
        f.hops = hm
            .iter()
            .map(|(ttl, a)| {
                let inferred = *ttl == 1 && hop1_of.get(&i).is_some_and(|rep| *rep != i);
                let note = match a {
                    Some(ans) if ans.from == dst => Some("destination"),
                    Some(_) if inferred => Some("inferred"),
                    Some(_) => None,
                    None if *ttl < last_answer => Some("rate-limited"),
                    None => None,
                };
                Hop {
                    ttl: *ttl,
                    address: a.map(|ans| ans.from),
                    rtt_ms: if inferred {
                        None
                    } else {
                        a.map(|ans| ans.rtt.as_secs_f64() * 1e3)
                    },
                    note,
                }
            })
            .collect();
        if f.failing() {
            f.last_responding_hop = f.hops.iter().rev().find(|h| h.address.is_some()).cloned();
        }
    }
}

/// Flows that recorded the same route as a traced one share its hops (note `recorded-route`,
/// no RTT, `hops_from` its source port).
pub fn share_recorded_hops(flows: &mut [Flow], groups: &[Vec<usize>]) {
    for g in groups {
        let Some(&rep) = g.iter().find(|i| flows.get(**i).is_some_and(|f| f.traced)) else {
            continue;
        };
        let (rep_sport, rep_hops) = (flows[rep].sport, flows[rep].hops.clone());
        for &m in g {
            let Some(f) = flows.get_mut(m).filter(|f| m != rep && !f.traced) else {
                continue;
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    const DST: &str = "198.18.30.10";

    fn ans(from: &str, kind: ReplyKind) -> Answer {
        Answer {
            from: ip(from),
            kind,
            rtt: Duration::from_millis(2),
        }
    }

    fn te(from: &str) -> Option<Answer> {
        Some(ans(from, ReplyKind::TimeExceeded))
    }

    fn route(gw: &str, oif: u32) -> Option<LocalRoute> {
        Some(LocalRoute {
            gateway: Some(ip(gw)),
            dev: format!("eth{oif}"),
            oif,
            prefsrc: None,
        })
    }

    /// A flow with one attempt: open (SYN-ACK) or silent.
    fn flow(sport: u16, open: bool, r: Option<LocalRoute>) -> Flow {
        let a = open.then(|| ans(DST, ReplyKind::SynAck));
        flow_from_attempts(sport, &[a], r, false)
    }

    fn hm(hops: &[(u8, Option<Answer>)]) -> BTreeMap<u8, Option<Answer>> {
        hops.iter().copied().collect()
    }

    fn sorted(hops: &HopMap) -> Vec<usize> {
        hops.keys().copied().collect()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn buckets_start_full_refill_at_one_a_second_and_cap_at_the_burst() {
        let t0 = Instant::now();
        let (r, other) = (ip("198.18.20.1"), ip("198.18.21.2"));
        let mut b = Buckets::default();
        assert_eq!(b.level(&r, t0), RL_BURST);
        b.heard(r, t0);
        assert_eq!(b.level(&r, t0), RL_BURST - 1.0);
        assert_eq!(b.level(&r, t0 + secs(10.0)), RL_BURST);
        b.drain(r, t0);
        assert!((b.level(&r, t0 + secs(0.5)) - 0.5).abs() < 1e-9);
        assert_eq!(b.ready_at(&r, t0 + secs(0.5)), Some(t0 + secs(1.05)));
        assert_eq!(b.ready_at(&r, t0 + secs(2.0)), Some(t0 + secs(2.0)));
        assert_eq!(b.ready_at(&other, t0), None);
        // Heard again while empty: the model goes negative and waits longer.
        b.heard(r, t0);
        assert!((b.level(&r, t0 + secs(1.5)) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn round_timeout_is_three_rtts_and_30_ms_within_the_timeout() {
        let t = Duration::from_secs(1);
        assert_eq!(round_timeout(None, t), t);
        let rtt = Some(Duration::from_millis(3));
        assert_eq!(round_timeout(rtt, t), Duration::from_millis(39));
        assert_eq!(round_timeout(Some(t), t), t);
    }

    #[test]
    fn a_wave_spends_one_token_per_probe_from_the_fullest_responder() {
        let t0 = Instant::now();
        let (a, b) = (ip("198.18.21.2"), ip("198.18.22.2"));
        let mut buckets = Buckets::default();
        buckets.drain(a, t0);
        buckets.drain(b, t0);
        let now = t0 + secs(2.5); // a and b hold 2.5 each
        let both: BTreeSet<IpAddr> = [a, b].into();
        let items: Vec<Retry> = (0..6)
            .map(|f| Retry::new(f, 2, both.clone(), false))
            .collect();
        let all: Vec<usize> = (0..6).collect();
        assert_eq!(wave(&items, &all, &buckets, now), vec![0, 1, 2, 3]);
        // Only b expected for items 4 and 5: b's two tokens go to them first.
        let mut items = items;
        for i in [4, 5] {
            items[i].responders = [b].into();
        }
        let order = [4, 5, 0, 1, 2, 3];
        assert_eq!(wave(&items, &order, &buckets, now), vec![4, 5, 0, 1]);
        // An unknown responder (the unspecified address) is full: 6 at once.
        let unknown: Vec<Retry> = (0..8)
            .map(|f| Retry::new(f, 3, BTreeSet::new(), false))
            .collect();
        assert_eq!(unknown[0].responders, [ip("0.0.0.0")].into());
        assert_eq!(
            Retry::new(0, 3, BTreeSet::new(), true).responders,
            [ip("::")].into()
        );
        let eight: Vec<usize> = (0..8).collect();
        assert_eq!(wave(&unknown, &eight, &buckets, now).len(), 6);
    }

    #[test]
    fn after_an_empty_wave_wait_for_the_first_responder_to_refill() {
        let t0 = Instant::now();
        let (a, b) = (ip("198.18.21.2"), ip("198.18.22.2"));
        let mut buckets = Buckets::default();
        buckets.drain(a, t0);
        buckets.drain(b, t0 + secs(0.5));
        let items = vec![
            Retry::new(0, 2, [b].into(), false),
            Retry::new(1, 2, [a, b].into(), false),
        ];
        let now = t0 + secs(0.5); // a holds 0.5, b nothing
        assert!(wave(&items, &[0, 1], &buckets, now).is_empty());
        assert_eq!(wave_ready(&items, &[0, 1], &buckets, now), t0 + secs(1.05));
        assert_eq!(wave_ready(&items, &[0], &buckets, now), t0 + secs(1.55));
        let unknown = vec![Retry::new(0, 2, [ip("198.18.9.9")].into(), false)];
        assert_eq!(
            wave_ready(&unknown, &[0], &buckets, t0),
            t0 + Duration::from_millis(100)
        );
    }

    #[test]
    fn a_wave_drains_who_answered_or_else_every_expected_responder() {
        let (a, b, c) = (ip("198.18.21.2"), ip("198.18.22.2"), ip("198.18.23.2"));
        let items = vec![
            Retry::new(0, 2, [a, b].into(), false),
            Retry::new(1, 2, [a, b].into(), false),
            Retry::new(2, 3, [c].into(), false),
        ];
        assert!(drained_by(&items, &[(0, Some(a)), (1, Some(b))]).is_empty());
        assert_eq!(drained_by(&items, &[(0, Some(a)), (1, None)]), [a].into());
        assert_eq!(drained_by(&items, &[(1, None)]), [a, b].into());
        assert_eq!(drained_by(&items, &[(0, Some(a)), (2, None)]), [c].into());
    }

    #[test]
    fn pending_items_are_unanswered_and_not_exhausted() {
        let got: HashMap<usize, u32> = [(1, 7)].into();
        assert_eq!(pending(&[0, 0, HOP_RETRIES, 2], &got), vec![0, 3]);
    }

    #[test]
    fn retries_expect_who_answered_that_ttl_after_the_same_previous_hop() {
        let (r1, gw1, gw2) = ("198.18.20.1", "198.18.21.2", "198.18.22.2");
        let dst = Some(ans(DST, ReplyKind::SynAck));
        let mut hops = HopMap::new();
        hops.insert(0, hm(&[(1, te(r1)), (2, te(gw1)), (3, dst)]));
        hops.insert(1, hm(&[(1, te(r1)), (2, te(gw2)), (3, dst)]));
        hops.insert(2, hm(&[(1, te(r1)), (2, None), (3, dst)]));
        // Another first hop: its siblings are not flow 2's.
        hops.insert(3, hm(&[(1, te("198.18.20.254")), (2, te("198.18.29.2"))]));
        assert_eq!(last_answered(&hops[&2]), 3);
        assert_eq!(last_answered(&hm(&[(1, None)])), 0);
        assert_eq!(expected_responders(&hops, 2, 2), [ip(gw1), ip(gw2)].into());
        assert_eq!(
            expected_responders(&hops, 2, 1),
            [ip(r1), ip("198.18.20.254")].into()
        );
        assert!(expected_responders(&hops, 9, 2).is_empty());
        assert_eq!(
            silent_hop_retries(&hops, &sorted(&hops), false),
            vec![Retry::new(2, 2, [ip(gw1), ip(gw2)].into(), false)]
        );
        // A failing flow silent from hop 2 on: its frontier is hop 2, expected from its
        // siblings; a reaching flow gets no frontier retry.
        let mut flows: Vec<Flow> = (0..4).map(|i| flow(33000 + i, true, None)).collect();
        flows[2] = flow(33002, false, None);
        hops.insert(2, hm(&[(1, te(r1)), (2, None), (3, None)]));
        assert!(silent_hop_retries(&hops, &sorted(&hops), false).is_empty());
        assert_eq!(
            frontier_retries(&hops, &sorted(&hops), &flows, 8, false),
            vec![Retry::new(2, 2, [ip(gw1), ip(gw2)].into(), false)]
        );
        assert!(frontier_retries(&hops, &sorted(&hops), &flows, 1, false).is_empty());
        let got: BTreeMap<usize, Answer> = [(0, ans(gw2, ReplyKind::TimeExceeded))].into();
        let items = frontier_retries(&hops, &sorted(&hops), &flows, 8, false);
        apply_answers(&items, &got, &mut hops);
        assert_eq!(hops[&2][&2], te(gw2));
        // Followed on: hop 3, expected from whoever answered it after gw2 for flow 1.
        assert_eq!(
            frontier_retries(&hops, &sorted(&hops), &flows, 8, false),
            vec![Retry::new(2, 3, [ip(DST)].into(), false)]
        );
    }

    #[test]
    fn retries_visit_the_traced_flows_in_a_shuffled_order_fixed_by_the_seed() {
        let hops: HopMap = (0..32).map(|i| (i, BTreeMap::new())).collect();
        let a = retry_order(&hops, 1);
        let mut back = a.clone();
        back.sort_unstable();
        assert_eq!(back, sorted(&hops), "a permutation");
        assert_eq!(retry_order(&hops, 1), a);
        assert_ne!(retry_order(&hops, 2), a);
        assert_ne!(a, sorted(&hops));
        assert!(retry_order(&HopMap::new(), 1).is_empty());
        // Flows missing from the order are not retried; the order is the items' order.
        let mut hops = HopMap::new();
        for i in 0..3 {
            hops.insert(i, hm(&[(1, None), (2, te("198.18.21.2"))]));
        }
        let flows_of = |order: &[usize]| -> Vec<usize> {
            silent_hop_retries(&hops, order, false)
                .iter()
                .map(|r| r.flow)
                .collect()
        };
        assert_eq!(flows_of(&[2, 0]), vec![2, 0]);
        assert_eq!(flows_of(&[1, 2, 0, 7]), vec![1, 2, 0]);
    }

    #[test]
    fn a_flows_outcome_is_its_most_frequent_attempt_ties_to_the_better() {
        let open = Some(ans(DST, ReplyKind::SynAck));
        let unreach = Some(ans("198.18.21.2", ReplyKind::Unreachable { code: 13 }));
        let f = flow_from_attempts(33000, &[None, open, None], None, false);
        assert_eq!((f.outcome, f.consistent), (Outcome::Silent, false));
        assert_eq!(
            f.attempts,
            vec![Outcome::Silent, Outcome::Open, Outcome::Silent]
        );
        assert_eq!((f.reply_from, f.rtt_ms), (None, None));
        let f = flow_from_attempts(33000, &[None, open], None, false);
        assert_eq!(f.outcome, Outcome::Open);
        assert_eq!((f.reply_from, f.rtt_ms), (Some(ip(DST)), Some(2.0)));
        let f = flow_from_attempts(33000, &[unreach, unreach], None, false);
        assert_eq!((f.outcome, f.consistent), (Outcome::Unreachable, true));
        assert_eq!(f.icmp_code, Some(13));
        assert_eq!(
            f.icmp_meaning,
            Some("communication administratively prohibited")
        );
        let f = flow_from_attempts(33000, &[], None, true);
        assert_eq!((f.outcome, f.attempts.len()), (Outcome::Silent, 0));
        let rst = Some(ans(DST, ReplyKind::Rst));
        let f = flow_from_attempts(33000, &[rst], route("198.18.20.1", 2), false);
        assert_eq!(f.outcome, Outcome::Closed);
        assert!(f.local_route.is_some() && !f.traced);
    }

    #[test]
    fn needed_traces_failing_flows_group_representatives_and_a_spread_of_the_rest() {
        let (a, b) = (route("198.18.20.1", 2), route("198.18.20.254", 3));
        // 0, 1: failing; 2..8 via a; 8..12 via b; 12..16 grouped by their recorded route.
        let mut flows: Vec<Flow> = (0..16)
            .map(|i| {
                let r = if (8..12).contains(&i) {
                    b.clone()
                } else {
                    a.clone()
                };
                flow(33000 + i as u16, i >= 2, r)
            })
            .collect();
        flows[5].consistent = false;
        let groups = vec![vec![12, 13], vec![14, 15]];
        let needed = choose_traced(&flows, &groups, HopsMode::Needed);
        // Failing 0, 1; inconsistent 5; group firsts 12, 14; then a, b, a, b, a: 2, 8, 3, 9, 4.
        assert_eq!(needed, vec![0, 1, 2, 3, 4, 5, 8, 9, 12, 14]);
        assert_eq!(
            choose_traced(&flows, &groups, HopsMode::All),
            (0..16).collect::<Vec<_>>()
        );
        assert!(choose_traced(&flows, &groups, HopsMode::None).is_empty());
        // Hop 1 once per next hop: the first chosen flow of each.
        let reps = hop1_representatives(&flows, &needed);
        assert_eq!(reps[&0], 0);
        assert_eq!(reps[&4], 0);
        assert_eq!(reps[&8], 8);
        assert_eq!(reps[&9], 8);
        flows[1].local_route = None;
        let reps = hop1_representatives(&flows, &needed);
        assert!(!reps.contains_key(&1));
        let t = HopTrace::new(&flows, needed.clone());
        assert_eq!(t.senders(&needed, 1), vec![0, 1, 8]);
        assert_eq!(t.senders(&needed, 2), needed);
    }

    #[test]
    fn record_route_groups_are_by_identical_non_empty_record() {
        let mut flows: Vec<Flow> = (0..4).map(|i| flow(33000 + i, true, None)).collect();
        let x = vec![
            Ipv4Addr::new(198, 18, 21, 2),
            Ipv4Addr::new(198, 18, 30, 10),
        ];
        let y = vec![
            Ipv4Addr::new(198, 18, 22, 2),
            Ipv4Addr::new(198, 18, 30, 10),
        ];
        let empty = Vec::new();
        let recs = [
            (0, Some(&x)),
            (1, Some(&y)),
            (2, Some(&x)),
            (3, Some(&empty)),
        ];
        assert_eq!(record_groups(&mut flows, &recs), vec![vec![0, 2], vec![1]]);
        assert_eq!(
            flows[1].recorded_route,
            Some(y.iter().map(|a| IpAddr::V4(*a)).collect())
        );
        assert_eq!(flows[3].recorded_route, None);
        assert!(record_groups(&mut flows, &[(1, None), (9, Some(&x))]).is_empty());
    }

    #[test]
    fn tracing_stops_at_the_destination_at_an_error_and_after_a_gap_of_a_failing_flow() {
        let dst = ip(DST);
        let (r1, gw2) = ("198.18.20.1", "198.18.22.2");
        let mut flows: Vec<Flow> = (0..4)
            .map(|i| flow(33000 + i, true, route(r1, 2)))
            .collect();
        flows[1] = flow(33001, false, route(r1, 2));
        flows[2] = flow(33002, false, route(r1, 2));
        let mut t = HopTrace::new(&flows, vec![0, 1, 2, 3]);
        let all = t.active();
        assert_eq!(all, vec![0, 1, 2, 3]);
        // TTL 1: only flow 0 sends; all take its answer.
        assert_eq!(t.senders(&all, 1), vec![0]);
        let got: BTreeMap<usize, Answer> = [(0, ans(r1, ReplyKind::TimeExceeded))].into();
        t.record(&flows, 1, &all, &got, dst);
        assert!(t.hops.values().all(|h| h[&1] == te(r1)));
        // TTL 2: 0 reaches, 1 is silent, 2 gets an unreachable, 3 a time exceeded.
        let got: BTreeMap<usize, Answer> = [
            (0, ans(DST, ReplyKind::SynAck)),
            (2, ans(gw2, ReplyKind::Unreachable { code: 1 })),
            (3, ans(gw2, ReplyKind::TimeExceeded)),
        ]
        .into();
        assert_eq!(drained_after_ttl(&got, 4, dst), [ip(gw2)].into());
        assert!(drained_after_ttl(&got, 3, dst).is_empty());
        assert!(drained_after_ttl(&BTreeMap::new(), 3, dst).is_empty());
        t.record(&flows, 2, &all, &got, dst);
        assert_eq!(t.active(), vec![1, 3]);
        // The failing flow 1 stops after GAP silent hops; the reaching 3 goes on.
        for ttl in 3..3 + GAP {
            let active = t.active();
            t.record(&flows, ttl, &active, &BTreeMap::new(), dst);
        }
        assert_eq!(t.active(), vec![3]);
        assert_eq!(t.hops[&1].len(), 1 + GAP as usize);
    }

    #[test]
    fn hop_rows_carry_their_notes_and_groups_share_them() {
        let dst = ip(DST);
        let r1 = "198.18.20.1";
        let mut flows: Vec<Flow> = (0..4)
            .map(|i| flow(33000 + i, true, route(r1, 2)))
            .collect();
        flows[1] = flow(33001, false, route(r1, 2));
        let mut hops = HopMap::new();
        hops.insert(
            0,
            hm(&[
                (1, te(r1)),
                (2, None),
                (3, Some(ans(DST, ReplyKind::SynAck))),
            ]),
        );
        hops.insert(1, hm(&[(1, te(r1)), (2, te("198.18.22.2")), (3, None)]));
        let reps: BTreeMap<usize, usize> = [(0, 0), (1, 0)].into();
        fill_hops(&mut flows, &hops, &reps, dst);
        let notes = |f: &Flow| f.hops.iter().map(|h| h.note).collect::<Vec<_>>();
        assert_eq!(
            notes(&flows[0]),
            vec![None, Some("rate-limited"), Some("destination")]
        );
        assert_eq!(flows[0].hops[0].rtt_ms, Some(2.0));
        assert_eq!(notes(&flows[1]), vec![Some("inferred"), None, None]);
        assert_eq!(flows[1].hops[0].rtt_ms, None);
        let last = flows[1]
            .last_responding_hop
            .as_ref()
            .expect("failing: last hop");
        assert_eq!((last.ttl, last.address), (2, Some(ip("198.18.22.2"))));
        assert!(flows[0].last_responding_hop.is_none());
        assert!(flows[0].traced && flows[1].traced && !flows[2].traced);
        share_recorded_hops(&mut flows, &[vec![2, 0, 3]]);
        for m in [2, 3] {
            assert_eq!(flows[m].hops_from, Some(33000));
            assert!(flows[m].traced);
            assert_eq!(
                flows[m].hops.iter().map(|h| h.address).collect::<Vec<_>>(),
                flows[0].hops.iter().map(|h| h.address).collect::<Vec<_>>()
            );
            assert!(flows[m]
                .hops
                .iter()
                .all(|h| h.note == Some("recorded-route") && h.rtt_ms.is_none()));
        }
        assert_eq!(flows[0].hops_from, None);
        // A group with no traced flow shares nothing.
        let mut untraced: Vec<Flow> = (0..2).map(|i| flow(33000 + i, true, None)).collect();
        share_recorded_hops(&mut untraced, &[vec![0, 1]]);
        assert!(untraced.iter().all(|f| !f.traced));
    }
}
