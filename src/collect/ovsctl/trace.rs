//! `ofproto/trace` output (OVS 3.x text, `ofproto/ofproto-dpif-trace.c`): what happens to a
//! packet in the bridges' OpenFlow tables and which datapath actions it ends in. Pure.
//!
//! A trace is one pass per translation: the first, then one per recirculation (each `ct(table=N)`
//! resumes the packet in a pass of its own, after a `recirc(0x…) - resume conntrack with …`
//! banner between two lines of `=`). A pass is `Flow: …`, the bridges and the tables hit in them
//! (`bridge("br-int")` over a line of dashes; `NN. MATCH, priority P, cookie C` with its actions
//! below, indented; details ` -> …`, warnings ` >> …`, errors ` >>>> … <<<<`), then `Final flow:`,
//! `Megaflow:` and `Datapath actions:`. The last pass's datapath actions are the verdict
//! ([`Trace::verdict`]).
//!
//! Nesting is read from the indentation the way OVS writes it: a node's children are indented at
//! least as far as the node itself, the last non-terminal child of a list (a resubmitted table,
//! a patch port's bridge) no further. A resumed pass names the bridge the trace started on in its
//! header even when the `ct()` ran in another one (a trace started on br-tun resumes in br-int's
//! table 82 under `bridge("br-tun")`); its tables are given the bridge that ran the `ct()`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::flows::{number, split_actions};

/// A parsed `ofproto/trace` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub passes: Vec<Pass>,
    /// The ` >>>> … <<<<` errors (their text), `Translation failed (…), packet is dropped.`,
    /// `Action execution failed` and the recirculation limit, in order.
    pub errors: Vec<String>,
}

/// One translation of the packet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    /// The banner of a resumed pass: `recirc(0x1) - resume conntrack with default
    /// ct_state=trk|new (use --ct-next to customize)`. None for the first pass.
    pub banner: Option<String>,
    /// The conntrack state the pass resumed with, from the banner (`trk|new`, `est|rpl|trk`).
    pub ct_state: Option<String>,
    /// The flow the pass started with (`Flow: …`).
    pub flow: String,
    /// The table a resumed pass continued at (`Resuming from table 72`).
    pub resumed_at: Option<u8>,
    /// Every table hit, in the order printed (depth first).
    pub tables: Vec<TableHit>,
    /// `Final flow: …` (`unchanged` as printed).
    pub final_flow: String,
    pub megaflow: String,
    /// `Datapath actions: …` as printed (see [`parse_datapath_actions`]).
    pub datapath_actions: String,
    /// Why the flow is handled by the userspace slow path, when it is.
    pub slow_path: Vec<String>,
}

/// One table lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableHit {
    /// The bridge whose table it is (`""` when the trace named none before it).
    pub bridge: String,
    pub table: u8,
    /// None when no rule matched (`No match.`; `match_text` holds what OVS said).
    pub priority: Option<u32>,
    /// The matching rule's match (`""` for a catch-all rule).
    pub match_text: String,
    /// The rule's actions, one per line as printed (`resubmit(,58)`, `output:2`).
    pub actions: Vec<String>,
    /// Details (`-> …`), warnings (`>> …`) and errors (`>>>> … <<<<`), marker included.
    pub notes: Vec<String>,
}

/// Where a trace was decided: a table of a bridge and the priority of the rule hit there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    pub bridge: String,
    pub table: u8,
    pub priority: Option<u32>,
}

/// A packet leaving in a tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelExit {
    /// The remote tunnel endpoint (outer destination address).
    pub remote: IpAddr,
    /// The VXLAN/Geneve VNI or GRE key (`vni=` of `tnl_push`, `tun_id=` of `set(tunnel(…))`).
    pub vni: u32,
    /// The datapath port it is sent to: `out_port(N)` of a userspace `tnl_push` (the underlay
    /// bridge), the tunnel vport after a kernel `set(tunnel(…))`. A name with `--names`.
    pub out_port: String,
    /// Where the encapsulated packet then leaves (userspace: the underlay bridge's outputs).
    pub underlay: Vec<String>,
}

/// What the datapath actions do with the packet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exits {
    pub tunnels: Vec<TunnelExit>,
    /// Plain outputs (datapath port numbers, or names with `--names`).
    pub ports: Vec<String>,
    /// A `recirc(…)`: the packet continues in a later pass.
    pub recirculates: bool,
}

