//! `sg.drops`: which explicit rules of the port's chains are dropping its traffic, from their
//! counters.

use std::collections::HashSet;

use super::chains::{analyse, Dir};
use super::{read_errors, SgPort};
use crate::collect::firewall::{Backend, Chain, Cond, FirewallFacts, Rule, Table};
use crate::model::Check;

/// Why a drop rule is a healthy default, or `None` for an explicit one.
pub(super) fn default_kind(
    t: &Table,
    chain: &Chain,
    idx: usize,
    dir: Option<Dir>,
) -> Option<&'static str> {
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
