//! The flows of an Open vSwitch compute node, judged by their effect on the VM's traffic: the
//! port's local VLAN maps to its network's VNI in the tunnel bridge, a packet of the VM traced
//! through ovs-vswitchd (`ofproto/trace`, the real flows and conntrack) leaves on the network's
//! tunnels with its VNI, the answer from a tunnel reaches the VM's port, the security group
//! (the native OVS firewall's tables) lets both through, and where the path goes next (the
//! VTEPs behind the network's other MACs). Pure: the traces asked for are planned here
//! ([`plan`]) and their answers judged here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::check::ovs::{is_tunnel, tunnels_for};
use crate::collect::netlink::HostNet;
use crate::collect::openstack::NeutronFacts;
use crate::collect::ovsctl::flows::{self, Flow};
use crate::collect::ovsctl::trace::{Outcome, TableRef, Trace};
use crate::collect::ovsdb::{OvsDb, OvsPort};
use crate::error::Result;
use crate::model::Check;
use crate::port::vif::Vif;

/// The native OVS firewall's tables in br-int (neutron-lib `ovs_constants`): base egress 71
/// up to the accepted/dropped tables 91–94, ingress 81–82.
const FIREWALL_TABLES: std::ops::RangeInclusive<u8> = 71..=94;
/// Base egress table: its flows name the port's addresses (`nw_src`, `arp_spa`, `ipv6_src`).
const BASE_EGRESS: u8 = 71;

/// What vmpath read from ovs-vswitchd for one port: the flows of the bridges on its path and
/// the traces of its packets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Switch {
    /// The control socket asked.
    pub socket: String,
    /// `bridge/dump-flows BRIDGE`, per bridge.
    pub flows: BTreeMap<String, Result<Vec<Flow>>>,
    /// The traces asked for, with their answers.
    pub traces: Vec<(TraceAsk, Result<Trace>)>,
    /// `ovs/route/show`, read when the tunnel bridge is on the userspace datapath (OVS routes
    /// its tunnel packets by this table, not the kernel's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Result<Vec<crate::collect::ovsctl::replies::OvsRoute>>>,
}

/// One `ofproto/trace` to ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceAsk {
    /// `egress` (from the VM out) or `ingress` (a reply from a tunnel to the VM).
    pub name: String,
    pub bridge: String,
    pub flow: String,
    /// Options after the flow (`--ct-next`, `--names`).
    pub options: Vec<String>,
}

impl TraceAsk {
    /// The command as an operator would type it.
    pub fn command(&self) -> String {
        let mut s = format!("ovs-appctl ofproto/trace {} '{}'", self.bridge, self.flow);
        for o in &self.options {
            s.push(' ');
            s.push_str(o);
        }
        s
    }
}

/// A unicast placeholder MAC (locally administered) for a destination no flow knows: the
/// trace then takes the flooding path of the network.
pub const UNKNOWN_MAC: &str = "02:00:00:00:00:01";
/// The destination of the traced connection when none is given: any address off the subnet
/// does (the trace sends nothing).
pub const PLACEHOLDER_DST: &str = "203.0.113.1";

/// The port's OpenFlow port number.
fn ofport(vif: &Vif, db: &OvsDb) -> Option<i64> {
    vif.iface(db).and_then(|i| i.ofport).filter(|o| *o > 0)
}

