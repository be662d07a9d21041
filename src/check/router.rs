//! Checks of one Neutron HA router on a gateway node (pure: facts in, findings out).

use std::net::IpAddr;

use serde::Serialize;

use crate::collect::keepalived::{Keepalived, Reported, VrrpInstance};
use crate::collect::netlink::HostNet;
use crate::collect::nsscan::Conntrack;
use crate::collect::peer::PeerDoc;
use crate::error::Error;
use crate::model::{Check, Status};

/// Router check ids, in the order they run, with their meaning.
pub const ROUTER_CATALOGUE: &[(&str, &str)] = &[
    ("router.namespace", "the qrouter-<id> namespace exists and can be read"),
    ("router.interfaces", "its qr- (tenant), qg- (external) and ha- (HA network) interfaces exist and are up"),
    ("router.keepalived", "keepalived (and its VRRP child) runs for this router, in its namespace"),
    ("router.vrrp", "keepalived's own report (MASTER/BACKUP/FAULT), Neutron's state file and the addresses (the VIP on ha-) agree on primary/backup"),
    ("router.gateway", "the gateway addresses (virtual_ipaddress_excluded: qr-, qg-) are on the primary only"),
    ("router.default_route", "the primary has its default route via qg-"),
    ("router.conntrack", "the namespace's conntrack count is below 80 % (warn) / 95 % (fail) of the global nf_conntrack_max; no drops"),
    ("router.adverts", "VRRP advertisements heard on ha- for 3 advert intervals: a backup hears a primary, a primary hears no other router with its VRID"),
    ("router.dad", "on the primary: a duplicate-address ARP probe for the gateway address from qr- gets no answer from another MAC"),
    ("router.peer", "with --peer: exactly one of the two gateways is primary"),
    ("router.neutron", "with Neutron as the source: the router's L3 agents (ha_state per host) agree with this node"),
    ("router.mtu", "the router's qr- MTU is not above the node's VXLAN MTU (bigger packets are lost in the tunnel)"),
    ("router.mtu_peer", "each router interface (qr-, qg-, ha-) that is a veth has the MTU of its end on the node (Neutron's ovs_use_veth: tap<port>); a mismatch drops the bigger packets at the veth"),
    ("mtu.vxlan", "per tunnel (kernel VXLAN device, OVS tunnel port): the largest frame that can enter it (its bridge's other ports, or its own MTU) + 50 (IPv4 underlay) / 70 (IPv6) fits the underlay MTU on the route to its remote"),
    ("ovs.ports", "per ovsdb-server on the node: no Neutron port is dead (tag 4095: the agent never bound it); tunnel ports listed"),
    ("bgp.daemon", "node: the BGP speaker (BIRD or FRR) of the node answers (--no-bgp on gateways that announce nothing)"),
    ("bgp.session", "node: each BGP session is Established"),
    ("bgp.rib", "per router: each tenant prefix (the subnet of a qr- gateway address) is in the speaker's table, from the kernel"),
    ("bgp.export", "per router: each tenant prefix is advertised to every BGP peer"),
];

/// Bytes a tunnel adds to the frame it carries: outer IP, UDP and VXLAN (or Geneve) header and
/// the inner Ethernet header; GRE (Open vSwitch's `gre` is Ethernet over GRE) adds 4 + 14.
pub fn overhead(kind: &str, v6_underlay: bool) -> u32 {
    let ip = if v6_underlay { 40 } else { 20 };
    match kind {
        "gre" => ip + 4 + 14,
        _ => ip + 8 + 8 + 14,
    }
}

