//! The result of a probe run and its summary: flows grouped by path, where the paths split, and
//! which branch each flow took. Pure: built from per-flow results, unit-tested without sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use super::route::LocalRoute;

/// How one flow's SYN was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// SYN-ACK: the destination port is open.
    Open,
    /// RST: the destination (or something in the path) refused; the flow got there.
    Closed,
    /// An ICMP destination unreachable (see `icmp_code`, `reply_from`).
    Unreachable,
    /// Nothing came back within the timeout.
    Silent,
}

impl Outcome {
    /// Open and closed both mean the flow reached the destination.
    pub fn reached(self) -> bool {
        matches!(self, Outcome::Open | Outcome::Closed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Closed => "closed",
            Outcome::Unreachable => "unreachable",
            Outcome::Silent => "silent",
        }
    }
}

/// One TTL of a flow's path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    pub ttl: u8,
    /// Who answered (time exceeded, or the final reply); `null` when nobody did.
    pub address: Option<IpAddr>,
    pub rtt_ms: Option<f64>,
    /// `inferred` (hop 1 shared by every flow with the same local next hop, probed once),
    /// `rate-limited` (silent, but the router answers other probes: ICMP rate limiting, not
    /// loss), `destination` (the final reply), or absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// One flow: a fixed 5-tuple.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    pub sport: u16,
    pub outcome: Outcome,
    /// ICMP code of an `unreachable` outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Its meaning (`admin-prohibited`, `port-unreachable`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_meaning: Option<&'static str>,
    /// Who sent the final reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_from: Option<IpAddr>,
    pub rtt_ms: Option<f64>,
    /// The outcome of each full-TTL attempt (`--repeat`).
    pub attempts: Vec<Outcome>,
    /// Every attempt had the same outcome (false: random loss rather than a blackhole).
    pub consistent: bool,
    /// The local kernel's ECMP choice for this 5-tuple.
    pub local_route: Option<LocalRoute>,
    /// Hop by hop tracing ran for this flow.
    pub traced: bool,
    pub hops: Vec<Hop>,
    /// The farthest hop that answered (a traced flow that did not reach the destination).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_responding_hop: Option<Hop>,
    /// IPv4: the Record Route option the destination echoed (routers' outgoing addresses on the
    /// way there, the destination's, then the way back), when it came back filled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_route: Option<Vec<IpAddr>>,
    /// The hops are those traced for the flow with this source port, which recorded the same
    /// route (hop notes `recorded-route`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hops_from: Option<u16>,
}

impl Flow {
    pub fn failing(&self) -> bool {
        !self.outcome.reached()
    }
    /// The address at `ttl`, if it answered.
    pub fn hop(&self, ttl: u8) -> Option<IpAddr> {
        self.hops
            .iter()
            .find(|h| h.ttl == ttl)
            .and_then(|h| h.address)
    }
}

/// One branch where the traced paths split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Branch {
    pub address: IpAddr,
    /// Source ports of the traced flows that took it.
    pub sports: Vec<u16>,
    pub reached: usize,
    pub failing: usize,
}

/// Where the traced paths split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// The first hop (TTL) whose address differs between flows.
    pub hop: u8,
    /// The hop before it, where every traced flow was still together (if it answered).
    pub after: Option<IpAddr>,
    pub branches: Vec<Branch>,
}

/// Failing flows that share their last answering hop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastHop {
    pub hop: u8,
    pub address: IpAddr,
    pub sports: Vec<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub flows: usize,
    pub reached: usize,
    pub failing: usize,
    /// Flows whose attempts disagreed (random loss).
    pub intermittent: usize,
    pub traced: usize,
    pub divergence: Option<Divergence>,
    /// Failing flows grouped by their last answering hop.
    pub failing_last_hops: Vec<LastHop>,
    /// Distinct paths among the traced flows: hop addresses (`null`: silent) and their flows.
    pub paths: Vec<PathGroup>,
    /// The summary in sentences, most important first.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathGroup {
    pub hops: Vec<Option<IpAddr>>,
    pub sports: Vec<u16>,
    pub outcome: Outcome,
}

fn ports(v: &[u16]) -> String {
    // Compress runs: 33000-33003,33007
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j].wrapping_add(1) {
            j += 1;
        }
        if j > i + 1 {
            out.push(format!("{}-{}", v[i], v[j]));
        } else {
            for p in &v[i..=j] {
                out.push(p.to_string());
            }
        }
        i = j + 1;
    }
    out.join(",")
}