/// The VM's addresses as the native OVS firewall's flows of its port name them (base egress
/// table 71, `in_port=OFPORT`: `nw_src`, `arp_spa`, `ipv6_src`), without wildcards.
pub fn vm_addresses(ofport: i64, br_int: &[Flow]) -> Vec<IpAddr> {
    let port = ofport.to_string();
    let mut out: Vec<IpAddr> = br_int
        .iter()
        .filter(|f| f.table == BASE_EGRESS && f.field("in_port") == Some(port.as_str()))
        .flat_map(|f| {
            ["nw_src", "arp_spa", "ipv6_src"]
                .into_iter()
                .filter_map(|k| f.field(k))
                .filter(|v| !v.contains('/'))
                .filter_map(|v| v.parse::<IpAddr>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|ip| !ip.is_unspecified())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The OpenFlow port whose firewall flows name `ip` as the VM's address (for a walk by address).
pub fn port_of_address(ip: IpAddr, br_int: &[Flow]) -> Vec<i64> {
    let mut ports: Vec<i64> = br_int
        .iter()
        .filter(|f| f.table == BASE_EGRESS)
        .filter(|f| {
            ["nw_src", "arp_spa", "ipv6_src"]
                .iter()
                .any(|k| f.field(k).and_then(|v| v.parse::<IpAddr>().ok()) == Some(ip))
        })
        .filter_map(|f| f.field("in_port")?.parse().ok())
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// The bridge holding the tunnel ports reached from the VM's bridge (br-tun), if any.
pub fn tunnel_bridge(vif: &Vif, db: &OvsDb, net: &HostNet) -> Option<String> {
    tunnels_for(vif, db, net)
        .into_iter()
        .filter(|t| is_tunnel(&t.kind))
        .find_map(|t| t.in_bridge.clone())
        .filter(|b| *b != vif.bridge)
}

/// The bridges whose flows the walk reads: the VM's bridge and its tunnel bridge.
pub fn bridges(vif: &Vif, db: &OvsDb, net: &HostNet) -> Vec<String> {
    let mut v = vec![vif.bridge.clone()];
    v.extend(tunnel_bridge(vif, db, net));
    v
}

fn flows_of<'a>(sw: &'a Switch, bridge: &str) -> Option<&'a [Flow]> {
    sw.flows
        .get(bridge)
        .and_then(|r| r.as_ref().ok())
        .map(Vec::as_slice)
}

/// The VNI the port's network uses: the agent's record (Port other_config segmentation_id),
/// else the tunnel bridge's flows for the port's local VLAN.
fn expected_vni(i: &OvsPort, br_tun: Option<&[Flow]>) -> Option<u32> {
    i.port_config
        .get("segmentation_id")
        .and_then(|s| s.parse().ok())
        .or_else(|| {
            let vlan = u16::try_from(i.tag?).ok()?;
            flows::vni_of_vlan(br_tun?, vlan)
        })
}

/// The tunnel port a reply from the network arrives on: the first tunnel the network floods
/// to, else the first tunnel port of the tunnel bridge.
fn ingress_tunnel<'a>(
    vif: &Vif,
    db: &'a OvsDb,
    net: &HostNet,
    br_tun: Option<&[Flow]>,
    vlan: Option<u16>,
) -> Option<&'a OvsPort> {
    let tunnels: Vec<&OvsPort> = tunnels_for(vif, db, net)
        .into_iter()
        .filter(|t| is_tunnel(&t.kind) && t.ofport.is_some_and(|o| o > 0))
        .collect();
    let flooded = br_tun
        .zip(vlan)
        .and_then(|(f, v)| flows::floods(f).into_iter().find(|fl| fl.vlan == v))
        .map(|fl| fl.outputs)
        .unwrap_or_default();
    tunnels
        .iter()
        .find(|t| {
            t.ofport
                .is_some_and(|o| flooded.iter().any(|f| i64::from(*f) == o))
        })
        .or(tunnels.first())
        .copied()
}

