//! ovs-vswitchd's short text replies: `ovs/route/lookup`, `ovs/route/show` (the userspace
//! datapath's own routing table, which tunnel outputs use), `tnl/neigh/show` (its neighbor
//! cache), `dpif/show` (bridges, ports, OpenFlow and datapath port numbers) and `version`. Pure.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The answer to `ovs/route/lookup IP` (`src 198.51.100.21\ngateway ::\ndev br-phy\n`); a miss
/// is the error reply `Not found`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLookup {
    pub src: Option<IpAddr>,
    /// None when directly connected (OVS prints `::`).
    pub gateway: Option<IpAddr>,
    /// The bridge the tunnel traffic leaves by.
    pub dev: String,
}

/// Parse an `ovs/route/lookup` reply; None without a `dev` line.
pub fn parse_route_lookup(text: &str) -> Option<RouteLookup> {
    let mut src = None;
    let mut gateway = None;
    let mut dev = None;
    for l in text.lines() {
        let Some((k, v)) = l.trim().split_once(' ') else {
            continue;
        };
        let v = v.trim();
        match k {
            "src" => src = v.parse().ok(),
            "gateway" => gateway = v.parse().ok().filter(|g: &IpAddr| !g.is_unspecified()),
            "dev" => dev = Some(v.to_string()),
            _ => {}
        }
    }
    Some(RouteLookup {
        src,
        gateway,
        dev: dev?,
    })
}

/// One route of `ovs/route/show`:
/// `Cached: 198.51.100.0/24 [MARK 5] dev br-phy [GW 198.51.100.1] SRC 198.51.100.21 [local]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsRoute {
    /// Added with `ovs/route/add` (`User:`) rather than learned from the kernel (`Cached:`).
    pub user: bool,
    pub prefix: IpAddr,
    pub prefix_len: u8,
    pub mark: Option<u32>,
    pub dev: String,
    pub gateway: Option<IpAddr>,
    pub src: Option<IpAddr>,
    /// A route to one of the host's own addresses.
    pub local: bool,
}

/// Parse `ovs/route/show`; lines that are no route are skipped.
pub fn parse_route_show(text: &str) -> Vec<OvsRoute> {
    text.lines().filter_map(route_line).collect()
}

fn route_line(line: &str) -> Option<OvsRoute> {
    let (kind, rest) = line.trim().split_once(": ")?;
    let user = match kind {
        "User" => true,
        "Cached" => false,
        _ => return None,
    };
    let mut w = rest.split_whitespace();
    let (net, len) = w.next()?.split_once('/')?;
    let mut r = OvsRoute {
        user,
        prefix: net.parse().ok()?,
        prefix_len: len.parse().ok()?,
        mark: None,
        dev: String::new(),
        gateway: None,
        src: None,
        local: false,
    };
    while let Some(k) = w.next() {
        match k {
            "MARK" => r.mark = w.next().and_then(|m| m.parse().ok()),
            "dev" => r.dev = w.next()?.to_string(),
            "GW" => r.gateway = w.next().and_then(|g| g.parse().ok()),
            "SRC" => r.src = w.next().and_then(|s| s.parse().ok()),
            "local" => r.local = true,
            _ => {}
        }
    }
    (!r.dev.is_empty()).then_some(r)
}

/// The route OVS would use for `ip` (longest prefix, unmarked routes only), as
/// `ovs/route/lookup` picks it.
pub fn route_for(routes: &[OvsRoute], ip: IpAddr) -> Option<&OvsRoute> {
    routes
        .iter()
        .filter(|r| r.mark.is_none() && contains(r.prefix, r.prefix_len, ip))
        .max_by_key(|r| r.prefix_len)
}

fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let bits = |a: IpAddr| -> (u128, u32) {
        match a {
            IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
            IpAddr::V6(v) => (u128::from(v), 128),
        }
    };
    let ((n, nw), (i, iw)) = (bits(net), bits(ip));
    if nw != iw || u32::from(len) > nw {
        return false;
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    n & mask == i & mask
}

/// One entry of OVS's tunnel neighbor cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelNeighbor {
    pub ip: IpAddr,
    pub mac: String,
    pub bridge: String,
    /// Marked `STALE` (OVS still uses it).
    pub stale: bool,
}

