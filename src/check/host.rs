//! Checks on the hypervisor's own plumbing for one port: the tap, its addresses, proxy ARP/NDP,
//! host routes and the neighbour entry. Pure: facts in, findings out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::collect::netlink::{host_len, is_link_local, HostNet, Link, Route};
use crate::collect::sysctl::TapSysctls;
use crate::model::Check;
use crate::port::{mac_suffix, Desired, Identity};

/// Everything the host checks look at.
pub struct HostFacts<'a> {
    pub net: &'a HostNet,
    pub sysctl: TapSysctls,
    /// The kernel's answer to `ip route get <vm-ip>` for each VM address (`Ok(None)`: no
    /// route; `Err`: the lookup itself failed).
    pub lookups: BTreeMap<IpAddr, crate::error::Result<Option<Route>>>,
}

fn fmt_route(net: &HostNet, r: &Route) -> String {
    let mut s = format!("{}/{}", r.dst, r.prefix_len);
    if r.kind != "unicast" {
        s = format!("{} {s}", r.kind);
    }
    for nh in &r.nexthops {
        if let Some(g) = nh.gateway {
            s.push_str(&format!(" via {g}"));
        }
        if let Some(o) = nh.oif {
            s.push_str(&format!(" dev {}", net.ifname(o)));
        }
    }
    s.push_str(&format!(" proto {} scope {}", r.protocol, r.scope));
    if r.table != crate::collect::netlink::TABLE_MAIN {
        s.push_str(&format!(" table {}", r.table));
    }
    s
}

/// Checks of the tap device itself: `tap.exists`, `tap.state`, `tap.mtu`, `tap.mac`.
pub fn tap_checks(id: &Identity, want: &Desired, f: &HostFacts) -> Vec<Check> {
    let tap = &id.tap;
    let Some(l) = f.net.link(tap) else {
        let others = f
            .net
            .links
            .iter()
            .filter(|l| l.name.starts_with("tap"))
            .count();
        return vec![Check::fail("tap.exists", format!("{tap} does not exist"))
            .evidence(format!("no link named {tap}; {others} other tap(s) on this host"))
            .fix(format!(
                "the VM's NIC is not plugged: check the instance (openstack server show, virsh domiflist) and hard-reboot or re-plug port {}",
                id.port_id
            ))];
    };
    let mut out = vec![
        Check::ok("tap.exists", format!("{tap} exists")).evidence(format!(
            "index {}, kind {}",
            l.index,
            l.kind.as_deref().unwrap_or("?")
        )),
    ];
    out.push(state_check(l));
    out.push(mtu_check(l, want));
    out.push(mac_check(l, want));
    out
}

fn state_check(l: &Link) -> Check {
    let ev = format!(
        "admin {}, oper {}",
        if l.admin_up { "up" } else { "down" },
        l.oper
    );
    if !l.admin_up {
        Check::fail("tap.state", format!("{} is administratively down", l.name))
            .evidence(ev)
            .fix(format!("ip link set {} up", l.name))
    } else if l.is_oper_up() {
        Check::ok("tap.state", format!("{} is up", l.name)).evidence(ev)
    } else {
        Check::fail(
            "tap.state",
            format!("{} is up but has no carrier ({})", l.name, l.oper),
        )
        .evidence(ev)
        .fix("the VM side is not attached or not running: check the instance (virsh domiflist / nova show)")
    }
}

fn mtu_check(l: &Link, want: &Desired) -> Check {
    match &want.mtu {
        Some(m) if m.value == l.mtu => Check::ok("tap.mtu", format!("MTU {} as expected", l.mtu))
            .evidence(format!("expected {} from {}", m.value, m.source)),
        Some(m) => Check::fail(
            "tap.mtu",
            format!("MTU {} but the network MTU is {}", l.mtu, m.value),
        )
        .evidence(format!("{} mtu {}", l.name, l.mtu))
        .evidence(format!("expected {} from {}", m.value, m.source))
        .fix(format!("ip link set {} mtu {}", l.name, m.value)),
        None => Check::unknown(
            "tap.mtu",
            format!("MTU {}, but no expected MTU on record", l.mtu),
        )
        .evidence("no MTU option in dnsmasq's settings and no --mtu given")
        .fix("pass --mtu <network MTU> (or set mtu in /etc/vmpath/config.toml)"),
    }
}

