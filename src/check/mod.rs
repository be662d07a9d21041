//! Checks: pure functions from collected facts to findings.

pub mod bgp;
pub mod dhcp;
pub mod handoff;
pub mod host;
pub mod metadata;
pub mod neutron;
pub mod ovs;
pub mod ovsflow;
pub mod router;
pub mod sg;

/// Components the configuration says this host must run (`expect` in the config file). A
/// component that is not expected and does not run here is "not used here", not a finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expect {
    /// A dnsmasq serving the taps.
    pub dhcp: bool,
    /// A BGP speaker on a gateway node.
    pub bgp: bool,
}

/// Every check id `walk` can emit, in path order, with its meaning. Shown by `vmpath walk
/// --help`, the man page and README.md (a test keeps them in step).
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        "tap.exists",
        "the port's tap (tap + first 11 characters of the port UUID) exists",
    ),
    (
        "tap.state",
        "the tap is administratively and operationally up",
    ),
    (
        "tap.mtu",
        "the tap's MTU equals the network MTU (dnsmasq's MTU option, --mtu)",
    ),
    (
        "tap.mac",
        "the tap has a MAC matching the port (Nova: fe: + the port MAC's last 5 octets)",
    ),
    (
        "tap.gateway",
        "the subnet gateway is on the tap with noprefixroute (or as a /32, /128)",
    ),
    ("tap.proxy_arp", "proxy ARP is on for the tap"),
    (
        "tap.proxy_delay",
        "proxy ARP answers without delay (proxy_delay = 0)",
    ),
    (
        "tap.proxy_ndp",
        "proxy NDP is on for the tap (ports with IPv6)",
    ),
    (
        "route.connected",
        "no connected subnet route through the tap (it steals the subnet from the fabric)",
    ),
    (
        "route.host",
        "a /32 (/128) for each VM address points at this tap, and only at it",
    ),
    (
        "route.lookup",
        "the kernel's route lookup for each VM address resolves to the tap",
    ),
    (
        "route.foreign",
        "the tap carries no host route for an address that belongs to another port",
    ),
    (
        "neigh.vm",
        "the VM's neighbour entry is not FAILED/INCOMPLETE and has the port's MAC",
    ),
    (
        "sg.chains",
        "the port's security-group chains exist and are hooked (iptables or nftables)",
    ),
    (
        "sg.drops",
        "no explicit rule other than the final fallback drop is dropping the VM's traffic",
    ),
    (
        "sg.flow",
        "the --flow given is accepted by the security group",
    ),
    (
        "dhcp.server",
        "dnsmasq runs in this network namespace and serves the tap",
    ),
    (
        "dhcp.host",
        "dnsmasq's host entry for the port exists with the port's MAC and address",
    ),
    (
        "metadata.proxy",
        "traffic from the tap to 169.254.169.254:80 reaches a live metadata proxy",
    ),
    (
        "bgp.daemon",
        "a routing daemon (BIRD or FRR) runs here and answers",
    ),
    (
        "bgp.rib",
        "each VM host route is in the daemon's RIB, learned from the kernel",
    ),
    (
        "bgp.session",
        "each BGP session is Established (one row per peer)",
    ),
    (
        "bgp.export",
        "each VM host route is advertised to each peer (adj-RIB-out), per peer and prefix",
    ),
];

/// The catalogues as help text: the routed hypervisor's, then the OVS compute node's.
pub fn catalogue_help() -> String {
    let w = CATALOGUE
        .iter()
        .chain(ovs::OVS_CATALOGUE)
        .map(|(id, _)| id.len())
        .max()
        .unwrap_or(0);
    let mut s = String::from("Checks on a routed hypervisor (stable ids, in path order):\n");
    for (id, what) in CATALOGUE {
        s.push_str(&format!("  {id:<w$}  {what}\n"));
    }
    s.push_str("\nChecks on an Open vSwitch compute node (stable ids, in path order):\n");
    for (id, what) in ovs::OVS_CATALOGUE {
        s.push_str(&format!("  {id:<w$}  {what}\n"));
    }
    s
}
