use super::chains::{classify, Dir, Key};
use super::*;
use crate::collect::firewall::{Backend, Family, FirewallFacts, SourceReport};
use crate::model::Status;

const TAP: &str = "tap3f1c2a4e-5b";
const PORT: &str = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51";

fn port() -> SgPort {
    SgPort::new(
        TAP,
        PORT,
        &["198.51.100.11".parse().expect("test fixture")],
        Some("FA:16:3E:00:00:01"),
    )
}

fn ipt(save: &str) -> FirewallFacts {
    FirewallFacts::from_iptables_save(Family::Ip, save)
}

fn nft(json: &str) -> FirewallFacts {
    FirewallFacts::from_nft_json(json)
}

/// Each captured state, as every model sees it: iptables-nft save, the same plus `nft -j`
/// of the iptables-nft tables (deduplicated), iptables-legacy save, and native nft.
fn fixtures(state: &str) -> Vec<(&'static str, FirewallFacts)> {
    macro_rules! fx {
        ($f:literal) => {
            include_str!(concat!(
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fw/"),
                $f
            ))
        };
    }
    let (i, iview, legacy, n) = match state {
        "healthy" => (
            fx!("ipt-healthy.save"),
            fx!("ipt-healthy.nft.json"),
            Some(fx!("legacy-healthy.save")),
            fx!("nft-healthy.json"),
        ),
        "drop22" => (
            fx!("ipt-drop22.save"),
            fx!("ipt-drop22.nft.json"),
            Some(fx!("legacy-drop22.save")),
            fx!("nft-drop22.json"),
        ),
        "set" => (
            fx!("ipt-set.save"),
            fx!("ipt-set.nft.json"),
            None,
            fx!("nft-set.json"),
        ),
        "unhooked" => (
            fx!("ipt-unhooked.save"),
            fx!("ipt-unhooked.nft.json"),
            Some(fx!("legacy-unhooked.save")),
            fx!("nft-unhooked.json"),
        ),
        "nochains" => (
            fx!("ipt-nochains.save"),
            fx!("ipt-nochains.nft.json"),
            Some(fx!("legacy-nochains.save")),
            fx!("nft-nochains.json"),
        ),
        _ => panic!("{state}"),
    };
    let both = FirewallFacts::from_outputs(
        vec![(
            SourceReport::named("iptables-save -c"),
            Backend::IptablesNft,
            Family::Ip,
            Ok(i.into()),
        )],
        Some((SourceReport::named("nft -j list ruleset"), Ok(iview.into()))),
    );
    assert!(
        both.tables
            .iter()
            .all(|t| t.backend == Backend::IptablesNft || t.family != Family::Ip),
        "iptables-nft tables seen twice"
    );
    let mut v = vec![
        ("iptables", ipt(i)),
        ("iptables+nft-view", both),
        ("nft", nft(n)),
    ];
    if let Some(l) = legacy {
        v.push((
            "legacy",
            FirewallFacts::from_outputs(
                vec![(
                    SourceReport::named("iptables-legacy-save -c"),
                    Backend::IptablesLegacy,
                    Family::Ip,
                    Ok(l.into()),
                )],
                None,
            ),
        ));
    }
    v
}

fn flow(fw: &FirewallFacts, f: &str) -> Check {
    let mut v = check_flow(fw, &port(), &parse_flow(f).expect("test fixture"));
    assert_eq!(v.len(), 1);
    v.remove(0)
}