fn mac_check(l: &Link, want: &Desired) -> Check {
    let Some(mac) = l.mac.as_deref().filter(|m| *m != "00:00:00:00:00:00") else {
        return Check::fail("tap.mac", format!("{} has no MAC address", l.name)).fix(format!(
            "ip link set {} address fe:16:3e:xx:xx:xx (fe + the port MAC's last 5 octets)",
            l.name
        ));
    };
    let mut c = Check::ok("tap.mac", format!("MAC {mac}"));
    if let Some(vm) = &want.mac {
        c = c.evidence(format!("port MAC {} from {}", vm.value, vm.source));
        if mac.eq_ignore_ascii_case(&vm.value) {
            return Check::warn("tap.mac", format!("tap MAC {mac} equals the VM's MAC"))
                .evidence(format!("port MAC {} from {}", vm.value, vm.source))
                .fix("Nova gives the tap fe:+ the VM MAC's last 5 octets; a tap with the VM's own MAC confuses ARP: replug the port");
        }
        if mac.starts_with("fe:") && mac_suffix(mac) != mac_suffix(&vm.value) {
            return Check::warn(
                "tap.mac",
                format!("tap MAC {mac} does not belong to port MAC {}", vm.value),
            )
            .evidence(format!("port MAC {} from {}", vm.value, vm.source))
            .fix("the tap was created for another port (VM rebuilt?): replug the port or correct the DHCP record");
        }
    }
    c
}

/// `tap.gateway`: the subnet gateway on the tap with noprefixroute (or as a host prefix), one row
/// per address family in use. `route.connected` is separate (see [`route_checks`]).
pub fn gateway_checks(id: &Identity, want: &Desired, f: &HostFacts) -> Vec<Check> {
    let Some(l) = f.net.link(&id.tap) else {
        return vec![];
    };
    let addrs: Vec<_> = f.net.addrs_of(l.index).collect();
    let fmt_addr = |a: &crate::collect::netlink::Addr| {
        format!(
            "{}/{}{}",
            a.addr,
            a.prefix_len,
            if a.noprefixroute {
                " noprefixroute"
            } else {
                ""
            }
        )
    };
    let mut out = Vec::new();
    let families: Vec<bool> = {
        let mut v: Vec<bool> = want.ips.iter().map(|i| i.value.is_ipv6()).collect();
        v.sort();
        v.dedup();
        if v.is_empty() {
            vec![false]
        } else {
            v
        }
    };
    for v6 in families {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let full = if v6 { 128 } else { 32 };
        let on_tap: Vec<_> = addrs
            .iter()
            .filter(|a| a.addr.is_ipv6() == v6)
            .filter(|a| !is_link_local(&a.addr))
            .collect();
        let ev: Vec<String> = if on_tap.is_empty() {
            vec![format!("no {fam} address on {}", id.tap)]
        } else {
            on_tap
                .iter()
                .map(|a| format!("{} {}", id.tap, fmt_addr(a)))
                .collect()
        };
        let mk = |c: Check| c.subject(fam);
        match want.gateway_for(v6) {
            Some(gw) => {
                let g = &gw.value;
                let found = on_tap.iter().find(|a| a.addr == g.addr);
                let src = format!("expected {}/{} from {}", g.addr, g.prefix_len, gw.source);
                let add = format!(
                    "ip addr add {}/{} dev {} noprefixroute",
                    g.addr, g.prefix_len, id.tap
                );
                out.push(mk(match found {
                    None => Check::fail(
                        "tap.gateway",
                        format!("gateway {} missing on {}", g.addr, id.tap),
                    )
                    .evidences(ev)
                    .evidence(src)
                    .fix(add),
                    Some(a) if a.noprefixroute || a.prefix_len == full => {
                        Check::ok("tap.gateway", format!("gateway {} present", fmt_addr(a)))
                            .evidences(ev)
                            .evidence(src)
                    }
                    Some(a) => Check::fail(
                        "tap.gateway",
                        format!("gateway {}/{} lacks noprefixroute", a.addr, a.prefix_len),
                    )
                    .evidences(ev)
                    .evidence(
                        "`ip addr replace` keeps an address's old flags: delete and re-add it",
                    )
                    .evidence(src)
                    .fix(format!(
                        "ip addr del {}/{} dev {} && {add}",
                        a.addr, a.prefix_len, id.tap
                    )),
                }));
            }
            None => {
                // No record of the gateway: judge by what is there.
                out.push(mk(match on_tap.first() {
                    None => Check::fail("tap.gateway", format!("no {fam} gateway address on {}", id.tap))
                        .evidences(ev)
                        .evidence("no gateway on record (dnsmasq router option, other taps, --gateway)")
                        .fix(format!("ip addr add <gateway>/<prefix> dev {} noprefixroute (or pass --gateway to check against)", id.tap)),
                    Some(a) if a.noprefixroute || a.prefix_len == full => Check::ok(
                        "tap.gateway",
                        format!("{} present (no gateway on record to compare)", fmt_addr(a)),
                    )
                    .evidences(ev),
                    Some(a) => Check::fail("tap.gateway", format!("{}/{} lacks noprefixroute", a.addr, a.prefix_len))
                        .evidences(ev)
                        .fix(format!("ip addr del {0}/{1} dev {2} && ip addr add {0}/{1} dev {2} noprefixroute", a.addr, a.prefix_len, id.tap)),
                }));
            }
        }
    }
    out
}