/// Open vSwitch's own kernel tunnel devices (`vxlan_sys_4789`, `genev_sys_6081`): their MTU (65000
/// by design) is not what limits packets; the OVS tunnel ports are judged instead.
pub fn ovs_owned(name: &str) -> bool {
    ["vxlan_sys_", "genev_sys_", "gre_sys"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The largest frame that can enter a bridge port: the largest MTU among the bridge's other
/// ports (a frame is only forwarded out of a port it fits, so what the tunnel port receives is
/// bounded by what the others can send), following Open vSwitch patch ports to the bridge on the
/// other side. `None` when the port is in no bridge or the bridge has no other port.
fn largest_into(
    name: &str,
    host: &HostNet,
    ovs: &[crate::collect::ovsdb::OvsPort],
) -> Option<(u32, Vec<String>)> {
    let mtu_of =
        |p: &crate::collect::ovsdb::OvsPort| p.mtu.or_else(|| host.link(&p.name).map(|l| l.mtu));
    if let Some(me) = ovs.iter().find(|p| p.name == name && p.in_bridge.is_some()) {
        // (bridge, patch hops from the tunnel's own bridge). One hop reaches the integration
        // bridge from a tunnel bridge; what lies beyond it (a provider network's physical
        // bridge, br-ex) is never sent into a tunnel.
        let mut bridges = vec![(me.in_bridge.clone()?, 0u8)];
        let mut seen = Vec::new();
        let mut ports = Vec::new();
        while let Some((b, hops)) = bridges.pop() {
            if seen.contains(&b) || seen.len() > 16 {
                continue;
            }
            for p in ovs
                .iter()
                .filter(|p| p.in_bridge.as_deref() == Some(b.as_str()))
            {
                if p.name == name || p.bridge.is_some() {
                    continue; // itself, or the bridge's own (host) port
                }
                // A port of a provider network (flat, VLAN) never reaches a tunnel.
                if p.port_config
                    .get("network_type")
                    .is_some_and(|t| matches!(t.as_str(), "flat" | "vlan" | "local"))
                {
                    continue;
                }
                match p.kind.as_str() {
                    "patch" if hops == 0 => {
                        let other = p
                            .peer
                            .as_deref()
                            .and_then(|peer| ovs.iter().find(|q| q.name == peer))
                            .and_then(|q| q.in_bridge.clone());
                        bridges.extend(other.map(|o| (o, hops + 1)));
                    }
                    "patch" => {}
                    "vxlan" | "geneve" | "gre" | "stt" => {} // another tunnel: decapsulated traffic
                    _ => {
                        if let Some(m) = mtu_of(p) {
                            ports.push((p.name.clone(), m));
                        }
                    }
                }
            }
            seen.push(b);
        }
        let max = ports.iter().map(|(_, m)| *m).max()?;
        let ev = ports.iter().map(|(n, m)| format!("{n} {m}")).collect();
        return Some((max, ev));
    }
    // A Linux bridge.
    let l = host.link(name)?;
    let master = l.master?;
    let others: Vec<&crate::collect::netlink::Link> = host
        .links
        .iter()
        .filter(|o| o.master == Some(master) && o.index != l.index)
        .collect();
    let max = others.iter().map(|o| o.mtu).max()?;
    Some((
        max,
        others
            .iter()
            .map(|o| format!("{} {}", o.name, o.mtu))
            .collect(),
    ))
}

/// `mtu.vxlan`, by effect: for every tunnel of the node (kernel VXLAN devices, Open vSwitch
/// tunnel ports), the largest frame that can enter it — what the other ports of its bridge can
/// send, or the device's own MTU when it is in no bridge — plus the encapsulation (50 bytes over
/// IPv4, 70 over IPv6) must fit the MTU of the underlay device on the route to its remote.
/// Evidence: the chain measured.
pub fn vxlan_checks(host: &HostNet, ovs: &[crate::collect::ovsdb::OvsPort]) -> Vec<Check> {
    let mut out = Vec::new();
    /// How the underlay was found.
    #[derive(Clone, Copy)]
    enum Via {
        Remote(IpAddr),
        Local(IpAddr),
        Dev,
    }
    let judge = |out: &mut Vec<Check>,
                 name: &str,
                 kind: &str,
                 own: Option<u32>,
                 via: Via,
                 under: &crate::collect::netlink::Link| {
        let v6 = match via {
            Via::Remote(a) | Via::Local(a) => a.is_ipv6(),
            Via::Dev => false,
        };
        let oh = overhead(kind, v6);
        let (largest, how) = match (largest_into(name, host, ovs), own) {
            (Some((m, ports)), Some(o)) if o < m => (
                o,
                format!("its own MTU {o} (bridge ports: {})", ports.join(", ")),
            ),
            (Some((m, ports)), _) => (
                m,
                format!(
                    "the largest MTU of its bridge's other ports: {}",
                    ports.join(", ")
                ),
            ),
            (None, Some(o)) => (o, format!("its own MTU {o} (in no bridge)")),
            (None, None) => return,
        };
        let need = largest + oh;
        let ev = vec![
            format!("largest frame into {name}: {largest} ({how})"),
            format!(
                "{largest} + {oh} ({kind} over IPv{}) = {need} on the underlay {} (MTU {}){}",
                if v6 { 6 } else { 4 },
                under.name,
                under.mtu,
                match via {
                    Via::Remote(r) => format!(", route to {r}"),
                    Via::Local(l) => format!(", where the local VTEP {l} is"),
                    Via::Dev => ", the device's `dev`".to_string(),
                }
            ),
        ];
        out.push(if need <= under.mtu {
            Check::ok("mtu.vxlan", format!("{name}: frames up to {largest} + {oh} fit {} ({})", under.name, under.mtu))
                .subject(name.to_string())
                .evidences(ev)
        } else {
            let max = under.mtu.saturating_sub(oh);
            Check::fail("mtu.vxlan", format!("{name}: frames of {} to {largest} bytes enter it but only {max} + {oh} fit {} ({}): they are silently lost", max + 1, under.name, under.mtu))
                .subject(name.to_string())
                .evidences(ev)
                .fix(format!("make the tenant MTU at most {max} (Neutron's global_physnet_mtu / path_mtu, and the ports: ip link set DEV mtu {max}), or raise {}'s MTU to {need}", under.name))
        });
    };
    for vx in host
        .links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("vxlan") && !ovs_owned(&l.name))
    {
        // The underlay: `dev`, the route to the remote, or where the local VTEP address is.
        let under = host.tunnel_underlay(vx);
        let Some(under) = under else {
            out.push(
                Check::unknown(
                    "mtu.vxlan",
                    format!(
                        "{}: no underlay device known (no `dev`, no remote route, no local address)",
                        vx.name
                    ),
                )
                .subject(vx.name.clone())
                .evidence(format!("{} mtu {}", vx.name, vx.mtu))
                .fix(format!(
                    "check the route to the VXLAN remote and compare: `ip -d link show {}`",
                    vx.name
                )),
            );
            continue;
        };
        let via = match (vx.lower, vx.remote, vx.local) {
            (Some(_), _, _) => Via::Dev,
            (None, Some(r), _) if host.oif_for(r) == Some(under.index) => Via::Remote(r),
            (None, _, Some(l)) => Via::Local(l),
            (None, Some(r), None) => Via::Remote(r),
            (None, None, None) => Via::Dev,
        };
        judge(&mut out, &vx.name, "vxlan", Some(vx.mtu), via, under);
    }
    // Open vSwitch tunnel ports: the underlay is the host's route to the remote VTEP (kernel
    // datapath); with OVS's own route table (userspace datapath, no kernel route) not judged.
    for t in ovs
        .iter()
        .filter(|p| matches!(p.kind.as_str(), "vxlan" | "geneve" | "gre"))
    {
        if host.link(&t.name).is_some_and(|l| !ovs_owned(&l.name)) {
            continue; // a kernel device, judged above
        }
        let Some(remote) = t
            .remote_ip
            .as_deref()
            .and_then(|r| r.parse::<IpAddr>().ok())
        else {
            continue;
        };
        let Some(under) = host.oif_for(remote).and_then(|i| host.link_by_index(i)) else {
            continue;
        };
        judge(&mut out, &t.name, &t.kind, None, Via::Remote(remote), under);
    }
    out
}

/// The router's tenant-side MTU against the node's overlay MTU.
pub fn mtu_check(net: &HostNet, namespace: &str, overlay: Option<(String, u32)>) -> Option<Check> {
    let (vx, vmtu) = overlay?;
    let qrs: Vec<_> = net
        .links
        .iter()
        .filter(|l| l.name.starts_with("qr-"))
        .collect();
    if qrs.is_empty() {
        return None;
    }
    let too_big: Vec<String> = qrs
        .iter()
        .filter(|l| l.mtu > vmtu)
        .map(|l| format!("{} mtu {}", l.name, l.mtu))
        .collect();
    let ev: Vec<String> = qrs
        .iter()
        .map(|l| format!("{} mtu {}", l.name, l.mtu))
        .chain([format!("node overlay {vx} mtu {vmtu}")])
        .collect();
    Some(if too_big.is_empty() {
        Check::ok("router.mtu", format!("qr- MTU within the overlay's {vmtu}")).evidences(ev)
    } else {
        Check::fail("router.mtu", format!("{} above the overlay MTU {vmtu} ({vx}): larger packets are lost", too_big.join(", ")))
            .evidences(ev)
            .fix(format!("ip netns exec {namespace} ip link set {} mtu {vmtu} (and fix the network's MTU in Neutron)", qrs[0].name))
    })
}

/// The router's veth interfaces against their ends on the node (Neutron's `ovs_use_veth`: the
/// node end is `tap<port prefix>` in OVS): a veth drops what is bigger than the receiving end's
/// MTU, so both ends must agree. `None` when no interface has a node end.
pub fn peer_mtu_check(net: &HostNet, host: &HostNet, namespace: &str) -> Option<Check> {
    let mut ev = Vec::new();
    let mut bad = Vec::new();
    for l in net.links.iter().filter(|l| {
        ["qr-", "qg-", "ha-"].iter().any(|p| l.name.starts_with(p))
            && l.kind.as_deref() == Some("veth")
    }) {
        let by_name = format!("tap{}", &l.name[3..]);
        let peer = host.links.iter().find(|h| h.name == by_name).or_else(|| {
            host.links.iter().find(|h| {
                h.kind.as_deref() == Some("veth")
                    && Some(h.index) == l.lower
                    && h.lower == Some(l.index)
            })
        });
        let Some(p) = peer else { continue };
        ev.push(format!(
            "{} mtu {} / node end {} mtu {}",
            l.name, l.mtu, p.name, p.mtu
        ));
        if l.mtu != p.mtu {
            bad.push((l, p));
        }
    }
    if ev.is_empty() {
        return None;
    }
    Some(match bad.first() {
        None => Check::ok(
            "router.mtu_peer",
            "router interfaces and their node ends agree on the MTU",
        )
        .evidences(ev),
        Some((l, p)) => {
            let what: Vec<String> = bad
                .iter()
                .map(|(l, p)| format!("{} {} ≠ {} {}", l.name, l.mtu, p.name, p.mtu))
                .collect();
            let small = l.mtu.min(p.mtu);
            Check::fail("router.mtu_peer", format!("MTU differs across the veth: {} (packets above {small} bytes are dropped one way)", what.join(", ")))
                .evidences(ev)
                .fix(format!("set both ends to the network's MTU, e.g. `ip link set {} mtu {}` or `ip netns exec {namespace} ip link set {} mtu {}` (whichever matches Neutron's network MTU)", p.name, l.mtu, l.name, p.mtu))
        }
    })
}

/// Host-level check of the OVS ports one ovsdb-server knows.
pub fn ovs_check(
    sock: &str,
    ports: &crate::error::Result<Vec<crate::collect::ovsdb::OvsPort>>,
) -> Check {
    let ports =
        match ports {
            Ok(p) => p,
            Err(e) => {
                return Check::unknown("ovs.ports", format!("cannot read OVSDB at {sock}"))
                .subject(sock.to_string())
                .evidence(e.to_string())
                .fix("run as root; give the socket with --ovsdb if ovsdb-server listens elsewhere");
            }
        };
    let neutron: Vec<_> = ports.iter().filter(|p| p.iface_id.is_some()).collect();
    let dead: Vec<_> = neutron.iter().filter(|p| p.tag == Some(4095)).collect();
    let tunnels: Vec<String> = ports
        .iter()
        .filter(|p| matches!(p.kind.as_str(), "vxlan" | "geneve" | "gre"))
        .map(|p| {
            format!(
                "tunnel {} ({}) to {}",
                p.name,
                p.kind,
                p.remote_ip.as_deref().unwrap_or("?")
            )
        })
        .collect();
    let mut ev: Vec<String> = dead
        .iter()
        .map(|p| {
            format!(
                "{} iface-id {} mac {} tag 4095",
                p.name,
                p.iface_id.as_deref().unwrap_or("?"),
                p.attached_mac.as_deref().unwrap_or("?")
            )
        })
        .collect();
    ev.extend(tunnels);
    if dead.is_empty() {
        Check::ok(
            "ovs.ports",
            format!("{} Neutron port(s), none dead", neutron.len()),
        )
        .subject(sock.to_string())
        .evidences(ev)
    } else {
        let names: Vec<&str> = dead.iter().map(|p| p.name.as_str()).collect();
        Check::fail("ovs.ports", format!("dead port(s) (tag 4095, never bound by the agent): {}", names.join(", ")))
            .subject(sock.to_string())
            .evidences(ev)
            .fix(format!(
                "check the port binding (`openstack port show {} -c binding_vif_type -c binding_host_id`) and the OVS agent's log; the agent rebinds it on restart",
                dead[0].iface_id.as_deref().unwrap_or("PORT")
            ))
    }
}

/// Checks from the wire: adverts heard, and the duplicate-address probe.
pub fn wire_checks(f: &RouterFacts, w: &crate::collect::vrrp::Wire) -> Vec<Check> {
    let mut out = Vec::new();
    let primary = holds_vip(f) == Some(true);
    let vrid = f.instance.as_ref().ok().and_then(|i| i.vrid);
    if let (Some(h), Some(vrid)) = (&w.heard, vrid) {
        out.push(match h {
            Err(e) => Check::unknown("router.adverts", "could not listen for VRRP adverts").evidence(e.to_string()).fix("run as root"),
            Ok(h) => {
                let others: Vec<(std::net::Ipv4Addr, u32)> = h
                    .by_vrid
                    .get(&vrid)
                    .map(|m| m.iter().filter(|(a, _)| !w.own.contains(a)).map(|(a, n)| (*a, *n)).collect())
                    .unwrap_or_default();
                let ev: Vec<String> = others.iter().map(|(a, n)| format!("{n} advert(s) for VRID {vrid} from {a}")).collect();
                let secs = h.listened_s;
                match (primary, others.is_empty()) {
                    (true, true) => Check::ok("router.adverts", format!("no other router advertises VRID {vrid} ({secs:.1} s)")),
                    (true, false) => Check::fail("router.adverts", format!("split-brain: {} also advertise(s) VRID {vrid} while this node is primary", others.iter().map(|o| o.0.to_string()).collect::<Vec<_>>().join(", ")))
                        .evidences(ev)
                        .fix("two keepalived are MASTER for one router: check VRRP priorities and the HA network; restart keepalived on one gateway"),
                    (false, false) => Check::ok("router.adverts", format!("primary {} heard", others[0].0)).evidences(ev),
                    (false, true) => Check::fail("router.adverts", format!("no primary: no VRRP advert for VRID {vrid} in {secs:.1} s and this node is backup"))
                        .fix("VRRP is cut between the gateways (HA network, IP protocol 112 filtered) or no keepalived is MASTER: check the other gateway's keepalived"),
                }
            }
        });
    }
    if let Some((target, r)) = &w.dad {
        out.push(match r {
            Err(e) => Check::unknown("router.dad", format!("could not probe {target}")).evidence(e.to_string()).fix("run as root"),
            Ok(m) if m.is_empty() => Check::ok("router.dad", format!("no other MAC answers for {target}")),
            Ok(m) => Check::fail("router.dad", format!("another router also holds {target}: {} answered", m.join(", ")))
                .evidences(m.iter().map(|x| format!("ARP reply for {target} from {x}")))
                .fix("split-brain: two gateways hold the tenant gateway address; restart keepalived on the one that should be backup"),
        });
    }
    out
}

/// Everything known about one router on this node.
#[derive(Debug, Clone)]
pub struct RouterFacts<'a> {
    pub router_id: &'a str,
    pub namespace: &'a str,
    pub net: Result<&'a HostNet, &'a str>,
    pub conntrack: &'a Conntrack,
    pub conntrack_max: Option<u64>,
    pub keepalived: Option<&'a Keepalived>,
    /// The VRRP instance from the router's keepalived.conf, or why it could not be read.
    pub instance: Result<&'a VrrpInstance, Error>,
    /// What the state file says (`primary`, `backup`, …), or why it could not be read.
    pub state_file: Result<String, Error>,
    pub state_path: String,
    /// keepalived's own report of the router's VRRP instance (its JSON dump); `None` when it
    /// was not asked (dead, or `--no-dump`).
    pub reported: Option<Result<Reported, Error>>,
}

