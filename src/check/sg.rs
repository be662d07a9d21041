//! Security-group checks for one port: `sg.chains` (the port's chains exist and are hooked),
//! `sg.drops` (no explicit rule other than the defaults is dropping the VM's traffic) and
//! `sg.flow` (a given flow is accepted). Pure: firewall facts in, findings out.
//!
//! Per-port chains are recognised by name — Neutron `neutron-<agent>-{i,o,s}<port10>`, Calico
//! `cali-{tw,fw}-<tap>` and any chain named `...{tw,fw}-<tap>` — and, where no naming scheme is in
//! use, as the chains that rules matching exactly this tap (`-i/-o`, physdev, nft
//! `iifname/oifname`) jump to from the hooked base chains.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::net::IpAddr;

use crate::collect::firewall::eval::{self, ChainKind, Evaluation, Iface, Packet, Verdict};
use crate::collect::firewall::{proto, Backend, Chain, Cond, FirewallFacts, Rule, Table};
use crate::model::Check;

/// The port the checks are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgPort {
    /// `tap` + the first 11 characters of the port UUID.
    pub tap: String,
    /// Full port UUID, or at least its first 10 characters (the tap's suffix will do).
    pub port_id: String,
    pub ips: Vec<IpAddr>,
    /// Lower-case MAC of the port, when known (anti-spoofing rules match it).
    pub mac: Option<String>,
}

impl SgPort {
    pub fn new(tap: &str, port_id: &str, ips: &[IpAddr], mac: Option<&str>) -> Self {
        SgPort {
            tap: tap.to_string(),
            port_id: port_id.to_string(),
            ips: ips.to_vec(),
            mac: mac.map(str::to_ascii_lowercase),
        }
    }
    /// First 10 characters of the port UUID, as Neutron's chain names carry them.
    pub fn port10(&self) -> String {
        let id = self.port_id.to_ascii_lowercase();
        if let Some(p) = id.get(..10) {
            if p.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return p.to_string();
            }
        }
        self.tap.get(3..13).unwrap_or("").to_ascii_lowercase()
    }
}

/// Direction of a flow relative to the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic to the VM (`in:`, the default).
    ToVm,
    /// Traffic from the VM (`out:`).
    FromVm,
}

/// Protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowProto {
    Tcp,
    Udp,
    Icmp,
}

/// A flow to evaluate: `[in:|out:]PROTO[/PORT][@PEER]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub dir: Direction,
    pub proto: FlowProto,
    /// Destination port (tcp/udp only).
    pub port: Option<u16>,
    /// The remote end; `None`: any (rules on a specific remote address make the result
    /// undetermined unless they cannot change it).
    pub peer: Option<IpAddr>,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dir == Direction::FromVm {
            f.write_str("out:")?;
        }
        f.write_str(match self.proto {
            FlowProto::Tcp => "tcp",
            FlowProto::Udp => "udp",
            FlowProto::Icmp => "icmp",
        })?;
        if let Some(p) = self.port {
            write!(f, "/{p}")?;
        }
        if let Some(a) = self.peer {
            write!(f, "@{a}")?;
        }
        Ok(())
    }
}

const FLOW_FORMS: &str = "expected [in:|out:]PROTO[/PORT][@PEER]: tcp/22, out:udp/53, icmp, \
    tcp/443@203.0.113.10 (in = to the VM, the default; out = from the VM; PROTO = tcp, udp or icmp)";

/// Parse a `--flow` value. The error lists the accepted forms.
pub fn parse_flow(s: &str) -> Result<Flow, String> {
    let bad = |why: &str| format!("invalid flow {s:?}: {why}; {FLOW_FORMS}");
    let t = s.trim().to_ascii_lowercase();
    let (dir, rest) = if let Some(r) = t.strip_prefix("out:") {
        (Direction::FromVm, r)
    } else if let Some(r) = t.strip_prefix("in:") {
        (Direction::ToVm, r)
    } else {
        (Direction::ToVm, t.as_str())
    };
    let (spec, peer) = match rest.split_once('@') {
        Some((a, p)) => (
            a,
            Some(
                p.parse::<IpAddr>()
                    .map_err(|_| bad(&format!("{p:?} is not an IP address")))?,
            ),
        ),
        None => (rest, None),
    };
    let (p, port) = match spec.split_once('/') {
        Some((p, port)) => (p, Some(port)),
        None => (spec, None),
    };
    let proto = match p {
        "tcp" => FlowProto::Tcp,
        "udp" => FlowProto::Udp,
        "icmp" | "icmpv6" | "ping" => FlowProto::Icmp,
        "" => return Err(bad("no protocol")),
        other => return Err(bad(&format!("unknown protocol {other:?}"))),
    };
    let port = match (proto, port) {
        (FlowProto::Icmp, None) => None,
        (FlowProto::Icmp, Some(_)) => return Err(bad("icmp takes no port")),
        (_, None) => return Err(bad("tcp and udp need a port")),
        (_, Some(n)) => match n.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(bad(&format!("{n:?} is not a port (1-65535)"))),
        },
    };
    Ok(Flow {
        dir,
        proto,
        port,
        peer,
    })
}

/// All security-group checks for a port: `sg.chains`, `sg.drops`, and `sg.flow` when a flow
/// is given.
pub fn checks(fw: &FirewallFacts, port: &SgPort, flow: Option<&Flow>) -> Vec<Check> {
    let mut out = vec![check_chains(fw, port), check_drops(fw, port)];
    if let Some(f) = flow {
        out.extend(check_flow(fw, port, f));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Chain discovery

/// Which way a per-port chain filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    /// Traffic to the VM (Neutron `i`, Calico `tw`).
    To,
    /// Traffic from the VM (Neutron `o`, Calico `fw`).
    From,
    /// Neutron's anti-spoofing chain (`s`), reached from the `o` chain.
    Spoof,
}

impl Dir {
    fn label(self) -> &'static str {
        match self {
            Dir::To => "to VM",
            Dir::From => "from VM",
            Dir::Spoof => "anti-spoofing",
        }
    }
}

/// Whose per-port chain a name is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Port10(String),
    Iface(String),
}

