//! Read-only collectors: each file reads one source of facts from the host. Pure parsers live
//! next to their thin I/O edge and are unit-tested on captured real output.

pub mod bgp;
pub mod caps;
pub mod child;
pub mod deadline;
pub mod dnsmasq;
pub mod files;
pub mod firewall;
pub mod hostname;
pub mod iface;
pub mod keepalived;
pub mod netlink;
pub mod netns;
pub mod nftables;
pub mod nsscan;
pub mod openstack;
pub mod ovsctl;
pub mod ovsdb;
pub mod peer;
pub mod procs;
pub mod sockets;
pub mod sysctl;
pub mod trust;
pub mod vrrp;
