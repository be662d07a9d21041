//! `vmpath routers` / `vmpath router ID` on a gateway node: read the node once (`gather.rs`,
//! with the wire in `wire.rs`), then the pure checks (`checks.rs`). Also which router a `vmpath
//! walk` target names on a gateway node.

pub mod checks;
pub mod gather;
pub mod wire;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use gather::Facts;

use crate::check::router::Views;
use crate::error::Result;
use crate::model::{Check, Status};
use crate::port::target::Target;

#[derive(Debug, Clone)]
pub struct Options {
    /// Where the host's named namespaces are (`/run/netns`).
    pub netns_dir: PathBuf,
    /// Neutron's ha_confs directory; found from keepalived's command lines when `None`.
    pub ha_confs: Option<PathBuf>,
    /// Only this router.
    pub only: Option<String>,
    /// The other gateway's `vmpath routers --json`.
    pub peer: Option<PathBuf>,
    pub timeout: Duration,
    pub workers: usize,
    /// Listen for VRRP adverts and probe the gateway address (takes 3 advert intervals).
    pub wire: WireMode,
    /// OVSDB sockets to read (found from ovsdb-server processes when empty).
    pub ovsdb: Vec<PathBuf>,
    /// Ask each router's keepalived for its own state (its JSON dump).
    pub dump: bool,
    /// Ask the node's BGP speaker whether each router's tenant prefixes are advertised.
    pub bgp: bool,
    pub bgp_overrides: crate::collect::bgp::Overrides,
    /// The node must run a BGP speaker (config `expect = ["bgp"]`).
    pub expect_bgp: bool,
    /// Which daemons are trusted as sources of paths, sockets and signals.
    pub trust: crate::collect::trust::Policy,
    /// Neutron (`--source`): the routers' L3 agents and their `ha_state`, against this node.
    pub neutron: crate::port::source::Source,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouterReport {
    pub router_id: String,
    pub namespace: String,
    pub verdict: Status,
    /// keepalived, the state file and the addresses, side by side.
    pub views: Views,
    /// Percent of nf_conntrack_max used in the namespace.
    pub conntrack_percent: Option<f64>,
    /// The tenant prefixes behind the router (its qr- gateway subnets), asked of the node's
    /// BGP speaker.
    pub tenant_prefixes: Vec<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DhcpNamespace {
    pub network_id: String,
    pub namespace: String,
    /// `name state` of each interface (lo excluded).
    pub interfaces: Vec<String>,
}

/// The document of `vmpath routers --json` (and `vmpath router ID --json`).
#[derive(Debug, Clone, Serialize)]
pub struct RoutersReport {
    pub host: String,
    pub verdict: Status,
    pub ha_confs: Option<String>,
    pub conntrack_max: Option<u64>,
    pub routers: Vec<RouterReport>,
    pub dhcp: Vec<DhcpNamespace>,
    /// Checks of the node itself (OVS ports), same shape as a router's.
    pub host_checks: Vec<Check>,
    pub elapsed_ms: f64,
}

impl Options {
    /// What `vmpath routers` does without flags: every router, no listening, keepalived's own
    /// report and the BGP speaker asked.
    pub fn new(timeout: Duration) -> Options {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Options {
            netns_dir: PathBuf::from(DEFAULT_NETNS_DIR),
            ha_confs: None,
            only: None,
            peer: None,
            timeout,
            workers: (cpus * 2).clamp(2, 16),
            wire: WireMode::Probe,
            ovsdb: Vec::new(),
            dump: true,
            bgp: true,
            bgp_overrides: crate::collect::bgp::Overrides::default(),
            expect_bgp: false,
            trust: crate::collect::trust::Policy::default(),
            neutron: crate::port::source::Source::default(),
        }
    }
}

/// How much of the wire to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireMode {
    /// Nothing (`--no-wire`, `router ID --no-listen`).
    Off,
    /// The duplicate-address ARP probe of every primary's gateway address, within
    /// [`wire::PROBE_WINDOW`]: a split-brain shows in the overview (`routers`' default).
    Probe,
    /// The probe, and listening for VRRP adverts for three advert intervals (`router ID`,
    /// `routers --listen`): also a backup that hears no primary.
    Listen,
}

/// The capabilities reading the node with `opts` needs, each with what needs it.
pub fn needs(opts: &Options) -> Vec<(u32, &'static str)> {
    use crate::collect::caps;
    let mut v = vec![
        (caps::CAP_SYS_ADMIN, "setns into each qrouter namespace"),
        (
            caps::CAP_NET_ADMIN,
            "netlink in the namespaces, the BGP speaker's control socket",
        ),
    ];
    if opts.wire != WireMode::Off {
        v.push((
            caps::CAP_NET_RAW,
            "the ARP probe and VRRP listening; --no-wire skips them",
        ));
    }
    v
}

/// Where the host's named network namespaces are.
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";

/// Read the node and check it: the report, and the facts it was computed from.
pub fn run(opts: &Options) -> Result<(RoutersReport, Facts)> {
    let start = Instant::now();
    let facts = gather::gather(opts)?;
    let mut report = checks::report(&facts);
    report.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok((report, facts))
}

/// Why a router id names no single namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum Select {
    None(String),
    /// The id given and the router ids it starts (at most 5 shown).
    Ambiguous(String, Vec<String>),
}

