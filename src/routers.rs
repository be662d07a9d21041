//! `vmpath routers` / `vmpath router ID` on a gateway node: every `qrouter-*` namespace read on a
//! few setns worker threads, keepalived found from processes, Neutron's `ha_confs` read, and the
//! router checks run per router.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::check::router::{self, RouterFacts, Views};
use crate::collect::keepalived::{self, Keepalived, VrrpInstance};
use crate::collect::nsscan::{self, NsEntry};
use crate::model::{self, Check, Status};

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
    pub elapsed_ms: f64,
}

/// What `--peer` needs from the other gateway's document.
#[derive(Debug, Deserialize)]
struct PeerDoc {
    host: Option<String>,
    routers: Vec<PeerRouter>,
}
#[derive(Debug, Deserialize)]
struct PeerRouter {
    router_id: String,
    views: PeerViews,
}
#[derive(Debug, Deserialize)]
struct PeerViews {
    addresses: String,
    state_file: String,
}

/// Find Neutron's ha_confs directory from keepalived's configs.
fn ha_confs_of(kas: &[Keepalived]) -> Option<PathBuf> {
    kas.iter().find_map(|k| {
        let c = k.conf.as_ref()?;
        keepalived::router_id_of(c)?;
        Some(c.parent()?.parent()?.to_path_buf())
    })
}

pub fn run(opts: &Options) -> Result<RoutersReport, String> {
    let start = Instant::now();
    let entries = nsscan::list(&opts.netns_dir, &["qrouter-", "qdhcp-"]).map_err(|e| {
        format!(
            "cannot list namespaces in {}: {e} (is this a gateway node? use --netns-dir)",
            opts.netns_dir.display()
        )
    })?;
    let mut entries: Vec<NsEntry> = entries;
    if let Some(id) = &opts.only {
        entries.retain(|e| e.name == format!("qrouter-{id}"));
        if entries.is_empty() {
            return Err(format!(
                "no namespace qrouter-{id} in {}: is the router scheduled on this node? (`openstack network agent list --router {id}`)",
                opts.netns_dir.display()
            ));
        }
    }
    let kas = keepalived::discover();
    let ha_confs = opts.ha_confs.clone().or_else(|| ha_confs_of(&kas));
    let inode_of: HashMap<String, u64> = entries
        .iter()
        .filter_map(|e| {
            std::fs::metadata(&e.path)
                .ok()
                .map(|m| (e.name.clone(), m.ino()))
        })
        .collect();
    let facts = nsscan::scan(&entries, opts.workers, opts.timeout);
    let ct_max = nsscan::conntrack_max();
    let peer = match &opts.peer {
        Some(p) => Some(read_peer(p)?),
        None => None,
    };

    let mut routers = Vec::new();
    let mut dhcp = Vec::new();
    for f in &facts {
        if let Some(net_id) = f.name.strip_prefix("qdhcp-") {
            dhcp.push(DhcpNamespace {
                network_id: net_id.to_string(),
                namespace: f.name.clone(),
                interfaces: f
                    .net
                    .as_ref()
                    .map(|n| {
                        n.links
                            .iter()
                            .filter(|l| l.name != "lo")
                            .map(|l| format!("{} {}", l.name, l.oper))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
            continue;
        }
        let Some(id) = f.name.strip_prefix("qrouter-") else {
            continue;
        };
        let ino = inode_of.get(&f.name).copied();
        let ka = kas
            .iter()
            .find(|k| Some(k.netns_inode) == ino || k.router_id().as_deref() == Some(id));
        let conf_path = ka.and_then(|k| k.conf.clone()).or_else(|| {
            ha_confs
                .as_ref()
                .map(|d| d.join(id).join("keepalived.conf"))
        });
        let instances: Result<Vec<VrrpInstance>, String> = match &conf_path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .and_then(|t| {
                    keepalived::parse_conf(&t).map_err(|e| format!("{}: {e}", p.display()))
                }),
            None => Err("no keepalived and no ha_confs directory (give --ha-confs)".into()),
        };
        let instance = match &instances {
            Ok(v) => v
                .first()
                .ok_or_else(|| "no vrrp_instance in keepalived.conf".to_string()),
            Err(e) => Err(e.clone()),
        };
        let state_path = ha_confs
            .as_ref()
            .map(|d| d.join(id).join("state"))
            .or_else(|| {
                conf_path
                    .as_ref()
                    .and_then(|c| c.parent().map(|p| p.join("state")))
            });
        let state_file = match &state_path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("unreadable: {e}"))
                .and_then(|t| keepalived::parse_state(&t).ok_or_else(|| "empty".to_string())),
            None => Err("no ha_confs directory".into()),
        };
        let rf = RouterFacts {
            router_id: id,
            namespace: &f.name,
            net: f.net.as_ref().map_err(|e| e.as_str()),
            conntrack: &f.conntrack,
            conntrack_max: ct_max,
            keepalived: ka,
            instance,
            state_file,
            state_path: state_path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into()),
        };
        let mut checks = router::checks(&rf);
        let views = router::views(&rf);
        if let Some(p) = &peer {
            checks.push(peer_check(id, &views, p));
        }
        let conntrack_percent = match (f.conntrack.count, ct_max) {
            (Some(c), Some(m)) if m > 0 => Some((c as f64 * 1000.0 / m as f64).round() / 10.0),
            _ => None,
        };
        routers.push(RouterReport {
            router_id: id.to_string(),
            namespace: f.name.clone(),
            verdict: model::verdict(&checks),
            views,
            conntrack_percent,
            checks,
        });
    }
    let verdict = if routers.is_empty() {
        Status::Ok
    } else {
        routers
            .iter()
            .map(|r| r.verdict)
            .max()
            .unwrap_or(Status::Ok)
    };
    Ok(RoutersReport {
        host: crate::walk::hostname(),
        verdict,
        ha_confs: ha_confs.map(|p| p.display().to_string()),
        conntrack_max: ct_max,
        routers,
        dhcp,
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

fn read_peer(p: &Path) -> Result<PeerDoc, String> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| format!("cannot read --peer {}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "--peer {}: not the JSON of `vmpath routers --json` ({e})",
            p.display()
        )
    })
}

fn peer_check(id: &str, mine: &Views, peer: &PeerDoc) -> Check {
    let host = peer.host.clone().unwrap_or_else(|| "the peer".into());
    let Some(other) = peer.routers.iter().find(|r| r.router_id == id) else {
        return Check::warn("router.peer", format!("{host} does not have router {id}"))
            .fix("the router should be scheduled on two gateways: `openstack network agent list --router ID`");
    };
    let here = mine.addresses == "primary";
    let there = other.views.addresses == "primary";
    let ev = vec![
        format!(
            "here: addresses {}, state file {}",
            mine.addresses, mine.state_file
        ),
        format!(
            "{host}: addresses {}, state file {}",
            other.views.addresses, other.views.state_file
        ),
    ];
    match (here, there) {
        (true, true) => Check::fail("router.peer", format!("split-brain: primary here and on {host}"))
            .evidences(ev)
            .fix("VRRP between the gateways is cut (check the HA network and IP protocol 112 in the firewall); restart keepalived on one side"),
        (false, false) => Check::fail("router.peer", format!("no primary: neither here nor on {host}"))
            .evidences(ev)
            .fix("check keepalived on both gateways and the ha- ports (`openstack port list --device-owner network:router_ha_interface`)"),
        _ => Check::ok("router.peer", format!("exactly one primary ({})", if here { "here" } else { host.as_str() })).evidences(ev),
    }
}
