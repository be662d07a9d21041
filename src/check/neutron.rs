//! What Neutron's records say of a port against what this host does with it: the port exists,
//! is bound to this host with a working binding, is up, and has the MAC the host plugged
//! (`neutron.port`). Pure; the records come from `collect::openstack`.

use crate::collect::openstack::neutron::PortRecords;
use crate::collect::openstack::NeutronFacts;
use crate::model::Check;

/// Is `bound` (Neutron's `binding:host_id`) this host (`here`)? The same name, or the same first
/// label when one of them is not qualified (`hv1` and `hv1.example.net`).
pub fn same_host(bound: &str, here: &str) -> bool {
    let (b, h) = (bound.to_ascii_lowercase(), here.to_ascii_lowercase());
    if b == h {
        return true;
    }
    let short = |s: &str| s.split('.').next().unwrap_or_default().to_string();
    (!b.contains('.') || !h.contains('.')) && short(&b) == short(&h)
}

/// The port of a lookup, or the check that says why there is none.
pub fn the_port<'a>(
    n: &'a NeutronFacts,
    port_id: &str,
    tap: &str,
) -> Result<&'a PortRecords, Box<Check>> {
    match &n.ports {
        Err(e) => Err(Box::new(Check::unknown(
            "neutron.port",
            format!("Neutron (cloud '{}') not read: {e}; the walk used the host's records", n.cloud),
        )
        .fix(format!(
            "check the API and the credentials (`openstack --os-cloud {} port show {port_id}`), then run the walk again",
            n.cloud
        )))),
        Ok(v) => v.first().ok_or_else(|| {
            Box::new(Check::fail(
                "neutron.port",
                format!("Neutron has no port {port_id}: this host still has a tap for a port that was deleted (or belongs to another cloud)"),
            )
            .evidence(format!("GET {}/v2.0/ports/{port_id}: 404 Not Found", n.endpoint))
            .fix(format!(
                "if the VM is gone, remove the stale tap (`ovs-vsctl del-port {tap}`); if it runs, give it a port again through Nova (openstack server add port)"
            )))
        }),
    }
}

