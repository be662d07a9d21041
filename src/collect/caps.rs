//! The calling process's privileges: its effective capabilities. Privilege is judged by
//! capability, never by uid: root without CAP_NET_ADMIN (a container, `setpriv
//! --bounding-set=-net_admin`) lacks it, and a service account given CAP_NET_ADMIN has it.

use crate::error::{Error, Result};

/// CAP_CHOWN: a rewritten host file keeps its owner.
pub const CAP_CHOWN: u32 = 0;
/// CAP_DAC_OVERRIDE: writing files and directories another account owns (dnsmasq's host files).
pub const CAP_DAC_OVERRIDE: u32 = 1;
/// CAP_KILL: signalling a daemon of another account (SIGHUP to dnsmasq).
pub const CAP_KILL: u32 = 5;
/// CAP_NET_ADMIN: reading the firewall over nfnetlink, the daemons' control sockets; changing
/// links, addresses, routes and network sysctls.
pub const CAP_NET_ADMIN: u32 = 12;
/// CAP_NET_RAW: raw sockets (the probe's SYNs, ARP probes, VRRP listening).
pub const CAP_NET_RAW: u32 = 13;
/// CAP_SYS_ADMIN: setns into another network namespace.
pub const CAP_SYS_ADMIN: u32 = 21;

/// The name of a capability as `capabilities(7)` spells it.
pub fn name(cap: u32) -> String {
    match cap {
        CAP_CHOWN => "CAP_CHOWN".into(),
        CAP_DAC_OVERRIDE => "CAP_DAC_OVERRIDE".into(),
        CAP_KILL => "CAP_KILL".into(),
        CAP_NET_ADMIN => "CAP_NET_ADMIN".into(),
        CAP_NET_RAW => "CAP_NET_RAW".into(),
        CAP_SYS_ADMIN => "CAP_SYS_ADMIN".into(),
        n => format!("capability {n}"),
    }
}

/// The effective capability set of the calling thread (capget(2); `CapEff` of
/// /proc/self/status when that fails; 0 when neither answers).
pub fn effective() -> u64 {
    capget_effective().unwrap_or_else(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        parse_cap_eff(&status)
    })
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two 32-bit halves.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget_effective() -> Option<u64> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a version-3 header and the two data elements that version writes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    (rc == 0).then(|| u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// `CapEff:` of a /proc/PID/status text.
pub fn parse_cap_eff(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Does the process have capability `cap` in its effective set? (uid 0 alone is not enough.)
pub fn has(cap: u32) -> bool {
    in_set(effective(), cap)
}

fn in_set(set: u64, cap: u32) -> bool {
    cap < 64 && set & (1u64 << cap) != 0
}

/// Of `needs` (a capability and what needs it), those missing from the effective set `set`.
pub fn missing_from(set: u64, needs: &[(u32, &'static str)]) -> Vec<(u32, &'static str)> {
    needs
        .iter()
        .copied()
        .filter(|(c, _)| !in_set(set, *c))
        .collect()
}

/// Ok when the process has every capability of `needs`; else `Error::Privilege` naming each
/// missing one and what needs it (the caller's name goes in front of the message).
pub fn require(needs: &[(u32, &'static str)]) -> Result<()> {
    require_in(effective(), needs)
}

/// [`require`] against a given effective set (pure).
pub fn require_in(set: u64, needs: &[(u32, &'static str)]) -> Result<()> {
    let lacking = missing_from(set, needs);
    if lacking.is_empty() {
        return Ok(());
    }
    let list = lacking
        .iter()
        .map(|(c, why)| format!("{} ({why})", name(*c)))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::privilege(format!(
        "needs {list}, which this process lacks (it is not in its effective capabilities): run it \
as root with its full capabilities (sudo), or grant {} to the process (systemd \
AmbientCapabilities=, setpriv --ambient-caps)",
        if lacking.len() == 1 { "it" } else { "them" }
    )))
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

    #[test]
    fn capget_agrees_with_proc_status() {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        assert_eq!(capget_effective(), Some(parse_cap_eff(&status)));
    }

    #[test]
    fn missing_capabilities_are_named_with_what_needs_them() {
        let needs = [
            (CAP_SYS_ADMIN, "setns"),
            (CAP_NET_ADMIN, "netlink"),
            (CAP_NET_RAW, "ARP probe"),
        ];
        let all = (1 << CAP_SYS_ADMIN) | (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW);
        assert_eq!(require_in(all, &needs), Ok(()));
        let e = require_in(1 << CAP_NET_ADMIN, &needs).expect_err("lacking");
        assert_eq!(e.exit_code(), 3);
        let m = e.message();
        assert!(m.contains("CAP_SYS_ADMIN (setns)"), "{m}");
        assert!(m.contains("CAP_NET_RAW (ARP probe)"), "{m}");
        assert!(
            !m.contains("CAP_NET_ADMIN") && !m.contains("needs root"),
            "{m}"
        );
        assert!(!in_set(u64::MAX, 64));
    }
}
