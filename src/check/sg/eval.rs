//! Walk one packet through the rules the way the kernel would, for iptables and nftables alike:
//! every base chain of the hook(s), in priority order (an accept ends only its own base chain;
//! drop and reject are final), jumps, gotos, RETURN and policies.
//!
//! Matching is three-valued. A condition the model cannot decide (an `-m set`, a remote address
//! that was not given, an unknown expression) forks the walk: both outcomes are followed and,
//! when they agree, the verdict stands (with a note); when they differ the result is
//! `Undetermined` at that rule. The evaluator never guesses.

use std::net::IpAddr;

use crate::collect::firewall::{
    proto, Cond, Counters, Match, Policy, PortRange, Rule, Table, Target,
};

/// An interface as the packet sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iface {
    Name(String),
    /// Some interface of this host that is not a VM tap (the uplink); which one is not known.
    Uplink,
    /// No interface (input hook has no out-interface).
    None,
}

/// The packet to evaluate. `None` fields are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub v6: bool,
    pub in_iface: Iface,
    pub out_iface: Iface,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP protocol number.
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMP type and code (echo request: 8/0, ICMPv6 128/0).
    pub icmp: Option<(u8, u8)>,
    /// Lower-case conntrack state; a first packet is "new".
    pub ct_state: String,
    /// Lower-case source MAC, when known.
    pub src_mac: Option<String>,
}

/// Which base chains to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    /// filter (and route) chains: accept/drop.
    Filter,
    /// nat chains: where the packet is sent.
    Nat,
}

/// The end of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
    Redirect(Option<PortRange>),
    Dnat {
        addr: Option<IpAddr>,
        port: Option<u16>,
    },
    Undetermined,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
            Verdict::Redirect(_) => "redirect",
            Verdict::Dnat { .. } => "dnat",
            Verdict::Undetermined => "undetermined",
        }
    }
}

/// A rule the walk went through (or the policy that decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `iptables-nft ip filter`, `nft inet vmsg`.
    pub table: String,
    pub chain: String,
    /// The rule text with counters in front (iptables-save style), or `policy drop`.
    pub rule: String,
    pub counters: Option<Counters>,
    /// The chain a jump or goto rule enters.
    pub jumps_to: Option<String>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.table, self.chain, self.rule)
    }
}

/// Result of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    /// The rule (or policy) that decided; for `Accept`, the last accepting rule; for
    /// `Undetermined`, the rule that could not be decided. `None` when no rule decided (every
    /// chain fell through to an accept policy).
    pub by: Option<Step>,
    /// For `Undetermined`: why the rule could not be decided.
    pub reason: Option<String>,
    /// Rules that matched, in order (jumps included). For `Undetermined`, up to the
    /// undecidable rule.
    pub trace: Vec<Step>,
    /// Undecidable rules whose outcome did not matter, and what each branch led to.
    pub notes: Vec<String>,
}

/// Most undecidable rules followed both ways before giving up (each fork is a few
/// microseconds; sequential irrelevant ones compound, so the budget is generous).
const MAX_FORKS: usize = 1024;
/// Deepest jump nesting (the kernel's limit is similar; deeper means a loop).
const MAX_DEPTH: usize = 64;
/// Most rules looked at in one evaluation, all forks together: a loop of gotos (which do not
/// nest) or rulesets built to explode the forks end here, undetermined, instead of growing the
/// trace without bound (found by fuzzing). A real packet meets a few thousand rules at most
/// (two per port in the shared chains of a host with 1000 ports).
const MAX_STEPS: usize = 200_000;
/// Most undecidable rules nested on one path (each is a recursion of the walker, and its stack
/// is bounded: a thread's is 2 MiB). Sequential undecidable rules whose outcome does not matter
/// nest one level each; real rulesets have a handful.
const MAX_FORK_DEPTH: usize = 96;

