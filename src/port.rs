//! Which port the target names (identity), and what its host state should be (desired state).
//!
//! Desired state is a separate, swappable source ([`DesiredSource`]): today the host's own
//! records (dnsmasq's host entries and options, the gateway addresses on the host's taps, flags);
//! later the Neutron API. Every desired value carries where it came from.

use std::net::IpAddr;

use serde::Serialize;

use crate::collect::dnsmasq::{Dnsmasq, HostEntry};
use crate::collect::netlink::{host_len, is_link_local, HostNet};
use crate::target::{Target, PORT_PREFIX_LEN};

/// A value with its provenance ("dnsmasq option:mtu (pid 812)", "--mtu flag").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: impl Into<String>) -> Self {
        Sourced {
            value,
            source: source.into(),
        }
    }
}

/// The port the walk is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub tap: String,
    /// Full port UUID when a record names it, else the 11-character prefix from the tap name.
    pub port_id: String,
    /// How the target was matched to this port.
    pub matched_by: String,
    /// The address the user named, when the target was an address: always checked, even when
    /// no record of the port lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ip: Option<IpAddr>,
}

impl Identity {
    /// The 11-character port-id prefix Nova puts in the tap name; `None` for a tap that is not
    /// Nova-named (then no record can be matched to it by name).
    pub fn port_prefix(&self) -> Option<&str> {
        let p = self.port_id.get(..PORT_PREFIX_LEN)?;
        crate::target::is_port_prefix(p).then_some(p)
    }

    /// Does a record's port UUID belong to this port?
    pub fn owns(&self, record_port_id: &str) -> bool {
        self.port_prefix()
            .is_some_and(|p| record_port_id.starts_with(p))
    }
}

/// A gateway address as it should be on the tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gateway {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// What the port's host state should be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Desired {
    pub mac: Option<Sourced<String>>,
    pub ips: Vec<Sourced<IpAddr>>,
    pub mtu: Option<Sourced<u32>>,
    pub gateways: Vec<Sourced<Gateway>>,
}

impl Desired {
    pub fn ip_list(&self) -> Vec<IpAddr> {
        self.ips.iter().map(|s| s.value).collect()
    }
    pub fn gateway_for(&self, v6: bool) -> Option<&Sourced<Gateway>> {
        self.gateways.iter().find(|g| g.value.addr.is_ipv6() == v6)
    }
}

/// Flags and config-file values that override what the host's records say.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub mtu: Option<u32>,
    pub gateways: Vec<(IpAddr, u8)>,
    pub mac: Option<String>,
    /// The port's addresses, when the host's records lost or contradict them (`--ip`): they
    /// replace the addresses from DHCP entries and host routes.
    pub ips: Vec<IpAddr>,
}

/// A source of desired state for a port.
pub trait DesiredSource {
    fn desired(&self, id: &Identity, host: &HostNet) -> Desired;
    /// Human name of the source, for the report.
    fn name(&self) -> String;
}

/// Desired state from this host's own records.
pub struct HostRecords<'a> {
    pub dnsmasq: &'a [Dnsmasq],
    pub overrides: &'a Overrides,
}

fn is_tap_name(n: &str) -> bool {
    n.starts_with("tap")
}

/// The VM MAC Nova implies from a tap MAC: Nova gives the tap `fe` + the VM MAC's last 5 octets.
/// Returns the 5-octet suffix to compare with.
pub fn mac_suffix(mac: &str) -> &str {
    mac.get(3..).unwrap_or(mac)
}

impl HostRecords<'_> {
    fn entries_for_port(&self, id: &Identity) -> Vec<(&Dnsmasq, &HostEntry)> {
        let mut out = Vec::new();
        for d in self.dnsmasq {
            for h in &d.hosts {
                if h.port_id().is_some_and(|p| id.owns(&p)) {
                    out.push((d, h));
                }
            }
        }
        out
    }
}

