//! `vmpath walk` on an Open vSwitch compute node of the overlay design with the flows a real
//! Neutron OVS agent installed (tests/compute.sh: real ovsdb-server and ovs-vswitchd, the
//! agent's captured native-firewall and br-tun flows, userspace tunnelling, in a private network,
//! mount and PID namespace): healthy by every target form, and each fault found by its own
//! check and nothing else. Skipped outside CI when not root; fails in CI when it cannot run.

use std::process::Command;

use serde_json::Value;

mod private;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// (id, subject, status) of the checks that are not ok.
fn not_ok(d: &Value) -> Vec<(String, String, String)> {
    d["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {d:#}"))
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("?").to_string(),
                c["subject"].as_str().unwrap_or("").to_string(),
                c["status"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn row(id: &str, subject: &str, status: &str) -> (String, String, String) {
    (id.into(), subject.into(), status.into())
}

#[test]
fn the_compute_walk_on_a_neutron_agent_s_flows() {
    if !nix::unistd::geteuid().is_root()
        || Command::new("ovs-vswitchd")
            .arg("--version")
            .output()
            .is_err()
    {
        assert!(
            !in_ci(),
            "tests/compute.rs needs root and Open vSwitch in CI"
        );
        eprintln!("SKIPPED (not in CI): needs root and Open vSwitch");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let flows = format!("{root}/tests/fixtures/ovs");
    let out = private::run(
        120,
        true,
        &format!("{root}/tests/compute.sh"),
        &[env!("CARGO_BIN_EXE_vmpath"), &flows],
        "OUTER_NETNS",
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "compute.sh failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = private::sections(&text);
    let get = |n: &str| docs.get(n).unwrap_or_else(|| panic!("no {n} in {text}"));

    // Healthy, by port UUID, address (from the firewall's flows), tap and MAC.
    for n in ["healthy", "by-ip", "by-tap", "by-mac", "healthy-again"] {
        let d = get(n);
        assert_eq!(d["exit_code"], 0, "{n}: {:?}", not_ok(d));
        assert_eq!(d["design"], "ovs", "{n}");
        assert_eq!(
            d["port"]["port_id"], "c6677132-b418-4ed3-9d5f-df0ef7b0f22f",
            "{n}"
        );
        let ids: Vec<&str> = d["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        for id in [
            "vif.ovs",
            "brint.tag",
            "brint.vni",
            "sg.ovs",
            "flow.egress",
            "flow.ingress",
            "path.next",
        ] {
            assert!(ids.contains(&id), "{n}: no {id} in {ids:?}");
        }
        for (id, _) in vmpath::check::CATALOGUE {
            assert!(
                !ids.contains(id),
                "{n}: the routed check {id} ran on a compute node"
            );
        }
    }
    let h = get("healthy");
    let check = |d: &Value, id: &str| -> Value {
        d["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no {id}: {d:#}"))
    };
    // The egress trace leaves in VXLAN VNI 879 towards both gateways' VTEPs; the reply reaches
    // the tap; the hand-off names the VTEPs and the command.
    let egress = check(h, "flow.egress");
    let s = egress["summary"].as_str().unwrap_or("");
    assert!(
        s.contains("198.51.100.11 (VNI 879)") && s.contains("198.51.100.12 (VNI 879)"),
        "{egress:#}"
    );
    assert!(check(h, "flow.ingress")["summary"]
        .as_str()
        .unwrap_or("")
        .contains("tapc6677132-b4"));
    assert!(check(h, "brint.vni")["summary"]
        .as_str()
        .unwrap_or("")
        .contains("VNI 879"));
    let next = check(h, "path.next");
    let s = next["summary"].as_str().unwrap_or("");
    assert!(
        s.contains("198.51.100.11") && s.contains("vmpath walk 198.18.0.197"),
        "{next:#}"
    );
    assert_eq!(
        get("by-ip")["port"]["matched_by"],
        "the OVS firewall's flows for the address"
    );

    // Each fault: its own check, nothing else failing (dependent checks that cannot be judged
    // past it are unknown and point at it).
    let cases = [
        ("dead-port", vec![row("brint.tag", "", "fail")]),
        ("br-tun-flow", vec![row("flow.egress", "", "fail")]),
        (
            "vni-flow",
            vec![
                row("brint.vni", "", "fail"),
                row("flow.egress", "", "unknown"),
            ],
        ),
        ("br-int-flow", vec![row("flow.egress", "", "fail")]),
        (
            "sg-drop",
            vec![row("sg.ovs", "", "fail"), row("flow.egress", "", "unknown")],
        ),
        ("sg-bypassed", vec![row("sg.ovs", "", "warn")]),
        ("tap-mtu", vec![row("vif.mtu", "", "fail")]),
        (
            "underlay-mtu",
            vec![
                row("tunnel.mtu", "vxlan-c633640b", "fail"),
                row("tunnel.mtu", "vxlan-c633640c", "fail"),
            ],
        ),
        (
            "tunnel-removed",
            vec![row("tunnel.port", "ofport 2", "fail")],
        ),
        ("vswitchd-silent", vec![row("flow.egress", "", "unknown")]),
        ("hybrid-chain", vec![row("vif.chain", "", "fail")]),
        ("hybrid-sg", vec![row("sg.chains", "", "fail")]),
    ];
    for (n, want) in cases {
        let d = get(n);
        assert_eq!(not_ok(d), want, "{n}: {d:#}");
        let code = if want.iter().any(|w| w.2 == "fail") {
            2
        } else if want.iter().any(|w| w.2 == "unknown") {
            3
        } else {
            1
        };
        assert_eq!(d["exit_code"], code, "{n}");
        for c in d["checks"].as_array().expect("checks") {
            if c["status"] != "ok" {
                assert!(c["fix"].is_string(), "{n}: {c:#} has no fix");
            }
        }
    }
    // The hybrid plug (tap → qbr → qvb/qvo, the iptables firewall on qbr): healthy by port and
    // by tap, its chain and its iptables security group judged.
    for n in ["hybrid", "hybrid-by-tap"] {
        let d = get(n);
        assert_eq!(d["exit_code"], 0, "{n}: {:?}", not_ok(d));
        assert_eq!(d["port"]["plug"], "hybrid", "{n}");
        assert_eq!(d["port"]["ovs_interface"], "qvo5a1e2b3c-4d", "{n}");
        for id in [
            "vif.chain",
            "sg.chains",
            "sg.drops",
            "flow.egress",
            "flow.ingress",
        ] {
            assert!(
                d["checks"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x["id"] == id)),
                "{n}: no {id}"
            );
        }
    }
    // The SG drop names table 93 of br-int; the dead port needs no trace to be found.
    let sg = check(get("sg-drop"), "sg.ovs");
    assert!(
        sg["summary"].as_str().unwrap_or("").contains("table 93"),
        "{sg:#}"
    );
    // ovs-vswitchd SIGSTOPped: unknown within the timeout (2 s) and a little.
    let ms = get("vswitchd-silent-ms")["ms"].as_u64().expect("ms");
    assert!(ms < 4000, "a silent ovs-vswitchd took {ms} ms");
}