/// Walk `pkt` through the base chains of `hooks` (in that order; each hook's chains by
/// priority) of the tables that carry the packet's family.
pub fn evaluate(tables: &[Table], hooks: &[&str], kind: ChainKind, pkt: &Packet) -> Evaluation {
    let mut bases: Vec<(usize, usize, usize, i32)> = Vec::new(); // (hook order, prio, t, c)
    for (ti, t) in tables.iter().enumerate() {
        if !t.family.carries(pkt.v6) {
            continue;
        }
        for (ci, c) in t.chains.iter().enumerate() {
            let Some(h) = &c.hook else { continue };
            let Some(order) = hooks.iter().position(|x| *x == h.hook) else {
                continue;
            };
            let kind_ok = match kind {
                ChainKind::Filter => h.kind == "filter" || h.kind == "route",
                ChainKind::Nat => h.kind == "nat",
            };
            if kind_ok {
                bases.push((order, ti, ci, h.priority));
            }
        }
    }
    bases.sort_by_key(|&(order, _, _, prio)| (order, prio));
    let mut w = Walker {
        tables,
        bases: bases.iter().map(|&(_, t, c, _)| (t, c)).collect(),
        pkt,
        forks: 0,
        steps: 0,
        depth: 0,
    };
    w.run(State::default())
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    t: usize,
    c: usize,
    r: usize,
}

#[derive(Debug, Clone, Default)]
struct State {
    base: usize,
    stack: Vec<Frame>,
    trace: Vec<Step>,
    notes: Vec<String>,
    accepted_by: Option<Step>,
    /// What a branch learned about an unknown (uplink) interface: on the branch where a rule
    /// naming one interface matched, the packet came in (went out) by that interface, so later
    /// rules naming other interfaces are decided there instead of forking again.
    in_iface: Option<Iface>,
    out_iface: Option<Iface>,
}

struct Walker<'a> {
    tables: &'a [Table],
    bases: Vec<(usize, usize)>,
    pkt: &'a Packet,
    forks: usize,
    /// Rules looked at so far (see [`MAX_STEPS`]).
    steps: usize,
    /// Forks nested at this point of the walk (see [`MAX_FORK_DEPTH`]).
    depth: usize,
}

enum Tri {
    Yes,
    No,
    Unknown(String),
}

impl<'a> Walker<'a> {
    fn step(&self, t: usize, c: usize, rule: &Rule) -> Step {
        Step {
            table: self.tables[t].label(),
            chain: self.tables[t].chains[c].name.clone(),
            rule: rule.display(),
            counters: rule.counters,
            jumps_to: match &rule.target {
                Target::Jump(c) | Target::Goto(c) => Some(c.clone()),
                _ => None,
            },
        }
    }

    fn done(st: State, verdict: Verdict, by: Option<Step>, reason: Option<String>) -> Evaluation {
        Evaluation {
            verdict,
            by,
            reason,
            trace: st.trace,
            notes: st.notes,
        }
    }

    /// The current base chain ended (fell off its end or RETURNed): apply its policy.
    fn end_of_base(&self, mut st: State) -> Result<State, Box<Evaluation>> {
        let (t, c) = self.bases[st.base];
        let chain = &self.tables[t].chains[c];
        if chain.policy == Some(Policy::Drop) {
            let by = Step {
                table: self.tables[t].label(),
                chain: chain.name.clone(),
                rule: "policy drop".into(),
                counters: None,
                jumps_to: None,
            };
            return Err(Box::new(Self::done(st, Verdict::Drop, Some(by), None)));
        }
        st.stack.clear();
        st.base += 1;
        Ok(st)
    }

    fn run(&mut self, mut st: State) -> Evaluation {
        loop {
            if st.stack.is_empty() {
                let Some(&(t, c)) = self.bases.get(st.base) else {
                    let by = st.accepted_by.take();
                    return Self::done(st, Verdict::Accept, by, None);
                };
                st.stack.push(Frame { t, c, r: 0 });
            }
            if st.stack.len() > MAX_DEPTH {
                let reason = format!("jumps nest deeper than {MAX_DEPTH}: a chain loop?");
                return Self::done(st, Verdict::Undetermined, None, Some(reason));
            }
            let Some(f) = st.stack.last_mut() else {
                continue;
            };
            let (t, c) = (f.t, f.c);
            let chain = &self.tables[t].chains[c];
            if f.r >= chain.rules.len() {
                st.stack.pop();
                if st.stack.is_empty() {
                    match self.end_of_base(st) {
                        Ok(next) => st = next,
                        Err(ev) => return *ev,
                    }
                }
                continue;
            }
            let rule = &chain.rules[f.r];
            f.r += 1;
            self.steps += 1;
            if self.steps > MAX_STEPS {
                let reason = format!(
                    "more than {MAX_STEPS} rules looked at for one packet: a loop of gotos, or forks without end"
                );
                return Self::done(
                    st,
                    Verdict::Undetermined,
                    Some(self.step(t, c, rule)),
                    Some(reason),
                );
            }
            if matches!(rule.target, Target::Continue(_)) {
                continue;
            }
            match self.rule_matches(rule, &st) {
                Tri::No => {}
                Tri::Yes => match self.apply(st, t, c, rule) {
                    Ok(next) => st = next,
                    Err(ev) => return *ev,
                },
                Tri::Unknown(reason) => {
                    let step = self.step(t, c, rule);
                    if self.forks >= MAX_FORKS || self.depth >= MAX_FORK_DEPTH {
                        let r = format!("{reason} (too many undecidable rules to follow)");
                        return Self::done(st, Verdict::Undetermined, Some(step), Some(r));
                    }
                    self.forks += 1;
                    self.depth += 1;
                    let prefix = st.trace.len();
                    let mut if_yes = st.clone();
                    self.learn(rule, &mut if_yes);
                    let yes = match self.apply(if_yes, t, c, rule) {
                        Ok(next) => self.run(next),
                        Err(ev) => *ev,
                    };
                    let no = self.run(st);
                    self.depth -= 1;
                    return combine(step, reason, yes, no, prefix);
                }
            }
        }
    }

