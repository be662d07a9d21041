//! Which chains are the port's own, and are they reachable from the hooked base chains.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use std::net::IpAddr;

use super::eval::{self, ChainKind, Evaluation, Iface, Packet, Step, Verdict};
use super::{fam_label, families, read_errors, resync_fix, SgPort};
use crate::collect::firewall::{proto, Chain, FirewallFacts, Table, Target};
use crate::model::Check;

// ---------------------------------------------------------------------------------------------
// Chain discovery

/// Which way a per-port chain filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Dir {
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
pub(super) enum Key {
    Port10(String),
    Iface(String),
}

/// A chain name's owner scheme, port and direction.
pub(super) fn classify(name: &str) -> Option<(Key, Dir, String)> {
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
pub(super) struct Found<'a> {
    pub(super) table: &'a Table,
    pub(super) chain: &'a Chain,
    pub(super) dir: Dir,
    /// Chain names from a hooked base chain to this one (from a forward-hook base chain when
    /// there is such a path); `None`: not reachable.
    pub(super) path: Option<Vec<String>>,
}

/// What one family's tables say about the port.
pub(super) struct Analysis<'a> {
    pub(super) found: Vec<Found<'a>>,
    /// Keys of other ports that have per-port chains.
    pub(super) others: BTreeSet<String>,
    /// Who owns per-port chains here (Neutron agent prefix, `cali`, or a table label).
    pub(super) owner: Option<String>,
    /// Rules in hooked chains that match this tap (by pattern) and are not in a per-port chain.
    pub(super) tap_rules: Vec<(&'a Table, &'a Chain, usize)>,
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
    fn path(&self, t: &Table, ci: usize) -> Option<Vec<String>> {
        let mut names = vec![t.chains[ci].name.clone()];
        let mut cur = ci;
        let mut guard = 0;
        while let Some(Some((p, _))) = self.parent.get(&cur).map(|x| x.as_ref()) {
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
        Some(names)
    }
}

fn exact_tap(p: &str) -> bool {
    p.starts_with("tap") && !p.ends_with('+') && !p.ends_with('*')
}

