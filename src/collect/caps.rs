//! The calling process's privileges: root, and its effective capabilities (`CapEff` in
//! /proc/self/status).

/// CAP_NET_ADMIN: reading the firewall over nfnetlink, the daemons' control sockets.
pub const CAP_NET_ADMIN: u32 = 12;

/// Is the effective user root?
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The effective capability set (0 when it cannot be read).
pub fn effective() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_cap_eff(&status)
}

/// `CapEff:` of a /proc/PID/status text.
pub fn parse_cap_eff(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Does the process have capability `cap` (or is it root)?
pub fn has(cap: u32) -> bool {
    is_root() || effective() & (1u64 << cap) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_is_read_from_status() {
        let s = "Name:\tvmpath\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        assert_eq!(parse_cap_eff(s), 1 << CAP_NET_ADMIN);
        assert_eq!(parse_cap_eff("Name:\tx\n"), 0);
    }
}