/// `tap.proxy_arp`, `tap.proxy_delay` and, for ports with IPv6, `tap.proxy_ndp`.
pub fn proxy_checks(id: &Identity, want: &Desired, f: &HostFacts) -> Vec<Check> {
    if f.net.link(&id.tap).is_none() {
        return vec![];
    }
    let tap = &id.tap;
    let s = &f.sysctl;
    let mut out = Vec::new();
    let has_v4 = want.ips.iter().any(|i| i.value.is_ipv4()) || want.ips.is_empty();
    let has_v6 = want.ips.iter().any(|i| i.value.is_ipv6());
    if has_v4 {
        out.push(match (s.proxy_arp, s.proxy_arp_all) {
            (None, _) => Check::unknown("tap.proxy_arp", "could not read proxy_arp")
                .evidence(format!(
                    "/proc/sys/net/ipv4/conf/{tap}/proxy_arp unreadable"
                ))
                .fix("run as root in the hypervisor's network namespace"),
            (Some(d), all) if d >= 1 || all.unwrap_or(0) >= 1 => {
                Check::ok("tap.proxy_arp", "proxy ARP on").evidence(format!(
                    "net.ipv4.conf.{tap}.proxy_arp = {d}, all = {}",
                    all.unwrap_or(0)
                ))
            }
            (Some(d), all) => Check::fail(
                "tap.proxy_arp",
                "proxy ARP off: the VM's ARP for its gateway goes unanswered",
            )
            .evidence(format!(
                "net.ipv4.conf.{tap}.proxy_arp = {d}, all = {}",
                all.unwrap_or(0)
            ))
            .fix(format!("sysctl -w net.ipv4.conf.{tap}.proxy_arp=1")),
        });
        out.push(match s.proxy_delay {
            None => Check::unknown("tap.proxy_delay", "could not read proxy_delay")
                .evidence(format!(
                    "/proc/sys/net/ipv4/neigh/{tap}/proxy_delay unreadable"
                ))
                .fix("run as root in the hypervisor's network namespace"),
            Some(0) => Check::ok("tap.proxy_delay", "proxy ARP answers at once")
                .evidence(format!("net.ipv4.neigh.{tap}.proxy_delay = 0")),
            Some(d) => Check::warn(
                "tap.proxy_delay",
                format!(
                    "proxy ARP replies delayed up to {:.2} s",
                    f64::from(d) / 100.0
                ),
            )
            .evidence(format!("net.ipv4.neigh.{tap}.proxy_delay = {d} (1/100 s)"))
            .fix(format!("sysctl -w net.ipv4.neigh.{tap}.proxy_delay=0")),
        });
    }
    if has_v6 {
        out.push(match (s.proxy_ndp, s.proxy_ndp_all) {
            (None, _) => Check::unknown("tap.proxy_ndp", "could not read proxy_ndp")
                .evidence(format!("/proc/sys/net/ipv6/conf/{tap}/proxy_ndp unreadable (IPv6 disabled?)"))
                .fix("enable IPv6 on the tap or run as root in the hypervisor's namespace"),
            (Some(d), all) if d >= 1 || all.unwrap_or(0) >= 1 => {
                let proxies = f
                    .net
                    .neighs
                    .iter()
                    .filter(|n| n.proxy && n.ip.is_ipv6() && f.net.link(tap).is_some_and(|l| l.index == n.index))
                    .count();
                Check::ok("tap.proxy_ndp", "proxy NDP on").evidence(format!(
                    "net.ipv6.conf.{tap}.proxy_ndp = {d}, all = {}; {proxies} proxy entries on {tap}",
                    all.unwrap_or(0)
                ))
            }
            (Some(d), all) => Check::fail("tap.proxy_ndp", "proxy NDP off: the VM's neighbour solicitations go unanswered")
                .evidence(format!("net.ipv6.conf.{tap}.proxy_ndp = {d}, all = {}", all.unwrap_or(0)))
                .fix(format!("sysctl -w net.ipv6.conf.{tap}.proxy_ndp=1")),
        });
    }
    out
}