    /// Apply a matched rule's target. `Err` carries a final evaluation.
    fn apply(
        &self,
        mut st: State,
        t: usize,
        c: usize,
        rule: &Rule,
    ) -> Result<State, Box<Evaluation>> {
        let step = self.step(t, c, rule);
        st.trace.push(step.clone());
        match &rule.target {
            Target::Accept => {
                st.accepted_by = Some(step);
                st.stack.clear();
                st.base += 1;
                Ok(st)
            }
            Target::Drop => Err(Box::new(Self::done(st, Verdict::Drop, Some(step), None))),
            Target::Reject(_) => Err(Box::new(Self::done(st, Verdict::Reject, Some(step), None))),
            Target::Redirect(p) => Err(Box::new(Self::done(
                st,
                Verdict::Redirect(*p),
                Some(step),
                None,
            ))),
            Target::Dnat { addr, port } => Err(Box::new(Self::done(
                st,
                Verdict::Dnat {
                    addr: *addr,
                    port: *port,
                },
                Some(step),
                None,
            ))),
            Target::Return => {
                st.stack.pop();
                if st.stack.is_empty() {
                    return self.end_of_base(st);
                }
                Ok(st)
            }
            Target::Jump(name) | Target::Goto(name) => {
                let Some(ci) = self.tables[t].chain_index(name) else {
                    let reason = format!("it jumps to chain {name}, which does not exist");
                    return Err(Box::new(Self::done(
                        st,
                        Verdict::Undetermined,
                        Some(step),
                        Some(reason),
                    )));
                };
                if matches!(rule.target, Target::Goto(_)) {
                    st.stack.pop();
                    if st.stack.is_empty() {
                        // A goto from the base chain: when the target ends, the base policy applies.
                        st.stack.push(Frame {
                            t,
                            c,
                            r: usize::MAX,
                        });
                    }
                }
                st.stack.push(Frame { t, c: ci, r: 0 });
                Ok(st)
            }
            Target::Continue(_) => Ok(st),
            Target::Other(what) => {
                let reason = format!("its target `{what}` is not modelled");
                Err(Box::new(Self::done(
                    st,
                    Verdict::Undetermined,
                    Some(step),
                    Some(reason),
                )))
            }
        }
    }

    /// On the branch where `rule` matched: an unknown interface it names as one literal name
    /// (not negated, no wildcard) is that name.
    fn learn(&self, rule: &Rule, st: &mut State) {
        for m in rule.matches.iter().filter(|m| !m.negated) {
            let (pats, known, slot) = match &m.cond {
                Cond::InIface(p) | Cond::PhysIn(p) => {
                    (p, st.in_iface.as_ref().unwrap_or(&self.pkt.in_iface), 0)
                }
                Cond::OutIface(p) | Cond::PhysOut(p) => {
                    (p, st.out_iface.as_ref().unwrap_or(&self.pkt.out_iface), 1)
                }
                _ => continue,
            };
            if *known != Iface::Uplink {
                continue;
            }
            if let [one] = pats.as_slice() {
                if !one.ends_with('+') && !one.ends_with('*') {
                    let named = Some(Iface::Name(one.clone()));
                    if slot == 0 {
                        st.in_iface = named;
                    } else {
                        st.out_iface = named;
                    }
                }
            }
        }
    }

    fn rule_matches(&self, rule: &Rule, st: &State) -> Tri {
        let mut unknown = None;
        for m in &rule.matches {
            match self.match_one(m, st) {
                Tri::No => return Tri::No,
                Tri::Unknown(r) => {
                    unknown.get_or_insert(r);
                }
                Tri::Yes => {}
            }
        }
        match unknown {
            Some(r) => Tri::Unknown(r),
            None => Tri::Yes,
        }
    }