/// A chain name's owner scheme, port and direction.
fn classify(name: &str) -> Option<(Key, Dir, String)> {
    // neutron-<agent>-<d><port10>: port10 = 8 hex, '-', 1 hex.
    let cut = name.len().saturating_sub(11);
    if name.starts_with("neutron-") && name.len() > 20 && name.is_char_boundary(cut) {
        let (head, tail) = name.split_at(cut);
        let mut cs = tail.chars();
        let d = cs.next()?;
        let port10: String = cs.collect();
        let hexdash = port10.len() == 10
            && port10.char_indices().all(|(i, c)| {
                if i == 8 {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if hexdash && head.ends_with('-') {
            let dir = match d {
                'i' => Dir::To,
                'o' => Dir::From,
                's' => Dir::Spoof,
                _ => return None,
            };
            let owner = head.trim_end_matches('-').to_string();
            return Some((Key::Port10(port10.to_ascii_lowercase()), dir, owner));
        }
    }
    for (pat, dir) in [("tw-tap", Dir::To), ("fw-tap", Dir::From)] {
        if let Some(pos) = name.find(pat) {
            let iface = &name[pos + 3..];
            let owner = if name[..pos].ends_with("cali-") {
                "cali".to_string()
            } else {
                String::new()
            };
            return Some((Key::Iface(iface.to_string()), dir, owner));
        }
    }
    None
}

/// One per-port chain of this port.
struct Found<'a> {
    table: &'a Table,
    chain: &'a Chain,
    dir: Dir,
    /// Chain names from a hooked base chain to this one (from a forward-hook base chain when
    /// there is such a path); `None`: not reachable.
    path: Option<Vec<String>>,
    /// Reachable from a forward-hook base chain (forwarded traffic passes through it).
    on_forward: bool,
    /// The rule that jumps into it on that path.
    via: Option<&'a Rule>,
}

/// What one family's tables say about the port.
struct Analysis<'a> {
    found: Vec<Found<'a>>,
    /// Keys of other ports that have per-port chains.
    others: BTreeSet<String>,
    /// Who owns per-port chains here (Neutron agent prefix, `cali`, or a table label).
    owner: Option<String>,
    /// Rules in hooked chains that match this tap (by pattern) and are not in a per-port chain.
    tap_rules: Vec<(&'a Table, &'a Chain, usize)>,
}

struct Reach {
    /// chain index → (parent chain index, rule index) on the first path found; bases map to None.
    parent: BTreeMap<usize, Option<(usize, usize)>>,
}

/// Chains reachable from the filter base chains (only those of the forward hook when
/// `forward_only`).
fn reach(t: &Table, forward_only: bool) -> Reach {
    let mut parent = BTreeMap::new();
    let mut q = VecDeque::new();
    for (ci, c) in t.chains.iter().enumerate() {
        if c.hook.as_ref().is_some_and(|h| {
            (h.kind == "filter" || h.kind == "route") && (!forward_only || h.hook == "forward")
        }) {
            parent.insert(ci, None);
            q.push_back(ci);
        }
    }
    while let Some(ci) = q.pop_front() {
        for (ri, r) in t.chains[ci].rules.iter().enumerate() {
            let Some(target) = r.target.chain() else {
                continue;
            };
            let Some(ti) = t.chain_index(target) else {
                continue;
            };
            if let std::collections::btree_map::Entry::Vacant(e) = parent.entry(ti) {
                e.insert(Some((ci, ri)));
                q.push_back(ti);
            }
        }
    }
    Reach { parent }
}

impl Reach {
    fn path<'a>(&self, t: &'a Table, ci: usize) -> Option<(Vec<String>, Option<&'a Rule>)> {
        let mut names = vec![t.chains[ci].name.clone()];
        let mut via = None;
        let mut cur = ci;
        let mut guard = 0;
        while let Some(Some((p, ri))) = self.parent.get(&cur).map(|x| x.as_ref()) {
            if via.is_none() {
                via = t.chains[*p].rules.get(*ri);
            }
            names.push(t.chains[*p].name.clone());
            cur = *p;
            guard += 1;
            if guard > 64 {
                break;
            }
        }
        if !self.parent.contains_key(&ci) {
            return None;
        }
        names.reverse();
        Some((names, via))
    }
}

fn exact_tap(p: &str) -> bool {
    p.starts_with("tap") && !p.ends_with('+') && !p.ends_with('*')
}

fn analyse<'a>(tables: &[&'a Table], port: &SgPort) -> Analysis<'a> {
    let our10 = port.port10();
    let ours = |k: &Key| match k {
        Key::Port10(p) => *p == our10,
        Key::Iface(i) => *i == port.tap,
    };
    let mut a = Analysis {
        found: Vec::new(),
        others: BTreeSet::new(),
        owner: None,
        tap_rules: Vec::new(),
    };
    for &t in tables {
        let r = reach(t, false);
        let rf = reach(t, true);
        let locate = |ci: usize| match rf.path(t, ci).or_else(|| r.path(t, ci)) {
            Some((p, v)) => (Some(p), v, rf.parent.contains_key(&ci)),
            None => (None, None, false),
        };
        let mut named_here = false;
        let mut per_port: HashSet<usize> = HashSet::new();
        for (ci, c) in t.chains.iter().enumerate() {
            let Some((key, dir, owner)) = classify(&c.name) else {
                continue;
            };
            named_here = true;
            if a.owner.is_none() || ours(&key) {
                a.owner = Some(if owner.is_empty() {
                    format!("table {}", t.label())
                } else {
                    owner
                });
            }
            if ours(&key) {
                per_port.insert(ci);
                let (path, via, on_forward) = locate(ci);
                a.found.push(Found {
                    table: t,
                    chain: c,
                    dir,
                    path,
                    on_forward,
                    via,
                });
            } else {
                a.others.insert(match key {
                    Key::Port10(p) => p,
                    Key::Iface(i) => i,
                });
            }
        }
        // Rules in reachable chains that name a tap exactly, and where they lead.
        let mut targets: BTreeMap<usize, Vec<(String, Dir)>> = BTreeMap::new(); // chain → (tap, dir)
        let mut untargeted_jumps: HashSet<usize> = HashSet::new();
        for &ci in r.parent.keys() {
            for (ri, rule) in t.chains[ci].rules.iter().enumerate() {
                let (ins, outs) = rule.ifaces();
                let tap_in: Vec<&str> = ins.iter().copied().filter(|p| exact_tap(p)).collect();
                let tap_out: Vec<&str> = outs.iter().copied().filter(|p| exact_tap(p)).collect();
                let target = rule.target.chain().and_then(|n| t.chain_index(n));
                if let Some(ti) = target {
                    if tap_in.is_empty() && tap_out.is_empty() {
                        untargeted_jumps.insert(ti);
                    }
                    for p in &tap_out {
                        targets
                            .entry(ti)
                            .or_default()
                            .push((p.to_string(), Dir::To));
                    }
                    for p in &tap_in {
                        targets
                            .entry(ti)
                            .or_default()
                            .push((p.to_string(), Dir::From));
                    }
                }
                let matches_us = ins
                    .iter()
                    .chain(outs.iter())
                    .any(|p| eval::iface_pattern_matches(p, &port.tap));
                if matches_us && !per_port.contains(&ci) {
                    a.tap_rules.push((t, &t.chains[ci], ri));
                }
            }
        }
        if named_here {
            continue;
        }
        // No naming scheme in this table: per-port chains are those only this tap's rules reach.
        for (ti, users) in &targets {
            if untargeted_jumps.contains(ti) {
                continue;
            }
            let taps: BTreeSet<&str> = users.iter().map(|(p, _)| p.as_str()).collect();
            if taps.len() != 1 {
                continue;
            }
            let (tap, dir) = &users[0];
            if *tap == port.tap {
                a.owner
                    .get_or_insert_with(|| format!("table {}", t.label()));
                let (path, via, on_forward) = locate(*ti);
                a.found.push(Found {
                    table: t,
                    chain: &t.chains[*ti],
                    dir: *dir,
                    path,
                    on_forward,
                    via,
                });
            } else {
                a.owner
                    .get_or_insert_with(|| format!("table {}", t.label()));
                a.others.insert(tap.clone());
            }
        }
    }
    a.tap_rules.retain(|(t, c, _)| {
        !a.found
            .iter()
            .any(|f| std::ptr::eq(f.chain, *c) && std::ptr::eq(f.table, *t))
    });
    a
}

