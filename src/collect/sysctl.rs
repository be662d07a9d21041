//! Network sysctls under /proc/sys/net: the per-interface switches a routed tap depends on
//! (proxy ARP, its delay, proxy NDP) and the defaults a new interface gets. Read through
//! /proc/sys of the calling thread's network namespace.

use serde::{Deserialize, Serialize};

/// Read one sysctl under /proc/sys/net (`ipv4/conf/tapX/proxy_arp`), trimmed. Interface names
/// with dots are written with `/` in sysctl(8) paths but stay as they are under /proc/sys.
pub fn read(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    // A sysctl is a few bytes; a bounded read keeps a strange /proc from costing more.
    let mut s = String::new();
    std::fs::File::open(format!("/proc/sys/net/{path}"))?
        .take(4096)
        .read_to_string(&mut s)?;
    Ok(s.trim().to_string())
}

fn read_u32(path: &str) -> Option<u32> {
    read(path).ok()?.parse().ok()
}

/// The sysctls of one tap (`None` when unreadable: the tap is gone, or /proc/sys is not this
/// namespace's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapSysctls {
    pub proxy_arp: Option<u32>,
    pub proxy_arp_all: Option<u32>,
    /// In USER_HZ (1/100 s), as the sysctl shows it.
    pub proxy_delay: Option<u32>,
    pub proxy_ndp: Option<u32>,
    pub proxy_ndp_all: Option<u32>,
}

impl TapSysctls {
    /// The tap's own values, with the `all` switches.
    pub fn of(tap: &str) -> TapSysctls {
        TapSysctls {
            proxy_arp: read_u32(&format!("ipv4/conf/{tap}/proxy_arp")),
            proxy_arp_all: read_u32("ipv4/conf/all/proxy_arp"),
            proxy_delay: read_u32(&format!("ipv4/neigh/{tap}/proxy_delay")),
            proxy_ndp: read_u32(&format!("ipv6/conf/{tap}/proxy_ndp")),
            proxy_ndp_all: read_u32("ipv6/conf/all/proxy_ndp"),
        }
    }

    /// What a new interface gets (`conf/default`), with the `all` switches.
    pub fn defaults() -> TapSysctls {
        TapSysctls {
            proxy_arp: read_u32("ipv4/conf/default/proxy_arp"),
            proxy_arp_all: read_u32("ipv4/conf/all/proxy_arp"),
            proxy_delay: read_u32("ipv4/neigh/default/proxy_delay"),
            proxy_ndp: read_u32("ipv6/conf/default/proxy_ndp"),
            proxy_ndp_all: read_u32("ipv6/conf/all/proxy_ndp"),
        }
    }
}

/// The per-tap sysctls plumb reads and writes (relative to /proc/sys/net).
pub fn tap_paths(tap: &str) -> Vec<String> {
    vec![
        format!("ipv4/conf/{tap}/proxy_arp"),
        format!("ipv4/neigh/{tap}/proxy_delay"),
        format!("ipv6/conf/{tap}/proxy_ndp"),
    ]
}
