//! `dhcp.server` and `dhcp.host`: dnsmasq is alive and serving the tap, and its host entry for
//! the port exists with the right MAC and address.

use std::net::IpAddr;

use crate::collect::dnsmasq::{Dnsmasq, HostEntry};
use crate::collect::netlink::{is_link_local, HostNet};
use crate::model::Check;
use crate::port::{mac_suffix, Identity};

/// Evidence about the VM's MAC that does not come from the DHCP records themselves.
#[derive(Debug, Clone, Default)]
pub struct MacEvidence {
    /// `--mac` flag.
    pub flag: Option<String>,
    /// Neighbour entry on the tap.
    pub neighbour: Option<String>,
    /// The tap's own MAC (Nova: `fe:` + the VM MAC's last 5 octets).
    pub tap_mac: Option<String>,
}

impl MacEvidence {
    pub fn from_host(net: &HostNet, tap: &str, vm_ips: &[IpAddr], flag: Option<String>) -> Self {
        MacEvidence {
            flag,
            neighbour: crate::port::vm_neighbour_mac(net, tap, vm_ips),
            tap_mac: net.link(tap).and_then(|l| l.mac.clone()),
        }
    }

    /// Does a record's MAC name this VM (the flag, the MAC it answers from, or the tap's
    /// Nova-implied MAC)? For records that do not name their port.
    fn names_vm(&self, mac: &str) -> bool {
        let mac = mac.to_ascii_lowercase();
        if let Some(f) = &self.flag {
            return f.eq_ignore_ascii_case(&mac);
        }
        self.neighbour
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&mac))
            || self
                .tap_mac
                .as_deref()
                .is_some_and(|t| t.starts_with("fe:") && mac_suffix(t) == mac_suffix(&mac))
    }

    /// A reason the MAC disagrees with the evidence, or None.
    fn contradicts(&self, mac: &str) -> Option<String> {
        if let Some(f) = &self.flag {
            if !f.eq_ignore_ascii_case(mac) {
                return Some(format!("--mac says {f}"));
            }
            return None;
        }
        if let Some(n) = &self.neighbour {
            if !n.eq_ignore_ascii_case(mac) {
                return Some(format!("the VM answers ARP from {n}"));
            }
        }
        if let Some(t) = &self.tap_mac {
            if t.starts_with("fe:") && mac_suffix(t) != mac_suffix(&mac.to_ascii_lowercase()) {
                return Some(format!(
                    "the tap's MAC is {t} (Nova: fe: + the VM MAC's last 5 octets)"
                ));
            }
        }
        None
    }
}

/// `dhcp.server`.
/// `expected`: the host must run DHCP (config `expect = ["dhcp"]`); otherwise a host that runs no
/// dnsmasq at all does not use DHCP (config drive, static addressing), which is no finding.
pub fn server_check(
    id: &Identity,
    servers: &[Dnsmasq],
    alive: &dyn Fn(u32) -> bool,
    expected: bool,
) -> Check {
    if servers.is_empty() {
        if !expected {
            return Check::ok(
                "dhcp.server",
                "no DHCP server runs here: not used on this host",
            )
            .evidence("no process named dnsmasq shares this network namespace, and no hosts dir was given")
            .evidence("if this host should serve DHCP: start its dnsmasq, and set expect = [\"dhcp\"] in /etc/vmpath/config.toml so that its absence fails");
        }
        return Check::fail("dhcp.server", "no dnsmasq in this network namespace")
            .evidence("no process named dnsmasq shares this network namespace (expected: config expect = [\"dhcp\"])")
            .fix("start the DHCP service (the L2 agent's dnsmasq), or pass --dhcp-hostsdir to read its records");
    }
    // A trusted server's answer first: an untrusted process claiming the tap is unknown only
    // when no trusted one serves it.
    let mut serving: Vec<&Dnsmasq> = servers
        .iter()
        .filter(|d| d.serves_interface(&id.tap))
        .collect();
    serving.sort_by_key(|d| d.untrusted.is_some());
    let Some(d) = serving.first() else {
        let ifs: Vec<String> = servers.iter().flat_map(|d| d.interfaces.clone()).collect();
        return Check::fail("dhcp.server", format!("no dnsmasq serves {}", id.tap))
            .evidence(format!("dnsmasq interfaces: {}", ifs.join(", ")))
            .fix(format!(
                "add --interface={} (or tap*) to dnsmasq and restart it",
                id.tap
            ));
    };
    if let Some(why) = &d.untrusted {
        return Check::unknown(
            "dhcp.server",
            format!("{} is not trusted as a source: its records were not read", d.origin),
        )
        .evidence(why.clone())
        .fix("if it is this host's DHCP server, add its account to trusted_accounts in /etc/vmpath/config.toml");
    }
    let ifs = if d.interfaces.is_empty() {
        "all interfaces".to_string()
    } else {
        d.interfaces.join(",")
    };
    match d.pid {
        None => Check::unknown(
            "dhcp.server",
            "no dnsmasq process found; records read from the hosts dir given",
        )
        .evidence(d.origin.clone())
        .fix("start dnsmasq, or run vmpath in the network namespace where it runs"),
        Some(pid) if !alive(pid) => {
            Check::fail("dhcp.server", format!("dnsmasq pid {pid} is gone"))
                .evidence(d.origin.clone())
                .fix("restart the DHCP service")
        }
        Some(pid) => {
            let mut c = Check::ok(
                "dhcp.server",
                format!("dnsmasq pid {pid} serves {}", id.tap),
            )
            .evidence(format!("interfaces {ifs}"))
            .evidences(
                d.hostsdirs
                    .iter()
                    .map(|p| format!("hosts dir {}", p.display())),
            );
            if !d.read_errors.is_empty() {
                c = Check::warn(
                    "dhcp.server",
                    format!(
                        "dnsmasq pid {pid} serves {}, but its host records are unreadable",
                        id.tap
                    ),
                )
                .evidences(d.read_errors.clone())
                .fix("check the hosts dir path and permissions");
            }
            c
        }
    }
}