    fn match_one(&self, m: &Match, st: &State) -> Tri {
        let r = self.cond(&m.cond, st);
        if !m.negated {
            return r;
        }
        match r {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            u => u,
        }
    }

    fn cond(&self, c: &Cond, st: &State) -> Tri {
        let p = self.pkt;
        let any = |v: bool| if v { Tri::Yes } else { Tri::No };
        match c {
            Cond::InIface(pats) | Cond::PhysIn(pats) => {
                iface(pats, st.in_iface.as_ref().unwrap_or(&p.in_iface), "in")
            }
            Cond::OutIface(pats) | Cond::PhysOut(pats) => {
                iface(pats, st.out_iface.as_ref().unwrap_or(&p.out_iface), "out")
            }
            Cond::Src(nets) => addr(nets, p.src, p.v6, "source"),
            Cond::Dst(nets) => addr(nets, p.dst, p.v6, "destination"),
            Cond::Proto(list) => any(list.contains(&p.proto)),
            Cond::Sport(r) => port(r, p.sport, p.proto, "source port"),
            Cond::Dport(r) => port(r, p.dport, p.proto, "destination port"),
            Cond::CtState(states) => any(states.contains(&p.ct_state)),
            Cond::MacSrc(macs) => match &p.src_mac {
                Some(m) => any(macs.iter().any(|x| x.eq_ignore_ascii_case(m))),
                None => Tri::Unknown("the source MAC of this traffic is not known".into()),
            },
            Cond::IcmpType(types) => match p.icmp {
                Some((ty, code)) => any(types
                    .iter()
                    .any(|(t, c)| *t == ty && c.is_none_or(|c| c == code))),
                None => Tri::No,
            },
            Cond::Ipv6(v6) => any(*v6 == p.v6),
            Cond::Unsupported(what) => Tri::Unknown(format!("`{what}` is not modelled")),
        }
    }
}

fn combine(
    step: Step,
    reason: String,
    yes: Evaluation,
    no: Evaluation,
    prefix: usize,
) -> Evaluation {
    let outcome = |e: &Evaluation| match (&e.verdict, &e.by) {
        (Verdict::Undetermined, _) => "undetermined".to_string(),
        (v, Some(by)) => format!("{} by {}", v.as_str(), by),
        (v, None) => format!("{} (no rule decided)", v.as_str()),
    };
    if yes.verdict == no.verdict && yes.verdict != Verdict::Undetermined {
        let mut ev = no;
        ev.notes.insert(
            0,
            format!(
                "could not decide {step} ({reason}); either way the packet is {}",
                ev.verdict.as_str()
            ),
        );
        return ev;
    }
    let mut notes = vec![
        format!("if it matches: {}", outcome(&yes)),
        format!("if not: {}", outcome(&no)),
    ];
    notes.extend(no.notes);
    let mut trace = no.trace;
    trace.truncate(prefix);
    Evaluation {
        verdict: Verdict::Undetermined,
        by: Some(step),
        reason: Some(reason),
        trace,
        notes,
    }
}

/// Does an iptables (`+`) or nft (`*`) interface pattern match a name?
pub fn iface_pattern_matches(pat: &str, name: &str) -> bool {
    match pat.strip_suffix('+').or_else(|| pat.strip_suffix('*')) {
        Some(prefix) => name.starts_with(prefix),
        None => pat == name,
    }
}

/// True when every name the pattern matches is a VM tap (`tap...`).
fn only_taps(pat: &str) -> bool {
    pat.starts_with("tap")
}

fn iface(pats: &[String], i: &Iface, dir: &str) -> Tri {
    let mut unknown = None;
    for p in pats {
        let r = match i {
            Iface::Name(n) => iface_pattern_matches(p, n),
            Iface::None => false,
            Iface::Uplink => {
                if p == "+" || p == "*" {
                    true
                } else if only_taps(p) {
                    false
                } else {
                    unknown.get_or_insert_with(|| {
                        format!(
                            "the {dir}-interface (the uplink) is not known and the rule names {p}"
                        )
                    });
                    continue;
                }
            }
        };
        if r {
            return Tri::Yes;
        }
    }
    match unknown {
        Some(u) => Tri::Unknown(u),
        None => Tri::No,
    }
}