/// The traces to ask, from what OVSDB and the flows say: a TCP connection from the VM (its
/// MAC and address as the firewall knows them) to its gateway `dst` (the router's qr- MAC and
/// the gateway address, from Neutron; without them an unknown unicast MAC to an address off
/// the subnet: the network's flooding path), and its answer arriving from a tunnel (`--ct-next
/// trk,est,rpl`: a reply of that connection). With a kernel tunnel device in the VM's bridge
/// (no tunnel bridge), the answer comes in on that device.
pub fn plan(
    vif: &Vif,
    db: &OvsDb,
    net: &HostNet,
    sw_flows: &Switch,
    dst: Option<(&str, IpAddr)>,
    probes: &[SgProbe],
) -> Vec<TraceAsk> {
    let Some(i) = vif.iface(db) else {
        return Vec::new();
    };
    let Some(port) = ofport(vif, db) else {
        return Vec::new();
    };
    let br_int = flows_of(sw_flows, &vif.bridge).unwrap_or_default();
    let tb = tunnel_bridge(vif, db, net);
    let br_tun = tb.as_deref().and_then(|b| flows_of(sw_flows, b));
    let mac = i
        .attached_mac
        .clone()
        .unwrap_or_else(|| "fa:16:3e:00:00:00".into());
    let ip = vm_addresses(port, br_int).into_iter().find(IpAddr::is_ipv4);
    let src = ip.map_or_else(|| "198.18.0.2".to_string(), |a| a.to_string());
    let (dst_mac, dst_ip) = match dst {
        Some((m, IpAddr::V4(a))) => (m.to_string(), a.to_string()),
        _ => (UNKNOWN_MAC.to_string(), PLACEHOLDER_DST.to_string()),
    };
    let mut out = vec![TraceAsk {
        name: "egress".into(),
        bridge: vif.bridge.clone(),
        flow: format!(
            "tcp,in_port={},dl_src={mac},dl_dst={dst_mac},nw_src={src},nw_dst={dst_ip},nw_ttl=64,tp_src=33000,tp_dst=443",
            vif.ovs_iface
        ),
        options: vec!["--names".into()],
    }];
    let vlan = i.tag.and_then(|t| u16::try_from(t).ok());
    let reply = format!(
        "dl_src={dst_mac},dl_dst={mac},tcp,nw_src={dst_ip},nw_dst={src},nw_ttl=63,tp_src=443,tp_dst=33000"
    );
    let Some((bridge, entry)) = ingress_entry(vif, db, net, br_tun, tb.as_deref(), vlan) else {
        return out;
    };
    out.push(TraceAsk {
        name: "ingress".into(),
        bridge: bridge.clone(),
        flow: format!("{entry},{reply}"),
        options: vec!["--ct-next".into(), "trk,est,rpl".into(), "--names".into()],
    });
    // New connections to the VM that its security groups' rules name (and one none allows):
    // each traced as arriving from the network, as a first packet (`trk,new`).
    for p in probes {
        let l4 = match p.protocol.as_str() {
            "icmp" => "icmp,icmp_type=8,icmp_code=0".to_string(),
            proto => format!("{proto},tp_src=40000,tp_dst={}", p.port.unwrap_or(1)),
        };
        out.push(TraceAsk {
            name: format!("sg:{}", p.name),
            bridge: bridge.clone(),
            flow: format!(
                "{entry},dl_src={dst_mac},dl_dst={mac},{l4},nw_src={},nw_dst={src},nw_ttl=63",
                p.src
            ),
            options: vec!["--ct-next".into(), "trk,new".into(), "--names".into()],
        });
    }
    out
}

/// Where a packet from the network enters this host's flows for the port: the tunnel bridge's
/// tunnel port (with the network's VNI and the tunnel's addresses), else a kernel tunnel
/// device in the VM's bridge. The bridge and the flow's first fields.
fn ingress_entry(
    vif: &Vif,
    db: &OvsDb,
    net: &HostNet,
    br_tun: Option<&[Flow]>,
    tb: Option<&str>,
    vlan: Option<u16>,
) -> Option<(String, String)> {
    let i = vif.iface(db)?;
    if let (Some(b), Some(t)) = (tb, ingress_tunnel(vif, db, net, br_tun, vlan)) {
        let mut flow = format!("in_port={}", t.name);
        if let Some(v) = expected_vni(i, br_tun) {
            flow.push_str(&format!(",tun_id={v:#x}"));
        }
        if let (Some(r), Some(l)) = (&t.remote_ip, &t.local_ip) {
            flow.push_str(&format!(",tun_src={r},tun_dst={l}"));
        }
        return Some((b.to_string(), flow));
    }
    // A kernel tunnel device in the VM's bridge: the packet arrives on it.
    tunnels_for(vif, db, net)
        .into_iter()
        .find(|t| !is_tunnel(&t.kind) && t.in_bridge.as_deref() == Some(vif.bridge.as_str()))
        .map(|k| (vif.bridge.clone(), format!("in_port={}", k.name)))
}

/// A new connection to trace into the VM for the security-group comparison (`sg.neutron`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgProbe {
    /// The rule's id, or `unlisted` for the port no rule allows.
    pub name: String,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    pub port: Option<u16>,
    /// The source address (inside the rule's remote prefix).
    pub src: IpAddr,
}

