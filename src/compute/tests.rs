//! The compute walk's checks replayed on facts captured from the lab's OVS compute node cmp1
//! (`lab/capture-facts`), healthy and with faults, and on variants of them: each fault fails its
//! check and nothing else; each valid variant of a real deployment is healthy.

use super::*;
use crate::collect::netlink::Link;
use crate::collect::ovsdb::{OvsDb, OvsPort};
use crate::port::vif;

/// A change planted in captured facts.
type Plant = Box<dyn Fn(&mut Facts)>;

const TVM1: &str = "e5f6a7b8-7c8d-4e9f-9a0b-9c0d1e2f3ab0";
const TAP: &str = "tape5f6a7b8-7c";

fn captured(name: &str) -> (Facts, serde_json::Value) {
    let (facts, report) = crate::testing::capture(name);
    (
        serde_json::from_value(facts).expect("compute facts"),
        report,
    )
}

fn healthy() -> Facts {
    captured("walk-cmp1-tvm1-healthy").0
}

fn db(f: &mut Facts) -> &mut OvsDb {
    f.ovsdb.as_mut().expect("OVSDB answered")
}

fn iface<'a>(f: &'a mut Facts, name: &str) -> &'a mut OvsPort {
    db(f)
        .ports
        .iter_mut()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no OVS interface {name}"))
}

fn link<'a>(f: &'a mut Facts, name: &str) -> &'a mut Link {
    f.net
        .links
        .iter_mut()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no link {name}"))
}

fn run(f: &Facts, mtu: Option<u32>, mac: Option<&str>) -> Vec<Check> {
    let vif =
        vif::resolve(&Target::PortId(TVM1.into()), f.ovsdb.as_ref().expect("db")).expect("vif");
    checks(f, &vif, mtu, mac)
}

/// (id, status) of the checks that are not ok.
fn not_ok(checks: &[Check]) -> Vec<(String, Status)> {
    checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| (c.id.to_string(), c.status))
        .collect()
}

fn only(checks: &[Check], id: &str, status: Status) {
    assert_eq!(
        not_ok(checks),
        vec![(id.to_string(), status)],
        "{:#?}",
        checks
            .iter()
            .filter(|c| c.status != Status::Ok)
            .collect::<Vec<_>>()
    );
    let c = checks.iter().find(|c| c.id == id).expect("the check");
    assert!(c.fix.is_some(), "{id} without a fix: {c:?}");
}

#[test]
fn the_captured_healthy_node_is_all_ok_as_the_recorded_report() {
    let (f, report) = captured("walk-cmp1-tvm1-healthy");
    let checks = run(&f, None, None);
    assert!(not_ok(&checks).is_empty(), "{checks:#?}");
    let ids: Vec<&str> = checks.iter().map(|c| c.id).collect();
    let recorded: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, recorded);
    // Path order, and nothing of the routed design.
    let order: Vec<&str> = crate::check::ovs::OVS_CATALOGUE
        .iter()
        .map(|(i, _)| *i)
        .collect();
    let pos: Vec<usize> = ids
        .iter()
        .map(|i| order.iter().position(|o| o == i).expect("in the catalogue"))
        .collect();
    assert!(pos.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");
}

#[test]
fn the_captured_tap_mtu_fault_fails_vif_mtu_only() {
    let (f, report) = captured("walk-cmp1-tvm1-tap-mtu");
    let checks = run(&f, None, None);
    only(&checks, "vif.mtu", Status::Fail);
    assert_eq!(report["verdict"], "fail");
    let c = checks.iter().find(|c| c.id == "vif.mtu").expect("vif.mtu");
    assert!(
        c.evidence.iter().any(|e| e.contains("local VLAN 1")),
        "{c:?}"
    );
    // With the network MTU given, the same.
    only(&run(&f, Some(1450), None), "vif.mtu", Status::Fail);
}

