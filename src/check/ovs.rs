//! Checks of a VM's path on an Open vSwitch compute node (the overlay design), judged by their
//! effect on traffic: the VIF (tap, or the hybrid chain tap → qbr → qvb/qvo) and its MTU, the
//! OVS Interface Neutron's agent binds, the port's local VLAN on the integration bridge, and the
//! tunnels that carry the network to the other VTEPs (port, route, MTU). Pure.

use std::net::IpAddr;

use crate::check::router::overhead;
use crate::collect::netlink::{HostNet, Link};
use crate::collect::ovsctl::replies::{route_for, OvsRoute};
use crate::collect::ovsdb::{OvsDb, OvsPort};
use crate::model::Check;
use crate::port::vif::Vif;
use crate::port::Sourced;

/// Every check id the compute-node walk can emit, in path order, with its meaning (README.md,
/// `vmpath walk --help`).
pub const OVS_CATALOGUE: &[(&str, &str)] = &[
    (
        "neutron.port",
        "with Neutron as the source: Neutron has the port, binds it to this host, the binding worked, it is up with the MAC plugged here",
    ),
    ("vif.tap", "the VM's tap exists and is up (carrier: the VM is attached)"),
    (
        "vif.chain",
        "hybrid plug: tap and qvb are ports of the qbr bridge, qvb/qvo are a veth pair, all up",
    ),
    (
        "vif.mtu",
        "every device of the VM's chain has the network MTU (--mtu, OVSDB mtu_request), or they agree",
    ),
    (
        "vif.ovs",
        "the OVS Interface carries the port's iface-id and attached-mac, has an OpenFlow port (not -1) and iface-status active",
    ),
    (
        "brint.tag",
        "the port has a local VLAN on the integration bridge from the agent (not none, not the dead VLAN 4095)",
    ),
    (
        "tunnel.port",
        "each tunnel port the VM's traffic can take is usable (OpenFlow port, no error, a remote); one row per tunnel",
    ),
    (
        "tunnel.route",
        "each tunnel's remote VTEP routes out of this host, from a local_ip this host has",
    ),
    (
        "tunnel.mtu",
        "the VM's largest frame plus the encapsulation (50 bytes over IPv4, 70 over IPv6) fits the underlay's MTU",
    ),
    (
        "sg.chains",
        "hybrid plug: the VM's traffic passes its security group, iptables on the qbr bridge (physdev matches), walked through the real rules",
    ),
    (
        "sg.drops",
        "hybrid plug: no explicit rule other than the final fallback drop is dropping the VM's traffic",
    ),
    (
        "brint.vni",
        "the port's local VLAN maps to its network's VNI in the tunnel bridge, both ways, as the agent recorded",
    ),
    (
        "sg.ovs",
        "the OVS firewall lets the VM's connection out and its replies in (the traces through its tables)",
    ),
    (
        "flow.egress",
        "a packet of the VM, traced through ovs-vswitchd's flows, leaves on the network's tunnels with its VNI",
    ),
    (
        "flow.ingress",
        "a reply arriving from a tunnel, traced through the flows and conntrack, reaches the VM's port",
    ),
    (
        "path.next",
        "where the path goes next: with Neutron, the router's primary gateway (where the packet to the router's MAC goes) and `vmpath router ID` to run there; else the VTEPs behind the network's other MACs",
    ),
];

