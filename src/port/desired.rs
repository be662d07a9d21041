//! Desired state from this host's own records: dnsmasq's host entries and options, the gateway
//! addresses on the host's other taps, and the flags that override them.

use std::net::IpAddr;

use super::{mac_suffix, vm_neighbour_mac, Desired, Gateway, Identity, Overrides, Sourced};
use crate::collect::dnsmasq::{Dnsmasq, HostEntry};
use crate::collect::netlink::{host_len, is_link_local, HostNet};

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

pub(super) fn is_tap_name(n: &str) -> bool {
    n.starts_with("tap")
}

impl HostRecords<'_> {
    /// The port's records: those that name it (`set:port-<id>`, a file named by its id), and
    /// those that name no port but the VM's MAC — the `--mac` flag, or the one Nova implies from
    /// the tap (`fe:` + its last 5 octets): Neutron's one hosts file per network has a line per
    /// fixed IP (MAC, name, address) and no port id.
    fn entries_for_port(&self, id: &Identity, host: &HostNet) -> Vec<(&Dnsmasq, &HostEntry)> {
        let tap_suffix = host
            .link(&id.tap)
            .and_then(|l| l.mac.as_deref())
            .filter(|m| m.starts_with("fe:"))
            .map(|m| mac_suffix(m).to_string());
        let vm_mac = |m: &str| match &self.overrides.mac {
            Some(f) => f.eq_ignore_ascii_case(m),
            None => tap_suffix
                .as_deref()
                .is_some_and(|s| mac_suffix(&m.to_ascii_lowercase()) == s),
        };
        let mut out = Vec::new();
        for d in self.dnsmasq {
            for h in &d.hosts {
                let mine = match h.port_id() {
                    Some(p) => id.owns(&p),
                    None => h.macs.iter().any(|m| vm_mac(m)),
                };
                if mine {
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
        let entries = self.entries_for_port(id, host);
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
                        && !entries.iter().any(|(_, e)| std::ptr::eq(*e, h))
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