/// The three views of a router's VRRP state, side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Views {
    /// keepalived: the state it reports (`MASTER`, `BACKUP`, `FAULT`, …), `running` when it
    /// was not asked or did not answer, `dead`, or `no VRRP child`.
    pub keepalived: String,
    /// Neutron's state file: `primary`, `backup`, … or `-`.
    pub state_file: String,
    /// The addresses: `primary` (the VIP is configured), `backup` (it is not), or `-`.
    pub addresses: String,
}

fn has_addr(net: &HostNet, addr: IpAddr, dev: Option<&str>) -> bool {
    net.addrs.iter().any(|a| {
        a.addr == addr
            && dev.is_none_or(|d| net.link_by_index(a.index).is_some_and(|l| l.name == d))
    })
}

/// Whether the VIP is configured here: `Some(true/false)`, or `None` when unknown.
pub fn holds_vip(f: &RouterFacts) -> Option<bool> {
    let net = f.net.ok()?;
    let inst = f.instance.as_ref().ok()?;
    if inst.vips.is_empty() {
        return None;
    }
    Some(
        inst.vips
            .iter()
            .all(|v| has_addr(net, v.addr, v.dev.as_deref())),
    )
}

pub fn views(f: &RouterFacts) -> Views {
    Views {
        keepalived: match f.keepalived {
            Some(k) if k.vrrp_pid.is_some() => match &f.reported {
                Some(Ok(r)) => r.state.clone(),
                _ => "running".into(),
            },
            Some(_) => "no VRRP child".into(),
            None => "dead".into(),
        },
        state_file: f.state_file.clone().unwrap_or_else(|_| "-".into()),
        addresses: match holds_vip(f) {
            Some(true) => "primary".into(),
            Some(false) => "backup".into(),
            None => "-".into(),
        },
    }
}