impl DesiredSource for HostRecords<'_> {
    fn name(&self) -> String {
        "host records (dnsmasq host entries and options, tap gateway addresses, flags)".into()
    }

    fn desired(&self, id: &Identity, host: &HostNet) -> Desired {
        let mut d = Desired::default();
        let entries = self.entries_for_port(id);
        // Addresses
        for ip in &self.overrides.ips {
            push_ip(&mut d.ips, *ip, "--ip flag");
        }
        for (_, h) in entries.iter().filter(|_| self.overrides.ips.is_empty()) {
            if let Some(v4) = h.ipv4 {
                push_ip(
                    &mut d.ips,
                    IpAddr::V4(v4),
                    format!("DHCP host entry {}", h.source),
                );
            }
            if let Some(v6) = h.ipv6 {
                push_ip(&mut d.ips, v6, format!("DHCP host entry {}", h.source));
            }
        }
        if let Some(ip) = id.target_ip {
            push_ip(&mut d.ips, ip, "the target address");
        }
        if let Some(tap) = host.link(&id.tap).filter(|_| self.overrides.ips.is_empty()) {
            // Host routes through the tap name further addresses (IPv6, allowed address pairs)
            // — but only when no record claims that address for another port.
            for r in host.host_routes_via(tap.index) {
                let claimed_elsewhere = self.dnsmasq.iter().flat_map(|d| &d.hosts).any(|h| {
                    (h.ipv4.map(IpAddr::V4) == Some(r.dst) || h.ipv6 == Some(r.dst))
                        && !h.port_id().is_some_and(|p| id.owns(&p))
                });
                if !claimed_elsewhere {
                    push_ip(&mut d.ips, r.dst, format!("host route via {}", id.tap));
                }
            }
        }
        // MAC: the flag; else the DHCP record when it agrees with the tap (Nova gives the tap
        // fe: + the VM MAC's last 5 octets); else the MAC the VM answers from. A record that
        // contradicts the tap is the thing that is wrong, not the VM (dhcp.host says so).
        let tap_suffix = host
            .link(&id.tap)
            .and_then(|l| l.mac.as_deref())
            .filter(|m| m.starts_with("fe:"))
            .map(|m| mac_suffix(m).to_string());
        let agrees = |m: &str| tap_suffix.as_deref().is_none_or(|s| mac_suffix(m) == s);
        let dhcp_mac = entries
            .iter()
            .find(|(_, h)| !h.macs.is_empty())
            .map(|(_, h)| (h.macs[0].clone(), format!("DHCP host entry {}", h.source)));
        let neigh_mac = vm_neighbour_mac(host, &id.tap, &d.ip_list())
            .map(|m| (m, format!("neighbour entry on {}", id.tap)));
        d.mac = if let Some(m) = &self.overrides.mac {
            Some(Sourced::new(m.clone(), "--mac flag"))
        } else {
            let pick = match (&dhcp_mac, &neigh_mac) {
                (Some(dm), _) if agrees(&dm.0) => Some(dm.clone()),
                (Some(dm), Some(nm)) if agrees(&nm.0) => Some((
                    nm.0.clone(),
                    format!(
                        "{} (the DHCP record's {} disagrees with the tap)",
                        nm.1, dm.0
                    ),
                )),
                (Some(dm), _) => Some(dm.clone()),
                (None, nm) => nm.clone(),
            };
            pick.map(|(v, src)| Sourced::new(v, src))
        };
        // MTU
        if let Some(m) = self.overrides.mtu {
            d.mtu = Some(Sourced::new(m, "--mtu flag"));
        } else {
            'mtu: for ip in d.ip_list() {
                for dm in self.dnsmasq {
                    if let Some((mtu, opt)) = dm.mtu_for(ip) {
                        let kind = if opt.forced {
                            "dhcp-option-force"
                        } else {
                            "dhcp-option"
                        };
                        d.mtu = Some(Sourced::new(
                            mtu,
                            format!("{} {kind}={}", dm.origin, opt.line),
                        ));
                        break 'mtu;
                    }
                }
            }
        }
        // Gateways
        for (addr, plen) in &self.overrides.gateways {
            d.gateways.push(Sourced::new(
                Gateway {
                    addr: *addr,
                    prefix_len: *plen,
                },
                "--gateway flag",
            ));
        }
        for v6 in [false, true] {
            if d.gateway_for(v6).is_some() {
                continue;
            }
            let Some(vm_ip) = d.ip_list().into_iter().find(|i| i.is_ipv6() == v6) else {
                continue;
            };
            let router = self.dnsmasq.iter().find_map(|dm| {
                dm.router_for(vm_ip)
                    .map(|(gw, o)| (gw, format!("{} dhcp-option={}", dm.origin, o.line)))
            });
            // The prefix length and a cross-check come from the gateway addresses on the other
            // taps of this host whose subnet holds the VM address.
            let peers = gateway_on_other_taps(host, &id.tap, vm_ip);
            match (router, peers) {
                (Some((gw, src)), peers) => {
                    let plen = peers
                        .iter()
                        .find(|(a, _, _)| *a == gw)
                        .map(|p| p.1)
                        .unwrap_or(if v6 { 64 } else { 24 });
                    d.gateways.push(Sourced::new(
                        Gateway {
                            addr: gw,
                            prefix_len: plen,
                        },
                        src,
                    ));
                }
                (None, peers) => {
                    if let Some((gw, plen, tap)) = peers.first() {
                        d.gateways.push(Sourced::new(
                            Gateway {
                                addr: *gw,
                                prefix_len: *plen,
                            },
                            format!("gateway address on {tap} (same subnet)"),
                        ));
                    }
                }
            }
        }
        d
    }
}