/// Parse `tnl/neigh/show` (a header, a line of `=`, then `IP MAC BRIDGE [STALE]`).
pub fn parse_tnl_neigh(text: &str) -> Vec<TunnelNeighbor> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let ip = w.next()?.parse().ok()?;
            let mac = w.next()?.to_ascii_lowercase();
            let bridge = w.next()?.to_string();
            Some(TunnelNeighbor {
                ip,
                mac,
                bridge,
                stale: w.next() == Some("STALE"),
            })
        })
        .collect()
}

/// A port of `dpif/show`: `vxlan-c633640b 2/5: (vxlan: key=flow, remote_ip=198.51.100.11)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpPort {
    pub name: String,
    pub ofport: u32,
    /// Its datapath port (the numbers of `Datapath actions:`); None for a patch port.
    pub dp_port: Option<u32>,
    /// `system`, `internal`, `tap`, `patch`, `vxlan`, …
    pub kind: String,
    pub options: Vec<(String, String)>,
}

/// A bridge of `dpif/show` and the datapath it is on (`netdev@ovs-netdev`, `system@ovs-system`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpBridge {
    pub datapath: String,
    pub name: String,
    pub ports: Vec<DpPort>,
}

/// Parse `dpif/show`.
pub fn parse_dpif_show(text: &str) -> Vec<DpBridge> {
    let mut out: Vec<DpBridge> = Vec::new();
    let mut datapath = String::new();
    for line in text.lines() {
        let t = line.trim();
        if !line.starts_with(' ') {
            // `netdev@ovs-netdev: hit:3 missed:10`
            if let Some((dp, _)) = t.split_once(':') {
                datapath = dp.to_string();
            }
            continue;
        }
        if let Some(name) = t.strip_suffix(':').filter(|n| !n.contains(' ')) {
            out.push(DpBridge {
                datapath: datapath.clone(),
                name: name.to_string(),
                ports: Vec::new(),
            });
            continue;
        }
        if let (Some(b), Some(p)) = (out.last_mut(), dp_port(t)) {
            b.ports.push(p);
        }
    }
    out
}

fn dp_port(t: &str) -> Option<DpPort> {
    let (head, rest) = t.split_once(": ")?;
    let (name, nums) = head.rsplit_once(' ')?;
    let (of, dp) = nums.split_once('/')?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (kind, opts) = match inner.split_once(": ") {
        Some((k, o)) => (k, o),
        None => (inner, ""),
    };
    Some(DpPort {
        name: name.to_string(),
        ofport: of.parse().ok()?,
        dp_port: dp.parse().ok(),
        kind: kind.to_string(),
        options: opts
            .split(", ")
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect(),
    })
}

/// The port behind a datapath port number (as `Datapath actions:` prints them without
/// `--names`), and its bridge; `datapath` narrows the search when the host runs several.
pub fn dp_port_name<'a>(
    bridges: &'a [DpBridge],
    datapath: Option<&str>,
    dp_port: u32,
) -> Option<(&'a DpBridge, &'a DpPort)> {
    bridges
        .iter()
        .filter(|b| datapath.is_none_or(|d| b.datapath == d))
        .find_map(|b| {
            b.ports
                .iter()
                .find(|p| p.dp_port == Some(dp_port))
                .map(|p| (b, p))
        })
}

/// ovs-vswitchd's version (`ovs-vswitchd (Open vSwitch) 3.1.0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub program: String,
    /// As printed (`3.1.0`, `2.17.9`, `3.3.0-1ubuntu1`).
    pub version: String,
    pub major: u32,
    pub minor: u32,
}