#[test]
fn flow_syntax() {
    let f = parse_flow("tcp/22").expect("test fixture");
    assert_eq!(
        (f.dir, f.proto, f.port, f.peer),
        (Direction::ToVm, FlowProto::Tcp, Some(22), None)
    );
    let f = parse_flow("out:udp/53@192.0.2.53").expect("test fixture");
    assert_eq!(f.dir, Direction::FromVm);
    assert_eq!(f.peer, Some("192.0.2.53".parse().expect("test fixture")));
    assert_eq!(f.to_string(), "out:udp/53@192.0.2.53");
    assert_eq!(
        parse_flow("in:ICMP").expect("test fixture").proto,
        FlowProto::Icmp
    );
    assert!(parse_flow("tcp/[2001:db8::1]").is_err());
    assert_eq!(
        parse_flow("tcp/22@2001:db8::1").expect("test fixture").peer,
        Some("2001:db8::1".parse().expect("test fixture"))
    );
    for bad in [
        "tcp",
        "gre/1",
        "icmp/8",
        "tcp/0",
        "tcp/x",
        "",
        "udp/53@nowhere",
    ] {
        let e = parse_flow(bad).unwrap_err();
        assert!(
            e.message().contains("tcp/22, out:udp/53, icmp"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn chain_names_are_classified() {
    assert_eq!(
        classify("neutron-l2iso-i3f1c2a4e-5"),
        Some((
            Key::Port10("3f1c2a4e-5".into()),
            Dir::To,
            "neutron-l2iso".into()
        ))
    );
    assert_eq!(
        classify("neutron-openvswi-s3f1c2a4e-5").map(|c| c.1),
        Some(Dir::Spoof)
    );
    assert_eq!(classify("neutron-l2iso-sg-chain"), None);
    assert_eq!(classify("neutron-l2iso-sg-fallback"), None);
    assert_eq!(
        classify("cali-fw-tap3f1c2a4e-5b"),
        Some((Key::Iface(TAP.into()), Dir::From, "cali".into()))
    );
    assert_eq!(classify("tw-tap3f1c2a4e-5b").map(|c| c.1), Some(Dir::To));
    assert_eq!(port().port10(), "3f1c2a4e-5");
    assert_eq!(SgPort::new(TAP, "", &[], None).port10(), "3f1c2a4e-5");
    assert_eq!(
        SgPort::new(TAP, "ééééééé", &[], None).port10(),
        "3f1c2a4e-5"
    );
    assert_eq!(classify("neutron-ééééééééééééé"), None);
}

#[test]
fn healthy_host() {
    for (m, fw) in fixtures("healthy") {
        let c = check_chains(&fw, &port());
        assert_eq!(c.status, Status::Ok, "{m}: {c:#?}");
        assert!(
            c.summary.contains("filtered from the VM and to the VM"),
            "{m}: {c:#?}"
        );
        assert!(
            c.evidence
                .iter()
                .all(|e| !e.contains("no rule of the port met")),
            "{m}: {c:#?}"
        );
        let c = check_drops(&fw, &port());
        assert_eq!(c.status, Status::Ok, "{m}: {c:#?}");
        assert!(
            c.evidence.iter().any(|e| e.contains("fallback, normal")),
            "{m}: {c:#?}"
        );
        assert!(
            c.evidence
                .iter()
                .any(|e| e.contains("anti-spoofing, normal")),
            "{m}: {c:#?}"
        );
        assert_eq!(flow(&fw, "tcp/22").status, Status::Ok, "{m}");
        let c = flow(&fw, "tcp/80");
        assert_eq!(c.status, Status::Fail, "{m}: {c:#?}");
        assert!(
            c.summary.contains("dropped by") && c.summary.contains("sg-fallback"),
            "{m}: {}",
            c.summary
        );
        assert!(
            c.fix
                .as_deref()
                .expect("test fixture")
                .contains("--ingress --protocol tcp --dst-port 80"),
            "{m}"
        );
        assert_eq!(flow(&fw, "icmp").status, Status::Ok, "{m}");
        assert_eq!(flow(&fw, "out:udp/53").status, Status::Ok, "{m}");
        let c = flow(&fw, "out:udp/123");
        assert_eq!(c.status, Status::Fail, "{m}");
        assert!(
            c.fix.as_deref().expect("test fixture").contains("--egress"),
            "{m}"
        );
    }
}

#[test]
fn healthy_iptables_evidence_format() {
    let fw = ipt(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fw/ipt-healthy.save"
    )));
    let c = check_chains(&fw, &port());
    assert_eq!(
        c.summary,
        "tap3f1c2a4e-5b's traffic passes its security group, filtered from the VM and to the VM"
    );
    assert_eq!(
        c.evidence,
        [
            "new from the VM: accept by iptables-nft ip filter neutron-l2iso-sg-chain: [26:1558] -A neutron-l2iso-sg-chain -j ACCEPT",
            "replies to the VM: accept by iptables-nft ip filter neutron-l2iso-sg-chain: [26:1558] -A neutron-l2iso-sg-chain -j ACCEPT",
            "new to the VM: depends on the packet at iptables-nft ip filter neutron-l2iso-i3f1c2a4e-5: [2:120] -A neutron-l2iso-i3f1c2a4e-5 -p tcp -m tcp --dport 22 -j RETURN",
            "replies from the VM: accept by iptables-nft ip filter neutron-l2iso-sg-chain: [26:1558] -A neutron-l2iso-sg-chain -j ACCEPT",
        ]
    );
    let c = check_drops(&fw, &port());
    assert!(c.evidence.contains(&"neutron-l2iso-i3f1c2a4e-5 (iptables-nft ip filter): 2 packets dropped by \
        `[2:120] -A neutron-l2iso-i3f1c2a4e-5 -m comment --comment \"Send unmatched traffic to the fallback chain.\" \
        -j neutron-l2iso-sg-fallback` (fallback, normal)".to_string()), "{:#?}", c.evidence);
    let c = flow(&fw, "tcp/80");
    assert_eq!(
        c.summary,
        "tcp/80 to 198.51.100.11 is dropped by neutron-l2iso-sg-fallback `[3:150] -A neutron-l2iso-sg-fallback \
         -m comment --comment \"Default drop rule for unmatched traffic.\" -j DROP`"
    );
    assert_eq!(c.subject.as_deref(), Some("tcp/80 to 198.51.100.11"));
}

#[test]
fn explicit_drop_warns_and_fails_the_flow() {
    for (m, fw) in fixtures("drop22") {
        let c = check_drops(&fw, &port());
        assert_eq!(c.status, Status::Warn, "{m}: {c:#?}");
        assert!(
            c.summary.contains("4 packets") && c.summary.contains("22"),
            "{m}: {}",
            c.summary
        );
        assert!(
            c.summary.starts_with(if m == "nft" {
                "tw-tap3f1c2a4e-5b"
            } else {
                "neutron-l2iso-i3f1c2a4e-5"
            }),
            "{m}: {}",
            c.summary
        );
        let fix = c.fix.expect("test fixture");
        if m == "nft" {
            assert!(
                fix.contains("nft delete rule inet vmsg tw-tap3f1c2a4e-5b handle 37"),
                "{fix}"
            );
        } else {
            let bin = if m == "legacy" {
                "iptables-legacy"
            } else {
                "iptables"
            };
            let want =
                format!("({bin} -D neutron-l2iso-i3f1c2a4e-5 -p tcp -m tcp --dport 22 -j DROP)");
            assert!(fix.contains(&want), "{fix}");
        }
        let c = flow(&fw, "tcp/22");
        assert_eq!(c.status, Status::Fail, "{m}");
        assert!(c.summary.contains("dport 22"), "{m}: {}", c.summary);
        assert!(c
            .fix
            .expect("test fixture")
            .contains("not a security-group default"));
        assert_eq!(flow(&fw, "icmp").status, Status::Ok, "{m}");
    }
}

#[test]
fn set_rule_is_undetermined() {
    for (m, fw) in fixtures("set") {
        let c = flow(&fw, "tcp/80");
        assert_eq!(c.status, Status::Unknown, "{m}: {c:#?}");
        assert!(c.summary.contains("undetermined at"), "{m}: {}", c.summary);
        assert!(
            c.evidence
                .iter()
                .any(|e| e.starts_with("if it matches: accept")),
            "{m}: {c:#?}"
        );
        assert_eq!(flow(&fw, "tcp/22").status, Status::Ok, "{m}");
        // sg.drops and sg.chains are not affected.
        assert_eq!(check_drops(&fw, &port()).status, Status::Ok, "{m}");
        assert_eq!(check_chains(&fw, &port()).status, Status::Ok, "{m}");
    }
    let (_, fw) = fixtures("set").remove(0);
    assert!(flow(&fw, "tcp/80")
        .fix
        .expect("test fixture")
        .contains("ipset list"));
    // With the peer given, the nft named set decides.
    let (_, fw) = fixtures("set").remove(2);
    assert_eq!(flow(&fw, "tcp/80@203.0.113.10").status, Status::Ok);
    assert_eq!(flow(&fw, "tcp/80@192.0.2.10").status, Status::Fail);
}

#[test]
fn missing_or_unhooked_chains_leave_the_port_unfiltered_a_warning() {
    for (m, fw) in fixtures("nochains") {
        let c = check_chains(&fw, &port());
        assert_eq!(c.status, Status::Warn, "{m}: {c:#?}");
        assert!(
            c.summary.contains("is unfiltered") && c.summary.contains("1 other port has"),
            "{m}: {}",
            c.summary
        );
        assert!(
            c.fix
                .as_deref()
                .is_some_and(|f| f.contains("port_security_enabled")),
            "{m}: {c:#?}"
        );
        // Nothing of this port is left to drop anything.
        assert_eq!(flow(&fw, "tcp/80").status, Status::Ok, "{m}");
    }
    for (m, fw) in fixtures("unhooked") {
        let c = check_chains(&fw, &port());
        assert_eq!(c.status, Status::Warn, "{m}: {c:#?}");
        assert!(c.summary.contains("is unfiltered"), "{m}: {}", c.summary);
        let unhooked = c
            .evidence
            .iter()
            .find(|e| e.contains("exist but nothing jumps to them"))
            .expect("the unhooked chains are named");
        assert!(
            unhooked.contains(if m == "nft" {
                "tw-tap3f1c2a4e-5b"
            } else {
                "neutron-l2iso-i3f1c2a4e-5"
            }),
            "{m}: {unhooked}"
        );
        let fix = c.fix.expect("test fixture");
        if m != "nft" {
            assert!(fix.contains("neutron-l2iso-* chains"), "{fix}");
        } else {
            assert!(fix.contains("table nft inet vmsg"), "{fix}");
        }
    }
    // Only traffic to the VM is filtered (the o-chain is reached from INPUT alone): a layout
    // that filters one direction is a healthy one.
    let healthy = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fw/ipt-healthy.save"
    ));
    let cut: String = healthy
        .lines()
        .filter(|l| !l.contains("-A neutron-l2iso-sg-chain -i tap3f1c2a4e-5b"))
        .map(|l| format!("{l}\n"))
        .collect();
    let c = check_chains(&ipt(&cut), &port());
    assert_eq!(c.status, Status::Ok, "{c:#?}");
    assert!(c.summary.ends_with("filtered to the VM"), "{}", c.summary);
    assert!(
        c.evidence[0].starts_with("new from the VM: accept")
            && c.evidence[0].ends_with("(no rule of the port met)"),
        "{:#?}",
        c.evidence
    );
    // The other port is still fine in both states.
    let other = SgPort::new(
        "tap9a8b7c6d-1e",
        "9a8b7c6d-1e2f",
        &["198.51.100.12".parse().expect("test fixture")],
        None,
    );
    for (m, fw) in fixtures("unhooked").into_iter().chain(fixtures("nochains")) {
        assert_eq!(check_chains(&fw, &other).status, Status::Ok, "{m}");
    }
}