/// The verdict of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing leaves; `at` is the table that dropped it (the last one with a `drop` action,
    /// else the last one hit).
    Dropped { at: Option<TableRef> },
    /// The packet leaves in one tunnel or more (flooding: one per remote).
    Tunnel { exits: Vec<TunnelExit> },
    /// The packet leaves by these datapath ports only.
    Port { ports: Vec<String> },
    /// A tunnel output could not be built: the remote's MAC is not in OVS's neighbor cache
    /// (OVS sent an ARP/ND request; a trace a moment later may pass).
    NeighborMiss { remote: IpAddr },
    /// A tunnel output could not be built: OVS has no route to the remote (`ovs/route/show`).
    RoutingFailed,
    /// No pass with datapath actions, or one that recirculates with no pass after it.
    Unparsed,
}

/// How deep `clone(…)` actions are followed.
const MAX_CLONE_DEPTH: usize = 8;

impl Trace {
    /// The verdict: the last pass's datapath actions decide. A tunnel output wins over plain
    /// ports; with none, a neighbor cache miss or a failed tunnel route noted in that pass says
    /// why; with no output at all the packet is dropped.
    pub fn verdict(&self) -> Outcome {
        let Some(last) = self.passes.last() else {
            return Outcome::Unparsed;
        };
        if last.datapath_actions.is_empty() {
            return Outcome::Unparsed;
        }
        let exits = last.exits();
        if !exits.tunnels.is_empty() {
            return Outcome::Tunnel {
                exits: exits.tunnels,
            };
        }
        let notes = || last.tables.iter().flat_map(|t| t.notes.iter());
        if let Some(remote) = notes().find_map(|n| neighbor_miss(n)) {
            return Outcome::NeighborMiss { remote };
        }
        if notes().any(|n| n.contains("native tunnel routing failed")) {
            return Outcome::RoutingFailed;
        }
        if exits.recirculates {
            return Outcome::Unparsed;
        }
        if !exits.ports.is_empty() {
            return Outcome::Port { ports: exits.ports };
        }
        Outcome::Dropped {
            at: last.drop_point(),
        }
    }
}

impl Pass {
    /// What this pass's datapath actions do.
    pub fn exits(&self) -> Exits {
        parse_datapath_actions(&self.datapath_actions)
    }

    /// The table that dropped the packet: the last with a `drop` action of its own (not the
    /// `drop` OVS prints under a `ct(…)`), else the last table hit.
    pub fn drop_point(&self) -> Option<TableRef> {
        let dropped = |t: &&TableHit| {
            t.actions
                .iter()
                .enumerate()
                .any(|(i, a)| a == "drop" && !(i > 0 && t.actions[i - 1].starts_with("ct(")))
        };
        let t = self
            .tables
            .iter()
            .rev()
            .find(dropped)
            .or(self.tables.last())?;
        Some(TableRef {
            bridge: t.bridge.clone(),
            table: t.table,
            priority: t.priority,
        })
    }
}

/// `-> neighbor cache miss for 198.51.100.11 on bridge br-phy, sending ARP request`.
fn neighbor_miss(note: &str) -> Option<IpAddr> {
    let rest = note.split("neighbor cache miss for ").nth(1)?;
    rest.split([' ', ',']).next()?.parse().ok()
}

/// The datapath actions of a pass (`ct(commit,zone=1),clone(tnl_push(…),1),push_vlan(…),4`):
/// tunnel exits (userspace `tnl_push`, kernel `set(tunnel(…))` then its output), plain outputs
/// and recirculation, `clone(…)` followed. Outputs after a `tnl_push` in the same action list
/// carry the encapsulated packet (its underlay); the output after a `set(tunnel(…))` is the
/// tunnel's vport.
pub fn parse_datapath_actions(text: &str) -> Exits {
    let mut out = Exits::default();
    walk_actions(text.trim(), 0, &mut out);
    out
}