/// `keepalived (JSON dump): VR_1 on ha-x MASTER since 12:01:02 (340 s), 3× master, …`.
fn reported_line(r: &Reported) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let since = r
        .since
        .filter(|t| *t > 0.0)
        .map(|t| format!(" for {:.0} s", (now - t).max(0.0)))
        .unwrap_or_default();
    format!(
        "keepalived's own report: {} on {} {}{since}; became master {}×, released {}×; adverts received {}, sent {}",
        r.iname, r.interface, r.state, r.become_master, r.release_master, r.advert_rcvd, r.advert_sent
    )
}

fn ns_exec(ns: &str, cmd: &str) -> String {
    format!("ip netns exec {ns} {cmd}")
}

/// All checks for one router.
pub fn checks(f: &RouterFacts) -> Vec<Check> {
    let mut out = Vec::new();
    let ns = f.namespace;
    let net = match f.net {
        Ok(n) => {
            out.push(
                Check::ok("router.namespace", format!("{ns} readable")).evidence(format!(
                    "{} interfaces, {} addresses",
                    n.links.len(),
                    n.addrs.len()
                )),
            );
            n
        }
        Err(e) => {
            out.push(
                Check::fail("router.namespace", format!("{ns} cannot be read"))
                    .evidence(e.to_string())
                    .fix(format!(
                        "check `ip netns list` and the l3 agent's log for router {}",
                        f.router_id
                    )),
            );
            return out;
        }
    };

    // Interfaces.
    let mut seen = Vec::new();
    let mut down = Vec::new();
    for prefix in ["qr-", "qg-", "ha-"] {
        let ls: Vec<_> = net
            .links
            .iter()
            .filter(|l| l.name.starts_with(prefix))
            .collect();
        for l in &ls {
            seen.push(format!("{} {} mtu {}", l.name, l.oper, l.mtu));
            if !l.is_oper_up() {
                down.push(l.name.clone());
            }
        }
    }
    let has = |p: &str| net.links.iter().any(|l| l.name.starts_with(p));
    let missing: Vec<&str> = ["qr-", "ha-"].into_iter().filter(|p| !has(p)).collect();
    out.push(if !down.is_empty() {
        Check::fail("router.interfaces", format!("down: {}", down.join(", ")))
            .evidences(seen.clone())
            .fix(format!("{} (and find why: `ip netns exec {ns} ip -d link`)", ns_exec(ns, &format!("ip link set {} up", down[0]))))
    } else if !missing.is_empty() {
        Check::fail("router.interfaces", format!("no {} interface in {ns}", missing.join(" or ")))
            .evidences(seen.clone())
            .fix("the l3 agent did not plug this router's ports: check its log and `openstack router show`")
    } else {
        Check::ok("router.interfaces", "qr-, ha- (and qg-) up").evidences(seen.clone())
    });

    // keepalived.
    let ka = match (f.keepalived, &f.instance) {
        (Some(k), _) if k.untrusted.is_some() => Check::unknown("router.keepalived", format!("a process named keepalived (pid {}) runs in {ns}, but it is not trusted as this router's keepalived", k.pid))
            .evidence(k.untrusted.clone().unwrap_or_default())
            .fix(format!("find who started it (`ps -o user,pid,args -p {}`); a keepalived running as a service account is trusted once the account is in trusted_accounts in /etc/vmpath/config.toml", k.pid)),
        (Some(k), _) if k.vrrp_pid.is_some() => Check::ok("router.keepalived", format!("keepalived pid {} running", k.pid))
            .evidence(format!("VRRP child pid {}", k.vrrp_pid.unwrap_or(0))),
        (Some(k), _) => Check::fail("router.keepalived", format!("keepalived pid {} has no VRRP child", k.pid))
            .fix("restart the router's keepalived (the l3 agent respawns it: `systemctl restart neutron-l3-agent`)"),
        (None, _) => Check::fail("router.keepalived", format!("no keepalived runs in {ns}"))
            .evidence(format!("state file {}: {}", f.state_path, f.state_file.clone().unwrap_or_else(|e| e.to_string())))
            .fix("restart the l3 agent so it respawns keepalived for this router (`systemctl restart neutron-l3-agent`), then re-run"),
    };
    let alive = ka.status == Status::Ok;
    out.push(ka);

    // VRRP: the three views.
    let v = views(f);
    let vip = holds_vip(f);
    let inst = f.instance.as_ref().ok();
    let vip_text = inst
        .map(|i| {
            i.vips
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let evidence = vec![
        format!("keepalived: {}", v.keepalived),
        format!(
            "state file {}: {}",
            f.state_path,
            f.state_file.clone().unwrap_or_else(|e| e.to_string())
        ),
        format!(
            "VIP {vip_text}: {}",
            match vip {
                Some(true) => "configured",
                Some(false) => "absent",
                None => "unknown",
            }
        ),
    ];
    let mut evidence = evidence;
    match &f.reported {
        Some(Ok(r)) => evidence.push(reported_line(r)),
        Some(Err(e)) => evidence.push(format!("keepalived's own report: none ({e})")),
        None => {}
    }
    let state = f.state_file.as_deref().ok();
    let said = match &f.reported {
        Some(Ok(r)) if alive => Some(r.state.as_str()),
        _ => None,
    };
    let vrrp = match (said, vip) {
        (Some("FAULT"), _) => Some(Check::fail("router.vrrp", "keepalived reports FAULT: it cannot run VRRP (a tracked interface, usually ha-, is down)")
            .evidences(evidence.clone())
            .fix(format!("{} and keepalived's log; the router is not protected while in FAULT", ns_exec(ns, "ip link show")))),
        (Some("MASTER"), Some(false)) => Some(Check::fail("router.vrrp", "keepalived reports MASTER but the VIP is not configured: it failed to add it, or something removed it")
            .evidences(evidence.clone())
            .fix(format!("restart the router's keepalived (the l3 agent respawns it), and look for what removes addresses in {ns}"))),
        (Some("BACKUP"), Some(true)) => Some(Check::fail("router.vrrp", "keepalived reports BACKUP but the VIP is still configured: stale addresses, two gateways may answer")
            .evidences(evidence.clone())
            .fix(ns_exec(ns, &format!("ip addr del {vip_text}")))),
        (Some(s), _) if s != "MASTER" && s != "BACKUP" => Some(Check::warn("router.vrrp", format!("keepalived reports {s}"))
            .evidences(evidence.clone())
            .fix("check keepalived's log for this router")),
        _ => None,
    };
    let vrrp = vrrp.unwrap_or_else(|| match (alive, state, vip) {
        (_, _, None) => Check::unknown("router.vrrp", "cannot tell whether this node holds the VIP")
            .evidences(evidence.clone())
            .fix(match &f.instance {
                Err(e) => format!("read the router's keepalived.conf: {e}"),
                Ok(_) => "run as root".to_string(),
            }),
        (true, Some("primary"), Some(true)) => Check::ok("router.vrrp", "primary: state file and VIP agree").evidences(evidence.clone()),
        (true, Some("backup"), Some(false)) => Check::ok("router.vrrp", "backup: state file and VIP agree").evidences(evidence.clone()),
        (false, _, Some(true)) => Check::fail("router.vrrp", "keepalived is dead but this node still holds the VIP: stale primary (the other gateway may be primary too)")
            .evidences(evidence.clone())
            .fix(format!("restart the l3 agent so keepalived comes back (or remove the stale addresses: {})", ns_exec(ns, &format!("ip addr del {vip_text}")))),
        (false, Some("primary"), Some(false)) => Check::fail("router.vrrp", "keepalived is dead and the state file still says primary (stale)")
            .evidences(evidence.clone())
            .fix("restart the l3 agent so keepalived comes back and rewrites the state file"),
        (false, _, Some(false)) => Check::fail("router.vrrp", "keepalived is dead: this node cannot take over")
            .evidences(evidence.clone())
            .fix("restart the l3 agent so keepalived comes back"),
        (true, Some("primary"), Some(false)) => Check::fail("router.vrrp", "state file says primary but the VIP is not configured (stale state file)")
            .evidences(evidence.clone())
            .fix("Neutron reports this router active here while it is not: restart neutron-keepalived-state-change / the l3 agent to rewrite the state"),
        (true, Some(s), Some(true)) => Check::fail("router.vrrp", format!("this node holds the VIP but the state file says {s}"))
            .evidences(evidence.clone())
            .fix("Neutron believes another node is active: restart the l3 agent to resync the state file"),
        (true, Some(s), Some(false)) => Check::warn("router.vrrp", format!("state file says {s}")).evidences(evidence.clone())
            .fix("check keepalived's log for this router (FAULT usually means the ha- interface is down)"),
        (true, None, Some(h)) => Check::warn("router.vrrp", format!("no readable state file; the VIP is {}", if h { "here" } else { "not here" }))
            .evidences(evidence.clone())
            .fix(format!("check {}", f.state_path)),
    });
    let primary_here = vip == Some(true);
    out.push(vrrp);

    // Gateway addresses: on the primary only.
    if let Some(i) = inst {
        let present: Vec<String> = i
            .excluded
            .iter()
            .filter(|a| has_addr(net, a.addr, a.dev.as_deref()))
            .map(|a| a.to_string())
            .collect();
        let absent: Vec<String> = i
            .excluded
            .iter()
            .filter(|a| !has_addr(net, a.addr, a.dev.as_deref()))
            .map(|a| a.to_string())
            .collect();
        let ev: Vec<String> = present
            .iter()
            .map(|p| format!("present: {p}"))
            .chain(absent.iter().map(|a| format!("absent: {a}")))
            .collect();
        out.push(
            match (primary_here, present.is_empty(), absent.is_empty()) {
                (true, _, true) => {
                    Check::ok("router.gateway", "primary holds every gateway address").evidences(ev)
                }
                (true, _, false) => Check::fail(
                    "router.gateway",
                    format!("primary lacks {}", absent.join(", ")),
                )
                .evidences(ev)
                .fix(format!(
                    "{} (keepalived should have added it: check its log)",
                    ns_exec(ns, &format!("ip addr add {}", absent[0]))
                )),
                (false, true, _) => {
                    Check::ok("router.gateway", "backup holds no gateway address").evidences(ev)
                }
                (false, false, _) => Check::fail(
                    "router.gateway",
                    format!(
                        "backup still holds {}: two gateways answer for it",
                        present.join(", ")
                    ),
                )
                .evidences(ev)
                .fix(ns_exec(ns, &format!("ip addr del {}", present[0]))),
            },
        );
    }

    // Default route via qg- on the primary.
    let default = net.routes.iter().find(|r| {
        r.prefix_len == 0 && r.dst.is_ipv4() && r.table == crate::collect::netlink::TABLE_MAIN
    });
    let via = default.map(|r| {
        r.nexthops
            .iter()
            .map(|h| {
                format!(
                    "via {} dev {}",
                    h.gateway
                        .map(|g| g.to_string())
                        .unwrap_or_else(|| "-".into()),
                    h.oif.map(|o| net.ifname(o)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let via_qg = default.is_some_and(|r| {
        r.nexthops
            .iter()
            .any(|h| h.oif.is_some_and(|o| net.ifname(o).starts_with("qg-")))
    });
    out.push(match (primary_here, via_qg, &via) {
        (true, true, Some(v)) => Check::ok("router.default_route", format!("default {v}")),
        (true, _, Some(v)) => Check::fail("router.default_route", format!("default route is {v}, not via qg-"))
            .fix("check the router's external gateway (`openstack router show`) and keepalived's virtual_routes"),
        (true, _, None) => Check::fail("router.default_route", "primary has no default route")
            .fix("keepalived installs it from virtual_routes on becoming primary: check its log and the router's external gateway"),
        (false, _, _) => Check::ok("router.default_route", "backup: no default route expected".to_string())
            .evidence(via.unwrap_or_else(|| "no default route".into())),
    });

    // Conntrack.
    let ct = f.conntrack;
    let drops = format!(
        "drop {} early_drop {} insert_failed {}",
        ct.drop, ct.early_drop, ct.insert_failed
    );
    out.push(match (ct.count, f.conntrack_max) {
        (None, _) => Check::ok("router.conntrack", "conntrack not in use in this namespace"),
        (Some(c), Some(m)) if m > 0 => {
            let pct = c as f64 * 100.0 / m as f64;
            let s = format!("{c} of {m} entries ({pct:.1} %)");
            let fix = format!(
                "find the top talkers (`{}`), or raise net.netfilter.nf_conntrack_max on the host",
                ns_exec(
                    ns,
                    "conntrack -L | awk '{print $5}' | sort | uniq -c | sort -rn | head"
                )
            );
            if pct >= 95.0 {
                Check::fail(
                    "router.conntrack",
                    format!("{s}: table (nearly) full, new connections are dropped"),
                )
                .evidence(drops)
                .fix(fix)
            } else if pct >= 80.0 {
                Check::warn("router.conntrack", format!("{s}: above 80 %"))
                    .evidence(drops)
                    .fix(fix)
            } else if ct.drop > 0 || ct.early_drop > 0 {
                Check::warn(
                    "router.conntrack",
                    format!("{s}, but packets were dropped for a full table"),
                )
                .evidence(drops)
                .fix(fix)
            } else {
                Check::ok("router.conntrack", s).evidence(drops)
            }
        }
        (Some(c), _) => Check::unknown(
            "router.conntrack",
            format!("{c} entries; nf_conntrack_max unreadable"),
        )
        .fix("run as root"),
    });
    out
}

/// The router's tenant prefixes: the subnets of its qr- gateway addresses (from keepalived.conf's
/// `virtual_ipaddress_excluded`, which both gateways have; else the qr- addresses configured),
/// link-local ones left out.
pub fn tenant_prefixes(
    instances: &crate::error::Result<Vec<VrrpInstance>>,
    net: &crate::error::Result<HostNet>,
) -> Vec<(IpAddr, u8)> {
    let from_conf: Vec<(IpAddr, u8)> = instances
        .iter()
        .flatten()
        .flat_map(|i| &i.excluded)
        .filter(|a| a.dev.as_deref().is_some_and(|d| d.starts_with("qr-")))
        .map(|a| (a.addr, a.prefix_len))
        .collect();
    let pairs = if from_conf.is_empty() {
        net.as_ref()
            .map(|n| {
                n.addrs
                    .iter()
                    .filter(|a| n.ifname(a.index).starts_with("qr-"))
                    .map(|a| (a.addr, a.prefix_len))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        from_conf
    };
    let mut out: Vec<(IpAddr, u8)> = pairs
        .into_iter()
        .filter(|(a, _)| !crate::collect::netlink::is_link_local(a))
        .map(|(a, l)| (crate::collect::netlink::network_of(a, l), l))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `router.peer`: exactly one of the two gateways is primary for the router (`--peer`).
pub fn peer_check(id: &str, mine: &Views, peer: &PeerDoc) -> Check {
    let host = peer.host.clone().unwrap_or_else(|| "the peer".into());
    let Some(other) = peer.routers.iter().find(|r| r.router_id == id) else {
        return Check::warn("router.peer", format!("{host} does not have router {id}"))
            .fix("the router should be scheduled on two gateways: `openstack network agent list --router ID`");
    };
    let here = mine.addresses == "primary";
    let there = other.views.addresses == "primary";
    let ev = vec![
        format!(
            "here: addresses {}, state file {}",
            mine.addresses, mine.state_file
        ),
        format!(
            "{host}: addresses {}, state file {}",
            other.views.addresses, other.views.state_file
        ),
    ];
    match (here, there) {
        (true, true) => Check::fail("router.peer", format!("split-brain: primary here and on {host}"))
            .evidences(ev)
            .fix("VRRP between the gateways is cut (check the HA network and IP protocol 112 in the firewall); restart keepalived on one side"),
        (false, false) => Check::fail("router.peer", format!("no primary: neither here nor on {host}"))
            .evidences(ev)
            .fix("check keepalived on both gateways and the ha- ports (`openstack port list --device-owner network:router_ha_interface`)"),
        _ => Check::ok("router.peer", format!("exactly one primary ({})", if here { "here" } else { host.as_str() })).evidences(ev),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::keepalived::parse_conf;
    use crate::collect::netlink::{Addr, Link, NextHop, Route};

    const CONF: &str = "vrrp_instance VR_1 {\n state BACKUP\n interface ha-aaaa\n virtual_router_id 1\n advert_int 1\n virtual_ipaddress {\n 169.254.0.1/24 dev ha-aaaa\n }\n virtual_ipaddress_excluded {\n 192.0.2.1/24 dev qr-bbbb\n }\n}\n";

    fn link(i: u32, n: &str) -> Link {
        Link {
            index: i,
            name: n.into(),
            admin_up: true,
            oper: "up".into(),
            mtu: 1450,
            mac: None,
            kind: None,
            lower: None,
            remote: None,
            local: None,
            master: None,
        }
    }

    fn net(primary: bool) -> HostNet {
        let mut addrs = vec![];
        let mut routes = vec![];
        if primary {
            addrs.push(Addr {
                index: 1,
                addr: "169.254.0.1".parse().expect("test fixture"),
                prefix_len: 24,
                noprefixroute: false,
                scope: 0,
            });
            addrs.push(Addr {
                index: 2,
                addr: "192.0.2.1".parse().expect("test fixture"),
                prefix_len: 24,
                noprefixroute: false,
                scope: 0,
            });
            routes.push(Route {
                dst: "0.0.0.0".parse().expect("test fixture"),
                prefix_len: 0,
                table: 254,
                kind: "unicast".into(),
                protocol: "static".into(),
                scope: "universe".into(),
                nexthops: vec![NextHop {
                    oif: Some(3),
                    gateway: Some("203.0.113.1".parse().expect("test fixture")),
                }],
            });
        }
        HostNet {
            links: vec![link(1, "ha-aaaa"), link(2, "qr-bbbb"), link(3, "qg-cccc")],
            addrs,
            routes,
            neighs: vec![],
        }
    }

    fn run(net: &HostNet, alive: bool, state: &str, count: Option<u64>) -> Vec<Check> {
        run_r(net, alive, state, count, None)
    }

    fn run_r(
        net: &HostNet,
        alive: bool,
        state: &str,
        count: Option<u64>,
        reported: Option<&str>,
    ) -> Vec<Check> {
        let inst = parse_conf(CONF).expect("test fixture");
        let ka = Keepalived {
            pid: 10,
            conf: None,
            vrrp_pid: Some(11),
            netns_inode: 0,
            ..Keepalived::default()
        };
        let ct = Conntrack {
            count,
            ..Conntrack::default()
        };
        let f = RouterFacts {
            router_id: "r",
            namespace: "qrouter-r",
            net: Ok(net),
            conntrack: &ct,
            conntrack_max: Some(1000),
            keepalived: alive.then_some(&ka),
            instance: Ok(&inst[0]),
            state_file: Ok(state.into()),
            state_path: "/x/state".into(),
            reported: reported.map(|st| {
                Ok(Reported {
                    iname: "VR_1".into(),
                    interface: "ha-aaaa".into(),
                    vrid: Some(1),
                    state: st.into(),
                    since: None,
                    become_master: 1,
                    release_master: 0,
                    advert_rcvd: 0,
                    advert_sent: 5,
                    effective_priority: Some(50),
                })
            }),
        };
        checks(&f)
    }

    fn status(c: &[Check], id: &str) -> Status {
        c.iter()
            .find(|x| x.id == id)
            .map(|x| x.status)
            .unwrap_or_else(|| panic!("{id} missing"))
    }

    #[test]
    fn healthy_primary_and_backup() {
        let p = run(&net(true), true, "primary", Some(10));
        assert!(p.iter().all(|c| c.status == Status::Ok), "{p:#?}");
        let b = run(&net(false), true, "backup", None);
        assert!(b.iter().all(|c| c.status == Status::Ok), "{b:#?}");
    }

    #[test]
    fn stale_and_inconsistent_states_fail() {
        // keepalived killed on the primary: VIP and state file left behind.
        let c = run(&net(true), false, "primary", Some(1));
        assert_eq!(status(&c, "router.keepalived"), Status::Fail);
        assert_eq!(status(&c, "router.vrrp"), Status::Fail);
        // state file primary, VIP absent.
        let c = run(&net(false), true, "primary", Some(1));
        assert_eq!(status(&c, "router.vrrp"), Status::Fail);
        // backup holding the gateway address.
        let mut n = net(false);
        n.addrs.push(Addr {
            index: 2,
            addr: "192.0.2.1".parse().expect("test fixture"),
            prefix_len: 24,
            noprefixroute: false,
            scope: 0,
        });
        let c = run(&n, true, "backup", Some(1));
        assert_eq!(status(&c, "router.gateway"), Status::Fail);
    }

    #[test]
    fn keepalived_own_report_against_the_addresses() {
        // Agreeing reports change nothing.
        let p = run_r(&net(true), true, "primary", Some(1), Some("MASTER"));
        assert!(p.iter().all(|c| c.status == Status::Ok), "{p:#?}");
        let b = run_r(&net(false), true, "backup", Some(1), Some("BACKUP"));
        assert!(b.iter().all(|c| c.status == Status::Ok), "{b:#?}");
        // MASTER without the VIP, BACKUP with it, FAULT: fail even when the state file agrees
        // with the addresses.
        for (primary, st, said) in [
            (false, "backup", "MASTER"),
            (true, "primary", "BACKUP"),
            (true, "primary", "FAULT"),
        ] {
            let c = run_r(&net(primary), true, st, Some(1), Some(said));
            assert_eq!(status(&c, "router.vrrp"), Status::Fail, "{said}: {c:#?}");
            let v = c
                .iter()
                .find(|x| x.id == "router.vrrp")
                .expect("test fixture");
            assert!(v.evidence.iter().any(|e| e.contains(said)), "{v:#?}");
        }
        assert_eq!(
            status(
                &run_r(&net(false), true, "backup", Some(1), Some("INIT")),
                "router.vrrp"
            ),
            Status::Warn
        );
    }

    #[test]
    fn veth_ends_must_agree_on_the_mtu() {
        let veth = |i: u32, n: &str, mtu: u32, peer: u32| Link {
            kind: Some("veth".into()),
            mtu,
            lower: Some(peer),
            ..link(i, n)
        };
        let ns = HostNet {
            links: vec![veth(2, "qg-cccc", 1500, 7), veth(3, "qr-bbbb", 1450, 8)],
            ..HostNet::default()
        };
        let host = |qg_end: u32| HostNet {
            links: vec![
                // By name (Neutron's tap<port>), and by the mutual IFLA_LINK of a veth pair.
                veth(7, "tapcccc", qg_end, 2),
                veth(8, "anything", 1450, 3),
                veth(9, "tapunrelated", 9000, 4),
            ],
            ..HostNet::default()
        };
        let ok = peer_mtu_check(&ns, &host(1500), "qrouter-r").expect("a check");
        assert_eq!(ok.status, Status::Ok, "{ok:#?}");
        assert_eq!(ok.evidence.len(), 2, "{ok:#?}");
        let bad = peer_mtu_check(&ns, &host(1400), "qrouter-r").expect("a check");
        assert_eq!(bad.status, Status::Fail);
        assert!(
            bad.summary.contains("qg-cccc 1500 ≠ tapcccc 1400"),
            "{bad:#?}"
        );
        // No veth with a node end: no row.
        assert!(peer_mtu_check(&ns, &HostNet::default(), "qrouter-r").is_none());
    }

    #[test]
    fn conntrack_thresholds() {
        assert_eq!(
            status(
                &run(&net(true), true, "primary", Some(790)),
                "router.conntrack"
            ),
            Status::Ok
        );
        assert_eq!(
            status(
                &run(&net(true), true, "primary", Some(800)),
                "router.conntrack"
            ),
            Status::Warn
        );
        assert_eq!(
            status(
                &run(&net(true), true, "primary", Some(950)),
                "router.conntrack"
            ),
            Status::Fail
        );
    }
}