fn families(port: &SgPort) -> Vec<bool> {
    let mut v: Vec<bool> = port.ips.iter().map(IpAddr::is_ipv6).collect();
    v.sort();
    v.dedup();
    if v.is_empty() {
        v.push(false);
    }
    v
}

fn fam_label(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn resync_fix(owner: Option<&str>) -> String {
    match owner {
        Some("cali") => "restart calico-felix: it owns the cali-* chains and reprograms every \
                         endpoint's chains on start"
            .to_string(),
        Some(o) if o.starts_with("neutron-") => format!(
            "re-sync the port's security group: restart the agent that owns the {o}-* chains \
             (it rebuilds every port's chains on start)"
        ),
        Some(o) => format!(
            "re-apply the port's security group: restart the agent that owns {o} (it writes the \
             per-port chains)"
        ),
        None => "re-sync the port's security group: restart the L2 agent that writes the \
                 per-port firewall chains"
            .to_string(),
    }
}

fn read_errors(fw: &FirewallFacts) -> Option<String> {
    let e = fw.error_lines();
    (!e.is_empty()).then(|| e.join("; "))
}

/// `sg.chains`: the port's per-port chains exist for both directions and are reachable from the
/// hooked base chains.
pub fn check_chains(fw: &FirewallFacts, port: &SgPort) -> Check {
    const ID: &str = "sg.chains";
    if fw.unreadable() {
        return Check::unknown(ID, "firewall rules could not be read")
            .evidences(fw.error_lines())
            .fix(
                "run vmpath as root on the hypervisor (iptables-save and nft need CAP_NET_ADMIN)",
            );
    }
    let fams = families(port);
    let mut evidence = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut fix_owner: Option<String> = None;
    let mut any_filtering = false;
    let mut ok_lines = 0;
    for &v6 in &fams {
        let tables: Vec<&Table> = fw.tables_for(v6).collect();
        let a = analyse(&tables, port);
        let pfx = if fams.len() > 1 {
            format!("{}: ", fam_label(v6))
        } else {
            String::new()
        };
        if a.owner.is_some() {
            fix_owner = fix_owner.or(a.owner.clone());
        }
        if a.found.is_empty() && a.others.is_empty() {
            continue;
        }
        any_filtering = true;
        for f in &a.found {
            match &f.path {
                Some(p) => {
                    ok_lines += 1;
                    let via = f.via.map(|r| r.display()).unwrap_or_default();
                    evidence.push(format!(
                        "{pfx}{}: {} ({}) hooked: {}; via {via}",
                        f.dir.label(),
                        f.chain.name,
                        f.table.label(),
                        p.join(" → ")
                    ));
                }
                None => {
                    evidence.push(format!(
                        "{pfx}{}: {} ({}) exists, {} rules, but no rule from a hooked base chain \
                         jumps to it",
                        f.dir.label(),
                        f.chain.name,
                        f.table.label(),
                        f.chain.rules.len()
                    ));
                }
            }
        }
        let unhooked: Vec<&str> = a
            .found
            .iter()
            .filter(|f| f.path.is_none())
            .map(|f| f.chain.name.as_str())
            .collect();
        let input_only: Vec<&str> = a
            .found
            .iter()
            .filter(|f| f.path.is_some() && !f.on_forward && f.dir != Dir::Spoof)
            .map(|f| f.chain.name.as_str())
            .collect();
        if !input_only.is_empty() {
            problems.push(format!(
                "{pfx}not hooked for forwarded traffic: {} reached only from base chains of \
                 other hooks (INPUT), not from FORWARD",
                input_only.join(", ")
            ));
        }
        if !unhooked.is_empty() {
            problems.push(format!(
                "{pfx}not hooked: {} exist{} but nothing jumps to {}",
                unhooked.join(", "),
                if unhooked.len() == 1 { "s" } else { "" },
                if unhooked.len() == 1 { "it" } else { "them" }
            ));
        }
        let has = |d: Dir| a.found.iter().any(|f| f.dir == d);
        let missing: Vec<&str> = [Dir::To, Dir::From]
            .into_iter()
            .filter(|d| !has(*d))
            .map(Dir::label)
            .collect();
        if !missing.is_empty() {
            if a.found.is_empty() {
                problems.push(format!(
                    "{pfx}chains missing: no per-port chain for {} (port {}) while {} other \
                     port{} {} theirs",
                    port.tap,
                    port.port10(),
                    a.others.len(),
                    if a.others.len() == 1 { "" } else { "s" },
                    if a.others.len() == 1 { "has" } else { "have" }
                ));
                let sample: Vec<&str> = a.others.iter().take(5).map(String::as_str).collect();
                evidence.push(format!("{pfx}ports with chains: {}", sample.join(", ")));
            } else {
                problems.push(format!(
                    "{pfx}chain missing for traffic {}",
                    missing.join(" and ")
                ));
            }
        }
    }
    if !any_filtering {
        let mut c = Check::warn(
            ID,
            format!(
                "no per-port security-group chains for any tap on this host ({} has none either)",
                port.tap
            ),
        )
        .evidence(format!(
            "tables read: {}",
            fw.tables
                .iter()
                .map(Table::label)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .fix(
            "if the port should be filtered, check port_security_enabled on the port and the \
             agent's firewall_driver (noop disables security groups)",
        );
        if let Some(e) = read_errors(fw) {
            c = c.evidence(format!("not read: {e}"));
        }
        return c;
    }
    if let Some(e) = read_errors(fw) {
        evidence.push(format!("not read: {e}"));
    }
    if problems.is_empty() {
        return Check::ok(
            ID,
            format!(
                "{} per-port chain{} for {} exist and are hooked",
                ok_lines,
                if ok_lines == 1 { "" } else { "s" },
                port.tap
            ),
        )
        .evidences(evidence);
    }
    Check::fail(ID, problems.join("; "))
        .evidences(evidence)
        .fix(resync_fix(fix_owner.as_deref()))
}

// ---------------------------------------------------------------------------------------------
// Drops

/// Why a drop rule is a healthy default, or `None` for an explicit one.
fn default_kind(t: &Table, chain: &Chain, idx: usize, dir: Option<Dir>) -> Option<&'static str> {
    let rule = &chain.rules[idx];
    if let Some(target) = rule.target.chain() {
        if target.ends_with("sg-fallback") {
            return Some("fallback");
        }
        if let Some(tc) = t.chain(target) {
            if tc.rules.len() == 1 && tc.rules[0].target.is_drop() && tc.rules[0].matches.is_empty()
            {
                return Some("fallback");
            }
        }
    }
    if chain.name.ends_with("sg-fallback") {
        return Some("fallback");
    }
    if dir == Some(Dir::Spoof) {
        return Some("anti-spoofing");
    }
    let comment = rule.comment.as_deref().unwrap_or("").to_ascii_lowercase();
    for (needle, kind) in [
        ("fallback", "fallback"),
        ("default drop", "fallback"),
        ("drop if no profiles matched", "fallback"),
        ("drop if no policies passed packet", "fallback"),
        ("without an ip/mac allow rule", "anti-spoofing"),
        ("spoof", "anti-spoofing"),
    ] {
        if comment.contains(needle) {
            return Some(kind);
        }
    }
    let m = &rule.matches;
    if m.iter()
        .any(|m| !m.negated && m.cond == Cond::CtState(vec!["invalid".into()]))
    {
        return Some("invalid state");
    }
    if dir == Some(Dir::From) {
        if m.iter()
            .any(|m| m.negated && matches!(m.cond, Cond::Src(_) | Cond::MacSrc(_)))
        {
            return Some("anti-spoofing");
        }
        let dhcp_server = m.iter().any(|m| {
            !m.negated && matches!(&m.cond, Cond::Sport(r) if r.iter().any(|r| r.contains(67) && r.hi == 67))
        }) && m.iter().any(|m| {
            !m.negated && matches!(&m.cond, Cond::Dport(r) if r.iter().any(|r| r.contains(68) && r.hi == 68))
        });
        if dhcp_server {
            return Some("anti-spoofing (DHCP server in the VM)");
        }
    }
    let effective = m
        .iter()
        .all(|m| matches!(m.cond, Cond::Unsupported(ref s) if s.starts_with("xt match comment")));
    if idx + 1 == chain.rules.len() && effective && dir.is_some() {
        return Some("fallback");
    }
    None
}

/// A rule that drops (or sends to the fallback drop).
fn drops(t: &Table, r: &Rule) -> bool {
    if r.target.is_drop() {
        return true;
    }
    r.target.chain().is_some_and(|c| {
        c.ends_with("sg-fallback")
            || t.chain(c).is_some_and(|tc| {
                tc.rules.len() == 1
                    && tc.rules[0].target.is_drop()
                    && tc.rules[0].matches.is_empty()
            })
    })
}

fn packets(n: u64) -> String {
    if n == 1 {
        "1 packet".into()
    } else {
        format!("{n} packets")
    }
}

/// The command that deletes a rule, for the fix line.
fn delete_command(t: &Table, chain: &str, r: &Rule) -> String {
    match t.backend {
        Backend::Nft => {
            let handle = r.text.rsplit("# handle ").next().unwrap_or("?").trim();
            format!(
                "nft delete rule {} {} {chain} handle {handle}",
                t.family.as_str(),
                t.name
            )
        }
        b => {
            let bin = match (b, t.family.as_str()) {
                (Backend::IptablesLegacy, "ip6") => "ip6tables-legacy",
                (Backend::IptablesLegacy, _) => "iptables-legacy",
                (_, "ip6") => "ip6tables",
                _ => "iptables",
            };
            let spec = r.text.strip_prefix("-A ").unwrap_or(&r.text);
            let table = if t.name == "filter" {
                String::new()
            } else {
                format!("-t {} ", t.name)
            };
            format!("{bin} {table}-D {spec}")
        }
    }
}

/// `sg.drops`: DROP/REJECT rules in the port's chains (and rules matching its tap in shared
/// chains) with packets counted. Explicit drops warn; the defaults (fallback, anti-spoofing,
/// invalid state) are normal and only shown.
pub fn check_drops(fw: &FirewallFacts, port: &SgPort) -> Check {
    const ID: &str = "sg.drops";
    if fw.unreadable() {
        return Check::unknown(ID, "firewall rules could not be read")
            .evidences(fw.error_lines())
            .fix(
                "run vmpath as root on the hypervisor (iptables-save and nft need CAP_NET_ADMIN)",
            );
    }
    struct Hit<'a> {
        table: &'a Table,
        chain: &'a Chain,
        rule: &'a Rule,
        packets: u64,
        kind: Option<&'static str>,
    }
    let mut hits: Vec<Hit> = Vec::new();
    let mut seen: HashSet<(String, String, usize)> = HashSet::new();
    let mut chains_seen = 0;
    let mut uncounted = 0;
    let mut zero_explicit: Vec<String> = Vec::new();
    for v6 in [false, true] {
        let tables: Vec<&Table> = fw.tables_for(v6).collect();
        let a = analyse(&tables, port);
        let mut scope: Vec<(&Table, &Chain, usize, Option<Dir>)> = Vec::new();
        for f in &a.found {
            chains_seen += 1;
            for i in 0..f.chain.rules.len() {
                scope.push((f.table, f.chain, i, Some(f.dir)));
            }
        }
        for (t, c, i) in &a.tap_rules {
            scope.push((t, c, *i, None));
        }
        for (t, c, i, dir) in scope {
            if !seen.insert((t.label(), c.name.clone(), i)) {
                continue;
            }
            let r = &c.rules[i];
            if !drops(t, r) {
                continue;
            }
            let kind = default_kind(t, c, i, dir);
            match r.counters {
                None => uncounted += 1,
                Some(n) if n.packets == 0 => {
                    if kind.is_none() {
                        zero_explicit.push(format!("{} ({}): {}", c.name, t.label(), r.display()));
                    }
                }
                Some(n) => hits.push(Hit {
                    table: t,
                    chain: c,
                    rule: r,
                    packets: n.packets,
                    kind,
                }),
            }
        }
    }
    hits.sort_by_key(|h| (h.kind.is_some(), std::cmp::Reverse(h.packets)));
    let mut evidence: Vec<String> = hits
        .iter()
        .map(|h| {
            let what = match h.kind {
                None => "explicit drop".to_string(),
                Some(k) => format!("{k}, normal"),
            };
            format!(
                "{} ({}): {} dropped by `{}` ({what})",
                h.chain.name,
                h.table.label(),
                packets(h.packets),
                h.rule.display()
            )
        })
        .collect();
    for z in &zero_explicit {
        evidence.push(format!("explicit drop, nothing dropped yet: {z}"));
    }
    if uncounted > 0 {
        evidence.push(format!(
            "{uncounted} drop rule{} without a counter: what {} dropped is not known",
            if uncounted == 1 { "" } else { "s" },
            if uncounted == 1 { "it" } else { "they" }
        ));
    }
    if let Some(e) = read_errors(fw) {
        evidence.push(format!("not read: {e}"));
    }
    if let Some(h) = hits.iter().find(|h| h.kind.is_none()) {
        let n_explicit = hits.iter().filter(|h| h.kind.is_none()).count();
        let more = if n_explicit > 1 {
            format!(" (and {} more explicit drop rules)", n_explicit - 1)
        } else {
            String::new()
        };
        return Check::warn(
            ID,
            format!(
                "{}: {} to/from the VM dropped by explicit rule `{}`{more}",
                h.chain.name,
                packets(h.packets),
                h.rule.text
            ),
        )
        .evidences(evidence)
        .fix(format!(
            "this drop is not a security-group default rule: if the traffic should pass, find who \
             added it and remove it ({}), or change the security group that generates it",
            delete_command(h.table, &h.chain.name, h.rule)
        ));
    }
    let summary = if chains_seen == 0 && hits.is_empty() {
        format!(
            "nothing to count: no security-group chains for {} (see sg.chains)",
            port.tap
        )
    } else if hits.is_empty() {
        "no drops counted in the port's chains".to_string()
    } else {
        let total: u64 = hits.iter().map(|h| h.packets).sum();
        let mut kinds: Vec<&str> = hits.iter().filter_map(|h| h.kind).collect();
        kinds.sort();
        kinds.dedup();
        format!(
            "only default rules drop ({}: {}), which is normal",
            packets(total),
            kinds.join(", ")
        )
    };
    Check::ok(ID, summary).evidences(evidence)
}

// ---------------------------------------------------------------------------------------------
// Flow

/// The packet a flow stands for, for one VM address.
pub fn flow_packet(port: &SgPort, flow: &Flow, vm_ip: IpAddr) -> Packet {
    let v6 = vm_ip.is_ipv6();
    let protocol = match flow.proto {
        FlowProto::Tcp => proto::TCP,
        FlowProto::Udp => proto::UDP,
        FlowProto::Icmp if v6 => proto::ICMPV6,
        FlowProto::Icmp => proto::ICMP,
    };
    let icmp = (flow.proto == FlowProto::Icmp).then_some(if v6 { (128, 0) } else { (8, 0) });
    let tap = Iface::Name(port.tap.clone());
    let (in_iface, out_iface, src, dst, src_mac) = match flow.dir {
        Direction::ToVm => (Iface::Uplink, tap, flow.peer, Some(vm_ip), None),
        Direction::FromVm => (tap, Iface::Uplink, Some(vm_ip), flow.peer, port.mac.clone()),
    };
    Packet {
        v6,
        in_iface,
        out_iface,
        src,
        dst,
        proto: protocol,
        sport: None,
        dport: flow.port,
        icmp,
        ct_state: "new".into(),
        src_mac,
    }
}

/// Walk a flow through the forward path (prerouting and forward filter chains).
pub fn evaluate_flow(fw: &FirewallFacts, port: &SgPort, flow: &Flow, vm_ip: IpAddr) -> Evaluation {
    let p = flow_packet(port, flow, vm_ip);
    eval::evaluate(
        &fw.tables,
        &["prerouting", "forward"],
        ChainKind::Filter,
        &p,
    )
}

fn trace_lines(e: &Evaluation) -> Vec<String> {
    let mut v: Vec<String> = e.trace.iter().map(|s| format!("matched: {s}")).collect();
    v.extend(e.notes.iter().cloned());
    v
}

/// `sg.flow`: one check per VM address of the flow's family.
pub fn check_flow(fw: &FirewallFacts, port: &SgPort, flow: &Flow) -> Vec<Check> {
    const ID: &str = "sg.flow";
    let ips: Vec<IpAddr> = port
        .ips
        .iter()
        .copied()
        .filter(|ip| flow.peer.is_none_or(|p| p.is_ipv6() == ip.is_ipv6()))
        .collect();
    if ips.is_empty() {
        return vec![Check::unknown(
            ID,
            format!("{flow}: no VM address of the flow's family to evaluate it for"),
        )
        .subject(flow.to_string())
        .fix("give the VM address (--ip) or a peer of the same family")];
    }
    if fw.unreadable() {
        return vec![Check::unknown(ID, "firewall rules could not be read")
            .subject(flow.to_string())
            .evidences(fw.error_lines())
            .fix(
                "run vmpath as root on the hypervisor (iptables-save and nft need CAP_NET_ADMIN)",
            )];
    }
    let mut out = Vec::new();
    for ip in ips {
        let e = evaluate_flow(fw, port, flow, ip);
        let arrow = match flow.dir {
            Direction::ToVm => format!("to {ip}"),
            Direction::FromVm => format!("from {ip}"),
        };
        let subject = format!("{flow} {arrow}");
        let mut ev = trace_lines(&e);
        if let Some(err) = read_errors(fw) {
            ev.push(format!("not read: {err}"));
        }
        let c = match &e.verdict {
            Verdict::Accept => {
                let how = match &e.by {
                    Some(s) => format!("by {} `{}`", s.chain, s.rule),
                    None => "by default: no rule stops it".into(),
                };
                Check::ok(ID, format!("{flow} {arrow} is accepted {how}")).evidences(ev)
            }
            Verdict::Drop | Verdict::Reject => {
                let by = e.by.as_ref();
                let by_text = by
                    .map(|s| format!("{} `{}`", s.chain, s.rule))
                    .unwrap_or_default();
                let is_default =
                    by.is_some_and(|s| s.rule == "policy drop" || step_is_default(fw, s));
                let fix = if is_default {
                    let (dir, port_opt) = match flow.dir {
                        Direction::ToVm => ("--ingress", "--dst-port"),
                        Direction::FromVm => ("--egress", "--dst-port"),
                    };
                    let proto_s = match flow.proto {
                        FlowProto::Tcp => "tcp",
                        FlowProto::Udp => "udp",
                        FlowProto::Icmp => "icmp",
                    };
                    let port_s = flow
                        .port
                        .map(|p| format!(" {port_opt} {p}"))
                        .unwrap_or_default();
                    let remote = flow
                        .peer
                        .map(|p| format!(" --remote-ip {p}/{}", if p.is_ipv6() { 128 } else { 32 }))
                        .unwrap_or_default();
                    format!(
                        "no security-group rule allows it: add one, e.g. openstack security group \
                         rule create {dir} --protocol {proto_s}{port_s}{remote} <group of the port>"
                    )
                } else {
                    "the rule that drops it is not a security-group default: find who added it and \
                     remove it, or change the security group that generates it"
                        .to_string()
                };
                let done = if e.verdict == Verdict::Reject {
                    "rejected"
                } else {
                    "dropped"
                };
                Check::fail(ID, format!("{flow} {arrow} is {done} by {by_text}"))
                    .evidences(ev)
                    .fix(fix)
            }
            _ => {
                let at =
                    e.by.as_ref()
                        .map(|s| format!(" at {} `{}`", s.chain, s.rule))
                        .unwrap_or_default();
                let why = e.reason.clone().unwrap_or_default();
                let fix = if e.reason.as_deref().is_some_and(|r| r.contains("-m set")) {
                    "the answer depends on an ipset's members: list them (ipset list <set>) or \
                     give the peer address with the flow (tcp/80@203.0.113.10)"
                        .to_string()
                } else if flow.peer.is_none() {
                    "give the peer address with the flow (e.g. tcp/80@203.0.113.10) or read the \
                     rule by hand"
                        .to_string()
                } else {
                    "read the rule by hand: vmpath does not model it".to_string()
                };
                Check::unknown(ID, format!("{flow} {arrow}: undetermined{at}: {why}"))
                    .evidences(ev)
                    .fix(fix)
            }
        };
        out.push(c.subject(subject));
    }
    out
}

/// Whether the rule in a trace step is one of the security group's default drops.
fn step_is_default(fw: &FirewallFacts, s: &eval::Step) -> bool {
    let Some(t) = fw.tables.iter().find(|t| t.label() == s.table) else {
        return false;
    };
    let Some(c) = t.chain(&s.chain) else {
        return false;
    };
    let Some(i) = c.rules.iter().position(|r| r.display() == s.rule) else {
        return false;
    };
    let dir = classify(&c.name).map(|(_, d, _)| d);
    let dir = dir.or_else(|| (i + 1 == c.rules.len()).then_some(Dir::To));
    default_kind(t, c, i, dir).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::firewall::{Family, SourceReport};
    use crate::model::Status;

    const TAP: &str = "tap3f1c2a4e-5b";
    const PORT: &str = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51";

    fn port() -> SgPort {
        SgPort::new(
            TAP,
            PORT,
            &["198.51.100.11".parse().expect("test fixture")],
            Some("FA:16:3E:00:00:01"),
        )
    }

    fn ipt(save: &str) -> FirewallFacts {
        FirewallFacts::from_iptables_save(Family::Ip, save)
    }

    fn nft(json: &str) -> FirewallFacts {
        FirewallFacts::from_nft_json(json)
    }

    /// Each captured state, as every model sees it: iptables-nft save, the same plus `nft -j`
    /// of the iptables-nft tables (deduplicated), iptables-legacy save, and native nft.
    fn fixtures(state: &str) -> Vec<(&'static str, FirewallFacts)> {
        macro_rules! fx {
            ($f:literal) => {
                include_str!(concat!(
                    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fw/"),
                    $f
                ))
            };
        }
        let (i, iview, legacy, n) = match state {
            "healthy" => (
                fx!("ipt-healthy.save"),
                fx!("ipt-healthy.nft.json"),
                Some(fx!("legacy-healthy.save")),
                fx!("nft-healthy.json"),
            ),
            "drop22" => (
                fx!("ipt-drop22.save"),
                fx!("ipt-drop22.nft.json"),
                Some(fx!("legacy-drop22.save")),
                fx!("nft-drop22.json"),
            ),
            "set" => (
                fx!("ipt-set.save"),
                fx!("ipt-set.nft.json"),
                None,
                fx!("nft-set.json"),
            ),
            "unhooked" => (
                fx!("ipt-unhooked.save"),
                fx!("ipt-unhooked.nft.json"),
                Some(fx!("legacy-unhooked.save")),
                fx!("nft-unhooked.json"),
            ),
            "nochains" => (
                fx!("ipt-nochains.save"),
                fx!("ipt-nochains.nft.json"),
                Some(fx!("legacy-nochains.save")),
                fx!("nft-nochains.json"),
            ),
            _ => panic!("{state}"),
        };
        let both = FirewallFacts::from_outputs(
            vec![(
                SourceReport::named("iptables-save -c"),
                Backend::IptablesNft,
                Family::Ip,
                Ok(i.into()),
            )],
            Some((SourceReport::named("nft -j list ruleset"), Ok(iview.into()))),
        );
        assert!(
            both.tables
                .iter()
                .all(|t| t.backend == Backend::IptablesNft || t.family != Family::Ip),
            "iptables-nft tables seen twice"
        );
        let mut v = vec![
            ("iptables", ipt(i)),
            ("iptables+nft-view", both),
            ("nft", nft(n)),
        ];
        if let Some(l) = legacy {
            v.push((
                "legacy",
                FirewallFacts::from_outputs(
                    vec![(
                        SourceReport::named("iptables-legacy-save -c"),
                        Backend::IptablesLegacy,
                        Family::Ip,
                        Ok(l.into()),
                    )],
                    None,
                ),
            ));
        }
        v
    }

    fn flow(fw: &FirewallFacts, f: &str) -> Check {
        let mut v = check_flow(fw, &port(), &parse_flow(f).expect("test fixture"));
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn flow_syntax() {
        let f = parse_flow("tcp/22").expect("test fixture");
        assert_eq!(
            (f.dir, f.proto, f.port, f.peer),
            (Direction::ToVm, FlowProto::Tcp, Some(22), None)
        );
        let f = parse_flow("out:udp/53@192.0.2.53").expect("test fixture");
        assert_eq!(f.dir, Direction::FromVm);
        assert_eq!(f.peer, Some("192.0.2.53".parse().expect("test fixture")));
        assert_eq!(f.to_string(), "out:udp/53@192.0.2.53");
        assert_eq!(
            parse_flow("in:ICMP").expect("test fixture").proto,
            FlowProto::Icmp
        );
        assert!(parse_flow("tcp/[2001:db8::1]").is_err());
        assert_eq!(
            parse_flow("tcp/22@2001:db8::1").expect("test fixture").peer,
            Some("2001:db8::1".parse().expect("test fixture"))
        );
        for bad in [
            "tcp",
            "gre/1",
            "icmp/8",
            "tcp/0",
            "tcp/x",
            "",
            "udp/53@nowhere",
        ] {
            let e = parse_flow(bad).unwrap_err();
            assert!(e.contains("tcp/22, out:udp/53, icmp"), "{bad}: {e}");
        }
    }

    #[test]
    fn chain_names_are_classified() {
        assert_eq!(
            classify("neutron-l2iso-i3f1c2a4e-5"),
            Some((
                Key::Port10("3f1c2a4e-5".into()),
                Dir::To,
                "neutron-l2iso".into()
            ))
        );
        assert_eq!(
            classify("neutron-openvswi-s3f1c2a4e-5").map(|c| c.1),
            Some(Dir::Spoof)
        );
        assert_eq!(classify("neutron-l2iso-sg-chain"), None);
        assert_eq!(classify("neutron-l2iso-sg-fallback"), None);
        assert_eq!(
            classify("cali-fw-tap3f1c2a4e-5b"),
            Some((Key::Iface(TAP.into()), Dir::From, "cali".into()))
        );
        assert_eq!(classify("tw-tap3f1c2a4e-5b").map(|c| c.1), Some(Dir::To));
        assert_eq!(port().port10(), "3f1c2a4e-5");
        assert_eq!(SgPort::new(TAP, "", &[], None).port10(), "3f1c2a4e-5");
        assert_eq!(
            SgPort::new(TAP, "ééééééé", &[], None).port10(),
            "3f1c2a4e-5"
        );
        assert_eq!(classify("neutron-ééééééééééééé"), None);
    }

    #[test]
    fn healthy_host() {
        for (m, fw) in fixtures("healthy") {
            let c = check_chains(&fw, &port());
            assert_eq!(c.status, Status::Ok, "{m}: {c:#?}");
            assert!(
                c.evidence.iter().any(|e| e.contains("to VM")),
                "{m}: {c:#?}"
            );
            let c = check_drops(&fw, &port());
            assert_eq!(c.status, Status::Ok, "{m}: {c:#?}");
            assert!(
                c.evidence.iter().any(|e| e.contains("fallback, normal")),
                "{m}: {c:#?}"
            );
            assert!(
                c.evidence
                    .iter()
                    .any(|e| e.contains("anti-spoofing, normal")),
                "{m}: {c:#?}"
            );
            assert_eq!(flow(&fw, "tcp/22").status, Status::Ok, "{m}");
            let c = flow(&fw, "tcp/80");
            assert_eq!(c.status, Status::Fail, "{m}: {c:#?}");
            assert!(
                c.summary.contains("dropped by") && c.summary.contains("sg-fallback"),
                "{m}: {}",
                c.summary
            );
            assert!(
                c.fix
                    .as_deref()
                    .expect("test fixture")
                    .contains("--ingress --protocol tcp --dst-port 80"),
                "{m}"
            );
            assert_eq!(flow(&fw, "icmp").status, Status::Ok, "{m}");
            assert_eq!(flow(&fw, "out:udp/53").status, Status::Ok, "{m}");
            let c = flow(&fw, "out:udp/123");
            assert_eq!(c.status, Status::Fail, "{m}");
            assert!(
                c.fix.as_deref().expect("test fixture").contains("--egress"),
                "{m}"
            );
        }
    }

    #[test]
    fn healthy_iptables_evidence_format() {
        let fw = ipt(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/ipt-healthy.save"
        )));
        let c = check_chains(&fw, &port());
        assert_eq!(
            c.summary,
            "3 per-port chains for tap3f1c2a4e-5b exist and are hooked"
        );
        assert!(c.evidence[0].starts_with(
            "to VM: neutron-l2iso-i3f1c2a4e-5 (iptables-nft ip filter) hooked: FORWARD → \
             neutron-l2iso-FORWARD → neutron-l2iso-sg-chain → neutron-l2iso-i3f1c2a4e-5; via [16:924] \
             -A neutron-l2iso-sg-chain -o tap3f1c2a4e-5b"
        ), "{:#?}", c.evidence);
        let c = check_drops(&fw, &port());
        assert!(c.evidence.contains(&"neutron-l2iso-i3f1c2a4e-5 (iptables-nft ip filter): 2 packets dropped by \
            `[2:120] -A neutron-l2iso-i3f1c2a4e-5 -m comment --comment \"Send unmatched traffic to the fallback chain.\" \
            -j neutron-l2iso-sg-fallback` (fallback, normal)".to_string()), "{:#?}", c.evidence);
        let c = flow(&fw, "tcp/80");
        assert_eq!(
            c.summary,
            "tcp/80 to 198.51.100.11 is dropped by neutron-l2iso-sg-fallback `[3:150] -A neutron-l2iso-sg-fallback \
             -m comment --comment \"Default drop rule for unmatched traffic.\" -j DROP`"
        );
        assert_eq!(c.subject.as_deref(), Some("tcp/80 to 198.51.100.11"));
    }

    #[test]
    fn explicit_drop_warns_and_fails_the_flow() {
        for (m, fw) in fixtures("drop22") {
            let c = check_drops(&fw, &port());
            assert_eq!(c.status, Status::Warn, "{m}: {c:#?}");
            assert!(
                c.summary.contains("4 packets") && c.summary.contains("22"),
                "{m}: {}",
                c.summary
            );
            assert!(
                c.summary.starts_with(if m == "nft" {
                    "tw-tap3f1c2a4e-5b"
                } else {
                    "neutron-l2iso-i3f1c2a4e-5"
                }),
                "{m}: {}",
                c.summary
            );
            let fix = c.fix.expect("test fixture");
            if m == "nft" {
                assert!(
                    fix.contains("nft delete rule inet vmsg tw-tap3f1c2a4e-5b handle 37"),
                    "{fix}"
                );
            } else {
                let bin = if m == "legacy" {
                    "iptables-legacy"
                } else {
                    "iptables"
                };
                let want = format!(
                    "({bin} -D neutron-l2iso-i3f1c2a4e-5 -p tcp -m tcp --dport 22 -j DROP)"
                );
                assert!(fix.contains(&want), "{fix}");
            }
            let c = flow(&fw, "tcp/22");
            assert_eq!(c.status, Status::Fail, "{m}");
            assert!(c.summary.contains("dport 22"), "{m}: {}", c.summary);
            assert!(c
                .fix
                .expect("test fixture")
                .contains("not a security-group default"));
            assert_eq!(flow(&fw, "icmp").status, Status::Ok, "{m}");
        }
    }

    #[test]
    fn set_rule_is_undetermined() {
        for (m, fw) in fixtures("set") {
            let c = flow(&fw, "tcp/80");
            assert_eq!(c.status, Status::Unknown, "{m}: {c:#?}");
            assert!(c.summary.contains("undetermined at"), "{m}: {}", c.summary);
            assert!(
                c.evidence
                    .iter()
                    .any(|e| e.starts_with("if it matches: accept")),
                "{m}: {c:#?}"
            );
            assert_eq!(flow(&fw, "tcp/22").status, Status::Ok, "{m}");
            // sg.drops and sg.chains are not affected.
            assert_eq!(check_drops(&fw, &port()).status, Status::Ok, "{m}");
            assert_eq!(check_chains(&fw, &port()).status, Status::Ok, "{m}");
        }
        let (_, fw) = fixtures("set").remove(0);
        assert!(flow(&fw, "tcp/80")
            .fix
            .expect("test fixture")
            .contains("ipset list"));
        // With the peer given, the nft named set decides.
        let (_, fw) = fixtures("set").remove(2);
        assert_eq!(flow(&fw, "tcp/80@203.0.113.10").status, Status::Ok);
        assert_eq!(flow(&fw, "tcp/80@192.0.2.10").status, Status::Fail);
    }

    #[test]
    fn missing_and_unhooked_chains_fail() {
        for (m, fw) in fixtures("nochains") {
            let c = check_chains(&fw, &port());
            assert_eq!(c.status, Status::Fail, "{m}: {c:#?}");
            assert!(
                c.summary.contains("chains missing") && c.summary.contains("1 other port has"),
                "{m}: {}",
                c.summary
            );
            let fix = c.fix.expect("test fixture");
            if m != "nft" {
                assert!(fix.contains("neutron-l2iso-* chains"), "{fix}");
            } else {
                assert!(fix.contains("table nft inet vmsg"), "{fix}");
            }
            // Nothing of this port is left to drop anything.
            assert_eq!(flow(&fw, "tcp/80").status, Status::Ok, "{m}");
        }
        for (m, fw) in fixtures("unhooked") {
            let c = check_chains(&fw, &port());
            assert_eq!(c.status, Status::Fail, "{m}: {c:#?}");
            assert!(c.summary.contains("not hooked"), "{m}: {}", c.summary);
            assert!(
                c.summary.contains(if m == "nft" {
                    "tw-tap3f1c2a4e-5b"
                } else {
                    "neutron-l2iso-i3f1c2a4e-5"
                }),
                "{m}"
            );
            assert!(c
                .evidence
                .iter()
                .any(|e| e.contains("no rule from a hooked base chain jumps to it")));
        }
        // The o-chain reached only from INPUT: forwarded traffic from the VM is not filtered.
        let healthy = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/ipt-healthy.save"
        ));
        let cut: String = healthy
            .lines()
            .filter(|l| !l.contains("-A neutron-l2iso-sg-chain -i tap3f1c2a4e-5b"))
            .map(|l| format!("{l}\n"))
            .collect();
        let c = check_chains(&ipt(&cut), &port());
        assert_eq!(c.status, Status::Fail, "{c:#?}");
        assert!(
            c.summary
                .starts_with("not hooked for forwarded traffic: neutron-l2iso-o3f1c2a4e-5"),
            "{}",
            c.summary
        );
        // The other port is still fine in both states.
        let other = SgPort::new(
            "tap9a8b7c6d-1e",
            "9a8b7c6d-1e2f",
            &["198.51.100.12".parse().expect("test fixture")],
            None,
        );
        for (m, fw) in fixtures("unhooked").into_iter().chain(fixtures("nochains")) {
            assert_eq!(check_chains(&fw, &other).status, Status::Ok, "{m}");
        }
    }

    #[test]
    fn no_filtering_at_all_warns_and_unreadable_is_unknown() {
        let fw = ipt(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
        );
        let c = check_chains(&fw, &port());
        assert_eq!(c.status, Status::Warn);
        assert!(c
            .fix
            .expect("test fixture")
            .contains("port_security_enabled"));
        assert_eq!(check_drops(&fw, &port()).status, Status::Ok);
        assert_eq!(flow(&fw, "tcp/80").status, Status::Ok);
        let fw = FirewallFacts::from_outputs(
            vec![(
                SourceReport::named("iptables-save -c"),
                Backend::IptablesNft,
                Family::Ip,
                Err("iptables-save -c failed (exit status: 4): Permission denied (you must be root): run vmpath as root".into()),
            )],
            Some((SourceReport::named("nft -j list ruleset"), Err("nft not found in PATH".into()))),
        );
        for c in checks(
            &fw,
            &port(),
            Some(&parse_flow("tcp/22").expect("test fixture")),
        ) {
            assert_eq!(c.status, Status::Unknown, "{c:#?}");
            assert!(
                c.evidence.iter().any(|e| e.contains("you must be root")),
                "{c:#?}"
            );
        }
    }

    #[test]
    fn jump_based_discovery_without_a_naming_scheme() {
        let text = "*filter\n:FORWARD ACCEPT [0:0]\n:vm-a - [0:0]\n:vm-b - [0:0]\n:vm-c - [0:0]\n\
            [5:300] -A FORWARD -o tap3f1c2a4e-5b -j vm-a\n[5:300] -A FORWARD -i tap3f1c2a4e-5b -j vm-b\n\
            [1:60] -A FORWARD -o tap9a8b7c6d-1e -j vm-c\n\
            [2:120] -A vm-a -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset\n[3:180] -A vm-a -j DROP\n\
            [0:0] -A vm-b -j ACCEPT\n[0:0] -A vm-c -j DROP\nCOMMIT\n";
        let fw = ipt(text);
        let c = check_chains(&fw, &port());
        assert_eq!(c.status, Status::Ok, "{c:#?}");
        let c = check_drops(&fw, &port());
        assert_eq!(c.status, Status::Warn, "{c:#?}");
        assert!(c.summary.starts_with("vm-a: 2 packets"), "{}", c.summary);
        assert!(
            c.evidence[1].contains("3 packets") && c.evidence[1].contains("fallback, normal"),
            "{:#?}",
            c.evidence
        );
        let c = flow(&fw, "tcp/23");
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("is rejected by vm-a"), "{}", c.summary);
    }
}
