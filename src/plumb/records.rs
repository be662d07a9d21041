//! Do the host's records agree about the port's MAC and addresses? plumb acts on desired state,
//! so when the DHCP host entry, the tap and the VM's neighbour entry disagree it refuses unless
//! told which to trust (`--trust dhcp|host`, or `--mac`/`--ip`). Pure.

use std::net::IpAddr;

use crate::collect::dnsmasq::HostEntry;
use crate::collect::netlink::{host_len, HostNet};
use crate::error::Error;
use crate::port::{mac_suffix, vm_neighbour_mac, Identity};

/// Which records to trust when they disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Trust {
    /// The DHCP host entry (dnsmasq's host file for the port).
    Dhcp,
    /// The host's own state: the tap's MAC, the VM's neighbour entry, the host routes.
    Host,
}

/// Values to use instead of what the records say, once told which to trust.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub mac: Option<String>,
    pub ips: Vec<IpAddr>,
    /// What was decided, for the report.
    pub notes: Vec<String>,
}

/// Everything the comparison looks at.
pub struct Records<'a> {
    pub id: &'a Identity,
    /// Host entries of this port.
    pub entries: &'a [HostEntry],
    /// Every host entry of every dnsmasq (to know which addresses belong to other ports).
    pub all_entries: &'a [HostEntry],
    pub net: &'a HostNet,
    pub flag_mac: bool,
    pub flag_ips: bool,
}

