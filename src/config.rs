//! `/etc/vmpath/config.toml` (or `--config FILE`): values that override discovery. Flags
//! override the file. Every key is optional.
//!
//! ```toml
//! timeout = "2s"               # per daemon query
//! mtu = 1450                   # expected network MTU
//! gateways = ["198.51.100.1/24", "2001:db8:100::1/64"]
//! bird_socket = "/run/bird/bird.ctl"
//! frr_dir = "/run/frr"         # dir with bgpd.vty / zebra.vty
//! dhcp_hostsdir = "/var/lib/neutron/dhcp-hosts"
//! ha_confs = "/var/lib/neutron/ha_confs"   # gateway nodes: Neutron's keepalived dirs
//! expect = ["dhcp", "bgp"]     # components this host must run (default: judged by what runs)
//! trusted_accounts = ["nobody"]   # daemons' accounts to trust besides root (README "Security")
//! cloud = "prod"               # the clouds.yaml cloud to ask Neutron through (else OS_CLOUD)
//! neutron_host = "hv1"         # this host's name in Neutron's binding:host_id (else the host name)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_PATH: &str = "/etc/vmpath/config.toml";

/// What `expect` may name.
pub const EXPECTABLE: &[&str] = &["dhcp", "bgp"];

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub timeout: Option<String>,
    pub mtu: Option<u32>,
    #[serde(default)]
    pub gateways: Vec<String>,
    pub bird_socket: Option<PathBuf>,
    pub frr_dir: Option<PathBuf>,
    pub dhcp_hostsdir: Option<PathBuf>,
    pub ha_confs: Option<PathBuf>,
    /// Components this host must run: `dhcp` (a dnsmasq serving the taps), `bgp` (a BGP speaker
    /// on a gateway node). Without it, a component that does not run here is "not used here".
    #[serde(default)]
    pub expect: Vec<String>,
    /// Accounts (names or uids) whose daemons are trusted as sources of paths and sockets
    /// besides root and daemons that kept capabilities from root (see README "Security").
    #[serde(default)]
    pub trusted_accounts: Vec<String>,
    /// The clouds.yaml cloud to read Neutron through when neither `--os-cloud` nor `OS_CLOUD`
    /// names one.
    pub cloud: Option<String>,
    /// This host's name as Neutron binds ports to it (`binding:host_id`; the agents' `host`
    /// option), when it is not the host name.
    pub neutron_host: Option<String>,
}

impl Config {
    /// Load the given file (must exist) or the default one (may be absent).
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        // A regular file of at most 1 MiB: not a FIFO, not a device (which would hang or fill
        // memory).
        let text = match crate::collect::files::read_text(&path, 1 << 20) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default())
            }
            Err(e) => {
                return Err(Error::usage(format!(
                    "cannot read config {}: {e} (fix the path given to --config)",
                    path.display()
                )))
            }
        };
        Self::parse(&text).map_err(|e| e.context(format!("config {}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).map_err(|e| Error::usage(e.message()))?;
        for e in &c.expect {
            if !EXPECTABLE.contains(&e.as_str()) {
                return Err(Error::usage(format!(
                    "expect: unknown component '{e}' (known: {})",
                    EXPECTABLE.join(", ")
                )));
            }
        }
        Ok(c)
    }

    /// `trusted_accounts` as uids; an unknown account name is a usage error.
    pub fn trust(&self) -> Result<crate::collect::trust::Policy> {
        let mut uids = Vec::new();
        for a in &self.trusted_accounts {
            let uid = match a.parse::<u32>() {
                Ok(n) => n,
                Err(_) => nix::unistd::User::from_name(a)
                    .ok()
                    .flatten()
                    .map(|u| u.uid.as_raw())
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "trusted_accounts: no account named '{a}' on this host"
                        ))
                    })?,
            };
            uids.push(uid);
        }
        Ok(crate::collect::trust::Policy { uids })
    }

    /// Is `component` (`dhcp`, `bgp`) listed in `expect`?
    pub fn expects(&self, component: &str) -> bool {
        self.expect.iter().any(|e| e == component)
    }
}

/// Parse a duration: `2s`, `500ms`, `1.5s`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let t = s.trim();
    let (num, mult) = if let Some(v) = t.strip_suffix("ms") {
        (v, 0.001)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| Error::usage(format!("invalid duration '{s}': use e.g. 2s, 500ms or 1.5")))?;
    // Compared in whole microseconds so that `1ms` itself is not lost to rounding.
    if !(v.is_finite() && (v * mult * 1e6).round() >= 1000.0 && v * mult <= 3600.0) {
        return Err(Error::usage(format!(
            "invalid duration '{s}': must be between 1ms and 3600s, e.g. 2s or 500ms"
        )));
    }
    Ok(std::time::Duration::from_secs_f64(v * mult))
}

/// Parse `ADDR/LEN` (or a bare address: /24 for IPv4, /64 for IPv6).
pub fn parse_gateway(s: &str) -> Result<(std::net::IpAddr, u8)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = a.trim().parse().map_err(|_| {
        Error::usage(format!(
            "invalid gateway '{s}': use ADDR/LEN, e.g. 198.51.100.1/24"
        ))
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        None => {
            if addr.is_ipv4() {
                24
            } else {
                64
            }
        }
        Some(l) => l.parse::<u8>().ok().filter(|x| *x <= max).ok_or_else(|| {
            Error::usage(format!("invalid prefix length in gateway '{s}': 0..{max}"))
        })?,
    };
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses_and_unknown_keys_are_rejected() {
        let c = Config::parse(
            "timeout = \"500ms\"\nmtu = 9000\ngateways = [\"198.51.100.1/24\"]\nbird_socket = \"/run/bird/x.ctl\"\n",
        )
        .expect("parse");
        assert_eq!(c.mtu, Some(9000));
        assert_eq!(c.gateways.len(), 1);
        assert!(Config::parse("mtuu = 1").is_err());
        assert!(Config::parse("expect = [\"dhcp\", \"bgp\"]").is_ok_and(|c| c.expects("dhcp")));
        assert!(Config::parse("expect = [\"dns\"]").is_err());
        assert!(Config::load(Some(Path::new("/nonexistent/vmpath.toml"))).is_err());
    }

    #[test]
    fn durations_and_gateways() {
        assert_eq!(parse_duration("2s"), Ok(std::time::Duration::from_secs(2)));
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("1.5"),
            Ok(std::time::Duration::from_millis(1500))
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("0.5ms").is_err());
        assert!(parse_duration("0.0001").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(
            parse_duration("1ms"),
            Ok(std::time::Duration::from_millis(1))
        );
        assert_eq!(
            parse_duration("0.001"),
            Ok(std::time::Duration::from_millis(1))
        );
        assert_eq!(
            parse_gateway("198.51.100.1/24"),
            Ok(("198.51.100.1".parse().expect("ip"), 24))
        );
        assert_eq!(parse_gateway("2001:db8::1").map(|g| g.1), Ok(64));
        assert!(parse_gateway("198.51.100.1/33").is_err());
        assert!(parse_gateway("gw").is_err());
    }
}