#[test]
fn no_filtering_at_all_warns_and_unreadable_is_unknown() {
    let fw =
        ipt("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
    let c = check_chains(&fw, &port());
    assert_eq!(c.status, Status::Warn);
    assert!(c
        .fix
        .expect("test fixture")
        .contains("port_security_enabled"));
    assert_eq!(check_drops(&fw, &port()).status, Status::Ok);
    assert_eq!(flow(&fw, "tcp/80").status, Status::Ok);
    let fw = FirewallFacts::from_outputs(
        vec![(
            SourceReport::named("iptables-save -c"),
            Backend::IptablesNft,
            Family::Ip,
            Err(crate::error::Error::unknown("iptables-save -c failed (exit status: 4): Permission denied (you must be root): run vmpath as root")),
        )],
        Some((SourceReport::named("nft -j list ruleset"), Err(crate::error::Error::unknown("nft not found in PATH")))),
    );
    for c in checks(
        &fw,
        &port(),
        Some(&parse_flow("tcp/22").expect("test fixture")),
    ) {
        assert_eq!(c.status, Status::Unknown, "{c:#?}");
        assert!(
            c.evidence.iter().any(|e| e.contains("you must be root")),
            "{c:#?}"
        );
    }
}

#[test]
fn jump_based_discovery_without_a_naming_scheme() {
    let text = "*filter\n:FORWARD ACCEPT [0:0]\n:vm-a - [0:0]\n:vm-b - [0:0]\n:vm-c - [0:0]\n\
        [5:300] -A FORWARD -o tap3f1c2a4e-5b -j vm-a\n[5:300] -A FORWARD -i tap3f1c2a4e-5b -j vm-b\n\
        [1:60] -A FORWARD -o tap9a8b7c6d-1e -j vm-c\n\
        [2:120] -A vm-a -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset\n[3:180] -A vm-a -j DROP\n\
        [0:0] -A vm-b -j ACCEPT\n[0:0] -A vm-c -j DROP\nCOMMIT\n";
    let fw = ipt(text);
    let c = check_chains(&fw, &port());
    assert_eq!(c.status, Status::Ok, "{c:#?}");
    let c = check_drops(&fw, &port());
    assert_eq!(c.status, Status::Warn, "{c:#?}");
    assert!(c.summary.starts_with("vm-a: 2 packets"), "{}", c.summary);
    assert!(
        c.evidence[1].contains("3 packets") && c.evidence[1].contains("fallback, normal"),
        "{:#?}",
        c.evidence
    );
    let c = flow(&fw, "tcp/23");
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("is rejected by vm-a"), "{}", c.summary);
}