/// `route.connected` (no subnet route through the tap), `route.host` and `route.lookup` per VM
/// address, and `route.foreign` for host routes on this tap that belong to nobody here.
pub fn route_checks(id: &Identity, want: &Desired, f: &HostFacts) -> Vec<Check> {
    let net = f.net;
    let tap = &id.tap;
    let tap_index = net.link(tap).map(|l| l.index);
    let mut out = Vec::new();

    // Connected subnet routes through the tap steal the subnet from the fabric.
    if let Some(ti) = tap_index {
        let connected: Vec<&Route> = net
            .main_routes()
            .filter(|r| r.prefix_len < host_len(&r.dst) && r.oifs().any(|o| o == ti))
            .filter(|r| r.kind == "unicast")
            .filter(|r| !is_link_local(&r.dst))
            .collect();
        if connected.is_empty() {
            out.push(Check::ok(
                "route.connected",
                format!("no subnet route through {tap}"),
            ));
        } else {
            let first = connected[0];
            out.push(
                Check::fail(
                    "route.connected",
                    format!(
                        "{}/{} is routed to {tap}: traffic for the whole subnet goes to this one VM",
                        first.dst, first.prefix_len
                    ),
                )
                .evidences(connected.iter().map(|r| fmt_route(net, r)))
                .fix(match f.net.addrs_of(ti).find(|a| {
                    !a.noprefixroute && a.prefix_len == first.prefix_len && a.addr.is_ipv4() == first.dst.is_ipv4()
                }) {
                    // The route comes from an address without noprefixroute: re-add it with it.
                    Some(a) => format!(
                        "ip addr del {0}/{1} dev {tap} && ip addr add {0}/{1} dev {tap} noprefixroute",
                        a.addr, a.prefix_len
                    ),
                    None => format!("ip route del {}/{} dev {tap}", first.dst, first.prefix_len),
                }),
            );
        }
    }

    for ip in want.ip_list() {
        let hl = host_len(&ip);
        let hosts: Vec<&Route> = net
            .main_routes()
            .filter(|r| r.dst == ip && r.prefix_len == hl)
            .collect();
        let subject = ip.to_string();
        let add = format!("ip route replace {ip}/{hl} dev {tap} scope link");
        let unicast = |r: &&&Route| r.kind == "unicast";
        let mine: Vec<&&Route> = hosts
            .iter()
            .filter(unicast)
            .filter(|r| tap_index.is_some_and(|ti| r.oifs().any(|o| o == ti)))
            .collect();
        let others: Vec<String> = hosts
            .iter()
            .filter(unicast)
            .flat_map(|r| r.oifs())
            .filter(|o| Some(*o) != tap_index)
            .map(|o| net.ifname(o))
            .collect();
        let special: Vec<&str> = hosts
            .iter()
            .filter(|r| r.kind != "unicast")
            .map(|r| r.kind.as_str())
            .collect();
        let ev: Vec<String> = if hosts.is_empty() {
            vec![format!("no {ip}/{hl} in the main table")]
        } else {
            hosts.iter().map(|r| fmt_route(net, r)).collect()
        };
        out.push(match (mine.is_empty(), others.is_empty()) {
            _ if !special.is_empty() => Check::fail(
                "route.host",
                format!(
                    "{ip}/{hl} is a {} route: traffic for the VM is discarded",
                    special[0]
                ),
            )
            .subject(subject.clone())
            .evidences(ev)
            .fix(add.clone()),
            (false, true) => Check::ok("route.host", format!("{ip}/{hl} dev {tap}"))
                .subject(subject.clone())
                .evidences(ev),
            (true, true) => Check::fail("route.host", format!("no /{hl} route for {ip}"))
                .subject(subject.clone())
                .evidences(ev)
                .fix(add.clone()),
            (true, false) => Check::fail(
                "route.host",
                format!(
                    "{ip}/{hl} points at {} instead of {tap} (stale after the address moved?)",
                    others.join(", ")
                ),
            )
            .subject(subject.clone())
            .evidences(ev)
            .fix(add.clone()),
            (false, false) => Check::fail(
                "route.host",
                format!("{ip}/{hl} is claimed by {tap} and by {}", others.join(", ")),
            )
            .subject(subject.clone())
            .evidences(ev)
            .fix(format!(
                "delete the stale route: ip route del {ip}/{hl} dev {}",
                others[0]
            )),
        });

        // What the kernel actually does with the address.
        let lk = f
            .lookups
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| Err(crate::error::Error::unknown("not looked up")));
        out.push(match lk {
            Err(e) => Check::unknown("route.lookup", format!("the kernel's route lookup for {ip} failed"))
                .subject(subject.clone())
                .evidence(format!("route get {ip}: {e}"))
                .fix(format!("run `ip route get {ip}` by hand; run vmpath as root in the hypervisor's network namespace")),
            Ok(lk) => match lk {
            Some(r)
                if tap_index.is_some_and(|ti| r.oifs().any(|o| o == ti)) && r.kind == "unicast" =>
            {
                Check::ok("route.lookup", format!("kernel sends {ip} to {tap}"))
                    .subject(subject.clone())
                    .evidence(format!("route get {ip}: {}", fmt_route(net, &r)))
            }
            Some(r) => {
                let via: Vec<String> = r.oifs().map(|o| net.ifname(o)).collect();
                let whr = if r.kind != "unicast" {
                    r.kind.clone()
                } else if via.is_empty() {
                    "nowhere".to_string()
                } else {
                    via.join(", ")
                };
                Check::fail(
                    "route.lookup",
                    format!("kernel sends {ip} to {whr}, not {tap}"),
                )
                .subject(subject.clone())
                .evidence(format!("route get {ip}: {}", fmt_route(net, &r)))
                .fix(add.clone())
            }
            None => Check::fail("route.lookup", format!("kernel has no route to {ip}"))
                .subject(subject.clone())
                .evidence(format!("route get {ip}: unreachable"))
                .fix(add.clone()),
            },
        });
    }

    // Host routes on this tap for addresses that are not this port's.
    if let Some(ti) = tap_index {
        let mine = want.ip_list();
        let foreign: Vec<&Route> = net
            .main_routes()
            .filter(|r| r.prefix_len == host_len(&r.dst) && r.kind == "unicast")
            .filter(|r| r.oifs().any(|o| o == ti) && !mine.contains(&r.dst))
            .collect();
        if !foreign.is_empty() {
            out.push(
                Check::warn(
                    "route.foreign",
                    format!(
                        "{tap} carries host routes for addresses that are not this port's: {}",
                        foreign.iter().map(|r| r.dst.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                )
                .evidences(foreign.iter().map(|r| fmt_route(net, r)))
                .fix(format!(
                    "traffic for them is blackholed into this VM: ip route del {}/{} dev {tap} (and re-add it on its own tap)",
                    foreign[0].dst, foreign[0].prefix_len
                )),
            );
        }
    }
    out
}

/// `neigh.vm`: the neighbour entry for each VM address on the tap.
pub fn neigh_checks(id: &Identity, want: &Desired, f: &HostFacts) -> Vec<Check> {
    let Some(l) = f.net.link(&id.tap) else {
        return vec![];
    };
    let mut out = Vec::new();
    for ip in want.ip_list() {
        let n = f
            .net
            .neighs
            .iter()
            .find(|n| !n.proxy && n.ip == ip && n.index == l.index);
        let subject = ip.to_string();
        out.push(match n {
            None => Check::ok("neigh.vm", format!("no neighbour entry for {ip} (normal without recent traffic)"))
                .subject(subject),
            Some(n) => {
                let ev = format!(
                    "{ip} dev {} lladdr {} {}",
                    id.tap,
                    n.mac.as_deref().unwrap_or("-"),
                    n.state.to_uppercase()
                );
                // Only a MAC from an independent record can contradict the entry.
                let wrong_mac = match (&want.mac, &n.mac) {
                    (Some(w), Some(m)) if !w.source.starts_with("neighbour entry") => {
                        !w.value.eq_ignore_ascii_case(m)
                    }
                    _ => false,
                };
                if n.state == "failed" || n.state == "incomplete" {
                    Check::warn("neigh.vm", format!("{ip} does not answer ARP/ND ({})", n.state.to_uppercase()))
                        .subject(subject)
                        .evidence(ev)
                        .fix("the VM does not answer: check its interface config and console (is the guest up, does it own this address?)")
                } else if wrong_mac {
                    let w = want.mac.as_ref().map(|w| w.value.clone()).unwrap_or_default();
                    Check::warn("neigh.vm", format!("{ip} answers from {} but the port MAC is {w}", n.mac.as_deref().unwrap_or("-")))
                        .subject(subject)
                        .evidence(ev)
                        .fix(format!("stale entry after a rebuild/migration, or another guest uses the address: ip neigh del {ip} dev {}", id.tap))
                } else {
                    Check::ok("neigh.vm", format!("{ip} at {} ({})", n.mac.as_deref().unwrap_or("-"), n.state))
                        .subject(subject)
                        .evidence(ev)
                }
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::netlink::{Addr, Link, Neigh, NextHop};
    use crate::model::Status;
    use crate::port::{Gateway, Sourced};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn id() -> Identity {
        Identity {
            tap: "tapA".into(),
            port_id: "3f1c2a4e-5b".into(),
            matched_by: "test".into(),
            target_ip: None,
        }
    }

    fn want() -> Desired {
        Desired {
            mac: Some(Sourced::new("fa:16:3e:00:00:01".to_string(), "test")),
            ips: vec![Sourced::new(ip("198.51.100.11"), "test")],
            mtu: Some(Sourced::new(1450, "test")),
            gateways: vec![Sourced::new(
                Gateway {
                    addr: ip("198.51.100.1"),
                    prefix_len: 24,
                },
                "test",
            )],
        }
    }

    fn route(dst: &str, len: u8, oif: u32) -> Route {
        Route {
            dst: ip(dst),
            prefix_len: len,
            table: 254,
            kind: "unicast".into(),
            protocol: "static".into(),
            scope: "link".into(),
            nexthops: vec![NextHop {
                oif: Some(oif),
                gateway: None,
            }],
        }
    }

    fn net() -> HostNet {
        HostNet {
            links: vec![
                Link {
                    index: 5,
                    name: "tapA".into(),
                    admin_up: true,
                    oper: "up".into(),
                    mtu: 1450,
                    mac: Some("fe:16:3e:00:00:01".into()),
                    kind: None,
                    lower: None,
                    remote: None,
                    local: None,
                    master: None,
                },
                Link {
                    index: 6,
                    name: "tapB".into(),
                    admin_up: true,
                    oper: "up".into(),
                    mtu: 1450,
                    mac: Some("fe:16:3e:00:00:02".into()),
                    kind: None,
                    lower: None,
                    remote: None,
                    local: None,
                    master: None,
                },
            ],
            addrs: vec![Addr {
                index: 5,
                addr: ip("198.51.100.1"),
                prefix_len: 24,
                noprefixroute: true,
                scope: 0,
            }],
            routes: vec![route("198.51.100.11", 32, 5)],
            neighs: vec![Neigh {
                index: 5,
                ip: ip("198.51.100.11"),
                mac: Some("fa:16:3e:00:00:01".into()),
                state: "reachable".into(),
                proxy: false,
            }],
        }
    }

    fn facts(n: &HostNet) -> HostFacts<'_> {
        let mut lookups = BTreeMap::new();
        lookups.insert(
            ip("198.51.100.11"),
            Ok(n.routes
                .iter()
                .find(|r| r.dst == ip("198.51.100.11"))
                .cloned()),
        );
        HostFacts {
            net: n,
            sysctl: TapSysctls {
                proxy_arp: Some(1),
                proxy_arp_all: Some(0),
                proxy_delay: Some(0),
                proxy_ndp: None,
                proxy_ndp_all: None,
            },
            lookups,
        }
    }

    fn all(n: &HostNet) -> Vec<Check> {
        let f = facts(n);
        let (i, w) = (id(), want());
        let mut v = tap_checks(&i, &w, &f);
        v.extend(gateway_checks(&i, &w, &f));
        v.extend(proxy_checks(&i, &w, &f));
        v.extend(route_checks(&i, &w, &f));
        v.extend(neigh_checks(&i, &w, &f));
        v
    }

    fn status(cs: &[Check], id: &str) -> Status {
        cs.iter()
            .find(|c| c.id == id)
            .map(|c| c.status)
            .unwrap_or_else(|| panic!("no {id} in {cs:#?}"))
    }

    fn not_ok(cs: &[Check]) -> Vec<&str> {
        cs.iter()
            .filter(|c| c.status != Status::Ok)
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn healthy_port_is_all_ok() {
        let cs = all(&net());
        assert!(not_ok(&cs).is_empty(), "{cs:#?}");
        assert_eq!(cs.len(), 11);
    }

    #[test]
    fn each_drift_fails_only_its_check() {
        let mut n = net();
        n.links[0].admin_up = false;
        n.links[0].oper = "down".into();
        assert_eq!(not_ok(&all(&n)), vec!["tap.state"]);

        let mut n = net();
        n.links[0].mtu = 1500;
        assert_eq!(not_ok(&all(&n)), vec!["tap.mtu"]);

        let mut n = net();
        n.addrs.clear();
        assert_eq!(not_ok(&all(&n)), vec!["tap.gateway"]);

        let mut n = net();
        n.addrs[0].noprefixroute = false;
        n.routes.push(Route {
            protocol: "kernel".into(),
            ..route("198.51.100.0", 24, 5)
        });
        assert_eq!(not_ok(&all(&n)), vec!["tap.gateway", "route.connected"]);

        let mut n = net();
        n.routes.clear();
        let mut f = facts(&n);
        f.lookups.insert(ip("198.51.100.11"), Ok(None));
        let cs = route_checks(&id(), &want(), &f);
        assert_eq!(not_ok(&cs), vec!["route.host", "route.lookup"]);
        assert!(cs.iter().all(|c| c.status == Status::Ok
            || c.fix
                .as_deref()
                .is_some_and(|x| x.contains("ip route replace 198.51.100.11/32 dev tapA"))));

        let mut n = net();
        n.routes = vec![route("198.51.100.11", 32, 6)];
        let cs = all(&n);
        assert_eq!(not_ok(&cs), vec!["route.host", "route.lookup"]);
        let rh = cs
            .iter()
            .find(|c| c.id == "route.host")
            .expect("route.host");
        assert!(rh.summary.contains("tapB"), "{}", rh.summary);
    }

    #[test]
    fn blackhole_host_route_and_failed_lookup() {
        let mut n = net();
        n.routes[0].kind = "blackhole".into();
        n.routes[0].nexthops = vec![NextHop {
            oif: None,
            gateway: None,
        }];
        let mut f = facts(&n);
        f.lookups.insert(
            ip("198.51.100.11"),
            Err(crate::error::Error::unknown("EPERM")),
        );
        let cs = route_checks(&id(), &want(), &f);
        let rh = cs
            .iter()
            .find(|c| c.id == "route.host")
            .expect("route.host");
        assert_eq!(rh.status, Status::Fail);
        assert!(rh.summary.contains("blackhole"), "{}", rh.summary);
        assert_eq!(status(&cs, "route.lookup"), Status::Unknown);
    }

    #[test]
    fn proxy_arp_off_and_delay() {
        let n = net();
        let mut f = facts(&n);
        f.sysctl.proxy_arp = Some(0);
        f.sysctl.proxy_delay = Some(80);
        let cs = proxy_checks(&id(), &want(), &f);
        assert_eq!(status(&cs, "tap.proxy_arp"), Status::Fail);
        assert_eq!(status(&cs, "tap.proxy_delay"), Status::Warn);
        // proxy_arp on "all" counts
        f.sysctl.proxy_arp_all = Some(1);
        assert_eq!(
            status(&proxy_checks(&id(), &want(), &f), "tap.proxy_arp"),
            Status::Ok
        );
    }

    #[test]
    fn missing_tap_is_one_failure_not_a_cascade_of_tap_checks() {
        let mut n = net();
        n.links.remove(0);
        let f = facts(&n);
        let cs = tap_checks(&id(), &want(), &f);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].status, Status::Fail);
        assert!(gateway_checks(&id(), &want(), &f).is_empty());
        assert!(proxy_checks(&id(), &want(), &f).is_empty());
    }

    #[test]
    fn neighbour_problems_warn() {
        let mut n = net();
        n.neighs[0].state = "failed".into();
        assert_eq!(status(&all(&n), "neigh.vm"), Status::Warn);
        let mut n = net();
        n.neighs[0].mac = Some("fa:16:3e:99:99:99".into());
        assert_eq!(status(&all(&n), "neigh.vm"), Status::Warn);
        let mut n = net();
        n.neighs[0].state = "stale".into();
        assert_eq!(status(&all(&n), "neigh.vm"), Status::Ok);
    }

    #[test]
    fn foreign_host_route_on_the_tap_warns() {
        let mut n = net();
        n.routes.push(route("198.51.100.12", 32, 5));
        assert_eq!(status(&all(&n), "route.foreign"), Status::Warn);
    }
}