fn walk_actions(list: &str, depth: usize, out: &mut Exits) {
    let mut pushed: Option<usize> = None; // index in out.tunnels of this list's tnl_push
    let mut set_tunnel: Option<(IpAddr, u32)> = None;
    for a in split_actions(list) {
        if let Some(inner) = call(a, "clone") {
            if depth < MAX_CLONE_DEPTH {
                walk_actions(inner, depth + 1, out);
            }
        } else if let Some(inner) = call(a, "tnl_push") {
            if let Some(exit) = tnl_push(inner) {
                out.tunnels.push(exit);
                pushed = Some(out.tunnels.len() - 1);
            }
        } else if let Some(inner) = call(a, "set") {
            if let Some(t) = call(inner, "tunnel") {
                set_tunnel = kernel_tunnel(t);
            }
        } else if a.starts_with("recirc(") {
            out.recirculates = true;
        } else if is_output(a) {
            if let Some(i) = pushed {
                if let Some(t) = out.tunnels.get_mut(i) {
                    t.underlay.push(a.to_string());
                }
            } else if let Some((remote, vni)) = set_tunnel.take() {
                out.tunnels.push(TunnelExit {
                    remote,
                    vni,
                    out_port: a.to_string(),
                    underlay: Vec::new(),
                });
            } else {
                out.ports.push(a.to_string());
            }
        }
    }
}

/// A bare datapath action that is an output (a port number, or a name with `--names`), not an
/// action without arguments.
fn is_output(a: &str) -> bool {
    !a.is_empty()
        && !a.contains(['(', ')', '=', ' '])
        && !matches!(
            a,
            "drop" | "pop_vlan" | "ct_clear" | "pop_eth" | "pop_nsh" | "pop_mpls" | "userspace"
        )
}

/// The arguments of `name(…)` when `a` is exactly that call.
pub(crate) fn call<'a>(a: &'a str, name: &str) -> Option<&'a str> {
    a.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')
}

/// `key=value` among the top-level fields of an argument list.
fn field<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    split_actions(args)
        .into_iter()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// `tnl_port(5),header(size=50,type=4,eth(…),ipv4(src=…,dst=…,…),udp(…),vxlan(flags=…,vni=0x36f)),out_port(2)`.
fn tnl_push(args: &str) -> Option<TunnelExit> {
    let parts = split_actions(args);
    let header = parts.iter().find_map(|p| call(p, "header"))?;
    let out_port = parts.iter().find_map(|p| call(p, "out_port"))?;
    let mut remote = None;
    let mut vni = None;
    for h in split_actions(header) {
        if let Some(ip) = call(h, "ipv4").or_else(|| call(h, "ipv6")) {
            remote = field(ip, "dst").and_then(|d| d.parse().ok());
        } else if let Some(v) = call(h, "vxlan").or_else(|| call(h, "geneve")) {
            vni = field(v, "vni").and_then(number);
        } else if let Some(g) = call(h, "gre") {
            vni = field(g, "key").and_then(number);
        }
    }
    Some(TunnelExit {
        remote: remote?,
        vni: u32::try_from(vni?).ok()?,
        out_port: out_port.to_string(),
        underlay: Vec::new(),
    })
}

/// `tun_id=0x5,src=2.2.2.2,dst=1.1.1.1,ttl=64,flags(df|key)` (IPv6: `ipv6_dst=`).
fn kernel_tunnel(args: &str) -> Option<(IpAddr, u32)> {
    let remote = field(args, "dst")
        .or_else(|| field(args, "ipv6_dst"))?
        .parse()
        .ok()?;
    let vni = u32::try_from(number(field(args, "tun_id")?)?).ok()?;
    Some((remote, vni))
}

/// One entry of the indentation stack while reading a pass.
enum Open {
    Bridge {
        indent: usize,
        name: String,
        header: usize,
    },
    Table {
        indent: usize,
        index: usize,
    },
}

impl Open {
    fn indent(&self) -> usize {
        match self {
            Open::Bridge { indent, .. } | Open::Table { indent, .. } => *indent,
        }
    }
}

/// A pass being read: the pass, the header each table's bridge came from, the open nodes.
struct Reading {
    pass: Pass,
    header_of: Vec<Option<usize>>,
    headers: usize,
    open: Vec<Open>,
    in_body: bool,
    slow: bool,
}

impl Reading {
    fn new(flow: &str, banner: Option<String>) -> Self {
        let ct_state = banner.as_deref().and_then(|b| {
            let s = b.split("ct_state=").nth(1)?;
            Some(s.split_whitespace().next().unwrap_or("").to_string())
        });
        Reading {
            pass: Pass {
                banner,
                ct_state,
                flow: flow.to_string(),
                ..Pass::default()
            },
            header_of: Vec::new(),
            headers: 0,
            open: Vec::new(),
            in_body: true,
            slow: false,
        }
    }

