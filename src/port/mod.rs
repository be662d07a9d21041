//! Which port the target names (identity), and what its host state should be (desired state).
//!
//! Desired state is a separate, swappable source ([`DesiredSource`]): today the host's own
//! records (dnsmasq's host entries and options, the gateway addresses on the host's taps, flags);
//! later the Neutron API. Every desired value carries where it came from.
//!
//! [`target`] parses what the user named, [`resolve`] finds the port it names from the host's
//! facts, [`desired`] says what the port's host state should be. All pure.

mod desired;
mod resolve;
pub mod source;
pub mod target;
#[cfg(test)]
mod tests;
pub mod vif;

use std::net::IpAddr;

use serde::Serialize;

use crate::collect::netlink::HostNet;
pub use desired::{DesiredSource, HostRecords};
pub use resolve::resolve;
use target::PORT_PREFIX_LEN;

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
    /// Is a DHCP host record this port's: it names the port (a `set:port-<id>` tag, a file named
    /// by its id), or it names no port and carries the port's MAC (Neutron's one hosts file per
    /// network, a line per fixed IP).
    pub fn owns_record(&self, mac: Option<&str>, h: &crate::collect::dnsmasq::HostEntry) -> bool {
        match h.port_id() {
            Some(p) => self.owns(&p),
            None => mac.is_some_and(|m| h.macs.iter().any(|x| x.eq_ignore_ascii_case(m))),
        }
    }

    /// The 11-character port-id prefix Nova puts in the tap name; `None` for a tap that is not
    /// Nova-named (then no record can be matched to it by name).
    pub fn port_prefix(&self) -> Option<&str> {
        let p = self.port_id.get(..PORT_PREFIX_LEN)?;
        crate::port::target::is_port_prefix(p).then_some(p)
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

/// The VM MAC Nova implies from a tap MAC: Nova gives the tap `fe` + the VM MAC's last 5 octets.
/// Returns the 5-octet suffix to compare with.
pub fn mac_suffix(mac: &str) -> &str {
    mac.get(3..).unwrap_or(mac)
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