/// `dhcp.host`: the port's host entry.
pub fn host_check(id: &Identity, servers: &[Dnsmasq], net: &HostNet, macs: &MacEvidence) -> Check {
    // A trusted server's answer first: an untrusted process claiming the tap is unknown only
    // when no trusted one serves it.
    let mut serving: Vec<&Dnsmasq> = servers
        .iter()
        .filter(|d| d.serves_interface(&id.tap))
        .collect();
    serving.sort_by_key(|d| d.untrusted.is_some());
    let pool: Vec<&Dnsmasq> = if serving.is_empty() {
        servers.iter().collect()
    } else {
        serving
    };
    if pool.is_empty() {
        return Check::ok(
            "dhcp.host",
            "no DHCP server runs here: no host records to check",
        )
        .evidence("see dhcp.server")
        .evidence("--dhcp-hostsdir DIR checks the records of a DHCP server elsewhere");
    }
    let routed = host_routes_on_tap(net, &id.tap);
    let all = || pool.iter().flat_map(|d| d.hosts.iter());
    // The port's records: those that name it (a `set:port-<id>` tag, a file named by its id),
    // and those that name no port but the VM's MAC (Neutron's one hosts file per network has a
    // line per fixed IP: MAC, name, address). Failing both, records that hand out one of the
    // addresses the tap routes are the port's too — with a MAC to be judged.
    let mut entries: Vec<&HostEntry> = all()
        .filter(|h| match h.port_id() {
            Some(p) => id.owns(&p),
            None => h.macs.iter().any(|m| macs.names_vm(m)),
        })
        .collect();
    if entries.is_empty() {
        entries = all()
            .filter(|h| h.port_id().is_none())
            .filter(|h| addrs_of(h).iter().any(|a| routed.contains(a)))
            .collect();
    }
    let dirs: Vec<String> = pool
        .iter()
        .flat_map(|d| d.hostsdirs.iter().chain(d.hostsfiles.iter()))
        .map(|p| p.display().to_string())
        .collect();
    let dir = dirs
        .first()
        .cloned()
        .unwrap_or_else(|| "the hosts dir".into());
    let read_errors: Vec<String> = pool.iter().flat_map(|d| d.read_errors.clone()).collect();
    let untrusted: Vec<String> = pool.iter().filter_map(|d| d.untrusted.clone()).collect();
    if entries.is_empty() && !untrusted.is_empty() {
        return Check::unknown(
            "dhcp.host",
            "the DHCP server here is not trusted as a source: its records were not read",
        )
        .evidences(untrusted)
        .fix("if it is this host's DHCP server, add its account to trusted_accounts in /etc/vmpath/config.toml");
    }
    if entries.is_empty() && !read_errors.is_empty() {
        return Check::unknown("dhcp.host", "the DHCP host records could not all be read")
            .evidences(read_errors)
            .fix("check the hosts dir path (--dhcp-hostsdir) and run vmpath as root");
    }
    if entries.is_empty() {
        // Maybe an entry exists under another name for this port's MAC/IP: show it.
        let near: Vec<String> = pool
            .iter()
            .flat_map(|d| d.entries_for(macs.neighbour.as_deref(), &routed))
            .map(|h| format!("{}: {}", h.source, h.line))
            .collect();
        return Check::fail(
            "dhcp.host",
            format!("no DHCP host entry for port {}", id.port_id),
        )
        .evidence(format!(
            "searched {} ({} entries)",
            dirs.join(", "),
            pool.iter().map(|d| d.hosts.len()).sum::<usize>()
        ))
        .evidences(near)
        .fix(format!(
            "write 'MAC,host-NAME,IP,set:port-{}' to {dir}/{} and send SIGHUP to dnsmasq",
            id.port_id, id.port_id
        ));
    }
    let ev: Vec<String> = entries
        .iter()
        .map(|e| format!("{}: {}", e.source, e.line))
        .collect();
    // Every record of the port, judged as one set: one line per fixed IP is how Neutron writes
    // a dual-stack port or one with several addresses.
    let mut handed: Vec<IpAddr> = Vec::new();
    let mut mac_seen: Option<&str> = None;
    for e in &entries {
        let one = format!("{}: {}", e.source, e.line);
        if e.ignore {
            return Check::fail(
                "dhcp.host",
                "the port's host entry says 'ignore': the VM gets no lease",
            )
            .evidence(one)
            .fix("remove 'ignore' from the entry and SIGHUP dnsmasq");
        }
        let Some(mac) = e.macs.first() else {
            return Check::fail("dhcp.host", "the port's host entry has no MAC")
                .evidence(one)
                .fix("rewrite the entry as MAC,NAME,IP and SIGHUP dnsmasq");
        };
        if let Some(why) = macs.contradicts(mac) {
            return Check::fail("dhcp.host", format!("host entry has MAC {mac} but {why}"))
                .evidence(one)
                .fix(format!("rewrite {} with the port's MAC and SIGHUP dnsmasq (VM rebuilt? check the port in Neutron)", e.source));
        }
        match mac_seen {
            Some(m) if !m.eq_ignore_ascii_case(mac) => {
                return Check::fail(
                    "dhcp.host",
                    format!("the port's host entries disagree on its MAC: {m} and {mac}"),
                )
                .evidences(ev)
                .fix("rewrite the entries with the port's MAC (from Neutron) and SIGHUP dnsmasq");
            }
            _ => mac_seen = Some(mac),
        }
        let addrs = addrs_of(e);
        if addrs.is_empty() {
            return Check::fail("dhcp.host", "the port's host entry names no address")
                .evidence(one)
                .fix("rewrite the entry as MAC,NAME,IP and SIGHUP dnsmasq");
        }
        // An address the tap does not route (per family, when the tap routes any) is one the VM
        // would configure and never be reached at.
        for a in &addrs {
            let fam: Vec<&IpAddr> = routed
                .iter()
                .filter(|r| r.is_ipv4() == a.is_ipv4())
                .collect();
            if !fam.is_empty() && !fam.contains(&a) {
                return Check::fail(
                    "dhcp.host",
                    format!("host entry hands out {a} but {} routes {}", id.tap, fam.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")),
                )
                .evidence(one)
                .fix("the records disagree: correct the entry (or the routes) from the port's fixed IPs in Neutron");
            }
        }
        for a in addrs {
            if !handed.contains(&a) {
                handed.push(a);
            }
        }
    }
    let mac = mac_seen.unwrap_or("-");
    // A family of the port's addresses that no record covers, where dnsmasq serves that subnet
    // statefully (a DHCPv6 static range): the VM gets no address of that family.
    for r in routed.iter().filter(|r| !is_link_local(r)) {
        if handed.iter().any(|a| a.is_ipv4() == r.is_ipv4()) {
            continue;
        }
        if let Some(range) = pool.iter().flat_map(|d| &d.ranges).find(|g| g.contains(*r)) {
            return Check::fail(
                "dhcp.host",
                format!(
                    "no DHCP record for {r}: dnsmasq serves its subnet ({}) but none of the port's lines hands it out",
                    range.line
                ),
            )
            .evidences(ev)
            .fix(format!(
                "add the line '{mac},host-NAME,{}' for the port and SIGHUP dnsmasq",
                if r.is_ipv6() { format!("[{r}]") } else { r.to_string() }
            ));
        }
    }
    // Another record (another port's, stale) handing out one of these addresses.
    let dup: Vec<String> = all()
        .filter(|h| !entries.iter().any(|e| std::ptr::eq(*e, *h)))
        .filter(|h| h.ipv4.is_some_and(|v| handed.contains(&IpAddr::V4(v))))
        .map(|h| format!("{}: {}", h.source, h.line))
        .collect();
    if !dup.is_empty() {
        let a = handed
            .iter()
            .find(|a| a.is_ipv4())
            .copied()
            .unwrap_or(handed[0]);
        return Check::warn(
            "dhcp.host",
            format!("another host entry also hands out {a}"),
        )
        .evidences(ev)
        .evidences(dup)
        .fix("delete the stale entry (port deleted?) and SIGHUP dnsmasq");
    }
    Check::ok(
        "dhcp.host",
        format!(
            "{mac} → {}",
            handed
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .evidences(ev)
}

fn addrs_of(e: &HostEntry) -> Vec<IpAddr> {
    e.ipv4.map(IpAddr::V4).into_iter().chain(e.ipv6).collect()
}

fn host_routes_on_tap(net: &HostNet, tap: &str) -> Vec<IpAddr> {
    net.link(tap)
        .map(|l| net.host_routes_via(l.index).map(|r| r.dst).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::dnsmasq::{parse_host_entry, parse_range};
    use crate::collect::netlink::{Link, NextHop, Route};
    use crate::model::Status;

    const ID: &str = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51";

    fn id() -> Identity {
        Identity {
            tap: "tap3f1c2a4e-5b".into(),
            port_id: ID.into(),
            matched_by: "t".into(),
            target_ip: None,
        }
    }

    fn net() -> HostNet {
        HostNet {
            links: vec![Link {
                index: 5,
                name: "tap3f1c2a4e-5b".into(),
                admin_up: true,
                oper: "up".into(),
                mtu: 1450,
                mac: Some("fe:16:3e:00:00:01".into()),
                kind: None,
                lower: None,
                remote: None,
                local: None,
                master: None,
            }],
            routes: vec![Route {
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
            }],
            ..Default::default()
        }
    }

    fn server(line: &str) -> Dnsmasq {
        let mut d = Dnsmasq {
            pid: Some(std::process::id()),
            origin: "dnsmasq pid x".into(),
            interfaces: vec!["tap*".into()],
            ..Default::default()
        };
        d.hostsdirs.push("/h".into());
        d.hosts.extend(parse_host_entry(line, &format!("/h/{ID}")));
        d
    }

    #[test]
    fn healthy_entry() {
        let s = [server("fa:16:3e:00:00:01,h,198.51.100.11")];
        let n = net();
        let m = MacEvidence::from_host(
            &n,
            "tap3f1c2a4e-5b",
            &["198.51.100.11".parse().expect("ip")],
            None,
        );
        assert_eq!(host_check(&id(), &s, &n, &m).status, Status::Ok);
        assert_eq!(server_check(&id(), &s, &|_| true, false).status, Status::Ok);
    }

    #[test]
    fn wrong_mac_missing_entry_wrong_ip_dead_server() {
        let n = net();
        let m = MacEvidence::from_host(
            &n,
            "tap3f1c2a4e-5b",
            &["198.51.100.11".parse().expect("ip")],
            None,
        );
        let c = host_check(
            &id(),
            &[server("fa:16:3e:00:00:99,h,198.51.100.11")],
            &n,
            &m,
        );
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("fa:16:3e:00:00:99"), "{}", c.summary);
        let mut empty = server("fa:16:3e:00:00:01,h,198.51.100.11");
        empty.hosts.clear();
        let c = host_check(&id(), &[empty], &n, &m);
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.as_deref().is_some_and(|f| f.contains(ID)));
        let c = host_check(
            &id(),
            &[server("fa:16:3e:00:00:01,h,198.51.100.77")],
            &n,
            &m,
        );
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            server_check(&id(), &[server("x")], &|_| false, false).status,
            Status::Fail
        );
        assert_eq!(
            server_check(&id(), &[], &|_| true, true).status,
            Status::Fail
        );
        // A host that runs no DHCP at all does not use it, unless the config expects it.
        let c = server_check(&id(), &[], &|_| true, false);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.summary.contains("not used"), "{c:?}");
        assert_eq!(host_check(&id(), &[], &n, &m).status, Status::Ok);
        let mut other = server("x");
        other.interfaces = vec!["eth9".into()];
        assert_eq!(
            server_check(&id(), &[other], &|_| true, false).status,
            Status::Fail
        );
    }

    /// Neutron's own hosts file: one line per fixed IP, IPv6 lines `tag:dhcpv6,…,[v6]`, no port
    /// id anywhere; the port is known by its MAC.
    fn neutron_server() -> Dnsmasq {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/neutron-dhcp/host"
        ));
        let src = "/var/lib/neutron/dhcp/172d54ab-a93e-421f-9f47-22e68c645050/host";
        let mut d = Dnsmasq {
            pid: Some(std::process::id()),
            origin: "dnsmasq pid x".into(),
            ..Default::default()
        };
        d.hostsfiles.push(src.into());
        d.hosts
            .extend(text.lines().filter_map(|l| parse_host_entry(l, src)));
        d
    }

    /// A routed tap for the captured port fa:16:3e:63:ad:00 (198.18.0.197, 2001:db8:0:1::24e).
    fn dual_stack_net(mac: &str) -> (HostNet, MacEvidence) {
        let mut n = net();
        n.links[0].mac = Some(mac.into());
        n.routes[0].dst = "198.18.0.197".parse().expect("ip");
        let mut r6 = n.routes[0].clone();
        r6.dst = "2001:db8:0:1::24e".parse().expect("ip");
        r6.prefix_len = 128;
        n.routes.push(r6);
        let m = MacEvidence::from_host(&n, "tap3f1c2a4e-5b", &[], None);
        (n, m)
    }

    #[test]
    fn one_line_per_fixed_ip_is_one_healthy_set() {
        let s = [neutron_server()];
        assert_eq!(s[0].hosts.len(), 4, "{:?}", s[0].hosts);
        let (n, m) = dual_stack_net("fe:16:3e:63:ad:00");
        let c = host_check(&id(), &s, &n, &m);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(
            c.summary.contains("198.18.0.197") && c.summary.contains("2001:db8:0:1::24e"),
            "{c:?}"
        );
        assert_eq!(c.evidence.len(), 2, "both lines are the port's: {c:?}");
    }

    #[test]
    fn a_neutron_line_with_another_mac_for_the_vms_address_is_a_wrong_mac() {
        // The tap says the VM is fa:16:3e:00:00:42 (rebuilt), the hosts file still has the old MAC.
        let s = [neutron_server()];
        let (n, m) = dual_stack_net("fe:16:3e:00:00:42");
        let c = host_check(&id(), &s, &n, &m);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.summary.contains("fa:16:3e:63:ad:00"), "{c:?}");
    }

    #[test]
    fn a_line_for_an_address_the_port_does_not_route_fails_and_a_stale_copy_warns() {
        let (n, m) = dual_stack_net("fe:16:3e:63:ad:00");
        let mut d = neutron_server();
        d.hosts.extend(parse_host_entry(
            "fa:16:3e:63:ad:00,host-198-18-0-199.openstacklocal,198.18.0.199",
            "/h/host",
        ));
        let c = host_check(&id(), &[d], &n, &m);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.summary.contains("198.18.0.199"), "{c:?}");
        let mut d = neutron_server();
        d.hosts.extend(parse_host_entry(
            "fa:16:3e:77:77:77,host-stale,198.18.0.197",
            "/h/host",
        ));
        let c = host_check(&id(), &[d], &n, &m);
        assert_eq!(c.status, Status::Warn, "{c:?}");
    }

    #[test]
    fn a_family_the_records_miss_fails_only_where_dnsmasq_serves_it() {
        // Only the IPv4 line of the dual-stack port: its subnet is DHCPv6-stateful.
        let mut d = neutron_server();
        d.hosts
            .retain(|h| h.ipv6 != Some("2001:db8:0:1::24e".parse().expect("ip")));
        d.ranges.extend(parse_range(
            "set:subnet-befc284e,2001:db8:0:1::,static,64,86400s",
        ));
        let (n, m) = dual_stack_net("fe:16:3e:63:ad:00");
        let c = host_check(&id(), std::slice::from_ref(&d), &n, &m);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.summary.contains("2001:db8:0:1::24e"), "{c:?}");
        // Without a DHCPv6 range (SLAAC) the IPv6 address needs no line.
        d.ranges.clear();
        assert_eq!(host_check(&id(), &[d], &n, &m).status, Status::Ok);
    }

    #[test]
    fn a_per_port_file_with_a_line_per_address_is_healthy() {
        let mut d = server("fa:16:3e:00:00:01,host-a,198.51.100.11,set:port-x");
        d.hosts.extend(parse_host_entry(
            "fa:16:3e:00:00:01,tag:dhcpv6,host-b,[2001:db8:100::11]",
            &format!("/h/{ID}"),
        ));
        let mut n = net();
        let mut r6 = n.routes[0].clone();
        r6.dst = "2001:db8:100::11".parse().expect("ip");
        r6.prefix_len = 128;
        n.routes.push(r6);
        let m = MacEvidence::from_host(&n, "tap3f1c2a4e-5b", &[], None);
        let c = host_check(&id(), &[d], &n, &m);
        assert_eq!(c.status, Status::Ok, "{c:?}");
    }
}
