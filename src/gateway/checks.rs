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
            .filter(|l| l.kind.as_deref() == Some("vxlan") && !router::ovs_owned(&l.name))
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
        if let Some(n) = &f.neutron {
            checks.push(check::neutron::router_check(
                n,
                &r.id,
                &f.neutron_host,
                &views,
            ));
        }
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
    let ovs_ports: Vec<crate::collect::ovsdb::OvsPort> = f
        .ovsdb
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let mut host_checks: Vec<Check> = f
        .node
        .net
        .as_ref()
        .map(|n| router::vxlan_checks(n, &ovs_ports))
        .unwrap_or_default();
    if let Some(sp) = &f.bgp {
        host_checks.extend(check::bgp::node_rows(sp, f.expect_bgp));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A capture of `lab/capture-facts`: the facts `routers`/`router ID` gathered on the lab's
    /// gateway gwA and the report it printed.
    fn capture(name: &str) -> (Facts, serde_json::Value) {
        let (facts, report) = crate::testing::capture(name);
        (
            serde_json::from_value(facts).expect("facts deserialize"),
            report,
        )
    }

    /// (router or "node", id, subject, status) of every check.
    fn rows(r: &RoutersReport) -> Vec<(String, String, Option<String>, Status)> {
        let mut v: Vec<_> = r
            .routers
            .iter()
            .flat_map(|x| {
                x.checks.iter().map(|c| {
                    (
                        x.router_id.clone(),
                        c.id.to_string(),
                        c.subject.clone(),
                        c.status,
                    )
                })
            })
            .collect();
        v.extend(r.host_checks.iter().map(|c| {
            (
                "node".to_string(),
                c.id.to_string(),
                c.subject.clone(),
                c.status,
            )
        }));
        v
    }

    fn live_rows(j: &serde_json::Value) -> Vec<(String, String, Option<String>, Status)> {
        let row = |who: String, c: &serde_json::Value| {
            (
                who,
                c["id"].as_str().unwrap_or("").to_string(),
                c["subject"].as_str().map(str::to_string),
                serde_json::from_value(c["status"].clone()).expect("status"),
            )
        };
        let mut v: Vec<_> = j["routers"]
            .as_array()
            .expect("routers")
            .iter()
            .flat_map(|x| {
                let id = x["router_id"].as_str().unwrap_or("").to_string();
                x["checks"]
                    .as_array()
                    .expect("checks")
                    .iter()
                    .map(move |c| row(id.clone(), c))
                    .collect::<Vec<_>>()
            })
            .collect();
        v.extend(
            j["host_checks"]
                .as_array()
                .expect("host checks")
                .iter()
                .map(|c| row("node".into(), c)),
        );
        v
    }

    const CAPTURES: &[&str] = &[
        "routers-gwA-healthy",
        "routers-gwA-conntrack-full",
        "routers-gwA-mtu-mismatch",
        "routers-gwA-ovs-dead-port",
        "router-gwA-split-brain",
        "router-gwA-keepalived-killed",
    ];

    #[test]
    fn captured_facts_give_the_checks_and_views_the_live_run_printed() {
        for name in CAPTURES {
            let (facts, live) = capture(name);
            let r = report(&facts);
            assert_eq!(rows(&r), live_rows(&live), "{name}: checks differ");
            assert_eq!(
                serde_json::to_value(&r.routers[0].views).expect("views"),
                live["routers"][0]["views"],
                "{name}: views differ"
            );
            assert_eq!(
                serde_json::to_value(r.verdict).expect("v"),
                live["verdict"],
                "{name}"
            );
        }
    }

    fn not_ok(name: &str) -> Vec<(String, Status)> {
        let (facts, _) = capture(name);
        rows(&report(&facts))
            .into_iter()
            .filter(|r| r.3 != Status::Ok)
            .map(|r| (r.1, r.3))
            .collect()
    }

    #[test]
    fn a_healthy_ha_gateway_is_all_ok_and_each_fault_fails_its_check() {
        let f = |id: &str| (id.to_string(), Status::Fail);
        assert_eq!(not_ok("routers-gwA-healthy"), []);
        assert_eq!(
            not_ok("routers-gwA-conntrack-full"),
            [f("router.conntrack")]
        );
        // Both tunnels over the shrunk underlay (the tenant's and the HA network's).
        assert_eq!(
            not_ok("routers-gwA-mtu-mismatch"),
            [f("mtu.vxlan"), f("mtu.vxlan")]
        );
        assert_eq!(not_ok("routers-gwA-ovs-dead-port"), [f("ovs.ports")]);
        assert_eq!(not_ok("router-gwA-split-brain"), [f("router.dad")]);
        assert_eq!(
            not_ok("router-gwA-keepalived-killed"),
            [
                f("router.keepalived"),
                ("router.vrrp".to_string(), Status::Unknown)
            ]
        );
    }

    #[test]
    fn the_peer_document_makes_the_pair_judged_together() {
        let (mut facts, _) = capture("routers-gwA-healthy");
        let here = report(&facts);
        let r = &here.routers[0];
        assert_eq!(r.views.addresses, "primary");
        // The other gateway also holds the addresses: split-brain across the pair.
        facts.peer = Some(crate::collect::peer::PeerDoc {
            host: Some("gwB".into()),
            routers: vec![crate::collect::peer::PeerRouter {
                router_id: r.router_id.clone(),
                views: crate::collect::peer::PeerViews {
                    addresses: "primary".into(),
                    state_file: "primary".into(),
                },
            }],
        });
        let both = report(&facts);
        let peer = both.routers[0]
            .checks
            .iter()
            .find(|c| c.id == "router.peer")
            .expect("router.peer");
        assert_eq!(peer.status, Status::Fail, "{peer:?}");
        assert!(peer.summary.contains("split-brain"), "{peer:?}");
        // ... a node without any BGP speaker does not announce tenant prefixes: not used here,
        // unless the config expects one (then unknown), and never a router failure.
        facts.peer = None;
        facts.bgp = Some(Vec::new());
        let r = report(&facts);
        assert!(r.routers.iter().all(|x| x.verdict == Status::Ok));
        assert_eq!(r.verdict, Status::Ok, "{:#?}", r.host_checks);
        assert!(r
            .host_checks
            .iter()
            .any(|c| c.id == "bgp.daemon" && c.summary.contains("not used")));
        facts.expect_bgp = true;
        let r = report(&facts);
        assert!(r
            .host_checks
            .iter()
            .any(|c| c.id == "bgp.daemon" && c.status == Status::Unknown));
    }
}
