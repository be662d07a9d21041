//! The engine on the fake network of [`super::fakenet`]: what it sends when, and what it
//! concludes, on modelled paths of Linux routers answering with captured packets.

use std::net::IpAddr;
use std::time::Duration;

use super::engine::{run_on, Config, HopsMode, Outcomes};
use super::fakenet::{FakeNet, Kind, Lab, Port, Router, Sent, LINK};
use super::report::Outcome;
use super::schedule::GAP;

const US: &str = "198.18.20.2";
const DST: &str = "198.18.30.10";

/// pc -> r1 =ECMP=> gw1 | gw2 -> dst (the built-in lab's ECMP part).
fn ecmp_lab() -> Lab {
    Lab::new(
        US,
        DST,
        &[0],
        vec![
            Router::new("198.18.20.1", &[1, 2]),
            Router::new("198.18.21.2", &[]),
            Router::new("198.18.22.2", &[]),
        ],
    )
}

/// The same in IPv6 (raw IPv6 sockets hand over no IPv6 header: the fake strips it).
fn ecmp_lab6() -> Lab {
    Lab::new(
        "2001:db8:20::2",
        "2001:db8:30::10",
        &[0],
        vec![
            Router::new("2001:db8:20::1", &[1, 2]),
            Router::new("2001:db8:21::2", &[]),
            Router::new("2001:db8:22::2", &[]),
        ],
    )
}

fn config(lab: &Lab, sports: std::ops::Range<u16>, hops: HopsMode) -> Config {
    Config {
        dst: lab.dst,
        port: lab.port,
        sports: sports.collect(),
        explicit_sports: true,
        max_ttl: 8,
        source: Some(lab.src),
        interface: None,
        repeat: 1,
        timeout: Duration::from_secs(1),
        max_time: Duration::from_secs(30),
        hops,
    }
}