#[test]
fn each_fault_fails_its_own_check() {
    let cases: Vec<(&str, Plant, &str, Status)> = vec![
        (
            "dead VLAN",
            Box::new(|f| iface(f, TAP).tag = Some(4095)),
            "brint.tag",
            Status::Fail,
        ),
        (
            "never bound",
            Box::new(|f| iface(f, TAP).tag = None),
            "brint.tag",
            Status::Fail,
        ),
        (
            "interface error",
            Box::new(|f| {
                let i = iface(f, TAP);
                i.ofport = Some(-1);
                i.error = Some("could not open network device (No such device)".into());
            }),
            "vif.ovs",
            Status::Fail,
        ),
        (
            "no ofport yet",
            Box::new(|f| iface(f, TAP).ofport = None),
            "vif.ovs",
            Status::Fail,
        ),
        (
            "no attached-mac",
            Box::new(|f| iface(f, TAP).attached_mac = None),
            "vif.ovs",
            Status::Fail,
        ),
        (
            "iface-status inactive",
            Box::new(|f| iface(f, TAP).iface_status = Some("inactive".into())),
            "vif.ovs",
            Status::Warn,
        ),
        (
            "tap admin down",
            Box::new(|f| link(f, TAP).admin_up = false),
            "vif.tap",
            Status::Fail,
        ),
        (
            "no carrier",
            Box::new(|f| link(f, TAP).oper = "down".into()),
            "vif.tap",
            Status::Fail,
        ),
        (
            "tunnel down",
            Box::new(|f| {
                let l = link(f, "vxlan-1001");
                l.admin_up = false;
                l.oper = "down".into();
            }),
            "tunnel.port",
            Status::Fail,
        ),
        (
            "underlay MTU",
            Box::new(|f| link(f, "eth-tor3").mtu = 1480),
            "tunnel.mtu",
            Status::Fail,
        ),
        (
            "no underlay address",
            Box::new(|f| f.net.addrs.retain(|a| a.addr.to_string() != "198.18.41.5")),
            "tunnel.route",
            Status::Fail,
        ),
        (
            "tap MTU above the network's",
            Box::new(|f| {
                link(f, TAP).mtu = 1500;
                iface(f, TAP).mtu_request = None;
            }),
            "vif.mtu",
            Status::Warn,
        ),
    ];
    for (what, plant, id, status) in cases {
        let mut f = healthy();
        plant(&mut f);
        let checks = run(&f, None, None);
        assert_eq!(
            not_ok(&checks),
            vec![(id.to_string(), status)],
            "{what}: {:#?}",
            checks
                .iter()
                .filter(|c| c.status != Status::Ok)
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_missing_tap_is_one_failure() {
    let mut f = healthy();
    f.net.links.retain(|l| l.name != TAP);
    let checks = run(&f, None, None);
    let bad = not_ok(&checks);
    assert_eq!(bad[0], ("vif.tap".into(), Status::Fail), "{checks:#?}");
    // The chain's MTU cannot be measured then: unknown, pointing at vif.tap; nothing else.
    assert_eq!(
        bad[1..],
        [("vif.mtu".to_string(), Status::Unknown)],
        "{checks:#?}"
    );
}

#[test]
fn a_mac_other_than_ovsdb_s_fails_vif_ovs() {
    let checks = run(&healthy(), None, Some("fa:16:3e:99:99:99"));
    only(&checks, "vif.ovs", Status::Fail);
}

#[test]
fn ovsdb_not_answering_is_unknown_not_a_failure() {
    let mut f = healthy();
    let vif =
        vif::resolve(&Target::PortId(TVM1.into()), f.ovsdb.as_ref().expect("db")).expect("vif");
    f.ovsdb = Err(crate::error::Error::unknown(
        "OVSDB /run/openvswitch/db.sock did not answer within 2s",
    ));
    let checks = checks(&f, &vif, None, None);
    assert_eq!(not_ok(&checks), vec![("vif.ovs".into(), Status::Unknown)]);
}

/// Valid layouts of real compute nodes: each is healthy.
#[test]
fn healthy_variants_raise_no_alarm() {
    let cases: Vec<(&str, Plant)> = vec![
        // A provider (VLAN) network: no overlay, no tunnel to judge.
        (
            "vlan network without tunnels",
            Box::new(|f| {
                db(f).ports.retain(|p| p.name != "vxlan-1001");
                iface(f, TAP)
                    .port_config
                    .insert("network_type".into(), "vlan".into());
            }),
        ),
        // No network type recorded and no tunnel at all.
        (
            "no tunnel, no record",
            Box::new(|f| {
                db(f).ports.retain(|p| p.name != "vxlan-1001");
                iface(f, TAP).port_config.clear();
            }),
        ),
        // os-vif sets no mtu_request for a plain tap; the VLAN's other port agrees.
        (
            "no mtu_request",
            Box::new(|f| iface(f, TAP).mtu_request = None),
        ),
        // A jumbo underlay.
        (
            "jumbo underlay",
            Box::new(|f| link(f, "eth-tor3").mtu = 9000),
        ),
    ];
    for (what, plant) in cases {
        let mut f = healthy();
        plant(&mut f);
        let checks = run(&f, None, None);
        assert!(not_ok(&checks).is_empty(), "{what}: {checks:#?}");
    }
}

/// A hybrid plug (tap → qbr → qvb ↔ qvo, the qvo in br-int), built from the captured node:
/// complete, it is ok; each broken piece fails vif.chain.
#[test]
fn the_hybrid_chain_is_checked_device_by_device() {
    let hybrid = || {
        let mut f = healthy();
        iface(&mut f, TAP).name = "qvoe5f6a7b8-7c".into();
        // What ovs-vswitchd said, as it would name the port of a hybrid plug.
        let sw = serde_json::to_string(&f.vswitchd)
            .expect("json")
            .replace(TAP, "qvoe5f6a7b8-7c");
        f.vswitchd = serde_json::from_str(&sw).expect("json");
        let tap = link(&mut f, TAP).clone();
        let next = f.net.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
        let qbr = Link {
            index: next,
            name: "qbre5f6a7b8-7c".into(),
            kind: Some("bridge".into()),
            master: None,
            lower: None,
            ..tap.clone()
        };
        let qvb = Link {
            index: next + 1,
            name: "qvbe5f6a7b8-7c".into(),
            kind: Some("veth".into()),
            master: Some(next),
            lower: Some(next + 2),
            ..tap.clone()
        };
        let qvo = Link {
            index: next + 2,
            name: "qvoe5f6a7b8-7c".into(),
            kind: Some("veth".into()),
            master: None,
            lower: Some(next + 1),
            ..tap.clone()
        };
        link(&mut f, TAP).master = Some(next);
        f.net.links.extend([qbr, qvb, qvo]);
        f
    };
    // The hybrid plug's iptables security group is tests/compute.sh's (real rules); here it is
    // left out of the picture.
    let run_h = |f: &Facts| {
        let v = vif::resolve(&Target::Tap(TAP.into()), f.ovsdb.as_ref().expect("db")).expect("vif");
        assert!(v.hybrid.is_some());
        let mut c = checks(f, &v, None, None);
        assert!(c.iter().any(|c| c.id == "sg.chains"), "{c:#?}");
        c.retain(|c| !c.id.starts_with("sg."));
        c
    };
    let f = hybrid();
    let c = run_h(&f);
    assert!(not_ok(&c).is_empty(), "{c:#?}");
    assert!(c.iter().any(|c| c.id == "vif.chain"));
    let breaks: Vec<(&str, Plant)> = vec![
        ("tap not in qbr", Box::new(|f| link(f, TAP).master = None)),
        (
            "no qbr",
            Box::new(|f| f.net.links.retain(|l| l.name != "qbre5f6a7b8-7c")),
        ),
        (
            "qvo down",
            Box::new(|f| link(f, "qvoe5f6a7b8-7c").oper = "down".into()),
        ),
        (
            "not peers",
            Box::new(|f| link(f, "qvoe5f6a7b8-7c").lower = Some(1)),
        ),
    ];
    for (what, plant) in breaks {
        let mut f = hybrid();
        plant(&mut f);
        let c = run_h(&f);
        let bad = not_ok(&c);
        assert!(
            bad.contains(&("vif.chain".to_string(), Status::Fail)),
            "{what}: {c:#?}"
        );
        assert!(
            bad.iter()
                .all(|(id, _)| id == "vif.chain" || id == "vif.mtu"),
            "{what}: {bad:?}"
        );
    }
    // An MTU differing inside the chain: vif.mtu, not vif.chain.
    let mut f = hybrid();
    link(&mut f, "qvbe5f6a7b8-7c").mtu = 1400;
    assert_eq!(not_ok(&run_h(&f)), vec![("vif.mtu".into(), Status::Fail)]);
}

/// The captures of tests/compute.sh (a real ovs-vswitchd with a Neutron agent's flows, healthy
/// and with faults): the checks replayed on the captured facts give exactly the recorded report.
#[test]
fn captured_neutron_flow_walks_replay_to_their_reports() {
    for name in [
        "walk-ovs-healthy",
        "walk-ovs-vni-flow",
        "walk-ovs-sg-drop",
        "walk-ovs-tunnel-removed",
        "walk-ovs-underlay-mtu",
    ] {
        let (f, report) = captured(name);
        let db = f.ovsdb.as_ref().expect("db");
        let vif = vif::resolve(
            &Target::PortId("c6677132-b418-4ed3-9d5f-df0ef7b0f22f".into()),
            db,
        )
        .expect("vif");
        let mtu = report["port"]["mtu"]
            .as_u64()
            .and_then(|m| u32::try_from(m).ok());
        let got: Vec<(String, Option<String>, String, String)> = checks(&f, &vif, mtu, None)
            .iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    c.subject.clone(),
                    c.status.as_str().to_string(),
                    c.summary.clone(),
                )
            })
            .collect();
        let want: Vec<(String, Option<String>, String, String)> = report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or("").to_string(),
                    c["subject"].as_str().map(String::from),
                    c["status"].as_str().unwrap_or("").to_string(),
                    c["summary"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(got, want, "{name}");
    }
    // The healthy capture's traces: out in VXLAN VNI 879 to both VTEPs, the reply to the tap.
    let (f, _) = captured("walk-ovs-healthy");
    let sw = f.vswitchd.as_ref().expect("vswitchd read");
    assert_eq!(sw.traces.len(), 2);
    assert!(sw
        .flows
        .values()
        .all(|r| r.as_ref().is_ok_and(|v| !v.is_empty())));
}

/// A walk with Neutron as the source, captured on the real-agents lab's hv1: the checks of the
/// facts and what `neutron.port` and `path.next` said.
fn nlab(name: &str) -> (Facts, Vif, serde_json::Value) {
    let (mut f, report) = captured(name);
    f.neutron_host = report["host"].as_str().unwrap_or_default().to_string();
    let id = report["port"]["port_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let vif = vif::resolve(&Target::PortId(id), f.ovsdb.as_ref().expect("db")).expect("vif");
    (f, vif, report)
}

fn by_id<'a>(cs: &'a [Check], id: &str) -> &'a Check {
    cs.iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

fn records(f: &mut Facts) -> &mut crate::collect::openstack::neutron::PortRecords {
    f.neutron
        .as_mut()
        .and_then(|n| n.ports.as_mut().ok())
        .and_then(|p| p.first_mut())
        .expect("Neutron's records")
}

#[test]
fn captured_neutron_source_walks_replay_to_their_reports() {
    for (name, failing) in [
        ("walk-nlab-hv1-healthy", vec![]),
        ("walk-nlab-hv1-router-mac-to-standby", vec!["path.next"]),
    ] {
        let (f, vif, report) = nlab(name);
        let cs = checks(&f, &vif, None, None);
        let got: Vec<(String, String, String)> = cs
            .iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    c.status.as_str().to_string(),
                    c.summary.clone(),
                )
            })
            .collect();
        let want: Vec<(String, String, String)> = report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or("").to_string(),
                    c["status"].as_str().unwrap_or("").to_string(),
                    c["summary"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(got, want, "{name}");
        let bad: Vec<&str> = cs
            .iter()
            .filter(|c| c.status != Status::Ok)
            .map(|c| c.id)
            .collect();
        assert_eq!(bad, failing, "{name}");
        assert_eq!(by_id(&cs, "neutron.port").status, Status::Ok, "{name}");
    }
    // The trace went to the router's qr- MAC and the gateway address, from Neutron's records.
    let (f, _, _) = nlab("walk-nlab-hv1-healthy");
    let gw = super::gather::gateway_of(f.neutron.as_ref()).expect("gateway");
    let sw = f.vswitchd.as_ref().expect("switch");
    let egress = &sw
        .traces
        .iter()
        .find(|(a, _)| a.name == "egress")
        .expect("egress")
        .0;
    assert!(
        egress.flow.contains(&format!("dl_dst={}", gw.mac)),
        "{}",
        egress.flow
    );
    assert!(
        egress.flow.contains(&format!("nw_dst={}", gw.ip)),
        "{}",
        egress.flow
    );
}

