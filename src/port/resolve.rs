//! Which port a target names on this host, from the host's facts and records.

use std::net::IpAddr;

use super::desired::is_tap_name;
use super::target::{Target, PORT_PREFIX_LEN};
use super::{mac_suffix, Identity};
use crate::collect::dnsmasq::{Dnsmasq, HostEntry};
use crate::collect::netlink::{host_len, HostNet};
use crate::error::{Error, Result};

/// Resolve a target to a port on this host, from the host's state and records. The error names
/// what was looked at.
pub fn resolve(target: &Target, host: &HostNet, dnsmasq: &[Dnsmasq]) -> Result<Identity> {
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
            .filter(|p| crate::port::target::is_port_prefix(p))?;
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
                return Err(Error::not_here(format!(
                    "no tap '{t}' on this host and no DHCP host entry for a port {}…: check the name, or run on the hypervisor that hosts the VM",
                    t.trim_start_matches("tap")
                )));
            }
            Ok(ident(t.clone(), "tap name".into()))
        }
        Target::PortId(_) | Target::PortPrefix(_) => {
            let tap = target.implied_tap().unwrap_or_default();
            let known = host.link(&tap).is_some() || full_id_for_tap(&tap).is_some();
            if !known {
                return Err(Error::not_here(format!(
                    "port {target} is not on this host: no tap {tap} and no DHCP host entry for it"
                )));
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
            Err(Error::not_here(format!(
                "no port for {ip} on this host: no DHCP host entry, no /{host_len} route via a tap and no neighbour entry name it — is this the VM's hypervisor?"
            )))
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
            Err(Error::not_here(format!(
                "no port with MAC {mac} on this host: no DHCP host entry, neighbour entry or tap MAC matches"
            )))
        }
    }
}
