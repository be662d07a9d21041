//! Which chains are the port's own, and are they reachable from the hooked base chains.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use super::eval::{self};
use super::{fam_label, families, read_errors, resync_fix, SgPort};
use crate::collect::firewall::{Chain, FirewallFacts, Rule, Table};
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
    /// Reachable from a forward-hook base chain (forwarded traffic passes through it).
    pub(super) on_forward: bool,
    /// The rule that jumps into it on that path.
    pub(super) via: Option<&'a Rule>,
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