fn run(lab: Lab, sports: std::ops::Range<u16>, hops: HopsMode) -> (Outcomes, FakeNet) {
    let cfg = config(&lab, sports, hops);
    let mut net = FakeNet::new(lab);
    let setup = net.lab.setup(net.base(), &cfg.sports);
    let out = run_on(&mut net, cfg, setup);
    (out, net)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

/// The probes (not RSTs) sent at `ttl`.
fn at_ttl(net: &FakeNet, ttl: u8) -> Vec<Sent> {
    net.sent
        .iter()
        .filter(|s| s.kind != Kind::Rst && s.ttl == ttl)
        .copied()
        .collect()
}

/// The times (ms) of the probes sent at `ttl` after `after` ms.
fn times_after(net: &FakeNet, ttl: u8, after: f64) -> Vec<f64> {
    at_ttl(net, ttl)
        .iter()
        .map(|s| ms(s.at))
        .filter(|t| *t > after)
        .collect()
}

fn sports_of(sent: &[Sent]) -> Vec<u16> {
    sent.iter().map(|s| s.sport).collect()
}

/// The flows of `sports` whose hop `hop` is `addr` in the lab.
fn via(lab: &Lab, sports: std::ops::Range<u16>, hop: usize, addr: IpAddr) -> Vec<u16> {
    sports.filter(|s| lab.hop(*s, hop) == Some(addr)).collect()
}

/// Classification: one full-TTL SYN per flow, all at t=0; each SYN-ACK (3 ms later: three hops
/// of two links) is answered at once with our RST for `seq + 1`; nothing else is sent.
#[test]
fn classification_is_one_syn_per_flow_at_once_and_every_syn_ack_gets_our_rst() {
    let (out, net) = run(ecmp_lab(), 33000..33016, HopsMode::None);
    let (syns, rsts) = net.sent.split_at(16);
    assert!(syns
        .iter()
        .all(|s| s.kind == Kind::Syn && s.ttl == 8 && s.at.is_zero()));
    assert_eq!(sports_of(syns), (33000..33016).collect::<Vec<_>>());
    assert_eq!(rsts.len(), 16, "{:?}", net.sent);
    for (syn, rst) in syns.iter().zip(rsts) {
        assert_eq!(rst.kind, Kind::Rst);
        assert_eq!((rst.sport, rst.seq), (syn.sport, syn.seq.wrapping_add(1)));
        assert_eq!(rst.at, LINK * 6);
    }
    assert_eq!(out.probes_sent, 16);
    assert_eq!(out.classify_elapsed, LINK * 6);
    assert_eq!(out.elapsed, LINK * 6);
    for f in &out.flows {
        assert_eq!(f.outcome, Outcome::Open, "{f:?}");
        assert_eq!(f.reply_from, Some(ip(DST)));
        assert_eq!(f.rtt_ms, Some(3.0));
        assert!(f.consistent && !f.traced);
    }
}

/// A closed port: the destination's RSTs classify every flow as reached (closed) and get no RST
/// of ours back.
#[test]
fn closed_port_rsts_make_flows_reached_and_are_not_answered() {
    let mut lab = ecmp_lab();
    lab.dst_port = Port::Closed;
    let (out, net) = run(lab, 33000..33004, HopsMode::None);
    assert_eq!(net.sent.len(), 4);
    assert!(net.sent.iter().all(|s| s.kind == Kind::Syn));
    assert!(out
        .flows
        .iter()
        .all(|f| f.outcome == Outcome::Closed && f.outcome.reached()));
    assert_eq!(out.classify_elapsed, LINK * 6);
}

/// An admin-prohibited destination answers 6 SYNs at once, then 1 a second: the silent flows
/// are retried one per token its modelled bucket gets back (the first 1.05 s after the burst,
/// then a second apart), and no retry is wasted on an empty bucket.
#[test]
fn unreachable_retries_spend_the_destinations_tokens_one_by_one() {
    let mut lab = ecmp_lab();
    lab.dst_port = Port::Rejected;
    let (out, net) = run(lab, 33000..33010, HopsMode::None);
    let retries: Vec<(f64, u16)> = net
        .sent
        .iter()
        .filter(|s| !s.at.is_zero())
        .map(|s| (ms(s.at), s.sport))
        .collect();
    assert_eq!(
        retries,
        vec![
            (1053.0, 33006),
            (2053.0, 33007),
            (3053.0, 33008),
            (4053.0, 33009)
        ]
    );
    assert_eq!(out.probes_sent, 14, "every retry was answered");
    for f in &out.flows {
        assert_eq!(f.outcome, Outcome::Unreachable, "{f:?}");
        assert_eq!(f.icmp_code, Some(13));
        assert_eq!(
            f.icmp_meaning,
            Some("communication administratively prohibited")
        );
        assert_eq!(f.reply_from, Some(ip(DST)));
    }
    assert_eq!(ms(out.classify_elapsed), 4056.0);
}

/// One gateway drops what it should forward (and still answers TTL expiry): its flows, and only
/// they, are silent after one timeout, with no retry (no ICMP came back); each is traced to that
/// gateway at hop 2 (its rate-limited answers retried, paced) and not beyond 2 + GAP hops.
#[test]
fn blackholed_branch_fails_after_one_timeout_and_is_named_at_its_last_hop() {
    for v6 in [false, true] {
        let mut lab = if v6 { ecmp_lab6() } else { ecmp_lab() };
        lab.routers[2].forwards = false;
        let bad = lab.routers[2].addr;
        let failing = via(&lab, 33000..33032, 2, bad);
        assert!(failing.len() > 6 && failing.len() < 32, "{failing:?}");
        let (out, net) = run(lab, 33000..33032, HopsMode::Needed);
        assert_eq!(out.classify_elapsed, Duration::from_secs(1), "one timeout");
        let syn8: Vec<&Sent> = net
            .sent
            .iter()
            .filter(|s| s.kind == Kind::Syn && s.ttl == 8)
            .collect();
        assert_eq!(syn8.len(), 32);
        assert!(syn8.iter().all(|s| s.at.is_zero()));
        let got: Vec<u16> = out
            .flows
            .iter()
            .filter(|f| f.failing())
            .map(|f| f.sport)
            .collect();
        assert_eq!(got, failing, "v6 {v6}");
        for f in out.flows.iter().filter(|f| f.failing()) {
            assert_eq!(f.outcome, Outcome::Silent);
            let last = f.last_responding_hop.as_ref().expect("last hop");
            assert_eq!((last.ttl, last.address), (2, Some(bad)), "{f:?}");
        }
        let deepest = net
            .sent
            .iter()
            .filter(|s| failing.contains(&s.sport) && s.ttl < 8)
            .map(|s| s.ttl)
            .max();
        assert_eq!(deepest, Some(2 + GAP));
        // The gateway answered 6 of its flows' TTL-2 probes at once; the others were retried
        // one by one, the first when its modelled bucket held a token again (1.05 s after the
        // round that drained it, which ended 39 ms after it began).
        let ttl2 = at_ttl(&net, 2);
        let first = ms(ttl2[0].at);
        let retries = times_after(&net, 2, first);
        assert_eq!(retries.first().copied(), Some(first + 39.0 + 1050.0));
        assert_eq!(
            net.sent
                .iter()
                .filter(|s| s.kind == Kind::RecordRoute)
                .count(),
            if v6 { 0 } else { 32 - failing.len() }
        );
    }
}

/// `--hops all` on 16 flows: hop 1 once, hop 2 for all 16 at once, where each gateway answers
/// 6 (its burst); the rest are retried only when the gateways' modelled buckets hold a token:
/// both are drained when the TTL-2 round ends (43 ms), so the first wave goes 1.05 s later with
/// one probe per gateway token; a probe answered by one gateway proves that one spent its
/// token, so the next wave (a round later) uses the other's. Every hop ends answered, within
/// 1.5 times what the gateways' limits allow (also with 32 flows).
#[test]
fn rate_limited_hops_are_retried_when_the_modelled_buckets_hold_a_token() {
    let lab = ecmp_lab();
    let (gw1, gw2) = (lab.routers[1].addr, lab.routers[2].addr);
    let n1 = via(&lab, 33000..33016, 2, gw1).len();
    let n2 = via(&lab, 33000..33016, 2, gw2).len();
    assert_eq!((n1, n2), (6, 10));
    let (out, net) = run(lab, 33000..33016, HopsMode::All);
    assert_eq!(sports_of(&at_ttl(&net, 1)), vec![33000]);
    let ttl2 = at_ttl(&net, 2);
    assert!(ttl2[..16].iter().all(|s| ms(s.at) == 4.0));
    assert!(at_ttl(&net, 3).iter().all(|s| ms(s.at) == 43.0));
    assert_eq!(
        times_after(&net, 2, 4.0),
        vec![1093.0, 1093.0, 1132.0, 2221.0, 2221.0, 2260.0, 3349.0, 3349.0, 3388.0, 4477.0]
    );
    for f in &out.flows {
        assert!(f.hops.iter().all(|h| h.address.is_some()), "{f:?}");
        assert!(f.hops.iter().all(|h| h.note != Some("rate-limited")));
    }
    let allowed = (n1.max(n2) - 6) as f64;
    assert!(
        out.elapsed.as_secs_f64() <= 1.5 * allowed,
        "{:?}",
        out.elapsed
    );
    let lab = ecmp_lab();
    let n2 = via(&lab, 33000..33032, 2, gw2).len();
    assert_eq!(n2, 17);
    let (out, _) = run(lab, 33000..33032, HopsMode::All);
    assert!(out.flows.iter().all(|f| f.hop(2).is_some()));
    let allowed = (n2 - 6) as f64;
    assert!(
        out.elapsed.as_secs_f64() <= 1.5 * allowed,
        "{:?}",
        out.elapsed
    );
}

/// A gateway that never sends ICMP (but forwards): its flows' hop 2 is retried, paced by the
/// bucket of the sibling gateway that answers that TTL (one probe per token, 1.089 s apart: a
/// token, then one round), and stays `rate-limited`. The batch's wave bound (6 waves per item,
/// plus 8, each paced retry taking two) ends it after 19 retries: the first flows get all 6.
#[test]
fn a_silent_gateway_is_retried_paced_and_marked_rate_limited() {
    let mut lab = ecmp_lab();
    lab.routers[2].icmp = false;
    let silent = via(&lab, 33000..33008, 2, lab.routers[2].addr);
    assert_eq!(silent, vec![33000, 33001, 33005, 33006, 33007]);
    let (out, net) = run(lab, 33000..33008, HopsMode::All);
    let retries: Vec<Sent> = at_ttl(&net, 2).into_iter().skip(8).collect();
    assert_eq!(retries.len(), 19);
    for (k, r) in retries.iter().enumerate() {
        assert_eq!(ms(r.at), 1093.0 + 1089.0 * k as f64, "{r:?}");
    }
    // Flow after flow, in the run's shuffled order: three get all 6, one gets 1.
    let per_flow = |p: u16| retries.iter().filter(|r| r.sport == p).count();
    let mut counts: Vec<usize> = silent.iter().map(|p| per_flow(*p)).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![0, 1, 6, 6, 6]);
    for f in &out.flows {
        let hop2 = &f.hops[1];
        if silent.contains(&f.sport) {
            assert_eq!(
                (hop2.address, hop2.note),
                (None, Some("rate-limited")),
                "{f:?}"
            );
        } else {
            assert_eq!(hop2.address, Some(ip("198.18.21.2")));
        }
        assert_eq!(f.hops[2].note, Some("destination"));
    }
    assert!(out.elapsed < Duration::from_secs(30));
}