fn trace_of<'a>(sw: &'a Switch, name: &str) -> Option<(&'a TraceAsk, &'a Result<Trace>)> {
    sw.traces
        .iter()
        .find(|(a, _)| a.name == name)
        .map(|(a, t)| (a, t))
}

/// Is a drop point where the native firewall decides — anti-spoofing (71), the rules (72
/// egress, 82 ingress) and its drop table (93) — in the VM's bridge? (Its other tables only
/// pass the packet on.)
fn in_firewall(at: &Option<TableRef>, bridge: &str) -> bool {
    at.as_ref().is_some_and(|t| {
        matches!(t.table, 71 | 72 | 82 | 93) && (t.bridge == bridge || t.bridge.is_empty())
    })
}

/// Did any pass of the trace go through the native firewall's tables?
fn through_firewall(t: &Trace, bridge: &str) -> bool {
    t.passes
        .iter()
        .flat_map(|p| p.tables.iter())
        .any(|h| FIREWALL_TABLES.contains(&h.table) && (h.bridge == bridge || h.bridge.is_empty()))
}

/// Why a table dropped the packet, in Neutron's terms.
fn drop_reason(at: &Option<TableRef>) -> String {
    let Some(t) = at else {
        return "no flow forwards it".into();
    };
    let p = t
        .priority
        .map(|p| format!(" priority {p}"))
        .unwrap_or_default();
    let what = match (t.table, t.priority) {
        (0, Some(65535)) => "the dead VLAN 4095's drop",
        (0, Some(2)) => "the drop flow of a port the agent marked dead",
        (0, _) => "local switching (no flow takes the packet in)",
        (71, Some(10)) => {
            "anti-spoofing: the packet's MAC/IP is not the port's (nor an allowed address pair)"
        }
        (72 | 82, _) | (93, _) => "the security group: no rule allows it",
        (73 | 81 | 91 | 92 | 94, _) => {
            "the firewall's accept tables (no flow passes the packet on)"
        }
        (4 | 3 | 6, _) => "no tunnel-to-VLAN flow for the packet's VNI",
        (2, _) | (20, _) => "the tunnel bridge's unicast/flooding tables",
        (22, _) => {
            "no flooding flow for the port's local VLAN (the network is not set up on the tunnels)"
        }
        _ => "a flow that drops it",
    };
    format!(
        "{} table {}{p}: {what}",
        if t.bridge.is_empty() { "?" } else { &t.bridge },
        t.table
    )
}

/// The decisive lines of a trace: the last pass's tables (bridge, table, priority, match) and
/// its datapath actions.
fn decisive(t: &Trace) -> Vec<String> {
    let Some(last) = t.passes.last() else {
        return t.errors.clone();
    };
    let mut ev: Vec<String> = last
        .tables
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(|h| {
            let rule = match (h.match_text.as_str(), h.priority) {
                ("", Some(p)) => format!("priority {p}"),
                (m, Some(p)) => format!("{m}, priority {p}"),
                (m, None) => m.to_string(),
            };
            format!(
                "{} {:>2}. {rule} → {}",
                h.bridge,
                h.table,
                h.actions.join(", ")
            )
        })
        .collect();
    ev.push(format!("Datapath actions: {}", last.datapath_actions));
    ev.extend(t.errors.iter().cloned());
    ev
}

