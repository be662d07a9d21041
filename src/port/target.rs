//! What the user names on the command line: a VM address, a Neutron port UUID or its
//! 11-character prefix, a tap name, or a MAC address.

use std::net::IpAddr;

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    Ip(IpAddr),
    /// Full port UUID, lower case.
    PortId(String),
    /// The 11 characters of the port UUID that Nova puts in the tap name (`3f1c2a4e-5b`).
    PortPrefix(String),
    Tap(String),
    /// Lower case, colon separated.
    Mac(String),
}

/// Length of the port-id part of a Nova tap name (`NIC_NAME_LEN` 14 minus "tap").
pub const PORT_PREFIX_LEN: usize = 11;

pub const ACCEPTED: &str = "a VM IPv4/IPv6 address (198.51.100.11), a Neutron port UUID \
(3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51) or instance UUID, its 11-character prefix (3f1c2a4e-5b), a tap name \
(tap3f1c2a4e-5b) or a MAC address (fa:16:3e:00:00:01)";

fn is_hex_dash(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-')
}

fn is_uuid(s: &str) -> bool {
    crate::collect::dnsmasq::looks_like_uuid(s)
}

/// A MAC in `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` form, returned normalised.
pub fn parse_mac(s: &str) -> Option<String> {
    let sep = if s.contains(':') { ':' } else { '-' };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

/// A port-id prefix as found in a tap name: 8 hex, a dash, 2 hex.
pub fn is_port_prefix(s: &str) -> bool {
    s.len() == PORT_PREFIX_LEN
        && s.as_bytes()[8] == b'-'
        && s.bytes()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_hexdigit())
}

impl Target {
    pub fn parse(raw: &str) -> Result<Target> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(Error::usage(format!("empty target: give {ACCEPTED}")));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Target::Ip(ip));
        }
        if let Some(mac) = parse_mac(s) {
            return Ok(Target::Mac(mac));
        }
        if is_uuid(s) {
            return Ok(Target::PortId(s.to_ascii_lowercase()));
        }
        if is_port_prefix(s) {
            return Ok(Target::PortPrefix(s.to_ascii_lowercase()));
        }
        // A hybrid plug's devices (os-vif: qbr, qvb, qvo + the port prefix) name the port too.
        if let Some(rest) = ["qbr", "qvb", "qvo"].iter().find_map(|p| s.strip_prefix(p)) {
            if is_port_prefix(&rest.to_ascii_lowercase()) {
                return Ok(Target::Tap(s.to_string()));
            }
        }
        if let Some(rest) = s.strip_prefix("tap") {
            if rest.len() == PORT_PREFIX_LEN && is_port_prefix(&rest.to_ascii_lowercase()) {
                return Ok(Target::Tap(s.to_string()));
            }
            if !rest.is_empty() && s.len() <= 15 && !s.contains(['/', ' ']) {
                // Not Nova-named, but a valid interface name starting with "tap".
                return Ok(Target::Tap(s.to_string()));
            }
            return Err(Error::usage(format!(
                "malformed tap name '{raw}': a Nova tap is 'tap' + the first 11 characters of the port UUID (tap3f1c2a4e-5b)"
            )));
        }
        // Diagnose near misses so the operator sees what was wrong.
        if s.contains(['.', ':'])
            && s.bytes()
                .all(|c| c.is_ascii_hexdigit() || b".:".contains(&c))
        {
            return Err(Error::usage(format!(
                "malformed IP or MAC address '{raw}': give {ACCEPTED}"
            )));
        }
        if is_hex_dash(s) && s.contains('-') {
            return Err(Error::usage(format!(
                "malformed port UUID '{raw}': a port UUID has 36 characters (8-4-4-4-12) and its tap prefix 11 (3f1c2a4e-5b); give {ACCEPTED}"
            )));
        }
        Err(Error::usage(format!(
            "unrecognised target '{raw}': give {ACCEPTED}"
        )))
    }

    /// The tap name the target implies by itself, when it does.
    pub fn implied_tap(&self) -> Option<String> {
        match self {
            Target::PortId(id) => Some(format!("tap{}", &id[..PORT_PREFIX_LEN])),
            Target::PortPrefix(p) => Some(format!("tap{p}")),
            Target::Tap(t) => Some(t.clone()),
            _ => None,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Ip(ip) => write!(f, "{ip}"),
            Target::PortId(s) | Target::PortPrefix(s) | Target::Tap(s) | Target::Mac(s) => {
                f.write_str(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form() {
        assert_eq!(
            Target::parse("198.51.100.11"),
            Ok(Target::Ip("198.51.100.11".parse().expect("ip")))
        );
        assert!(matches!(
            Target::parse("2001:db8:100::11"),
            Ok(Target::Ip(_))
        ));
        assert_eq!(
            Target::parse("FA-16-3E-00-00-01"),
            Ok(Target::Mac("fa:16:3e:00:00:01".into()))
        );
        assert_eq!(
            Target::parse("3F1C2A4E-5b6d-4e7f-8a9b-0c1d2e3f4a51"),
            Ok(Target::PortId(
                "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51".into()
            ))
        );
        assert_eq!(
            Target::parse("3f1c2a4e-5b"),
            Ok(Target::PortPrefix("3f1c2a4e-5b".into()))
        );
        assert_eq!(
            Target::parse("tap3f1c2a4e-5b"),
            Ok(Target::Tap("tap3f1c2a4e-5b".into()))
        );
        assert_eq!(
            Target::parse("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51")
                .ok()
                .and_then(|t| t.implied_tap()),
            Some("tap3f1c2a4e-5b".into())
        );
    }

    #[test]
    fn malformed_input_names_what_was_given_and_what_is_accepted() {
        for bad in [
            "198.51.100.300",
            "fa:16:3e:00:00",
            "3f1c2a4e-5b6d-4e7f",
            "hello",
            "",
            "tap/../x",
            "zz:zz",
        ] {
            let e = Target::parse(bad).expect_err(bad);
            assert!(e.message().contains(bad) || bad.is_empty(), "{e}");
            assert!(
                e.message().contains("give") || e.message().contains("tap"),
                "{e}"
            );
        }
    }
}