/// Two local next hops: TTL 1 is sent once per next hop, by the first flow leaving through it;
/// every other flow's hop 1 is that probe's answer, marked `inferred`, without an RTT.
#[test]
fn hop_1_is_probed_once_per_local_next_hop() {
    let lab = Lab::new(
        US,
        DST,
        &[0, 1],
        vec![
            Router::new("198.18.20.1", &[2]),
            Router::new("198.18.20.254", &[2]),
            Router::new("198.18.23.1", &[]),
        ],
    );
    let (out, net) = run(lab, 33000..33006, HopsMode::All);
    let ttl1 = at_ttl(&net, 1);
    assert_eq!(sports_of(&ttl1), vec![33000, 33001]);
    assert!(ttl1.iter().all(|s| ms(s.at) == 3.0));
    let mut reps = std::collections::BTreeMap::new();
    for f in &out.flows {
        let gw = f.local_route.as_ref().and_then(|r| r.gateway);
        let h = &f.hops[0];
        assert_eq!(h.address, gw, "{f:?}");
        let rep = *reps.entry(gw).or_insert(f.sport);
        if rep == f.sport {
            assert_eq!((h.note, h.rtt_ms), (None, Some(1.0)));
        } else {
            assert_eq!((h.note, h.rtt_ms), (Some("inferred"), None));
        }
    }
    assert_eq!(reps.len(), 2);
    assert_eq!(out.elapsed, Duration::from_millis(9));
}