/// `brint.vni`: the port's local VLAN maps to its network's VNI in the tunnel bridge (both
/// ways: tunnel → VLAN, VLAN → flooding to the tunnels) and agrees with the agent's record.
pub fn vni_check(vif: &Vif, db: &OvsDb, net: &HostNet, sw: &Switch) -> Check {
    let Some(i) = vif.iface(db) else {
        return Check::unknown("brint.vni", "the port is not in OVSDB").fix("see vif.ovs");
    };
    let Some(tag) = i
        .tag
        .filter(|t| *t != crate::check::ovs::DEAD_VLAN)
        .and_then(|t| u16::try_from(t).ok())
    else {
        return Check::unknown("brint.vni", "the port has no usable local VLAN")
            .fix("see brint.tag");
    };
    let Some(tb) = tunnel_bridge(vif, db, net) else {
        return Check::ok(
            "brint.vni",
            format!("not used here: {} patches to no tunnel bridge", vif.bridge),
        )
        .evidence(
            "the overlay, if any, is carried by a device in the VM's bridge (see tunnel.port)",
        );
    };
    let br_tun = match sw.flows.get(&tb) {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            return Check::unknown("brint.vni", format!("{tb}'s flows not read: {e}"))
                .fix("see flow.egress")
        }
        None => {
            return Check::unknown("brint.vni", format!("{tb}'s flows not read"))
                .fix("see flow.egress")
        }
    };
    let record: Option<u32> = i
        .port_config
        .get("segmentation_id")
        .and_then(|s| s.parse().ok());
    let maps = flows::vlan_vnis(br_tun);
    let inbound: Vec<u32> = maps
        .iter()
        .filter(|m| m.vlan == tag && m.table != flows::FLOOD_TO_TUN)
        .map(|m| m.vni)
        .collect();
    let outbound: Vec<u32> = maps
        .iter()
        .filter(|m| m.vlan == tag && m.table == flows::FLOOD_TO_TUN)
        .map(|m| m.vni)
        .collect();
    let ev = vec![
        format!(
            "local VLAN {tag}; agent record segmentation_id {}",
            record.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
        ),
        format!("{tb} tunnel → VLAN {tag}: VNI {}", list(&inbound)),
        format!(
            "{tb} VLAN {tag} → tunnels (table 22): VNI {}",
            list(&outbound)
        ),
    ];
    let fix = "restart the OVS agent on this host (it reinstalls the tunnel bridge's flows for its ports), and check its log for the port's network";
    match (inbound.first(), outbound.first()) {
        (None, _) => Check::fail("brint.vni", format!("{tb} has no flow that takes the network's traffic from the tunnels to VLAN {tag}: the VM receives nothing from other hosts"))
            .evidences(ev)
            .fix(fix),
        (_, None) => Check::fail("brint.vni", format!("{tb} has no flow that sends VLAN {tag} to the tunnels: nothing the VM floods (ARP, DHCP) leaves this host"))
            .evidences(ev)
            .fix(fix),
        (Some(a), Some(b)) if a != b || record.is_some_and(|r| r != *a) => Check::fail(
            "brint.vni",
            format!("VLAN {tag} maps to VNI {a} from the tunnels but {b} to them{}: the VM's traffic lands in another network", record.map(|r| format!(" (the agent's record says {r})")).unwrap_or_default()),
        )
        .evidences(ev)
        .fix(fix),
        (Some(a), _) => Check::ok("brint.vni", format!("VLAN {tag} ↔ VNI {a} ({a:#x}) in {tb}")).evidences(ev),
    }
}

