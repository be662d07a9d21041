use super::target::Target;
use super::*;
use crate::collect::dnsmasq::Dnsmasq;
use crate::collect::dnsmasq::{parse_host_entry, parse_option, parse_range};
use crate::collect::netlink::{Addr, Link, NextHop, Route};

const ID1: &str = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51";
const ID2: &str = "7a2b3c4d-1e2f-4a5b-9c8d-7e6f5a4b3c52";

fn link(index: u32, name: &str, mac: &str) -> Link {
    Link {
        index,
        name: name.into(),
        admin_up: true,
        oper: "up".into(),
        mtu: 1450,
        mac: Some(mac.into()),
        kind: Some("veth".into()),
        lower: None,
        remote: None,
        local: None,
        master: None,
    }
}

fn host() -> HostNet {
    HostNet {
        links: vec![
            link(5, "tap3f1c2a4e-5b", "fe:16:3e:00:00:01"),
            link(6, "tap7a2b3c4d-1e", "fe:16:3e:00:00:02"),
        ],
        addrs: vec![
            Addr {
                index: 5,
                addr: "198.51.100.1".parse().expect("ip"),
                prefix_len: 24,
                noprefixroute: true,
                scope: 0,
            },
            Addr {
                index: 6,
                addr: "198.51.100.1".parse().expect("ip"),
                prefix_len: 24,
                noprefixroute: true,
                scope: 0,
            },
        ],
        routes: vec![
            Route {
                dst: "198.51.100.11".parse().expect("ip"),
                prefix_len: 32,
                table: 254,
                kind: "unicast".into(),
                protocol: "static".into(),
                scope: "link".into(),
                nexthops: vec![NextHop {
                    oif: Some(5),
                    gateway: None,
                }],
            },
            Route {
                dst: "2001:db8:100::11".parse().expect("ip"),
                prefix_len: 128,
                table: 254,
                kind: "unicast".into(),
                protocol: "static".into(),
                scope: "universe".into(),
                nexthops: vec![NextHop {
                    oif: Some(5),
                    gateway: None,
                }],
            },
        ],
        neighs: vec![],
    }
}

fn dns() -> Vec<Dnsmasq> {
    let mut d = Dnsmasq {
        origin: "dnsmasq pid 9".into(),
        ..Default::default()
    };
    d.hosts.extend(parse_host_entry(
        "fa:16:3e:00:00:01,h1,198.51.100.11",
        &format!("/h/{ID1}"),
    ));
    d.hosts.extend(parse_host_entry(
        &format!("fa:16:3e:00:00:02,h2,198.51.100.12,set:port-{ID2}"),
        "/h/x",
    ));
    d.ranges
        .extend(parse_range("set:net1,198.51.100.0,static,255.255.255.0"));
    d.options
        .extend(parse_option("tag:net1,option:router,198.51.100.1", false));
    d.options.extend(parse_option("option:mtu,1450", true));
    vec![d]
}

#[test]
fn resolves_every_target_form_to_the_same_port() {
    let (h, d) = (host(), dns());
    for t in [
        "198.51.100.11",
        "fa:16:3e:00:00:01",
        ID1,
        "3f1c2a4e-5b",
        "tap3f1c2a4e-5b",
        "2001:db8:100::11",
    ] {
        let id = resolve(&Target::parse(t).expect("target"), &h, &d).expect(t);
        assert_eq!(id.tap, "tap3f1c2a4e-5b", "{t}");
        assert_eq!(id.port_id, ID1, "{t}");
    }
}

#[test]
fn unknown_targets_are_errors_naming_the_target() {
    let (h, d) = (host(), dns());
    for t in ["198.51.100.99", "fa:16:3e:00:00:77", "tapdeadbeef-00"] {
        let e = resolve(&Target::parse(t).expect("target"), &h, &d).expect_err(t);
        assert!(e.message().contains(t.trim_start_matches("tap")), "{e}");
    }
}

#[test]
fn the_target_address_is_always_checked_and_short_taps_match_no_record() {
    let (mut h, d) = (host(), dns());
    // 198.51.100.99 is only known from a neighbour entry on tapB
    h.neighs.push(crate::collect::netlink::Neigh {
        index: 6,
        ip: "198.51.100.99".parse().expect("ip"),
        mac: Some("fa:16:3e:00:00:09".into()),
        state: "reachable".into(),
        proxy: false,
    });
    let id = resolve(&Target::parse("198.51.100.99").expect("t"), &h, &d).expect("id");
    assert_eq!(id.tap, "tap7a2b3c4d-1e");
    let ov = Overrides::default();
    let want = HostRecords {
        dnsmasq: &d,
        overrides: &ov,
    }
    .desired(&id, &h);
    assert!(want
        .ip_list()
        .contains(&"198.51.100.99".parse().expect("ip")));
    // a non-Nova tap name is not a port prefix: no record is attributed to it
    h.links.push(Link {
        index: 9,
        ..link(9, "tap3f", "fe:16:3e:00:00:10")
    });
    let id = resolve(&Target::parse("tap3f").expect("t"), &h, &d).expect("id");
    assert_eq!(id.port_prefix(), None);
    assert!(!id.owns(ID1));
}

#[test]
fn a_stale_record_of_a_deleted_port_loses_to_the_live_one() {
    let (h, mut d) = (host(), dns());
    // a record of a deleted port (no tap) sorted first, for the same address
    d[0].hosts.insert(
        0,
        parse_host_entry(
            "fa:16:3e:00:00:77,old,198.51.100.11",
            "/h/00000000-1111-4222-8333-444444444444",
        )
        .expect("entry"),
    );
    let id = resolve(&Target::parse("198.51.100.11").expect("t"), &h, &d).expect("id");
    assert_eq!(id.tap, "tap3f1c2a4e-5b");
}

#[test]
fn desired_state_from_records_with_provenance() {
    let (h, d) = (host(), dns());
    let ov = Overrides::default();
    let src = HostRecords {
        dnsmasq: &d,
        overrides: &ov,
    };
    let id = resolve(&Target::parse(ID1).expect("t"), &h, &d).expect("id");
    let want = src.desired(&id, &h);
    assert_eq!(
        want.mac.as_ref().map(|m| m.value.as_str()),
        Some("fa:16:3e:00:00:01")
    );
    assert_eq!(want.mtu.as_ref().map(|m| m.value), Some(1450));
    assert!(want.mtu.as_ref().is_some_and(|m| m.source.contains("mtu")));
    assert_eq!(want.ip_list().len(), 2, "{:?}", want.ips);
    let gw = want.gateway_for(false).expect("gw4");
    assert_eq!(gw.value.addr, "198.51.100.1".parse::<IpAddr>().expect("ip"));
    assert_eq!(gw.value.prefix_len, 24);
    // flags win
    let ov = Overrides {
        mtu: Some(9000),
        ..Default::default()
    };
    let src = HostRecords {
        dnsmasq: &d,
        overrides: &ov,
    };
    assert_eq!(
        src.desired(&id, &h).mtu.map(|m| (m.value, m.source)),
        Some((9000, "--mtu flag".into()))
    );
}