/// IPv4 by default: after classification every reaching flow sends one Record Route SYN; the
/// echoed records split the flows into one group per gateway; one flow per group is traced
/// (hop 1 once), and the others take its hops (`recorded-route`, `hops_from`).
#[test]
fn record_route_groups_share_the_hops_of_one_traced_flow() {
    let lab = ecmp_lab();
    let truth: Vec<Option<IpAddr>> = (33000..33016).map(|s| lab.hop(s, 2)).collect();
    let (out, net) = run(lab, 33000..33016, HopsMode::Needed);
    let rr: Vec<&Sent> = net
        .sent
        .iter()
        .filter(|s| s.kind == Kind::RecordRoute)
        .collect();
    assert_eq!(rr.len(), 16);
    assert!(rr.iter().all(|s| ms(s.at) == 3.0 && s.ttl == 8));
    assert_eq!(sports_of(&at_ttl(&net, 1)), vec![33000]);
    assert_eq!(sports_of(&at_ttl(&net, 2)), vec![33000, 33002]);
    assert_eq!(sports_of(&at_ttl(&net, 3)), vec![33000, 33002]);
    assert_eq!(out.probes_sent, 16 + 16 + 5);
    for (f, hop2) in out.flows.iter().zip(truth) {
        assert_eq!(f.hop(2), hop2, "{f:?}");
        let rec = f.recorded_route.as_ref().expect("recorded");
        assert_eq!(rec.get(1).copied(), hop2);
        match f.hops_from {
            Some(rep) => {
                assert_ne!(rep, f.sport);
                assert!(f.hops.iter().all(|h| h.note == Some("recorded-route")));
            }
            None => assert!([33000, 33002].contains(&f.sport), "{f:?}"),
        }
    }
    assert_eq!(out.elapsed, Duration::from_millis(12));
}
