//! The walk's checks for one port, in path order: pure functions of the gathered [`Facts`]
//! (nothing here reads the host), so a sweep checks N ports from one read and a captured host
//! is checked again without root.

use crate::check::{self, dhcp, host, metadata, sg};
use crate::model::Check;

use super::gather::{Facts, Port};

/// Every check of `port`, in path order. `flow` is `--flow`; `expect` what the host must run.
pub fn port(f: &Facts, port: &Port, flow: Option<&sg::Flow>, expect: check::Expect) -> Vec<Check> {
    let id = &port.id;
    let want = &port.desired;
    let ips = want.ip_list();
    let hf = host::HostFacts {
        net: &f.net,
        sysctl: f.sysctls.get(&id.tap).cloned().unwrap_or_default(),
        lookups: ips
            .iter()
            .filter_map(|ip| f.lookups.get(ip).map(|r| (*ip, r.clone())))
            .collect(),
    };
    let mut out = Vec::new();
    out.extend(host::tap_checks(id, want, &hf));
    out.extend(host::gateway_checks(id, want, &hf));
    out.extend(host::proxy_checks(id, want, &hf));
    out.extend(host::route_checks(id, want, &hf));
    out.extend(host::neigh_checks(id, want, &hf));
    // Security group.
    let mac = want.mac.as_ref().map(|m| m.value.as_str());
    let sg_port = sg::SgPort::new(&id.tap, &id.port_id, &ips, mac);
    out.extend(sg::checks(&f.firewall, &sg_port, flow));
    out.push(dhcp::server_check(
        id,
        &f.dnsmasq,
        &|pid| f.alive.contains(&pid),
        expect.dhcp,
    ));
    let macs = dhcp::MacEvidence::from_host(&f.net, &id.tap, &ips, port.mac_flag.clone());
    out.push(dhcp::host_check(id, &f.dnsmasq, &f.net, &macs));
    // Metadata: from the VM's first IPv4 address (the metadata service is IPv4).
    if let Some(vm4) = port.metadata_source() {
        let local = f.net.local_addrs();
        out.push(metadata::check_metadata(
            &f.firewall,
            &f.sockets,
            &local,
            &id.tap,
            vm4,
            mac,
        ));
    }
    // BGP last: the RIB, then each peer.
    let pfx: Vec<String> = port
        .prefixes()
        .iter()
        .map(|(ip, l)| format!("{ip}/{l}"))
        .collect();
    out.extend(check::bgp::port_rows(&f.bgp, &pfx));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;
    use crate::port::target::Target;
    use crate::port::Overrides;

    /// A capture of `lab/capture-facts`: the facts a walk gathered and the report it printed.
    fn capture(name: &str) -> (Facts, serde_json::Value) {
        let (facts, report) = crate::testing::capture(name);
        (
            serde_json::from_value(facts).expect("facts deserialize"),
            report,
        )
    }

    fn replay(name: &str) -> (Vec<Check>, serde_json::Value) {
        let (facts, report) = capture(name);
        let target = Target::parse(report["target"].as_str().expect("target")).expect("target");
        let port = facts
            .port(&target, &Overrides::default())
            .expect("the captured port resolves");
        (super::port(&facts, &port, None, Default::default()), report)
    }

    fn row(c: &Check) -> (String, Option<String>, Status, String) {
        (
            c.id.to_string(),
            c.subject.clone(),
            c.status,
            c.summary.clone(),
        )
    }

    const CAPTURES: &[&str] = &[
        "walk-hv1-vm1-healthy",
        "walk-hv2-vm3-healthy",
        "walk-hv1-vm1-route-wrong-tap",
        "walk-hv1-vm1-dhcp-wrong-mac",
        "walk-hv1-vm1-export-filter",
        "walk-hv1-vm1-metadata-down",
        "walk-hv2-vm3-sg-drop",
        "walk-hv2-vm3-bgp-down",
    ];

    #[test]
    fn captured_facts_give_exactly_the_checks_the_live_walk_printed() {
        for name in CAPTURES {
            let (checks, report) = replay(name);
            let live: Vec<Check> = report["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .map(|c| {
                    let status: Status =
                        serde_json::from_value(c["status"].clone()).expect("status");
                    let id: &'static str = crate::check::CATALOGUE
                        .iter()
                        .map(|(id, _)| *id)
                        .find(|id| c["id"] == *id)
                        .expect("a catalogued id");
                    let mut k = Check::new(id, status, c["summary"].as_str().unwrap_or(""));
                    k.subject = c["subject"].as_str().map(str::to_string);
                    k
                })
                .collect();
            let got: Vec<_> = checks.iter().map(row).collect();
            let want: Vec<_> = live.iter().map(row).collect();
            assert_eq!(
                got, want,
                "{name}: replayed checks differ from the live walk"
            );
            let evidence: Vec<Vec<String>> = checks.iter().map(|c| c.evidence.clone()).collect();
            let live_evidence: Vec<Vec<String>> = report["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .map(|c| serde_json::from_value(c["evidence"].clone()).unwrap_or_default())
                .collect();
            assert_eq!(evidence, live_evidence, "{name}: evidence differs");
        }
    }

    fn not_ok(name: &str) -> Vec<(&'static str, Status)> {
        replay(name)
            .0
            .iter()
            .filter(|c| c.status != Status::Ok)
            .map(|c| (c.id, c.status))
            .collect()
    }

    #[test]
    fn healthy_hosts_are_all_ok_on_bird_iptables_and_frr_nftables() {
        assert_eq!(not_ok("walk-hv1-vm1-healthy"), []);
        assert_eq!(not_ok("walk-hv2-vm3-healthy"), []);
        // Every hop is there: tap to BGP, both address families.
        let (checks, _) = replay("walk-hv2-vm3-healthy");
        for id in [
            "tap.exists",
            "route.host",
            "sg.chains",
            "dhcp.host",
            "metadata.proxy",
            "bgp.export",
        ] {
            assert!(checks.iter().any(|c| c.id == id), "{id} missing");
        }
    }

    #[test]
    fn each_planted_fault_is_found_by_its_own_check_alone() {
        use Status::{Fail, Warn};
        assert_eq!(
            not_ok("walk-hv1-vm1-route-wrong-tap"),
            [("route.host", Fail), ("route.lookup", Fail)]
        );
        assert_eq!(not_ok("walk-hv1-vm1-dhcp-wrong-mac"), [("dhcp.host", Fail)]);
        // tor2 still receives the /32: one path of the fabric lost.
        assert_eq!(not_ok("walk-hv1-vm1-export-filter"), [("bgp.export", Warn)]);
        assert_eq!(
            not_ok("walk-hv1-vm1-metadata-down"),
            [("metadata.proxy", Fail)]
        );
        assert_eq!(not_ok("walk-hv2-vm3-sg-drop"), [("sg.drops", Warn)]);
        // tor1's sessions down, tor2's up: redundancy lost, traffic flows.
        let bgp = not_ok("walk-hv2-vm3-bgp-down");
        assert!(
            !bgp.is_empty()
                && bgp
                    .iter()
                    .all(|(id, s)| *s == Warn && (*id == "bgp.session" || *id == "bgp.export")),
            "{bgp:?}"
        );
    }

    #[test]
    fn a_source_that_did_not_answer_is_unknown_not_a_failure() {
        let (mut facts, report) = capture("walk-hv1-vm1-healthy");
        let target = Target::parse(report["target"].as_str().expect("t")).expect("t");
        let port = facts.port(&target, &Overrides::default()).expect("port");
        // The routing daemon timed out; the socket scan failed.
        for s in &mut facts.bgp {
            s.answer = crate::collect::bgp::Answer::Failed(crate::collect::bgp::BgpError::new(
                crate::collect::bgp::BgpErrorKind::Timeout,
                "BIRD control socket",
                "no answer within 2s",
                "",
            ));
        }
        facts.sockets = Err(crate::error::Error::unknown("sock_diag: EPERM"));
        let checks = super::port(&facts, &port, None, Default::default());
        let by = |id: &str| -> Vec<Status> {
            checks
                .iter()
                .filter(|c| c.id == id)
                .map(|c| c.status)
                .collect()
        };
        assert!(by("bgp.daemon").iter().all(|s| *s == Status::Unknown));
        assert!(by("bgp.export").iter().all(|s| *s == Status::Unknown));
        assert_eq!(by("metadata.proxy"), [Status::Unknown]);
        assert!(
            checks.iter().all(|c| c.status != Status::Fail),
            "{checks:?}"
        );
    }

    #[test]
    fn one_read_of_a_host_checks_a_port_by_any_of_its_names() {
        let (facts, _) = capture("walk-hv1-vm1-healthy");
        let by_ip = facts
            .port(
                &Target::parse("198.51.100.11").expect("t"),
                &Overrides::default(),
            )
            .expect("ip");
        let by_tap = facts
            .port(
                &Target::parse("tap3f1c2a4e-5b").expect("t"),
                &Overrides::default(),
            )
            .expect("tap");
        assert_eq!(by_ip.id.tap, by_tap.id.tap);
        assert_eq!(
            super::port(&facts, &by_ip, None, Default::default())
                .iter()
                .map(row)
                .collect::<Vec<_>>(),
            super::port(&facts, &by_tap, None, Default::default())
                .iter()
                .map(row)
                .collect::<Vec<_>>()
        );
        let e = facts
            .port(
                &Target::parse("198.51.100.99").expect("t"),
                &Overrides::default(),
            )
            .expect_err("no such port");
        assert!(matches!(e, crate::error::Error::NotHere(_)), "{e:?}");
    }
}
