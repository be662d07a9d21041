//! Root-free tests on output captured from the built-in lab (tests/fixtures/lab-captures/, see
//! its README.md): zero-configuration discovery from the real daemons' command lines, and the
//! security-group checks on the lab's real rulesets (iptables-nft on hv1, native nft on hv2).

use std::net::IpAddr;

use vmpath::check::sg::{self, SgPort};
use vmpath::collect::bgp::{self, Endpoint, SpeakerKind};
use vmpath::collect::dnsmasq;
use vmpath::collect::firewall::{Family, FirewallFacts};
use vmpath::collect::procs::{parse_cmdline, ProcTable, Process};
use vmpath::model::Status;

fn process(pid: u32, raw: &[u8]) -> Process {
    let args = parse_cmdline(raw);
    let name = args[0].rsplit('/').next().unwrap_or("").to_string();
    Process {
        pid,
        name,
        args,
        cred: None,
    }
}

fn table() -> ProcTable {
    ProcTable {
        procs: vec![
            process(
                10,
                include_bytes!("fixtures/lab-captures/proc-cmdline-bird-hv1.bin"),
            ),
            process(
                11,
                include_bytes!("fixtures/lab-captures/proc-cmdline-bgpd-hv2.bin"),
            ),
            process(
                12,
                include_bytes!("fixtures/lab-captures/proc-cmdline-zebra-hv2.bin"),
            ),
            process(
                13,
                include_bytes!("fixtures/lab-captures/proc-cmdline-dnsmasq-hv1.bin"),
            ),
            process(
                14,
                include_bytes!("fixtures/lab-captures/proc-cmdline-metadata-hv1.bin"),
            ),
        ],
    }
}

#[test]
fn routing_daemons_are_found_from_their_real_command_lines() {
    let sp = bgp::discover(
        &table(),
        &bgp::Overrides::default(),
        &vmpath::collect::trust::Policy::default(),
    );
    let bird = sp
        .iter()
        .find(|s| s.kind == SpeakerKind::Bird)
        .expect("bird found");
    assert_eq!(
        bird.endpoint,
        Endpoint::BirdSocket("/run/bird/hv1.ctl".into())
    );
    assert_eq!(bird.pid, Some(10));
    let frr = sp
        .iter()
        .find(|s| s.kind == SpeakerKind::Frr)
        .expect("frr found");
    match &frr.endpoint {
        Endpoint::FrrVty { bgpd, zebra, .. } => {
            assert_eq!(bgpd, &std::path::PathBuf::from("/run/frr/hv2/bgpd.vty"));
            assert_eq!(zebra, &std::path::PathBuf::from("/run/frr/hv2/zebra.vty"));
        }
        e => panic!("unexpected endpoint {e:?}"),
    }
    // a flag wins over discovery
    let ov = bgp::Overrides {
        bird_socket: Some("/run/other.ctl".into()),
        frr_dir: None,
    };
    let sp = bgp::discover(&table(), &ov, &vmpath::collect::trust::Policy::default());
    assert!(sp
        .iter()
        .any(|s| s.endpoint == Endpoint::BirdSocket("/run/other.ctl".into())));
}

#[test]
fn dnsmasq_settings_come_from_its_real_command_line() {
    let t = table();
    let p = t
        .procs
        .iter()
        .find(|p| p.name == "dnsmasq")
        .expect("dnsmasq");
    let d = dnsmasq::from_process(p, &|_| Err(std::io::ErrorKind::NotFound.into()), &|_| {
        Ok(vec![])
    });
    assert_eq!(
        d.hostsdirs,
        vec![std::path::PathBuf::from("/tmp/vmlab/hv1/dhcp-hosts")]
    );
    assert!(d.serves_interface("tap3f1c2a4e-5b"));
    let ip: IpAddr = "198.51.100.11".parse().expect("ip");
    assert_eq!(d.mtu_for(ip).map(|m| m.0), Some(1450));
    assert_eq!(
        d.router_for(ip).map(|r| r.0.to_string()),
        Some("198.51.100.1".into())
    );
}

fn hv1(save4: &str) -> FirewallFacts {
    let mut f = FirewallFacts::from_iptables_save(Family::Ip, save4);
    let v6 = FirewallFacts::from_iptables_save(
        Family::Ip6,
        include_str!("fixtures/lab-captures/ip6tables-save-hv1.txt"),
    );
    f.tables.extend(v6.tables);
    f.sources.extend(v6.sources);
    f
}