    /// The nearest open bridge: its name and header number.
    fn bridge(&self) -> (String, Option<usize>) {
        self.open
            .iter()
            .rev()
            .find_map(|o| match o {
                Open::Bridge { name, header, .. } => Some((name.clone(), Some(*header))),
                Open::Table { .. } => None,
            })
            .unwrap_or_default()
    }

    /// The nearest open table.
    fn table(&mut self) -> Option<&mut TableHit> {
        let i = self.open.iter().rev().find_map(|o| match o {
            Open::Table { index, .. } => Some(*index),
            Open::Bridge { .. } => None,
        })?;
        self.pass.tables.get_mut(i)
    }

    /// A line of the body (between `Flow:` and `Final flow:`).
    fn body_line(&mut self, indent: usize, t: &str, errors: &mut Vec<String>) {
        if t.is_empty() || t.bytes().all(|b| b == b'-') {
            return;
        }
        if let Some(name) = t
            .strip_prefix("bridge(\"")
            .and_then(|r| r.strip_suffix("\")"))
        {
            while self.open.last().is_some_and(|o| o.indent() >= indent) {
                self.open.pop();
            }
            self.open.push(Open::Bridge {
                indent,
                name: name.to_string(),
                header: self.headers,
            });
            self.headers += 1;
            return;
        }
        if t == "thaw" {
            return;
        }
        if let Some(n) = t.strip_prefix("Resuming from table ") {
            self.pass.resumed_at = n.trim().parse().ok();
            return;
        }
        if let Some((table, digits, rest)) = table_line(t) {
            // `%2d. `: a one-digit table is padded to the indentation of two.
            let base = indent.saturating_sub(2usize.saturating_sub(digits));
            while self.open.last().is_some_and(|o| match o {
                Open::Table { indent, .. } => *indent >= base,
                Open::Bridge { indent, .. } => *indent > base,
            }) {
                self.open.pop();
            }
            let (bridge, header) = self.bridge();
            let (priority, match_text) = rule(rest);
            self.pass.tables.push(TableHit {
                bridge,
                table,
                priority,
                match_text,
                ..TableHit::default()
            });
            self.header_of.push(header);
            self.open.push(Open::Table {
                indent: base,
                index: self.pass.tables.len() - 1,
            });
            return;
        }
        // An action or a note: notes are written ` -> `, one column right of the actions.
        let note = t.starts_with("-> ") || t.starts_with(">> ") || t.starts_with(">>>> ");
        let at = if note {
            indent.saturating_sub(1)
        } else {
            indent
        };
        while self.open.last().is_some_and(|o| o.indent() >= at) {
            self.open.pop();
        }
        if let Some(e) = t.strip_prefix(">>>> ") {
            errors.push(e.strip_suffix(" <<<<").unwrap_or(e).to_string());
        }
        match self.table() {
            Some(hit) if note => hit.notes.push(t.to_string()),
            Some(hit) => hit.actions.push(t.to_string()),
            None if t.starts_with(">> ") => errors.push(t.to_string()),
            None => {}
        }
    }

    /// The finished pass; tables under the first header of a resumed pass (or under none) get
    /// the bridge that ran the `ct()` it resumed from (`ct_bridge`: resume table → bridge).
    fn finish(mut self, ct_bridge: &mut BTreeMap<u8, String>) -> Pass {
        if let Some(b) = self.pass.resumed_at.and_then(|t| ct_bridge.get(&t)) {
            for (hit, header) in self.pass.tables.iter_mut().zip(&self.header_of) {
                if *header == Some(0) || hit.bridge.is_empty() {
                    hit.bridge = b.clone();
                }
            }
        }
        for hit in &self.pass.tables {
            for a in &hit.actions {
                if let Some(t) = call(a, "ct").and_then(|args| field(args, "table")) {
                    if let Ok(t) = t.parse() {
                        ct_bridge.insert(t, hit.bridge.clone());
                    }
                }
            }
        }
        self.pass
    }
}

/// `NN. rest`: the table number, how many digits it has, the rest.
fn table_line(t: &str) -> Option<(u8, usize, &str)> {
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 3 {
        return None;
    }
    let rest = t[digits..].strip_prefix(". ").or_else(|| {
        let r = t[digits..].strip_prefix('.')?;
        r.is_empty().then_some(r)
    })?;
    Some((t[..digits].parse().ok()?, digits, rest))
}

