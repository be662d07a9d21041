//! A gateway node's checks, pure: from the gathered [`Facts`] to the report — each router's
//! checks (keepalived, state file, addresses, conntrack, MTU chain, wire, BGP, the peer) and the
//! node's own (VXLAN MTU, BGP sessions, OVS ports).

use crate::check::{self, router};
use crate::model::{self, Check, Status};

use super::gather::Facts;
use super::{DhcpNamespace, RouterReport, RoutersReport};

/// The report of the node, `elapsed_ms` left at 0 for the caller.
pub fn report(f: &Facts) -> RoutersReport {
    let ct_max = f.conntrack_max;
    // The node itself: its VXLAN devices (the overlay MTU).
    let overlay: Option<(String, u32)> = f.node.net.as_ref().ok().and_then(|h| {
        h.links
            .iter()
            .filter(|l| l.kind.as_deref() == Some("vxlan"))
            .min_by_key(|l| l.mtu)
            .map(|l| (l.name.clone(), l.mtu))
    });
    let mut routers = Vec::new();
    for r in &f.routers {
        let rf = r.view(ct_max);
        let mut checks = router::checks(&rf);
        if let Ok(net) = &r.ns.net {
            checks.extend(router::mtu_check(net, &r.ns.name, overlay.clone()));
            if let Ok(h) = &f.node.net {
                checks.extend(router::peer_mtu_check(net, h, &r.ns.name));
            }
        }
        checks.extend(router::wire_checks(&rf, &r.wire));
        let names: Vec<String> = router::tenant_prefixes(&r.instances, &r.ns.net)
            .iter()
            .map(|(a, l)| format!("{a}/{l}"))
            .collect();
        if let Some(sp) = &f.bgp {
            checks.extend(check::bgp::router_rows(sp, &names));
        }
        let views = router::views(&rf);
        if let Some(peer) = &f.peer {
            checks.push(router::peer_check(&r.id, &views, peer));
        }
        let conntrack_percent = match (r.ns.conntrack.count, ct_max) {
            (Some(c), Some(m)) if m > 0 => Some((c as f64 * 1000.0 / m as f64).round() / 10.0),
            _ => None,
        };
        routers.push(RouterReport {
            router_id: r.id.clone(),
            namespace: r.ns.name.clone(),
            verdict: model::verdict(&checks),
            views,
            conntrack_percent,
            tenant_prefixes: names,
            checks,
        });
    }
    let dhcp = f
        .dhcp
        .iter()
        .map(|d| DhcpNamespace {
            network_id: d.name.trim_start_matches("qdhcp-").to_string(),
            namespace: d.name.clone(),
            interfaces: d
                .net
                .as_ref()
                .map(|n| {
                    n.links
                        .iter()
                        .filter(|l| l.name != "lo")
                        .map(|l| format!("{} {}", l.name, l.oper))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let mut host_checks: Vec<Check> = f
        .node
        .net
        .as_ref()
        .map(router::vxlan_checks)
        .unwrap_or_default();
    if let Some(sp) = &f.bgp {
        host_checks.extend(check::bgp::node_rows(sp));
    }
    host_checks.extend(f.ovsdb.iter().map(|(s, p)| router::ovs_check(s, p)));
    let verdict = routers
        .iter()
        .map(|r| r.verdict)
        .chain(host_checks.iter().map(|c| c.status))
        .max()
        .unwrap_or(Status::Ok);
    RoutersReport {
        host: f.host.clone(),
        verdict,
        ha_confs: f.ha_confs.as_ref().map(|p| p.display().to_string()),
        conntrack_max: ct_max,
        routers,
        dhcp,
        host_checks,
        elapsed_ms: 0.0,
    }
}
