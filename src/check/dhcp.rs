//! `dhcp.server` and `dhcp.host`: dnsmasq is alive and serving the tap, and its host entry for
//! the port exists with the right MAC and address.

use std::net::IpAddr;

use crate::collect::dnsmasq::{Dnsmasq, HostEntry};
use crate::collect::netlink::HostNet;
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
pub fn server_check(id: &Identity, servers: &[Dnsmasq], alive: &dyn Fn(u32) -> bool) -> Check {
    if servers.is_empty() {
        return Check::fail("dhcp.server", "no dnsmasq in this network namespace")
            .evidence("no process named dnsmasq shares this network namespace")
            .fix("start the DHCP service (the L2 agent's dnsmasq), or pass --dhcp-hostsdir to read its records");
    }
    let serving: Vec<&Dnsmasq> = servers
        .iter()
        .filter(|d| d.serves_interface(&id.tap))
        .collect();
    let Some(d) = serving.first() else {
        let ifs: Vec<String> = servers.iter().flat_map(|d| d.interfaces.clone()).collect();
        return Check::fail("dhcp.server", format!("no dnsmasq serves {}", id.tap))
            .evidence(format!("dnsmasq interfaces: {}", ifs.join(", ")))
            .fix(format!(
                "add --interface={} (or tap*) to dnsmasq and restart it",
                id.tap
            ));
    };
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
    let serving: Vec<&Dnsmasq> = servers
        .iter()
        .filter(|d| d.serves_interface(&id.tap))
        .collect();
    let pool: Vec<&Dnsmasq> = if serving.is_empty() {
        servers.iter().collect()
    } else {
        serving
    };
    if pool.is_empty() {
        return Check::unknown("dhcp.host", "no DHCP records to read (no dnsmasq found)")
            .fix("pass --dhcp-hostsdir DIR");
    }
    let entries: Vec<&HostEntry> = pool
        .iter()
        .flat_map(|d| d.hosts.iter())
        .filter(|h| h.port_id().is_some_and(|p| id.owns(&p)))
        .collect();
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
    if entries.is_empty() && !read_errors.is_empty() {
        return Check::unknown("dhcp.host", "the DHCP host records could not all be read")
            .evidences(read_errors)
            .fix("check the hosts dir path (--dhcp-hostsdir) and run vmpath as root");
    }
    let Some(e) = entries.first() else {
        // Maybe an entry exists under another name for this port's MAC/IP: show it.
        let tap_routes = host_routes_on_tap(net, &id.tap);
        let near: Vec<String> = pool
            .iter()
            .flat_map(|d| d.entries_for(macs.neighbour.as_deref(), &tap_routes))
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
    };
    let ev = format!("{}: {}", e.source, e.line);
    if e.ignore {
        return Check::fail(
            "dhcp.host",
            "the port's host entry says 'ignore': the VM gets no lease",
        )
        .evidence(ev)
        .fix("remove 'ignore' from the entry and SIGHUP dnsmasq");
    }
    if entries.len() > 1 {
        return Check::warn(
            "dhcp.host",
            format!("{} host entries for port {}", entries.len(), id.port_id),
        )
        .evidences(entries.iter().map(|h| format!("{}: {}", h.source, h.line)))
        .fix("keep one entry per port: delete the stale file and SIGHUP dnsmasq");
    }
    let Some(mac) = e.macs.first() else {
        return Check::fail("dhcp.host", "the port's host entry has no MAC")
            .evidence(ev)
            .fix("rewrite the entry as MAC,NAME,IP and SIGHUP dnsmasq");
    };
    if let Some(why) = macs.contradicts(mac) {
        return Check::fail("dhcp.host", format!("host entry has MAC {mac} but {why}"))
            .evidence(ev)
            .fix(format!("rewrite {} with the port's MAC and SIGHUP dnsmasq (VM rebuilt? check the port in Neutron)", e.source));
    }
    // The entry's address must be one the tap routes (per family, when the tap routes any).
    let routed = host_routes_on_tap(net, &id.tap);
    let addrs: Vec<IpAddr> = e.ipv4.map(IpAddr::V4).into_iter().chain(e.ipv6).collect();
    if addrs.is_empty() {
        return Check::fail("dhcp.host", "the port's host entry names no address")
            .evidence(ev)
            .fix("rewrite the entry as MAC,NAME,IP and SIGHUP dnsmasq");
    }
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
            .evidence(ev)
            .fix("the records disagree: correct the entry (or the routes) from the port's fixed IPs in Neutron");
        }
    }
    let dup: Vec<String> = pool
        .iter()
        .flat_map(|d| d.hosts.iter())
        .filter(|h| !std::ptr::eq(*h, *e))
        .filter(|h| h.ipv4.is_some() && h.ipv4 == e.ipv4)
        .map(|h| format!("{}: {}", h.source, h.line))
        .collect();
    if !dup.is_empty() {
        return Check::warn(
            "dhcp.host",
            format!("another host entry also hands out {}", addrs[0]),
        )
        .evidence(ev)
        .evidences(dup)
        .fix("delete the stale entry (port deleted?) and SIGHUP dnsmasq");
    }
    Check::ok(
        "dhcp.host",
        format!(
            "{mac} → {}",
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .evidence(ev)
}

fn host_routes_on_tap(net: &HostNet, tap: &str) -> Vec<IpAddr> {
    net.link(tap)
        .map(|l| net.host_routes_via(l.index).map(|r| r.dst).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::dnsmasq::parse_host_entry;
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
        assert_eq!(server_check(&id(), &s, &|_| true).status, Status::Ok);
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
            server_check(&id(), &[server("x")], &|_| false).status,
            Status::Fail
        );
        assert_eq!(server_check(&id(), &[], &|_| true).status, Status::Fail);
        let mut other = server("x");
        other.interfaces = vec!["eth9".into()];
        assert_eq!(
            server_check(&id(), &[other], &|_| true).status,
            Status::Fail
        );
    }
}