/// The qrouter namespace a router id names: the whole id (with or without `qrouter-`), or a prefix
/// of one id (as operators copy the first 8 characters from a listing). Pure.
pub fn select_router(names: &[&str], id: &str) -> Result<String, Select> {
    let id = id
        .trim()
        .trim_start_matches("qrouter-")
        .to_ascii_lowercase();
    let want = format!("qrouter-{id}");
    if names.contains(&want.as_str()) {
        return Ok(want);
    }
    let mut hits: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !id.is_empty() && n.starts_with(&want))
        .collect();
    hits.sort_unstable();
    match hits.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Select::None(id)),
        many => Err(Select::Ambiguous(
            id,
            many.iter()
                .take(5)
                .map(|n| n.trim_start_matches("qrouter-").to_string())
                .chain((many.len() > 5).then(|| format!("… {} in all", many.len())))
                .collect(),
        )),
    }
}

/// A `vmpath walk` target on a gateway node: the router it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterTarget {
    pub router_id: String,
    /// For a tenant address: the address and the router's tenant prefixes that hold it.
    pub behind: Option<(IpAddr, Vec<String>)>,
}

/// The router a `vmpath walk` target names on this node (its id, or a tenant address behind
/// it), or `None` when this is no gateway node or the target is neither. `base` says where to
/// read (the netns dir, ha_confs). A tenant address costs one quick local read of every router
/// (no keepalived dump, BGP, OVSDB or wire).
pub fn router_for(target: &Target, base: &Options) -> Option<RouterTarget> {
    let routers: Vec<String> = std::fs::read_dir(&base.netns_dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("qrouter-"))
        .collect();
    if routers.is_empty()
        || !crate::collect::caps::missing_from(crate::collect::caps::effective(), &needs(base))
            .is_empty()
    {
        return None;
    }
    let names: Vec<&str> = routers.iter().map(String::as_str).collect();
    match target {
        Target::PortId(id) | Target::PortPrefix(id) => {
            select_router(&names, id).ok().map(|_| RouterTarget {
                router_id: id.clone(),
                behind: None,
            })
        }
        Target::Ip(ip) => {
            let mut quick = base.clone();
            quick.only = None;
            quick.wire = WireMode::Off;
            quick.dump = false;
            quick.bgp = false;
            quick.ovsdb = Vec::new();
            let (rep, _) = run(&quick).ok()?;
            let r = rep.routers.iter().find(|r| {
                r.tenant_prefixes.iter().any(|p| {
                    let Some((net, len)) = p.split_once('/') else {
                        return false;
                    };
                    match (net.parse(), len.parse()) {
                        (Ok(net), Ok(len)) => {
                            crate::collect::netlink::prefix_contains(net, len, *ip)
                        }
                        _ => false,
                    }
                })
            })?;
            Some(RouterTarget {
                router_id: r.router_id.clone(),
                behind: Some((*ip, r.tenant_prefixes.clone())),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_is_named_by_its_id_or_a_unique_prefix() {
        let names = [
            "qrouter-6a1d4f2e-8b3c-4d5e-9f60-7a8b9c0d1e21",
            "qrouter-6a1d9999-0000-4d5e-9f60-7a8b9c0d1e22",
            "qdhcp-6a1d4f2e-0000-4d5e-9f60-7a8b9c0d1e23",
        ];
        let full = "qrouter-6a1d4f2e-8b3c-4d5e-9f60-7a8b9c0d1e21";
        assert_eq!(select_router(&names, &full[8..]).as_deref(), Ok(full));
        assert_eq!(select_router(&names, full).as_deref(), Ok(full));
        assert_eq!(select_router(&names, "6A1D4F2E").as_deref(), Ok(full));
        match select_router(&names, "6a1d") {
            Err(Select::Ambiguous(id, of)) => {
                assert_eq!(id, "6a1d");
                assert_eq!(of.len(), 2, "{of:?}");
            }
            other => panic!("{other:?}"),
        }
        // qdhcp namespaces are not routers; an empty id names none
        assert!(matches!(
            select_router(&names, "6a1d4f2e-0000"),
            Err(Select::None(_))
        ));
        assert!(matches!(select_router(&names, ""), Err(Select::None(_))));
        assert!(matches!(select_router(&[], "6a1d"), Err(Select::None(_))));
    }
}
