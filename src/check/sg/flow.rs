//! `--flow`: one flow, parsed, turned into a packet and walked through the rules.

use std::fmt;
use std::net::IpAddr;

use super::chains::{classify, Dir};
use super::drops::default_kind;
use super::eval::{self, ChainKind, Evaluation, Iface, Packet, Verdict};
use super::{read_errors, SgPort};
use crate::collect::firewall::{proto, FirewallFacts};
use crate::model::Check;

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
pub fn parse_flow(s: &str) -> crate::error::Result<Flow> {
    let bad =
        |why: &str| crate::error::Error::usage(format!("invalid flow {s:?}: {why}; {FLOW_FORMS}"));
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