/// Security-group layouts of real deployments, each judged by what it does to the VM's traffic.
mod layouts {
    use super::*;

    fn chains(text: &str) -> Check {
        check_chains(&ipt(text), &port())
    }

    #[test]
    fn calico_dispatch_chains_with_gotos_are_a_filtered_port() {
        let c = chains(
            "*filter\n:FORWARD ACCEPT [0:0]\n:cali-FORWARD - [0:0]\n:cali-from-wl-dispatch - [0:0]\n\
             :cali-to-wl-dispatch - [0:0]\n:cali-fw-tap3f1c2a4e-5b - [0:0]\n:cali-tw-tap3f1c2a4e-5b - [0:0]\n\
             -A FORWARD -j cali-FORWARD\n-A cali-FORWARD -i tap+ -j cali-from-wl-dispatch\n\
             -A cali-FORWARD -o tap+ -j cali-to-wl-dispatch\n\
             -A cali-from-wl-dispatch -i tap3f1c2a4e-5b -g cali-fw-tap3f1c2a4e-5b\n\
             -A cali-to-wl-dispatch -o tap3f1c2a4e-5b -g cali-tw-tap3f1c2a4e-5b\n\
             -A cali-fw-tap3f1c2a4e-5b -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A cali-fw-tap3f1c2a4e-5b -j ACCEPT\n\
             -A cali-tw-tap3f1c2a4e-5b -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A cali-tw-tap3f1c2a4e-5b -p tcp -m tcp --dport 22 -j ACCEPT\n\
             -A cali-tw-tap3f1c2a4e-5b -j DROP\nCOMMIT\n",
        );
        assert_eq!(c.status, Status::Ok, "{c:#?}");
        assert!(c.summary.contains("from the VM and to the VM"), "{c:#?}");
    }