/// Compare the records. `Ok` with an empty resolution when they agree (or flags settle it);
/// `Err` with the disagreement and the flags that settle it.
pub fn resolve(r: &Records, trust: Option<Trust>) -> Result<Resolution, Error> {
    let mut out = Resolution::default();
    let tap = &r.id.tap;
    // Addresses: the entry's vs the IPv4/IPv6 host routes on the tap that no other record claims.
    let entry = r.entries.first();
    let entry_ips: Vec<IpAddr> = entry
        .map(|e| e.ipv4.map(IpAddr::V4).into_iter().chain(e.ipv6).collect())
        .unwrap_or_default();
    let routed: Vec<IpAddr> = r
        .net
        .link(tap)
        .map(|l| {
            r.net
                .host_routes_via(l.index)
                .map(|rt| rt.dst)
                .filter(|d| {
                    !r.all_entries.iter().any(|h| {
                        (h.ipv4.map(IpAddr::V4) == Some(*d) || h.ipv6 == Some(*d))
                            && !h.port_id().is_some_and(|p| r.id.owns(&p))
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if !r.flag_ips {
        for fam_v6 in [false, true] {
            let e: Vec<&IpAddr> = entry_ips.iter().filter(|i| i.is_ipv6() == fam_v6).collect();
            let h: Vec<&IpAddr> = routed.iter().filter(|i| i.is_ipv6() == fam_v6).collect();
            if e.is_empty() || h.is_empty() || e.iter().any(|x| h.contains(x)) {
                continue;
            }
            let msg = format!(
                "the records disagree about the address of port {}: the DHCP host entry ({}) says {}, {tap} routes {}",
                r.id.port_id,
                entry.map(|e| e.source.as_str()).unwrap_or("?"),
                e.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
                h.iter()
                    .map(|i| format!("{i}/{}", host_len(i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            match trust {
                None => {
                    return Err(Error::refused(format!(
                        "{msg}. Tell plumb which to trust: --trust dhcp, --trust host, or --ip ADDR (check the port's fixed IPs in Neutron)"
                    )))
                }
                Some(Trust::Dhcp) => {
                    out.notes.push(format!("{msg}; trusting the DHCP host entry"));
                    // The entry's addresses, plus routed addresses of the other family.
                    out.ips = entry_ips.clone();
                    out.ips.extend(routed.iter().filter(|i| {
                        !entry_ips.iter().any(|x| x.is_ipv6() == i.is_ipv6())
                    }));
                }
                Some(Trust::Host) => {
                    out.notes.push(format!("{msg}; trusting the host routes"));
                    out.ips = routed.clone();
                    out.ips.extend(entry_ips.iter().filter(|i| {
                        !routed.iter().any(|x| x.is_ipv6() == i.is_ipv6())
                    }));
                }
            }
        }
    }
    if r.flag_mac {
        return Ok(out);
    }
    // MAC: the entry's, the tap's (fe: + the VM MAC's last 5 octets) and the VM's neighbour entry.
    let dhcp = entry.and_then(|e| e.macs.first().cloned());
    let tap_mac = r
        .net
        .link(tap)
        .and_then(|l| l.mac.clone())
        .filter(|m| m.starts_with("fe:"));
    let ips: Vec<IpAddr> = if out.ips.is_empty() {
        entry_ips.iter().chain(routed.iter()).copied().collect()
    } else {
        out.ips.clone()
    };
    let neigh = vm_neighbour_mac(r.net, tap, &ips);
    let agree_tap = |m: &str| {
        tap_mac
            .as_deref()
            .is_none_or(|t| mac_suffix(t).eq_ignore_ascii_case(mac_suffix(m)))
    };
    let mut says = Vec::new();
    if let Some(d) = &dhcp {
        says.push(format!(
            "the DHCP host entry ({}) says {d}",
            entry.map(|e| e.source.as_str()).unwrap_or("?")
        ));
    }
    if let Some(t) = &tap_mac {
        says.push(format!(
            "{tap} has {t} (Nova: fe: + the VM MAC's last 5 octets)"
        ));
    }
    if let Some(n) = &neigh {
        says.push(format!("the VM answers from {n} (neighbour entry)"));
    }
    let disagree = match (&dhcp, &neigh) {
        (Some(d), Some(n)) => !d.eq_ignore_ascii_case(n) || !agree_tap(d),
        (Some(d), None) => !agree_tap(d),
        (None, Some(n)) => !agree_tap(n),
        (None, None) => false,
    };
    if !disagree {
        return Ok(out);
    }
    let msg = format!(
        "the records disagree about the MAC of port {}: {}",
        r.id.port_id,
        says.join("; ")
    );
    match trust {
        None => Err(Error::refused(format!(
            "{msg}. Tell plumb which to trust: --trust dhcp, --trust host, or --mac MAC (check the port in Neutron)"
        ))),
        Some(Trust::Dhcp) => match dhcp {
            Some(d) => {
                out.notes.push(format!("{msg}; trusting the DHCP host entry: {d}"));
                out.mac = Some(d);
                Ok(out)
            }
            None => Err(Error::refused(format!("{msg}; --trust dhcp, but there is no DHCP host entry: pass --mac"))),
        },
        Some(Trust::Host) => match neigh.filter(|n| agree_tap(n)) {
            Some(n) => {
                out.notes.push(format!("{msg}; trusting the host: {n}"));
                out.mac = Some(n);
                Ok(out)
            }
            None => Err(Error::refused(format!(
                "{msg}; --trust host, but the host has no full MAC that the tap agrees with (the tap MAC gives only the last 5 octets): pass --mac"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::dnsmasq::parse_host_entry;
    use crate::collect::netlink::{Link, Neigh, NextHop, Route};

    const ID: &str = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51";

    fn id() -> Identity {
        Identity {
            tap: "tap3f1c2a4e-5b".into(),
            port_id: ID.into(),
            matched_by: "t".into(),
            target_ip: None,
        }
    }

    fn net(route_to: &str) -> HostNet {
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
            addrs: vec![],
            routes: vec![Route {
                dst: route_to.parse().expect("ip"),
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
            neighs: vec![Neigh {
                index: 5,
                ip: "198.51.100.11".parse().expect("ip"),
                mac: Some("fa:16:3e:00:00:01".into()),
                state: "permanent".into(),
                proxy: false,
            }],
        }
    }

    fn entry(mac: &str, ip: &str) -> Vec<HostEntry> {
        parse_host_entry(&format!("{mac},h,{ip},set:port-{ID}"), &format!("/h/{ID}"))
            .into_iter()
            .collect()
    }

    fn run(e: &[HostEntry], n: &HostNet, t: Option<Trust>) -> Result<Resolution, Error> {
        resolve(
            &Records {
                id: &id(),
                entries: e,
                all_entries: e,
                net: n,
                flag_mac: false,
                flag_ips: false,
            },
            t,
        )
    }

    #[test]
    fn agreeing_records_need_nothing() {
        let e = entry("fa:16:3e:00:00:01", "198.51.100.11");
        assert_eq!(
            run(&e, &net("198.51.100.11"), None),
            Ok(Resolution::default())
        );
    }

    #[test]
    fn a_wrong_mac_in_the_entry_is_refused_unless_told_whom_to_trust() {
        let e = entry("fa:16:3e:00:00:99", "198.51.100.11");
        let n = net("198.51.100.11");
        let err = run(&e, &n, None).expect_err("refused");
        assert!(
            err.message().contains("fa:16:3e:00:00:99") && err.message().contains("--trust"),
            "{err}"
        );
        assert_eq!(
            run(&e, &n, Some(Trust::Host)).expect("host").mac.as_deref(),
            Some("fa:16:3e:00:00:01")
        );
        assert_eq!(
            run(&e, &n, Some(Trust::Dhcp)).expect("dhcp").mac.as_deref(),
            Some("fa:16:3e:00:00:99")
        );
    }

    #[test]
    fn addresses_that_disagree_are_refused() {
        let e = entry("fa:16:3e:00:00:01", "198.51.100.11");
        let n = net("198.51.100.77");
        let err = run(&e, &n, None).expect_err("refused");
        assert!(err.message().contains("198.51.100.77/32"), "{err}");
        let r = run(&e, &n, Some(Trust::Dhcp)).expect("dhcp");
        assert_eq!(r.ips, vec!["198.51.100.11".parse::<IpAddr>().expect("ip")]);
        let r = run(&e, &n, Some(Trust::Host)).expect("host");
        assert_eq!(r.ips, vec!["198.51.100.77".parse::<IpAddr>().expect("ip")]);
    }
}