/// The addresses the firewall's anti-spoofing rules allow from the port's MAC (a rule matching
/// that source MAC and one host address: Neutron's `-s IP/32 -m mac --mac-source MAC -j RETURN`
/// of the port's spoofing chain): the VM's addresses on a hybrid plug.
pub fn spoof_allowed(fw: &crate::collect::firewall::FirewallFacts, mac: &str) -> Vec<IpAddr> {
    use crate::collect::firewall::Cond;
    let mut out: Vec<IpAddr> = fw
        .tables
        .iter()
        .flat_map(|t| t.chains.iter())
        .flat_map(|c| c.rules.iter())
        .filter(|r| {
            r.matches.iter().any(|m| {
                !m.negated
                    && matches!(&m.cond, Cond::MacSrc(macs) if macs.iter().any(|x| x.eq_ignore_ascii_case(mac)))
            })
        })
        .flat_map(|r| {
            r.matches
                .iter()
                .filter(|m| !m.negated)
                .filter_map(|m| match &m.cond {
                    Cond::Src(nets) => Some(nets.clone()),
                    _ => None,
                })
                .flatten()
                .filter(|n| n.len == crate::collect::netlink::host_len(&n.addr))
                .map(|n| n.addr)
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The local VLAN Neutron's OVS agent gives a port it could not bind (`DEAD_VLAN_TAG`).
pub const DEAD_VLAN: u32 = 4095;

/// Tunnel port types.
pub fn is_tunnel(kind: &str) -> bool {
    matches!(kind, "vxlan" | "geneve" | "gre" | "stt")
}

fn updown(l: &Link) -> String {
    format!(
        "admin {}, oper {}, MTU {}",
        if l.admin_up { "up" } else { "down" },
        l.oper,
        l.mtu
    )
}

/// `vif.tap` (the VM's device exists and is up) and, for a hybrid plug, `vif.chain` (qbr is a
/// bridge holding the tap and qvb, qvb and qvo are a veth pair, all up).
pub fn vif_checks(vif: &Vif, net: &HostNet, db: &OvsDb) -> Vec<Check> {
    let mut out = Vec::new();
    let iface = vif.iface(db);
    if iface.is_some_and(|i| i.kind.starts_with("dpdkvhostuser")) {
        out.push(
            Check::ok(
                "vif.tap",
                format!(
                    "{} is a vhost-user port: no kernel tap to check",
                    vif.ovs_iface
                ),
            )
            .evidence(format!(
                "OVS Interface type {}",
                iface.map(|i| i.kind.as_str()).unwrap_or("?")
            )),
        );
        return out;
    }
    let port = vif.port_id.as_deref().unwrap_or(&vif.tap);
    out.push(match net.link(&vif.tap) {
        None => Check::fail("vif.tap", format!("{} does not exist", vif.tap))
            .evidence(format!(
                "OVSDB has the port as {} in {}, the kernel has no {}",
                vif.ovs_iface, vif.bridge, vif.tap
            ))
            .fix(format!(
                "the VM's NIC is not plugged: check the instance (openstack server show, virsh domiflist) and hard-reboot it or re-plug port {port}"
            )),
        Some(l) if !l.admin_up => {
            Check::fail("vif.tap", format!("{} is administratively down", l.name))
                .evidence(updown(l))
                .fix(format!("ip link set {} up", l.name))
        }
        Some(l) if !l.is_oper_up() => Check::fail(
            "vif.tap",
            format!("{} is up but has no carrier ({})", l.name, l.oper),
        )
        .evidence(updown(l))
        .fix("the VM side is not attached or not running: check the instance (virsh domiflist / openstack server show)"),
        Some(l) => Check::ok("vif.tap", format!("{} is up", l.name)).evidence(updown(l)),
    });
    if let Some(h) = &vif.hybrid {
        out.push(chain_check(vif, h, net));
    }
    out
}

fn chain_check(vif: &Vif, h: &crate::port::vif::Hybrid, net: &HostNet) -> Check {
    let mut problems = Vec::new();
    let mut ev = Vec::new();
    let qbr = net.link(&h.qbr);
    match qbr {
        None => problems.push(format!(
            "{} (the port's Linux bridge) does not exist",
            h.qbr
        )),
        Some(b) => {
            ev.push(format!(
                "{}: {}, kind {}",
                b.name,
                updown(b),
                b.kind.as_deref().unwrap_or("?")
            ));
            if b.kind.as_deref() != Some("bridge") {
                problems.push(format!("{} is not a bridge", b.name));
            }
            if !b.is_oper_up() {
                problems.push(format!("{} is not up", b.name));
            }
        }
    }
    let in_qbr = |name: &str| -> Option<bool> {
        let l = net.link(name)?;
        Some(qbr.is_some_and(|b| l.master == Some(b.index)))
    };
    for dev in [&vif.tap, &h.qvb] {
        match (net.link(dev), in_qbr(dev)) {
            (None, _) => problems.push(format!("{dev} does not exist")),
            (Some(l), Some(false)) => problems.push(format!(
                "{dev} is not a port of {} (master {})",
                h.qbr,
                l.master
                    .map(|m| net.ifname(m))
                    .unwrap_or_else(|| "none".into())
            )),
            (Some(l), _) => {
                ev.push(format!("{dev}: {}", updown(l)));
                if !l.is_oper_up() && dev != &vif.tap {
                    problems.push(format!("{dev} is not up"));
                }
            }
        }
    }
    match (net.link(&h.qvb), net.link(&h.qvo)) {
        (Some(b), Some(o)) => {
            ev.push(format!("{}: {}", o.name, updown(o)));
            // A veth's IFLA_LINK names its peer (when both ends are in this namespace).
            if b.lower.is_some_and(|p| p != o.index) || o.lower.is_some_and(|p| p != b.index) {
                problems.push(format!(
                    "{} and {} are not each other's veth peer",
                    h.qvb, h.qvo
                ));
            }
            if !o.is_oper_up() {
                problems.push(format!("{} is not up", o.name));
            }
        }
        (_, None) => problems.push(format!("{} does not exist", h.qvo)),
        _ => {}
    }
    if problems.is_empty() {
        Check::ok(
            "vif.chain",
            format!(
                "{} → {} → {} ↔ {} (in OVS) is complete and up",
                vif.tap, h.qbr, h.qvb, h.qvo
            ),
        )
        .evidences(ev)
    } else {
        Check::fail("vif.chain", format!("the hybrid plug is broken: {}", problems.join("; ")))
            .evidences(ev)
            .fix(format!(
                "re-plug the port the way os-vif does (hard-reboot the instance, or `openstack server reboot --hard`); by hand: ip link add {} type bridge; ip link set {} master {}; ip link set {} master {}; ip link set {} up",
                h.qbr, vif.tap, h.qbr, h.qvb, h.qbr, h.qbr
            ))
    }
}

/// `vif.mtu`: every device of the VM's chain has the network MTU (`mtu`, when a source gives
/// it); without one, the devices must agree with each other (a frame larger than the smallest is
/// dropped inside the chain).
pub fn mtu_check(vif: &Vif, net: &HostNet, db: &OvsDb, mtu: Option<&Sourced<u32>>) -> Check {
    let mut devs: Vec<&str> = vec![vif.tap.as_str()];
    if let Some(h) = &vif.hybrid {
        devs.extend([h.qbr.as_str(), h.qvb.as_str(), h.qvo.as_str()]);
    }
    let mtus: Vec<(&str, u32)> = devs
        .iter()
        .filter_map(|d| {
            // A kernel device's own MTU; OVSDB's for a vhost-user port (no kernel device).
            net.link(d)
                .map(|l| l.mtu)
                .or_else(|| {
                    db.port(d)
                        .filter(|p| p.kind.starts_with("dpdkvhostuser"))
                        .and_then(|p| p.mtu)
                })
                .map(|m| (*d, m))
        })
        .collect();
    let ev: Vec<String> = mtus.iter().map(|(d, m)| format!("{d} {m}")).collect();
    let Some(min) = mtus.iter().map(|(_, m)| *m).min() else {
        return Check::unknown("vif.mtu", "no device of the chain exists to measure")
            .fix("see vif.tap");
    };
    let max = mtus.iter().map(|(_, m)| *m).max().unwrap_or(min);
    match mtu {
        Some(want) => {
            let low: Vec<String> = mtus
                .iter()
                .filter(|(_, m)| *m < want.value)
                .map(|(d, m)| format!("{d} ({m})"))
                .collect();
            let high: Vec<String> = mtus
                .iter()
                .filter(|(_, m)| *m > want.value)
                .map(|(d, m)| format!("{d} ({m})"))
                .collect();
            let ev = ev
                .into_iter()
                .chain([format!("network MTU {} from {}", want.value, want.source)])
                .collect::<Vec<_>>();
            if !low.is_empty() {
                Check::fail(
                    "vif.mtu",
                    format!(
                        "{} below the network MTU {}: frames of {} to {} bytes from or to the VM are dropped",
                        low.join(", "),
                        want.value,
                        min + 1,
                        want.value
                    ),
                )
                .evidences(ev)
                .fix(devs_fix(&devs, want.value))
            } else if !high.is_empty() {
                Check::warn(
                    "vif.mtu",
                    format!(
                        "{} above the network MTU {}: works while the VM keeps to the network MTU, but the chain disagrees with the network",
                        high.join(", "),
                        want.value
                    ),
                )
                .evidences(ev)
                .fix(devs_fix(&devs, want.value))
            } else {
                Check::ok("vif.mtu", format!("MTU {} on every device, as the network's", want.value))
                    .evidences(ev)
            }
        }
        None if min == max => Check::ok(
            "vif.mtu",
            format!("MTU {min} on every device of the chain"),
        )
        .evidences(ev.into_iter().chain([
            "the network MTU is not recorded on this host (give --mtu to compare with it)".to_string(),
        ])),
        None => Check::fail(
            "vif.mtu",
            format!("the chain's MTUs differ ({}): frames larger than {min} bytes are dropped inside it", ev.join(", ")),
        )
        .evidences(ev)
        .fix(devs_fix(&devs, max)),
    }
}

fn devs_fix(devs: &[&str], mtu: u32) -> String {
    devs.iter()
        .map(|d| format!("ip link set {d} mtu {mtu}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `vif.ovs`: the OVS Interface is the port's — `iface-id`, `attached-mac` (against `mac`, the
/// MAC the port should have, when known) — and usable: an OpenFlow port number (not -1: the
/// interface failed), `iface-status` active.
pub fn ovs_iface_check(vif: &Vif, db: &OvsDb, mac: Option<&str>) -> Check {
    let Some(i) = vif.iface(db) else {
        return Check::fail("vif.ovs", format!("{} is not in OVSDB", vif.ovs_iface)).fix(format!(
            "ovs-vsctl --may-exist add-port {} {}",
            vif.bridge, vif.ovs_iface
        ));
    };
    let ev = vec![
        format!(
            "Interface {}: ofport {}, type {}, iface-id {}, attached-mac {}, iface-status {}, vm-uuid {}",
            i.name,
            i.ofport.map(|o| o.to_string()).unwrap_or_else(|| "[]".into()),
            if i.kind.is_empty() { "system" } else { &i.kind },
            i.iface_id.as_deref().unwrap_or("-"),
            i.attached_mac.as_deref().unwrap_or("-"),
            i.iface_status.as_deref().unwrap_or("-"),
            i.vm_uuid.as_deref().unwrap_or("-"),
        ),
    ];
    let ev = ev
        .into_iter()
        .chain(i.error.as_ref().map(|e| format!("error: {e}")))
        .collect::<Vec<_>>();
    let external_ids = |what: &str| {
        format!(
            "ovs-vsctl set Interface {} external_ids:{what} (os-vif writes it when it plugs the port; a hard reboot of the instance re-plugs it)",
            i.name
        )
    };
    match i.ofport {
        Some(n) if n > 0 => {}
        Some(-1) => {
            return Check::fail(
                "vif.ovs",
                format!(
                    "{} has no OpenFlow port (ofport -1): OVS could not open it{}",
                    i.name,
                    i.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
            )
            .evidences(ev)
            .fix(format!("make the device {} exist and be usable (re-plug the VM), then check `ovs-vsctl get Interface {} error`", i.name, i.name));
        }
        other => {
            return Check::fail(
                "vif.ovs",
                format!(
                    "{} has no usable OpenFlow port ({}): it forwards nothing",
                    i.name,
                    other
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| "not assigned".into())
                ),
            )
            .evidences(ev)
            .fix(format!(
                "ovs-vsctl get Interface {} ofport error; restart ovs-vswitchd if it stays so",
                i.name
            ));
        }
    }
    let Some(id) = &i.iface_id else {
        return Check::fail(
            "vif.ovs",
            format!("{} carries no external_ids:iface-id: the OVS agent does not know it is a Neutron port and never binds it", i.name),
        )
        .evidences(ev)
        .fix(external_ids("iface-id=PORT_UUID"));
    };
    match (&i.attached_mac, mac) {
        (None, _) => {
            return Check::fail(
                "vif.ovs",
                format!("{} carries no external_ids:attached-mac: the agent cannot build the port's flows", i.name),
            )
            .evidences(ev)
            .fix(external_ids("attached-mac=MAC"));
        }
        (Some(have), Some(want)) if !have.eq_ignore_ascii_case(want) => {
            return Check::fail(
                "vif.ovs",
                format!("{} has attached-mac {have}, but the port's MAC is {want}: the firewall flows let only {have} through", i.name),
            )
            .evidences(ev)
            .fix(external_ids(&format!("attached-mac={want}")));
        }
        _ => {}
    }
    if i.iface_status.as_deref() != Some("active") {
        return Check::warn(
            "vif.ovs",
            format!(
                "{} has iface-status {} (not active)",
                i.name,
                i.iface_status.as_deref().unwrap_or("unset")
            ),
        )
        .evidences(ev)
        .fix(external_ids("iface-status=active"));
    }
    Check::ok(
        "vif.ovs",
        format!(
            "{} is port {id} (OpenFlow port {}) in {}",
            i.name,
            i.ofport.unwrap_or(0),
            vif.bridge
        ),
    )
    .evidences(ev)
}

/// `brint.tag`: the Port has a local VLAN from the agent — none (never bound) or 4095 (the agent
/// marked it dead) forward nothing.
pub fn tag_check(vif: &Vif, db: &OvsDb) -> Check {
    let Some(i) = vif.iface(db) else {
        return Check::unknown("brint.tag", format!("{} is not in OVSDB", vif.ovs_iface))
            .fix("see vif.ovs");
    };
    let cfg: Vec<String> = i
        .port_config
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let ev = vec![format!(
        "Port {}: tag {}, other_config {{{}}}",
        i.name,
        i.tag.map(|t| t.to_string()).unwrap_or_else(|| "[]".into()),
        cfg.join(", ")
    )];
    let agent_fix = "check the OVS agent on this host (`openstack network agent list --host $(hostname)`, its log: binding errors), and the port's binding (`openstack port show PORT -c binding_host_id -c binding_vif_type -c status`)";
    match i.tag {
        None => Check::fail(
            "brint.tag",
            format!("{} has no local VLAN: the OVS agent has not bound the port, no flow forwards its traffic", i.name),
        )
        .evidences(ev)
        .fix(agent_fix),
        Some(DEAD_VLAN) => Check::fail(
            "brint.tag",
            format!("{} is in the dead VLAN 4095: the OVS agent could not bind it and drops everything it sends", i.name),
        )
        .evidences(ev)
        .fix(agent_fix),
        Some(t) => Check::ok(
            "brint.tag",
            match (i.port_config.get("network_type"), i.port_config.get("segmentation_id")) {
                (Some(nt), Some(seg)) => format!("local VLAN {t} in {} ({nt} segment {seg})", vif.bridge),
                _ => format!("local VLAN {t} in {}", vif.bridge),
            },
        )
        .evidences(ev),
    }
}

/// Is an OVS port a kernel tunnel device (a VXLAN/Geneve/GRE netdev plugged in as a system
/// port), as some deployments carry the overlay?
fn kernel_tunnel(p: &OvsPort, net: &HostNet) -> bool {
    p.kind.is_empty()
        && net
            .link(&p.name)
            .and_then(|l| l.kind.as_deref())
            .is_some_and(|k| matches!(k, "vxlan" | "geneve" | "gretap" | "ip6gretap"))
}

/// The tunnels the VM's bridge reaches through patch ports (br-int → br-tun): OVS tunnel
/// ports, and kernel tunnel devices plugged into those bridges.
pub fn tunnels_for<'a>(vif: &Vif, db: &'a OvsDb, net: &HostNet) -> Vec<&'a OvsPort> {
    let mut bridges = vec![vif.bridge.clone()];
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    while let Some(b) = bridges.pop() {
        if seen.contains(&b) || seen.len() > 16 {
            continue;
        }
        for p in db
            .ports
            .iter()
            .filter(|p| p.in_bridge.as_deref() == Some(b.as_str()))
        {
            if p.kind == "patch" {
                if let Some(other) = p
                    .peer
                    .as_deref()
                    .and_then(|peer| db.port(peer))
                    .and_then(|q| q.in_bridge.clone())
                {
                    bridges.push(other);
                }
            } else if is_tunnel(&p.kind) || kernel_tunnel(p, net) {
                out.push(p);
            }
        }
        seen.push(b);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The network type the agent recorded for the port (`vxlan`, `vlan`, `flat`, …).
pub fn network_type<'a>(vif: &Vif, db: &'a OvsDb) -> Option<&'a str> {
    vif.iface(db)
        .and_then(|i| i.port_config.get("network_type"))
        .map(String::as_str)
}

/// The underlay device a tunnel's packets leave by, and its usable MTU: the device the kernel
/// routes the remote to; when that device is an OVS bridge's own port (the userspace datapath
/// puts the VTEP address there), the smallest MTU of the bridge's uplinks, which carry the
/// packets out.
/// With `ovs_routes` (the userspace datapath: OVS routes tunnel packets by its own table), the
/// device of OVS's route to the remote.
fn underlay(
    net: &HostNet,
    db: &OvsDb,
    remote: IpAddr,
    ovs_routes: Option<&[OvsRoute]>,
) -> Option<(String, u32, Vec<String>)> {
    let (dev, mut ev) = match ovs_routes {
        Some(routes) => {
            let r = route_for(routes, remote)?;
            let dev = net.link(&r.dev)?;
            (
                dev,
                vec![format!(
                    "OVS's route to {remote} (userspace datapath): {}/{} dev {} (MTU {})",
                    r.prefix, r.prefix_len, r.dev, dev.mtu
                )],
            )
        }
        None => {
            let dev = net.link_by_index(net.oif_for(remote)?)?;
            (
                dev,
                vec![format!(
                    "route to {remote}: dev {} (MTU {})",
                    dev.name, dev.mtu
                )],
            )
        }
    };
    if let Some(own) = db.port(&dev.name).filter(|p| p.bridge.is_some()) {
        let bridge = own.bridge.clone().unwrap_or_default();
        let uplinks: Vec<(String, u32)> = db
            .ports
            .iter()
            .filter(|p| {
                p.in_bridge.as_deref() == Some(bridge.as_str())
                    && p.bridge.is_none()
                    && p.kind != "patch"
                    && !is_tunnel(&p.kind)
            })
            .filter_map(|p| {
                let m = net.link(&p.name).map(|l| l.mtu).or(p.mtu)?;
                Some((p.name.clone(), m))
            })
            .collect();
        if let Some((name, m)) = uplinks.iter().min_by_key(|(_, m)| *m) {
            ev.push(format!(
                "{} is OVS bridge {bridge}'s own port; its uplinks: {}",
                dev.name,
                uplinks
                    .iter()
                    .map(|(n, m)| format!("{n} {m}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return Some((name.clone(), *m, ev));
        }
    }
    Some((dev.name.clone(), dev.mtu, ev))
}

/// `tunnel.port`, `tunnel.route` and `tunnel.mtu` for each tunnel port the VM's traffic can
/// take: the port is usable (an OpenFlow port, no error, a remote), its remote routes out of this
/// host from a local VTEP address, and the VM's largest frame plus the encapsulation fits the
/// underlay. `vm_mtu` is the largest frame the VM sends (the network MTU, else its tap's).
pub fn tunnel_checks(
    vif: &Vif,
    net: &HostNet,
    db: &OvsDb,
    vm_mtu: Option<u32>,
    ovs_routes: Option<&[OvsRoute]>,
) -> Vec<Check> {
    let tunnels = tunnels_for(vif, db, net);
    let nt = network_type(vif, db);
    if tunnels.is_empty() {
        return vec![match nt {
            Some(t @ ("vxlan" | "geneve" | "gre" | "stt")) => Check::fail(
                "tunnel.port",
                format!("the port's network is a {t} network but {} reaches no tunnel port: its traffic cannot leave this host", vif.bridge),
            )
            .evidence(format!("bridges reached from {} through patch ports hold no tunnel", vif.bridge))
            .fix("check the OVS agent's tunnel_types and local_ip (openvswitch_agent.ini) and its log; restart it to rebuild br-tun"),
            Some(t) => Check::ok("tunnel.port", format!("not used here: the port's network is a {t} network (no overlay)"))
                .evidence("Port other_config:network_type"),
            None => Check::ok("tunnel.port", "not used here: no tunnel port on this host")
                .evidence(format!("bridges reached from {} hold no tunnel port", vif.bridge)),
        }];
    }
    let local: Vec<IpAddr> = net.local_addrs();
    let mut out = Vec::new();
    for t in tunnels {
        if let Some(l) = net.link(&t.name).filter(|_| kernel_tunnel(t, net)) {
            out.extend(kernel_tunnel_checks(t, l, net, vm_mtu));
            continue;
        }
        let ev = format!(
            "{} ({}) in {}: ofport {}, remote_ip {}, local_ip {}, key {}",
            t.name,
            t.kind,
            t.in_bridge.as_deref().unwrap_or("?"),
            t.ofport
                .map(|o| o.to_string())
                .unwrap_or_else(|| "[]".into()),
            t.remote_ip.as_deref().unwrap_or("-"),
            t.local_ip.as_deref().unwrap_or("-"),
            t.key.as_deref().unwrap_or("-")
        );
        let remote: Option<IpAddr> = t.remote_ip.as_deref().and_then(|r| r.parse().ok());
        let usable = t.ofport.is_some_and(|o| o > 0) && t.error.is_none();
        let port = match (usable, remote) {
            (false, _) => Check::fail(
                "tunnel.port",
                format!(
                    "{} is not usable (ofport {}){}: traffic for its VTEP is lost",
                    t.name,
                    t.ofport
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| "[]".into()),
                    t.error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            )
            .fix(format!(
                "ovs-vsctl get Interface {} error; restart the OVS agent to recreate it",
                t.name
            )),
            (true, None) => Check::fail(
                "tunnel.port",
                format!(
                    "{} has no usable remote_ip ({})",
                    t.name,
                    t.remote_ip.as_deref().unwrap_or("unset")
                ),
            )
            .fix("restart the OVS agent to recreate the tunnel ports"),
            (true, Some(r)) => Check::ok("tunnel.port", format!("{} to {r} is up", t.name)),
        };
        out.push(port.subject(t.name.clone()).evidence(ev));
        let Some(remote) = remote else { continue };
        let local_ip: Option<IpAddr> = t.local_ip.as_deref().and_then(|l| l.parse().ok());
        // The userspace datapath routes tunnel packets by OVS's own table.
        let routes = ovs_routes.filter(|_| t.in_bridge.as_deref().is_some_and(|b| db.userspace(b)));
        let route = match (local_ip, underlay(net, db, remote, routes)) {
            (Some(l), _) if !local.contains(&l) => Check::fail(
                "tunnel.route",
                format!("{}'s local_ip {l} is on no device of this host: its packets cannot be sent", t.name),
            )
            .fix(format!("put {l} back on the underlay device (the OVS agent's local_ip), or fix local_ip in openvswitch_agent.ini")),
            (_, None) => Check::fail(
                "tunnel.route",
                format!(
                    "no route to the VTEP {remote}{}: {}'s packets go nowhere",
                    if routes.is_some() { " in OVS's own route table (userspace datapath)" } else { "" },
                    t.name
                ),
            )
            .fix(if routes.is_some() {
                format!("ovs-appctl ovs/route/show; OVS learns its routes from the kernel's, for addresses on its bridges' own ports: put the VTEP address (local_ip) on the underlay bridge's port and a route to {remote} there")
            } else {
                format!("ip route get {remote}; restore the underlay route (the fabric or the uplink)")
            }),
            (_, Some((dev, _, ev))) => Check::ok("tunnel.route", format!("{remote} routes out of {dev}")).evidences(ev),
        };
        out.push(route.subject(t.name.clone()));
        if let (Some(frame), Some((dev, under_mtu, ev))) =
            (vm_mtu, underlay(net, db, remote, routes))
        {
            let oh = overhead(&t.kind, remote.is_ipv6());
            let need = frame + oh;
            let ev: Vec<String> = ev
                .into_iter()
                .chain([format!(
                    "{frame} + {oh} ({} over IPv{}) = {need} on {dev} (MTU {under_mtu})",
                    t.kind,
                    if remote.is_ipv6() { 6 } else { 4 }
                )])
                .collect();
            let c = if need <= under_mtu {
                Check::ok(
                    "tunnel.mtu",
                    format!("frames up to {frame} + {oh} fit {dev} ({under_mtu})"),
                )
                .evidences(ev)
            } else {
                let max = under_mtu.saturating_sub(oh);
                Check::fail(
                    "tunnel.mtu",
                    format!(
                        "the VM's frames of {} to {frame} bytes need {need} on {dev}, whose MTU is {under_mtu}: they are lost in the tunnel",
                        max + 1
                    ),
                )
                .evidences(ev)
                .fix(format!(
                    "raise {dev}'s MTU to {need} (and the fabric's), or make the network MTU at most {max} (Neutron's global_physnet_mtu / path_mtu)"
                ))
            };
            out.push(c.subject(t.name.clone()));
        }
    }
    out
}

/// The tunnel checks of a kernel tunnel device plugged into OVS: up; its remote (or, for
/// head-end replication with FDB entries, its local VTEP address) routes out of an underlay
/// device; the VM's frames plus the encapsulation fit that device.
fn kernel_tunnel_checks(t: &OvsPort, l: &Link, net: &HostNet, vm_mtu: Option<u32>) -> Vec<Check> {
    let kind = match l.kind.as_deref() {
        Some("geneve") => "geneve",
        Some("gretap" | "ip6gretap") => "gre",
        _ => "vxlan",
    };
    let ev = format!(
        "kernel {kind} device {} in OVS {}: {}, remote {}, local {}",
        l.name,
        t.in_bridge.as_deref().unwrap_or("?"),
        updown(l),
        l.remote
            .map(|r| r.to_string())
            .unwrap_or_else(|| "- (FDB entries)".into()),
        l.local.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
    );
    let mut out = vec![if l.is_oper_up() && t.ofport.is_some_and(|o| o > 0) {
        Check::ok("tunnel.port", format!("{} (kernel {kind}) is up", l.name)).evidence(ev)
    } else {
        Check::fail(
            "tunnel.port",
            format!(
                "{} (kernel {kind}) is down or not usable in OVS: the overlay traffic is lost",
                l.name
            ),
        )
        .evidence(ev)
        .fix(format!(
            "ip link set {} up; ovs-vsctl get Interface {} ofport error",
            l.name, l.name
        ))
    }
    .subject(l.name.clone())];
    let under = net.tunnel_underlay(l);
    let Some(under) = under else {
        out.push(
            Check::fail("tunnel.route", format!("{}: no underlay device (no route to its remote, its local address on no device)", l.name))
                .subject(l.name.clone())
                .fix(format!("ip -d link show {}; restore the underlay address and routes", l.name)),
        );
        return out;
    };
    out.push(
        Check::ok(
            "tunnel.route",
            format!("{} leaves by {}", l.name, under.name),
        )
        .subject(l.name.clone())
        .evidence(format!("underlay {} (MTU {})", under.name, under.mtu)),
    );
    let v6 = l.remote.or(l.local).is_some_and(|a| a.is_ipv6());
    let oh = overhead(kind, v6);
    // What enters the device: the VM's frames, and no more than the device itself takes.
    let frame = vm_mtu.map_or(l.mtu, |m| m.min(l.mtu));
    let need = frame + oh;
    let ev = format!(
        "{frame} + {oh} ({kind} over IPv{}) = {need} on {} (MTU {})",
        if v6 { 6 } else { 4 },
        under.name,
        under.mtu
    );
    out.push(if need <= under.mtu {
        Check::ok("tunnel.mtu", format!("frames up to {frame} + {oh} fit {} ({})", under.name, under.mtu)).evidence(ev)
    } else {
        let max = under.mtu.saturating_sub(oh);
        Check::fail("tunnel.mtu", format!("frames of {} to {frame} bytes need up to {need} on {}, whose MTU is {}: they are lost in the tunnel", max + 1, under.name, under.mtu))
            .evidence(ev)
            .fix(format!("raise {}'s MTU to {need}, or make the network MTU at most {max}", under.name))
    }
    .subject(l.name.clone()));
    out
}
