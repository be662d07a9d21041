//! `vmpath routers` against two real keepalived gateways for one router (tests/gateway-pair.sh,
//! in a private network and mount namespace): healthy (no false alarm, exactly one primary with
//! --peer), split-brain with VRRP cut both ways (the ARP probe finds the other holder; --peer
//! sees two primaries), keepalived SIGKILLed on the primary (stale VIP and state file).
//! Skipped outside CI when not root; fails in CI (CI=true) when it cannot run.

use std::process::Command;

use serde_json::Value;

mod private;

fn status<'a>(doc: &'a Value, id: &str) -> &'a str {
    doc["routers"][0]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["id"] == id))
        .and_then(|x| x["status"].as_str())
        .unwrap_or_else(|| panic!("no {id} in {doc:#}"))
}

#[test]
fn ha_gateway_pair_states_and_faults() {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !nix::unistd::geteuid().is_root()
        || Command::new("keepalived")
            .arg("--version")
            .output()
            .is_err()
    {
        assert!(!in_ci, "the gateway test needs root and keepalived in CI");
        eprintln!("SKIPPED (not in CI): needs root and keepalived");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway-pair.sh");
    let out = private::run(
        120,
        false,
        script,
        &[env!("CARGO_BIN_EXE_vmpath")],
        "VMPATH_OUTER_NETNS",
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gateway-pair.sh failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = private::sections(&text);
    let get = |prefix: &str| -> &Value {
        docs.iter()
            .find(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
    };

    // Healthy: every check ok on both gateways, exactly one primary, the backup hears it.
    for g in ["healthy-A", "healthy-B"] {
        let d = get(g);
        for c in d["routers"][0]["checks"].as_array().expect("checks") {
            assert_eq!(c["status"], "ok", "{g}: {c:#}");
        }
    }
    let views = |d: &Value| {
        d["routers"][0]["views"]["addresses"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let mut roles = vec![views(get("healthy-A")), views(get("healthy-B"))];
    roles.sort();
    assert_eq!(roles, ["backup", "primary"]);
    // keepalived's own report (its JSON dump) agrees with the addresses: MASTER on the primary.
    for g in ["healthy-A", "healthy-B"] {
        let d = get(g);
        let want = if views(d) == "primary" {
            "MASTER"
        } else {
            "BACKUP"
        };
        assert_eq!(d["routers"][0]["views"]["keepalived"], want, "{g}: {d:#}");
    }
    assert_eq!(status(get("healthy-B"), "router.peer"), "ok");

    // OVS: healthy, then a dead port (tag 4095) fails ovs.ports.
    let ovs = |d: &Value| -> String {
        d["host_checks"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["id"] == "ovs.ports"))
            .and_then(|x| x["status"].as_str())
            .unwrap_or("missing")
            .to_string()
    };
    assert_eq!(ovs(get("healthy-A")), "ok");
    assert_eq!(ovs(get("ovs-dead")), "fail", "{:#}", get("ovs-dead"));
    assert_eq!(get("ovs-dead")["verdict"], "fail");

    // MTU: the VXLAN device above its underlay − 50 and qr- above the overlay MTU both fail.
    let host_status = |d: &Value, id: &str| -> String {
        d["host_checks"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["id"] == id))
            .and_then(|x| x["status"].as_str())
            .unwrap_or("missing")
            .to_string()
    };
    assert_eq!(host_status(get("healthy-A"), "mtu.vxlan"), "ok");
    // No BGP speaker in this sandbox: a gateway that announces nothing (plain L3 HA). The node
    // row says "not used here" (ok), and no router gets BGP rows it cannot have.
    assert_eq!(host_status(get("healthy-A"), "bgp.daemon"), "ok");
    assert!(get("healthy-A")["host_checks"]
        .as_array()
        .is_some_and(|c| c
            .iter()
            .any(|x| x["id"] == "bgp.daemon"
                && x["summary"].as_str().unwrap_or("").contains("not used"))));
    assert!(get("healthy-A")["routers"][0]["checks"]
        .as_array()
        .is_some_and(|c| c.iter().all(|x| x["id"] != "bgp.export")));
    assert_eq!(status(get("healthy-A"), "router.mtu"), "ok");
    assert_eq!(
        host_status(get("mtu"), "mtu.vxlan"),
        "fail",
        "{:#}",
        get("mtu")
    );
    assert_eq!(status(get("mtu"), "router.mtu"), "fail");

    // Split-brain: both primary; the ARP probe finds the other holder; --peer sees two primaries.
    for g in ["split-A", "split-B"] {
        assert_eq!(views(get(g)), "primary", "{g}");
        assert_eq!(status(get(g), "router.dad"), "fail", "{g}");
        assert_eq!(get(g)["routers"][0]["views"]["keepalived"], "MASTER", "{g}");
    }
    assert_eq!(status(get("split-B"), "router.peer"), "fail");
    assert_eq!(get("split-B")["verdict"], "fail");

    // keepalived killed on the primary: stale VIP and state file there; the survivor is primary.
    let k = get("killed-");
    assert_eq!(status(k, "router.keepalived"), "fail");
    assert_eq!(status(k, "router.vrrp"), "fail");
    assert_eq!(k["routers"][0]["views"]["keepalived"], "dead");
    // The same without --ha-confs: found from Neutron's state monitor's --conf_dir.
    let z = get("zeroconf-");
    assert!(
        z["ha_confs"]
            .as_str()
            .is_some_and(|d| d.ends_with("/haA") || d.ends_with("/haB")),
        "{z:#}"
    );
    assert_eq!(z["routers"][0]["views"]["state_file"], "primary", "{z:#}");
    assert_eq!(status(z, "router.vrrp"), "fail");
    assert_eq!(z["verdict"], "fail");
    // The wire: a backup that hears no primary, and a primary that hears another router
    // advertise its VRID, both fail router.adverts.
    let summary = |d: &Value, id: &str| -> String {
        d["routers"][0]["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["id"] == id))
            .and_then(|x| x["summary"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let deaf = get("deaf-A");
    assert_eq!(views(deaf), "backup", "{deaf:#}");
    assert_eq!(status(deaf, "router.adverts"), "fail", "{deaf:#}");
    assert!(
        summary(deaf, "router.adverts").contains("no primary"),
        "{deaf:#}"
    );
    let heard = get("heard-B");
    assert_eq!(views(heard), "primary", "{heard:#}");
    assert_eq!(status(heard, "router.adverts"), "fail", "{heard:#}");
    assert!(
        summary(heard, "router.adverts").contains("169.254.192.1"),
        "{heard:#}"
    );
    let s = get("survivor-");
    assert_eq!(views(s), "primary");
    assert_eq!(status(s, "router.keepalived"), "ok");
}