/// A unicast MAC (not broadcast, not multicast).
pub fn is_unicast_mac(mac: &str) -> bool {
    u8::from_str_radix(mac.get(..2).unwrap_or("01"), 16).is_ok_and(|b| b & 1 == 0)
}

/// The MAC the VM answers from: a usable neighbour entry on the tap for one of its addresses.
pub fn vm_neighbour_mac(host: &HostNet, tap: &str, ips: &[IpAddr]) -> Option<String> {
    let l = host.link(tap)?;
    host.neighs
        .iter()
        .filter(|n| n.index == l.index && !n.proxy && ips.contains(&n.ip))
        .filter(|n| !matches!(n.state.as_str(), "failed" | "incomplete" | "noarp" | "none"))
        .find_map(|n| n.mac.clone().filter(|m| is_unicast_mac(m)))
}

fn push_ip(v: &mut Vec<Sourced<IpAddr>>, ip: IpAddr, src: impl Into<String>) {
    if !v.iter().any(|s| s.value == ip) {
        v.push(Sourced::new(ip, src));
    }
}

fn in_prefix(addr: IpAddr, net: IpAddr, plen: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if plen == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(plen.min(32)))
            };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(plen.min(128)))
            };
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// Gateway-like addresses (non-host prefix) on other taps whose subnet holds `vm_ip`.
fn gateway_on_other_taps(host: &HostNet, tap: &str, vm_ip: IpAddr) -> Vec<(IpAddr, u8, String)> {
    let mut out: Vec<(IpAddr, u8, String)> = Vec::new();
    for l in host
        .links
        .iter()
        .filter(|l| is_tap_name(&l.name) && l.name != tap)
    {
        for a in host.addrs_of(l.index) {
            let full = host_len(&a.addr);
            if is_link_local(&a.addr) {
                continue;
            }
            if a.prefix_len < full
                && in_prefix(vm_ip, a.addr, a.prefix_len)
                && !out.iter().any(|(x, _, _)| *x == a.addr)
            {
                out.push((a.addr, a.prefix_len, l.name.clone()));
            }
        }
    }
    out
}