    #[test]
    fn neutron_hybrid_physdev_hooks_are_a_filtered_port() {
        let c = chains(
            "*filter\n:FORWARD ACCEPT [0:0]\n:neutron-openvswi-FORWARD - [0:0]\n\
             :neutron-openvswi-sg-chain - [0:0]\n:neutron-openvswi-sg-fallback - [0:0]\n\
             :neutron-openvswi-i3f1c2a4e-5 - [0:0]\n:neutron-openvswi-o3f1c2a4e-5 - [0:0]\n\
             -A FORWARD -j neutron-openvswi-FORWARD\n\
             -A neutron-openvswi-FORWARD -m physdev --physdev-out tap3f1c2a4e-5b --physdev-is-bridged -j neutron-openvswi-sg-chain\n\
             -A neutron-openvswi-FORWARD -m physdev --physdev-in tap3f1c2a4e-5b --physdev-is-bridged -j neutron-openvswi-sg-chain\n\
             -A neutron-openvswi-sg-chain -m physdev --physdev-out tap3f1c2a4e-5b --physdev-is-bridged -j neutron-openvswi-i3f1c2a4e-5\n\
             -A neutron-openvswi-sg-chain -m physdev --physdev-in tap3f1c2a4e-5b --physdev-is-bridged -j neutron-openvswi-o3f1c2a4e-5\n\
             -A neutron-openvswi-sg-chain -j ACCEPT\n-A neutron-openvswi-sg-fallback -j DROP\n\
             -A neutron-openvswi-i3f1c2a4e-5 -m state --state RELATED,ESTABLISHED -j RETURN\n\
             -A neutron-openvswi-i3f1c2a4e-5 -j neutron-openvswi-sg-fallback\n\
             -A neutron-openvswi-o3f1c2a4e-5 -m state --state RELATED,ESTABLISHED -j RETURN\n\
             -A neutron-openvswi-o3f1c2a4e-5 -j RETURN\nCOMMIT\n",
        );
        assert_eq!(c.status, Status::Ok, "{c:#?}");
    }