/// Summarise flows (in sport order).
pub fn summarise(flows: &[Flow], dst: IpAddr, port: u16) -> Summary {
    let n = flows.len();
    let reached = flows.iter().filter(|f| f.outcome.reached()).count();
    let failing: Vec<&Flow> = flows.iter().filter(|f| f.failing()).collect();
    let intermittent = flows.iter().filter(|f| !f.consistent).count();
    let traced: Vec<&Flow> = flows.iter().filter(|f| f.traced).collect();
    let mut lines = Vec::new();

    if failing.is_empty() {
        let open = flows.iter().filter(|f| f.outcome == Outcome::Open).count();
        let how = if open == n {
            "open".to_string()
        } else if open == 0 {
            "closed: RST".to_string()
        } else {
            format!("{open} open, {} closed", n - open)
        };
        lines.push(format!("all {n} flows reach {dst} port {port} ({how})"));
    } else {
        let mut kinds: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for f in &failing {
            let k = match f.outcome {
                Outcome::Unreachable => format!(
                    "ICMP unreachable code {} ({}) from {}",
                    f.icmp_code.unwrap_or(0),
                    f.icmp_meaning.unwrap_or("?"),
                    f.reply_from
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "?".into())
                ),
                _ => "silent".to_string(),
            };
            kinds.entry(k).or_default().push(f.sport);
        }
        let kinds: Vec<String> = kinds
            .into_iter()
            .map(|(k, v)| format!("{} {k}", v.len()))
            .collect();
        lines.push(format!(
            "{}/{n} flows fail to reach {dst} port {port} ({}); {} reach it",
            failing.len(),
            kinds.join(", "),
            reached
        ));
    }

    // Failing flows by their last answering hop.
    let mut by_last: BTreeMap<(u8, IpAddr), Vec<u16>> = BTreeMap::new();
    for f in failing.iter().filter(|f| f.traced) {
        if let Some(h) = &f.last_responding_hop {
            if let Some(a) = h.address {
                by_last.entry((h.ttl, a)).or_default().push(f.sport);
            }
        }
    }
    let failing_last_hops: Vec<LastHop> = by_last
        .iter()
        .map(|((hop, address), sports)| LastHop {
            hop: *hop,
            address: *address,
            sports: sports.clone(),
        })
        .collect();
    let traced_failing = failing.iter().filter(|f| f.traced).count();
    if failing_last_hops.len() == 1 && failing_last_hops[0].sports.len() == traced_failing {
        let l = &failing_last_hops[0];
        lines.push(format!(
            "all {} pass {} at hop {} and die after it (last reply)",
            traced_failing, l.address, l.hop
        ));
    } else {
        for l in &failing_last_hops {
            lines.push(format!(
                "{} failing flow(s) ({}) last answered by {} at hop {}",
                l.sports.len(),
                ports(&l.sports),
                l.address,
                l.hop
            ));
        }
    }

    // Where the traced paths split.
    let max_ttl = traced
        .iter()
        .flat_map(|f| f.hops.iter().map(|h| h.ttl))
        .max()
        .unwrap_or(0);
    let mut divergence = None;
    for ttl in 1..=max_ttl {
        let addrs: BTreeSet<IpAddr> = traced.iter().filter_map(|f| f.hop(ttl)).collect();
        if addrs.len() > 1 {
            let prev: BTreeSet<IpAddr> = traced.iter().filter_map(|f| f.hop(ttl - 1)).collect();
            let branches = addrs
                .iter()
                .map(|a| {
                    let on: Vec<&&Flow> =
                        traced.iter().filter(|f| f.hop(ttl) == Some(*a)).collect();
                    Branch {
                        address: *a,
                        sports: on.iter().map(|f| f.sport).collect(),
                        reached: on.iter().filter(|f| f.outcome.reached()).count(),
                        failing: on.iter().filter(|f| f.failing()).count(),
                    }
                })
                .collect();
            divergence = Some(Divergence {
                hop: ttl,
                after: if prev.len() == 1 {
                    prev.into_iter().next()
                } else {
                    None
                },
                branches,
            });
            break;
        }
    }
    if let Some(d) = &divergence {
        let after = d.after.map(|a| format!(" (after {a})")).unwrap_or_default();
        let desc: Vec<String> = d
            .branches
            .iter()
            .map(|b| format!("{} for {} traced flow(s)", b.address, b.sports.len()))
            .collect();
        lines.push(format!(
            "paths split at hop {}{after}: {}",
            d.hop,
            desc.join(", ")
        ));
        for b in &d.branches {
            if b.failing == 0 && b.reached > 0 {
                lines.push(format!(
                    "all traced flows through {} reach the destination",
                    b.address
                ));
            } else if b.reached == 0 && b.failing > 0 {
                lines.push(format!("every traced flow through {} fails", b.address));
            } else {
                lines.push(format!(
                    "through {}: {} reach, {} fail",
                    b.address, b.reached, b.failing
                ));
            }
        }
    } else if traced.len() > 1 {
        lines.push(format!(
            "all {} traced flows take the same path",
            traced.len()
        ));
    }

    // Local ECMP: does the failing set line up with one of this host's next hops?
    let mut by_route: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in flows {
        if let Some(r) = &f.local_route {
            let k = match r.gateway {
                Some(g) => format!("{g} dev {}", r.dev),
                None => format!("dev {}", r.dev),
            };
            let e = by_route.entry(k).or_default();
            if f.failing() {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
    }
    if by_route.len() > 1 && !failing.is_empty() {
        for (k, (ok, bad)) in &by_route {
            lines.push(format!(
                "this host sends {} flow(s) via {k}: {ok} reach, {bad} fail",
                ok + bad
            ));
        }
    }
    if intermittent > 0 {
        lines.push(format!(
            "{intermittent} flow(s) gave different outcomes across attempts: random loss, not a deterministic blackhole"
        ));
    }
    let untraced_ok = flows
        .iter()
        .filter(|f| !f.traced && f.outcome.reached())
        .count();
    if untraced_ok > 0 && !traced.is_empty() {
        lines.push(format!(
            "{untraced_ok} reaching flow(s) not traced hop by hop (--hops all traces every flow)"
        ));
    }
    let by_record = flows.iter().filter(|f| f.hops_from.is_some()).count();
    if by_record > 0 {
        lines.push(format!(
            "hops of {by_record} flow(s) come from a traced flow with the same recorded route (IPv4 Record Route echoed by the destination)"
        ));
    }
    let rate_limited: usize = flows
        .iter()
        .flat_map(|f| f.hops.iter())
        .filter(|h| h.note == Some("rate-limited"))
        .count();
    if rate_limited > 0 {
        lines.push(format!(
            "{rate_limited} silent hop(s) are ICMP rate limiting, not loss (the router answers other probes)"
        ));
    }

    let mut groups: BTreeMap<Vec<Option<IpAddr>>, (Vec<u16>, Outcome)> = BTreeMap::new();
    for f in &traced {
        let path: Vec<Option<IpAddr>> = f.hops.iter().map(|h| h.address).collect();
        let e = groups.entry(path).or_insert((Vec::new(), f.outcome));
        e.0.push(f.sport);
    }
    let paths = groups
        .into_iter()
        .map(|(hops, (sports, outcome))| PathGroup {
            hops,
            sports,
            outcome,
        })
        .collect();

    Summary {
        flows: n,
        reached,
        failing: failing.len(),
        intermittent,
        traced: traced.len(),
        divergence,
        failing_last_hops,
        paths,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(ttl: u8, a: Option<&str>) -> Hop {
        Hop {
            ttl,
            address: a.map(|s| s.parse().expect("test fixture")),
            rtt_ms: Some(0.1),
            note: None,
        }
    }

    fn flow(sport: u16, outcome: Outcome, gw: &str) -> Flow {
        let reached = outcome.reached();
        let mut hops = vec![hop(1, Some("198.18.20.1")), hop(2, Some(gw))];
        if reached {
            hops.push(hop(3, Some("198.18.30.10")));
        } else {
            hops.push(hop(3, None));
        }
        Flow {
            sport,
            outcome,
            icmp_code: None,
            icmp_meaning: None,
            reply_from: None,
            rtt_ms: None,
            attempts: vec![outcome],
            consistent: true,
            local_route: None,
            traced: true,
            last_responding_hop: (!reached).then(|| hop(2, Some(gw))),
            recorded_route: None,
            hops_from: None,
            hops,
        }
    }

    #[test]
    fn names_the_hop_where_failing_flows_die_and_the_good_branch() {
        let flows = vec![
            flow(33000, Outcome::Open, "198.18.21.2"),
            flow(33001, Outcome::Silent, "198.18.22.2"),
            flow(33002, Outcome::Silent, "198.18.22.2"),
            flow(33003, Outcome::Open, "198.18.21.2"),
        ];
        let s = summarise(&flows, "198.18.30.10".parse().expect("test fixture"), 8080);
        assert_eq!((s.failing, s.reached), (2, 2));
        let d = s.divergence.as_ref().expect("split");
        assert_eq!(d.hop, 2);
        assert_eq!(d.after, Some("198.18.20.1".parse().expect("test fixture")));
        assert_eq!(d.branches.len(), 2);
        assert_eq!(s.failing_last_hops.len(), 1);
        assert_eq!(s.failing_last_hops[0].sports, vec![33001, 33002]);
        let text = s.lines.join("\n");
        assert!(text.contains("2/4 flows fail"), "{text}");
        assert!(text.contains("all 2 pass 198.18.22.2 at hop 2"), "{text}");
        assert!(
            text.contains("all traced flows through 198.18.21.2 reach"),
            "{text}"
        );
        assert!(
            text.contains("every traced flow through 198.18.22.2 fails"),
            "{text}"
        );
        assert_eq!(s.paths.len(), 2);
    }

    #[test]
    fn healthy_flows_say_so() {
        let flows = vec![
            flow(1, Outcome::Open, "198.18.21.2"),
            flow(2, Outcome::Closed, "198.18.21.2"),
        ];
        let s = summarise(&flows, "198.18.30.10".parse().expect("test fixture"), 80);
        assert!(s.lines[0].starts_with("all 2 flows reach"), "{:?}", s.lines);
        assert!(s.divergence.is_none());
        assert_eq!(ports(&[1, 2, 3, 5, 7, 8]), "1-3,5,7,8");
    }
}