/// Resolve a target to a port on this host, from the host's state and records. The error names
/// what was looked at.
pub fn resolve(target: &Target, host: &HostNet, dnsmasq: &[Dnsmasq]) -> Result<Identity, String> {
    let all_hosts = || dnsmasq.iter().flat_map(|d| d.hosts.iter());
    let tap_for_entry = |h: &HostEntry| {
        h.port_id()
            .map(|p| (format!("tap{}", &p[..PORT_PREFIX_LEN]), p))
    };
    let tap_of_index = |i: u32| {
        host.link_by_index(i)
            .map(|l| l.name.clone())
            .filter(|n| is_tap_name(n))
    };
    let full_id_for_tap = |tap: &str| -> Option<String> {
        // Only a Nova-named tap (tap + 11 characters of the UUID) names a port.
        let prefix = tap
            .strip_prefix("tap")
            .filter(|p| crate::target::is_port_prefix(p))?;
        all_hosts().find_map(|h| h.port_id().filter(|p| p.starts_with(prefix)))
    };
    let target_ip = match target {
        Target::Ip(ip) => Some(*ip),
        _ => None,
    };
    let ident = |tap: String, how: String| {
        let port_id = full_id_for_tap(&tap)
            .unwrap_or_else(|| tap.strip_prefix("tap").unwrap_or(&tap).to_string());
        Identity {
            tap,
            port_id,
            matched_by: how,
            target_ip,
        }
    };
    // Of several records, prefer one whose tap exists (a stale record of a deleted port can
    // still hand out the address).
    let pick = |cands: Vec<(String, String)>| -> Option<String> {
        cands
            .iter()
            .find(|(tap, _)| host.link(tap).is_some())
            .or(cands.first())
            .map(|(tap, _)| tap.clone())
    };
    match target {
        Target::Tap(t) => {
            let known = host.link(t).is_some() || full_id_for_tap(t).is_some();
            if !known {
                return Err(format!(
                    "no tap '{t}' on this host and no DHCP host entry for a port {}…: check the name, or run on the hypervisor that hosts the VM",
                    t.trim_start_matches("tap")
                ));
            }
            Ok(ident(t.clone(), "tap name".into()))
        }
        Target::PortId(_) | Target::PortPrefix(_) => {
            let tap = target.implied_tap().unwrap_or_default();
            let known = host.link(&tap).is_some() || full_id_for_tap(&tap).is_some();
            if !known {
                return Err(format!(
                    "port {target} is not on this host: no tap {tap} and no DHCP host entry for it"
                ));
            }
            let mut id = ident(tap, "port id".into());
            if let Target::PortId(full) = target {
                id.port_id = full.clone();
            }
            Ok(id)
        }
        Target::Ip(ip) => {
            // Records first (desired state names the owner), then the host route, then neighbours.
            if let Some(tap) = pick(
                all_hosts()
                    .filter(|h| h.ipv4.map(IpAddr::V4) == Some(*ip) || h.ipv6 == Some(*ip))
                    .filter_map(tap_for_entry)
                    .collect(),
            ) {
                return Ok(ident(tap, "DHCP host entry for the address".into()));
            }
            let host_len = host_len(ip);
            if let Some(tap) = host
                .main_routes()
                .filter(|r| r.dst == *ip && r.prefix_len == host_len)
                .flat_map(|r| r.oifs().collect::<Vec<_>>())
                .find_map(tap_of_index)
            {
                return Ok(ident(tap, "host route for the address".into()));
            }
            if let Some(tap) = host
                .neighs
                .iter()
                .filter(|n| n.ip == *ip && !n.proxy)
                .find_map(|n| tap_of_index(n.index))
            {
                return Ok(ident(tap, "neighbour entry for the address".into()));
            }
            Err(format!(
                "no port for {ip} on this host: no DHCP host entry, no /{host_len} route via a tap and no neighbour entry name it — is this the VM's hypervisor?"
            ))
        }
        Target::Mac(mac) => {
            if let Some(tap) = pick(
                all_hosts()
                    .filter(|h| h.macs.iter().any(|m| m == mac))
                    .filter_map(tap_for_entry)
                    .collect(),
            ) {
                return Ok(ident(tap, "DHCP host entry for the MAC".into()));
            }
            if let Some(tap) = host
                .neighs
                .iter()
                .filter(|n| n.mac.as_deref() == Some(mac.as_str()))
                .find_map(|n| tap_of_index(n.index))
            {
                return Ok(ident(tap, "neighbour entry with the MAC".into()));
            }
            // Nova gives the tap the VM's MAC with the first octet replaced by fe.
            if let Some(l) = host.links.iter().find(|l| {
                is_tap_name(&l.name)
                    && l.mac
                        .as_deref()
                        .is_some_and(|m| mac_suffix(m) == mac_suffix(mac))
            }) {
                return Ok(ident(
                    l.name.clone(),
                    "tap MAC (Nova's fe:… convention)".into(),
                ));
            }
            Err(format!(
                "no port with MAC {mac} on this host: no DHCP host entry, neighbour entry or tap MAC matches"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            assert!(e.contains(t.trim_start_matches("tap")), "{e}");
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
}