pub(super) fn analyse<'a>(tables: &[&'a Table], port: &SgPort) -> Analysis<'a> {
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
        let locate = |ci: usize| rf.path(t, ci).or_else(|| r.path(t, ci));
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
                let path = locate(ci);
                a.found.push(Found {
                    table: t,
                    chain: c,
                    dir,
                    path,
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
                let path = locate(*ti);
                a.found.push(Found {
                    table: t,
                    chain: &t.chains[*ti],
                    dir: *dir,
                    path,
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

/// The port's own filtering in one family's tables: its per-port chains, and the tap-specific
/// verdict rules of hooked chains (a layout without per-port chains).
struct Mine<'a> {
    chains: BTreeSet<(String, String)>,
    rules: Vec<(String, String, String)>,
    analysis: Analysis<'a>,
}

impl<'a> Mine<'a> {
    fn of(tables: &[&'a Table], port: &SgPort) -> Mine<'a> {
        let analysis = analyse(tables, port);
        let chains = analysis
            .found
            .iter()
            .map(|f| (f.table.label(), f.chain.name.clone()))
            .collect();
        let rules = analysis
            .tap_rules
            .iter()
            .filter(|(_, c, i)| !matches!(c.rules[*i].target, Target::Jump(_) | Target::Goto(_)))
            .map(|(t, c, i)| (t.label(), c.name.clone(), c.rules[*i].display()))
            .collect();
        Mine {
            chains,
            rules,
            analysis,
        }
    }

    fn is_mine(&self, s: &Step) -> bool {
        self.chains.contains(&(s.table.clone(), s.chain.clone()))
            || s.jumps_to
                .as_ref()
                .is_some_and(|j| self.chains.contains(&(s.table.clone(), j.clone())))
            || self
                .rules
                .iter()
                .any(|(t, c, r)| *t == s.table && *c == s.chain && *r == s.rule)
    }

    /// Did the walk meet one of the port's own rules (or enter one of its chains)?
    fn sees(&self, e: &Evaluation) -> bool {
        e.trace.iter().chain(e.by.as_ref()).any(|s| self.is_mine(s))
    }

    /// The dir of the port chain a step is in, when it is one.
    fn dir_of(&self, s: &Step) -> Option<Dir> {
        self.analysis
            .found
            .iter()
            .find(|f| f.table.label() == s.table && f.chain.name == s.chain)
            .map(|f| f.dir)
    }
}

/// The four packets the verdict rests on, for one VM address: a new connection and a reply, each
/// way, to or from any remote address and port (the evaluator follows every branch an unknown
/// address or port opens, and a verdict stands only when they agree).
fn effect_packets(port: &SgPort, vm: IpAddr) -> [(&'static str, Packet); 4] {
    let tap = Iface::Name(port.tap.clone());
    let p = |out: bool, state: &str| Packet {
        v6: vm.is_ipv6(),
        in_iface: if out { tap.clone() } else { Iface::Uplink },
        out_iface: if out { Iface::Uplink } else { tap.clone() },
        src: out.then_some(vm),
        dst: (!out).then_some(vm),
        proto: proto::TCP,
        sport: None,
        dport: None,
        icmp: None,
        ct_state: state.into(),
        src_mac: if out { port.mac.clone() } else { None },
    };
    [
        ("new from the VM", p(true, "new")),
        ("replies to the VM", p(false, "established")),
        ("new to the VM", p(false, "new")),
        ("replies from the VM", p(true, "established")),
    ]
}

fn walked(e: &Evaluation) -> String {
    match (&e.verdict, &e.by) {
        (Verdict::Undetermined, Some(b)) => format!("depends on the packet at {b}"),
        (Verdict::Undetermined, None) => "undetermined".to_string(),
        (v, Some(b)) => format!("{} by {b}", v.as_str()),
        (v, None) => format!(
            "{} (no rule decided: the hooks' policies accept)",
            v.as_str()
        ),
    }
}

/// `sg.chains`, by effect: a connection the VM opens and the replies to one it accepted, walked
/// through every table's rules. Replies dropped, or the VM's own traffic dropped by a rule that
/// is not its security group's (or by its anti-spoofing, which the port's records should pass),
/// is a failure; traffic no rule of the port sees is unfiltered (a warning: port security off, or
/// the agent lost its chains); traffic the port's own rules meet, in either direction, is ok.
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
    let mut fails: Vec<String> = Vec::new();
    let mut warns: Vec<String> = Vec::new();
    let mut fix_owner: Option<String> = None;
    let mut filtered: Vec<String> = Vec::new();
    // Families in which no rule of the port meets its traffic, either way.
    let mut unfiltered: Vec<&str> = Vec::new();
    let mut unhooked: Vec<String> = Vec::new();
    let mut others = 0;
    for &v6 in &fams {
        let Some(vm) = port
            .ips
            .iter()
            .copied()
            .find(|i| i.is_ipv6() == v6 && !crate::collect::netlink::is_link_local(i))
        else {
            continue;
        };
        let tables: Vec<&Table> = fw.tables_for(v6).collect();
        let mine = Mine::of(&tables, port);
        let pfx = if fams.len() > 1 {
            format!("{}: ", fam_label(v6))
        } else {
            String::new()
        };
        fix_owner = fix_owner.or(mine.analysis.owner.clone());
        others = others.max(mine.analysis.others.len());
        for f in mine.analysis.found.iter().filter(|f| f.path.is_none()) {
            unhooked.push(format!(
                "{pfx}{} ({}, {})",
                f.chain.name,
                f.dir.label(),
                f.table.label()
            ));
        }
        let mut seen = [false, false];
        for (i, (what, pkt)) in effect_packets(port, vm).into_iter().enumerate() {
            let e = eval::evaluate(
                &fw.tables,
                &["prerouting", "forward", "postrouting"],
                ChainKind::Filter,
                &pkt,
            );
            let sees = mine.sees(&e);
            // 0 and 3 leave the VM, 1 and 2 reach it.
            seen[usize::from(i == 1 || i == 2)] |= sees;
            evidence.push(format!(
                "{pfx}{what}: {}{}",
                walked(&e),
                if sees {
                    ""
                } else {
                    " (no rule of the port met)"
                }
            ));
            let dropped = matches!(e.verdict, Verdict::Drop | Verdict::Reject);
            if !dropped {
                continue;
            }
            let by = e.by.as_ref();
            let own = by.is_some_and(|b| mine.is_mine(b));
            let spoof = by.is_some_and(|b| mine.dir_of(b) == Some(Dir::Spoof));
            match i {
                // A reply never arrives: every connection is broken.
                1 | 3 => fails.push(format!("{pfx}{what} are dropped")),
                0 if own && !spoof => warns.push(format!(
                    "{pfx}its security group lets no new connection out of the VM (no egress rule?)"
                )),
                0 if own => fails.push(format!(
                    "{pfx}the port's anti-spoofing drops the VM's own address {vm}: the rules do \
                     not match the port's records"
                )),
                0 => fails.push(format!(
                    "{pfx}new connections from the VM are dropped by a rule that is not its \
                     security group's"
                )),
                // New connections to the VM are its security group's to allow or refuse.
                _ => {}
            }
        }
        let dirs: Vec<&str> = [(seen[0], "from the VM"), (seen[1], "to the VM")]
            .iter()
            .filter(|(s, _)| *s)
            .map(|(_, d)| *d)
            .collect();
        if dirs.is_empty() {
            unfiltered.push(fam_label(v6));
        } else {
            filtered.push(format!("{pfx}{}", dirs.join(" and ")));
        }
    }
    if !unhooked.is_empty() {
        evidence.push(format!(
            "the port's chains exist but nothing jumps to them: {}",
            unhooked.join(", ")
        ));
    }
    if let Some(e) = read_errors(fw) {
        evidence.push(format!("not read: {e}"));
    }
    if !fails.is_empty() {
        return Check::fail(ID, fails.join("; "))
            .evidences(evidence)
            .fix(format!(
                "find the dropping rule in the evidence; if it is the port's own, {}",
                resync_fix(fix_owner.as_deref())
            ));
    }
    if !unfiltered.is_empty() {
        let mut summary = if filtered.is_empty() {
            format!(
                "{} is unfiltered: no security-group rule of the port meets its traffic",
                port.tap
            )
        } else {
            format!(
                "{}'s {} traffic is unfiltered: no security-group rule of the port meets it \
                 (filtered {})",
                port.tap,
                unfiltered.join(" and "),
                filtered.join("; ")
            )
        };
        if others > 0 {
            summary.push_str(&format!(
                ", while {others} other port{} {} theirs",
                if others == 1 { "" } else { "s" },
                if others == 1 { "has" } else { "have" }
            ));
        }
        let fix = if unhooked.is_empty() {
            "if the port should be filtered: check port_security_enabled on the port (ports \
             without it get no chains) and the agent's firewall_driver"
                .to_string()
        } else {
            resync_fix(fix_owner.as_deref())
        };
        return Check::warn(ID, summary).evidences(evidence).fix(fix);
    }
    if !warns.is_empty() {
        return Check::warn(ID, warns.join("; "))
            .evidences(evidence)
            .fix("if the VM should reach out, add an egress rule to its security group");
    }
    Check::ok(
        ID,
        format!(
            "{}'s traffic passes its security group, filtered {}",
            port.tap,
            filtered.join("; ")
        ),
    )
    .evidences(evidence)
}
