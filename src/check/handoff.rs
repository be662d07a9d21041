//! `path.next` on an Open vSwitch compute node from Neutron's records: the router interface
//! holding the port's gateway, the router's L3 agents and the VTEP each host tunnels from,
//! against where this host sends the router's MAC. Pure.

use std::collections::BTreeMap;

use crate::collect::openstack::neutron::PortRecords;
use crate::model::Check;

/// A router's L3 agents as evidence: `net1 (active), net2 (standby, agent dead)`.
pub fn agents_text(agents: &[crate::collect::openstack::neutron::L3Agent]) -> String {
    if agents.is_empty() {
        return "no L3 agent".into();
    }
    agents
        .iter()
        .map(|a| {
            format!(
                "{} ({}{})",
                a.host,
                a.ha_state.as_deref().unwrap_or("not HA"),
                if a.alive { "" } else { ", agent dead" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `path.next` from Neutron's records: the router interface holding the port's gateway, the
/// router's L3 agents (which is active) and the VTEP each host tunnels from, against where
/// this host's tunnel bridge sends the router's MAC (`behind`: VTEP → MACs of table 20) or
/// floods. `None` when the records do not say enough (the flows alone then decide).
pub fn router_handoff(
    rec: &PortRecords,
    behind: &BTreeMap<String, Vec<String>>,
    flooded: &[String],
    traced: Option<&[String]>,
    mut ev: Vec<String>,
) -> Option<Check> {
    let gws = match rec.gateways.as_ref()? {
        Ok(g) => g,
        Err(e) => {
            ev.push(format!(
                "Neutron: the network's router interfaces not read: {e}"
            ));
            return Some(
                Check::unknown("path.next", "the port's router not known: Neutron did not list the network's router interfaces")
                    .evidences(ev)
                    .fix("see neutron.port; `openstack port list --network NET --device-owner network:ha_router_replicated_interface`"),
            );
        }
    };
    let Some(gw) = rec.gateway() else {
        let subnets = rec
            .subnets
            .as_ref()
            .map(|s| {
                s.iter()
                    .map(|s| {
                        format!(
                            "{} gateway {}",
                            s.cidr,
                            s.gateway_ip
                                .map(|g| g.to_string())
                                .unwrap_or_else(|| "none".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        ev.push(format!("Neutron: subnets {subnets}; no router interface holds a gateway ({} router ports on the network)", gws.len()));
        return Some(
            Check::ok("path.next", "the path ends in the network: no router interface holds its subnets' gateway (an isolated network)")
                .evidences(ev),
        );
    };
    let vtep_host = |ip: &str| -> Option<String> {
        rec.vteps
            .as_ref()?
            .as_ref()
            .ok()?
            .iter()
            .find(|v| v.ip.to_string() == ip)
            .map(|v| v.host.clone())
    };
    let named = |ip: &str| match vtep_host(ip) {
        Some(h) => format!("{ip} ({h})"),
        None => ip.to_string(),
    };
    ev.insert(
        0,
        format!(
            "Neutron: gateway {} is router {}'s interface {} (MAC {}, {})",
            gw.ip, gw.router_id, gw.port_id, gw.mac, gw.device_owner
        ),
    );
    let cmd = format!("vmpath router {}", gw.router_id);
    let agents = match rec.l3_agents.as_ref() {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            ev.push(format!("Neutron: the router's L3 agents not read: {e}"));
            return Some(
                Check::unknown("path.next", format!("next: router {} — its hosts not known (Neutron did not list its L3 agents); run `{cmd}` on the gateway nodes", gw.router_id))
                    .evidences(ev)
                    .fix(format!("openstack network agent list --router {} --long", gw.router_id)),
            );
        }
        None => return None,
    };
    if let Some(Err(e)) = &rec.vteps {
        ev.push(format!(
            "Neutron: the OVS agents' tunnel addresses not read: {e}"
        ));
    }
    ev.push(format!(
        "Neutron: router {} on {}",
        gw.router_id,
        agents_text(agents)
    ));
    let active: Vec<&str> = agents
        .iter()
        .filter(|a| a.ha_state.as_deref().is_none_or(|s| s == "active"))
        .map(|a| a.host.as_str())
        .collect();
    let others: Vec<&str> = agents
        .iter()
        .map(|a| a.host.as_str())
        .filter(|h| !active.contains(h))
        .collect();
    let fix_router = format!(
        "on the gateway nodes ({}): `{cmd}`",
        agents
            .iter()
            .map(|a| a.host.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let primary = match active.as_slice() {
        [] => {
            return Some(
                Check::fail("path.next", format!("router {} has no active L3 agent: nothing routes the VM's traffic off its network", gw.router_id))
                    .evidences(ev)
                    .fix(fix_router),
            )
        }
        [one] => *one,
        many => {
            return Some(
                Check::fail("path.next", format!("router {} is active on {} hosts at once ({}): the gateway's MAC and addresses answer from two places, so some flows break", gw.router_id, many.len(), many.join(", ")))
                    .evidences(ev)
                    .fix(fix_router),
            )
        }
    };
    let primary_vtep: Option<String> =
        rec.vteps
            .as_ref()
            .and_then(|v| v.as_ref().ok())
            .and_then(|v| {
                v.iter()
                    .find(|v| v.host == primary)
                    .map(|v| v.ip.to_string())
            });
    let standby = if others.is_empty() {
        String::new()
    } else {
        format!(" (standby: {})", others.join(", "))
    };
    // Where this host sends the router's MAC: the traced packet's tunnels (one: a unicast
    // entry; several: flooding), else the tunnel bridge's table 20 for the MAC.
    let table20: Vec<&String> = behind
        .iter()
        .filter(|(_, macs)| macs.iter().any(|m| m.eq_ignore_ascii_case(&gw.mac)))
        .map(|(v, _)| v)
        .collect();
    let (sent_to, flooded): (Vec<&String>, Vec<String>) = match traced {
        Some([one]) => (vec![one], flooded.to_vec()),
        Some(many) if !many.is_empty() => {
            ev.push(format!(
                "the traced packet to the gateway's MAC is flooded to {}",
                many.join(", ")
            ));
            (Vec::new(), many.to_vec())
        }
        _ => (table20, flooded.to_vec()),
    };
    match (sent_to.as_slice(), &primary_vtep) {
        ([to], Some(pv)) if *to != pv => Some(
            Check::fail(
                "path.next",
                format!("the tunnel bridge sends the router's MAC {} to VTEP {}, but router {} is active on {primary} (VTEP {pv}): the VM's off-subnet traffic goes to a host that does not route it", gw.mac, named(to), gw.router_id),
            )
            .evidences(ev)
            .fix(format!("restart the OVS agent on this host (l2population sends the HA router port's location again); check neutron-server's log for l2pop; then `{cmd}` on {primary}")),
        ),
        ([to], _) => Some(
            Check::ok(
                "path.next",
                format!("next: router {}'s primary {primary}, VTEP {} (the tunnel bridge sends the gateway's MAC {} there) — run `{cmd}` on {primary}{standby}", gw.router_id, named(to), gw.mac),
            )
            .evidences(ev),
        ),
        ([], Some(pv)) if !flooded.iter().any(|f| f == pv) => Some(
            Check::fail(
                "path.next",
                format!("router {} is active on {primary} (VTEP {pv}), but this host neither sends the gateway's MAC {} there nor floods the network to it: the VM cannot reach its router", gw.router_id, gw.mac),
            )
            .evidences(ev)
            .fix(format!("restart the OVS agent on this host (it rebuilds the tunnels and flooding flows of the network); `ovs-vsctl show` for a tunnel to {pv}")),
        ),
        ([], pv) => Some(
            Check::ok(
                "path.next",
                format!("next: router {}'s primary {primary}{} — the gateway's MAC {} is reached by flooding the network — run `{cmd}` on {primary}{standby}", gw.router_id, pv.as_ref().map(|p| format!(", VTEP {p}")).unwrap_or_default(), gw.mac),
            )
            .evidences(ev),
        ),
        (many, _) => Some(
            Check::fail(
                "path.next",
                format!("the tunnel bridge sends the router's MAC {} to {} VTEPs ({})", gw.mac, many.len(), many.iter().map(|v| named(v)).collect::<Vec<_>>().join(", ")),
            )
            .evidences(ev)
            .fix("restart the OVS agent on this host to reinstall its unicast flows"),
        ),
    }
}