fn addr(nets: &[crate::collect::firewall::Net], a: Option<IpAddr>, v6: bool, what: &str) -> Tri {
    match a {
        Some(a) => {
            if nets.iter().any(|n| n.contains(&a)) {
                Tri::Yes
            } else {
                Tri::No
            }
        }
        None => {
            let same: Vec<_> = nets.iter().filter(|n| n.is_v6() == v6).collect();
            if same.iter().any(|n| n.is_any()) {
                Tri::Yes
            } else if same.is_empty() {
                Tri::No
            } else {
                let list: Vec<String> = same.iter().map(|n| n.to_string()).collect();
                Tri::Unknown(format!(
                    "the remote {what} address was not given and the rule matches {}",
                    list.join(",")
                ))
            }
        }
    }
}

fn port(ranges: &[PortRange], p: Option<u16>, protocol: u8, what: &str) -> Tri {
    if !proto::has_ports(protocol) {
        return Tri::No;
    }
    match p {
        Some(p) => {
            if ranges.iter().any(|r| r.contains(p)) {
                Tri::Yes
            } else {
                Tri::No
            }
        }
        None if ranges.iter().any(|r| r.lo == 0 && r.hi == u16::MAX) => Tri::Yes,
        None => {
            let list: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
            Tri::Unknown(format!(
                "the {what} is not known (ephemeral) and the rule matches {}",
                list.join(",")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::firewall::{iptables, nft, Backend, Family};

    const TAP: &str = "tap3f1c2a4e-5b";
    const VM: &str = "198.51.100.11";
    const MAC: &str = "fa:16:3e:00:00:01";

    fn fx(name: &str) -> Vec<Table> {
        let text = match name {
            "ipt-healthy" => include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/ipt-healthy.save"
            )),
            "ipt-drop22" => include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/ipt-drop22.save"
            )),
            "ipt-set" => include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/ipt-set.save"
            )),
            "legacy-healthy" => include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/legacy-healthy.save"
            )),
            "nft-healthy" => {
                return nft::parse_json(include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/fw/nft-healthy.json"
                )))
                .expect("test fixture")
            }
            "nft-drop22" => {
                return nft::parse_json(include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/fw/nft-drop22.json"
                )))
                .expect("test fixture")
            }
            "nft-set" => {
                return nft::parse_json(include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/fw/nft-set.json"
                )))
                .expect("test fixture")
            }
            _ => panic!("no fixture {name}"),
        };
        iptables::parse_save(text, Backend::IptablesNft, Family::Ip)
    }

    fn to_vm(proto: u8, dport: Option<u16>) -> Packet {
        Packet {
            v6: false,
            in_iface: Iface::Uplink,
            out_iface: Iface::Name(TAP.into()),
            src: None,
            dst: Some(VM.parse().expect("test fixture")),
            proto,
            sport: None,
            dport,
            icmp: (proto == proto::ICMP).then_some((8, 0)),
            ct_state: "new".into(),
            src_mac: None,
        }
    }

    fn from_vm(proto: u8, dport: Option<u16>) -> Packet {
        Packet {
            in_iface: Iface::Name(TAP.into()),
            out_iface: Iface::Uplink,
            src: Some(VM.parse().expect("test fixture")),
            dst: None,
            src_mac: Some(MAC.into()),
            ..to_vm(proto, dport)
        }
    }

    fn fwd(ts: &[Table], p: &Packet) -> Evaluation {
        evaluate(ts, &["prerouting", "forward"], ChainKind::Filter, p)
    }

    #[test]
    fn healthy_iptables_and_nft_agree() {
        for f in ["ipt-healthy", "legacy-healthy", "nft-healthy"] {
            let ts = fx(f);
            let e = fwd(&ts, &to_vm(proto::TCP, Some(22)));
            assert_eq!(e.verdict, Verdict::Accept, "{f} tcp/22: {e:?}");
            let e = fwd(&ts, &to_vm(proto::TCP, Some(80)));
            assert_eq!(e.verdict, Verdict::Drop, "{f} tcp/80: {e:?}");
            let by = e.by.expect("test fixture");
            assert!(
                by.chain.ends_with("sg-fallback") || by.rule.contains("sg-fallback"),
                "{by}"
            );
            let e = fwd(&ts, &to_vm(proto::ICMP, None));
            assert_eq!(e.verdict, Verdict::Accept, "{f} icmp: {e:?}");
            let e = fwd(&ts, &from_vm(proto::UDP, Some(53)));
            assert_eq!(e.verdict, Verdict::Accept, "{f} out udp/53: {e:?}");
            let e = fwd(&ts, &from_vm(proto::UDP, Some(123)));
            assert_eq!(e.verdict, Verdict::Drop, "{f} out udp/123: {e:?}");
        }
    }

    #[test]
    fn trace_shows_the_path() {
        let ts = fx("ipt-healthy");
        let e = fwd(&ts, &to_vm(proto::TCP, Some(22)));
        let chains: Vec<&str> = e.trace.iter().map(|s| s.chain.as_str()).collect();
        assert_eq!(
            chains,
            [
                "FORWARD",
                "neutron-l2iso-FORWARD",
                "neutron-l2iso-sg-chain",
                "neutron-l2iso-i3f1c2a4e-5",
                "neutron-l2iso-sg-chain"
            ]
        );
        assert_eq!(
            e.trace[3].rule,
            "[2:120] -A neutron-l2iso-i3f1c2a4e-5 -p tcp -m tcp --dport 22 -j RETURN"
        );
        assert_eq!(
            e.by.expect("test fixture").rule,
            "[26:1558] -A neutron-l2iso-sg-chain -j ACCEPT"
        );
        // Falling through every chain: nothing decided.
        let e = fwd(
            &mini(""),
            &Packet {
                ..to_vm(proto::TCP, Some(22))
            },
        );
        assert_eq!(e.verdict, Verdict::Drop);
        let ts = iptables::parse_save(
            "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n",
            Backend::IptablesNft,
            Family::Ip,
        );
        let e = fwd(&ts, &to_vm(proto::TCP, Some(22)));
        assert_eq!((e.verdict, e.by), (Verdict::Accept, None));
    }

    #[test]
    fn spoofed_source_is_dropped_by_the_s_chain() {
        let ts = fx("ipt-healthy");
        let mut p = from_vm(proto::TCP, Some(443));
        p.src = Some("198.51.100.99".parse().expect("test fixture"));
        let e = fwd(&ts, &p);
        assert_eq!(e.verdict, Verdict::Drop);
        assert_eq!(
            e.by.expect("test fixture").chain,
            "neutron-l2iso-s3f1c2a4e-5"
        );
        let mut p = from_vm(proto::TCP, Some(443));
        p.src_mac = Some("fa:16:3e:99:99:99".into());
        assert_eq!(fwd(&fx("nft-healthy"), &p).verdict, Verdict::Drop);
    }

    #[test]
    fn explicit_drop_is_named() {
        for f in ["ipt-drop22", "nft-drop22"] {
            let e = fwd(&fx(f), &to_vm(proto::TCP, Some(22)));
            assert_eq!(e.verdict, Verdict::Drop);
            let by = e.by.expect("test fixture");
            assert!(
                by.rule.contains("22") && by.rule.to_lowercase().contains("drop"),
                "{f}: {by}"
            );
            assert_eq!(by.counters.expect("test fixture").packets, 4);
        }
    }

    #[test]
    fn set_match_is_undetermined_and_only_where_it_matters() {
        for f in ["ipt-set", "nft-set"] {
            let ts = fx(f);
            let e = fwd(&ts, &to_vm(proto::TCP, Some(80)));
            assert_eq!(e.verdict, Verdict::Undetermined, "{f}: {e:?}");
            let by = e.by.expect("test fixture");
            assert!(
                by.rule.contains("set") || by.rule.contains("@rg_web"),
                "{f}: {by}"
            );
            assert!(
                e.notes[0].starts_with("if it matches: accept"),
                "{:?}",
                e.notes
            );
            assert!(e.notes[1].starts_with("if not: drop"), "{:?}", e.notes);
            assert!(
                e.trace
                    .iter()
                    .all(|s| !s.rule.to_lowercase().contains("drop")),
                "{:?}",
                e.trace
            );
            // tcp/22 is decided before/independently of the set rule.
            assert_eq!(
                fwd(&ts, &to_vm(proto::TCP, Some(22))).verdict,
                Verdict::Accept
            );
            // With the peer given, nft resolves its named set; -m set stays undecidable.
            let mut p = to_vm(proto::TCP, Some(80));
            p.src = Some("203.0.113.10".parse().expect("test fixture"));
            let want = if f == "nft-set" {
                Verdict::Accept
            } else {
                Verdict::Undetermined
            };
            assert_eq!(fwd(&ts, &p).verdict, want, "{f}");
            p.src = Some("192.0.2.7".parse().expect("test fixture"));
            let want = if f == "nft-set" {
                Verdict::Drop
            } else {
                Verdict::Undetermined
            };
            assert_eq!(fwd(&ts, &p).verdict, want, "{f}");
        }
    }

    #[test]
    fn nat_prerouting_redirects_metadata() {
        for f in ["ipt-healthy", "nft-healthy"] {
            let ts = fx(f);
            let p = Packet {
                dst: Some("169.254.169.254".parse().expect("test fixture")),
                dport: Some(80),
                ..from_vm(proto::TCP, Some(80))
            };
            let e = evaluate(&ts, &["prerouting"], ChainKind::Nat, &p);
            assert_eq!(
                e.verdict,
                Verdict::Redirect(Some(PortRange::one(9697))),
                "{f}: {e:?}"
            );
            let p = Packet {
                dst: Some("192.0.2.1".parse().expect("test fixture")),
                ..p
            };
            let e = evaluate(&ts, &["prerouting"], ChainKind::Nat, &p);
            assert_eq!(e.verdict, Verdict::Accept, "{f}");
        }
    }

    fn mini(rules: &str) -> Vec<Table> {
        iptables::parse_save(
            &format!("*filter\n:FORWARD DROP [0:0]\n:a - [0:0]\n:b - [0:0]\n{rules}COMMIT\n"),
            Backend::IptablesLegacy,
            Family::Ip,
        )
    }

    #[test]
    fn policies_gotos_returns_and_undecidable_but_irrelevant_rules() {
        let p = to_vm(proto::TCP, Some(22));
        // Falling off a DROP-policy chain.
        let e = fwd(&mini("-A FORWARD -p udp -j ACCEPT\n"), &p);
        assert_eq!(e.verdict, Verdict::Drop);
        assert_eq!(e.by.expect("test fixture").rule, "policy drop");
        // goto: RETURN in the goto'd chain returns past the caller.
        let ts = mini("-A FORWARD -g a\n-A FORWARD -j ACCEPT\n-A a -j RETURN\n");
        assert_eq!(fwd(&ts, &p).verdict, Verdict::Drop);
        let ts = mini("-A FORWARD -j a\n-A FORWARD -j ACCEPT\n-A a -j RETURN\n");
        assert_eq!(fwd(&ts, &p).verdict, Verdict::Accept);
        // A remote-address rule that leads to the same verdict either way does not matter.
        let ts = mini("-A FORWARD -s 192.0.2.0/24 -j b\n-A FORWARD -j ACCEPT\n-A b -j ACCEPT\n");
        let e = fwd(&ts, &p);
        assert_eq!(e.verdict, Verdict::Accept);
        assert!(
            e.notes[0].contains("either way the packet is accept"),
            "{:?}",
            e.notes
        );
        // ...but one that decides is undetermined, naming it.
        let ts = mini("-A FORWARD -s 192.0.2.0/24 -j ACCEPT\n");
        let e = fwd(&ts, &p);
        assert_eq!(e.verdict, Verdict::Undetermined);
        assert!(e
            .reason
            .expect("test fixture")
            .contains("remote source address was not given"));
        // Unknown uplink names fork; tap-only patterns do not.
        let ts = mini("-A FORWARD -i tap+ -j ACCEPT\n-A FORWARD -i eth0 -j ACCEPT\n");
        let e = fwd(&ts, &p);
        assert_eq!(e.verdict, Verdict::Undetermined);
        assert!(e.by.expect("test fixture").rule.contains("-i eth0"));
        // Jump to a missing chain.
        let ts = mini("-A FORWARD -j nowhere\n");
        let e = fwd(&ts, &p);
        assert_eq!(e.verdict, Verdict::Undetermined);
        assert!(e
            .reason
            .expect("test fixture")
            .contains("`nowhere` is not modelled"));
        // A loop is cut.
        let ts = mini("-A FORWARD -j a\n-A a -j b\n-A b -j a\n");
        let e = fwd(&ts, &p);
        assert_eq!(e.verdict, Verdict::Undetermined);
        assert!(e.reason.expect("test fixture").contains("loop"));
    }

    #[test]
    fn many_irrelevant_undecidable_rules_stay_within_budget() {
        // Eight uplink-interface rules in a row whose outcome does not matter (Docker-style).
        let mut rules = String::new();
        for i in 0..8 {
            rules.push_str(&format!("-A FORWARD -i eth{i} -j a\n"));
        }
        rules.push_str(
            "-A FORWARD -o tap3f1c2a4e-5b -p tcp -m tcp --dport 22 -j ACCEPT\n-A a -j RETURN\n",
        );
        let t = std::time::Instant::now();
        let e = fwd(&mini(&rules), &to_vm(proto::TCP, Some(22)));
        assert_eq!(e.verdict, Verdict::Accept, "{e:?}");
        assert!(t.elapsed() < std::time::Duration::from_millis(200));
        let e = fwd(&mini(&rules), &to_vm(proto::TCP, Some(80)));
        assert_eq!(e.verdict, Verdict::Drop);
        assert_eq!(e.by.expect("test fixture").rule, "policy drop");
    }

    #[test]
    fn a_branch_that_matched_an_uplink_name_knows_it() {
        // Thirty uplink rules in a row: once a branch has matched `-i ethK`, the later `-i ethJ`
        // are decided there: thirty forks, not 2^30 (which would exhaust the budget).
        let mut rules = String::new();
        for i in 0..30 {
            rules.push_str(&format!("-A FORWARD -i eth{i} -j a\n"));
        }
        rules.push_str(
            "-A FORWARD -o tap3f1c2a4e-5b -p tcp -m tcp --dport 22 -j ACCEPT\n-A a -j RETURN\n",
        );
        let e = fwd(&mini(&rules), &to_vm(proto::TCP, Some(22)));
        assert_eq!(e.verdict, Verdict::Accept, "{e:?}");
        let e = fwd(&mini(&rules), &to_vm(proto::TCP, Some(80)));
        assert_eq!(e.verdict, Verdict::Drop, "{e:?}");
        // A wildcard or a negation teaches nothing: `-i eth+` then `-i eth1` still forks.
        let e = fwd(
            &mini("-A FORWARD -i eth+ -j a\n-A FORWARD ! -i eth1 -j DROP\n-A a -j RETURN\n-A FORWARD -j ACCEPT\n"),
            &to_vm(proto::TCP, Some(22)),
        );
        assert_eq!(e.verdict, Verdict::Undetermined, "{e:?}");
    }

    #[test]
    fn goto_loops_and_endless_forks_end_undetermined_within_bounds() {
        // A chain that goes to itself (gotos do not nest): found by fuzzing as endless growth.
        let e = fwd(
            &mini("-A FORWARD -j a\n-A a -g a\n"),
            &to_vm(proto::TCP, Some(22)),
        );
        assert_eq!(e.verdict, Verdict::Undetermined, "{e:?}");
        assert!(
            e.reason
                .as_deref()
                .is_some_and(|r| r.contains("rules looked at")),
            "{e:?}"
        );
        // Hundreds of undecidable rules in a row, each a fork that nests: on a thread with the
        // default 2 MiB stack, no overflow.
        let mut rules = String::new();
        for i in 0..600 {
            rules.push_str(&format!("-A FORWARD -i eth{i} -j DROP\n"));
        }
        let t = mini(&rules);
        let e = std::thread::spawn(move || fwd(&t, &to_vm(proto::TCP, Some(22))))
            .join()
            .expect("no stack overflow");
        assert_eq!(e.verdict, Verdict::Undetermined, "{e:?}");
    }

    #[test]
    fn nft_accept_does_not_skip_later_base_chains() {
        let j = r#"{"nftables":[{"table":{"family":"inet","name":"a","handle":1}},
          {"chain":{"family":"inet","table":"a","name":"early","handle":1,"type":"filter","hook":"forward","prio":-10,"policy":"accept"}},
          {"rule":{"family":"inet","table":"a","chain":"early","handle":2,"expr":[{"accept":null}]}},
          {"table":{"family":"ip","name":"b","handle":2}},
          {"chain":{"family":"ip","table":"b","name":"late","handle":1,"type":"filter","hook":"forward","prio":10,"policy":"accept"}},
          {"rule":{"family":"ip","table":"b","chain":"late","handle":2,"expr":[
            {"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},{"counter":{"packets":1,"bytes":2}},{"drop":null}]}}]}"#;
        let ts = nft::parse_json(j).expect("test fixture");
        let e = fwd(&ts, &to_vm(proto::TCP, Some(22)));
        assert_eq!(e.verdict, Verdict::Drop);
        assert_eq!(e.by.expect("test fixture").table, "nft ip b");
        // IPv6 packets do not traverse the ip table.
        let mut p = to_vm(proto::TCP, Some(22));
        p.v6 = true;
        p.dst = Some("2001:db8::11".parse().expect("test fixture"));
        assert_eq!(fwd(&ts, &p).verdict, Verdict::Accept);
    }
}
