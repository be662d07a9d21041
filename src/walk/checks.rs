//! The walk's checks for one port, in path order: pure functions of the gathered [`Facts`]
//! (nothing here reads the host), so a sweep checks N ports from one read and a captured host
//! is checked again without root.

use crate::check::{self, dhcp, host, metadata, sg};
use crate::model::Check;

use super::gather::{Facts, Port};

/// Every check of `port`, in path order. `flow` is `--flow`.
pub fn port(f: &Facts, port: &Port, flow: Option<&sg::Flow>) -> Vec<Check> {
    let id = &port.id;
    let want = &port.desired;
    let ips = want.ip_list();
    let hf = host::HostFacts {
        net: &f.net,
        sysctl: f.sysctls.get(&id.tap).cloned().unwrap_or_default(),
        lookups: ips
            .iter()
            .filter_map(|ip| f.lookups.get(ip).map(|r| (*ip, r.clone())))
            .collect(),
    };
    let mut out = Vec::new();
    out.extend(host::tap_checks(id, want, &hf));
    out.extend(host::gateway_checks(id, want, &hf));
    out.extend(host::proxy_checks(id, want, &hf));
    out.extend(host::route_checks(id, want, &hf));
    out.extend(host::neigh_checks(id, want, &hf));
    // Security group.
    let mac = want.mac.as_ref().map(|m| m.value.as_str());
    let sg_port = sg::SgPort::new(&id.tap, &id.port_id, &ips, mac);
    out.extend(sg::checks(&f.firewall, &sg_port, flow));
    out.push(dhcp::server_check(id, &f.dnsmasq, &|pid| {
        f.alive.contains(&pid)
    }));
    let macs = dhcp::MacEvidence::from_host(&f.net, &id.tap, &ips, port.mac_flag.clone());
    out.push(dhcp::host_check(id, &f.dnsmasq, &f.net, &macs));
    // Metadata: from the VM's first IPv4 address (the metadata service is IPv4).
    if let Some(vm4) = port.metadata_source() {
        let local = f.net.local_addrs();
        out.push(metadata::check_metadata(
            &f.firewall,
            &f.sockets,
            &local,
            &id.tap,
            vm4,
            mac,
        ));
    }
    // BGP last: the RIB, then each peer.
    let pfx: Vec<String> = port
        .prefixes()
        .iter()
        .map(|(ip, l)| format!("{ip}/{l}"))
        .collect();
    out.extend(check::bgp::port_rows(&f.bgp, &pfx));
    out
}