/// `neutron.port`: Neutron's port against this host.
///
/// * fail: Neutron has no such port; it binds it to another host; its binding failed or it is
///   unbound; it is administratively down; its MAC is not the one the host plugged;
/// * warn: its status is not ACTIVE while the host forwards (the agent has not reported it
///   wired), or the plug differs from the binding's (`ovs_hybrid_plug`);
/// * unknown: Neutron did not answer, or the credentials may not see the binding.
pub fn port_check(
    n: &NeutronFacts,
    port_id: &str,
    tap: &str,
    here: &str,
    host_mac: Option<&str>,
    hybrid_here: bool,
) -> Check {
    let rec = match the_port(n, port_id, tap) {
        Ok(r) => r,
        Err(c) => return *c,
    };
    let p = &rec.port;
    let mut ev = vec![format!(
        "Neutron port {} ({}): status {}, admin_state_up {}, binding:host_id {}, binding:vif_type {}, MAC {}",
        p.id,
        if p.name.is_empty() { "-" } else { &p.name },
        p.status,
        p.admin_state_up,
        p.binding_host.as_deref().unwrap_or("(not visible)"),
        p.vif_type.as_deref().unwrap_or("(not visible)"),
        p.mac_address
    )];
    if !p.fixed_ips.is_empty() {
        ev.push(format!(
            "fixed IPs: {}",
            p.fixed_ips
                .iter()
                .map(|f| f.ip_address.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Ok(net) = &rec.network {
        ev.push(format!(
            "network {} ({}): MTU {}, {} segment {}",
            net.id,
            if net.name.is_empty() { "-" } else { &net.name },
            net.mtu.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            net.network_type.as_deref().unwrap_or("?"),
            net.segmentation_id
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into())
        ));
    }
    let show = format!("openstack port show {}", p.id);
    let Some(bound) = p.binding_host.as_deref() else {
        return Check::unknown(
            "neutron.port",
            format!("the credentials of cloud '{}' may not see the port's binding (binding:host_id is admin-only)", n.cloud),
        )
        .evidences(ev)
        .fix("give vmpath a cloud with an admin or service role (clouds.yaml), then run the walk again");
    };
    let vif_type = p.vif_type.as_deref().unwrap_or_default();
    if bound.is_empty() || vif_type == "unbound" {
        return Check::fail(
            "neutron.port",
            "Neutron has the port unbound: no host is to wire it, and this host's agent leaves it dead",
        )
        .evidences(ev)
        .fix(format!("bind it to this host as Nova would: `openstack port set --host {here} {}` (or restart the VM's plug: openstack server reboot --hard DEVICE)", p.id));
    }
    if vif_type == "binding_failed" {
        let elsewhere = if same_host(bound, here) {
            String::new()
        } else {
            format!(" (and it is bound to {bound}, not to this host {here})")
        };
        return Check::fail(
            "neutron.port",
            format!("the port's binding on {bound} failed (binding:vif_type binding_failed){elsewhere}: no mechanism driver could wire it, so no agent forwards its traffic"),
        )
        .evidences(ev)
        .fix(format!("check that {bound} runs a live agent that maps the network (`openstack network agent list --host {bound}`; bridge_mappings / tunnel_types), then rebind: `openstack port set --host {bound} {}`", p.id));
    }
    if !same_host(bound, here) {
        return Check::fail(
            "neutron.port",
            format!("Neutron binds the port to host {bound}, not to this host ({here}): the network delivers its traffic there, and this host's tap is stale"),
        )
        .evidences(ev)
        .fix(format!(
            "find where the VM runs (`openstack server show {}`): if it runs here, rebind the port here (`openstack port set --host {here} {}`); if it runs on {bound}, remove this host's leftover tap",
            if p.device_id.is_empty() { "DEVICE" } else { &p.device_id },
            p.id
        ));
    }
    if !p.admin_state_up {
        return Check::fail(
            "neutron.port",
            "the port is administratively down in Neutron (admin_state_up false): its agent drops its traffic",
        )
        .evidences(ev)
        .fix(format!("`openstack port set --enable {}` if it should carry traffic", p.id));
    }
    if let Some(m) = host_mac {
        if !p.mac_address.is_empty() && !p.mac_address.eq_ignore_ascii_case(m) {
            return Check::fail(
                "neutron.port",
                format!("the host plugged MAC {m} for the port, Neutron's is {}: the firewall and the flows admit only Neutron's", p.mac_address),
            )
            .evidences(ev)
            .fix(format!("replug the VM's interface (openstack server reboot --hard {}): os-vif writes Neutron's MAC", if p.device_id.is_empty() { "DEVICE" } else { &p.device_id }));
        }
    }
    let hybrid_neutron = p
        .vif_details
        .get("ovs_hybrid_plug")
        .and_then(serde_json::Value::as_bool);
    if let Some(h) = hybrid_neutron.filter(|h| *h != hybrid_here) {
        return Check::warn(
            "neutron.port",
            format!(
                "the binding asks for a {} plug but the port is plugged {} here: the security group may be enforced elsewhere than the binding says",
                if h { "hybrid (qbr)" } else { "native" },
                if hybrid_here { "hybrid" } else { "natively" }
            ),
        )
        .evidences(ev)
        .fix("replug the VM (a hard reboot or a migration) so that os-vif plugs it as the binding says");
    }
    if p.status != "ACTIVE" {
        return Check::warn(
            "neutron.port",
            format!("Neutron shows the port {} although it is bound here: the agent has not reported it wired (the walk's other checks say whether it forwards)", p.status),
        )
        .evidences(ev)
        .fix(format!("check this host's OVS agent log for {}; restarting the agent makes it report the port again", p.id));
    }
    Check::ok(
        "neutron.port",
        format!("Neutron binds the port to this host ({bound}), {vif_type}, ACTIVE"),
    )
    .evidences(ev)
    .evidence(format!("{show} (cloud '{}')", n.cloud))
}

/// The source address of a probe inside a rule's remote prefix: the prefix's address for a
/// host prefix, else one past it, and a documentation address for "anywhere".
fn probe_source(prefix: Option<&str>) -> Option<std::net::IpAddr> {
    let any: std::net::IpAddr = "203.0.113.50".parse().ok()?;
    let Some(p) = prefix else { return Some(any) };
    let (a, len) = p.split_once('/').unwrap_or((p, "32"));
    let a: std::net::Ipv4Addr = a.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if len == 0 {
        return Some(any);
    }
    if len >= 31 {
        return Some(a.into());
    }
    Some(std::net::Ipv4Addr::from(u32::from(a).checked_add(1)?).into())
}

/// A rule as an operator reads it: `ingress tcp/22 from 0.0.0.0/0`.
pub fn rule_text(r: &crate::collect::openstack::neutron::SgRule) -> String {
    let proto = r.protocol.as_deref().unwrap_or("any");
    let ports = match (r.port_range_min, r.port_range_max) {
        (Some(a), Some(b)) if a != b && proto != "icmp" => format!("/{a}-{b}"),
        (Some(a), _) if proto != "icmp" => format!("/{a}"),
        _ => String::new(),
    };
    let from = match (
        &r.remote_ip_prefix,
        &r.remote_group_id,
        &r.remote_address_group_id,
    ) {
        (Some(p), _, _) => p.clone(),
        (None, Some(g), _) => format!("group {g}"),
        (None, None, Some(g)) => format!("address group {g}"),
        _ => "anywhere".into(),
    };
    format!(
        "{} {} {proto}{ports} {} {from}",
        r.direction,
        r.ethertype,
        if r.direction == "ingress" {
            "from"
        } else {
            "to"
        }
    )
}

/// The connections to trace into the VM for `sg.neutron`: one per IPv4 ingress rule that names
/// a prefix (or anywhere) and tcp, udp, icmp or any protocol (at most 16), and one to a TCP port
/// no ingress rule allows. Rules from remote groups are not traced (their members are other
/// ports).
pub fn sg_probes(rec: &PortRecords) -> Vec<crate::check::ovsflow::SgProbe> {
    use crate::check::ovsflow::SgProbe;
    if rec.port.port_security_enabled == Some(false) {
        return Vec::new();
    }
    let Some(Ok(rules)) = &rec.sg_rules else {
        return Vec::new();
    };
    let ingress: Vec<_> = rules
        .iter()
        .filter(|r| r.direction == "ingress" && r.ethertype != "IPv6")
        .collect();
    let mut out = Vec::new();
    for r in ingress
        .iter()
        .filter(|r| r.remote_group_id.is_none() && r.remote_address_group_id.is_none())
        .take(16)
    {
        let proto = r.protocol.as_deref().unwrap_or("tcp").to_ascii_lowercase();
        let proto = match proto.as_str() {
            "6" => "tcp".to_string(),
            "17" => "udp".to_string(),
            "1" => "icmp".to_string(),
            p => p.to_string(),
        };
        if !["tcp", "udp", "icmp"].contains(&proto.as_str()) {
            continue;
        }
        let Some(src) = probe_source(r.remote_ip_prefix.as_deref()) else {
            continue;
        };
        let port = (proto != "icmp").then(|| {
            r.port_range_min
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(5000)
        });
        out.push(SgProbe {
            name: r.id.clone(),
            protocol: proto,
            port,
            src,
        });
    }
    // A TCP port no ingress rule opens (from anywhere: remote groups' members are ports).
    let opens = |port: u32| {
        ingress.iter().any(|r| {
            let p = r.protocol.as_deref().unwrap_or("any");
            (p == "any" || p == "tcp" || p == "6")
                && r.remote_group_id.is_none()
                && r.remote_address_group_id.is_none()
                && match (r.port_range_min, r.port_range_max) {
                    (None, _) => true,
                    (Some(a), b) => a <= port && port <= b.unwrap_or(a),
                }
        })
    };
    if let Some(port) = [4444u16, 2323, 6001, 7777, 31337]
        .into_iter()
        .find(|p| !opens(u32::from(*p)))
    {
        if let Some(src) = probe_source(None) {
            out.push(SgProbe {
                name: "unlisted".into(),
                protocol: "tcp".into(),
                port: Some(port),
                src,
            });
        }
    }
    out
}

/// `sg.neutron`: the port's security groups as Neutron has them, against what this host's OVS
/// firewall does — each traced ingress rule lets its connection in (fail: a rule Neutron has is
/// not enforced, so connections it allows are dropped), and a connection no rule allows is
/// dropped (warn: the host lets in more than the groups allow).
pub fn sg_check(
    rec: &PortRecords,
    vif: &crate::port::vif::Vif,
    sw: &crate::check::ovsflow::Switch,
) -> Check {
    use crate::collect::ovsctl::trace::Outcome;
    let id = "sg.neutron";
    if rec.port.port_security_enabled == Some(false) {
        return Check::ok(
            id,
            "not used here: port security is off for the port in Neutron",
        );
    }
    let rules = match &rec.sg_rules {
        None => {
            return Check::ok(
                id,
                "not used here: the port has no security group in Neutron",
            )
        }
        Some(Err(e)) => {
            return Check::unknown(id, format!("Neutron did not list the groups' rules: {e}")).fix(
                format!(
                    "openstack security group rule list {}",
                    rec.port.security_groups.join(" ")
                ),
            )
        }
        Some(Ok(r)) => r,
    };
    let probes = sg_probes(rec);
    let mut ev: Vec<String> = Vec::new();
    let (mut missing, mut extra, mut unclear, mut fine) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for p in &probes {
        let what = match rules.iter().find(|r| r.id == p.name) {
            Some(r) => format!("rule {} ({})", r.id, rule_text(r)),
            None => format!(
                "{}/{} from {}, which no rule allows",
                p.protocol,
                p.port.unwrap_or(0),
                p.src
            ),
        };
        let name = format!("sg:{}", p.name);
        let Some((ask, answer)) = sw.traces.iter().find(|(a, _)| a.name == name) else {
            unclear.push(what.clone());
            ev.push(format!("{what}: not traced"));
            continue;
        };
        let verdict = match answer {
            Ok(t) => t.verdict(),
            Err(e) => {
                unclear.push(what.clone());
                ev.push(format!("{what}: the trace was not answered: {e}"));
                continue;
            }
        };
        let reached = matches!(&verdict, Outcome::Port { ports } if ports.iter().any(|x| x == &vif.ovs_iface));
        let dropped = matches!(verdict, Outcome::Dropped { .. });
        let line = format!(
            "{what}: traced from {} → {}  ({})",
            p.src,
            if reached {
                "reaches the VM"
            } else if dropped {
                "dropped"
            } else {
                "goes elsewhere"
            },
            ask.command()
        );
        ev.push(line);
        match (p.name == "unlisted", reached, dropped) {
            (false, true, _) | (true, false, true) => fine += 1,
            (false, false, true) => missing.push(what),
            (true, true, _) => extra.push(what),
            _ => unclear.push(what),
        }
    }
    let skipped = rules
        .iter()
        .filter(|r| r.direction == "ingress" && !probes.iter().any(|p| p.name == r.id))
        .count();
    if skipped > 0 {
        ev.push(format!(
            "{skipped} ingress rule(s) not traced (remote groups, IPv6 or other protocols)"
        ));
    }
    let groups = rec.port.security_groups.join(", ");
    if !missing.is_empty() {
        return Check::fail(
            id,
            format!("Neutron's {} not enforced on this host: connections the security groups allow are dropped", missing.join("; ")),
        )
        .evidences(ev)
        .fix(format!("restart the OVS agent on this host (it rebuilds the port's firewall flows from the groups {groups}); `ovs-ofctl dump-flows {} table=82`", vif.bridge));
    }
    if !extra.is_empty() {
        return Check::warn(
            id,
            format!("this host lets in {}: the port's firewall is more open than its security groups", extra.join("; ")),
        )
        .evidences(ev)
        .fix(format!("compare `ovs-ofctl dump-flows {} table=82` with the groups' rules (openstack security group rule list {groups}); restart the OVS agent to rebuild them", vif.bridge));
    }
    if !unclear.is_empty() {
        return Check::unknown(id, format!("not judged: {}", unclear.join("; ")))
            .evidences(ev)
            .fix("see flow.ingress; run the walk again");
    }
    Check::ok(
        id,
        format!(
            "the OVS firewall enforces the security groups as Neutron has them ({fine} traced connection(s) as the rules say)"
        ),
    )
    .evidences(ev)
}

/// `router.neutron`: Neutron's L3 agents of a router against this gateway node's views of it
/// (keepalived, the state file, the addresses).
///
/// * fail: this node holds the router's addresses (primary) but Neutron does not schedule the
///   router here (a stale router answering for the gateway);
/// * warn: Neutron's `ha_state` for this node is not what the node does (Neutron steers the
///   compute nodes' traffic for the router's MAC by it with l2population, and shows it to
///   operators); Neutron sees this node's agent as dead; it schedules the router here but has
///   no `ha_state` while the node runs it HA; not scheduled here while the node is backup
///   (a stale namespace);
/// * unknown: Neutron not reached.
pub fn router_check(
    n: &crate::collect::openstack::RouterAgents,
    router: &str,
    here: &str,
    views: &crate::check::router::Views,
) -> Check {
    let id = "router.neutron";
    let agents = match &n.agents {
        Err(e) => {
            return Check::unknown(id, format!("Neutron (cloud '{}') not read: {e}", n.cloud))
                .fix(format!("check the API and the credentials (`openstack --os-cloud {} network agent list --router {router} --long`)", n.cloud))
        }
        Ok(m) => match m.get(router) {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                return Check::unknown(id, format!("Neutron did not list the router's L3 agents: {e}"))
                    .fix(format!("openstack network agent list --router {router} --long"))
            }
            None => {
                return Check::unknown(id, "not asked: too many routers on this node (use `vmpath router ID`)")
                    .fix(format!("vmpath router {router}"))
            }
        },
    };
    let ev = vec![
        format!(
            "Neutron: router {router} on {}",
            crate::check::handoff::agents_text(agents)
        ),
        format!(
            "this node ({here}): keepalived {}, state file {}, addresses {}",
            views.keepalived, views.state_file, views.addresses
        ),
    ];
    let node_primary = views.addresses == "primary";
    let Some(mine) = agents.iter().find(|a| same_host(&a.host, here)) else {
        let c = if node_primary {
            Check::fail(id, format!("this node holds router {router}'s addresses, but Neutron does not schedule the router here: a stale router answers for the gateway"))
        } else {
            Check::warn(id, format!("Neutron does not schedule router {router} on this node ({here}): its namespace here is a leftover"))
        };
        return c.evidences(ev).fix(format!("if the router moved, remove the leftover (`neutron-l3-agent` cleans it on restart, or `ip netns delete qrouter-{router}` after stopping its keepalived); `openstack network agent list --router {router} --long`"));
    };
    if !mine.alive {
        return Check::warn(id, "Neutron sees this node's L3 agent as dead: it will not move the router here, nor report its state")
            .evidences(ev)
            .fix("check neutron-l3-agent on this node (systemctl status neutron-l3-agent; its log; the message bus)");
    }
    let want = match mine.ha_state.as_deref() {
        None => {
            return Check::ok(
                id,
                format!("Neutron schedules router {router} on this node (not HA)"),
            )
            .evidences(ev)
        }
        Some("active") => "primary",
        Some("standby") => "backup",
        Some(other) => {
            return Check::warn(id, format!("Neutron's ha_state for this node is {other}: the agent has not reported the router's state"))
                .evidences(ev)
                .fix("check neutron-l3-agent's log (the keepalived state-change reports)");
        }
    };
    let actives = agents
        .iter()
        .filter(|a| a.ha_state.as_deref() == Some("active"))
        .count();
    if (want == "primary") != node_primary {
        return Check::warn(
            id,
            format!("Neutron says this node is {} for router {router}, but it is {} here: with l2population the compute nodes send the router's traffic by Neutron's view", if want == "primary" { "active" } else { "standby" }, views.addresses),
        )
        .evidences(ev)
        .fix("restart neutron-l3-agent on this node: it reports the routers' states again");
    }
    if actives != 1 {
        return Check::warn(id, format!("Neutron has {actives} active L3 agents for router {router}"))
            .evidences(ev)
            .fix(format!("vmpath router {router} on each of its gateway nodes; restart the L3 agents that report a wrong state"));
    }
    Check::ok(
        id,
        format!(
            "Neutron agrees: this node is {} for router {router}",
            if want == "primary" {
                "active (primary)"
            } else {
                "standby (backup)"
            }
        ),
    )
    .evidences(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::openstack::neutron::{parse_one, Port, PortRecords};
    use crate::error::Error;
    use crate::model::Status;

    fn facts(port: serde_json::Value) -> NeutronFacts {
        let p: Port = parse_one(&serde_json::json!({ "port": port }), "port").unwrap();
        NeutronFacts {
            cloud: "lab".into(),
            endpoint: "http://192.0.2.1:9696".into(),
            token: None,
            keystone_calls: 0,
            api_calls: 3,
            ports: Ok(vec![PortRecords {
                port: p,
                network: Err(Error::unknown("not asked")),
                subnets: Ok(vec![]),
                gateways: None,
                l3_agents: None,
                vteps: None,
                sg_rules: None,
            }]),
            cache_note: None,
            elapsed_ms: 1,
        }
    }

    fn port(host: &str, vif: &str) -> serde_json::Value {
        serde_json::json!({"id": "p1", "mac_address": "fa:16:3e:00:00:01", "status": "ACTIVE",
            "admin_state_up": true, "binding:host_id": host, "binding:vif_type": vif,
            "binding:vif_details": {"ovs_hybrid_plug": false}})
    }

    fn status(n: &NeutronFacts) -> (Status, String) {
        let c = port_check(n, "p1", "tapp1", "hv1", Some("fa:16:3e:00:00:01"), false);
        (c.status, c.summary)
    }

    #[test]
    fn routers_agents_against_the_node() {
        use crate::check::router::Views;
        use crate::collect::openstack::neutron::L3Agent;
        let agents = |a: &[(&str, &str)]| crate::collect::openstack::RouterAgents {
            cloud: "lab".into(),
            endpoint: String::new(),
            token: None,
            keystone_calls: 0,
            api_calls: 1,
            agents: Ok([(
                "r1".to_string(),
                Ok(a.iter()
                    .map(|(h, s)| L3Agent {
                        host: h.to_string(),
                        alive: true,
                        admin_state_up: true,
                        ha_state: (!s.is_empty()).then(|| s.to_string()),
                    })
                    .collect()),
            )]
            .into_iter()
            .collect()),
            elapsed_ms: 1,
        };
        let views = |a: &str| Views {
            keepalived: if a == "primary" { "MASTER" } else { "BACKUP" }.into(),
            state_file: a.into(),
            addresses: a.into(),
        };
        let st = |n, v: &str| router_check(&n, "r1", "net1", &views(v)).status;
        let ha = [("net1", "active"), ("net2", "standby")];
        assert_eq!(st(agents(&ha), "primary"), Status::Ok);
        assert_eq!(st(agents(&ha), "backup"), Status::Warn);
        assert_eq!(
            st(agents(&[("net1", "standby"), ("net2", "active")]), "backup"),
            Status::Ok
        );
        assert_eq!(
            st(agents(&[("net1", "active"), ("net2", "active")]), "primary"),
            Status::Warn
        );
        assert_eq!(st(agents(&[("net2", "active")]), "primary"), Status::Fail);
        assert_eq!(st(agents(&[("net2", "active")]), "backup"), Status::Warn);
        assert_eq!(st(agents(&[("net1", "")]), "primary"), Status::Ok);
        let mut down = agents(&ha);
        down.agents = Err(Error::unknown("connection refused"));
        assert_eq!(st(down, "primary"), Status::Unknown);
    }

    #[test]
    fn probes_follow_the_ingress_rules() {
        use crate::collect::openstack::neutron::SgRule;
        let rule = |id: &str,
                    proto: Option<&str>,
                    port: Option<u32>,
                    prefix: Option<&str>,
                    group: Option<&str>| SgRule {
            id: id.into(),
            security_group_id: "g".into(),
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: proto.map(String::from),
            port_range_min: port,
            port_range_max: port,
            remote_ip_prefix: prefix.map(String::from),
            remote_group_id: group.map(String::from),
            remote_address_group_id: None,
        };
        let mut n = facts(port("hv1", "ovs"));
        let rec = &mut n.ports.as_mut().unwrap()[0];
        rec.sg_rules = Some(Ok(vec![
            rule("ssh", Some("tcp"), Some(22), Some("198.51.100.0/24"), None),
            rule("ping", Some("icmp"), None, None, None),
            rule("peers", None, None, None, Some("g")),
            rule("web", Some("tcp"), Some(4444), Some("192.0.2.7/32"), None),
        ]));
        let p = sg_probes(rec);
        let got: Vec<(String, String, Option<u16>, String)> = p
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.protocol.clone(),
                    p.port,
                    p.src.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ssh".into(), "tcp".into(), Some(22), "198.51.100.1".into()),
                ("ping".into(), "icmp".into(), None, "203.0.113.50".into()),
                ("web".into(), "tcp".into(), Some(4444), "192.0.2.7".into()),
                // 4444 is opened by "web": the next free port.
                (
                    "unlisted".into(),
                    "tcp".into(),
                    Some(2323),
                    "203.0.113.50".into()
                ),
            ]
        );
        assert_eq!(
            rule_text(&rule(
                "ssh",
                Some("tcp"),
                Some(22),
                Some("198.51.100.0/24"),
                None
            )),
            "ingress IPv4 tcp/22 from 198.51.100.0/24"
        );
        // An "allow all tcp" rule leaves no unlisted port; port security off: no probe at all.
        rec.sg_rules = Some(Ok(vec![rule("all", Some("tcp"), None, None, None)]));
        assert!(sg_probes(rec).iter().all(|p| p.name != "unlisted"));
        rec.port.port_security_enabled = Some(false);
        assert!(sg_probes(rec).is_empty());
    }

    #[test]
    fn bound_here_is_ok_and_elsewhere_fails() {
        assert_eq!(status(&facts(port("hv1", "ovs"))).0, Status::Ok);
        assert_eq!(status(&facts(port("hv1.example.net", "ovs"))).0, Status::Ok);
        let (s, m) = status(&facts(port("hv2", "ovs")));
        assert_eq!(s, Status::Fail);
        assert!(m.contains("host hv2"), "{m}");
        assert_eq!(
            status(&facts(port("hv1", "binding_failed"))).0,
            Status::Fail
        );
        assert_eq!(status(&facts(port("", "unbound"))).0, Status::Fail);
        assert!(!same_host("hv1.a.net", "hv1.b.net"));
    }

    #[test]
    fn down_mac_plug_visibility_and_absence() {
        let mut p = port("hv1", "ovs");
        p["status"] = "DOWN".into();
        assert_eq!(status(&facts(p)).0, Status::Warn);
        let mut p = port("hv1", "ovs");
        p["admin_state_up"] = false.into();
        assert_eq!(status(&facts(p)).0, Status::Fail);
        let mut p = port("hv1", "ovs");
        p["mac_address"] = "fa:16:3e:99:99:99".into();
        assert_eq!(status(&facts(p)).0, Status::Fail);
        let mut p = port("hv1", "ovs");
        p["binding:vif_details"]["ovs_hybrid_plug"] = true.into();
        assert_eq!(status(&facts(p)).0, Status::Warn);
        let p = serde_json::json!({"id": "p1", "status": "ACTIVE"});
        assert_eq!(status(&facts(p)).0, Status::Unknown);
        let mut n = facts(port("hv1", "ovs"));
        n.ports = Ok(vec![]);
        assert_eq!(status(&n).0, Status::Fail);
        n.ports = Err(Error::unknown("connection refused"));
        let (s, m) = status(&n);
        assert_eq!(s, Status::Unknown);
        assert!(
            m.contains("connection refused") && m.contains("host's records"),
            "{m}"
        );
    }
}