/// `MATCH, priority P, cookie C` (`priority P…` for an empty match; `No match.` and the like
/// without a priority).
fn rule(rest: &str) -> (Option<u32>, String) {
    let (head, tail) = match rest.rfind(", priority ") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None if rest.starts_with("priority ") => ("", rest),
        None => return (None, rest.to_string()),
    };
    let p = tail
        .trim_start_matches("priority ")
        .split(',')
        .next()
        .and_then(|p| p.trim().parse().ok());
    match p {
        Some(p) => (Some(p), head.to_string()),
        None => (None, rest.to_string()),
    }
}

/// Parse an `ofproto/trace` reply. Total: any text gives a [`Trace`] (possibly without passes).
pub fn parse_trace(text: &str) -> Trace {
    let mut trace = Trace::default();
    let mut cur: Option<Reading> = None;
    let mut banner: Option<String> = None;
    let mut in_banner = false;
    let mut ct_bridge: BTreeMap<u8, String> = BTreeMap::new();
    for line in text.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let t = t.trim_end();
        if t.len() >= 20 && t.bytes().all(|b| b == b'=') {
            in_banner = !in_banner;
            continue;
        }
        if in_banner {
            if t.starts_with("recirc(") {
                banner = Some(t.to_string());
            } else if t.starts_with("Trace reached") || t.starts_with("Queued but not") {
                trace.errors.push(t.to_string());
            }
            continue;
        }
        if let Some(flow) = line.strip_prefix("Flow: ") {
            if let Some(r) = cur.take() {
                trace.passes.push(r.finish(&mut ct_bridge));
            }
            cur = Some(Reading::new(flow.trim_end(), banner.take()));
            continue;
        }
        let Some(r) = cur.as_mut() else {
            continue;
        };
        if indent == 0 {
            if let Some(v) = t.strip_prefix("Final flow: ") {
                r.in_body = false;
                r.pass.final_flow = v.to_string();
                continue;
            }
            if !r.in_body {
                if let Some(v) = t.strip_prefix("Megaflow: ") {
                    r.pass.megaflow = v.to_string();
                } else if let Some(v) = t.strip_prefix("Datapath actions: ") {
                    r.pass.datapath_actions = v.to_string();
                } else if t.starts_with("This flow is handled by the userspace slow path") {
                    r.slow = true;
                } else if t.starts_with("Translation failed") || t.starts_with("Action execution") {
                    trace.errors.push(t.to_string());
                }
                continue;
            }
        }
        if r.in_body {
            r.body_line(indent, t, &mut trace.errors);
        } else if r.slow {
            if let Some(why) = t.strip_prefix("- ") {
                r.pass.slow_path.push(why.trim_end_matches('.').to_string());
            }
        }
    }
    if let Some(r) = cur {
        trace.passes.push(r.finish(&mut ct_bridge));
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::ovsctl::tests::fixture;

    fn trace(name: &str) -> Trace {
        parse_trace(&fixture(name))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal")
    }

    fn at(bridge: &str, table: u8, priority: u32) -> Outcome {
        Outcome::Dropped {
            at: Some(TableRef {
                bridge: bridge.into(),
                table,
                priority: Some(priority),
            }),
        }
    }

    #[test]
    fn vm_to_router_leaves_in_vxlan_879_to_the_gateway() {
        let t = trace("trace2-vm-to-router.txt");
        assert_eq!(t.passes.len(), 2);
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        let first = &t.passes[0];
        assert_eq!(first.banner, None);
        assert!(first.flow.starts_with("icmp,in_port=3,"), "{}", first.flow);
        assert_eq!(first.datapath_actions, "ct(zone=1),recirc(0x2)");
        let tables: Vec<(&str, u8, Option<u32>)> = first
            .tables
            .iter()
            .map(|h| (h.bridge.as_str(), h.table, h.priority))
            .collect();
        assert_eq!(
            tables,
            [
                ("br-int", 0, Some(0)),
                ("br-int", 58, Some(0)),
                ("br-int", 59, Some(0)),
                ("br-int", 60, Some(100)),
                ("br-int", 71, Some(65))
            ]
        );
        let t71 = &first.tables[4];
        assert_eq!(
            t71.match_text,
            "ip,reg5=0x3,in_port=3,dl_src=fa:16:3e:63:ad:00,nw_src=198.18.0.197"
        );
        assert_eq!(
            t71.actions,
            ["ct(table=72,zone=NXM_NX_REG6[0..15])", "drop"]
        );
        assert_eq!(t71.notes.len(), 2);
        assert!(t71.notes[0].starts_with("-> A clone of the packet is forked"));

        let second = &t.passes[1];
        assert_eq!(second.ct_state.as_deref(), Some("trk|new"));
        assert!(second
            .banner
            .as_deref()
            .is_some_and(|b| b.starts_with("recirc(0x2)")));
        assert_eq!(second.resumed_at, Some(72));
        let where_: Vec<(&str, u8)> = second
            .tables
            .iter()
            .map(|h| (h.bridge.as_str(), h.table))
            .collect();
        assert_eq!(
            where_,
            [
                ("br-int", 72),
                ("br-int", 73),
                ("br-int", 91),
                ("br-int", 94),
                ("br-tun", 0),
                ("br-tun", 2),
                ("br-tun", 20),
                ("br-phy", 0),
                ("br-ex", 0)
            ]
        );
        let t20 = &second.tables[6];
        assert_eq!(
            t20.actions,
            [
                "load:0->NXM_OF_VLAN_TCI[]",
                "load:0x36f->NXM_NX_TUN_ID[]",
                "output:2"
            ]
        );
        assert!(t20
            .notes
            .contains(&"-> tunneling to 198.51.100.11 via br-phy".to_string()));
        assert_eq!(
            t.verdict(),
            Outcome::Tunnel {
                exits: vec![TunnelExit {
                    remote: ip("198.51.100.11"),
                    vni: 879,
                    out_port: "2".into(),
                    underlay: vec!["1".into()],
                }]
            }
        );
        // Flooding in br-int also sends it to br-int's own port 4.
        assert_eq!(second.exits().ports, ["4"]);
    }

    #[test]
    fn the_flood_order_does_not_change_whose_tables_they_are() {
        // Another run of the same trace: NORMAL flooded to br-ex first, so br-tun is br-int's
        // last child and printed at the left margin like br-int itself.
        let t = trace("trace2c-flood-order.txt");
        let where_: Vec<(&str, u8)> = t.passes[1]
            .tables
            .iter()
            .map(|h| (h.bridge.as_str(), h.table))
            .collect();
        assert_eq!(
            where_,
            [
                ("br-int", 72),
                ("br-int", 73),
                ("br-int", 91),
                ("br-int", 94),
                ("br-ex", 0),
                ("br-tun", 0),
                ("br-tun", 2),
                ("br-tun", 20),
                ("br-phy", 0)
            ]
        );
        let Outcome::Tunnel { exits } = t.verdict() else {
            panic!("{:?}", t.verdict());
        };
        assert_eq!((exits[0].remote, exits[0].vni), (ip("198.51.100.11"), 879));
        assert_eq!(
            t.passes[1].tables[7].actions.last().map(String::as_str),
            Some("output:2")
        );
    }

    #[test]
    fn every_captured_egress_trace_with_a_resolved_neighbor_ends_in_the_tunnel() {
        for name in [
            "trace2b-ctnext.txt",
            "trace15-tcp.txt",
            "trace16-generate.txt",
        ] {
            let t = trace(name);
            let Outcome::Tunnel { exits } = t.verdict() else {
                panic!("{name}: {:?}", t.verdict());
            };
            assert_eq!(exits.len(), 1, "{name}");
            assert_eq!(
                (exits[0].remote, exits[0].vni),
                (ip("198.51.100.11"), 0x36f)
            );
        }
        assert_eq!(
            trace("trace2b-ctnext.txt").passes[1].ct_state.as_deref(),
            Some("new|trk")
        );
        let t = trace("trace15-tcp.txt");
        assert_eq!(t.passes.len(), 2);
    }

    #[test]
    fn an_arp_broadcast_floods_both_tunnels_and_nested_bridges_keep_their_tables() {
        let t = trace("trace3-arp.txt");
        assert_eq!(t.passes.len(), 1);
        let Outcome::Tunnel { exits } = t.verdict() else {
            panic!("{:?}", t.verdict());
        };
        let remotes: Vec<IpAddr> = exits.iter().map(|e| e.remote).collect();
        assert_eq!(remotes, [ip("198.51.100.11"), ip("198.51.100.12")]);
        assert!(exits.iter().all(|e| e.vni == 879 && e.out_port == "2"));
        let p = &t.passes[0];
        let t22 = p
            .tables
            .iter()
            .find(|h| h.bridge == "br-tun" && h.table == 22)
            .expect("table 22");
        // output:3 comes after the nested br-phy of output:2 and still belongs to table 22.
        assert_eq!(
            t22.actions,
            [
                "strip_vlan",
                "load:0x36f->NXM_NX_TUN_ID[]",
                "output:2",
                "output:3"
            ]
        );
        assert!(t22
            .notes
            .contains(&"-> tunneling to 198.51.100.12 via br-phy".to_string()));
        let phys: Vec<&TableHit> = p.tables.iter().filter(|h| h.bridge == "br-phy").collect();
        assert_eq!(phys.len(), 2);
        assert!(phys.iter().all(|h| h.actions == ["NORMAL"]));
        let last = p.tables.last().expect("tables");
        assert_eq!((last.bridge.as_str(), last.table), ("br-ex", 0));
        assert_eq!(last.match_text, "reg0=0x2");
    }

    #[test]
    fn a_resumed_pass_belongs_to_the_bridge_that_ran_the_ct() {
        // Started on br-tun: the resumed pass's header says br-tun, its table 82 is br-int's.
        let t = trace("trace5-reverse-est.txt");
        assert_eq!(t.passes.len(), 2);
        let resumed = &t.passes[1];
        assert_eq!(resumed.ct_state.as_deref(), Some("est|rpl|trk"));
        assert_eq!(resumed.tables.len(), 1);
        assert_eq!(
            (resumed.tables[0].bridge.as_str(), resumed.tables[0].table),
            ("br-int", 82)
        );
        assert_eq!(resumed.tables[0].priority, Some(50));
        assert_eq!(resumed.final_flow, "unchanged");
        assert_eq!(
            t.verdict(),
            Outcome::Port {
                ports: vec!["3".into()]
            }
        );
        // The first pass: br-tun, then br-int through the patch port.
        let first: Vec<(&str, u8)> = t.passes[0]
            .tables
            .iter()
            .map(|h| (h.bridge.as_str(), h.table))
            .collect();
        assert_eq!(
            first,
            [
                ("br-tun", 0),
                ("br-tun", 4),
                ("br-tun", 10),
                ("br-int", 0),
                ("br-int", 58),
                ("br-int", 59),
                ("br-int", 60),
                ("br-int", 81)
            ]
        );
        let t10 = &t.passes[0].tables[2];
        assert_eq!(
            t10.notes,
            [">> suppressing side effects, so learn action ignored"]
        );
        assert_eq!(t10.actions.last().map(String::as_str), Some("output:1"));
    }

    #[test]
    fn drops_name_the_table_and_rule() {
        // Default ct_state trk|new on a reply: the ingress SG drops it in table 93.
        assert_eq!(
            trace("trace4-reverse-default.txt").verdict(),
            at("br-int", 93, 0)
        );
        // A spoofed source: anti-spoof table 71 priority 10 sends it to table 93.
        let t = trace("trace6-spoof.txt");
        assert_eq!(t.verdict(), at("br-int", 93, 0));
        let t71 = t.passes[0]
            .tables
            .iter()
            .find(|h| h.table == 71)
            .expect("71");
        assert_eq!(
            (t71.priority, t71.match_text.as_str()),
            (Some(10), "reg5=0x3,in_port=3")
        );
        // An unknown VNI arriving from a tunnel: br-tun table 4's catch-all.
        assert_eq!(trace("trace7-badvni.txt").verdict(), at("br-tun", 4, 0));
    }

    #[test]
    fn a_dead_port_floods_vlan_4095_only_locally() {
        let t = trace("trace11-deadport.txt");
        let last = t.passes.last().expect("passes");
        assert!(last.datapath_actions.contains("push_vlan(vid=4095"));
        assert_eq!(
            t.verdict(),
            Outcome::Port {
                ports: vec!["4".into()]
            }
        );
        let t22 = last
            .tables
            .iter()
            .find(|h| h.bridge == "br-tun" && h.table == 22)
            .expect("22");
        assert_eq!(
            (t22.priority, t22.actions.as_slice()),
            (Some(0), &["drop".to_string()][..])
        );
    }

    #[test]
    fn tunnel_failures_say_why() {
        assert_eq!(
            trace("trace1-nonbr.txt").verdict(),
            Outcome::NeighborMiss {
                remote: ip("198.51.100.11")
            }
        );
        let t = trace("trace12-noroute.txt");
        assert_eq!(t.verdict(), Outcome::RoutingFailed);
        let t20 = t.passes[1]
            .tables
            .iter()
            .find(|h| h.table == 20)
            .expect("20");
        assert_eq!(
            t20.notes,
            [
                "-> output to native tunnel",
                ">> native tunnel routing failed"
            ]
        );
    }

    #[test]
    fn names_form_and_datapath_flows() {
        let t = trace("trace13-names.txt");
        assert_eq!(
            t.verdict(),
            Outcome::Port {
                ports: vec!["tapc6677132-b4".into()]
            }
        );
        assert_eq!(
            t.passes[0].tables[0].match_text,
            "in_port=\"vxlan-c633640b\""
        );
        let t = trace("trace14-names-fwd.txt");
        assert_eq!(
            t.verdict(),
            Outcome::Tunnel {
                exits: vec![TunnelExit {
                    remote: ip("198.51.100.11"),
                    vni: 879,
                    out_port: "br-phy".into(),
                    underlay: vec!["eth1".into()],
                }]
            }
        );
        assert_eq!(t.passes[1].exits().ports, ["br-int"]);
        // A datapath flow: br-phy's NORMAL floods to datapath port 2.
        let t = trace("trace10-odp.txt");
        assert_eq!(t.passes[0].tables[0].bridge, "br-phy");
        assert_eq!(
            t.verdict(),
            Outcome::Port {
                ports: vec!["2".into()]
            }
        );
    }

    #[test]
    fn kernel_tunnels_and_odd_actions() {
        let e = parse_datapath_actions(
            "set(tunnel(tun_id=0x5,src=2.2.2.2,dst=1.1.1.1,ttl=64,flags(df|key))),1,3",
        );
        assert_eq!(
            e.tunnels,
            [TunnelExit {
                remote: ip("1.1.1.1"),
                vni: 5,
                out_port: "1".into(),
                underlay: vec![],
            }]
        );
        assert_eq!(e.ports, ["3"]);
        let e = parse_datapath_actions(
            "set(tunnel(tun_id=0x10,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,ttl=64,flags(df|key))),4",
        );
        assert_eq!(e.tunnels[0].remote, ip("2001:db8::2"));
        let e = parse_datapath_actions("pop_vlan,ct_clear,userspace(pid=0,slow_path(action)),drop");
        assert!(e.ports.is_empty() && e.tunnels.is_empty());
        let nested = format!("{}5{}", "clone(".repeat(20), ")".repeat(20));
        assert!(parse_datapath_actions(&nested).ports.is_empty());
        assert_eq!(parse_datapath_actions("clone(clone(7))").ports, ["7"]);
        let t = parse_trace("Flow: x\n\nbridge(\"br0\")\n-------\n 0. No match.\n\nFinal flow: unchanged\nMegaflow: x\nDatapath actions: drop\n");
        assert_eq!(
            t.verdict(),
            Outcome::Dropped {
                at: Some(TableRef {
                    bridge: "br0".into(),
                    table: 0,
                    priority: None
                })
            }
        );
        assert_eq!(t.passes[0].tables[0].match_text, "No match.");
    }

    #[test]
    fn errors_slow_path_and_garbage() {
        let t = parse_trace(
            "Flow: in_port=1\n\nbridge(\"br0\")\n-------\n 0. priority 0\n    controller\n     >>>> no controller <<<<\n\n\
             Final flow: unchanged\nMegaflow: in_port=1\nDatapath actions: userspace(pid=1,controller)\n\n\
             This flow is handled by the userspace slow path because it:\n  - Sends \"packet-in\" messages to the OpenFlow controller.\n\
             Translation failed (Recursion too deep), packet is dropped.\n",
        );
        assert_eq!(t.errors[0], "no controller");
        assert!(t.errors[1].starts_with("Translation failed"));
        assert_eq!(
            t.passes[0].slow_path,
            ["Sends \"packet-in\" messages to the OpenFlow controller"]
        );
        assert_eq!(t.passes[0].tables[0].notes, [">>>> no controller <<<<"]);
        for junk in [
            "",
            "nosuchbr: unknown bridge",
            "Flow:",
            "Flow: x\n 999. y\n1. \n",
        ] {
            let t = parse_trace(junk);
            assert!(matches!(t.verdict(), Outcome::Unparsed), "{junk:?}");
        }
    }
}