#[test]
fn the_routers_agents_decide_the_hand_off() {
    let next = |plant: &dyn Fn(&mut Facts)| {
        let (mut f, vif, _) = nlab("walk-nlab-hv1-healthy");
        plant(&mut f);
        let cs = checks(&f, &vif, None, None);
        let c = by_id(&cs, "path.next").clone();
        (c.status, c.summary)
    };
    // The capture's primary and standby.
    let (mut f0, _, _) = nlab("walk-nlab-hv1-healthy");
    let agents = records(&mut f0).l3_agents.clone().unwrap().unwrap();
    let primary = agents
        .iter()
        .find(|a| a.ha_state.as_deref() == Some("active"))
        .unwrap()
        .host
        .clone();
    let standby = agents
        .iter()
        .find(|a| a.host != primary)
        .unwrap()
        .host
        .clone();
    let (s, m) = next(&|_| {});
    assert_eq!(s, Status::Ok);
    assert!(
        m.contains("vmpath router ") && m.contains(&format!("primary {primary}")),
        "{m}"
    );
    // No active agent: nothing routes; two: split-brain.
    let (s, m) = next(&|f| {
        for a in records(f).l3_agents.as_mut().unwrap().as_mut().unwrap() {
            a.ha_state = Some("standby".into());
        }
    });
    assert_eq!(s, Status::Fail, "{m}");
    assert!(m.contains("no active L3 agent"), "{m}");
    let (s, m) = next(&|f| {
        for a in records(f).l3_agents.as_mut().unwrap().as_mut().unwrap() {
            a.ha_state = Some("active".into());
        }
    });
    assert_eq!(s, Status::Fail, "{m}");
    assert!(m.contains("2 hosts at once"), "{m}");
    // In this capture the router's MAC was no longer learned (300 s after the VM's last frame
    // to it): the packet floods to both VTEPs, so a primary on either is reached.
    let (s, m) = next(&|f| {
        for a in records(f).l3_agents.as_mut().unwrap().as_mut().unwrap() {
            a.ha_state = Some(
                if a.host == standby {
                    "active"
                } else {
                    "standby"
                }
                .into(),
            );
        }
    });
    assert_eq!(s, Status::Ok, "{m}");
    assert!(
        m.contains(&format!("primary {standby}")) && m.contains("flooding"),
        "{m}"
    );
    // ... unless the primary's VTEP is not among them (its host unknown to the flooding).
    let (s, m) = next(&|f| {
        for v in records(f).vteps.as_mut().unwrap().as_mut().unwrap() {
            if v.host == primary {
                v.ip = "198.51.100.99".parse().unwrap();
            }
        }
    });
    assert_eq!(s, Status::Fail, "{m}");
    assert!(m.contains("neither sends"), "{m}");
    // A network without a router: the path ends there (ok); agents not readable: unknown.
    let (s, m) = next(&|f| records(f).gateways = Some(Ok(Vec::new())));
    assert_eq!(s, Status::Ok, "{m}");
    assert!(m.contains("isolated network"), "{m}");
    let (s, _) =
        next(&|f| records(f).l3_agents = Some(Err(crate::error::Error::unknown("403 Forbidden"))));
    assert_eq!(s, Status::Unknown);
    // A router that is not HA (one agent, no ha_state) is its own primary.
    let (s, m) = next(&|f| {
        let a = records(f).l3_agents.as_mut().unwrap().as_mut().unwrap();
        a.retain(|a| a.host == primary);
        a[0].ha_state = None;
    });
    assert_eq!(s, Status::Ok, "{m}");
}

#[test]
fn neutron_not_reached_leaves_the_host_walk_and_one_unknown() {
    let (mut f, vif, _) = nlab("walk-nlab-hv1-healthy");
    if let Some(n) = f.neutron.as_mut() {
        n.ports = Err(crate::error::Error::unknown("connection refused"));
    }
    let cs = checks(&f, &vif, None, None);
    let bad: Vec<(&str, Status)> = cs
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| (c.id, c.status))
        .collect();
    assert_eq!(bad, vec![("neutron.port", Status::Unknown)]);
}