    #[test]
    fn replies_dropped_by_a_host_rule_fail() {
        // FORWARD drops by policy and only lets new connections of the VM through: replies to
        // the VM never arrive.
        let c = chains(
            "*filter\n:FORWARD DROP [0:0]\n:vm-out - [0:0]\n\
             -A FORWARD -i tap3f1c2a4e-5b -j vm-out\n-A vm-out -j ACCEPT\nCOMMIT\n",
        );
        assert_eq!(c.status, Status::Fail, "{c:#?}");
        assert!(
            c.summary.contains("replies to the VM are dropped"),
            "{c:#?}"
        );
    }

    #[test]
    fn anti_spoofing_that_refuses_the_ports_own_address_fails_and_no_egress_rule_warns() {
        let base = "*filter\n:FORWARD ACCEPT [0:0]\n:neutron-x-sg-chain - [0:0]\n\
             :neutron-x-i3f1c2a4e-5 - [0:0]\n:neutron-x-o3f1c2a4e-5 - [0:0]\n:neutron-x-s3f1c2a4e-5 - [0:0]\n\
             -A FORWARD -o tap3f1c2a4e-5b -j neutron-x-sg-chain\n-A FORWARD -i tap3f1c2a4e-5b -j neutron-x-sg-chain\n\
             -A neutron-x-sg-chain -o tap3f1c2a4e-5b -j neutron-x-i3f1c2a4e-5\n\
             -A neutron-x-sg-chain -i tap3f1c2a4e-5b -j neutron-x-o3f1c2a4e-5\n-A neutron-x-sg-chain -j ACCEPT\n\
             -A neutron-x-i3f1c2a4e-5 -m state --state RELATED,ESTABLISHED -j RETURN\n-A neutron-x-i3f1c2a4e-5 -j DROP\n\
             -A neutron-x-o3f1c2a4e-5 -j neutron-x-s3f1c2a4e-5\n\
             -A neutron-x-o3f1c2a4e-5 -m state --state RELATED,ESTABLISHED -j RETURN\n";
        // The anti-spoofing chain still has the address the VM had before.
        let c = chains(&format!(
            "{base}-A neutron-x-o3f1c2a4e-5 -j RETURN\n\
             -A neutron-x-s3f1c2a4e-5 -s 198.51.100.99/32 -j RETURN\n-A neutron-x-s3f1c2a4e-5 -j DROP\nCOMMIT\n"
        ));
        assert_eq!(c.status, Status::Fail, "{c:#?}");
        assert!(c.summary.contains("anti-spoofing"), "{c:#?}");
        // A security group without an egress rule: what it is configured to do.
        let c = chains(&format!(
            "{base}-A neutron-x-o3f1c2a4e-5 -j DROP\n\
             -A neutron-x-s3f1c2a4e-5 -s 198.51.100.11/32 -j RETURN\n-A neutron-x-s3f1c2a4e-5 -j DROP\nCOMMIT\n"
        ));
        assert_eq!(c.status, Status::Warn, "{c:#?}");
        assert!(c.summary.contains("no egress rule"), "{c:#?}");
    }
}