/// Parse a `version` reply.
pub fn parse_version(text: &str) -> Option<Version> {
    let line = text.lines().next()?.trim();
    let (program, rest) = line.split_once(" (Open vSwitch) ")?;
    let version = rest.split_whitespace().next()?.to_string();
    let mut n = version.split(['.', '-', '~', '+']);
    let major = n.next()?.parse().ok()?;
    let minor = n.next()?.parse().ok()?;
    Some(Version {
        program: program.to_string(),
        version,
        major,
        minor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::ovsctl::tests::fixture;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal")
    }

    #[test]
    fn route_lookup_and_table() {
        // The capture holds the request lines too; the first reply is the hit.
        let text = fixture("route-lookup.txt");
        let hit: String = text
            .lines()
            .skip_while(|l| !l.starts_with("KEYS"))
            .skip(1)
            .take(3)
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            parse_route_lookup(&hit),
            Some(RouteLookup {
                src: Some(ip("198.51.100.21")),
                gateway: None,
                dev: "br-phy".into()
            })
        );
        assert_eq!(parse_route_lookup("Not found\n"), None);
        let routes = parse_route_show(&fixture("route-show.txt"));
        assert_eq!(routes.len(), 11);
        let r = route_for(&routes, ip("198.51.100.11")).expect("route");
        assert_eq!(
            *r,
            OvsRoute {
                user: false,
                prefix: ip("198.51.100.0"),
                prefix_len: 24,
                mark: None,
                dev: "br-phy".into(),
                gateway: None,
                src: Some(ip("198.51.100.21")),
                local: false
            }
        );
        assert!(
            route_for(&routes, ip("198.51.100.21")).is_some_and(|r| r.local && r.prefix_len == 32)
        );
        assert_eq!(route_for(&routes, ip("192.0.2.99")), None);
        let r = parse_route_show(
            "User: 192.0.2.0/24 MARK 5 dev br-phy GW 198.51.100.1 SRC 198.51.100.21\n",
        );
        assert_eq!(
            (r[0].user, r[0].mark, r[0].gateway),
            (true, Some(5), Some(ip("198.51.100.1")))
        );
        assert!(
            route_for(&r, ip("192.0.2.7")).is_none(),
            "marked routes need the mark"
        );
    }

    #[test]
    fn neighbor_cache() {
        assert!(parse_tnl_neigh(&fixture("neigh0.txt")).is_empty());
        let n = parse_tnl_neigh(&fixture("neigh1.txt"));
        assert_eq!(
            n,
            [
                TunnelNeighbor {
                    ip: ip("198.51.100.11"),
                    mac: "02:00:00:00:00:11".into(),
                    bridge: "br-phy".into(),
                    stale: false
                },
                TunnelNeighbor {
                    ip: ip("198.51.100.12"),
                    mac: "02:00:00:00:00:12".into(),
                    bridge: "br-phy".into(),
                    stale: false
                }
            ]
        );
        let s = parse_tnl_neigh("2001:db8::11   02:00:00:00:00:11   br-phy STALE\n");
        assert!(s[0].stale);
    }

    #[test]
    fn dpif_show_maps_datapath_ports_to_names() {
        let b = parse_dpif_show(&fixture("dpif-show.txt"));
        let names: Vec<&str> = b.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["br-ex", "br-int", "br-phy", "br-tun"]);
        assert!(b.iter().all(|x| x.datapath == "netdev@ovs-netdev"));
        let tun = &b[3];
        let vx = &tun.ports[2];
        assert_eq!(
            (vx.name.as_str(), vx.ofport, vx.dp_port, vx.kind.as_str()),
            ("vxlan-c633640b", 2, Some(5), "vxlan")
        );
        assert!(vx
            .options
            .contains(&("remote_ip".to_string(), "198.51.100.11".to_string())));
        let patch = &b[1].ports[2];
        assert_eq!((patch.name.as_str(), patch.dp_port), ("patch-tun", None));
        assert_eq!(
            patch.options,
            [("peer".to_string(), "patch-int".to_string())]
        );
        let (br, p) = dp_port_name(&b, None, 3).expect("port 3");
        assert_eq!(
            (br.name.as_str(), p.name.as_str(), p.kind.as_str()),
            ("br-int", "tapc6677132-b4", "system")
        );
        assert_eq!(dp_port_name(&b, Some("system@ovs-system"), 3), None);
        assert_eq!(b[0].ports[0].ofport, 65534);
    }

    #[test]
    fn version_reply() {
        let v = parse_version(&fixture("version.txt")).expect("version");
        assert_eq!(
            v,
            Version {
                program: "ovs-vswitchd".into(),
                version: "3.1.0".into(),
                major: 3,
                minor: 1
            }
        );
        assert_eq!(
            parse_version("ovs-vswitchd (Open vSwitch) 3.3.0-1ubuntu1\n").map(|v| v.minor),
            Some(3)
        );
        assert_eq!(parse_version("garbage"), None);
    }
}