fn list(v: &[u32]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter()
            .map(|x| format!("{x} ({x:#x})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `sg.ovs`, `flow.egress` and `flow.ingress` from the traces.
pub fn trace_checks(vif: &Vif, db: &OvsDb, net: &HostNet, sw: &Switch) -> Vec<Check> {
    let i = vif.iface(db);
    let br_tun_name = tunnel_bridge(vif, db, net);
    let br_tun = br_tun_name.as_deref().and_then(|b| flows_of(sw, b));
    let want_vni = i.and_then(|i| expected_vni(i, br_tun));
    let firewall = flows_of(sw, &vif.bridge)
        .zip(ofport(vif, db))
        .is_some_and(|(f, p)| !vm_addresses(p, f).is_empty());
    let mut sg_problems: Vec<(String, Vec<String>)> = Vec::new();
    let mut bypassed: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for name in ["egress", "ingress"] {
        let id = if name == "egress" {
            "flow.egress"
        } else {
            "flow.ingress"
        };
        let Some((ask, answer)) = trace_of(sw, name) else {
            if name == "ingress" {
                out.push(
                    Check::ok(id, "not traced: no tunnel carries the network to this host")
                        .evidence("see tunnel.port"),
                );
            } else {
                out.push(
                    Check::unknown(id, "not traced: the port has no OpenFlow port")
                        .fix("see vif.ovs"),
                );
            }
            continue;
        };
        let t = match answer {
            Ok(t) => t,
            Err(e) => {
                out.push(
                    Check::unknown(id, format!("the trace was not answered: {e}"))
                        .evidence(ask.command())
                        .fix(format!("check ovs-vswitchd (its log; `{}`)", ask.command())),
                );
                continue;
            }
        };
        let mut ev = vec![ask.command()];
        ev.extend(decisive(t));
        if firewall && !through_firewall(t, &vif.bridge) {
            bypassed.push(name.to_string());
        }
        let c = match t.verdict() {
            Outcome::Dropped { at } if in_firewall(&at, &vif.bridge) => {
                sg_problems.push((format!("{name}: dropped at {}", drop_reason(&at)), ev.clone()));
                Check::unknown(id, "not judged past the security group, which drops the traced packet (see sg.ovs)")
                    .evidences(ev)
                    .fix("see sg.ovs")
            }
            Outcome::Dropped { at } => Check::fail(id, format!("the traced packet is dropped: {}", drop_reason(&at)))
                .evidences(ev)
                .fix(format!("compare the flows with a healthy host (`ovs-ofctl dump-flows {}`); restart the OVS agent to reinstall them", at.as_ref().map(|t| t.bridge.as_str()).unwrap_or(&vif.bridge))),
            Outcome::RoutingFailed => Check::fail(id, "OVS has no route to the tunnel's remote (native tunnel routing failed)")
                .evidences(ev)
                .fix("ovs-appctl ovs/route/show; the route to the VTEP must be on the bridge that holds local_ip"),
            Outcome::NeighborMiss { remote } => Check::fail(id, format!("OVS does not know the MAC of the VTEP {remote}: it did not answer ARP (the trace asked twice)"))
                .evidences(ev)
                .fix(format!("ovs-appctl tnl/neigh/show; check the underlay path to {remote}")),
            Outcome::Unparsed => Check::unknown(id, "the trace's answer could not be read").evidences(ev).fix(ask.command()),
            Outcome::Tunnel { exits } if name == "egress" => {
                let wrong: Vec<String> = exits.iter().filter(|e| want_vni.is_some_and(|v| v != e.vni)).map(|e| format!("{} VNI {}", e.remote, e.vni)).collect();
                let shown = exits.iter().map(|e| format!("{} (VNI {})", e.remote, e.vni)).collect::<Vec<_>>().join(", ");
                if wrong.is_empty() {
                    Check::ok(id, format!("the VM's packet leaves in the tunnel to {shown}")).evidences(ev)
                } else {
                    Check::fail(id, format!("the VM's packet leaves with the wrong VNI ({}; the network's is {}): it lands in another network", wrong.join(", "), want_vni.unwrap_or(0)))
                        .evidences(ev)
                        .fix("restart the OVS agent on this host to reinstall the tunnel bridge's flows")
                }
            }
            Outcome::Tunnel { exits } => Check::fail(id, format!("the reply goes back into a tunnel ({}) instead of to the VM", exits.iter().map(|e| e.remote.to_string()).collect::<Vec<_>>().join(", ")))
                .evidences(ev)
                .fix("compare br-int's flows for the port with a healthy host; restart the OVS agent"),
            Outcome::Port { ports } if name == "egress" => {
                // Out of a kernel tunnel device in the bridge (no tunnel bridge), or a
                // provider network's physical bridge.
                let tunnels: Vec<&String> = ports.iter().filter(|p| tunnels_for(vif, db, net).iter().any(|t| &&t.name == p)).collect();
                if !tunnels.is_empty() || br_tun_name.is_none() {
                    Check::ok(id, format!("the VM's packet leaves by {}", ports.join(", "))).evidences(ev)
                } else {
                    Check::fail(id, format!("the VM's packet leaves by {} only, none of them a tunnel", ports.join(", ")))
                        .evidences(ev)
                        .fix("restart the OVS agent on this host to reinstall the port's flows")
                }
            }
            Outcome::Port { ports } => {
                if ports.iter().any(|p| p == &vif.ovs_iface) {
                    Check::ok(id, format!("a reply from the network reaches {}", vif.ovs_iface)).evidences(ev)
                } else {
                    Check::fail(id, format!("a reply from the network goes to {} and not to the VM's port {}", ports.join(", "), vif.ovs_iface))
                        .evidences(ev)
                        .fix("compare br-int's flows for the port with a healthy host; restart the OVS agent")
                }
            }
        };
        out.push(c);
    }
    let sg = if !sg_problems.is_empty() {
        let ev: Vec<String> = sg_problems.iter().flat_map(|(_, e)| e.clone()).collect();
        Check::fail(
            "sg.ovs",
            format!("the OVS firewall drops the VM's traffic: {}", sg_problems.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>().join("; ")),
        )
        .evidences(ev)
        .fix(format!(
            "openstack port show {} -c security_group_ids -c port_security_enabled -c allowed_address_pairs, then the groups' rules (openstack security group rule list GROUP); `ovs-ofctl dump-flows {} table=72` / table=82 on this host",
            vif.port_id.as_deref().unwrap_or(&vif.tap),
            vif.bridge
        ))
    } else if firewall && !bypassed.is_empty() {
        Check::warn(
            "sg.ovs",
            format!("the port's {} traffic does not pass its OVS firewall: it flows unfiltered", bypassed.join(" and ")),
        )
        .evidence(format!("the firewall has flows for the port (table {BASE_EGRESS}), but the trace never reaches tables 71-94"))
        .evidence("see flow.egress and flow.ingress for the traces")
        .fix(format!("restart the OVS agent on this host (it reinstalls the port's firewall flows); compare `ovs-ofctl dump-flows {} table=60` with a healthy host", vif.bridge))
    } else if firewall {
        Check::ok(
            "sg.ovs",
            "the OVS firewall lets the VM's connection out and its replies in",
        )
        .evidence("see flow.egress and flow.ingress for the traces")
    } else {
        Check::ok("sg.ovs", "not used here: no OVS firewall flows for the port (port security off, or the iptables/noop firewall)")
            .evidence(format!("no table-{BASE_EGRESS} flow of the port names its addresses"))
    };
    // Path order: the security group first, then the flows.
    let mut all = vec![sg];
    all.extend(out);
    all
}

/// `tunnel.port` for the tunnel bridge's flows of the port's network: every OpenFlow port they
/// send the network's frames to (flooding, table 22; unicast, table 20) is a tunnel port of the
/// bridge. A tunnel port removed while its flows stay loses the traffic for that VTEP.
pub fn dangling_checks(vif: &Vif, db: &OvsDb, net: &HostNet, sw: &Switch) -> Vec<Check> {
    let Some(tag) = vif
        .iface(db)
        .and_then(|i| i.tag)
        .and_then(|t| u16::try_from(t).ok())
    else {
        return Vec::new();
    };
    let Some(tb) = tunnel_bridge(vif, db, net) else {
        return Vec::new();
    };
    let Some(br_tun) = flows_of(sw, &tb) else {
        return Vec::new();
    };
    let exists = |o: u32| {
        db.ports
            .iter()
            .any(|p| p.in_bridge.as_deref() == Some(tb.as_str()) && p.ofport == Some(i64::from(o)))
    };
    let mut missing: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for f in flows::floods(br_tun).into_iter().filter(|f| f.vlan == tag) {
        for o in f.outputs.into_iter().filter(|o| !exists(*o)) {
            missing
                .entry(o)
                .or_default()
                .push(format!("table 22 floods VLAN {tag} to it"));
        }
    }
    for u in flows::unicasts(br_tun)
        .into_iter()
        .filter(|u| u.vlan == tag)
    {
        if let Some(o) = u.output.filter(|o| !exists(*o)) {
            missing
                .entry(o)
                .or_default()
                .push(format!("table 20 sends {} to it", u.mac));
        }
    }
    missing
        .into_iter()
        .map(|(o, why)| {
            Check::fail(
                "tunnel.port",
                format!("{tb}'s flows send the network's frames to OpenFlow port {o}, which is no port of {tb} (a tunnel removed?): the traffic for that VTEP is lost"),
            )
            .subject(format!("ofport {o}"))
            .evidences(why)
            .fix("restart the OVS agent on this host: it recreates the tunnel ports to the other hosts of the network and their flows")
        })
        .collect()
}

/// `path.next`: where the path goes next — the VTEPs behind the network's other MACs (br-tun's
/// unicast table 20), else the VTEPs it floods to — and the command to run there.
pub fn handoff_check(
    vif: &Vif,
    db: &OvsDb,
    net: &HostNet,
    sw: &Switch,
    vm_ip: Option<IpAddr>,
    neutron: Option<&NeutronFacts>,
) -> Check {
    let Some(tag) = vif
        .iface(db)
        .and_then(|i| i.tag)
        .and_then(|t| u16::try_from(t).ok())
    else {
        return Check::unknown("path.next", "the port has no local VLAN").fix("see brint.tag");
    };
    let Some(tb) = tunnel_bridge(vif, db, net) else {
        return Check::ok(
            "path.next",
            "not read here: no tunnel bridge (the overlay is a device in the VM's bridge)",
        )
        .evidence("see tunnel.port");
    };
    let Some(br_tun) = flows_of(sw, &tb) else {
        return Check::unknown("path.next", format!("{tb}'s flows not read"))
            .fix("see flow.egress");
    };
    let by_ofport = |o: u32| -> Option<&OvsPort> {
        db.ports
            .iter()
            .find(|p| p.in_bridge.as_deref() == Some(tb.as_str()) && p.ofport == Some(i64::from(o)))
    };
    let mut behind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut dangling = Vec::new();
    for u in flows::unicasts(br_tun)
        .into_iter()
        .filter(|u| u.vlan == tag)
    {
        match u.output.and_then(by_ofport) {
            Some(p) => behind
                .entry(p.remote_ip.clone().unwrap_or_else(|| p.name.clone()))
                .or_default()
                .push(u.mac.clone()),
            None => dangling.push(format!(
                "{} → ofport {}",
                u.mac,
                u.output
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "?".into())
            )),
        }
    }
    let flooded: Vec<String> = flows::floods(br_tun)
        .into_iter()
        .filter(|f| f.vlan == tag)
        .flat_map(|f| f.outputs)
        .filter_map(|o| by_ofport(o).and_then(|p| p.remote_ip.clone()))
        .collect();
    let target = vm_ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| vif.port_id.clone().unwrap_or_else(|| vif.tap.clone()));
    let mut ev: Vec<String> = behind
        .iter()
        .map(|(v, macs)| format!("VTEP {v}: {}", macs.join(", ")))
        .collect();
    ev.push(format!(
        "VLAN {tag} floods to: {}",
        if flooded.is_empty() {
            "none".into()
        } else {
            flooded.join(", ")
        }
    ));
    if !dangling.is_empty() {
        ev.push(format!(
            "entries to no tunnel (see tunnel.port): {}",
            dangling.join(", ")
        ));
    }
    if let Some(rec) = neutron.and_then(|n| n.ports.as_ref().ok()?.first()) {
        // Where the traced packet to the gateway's MAC went: the flows' own answer (priorities,
        // learned and l2pop entries together).
        let traced: Option<Vec<String>> = match trace_of(sw, "egress") {
            Some((_, Ok(t))) => match t.verdict() {
                Outcome::Tunnel { exits } => {
                    Some(exits.iter().map(|e| e.remote.to_string()).collect())
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(c) = crate::check::handoff::router_handoff(
            rec,
            &behind,
            &flooded,
            traced.as_deref(),
            ev.clone(),
        ) {
            return c;
        }
    }
    let vteps: Vec<String> = if behind.is_empty() {
        flooded.clone()
    } else {
        behind.keys().cloned().collect()
    };
    if vteps.is_empty() {
        return Check::ok(
            "path.next",
            "the network reaches no other host from here (no tunnel serves it)",
        )
        .evidences(ev);
    }
    Check::ok(
        "path.next",
        format!(
            "next: the gateway among VTEPs {} — run `vmpath walk {target}` there (on a gateway node it walks the router serving the address){}",
            vteps.join(", "),
            if neutron.is_none() {
                "; with Neutron credentials (clouds.yaml) the walk names the router and its primary"
            } else {
                ""
            }
        ),
    )
    .evidences(ev)
}