fn hv2(json: &str) -> FirewallFacts {
    FirewallFacts::from_nft_json(json)
}

fn vm1() -> SgPort {
    SgPort::new(
        "tap3f1c2a4e-5b",
        "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51",
        &[
            "198.51.100.11".parse().expect("ip"),
            "2001:db8:100::11".parse().expect("ip"),
        ],
        Some("fa:16:3e:00:00:01"),
    )
}

fn vm3() -> SgPort {
    SgPort::new(
        "tapb4c5d6e7-2f",
        "b4c5d6e7-2f3a-4b5c-8d9e-1f2a3b4c5d63",
        &[
            "198.51.100.21".parse().expect("ip"),
            "2001:db8:100::21".parse().expect("ip"),
        ],
        Some("fa:16:3e:00:00:03"),
    )
}

fn status(cs: &[vmpath::model::Check], id: &str) -> Vec<Status> {
    cs.iter().filter(|c| c.id == id).map(|c| c.status).collect()
}

#[test]
fn lab_iptables_rules_healthy_explicit_drop_and_unhooked() {
    let flow = sg::parse_flow("tcp/22").expect("flow");
    let healthy = hv1(include_str!("fixtures/lab-captures/iptables-save-hv1.txt"));
    let cs = sg::checks(&healthy, &vm1(), Some(&flow));
    assert_eq!(status(&cs, "sg.chains"), vec![Status::Ok]);
    assert_eq!(status(&cs, "sg.drops"), vec![Status::Ok]);
    assert!(
        status(&cs, "sg.flow").iter().all(|s| *s == Status::Ok),
        "{cs:#?}"
    );

    let dropped = hv1(include_str!(
        "fixtures/lab-captures/iptables-save-hv1-sg-drop.txt"
    ));
    let cs = sg::checks(&dropped, &vm1(), Some(&flow));
    assert_eq!(status(&cs, "sg.drops"), vec![Status::Warn], "{cs:#?}");
    assert!(status(&cs, "sg.flow").contains(&Status::Fail), "{cs:#?}");

    let missing = hv1(include_str!(
        "fixtures/lab-captures/iptables-save-hv1-sg-missing.txt"
    ));
    let cs = sg::checks(&missing, &vm1(), None);
    // The jumps to vm1's chains are gone (IPv4): its traffic is unfiltered, and still flows.
    assert_eq!(status(&cs, "sg.chains"), vec![Status::Warn], "{cs:#?}");
    let c = cs.iter().find(|c| c.id == "sg.chains").expect("sg.chains");
    assert!(
        c.summary.contains("IPv4 traffic is unfiltered")
            && c.evidence
                .iter()
                .any(|e| e.contains("nothing jumps to them")),
        "{c:#?}"
    );
}

#[test]
fn lab_nft_rules_healthy_and_explicit_drop() {
    let flow = sg::parse_flow("tcp/22").expect("flow");
    let healthy = hv2(include_str!("fixtures/lab-captures/nft-ruleset-hv2.json"));
    let cs = sg::checks(&healthy, &vm3(), Some(&flow));
    assert_eq!(status(&cs, "sg.chains"), vec![Status::Ok], "{cs:#?}");
    assert_eq!(status(&cs, "sg.drops"), vec![Status::Ok]);
    assert!(
        status(&cs, "sg.flow").iter().all(|s| *s == Status::Ok),
        "{cs:#?}"
    );
    let http = sg::parse_flow("tcp/80").expect("flow");
    let cs = sg::checks(&healthy, &vm3(), Some(&http));
    assert!(
        status(&cs, "sg.flow").iter().all(|s| *s == Status::Fail),
        "{cs:#?}"
    );

    let dropped = hv2(include_str!(
        "fixtures/lab-captures/nft-ruleset-hv2-sg-drop-hv2.json"
    ));
    let cs = sg::checks(&dropped, &vm3(), Some(&flow));
    assert_eq!(status(&cs, "sg.drops"), vec![Status::Warn], "{cs:#?}");
    assert!(
        status(&cs, "sg.flow").iter().all(|s| *s == Status::Fail),
        "{cs:#?}"
    );
}
