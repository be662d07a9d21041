//! Reading a gateway node once: every `qrouter-*`/`qdhcp-*` namespace (a few setns worker
//! threads), keepalived from its processes, Neutron's `ha_confs` (keepalived.conf and the state
//! file per router), keepalived's own report (its JSON dump), the node's BGP speaker asked about
//! every tenant prefix at once, the wire (`wire.rs`, when asked), the node's own links and OVSDB.
//! The result, [`Facts`], is what the pure checks in `checks.rs` look at.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{select_router, Options, Select};
use crate::check::router::{self, RouterFacts};
use crate::collect::bgp::{self, Spoken};
use crate::collect::files::MAX_TEXT;
use crate::collect::keepalived::{self, Keepalived, Reported, VrrpInstance};
use crate::collect::nsscan::{self, NsEntry, NsFacts};
use crate::collect::ovsdb::OvsPort;
use crate::collect::peer::PeerDoc;
use crate::collect::vrrp::Wire;
use crate::error::{Error, Result};

/// One router as read on this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouterRead {
    pub id: String,
    /// The router's namespace: links, addresses, routes, conntrack.
    pub ns: NsFacts,
    pub path: PathBuf,
    /// The keepalived running in the namespace, if any.
    pub keepalived: Option<Keepalived>,
    /// The VRRP instances of its keepalived.conf, or why it could not be read.
    pub instances: Result<Vec<VrrpInstance>>,
    /// What Neutron's state file says (`primary`, `backup`), or why it could not be read.
    pub state_file: Result<String>,
    pub state_path: String,
    /// keepalived's own report (`None`: not asked).
    pub reported: Option<Result<Reported>>,
    /// What was seen on the wire (empty when not listened).
    pub wire: Wire,
}

impl RouterRead {
    /// The checks' view of the router.
    pub fn view(&self, conntrack_max: Option<u64>) -> RouterFacts<'_> {
        RouterFacts {
            router_id: &self.id,
            namespace: &self.ns.name,
            net: self.ns.net.as_ref().map_err(|e| e.message()),
            conntrack: &self.ns.conntrack,
            conntrack_max,
            keepalived: self.keepalived.as_ref(),
            instance: match &self.instances {
                Ok(v) => v
                    .first()
                    .ok_or_else(|| Error::unknown("no vrrp_instance in keepalived.conf")),
                Err(e) => Err(e.clone()),
            },
            state_file: self.state_file.clone(),
            state_path: self.state_path.clone(),
            reported: self.reported.clone(),
        }
    }
}

/// Everything the gateway checks look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub host: String,
    pub ha_confs: Option<PathBuf>,
    pub conntrack_max: Option<u64>,
    pub routers: Vec<RouterRead>,
    /// The `qdhcp-*` namespaces.
    pub dhcp: Vec<NsFacts>,
    /// The node's own network namespace (its VXLAN devices, the routers' veth peers).
    pub node: NsFacts,
    /// What the node's BGP speakers said about the tenant prefixes (`None`: not asked,
    /// `--no-bgp`; empty: no speaker runs here).
    pub bgp: Option<Vec<Spoken>>,
    /// Each OVSDB socket and its ports, or why it could not be read.
    pub ovsdb: Vec<(String, Result<Vec<OvsPort>>)>,
    /// The other gateway's document (`--peer`).
    pub peer: Option<PeerDoc>,
    /// The config says this node must run a BGP speaker (`expect = ["bgp"]`).
    #[serde(default)]
    pub expect_bgp: bool,
    /// Neutron's L3 agents of each router (`--source`, with credentials; at most
    /// `MAX_ROUTERS_ASKED` routers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neutron: Option<crate::collect::openstack::RouterAgents>,
    /// This node's name in Neutron (the agents' `host`): the config's `neutron_host`, else the
    /// host name.
    #[serde(default)]
    pub neutron_host: String,
}

/// Neutron's ha_confs from its config (`state_path` in l3_agent.ini or neutron.conf, default
/// /var/lib/neutron), when that directory exists: found even when no keepalived runs.
fn neutron_ha_confs() -> Option<PathBuf> {
    let from_conf = ["/etc/neutron/l3_agent.ini", "/etc/neutron/neutron.conf"]
        .iter()
        .find_map(|f| {
            let text = crate::collect::files::read_text(Path::new(f), MAX_TEXT).ok()?;
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "state_path").then(|| PathBuf::from(v.trim()))
            })
        });
    let dir = from_conf
        .unwrap_or_else(|| PathBuf::from("/var/lib/neutron"))
        .join("ha_confs");
    dir.is_dir().then_some(dir)
}

/// Neutron's ha_confs directory from keepalived's configs.
fn ha_confs_of(kas: &[Keepalived]) -> Option<PathBuf> {
    kas.iter().filter(|k| k.untrusted.is_none()).find_map(|k| {
        let c = k.conf.as_ref()?;
        keepalived::router_id_of(c)?;
        Some(c.parent()?.parent()?.to_path_buf())
    })
}

/// The namespaces to read: every qrouter/qdhcp one, or only the router `opts.only` names.
fn entries(opts: &Options) -> Result<Vec<NsEntry>> {
    let mut entries = nsscan::list(&opts.netns_dir, &["qrouter-", "qdhcp-"]).map_err(|e| {
        let m = format!(
            "cannot list namespaces in {}: {e} (is this a gateway node? use --netns-dir)",
            opts.netns_dir.display()
        );
        // One router asked for: it is not on this node.
        if opts.only.is_some() {
            Error::NotHere(m)
        } else {
            Error::Unknown(m)
        }
    })?;
    if let Some(id) = &opts.only {
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let name = select_router(&names, id).map_err(|e| match e {
            Select::None(id) => Error::not_here(format!(
                "no namespace qrouter-{id} in {}: is the router scheduled on this node? (`openstack network agent list --router {id}`)",
                opts.netns_dir.display()
            )),
            Select::Ambiguous(id, of) => Error::usage(format!(
                "router id {id} is ambiguous on this node: {}; give more of the id",
                of.join(", ")
            )),
        })?;
        entries.retain(|e| e.name == name);
    }
    Ok(entries)
}

/// Read the node.
pub fn gather(opts: &Options) -> Result<Facts> {
    let entries = entries(opts)?;
    let peer = opts
        .peer
        .as_deref()
        .map(crate::collect::peer::read)
        .transpose()?;
    let inode_of: HashMap<String, u64> = entries
        .iter()
        .filter_map(|e| {
            std::fs::metadata(&e.path)
                .ok()
                .map(|m| (e.name.clone(), m.ino()))
        })
        .collect();
    // keepalived of THIS node: the ones running in one of its namespaces (other gateways'
    // processes are visible in /proc too when they share the kernel, as in a lab).
    let ours: HashSet<u64> = inode_of.values().copied().collect();
    let kas: Vec<Keepalived> = keepalived::discover(&opts.trust)
        .into_iter()
        .filter(|k| ours.contains(&k.netns_inode))
        .collect();
    // Neutron's own processes: the state monitor in one of our router namespaces, or the L3
    // agent in this node's network namespace.
    let own_ns = crate::collect::procs::own_netns_inode();
    let from_neutron = || {
        keepalived::discover_neutron(&opts.trust)
            .into_iter()
            .find(|(ino, _, _)| ours.contains(ino) || Some(*ino) == own_ns)
            .map(|(_, d, _)| d)
    };
    let ha_confs = opts
        .ha_confs
        .clone()
        .or_else(|| ha_confs_of(&kas))
        .or_else(from_neutron)
        .or_else(neutron_ha_confs);
    let scanned = nsscan::scan(&entries, opts.workers, opts.timeout);
    let conntrack_max = nsscan::conntrack_max();

    let mut routers = Vec::new();
    let mut dhcp = Vec::new();
    for (ns, e) in scanned.into_iter().zip(&entries) {
        if ns.name.starts_with("qdhcp-") {
            dhcp.push(ns);
            continue;
        }
        let Some(id) = ns.name.strip_prefix("qrouter-").map(str::to_string) else {
            continue;
        };
        let ino = inode_of.get(&ns.name).copied();
        let ka = kas.iter().find(|k| Some(k.netns_inode) == ino).cloned();
        routers.push(read_router(id, ns, e.path.clone(), ka, ha_confs.as_deref()));
    }
    // Neutron's view of the routers' agents, asked while the node is read.
    let neutron = opts.neutron.cloud.clone().and_then(|c| {
        (routers.len() <= crate::collect::openstack::MAX_ROUTERS_ASKED).then(|| {
            let ids = routers.iter().map(|r| r.id.clone()).collect();
            crate::collect::openstack::spawn_router_agents(c, ids, opts.timeout)
        })
    });
    // One process scan for the node's BGP speakers and its OVSDB servers.
    let procs = crate::collect::procs::ProcTable::scan().unwrap_or_default();
    // The node's BGP speakers, asked about every tenant prefix at once while keepalived is.
    let bgp_running = opts.bgp.then(|| {
        let mut all: Vec<(IpAddr, u8)> = routers
            .iter()
            .flat_map(|r| router::tenant_prefixes(&r.instances, &r.ns.net))
            .collect();
        all.sort();
        all.dedup();
        let speakers = bgp::discover(&procs, &opts.bgp_overrides, &opts.trust);
        bgp::spawn_collect(speakers, &all, opts.timeout)
    });
    if opts.dump {
        ask_keepalived(&mut routers, opts.timeout);
    }
    if opts.wire != super::WireMode::Off {
        let views: Vec<(PathBuf, RouterFacts<'_>)> = routers
            .iter()
            .map(|r| (r.path.clone(), r.view(conntrack_max)))
            .collect();
        let adverts = opts.wire == super::WireMode::Listen;
        let wires = super::wire::listen(&views, opts.workers, adverts);
        for (r, w) in routers.iter_mut().zip(wires) {
            r.wire = w;
        }
    }
    let node = nsscan::read_here("host", opts.timeout);
    let bgp = bgp_running.map(bgp::join);
    let servers = crate::collect::ovsdb::servers(&opts.ovsdb, &procs.procs, &opts.trust);
    let ovsdb = servers
        .iter()
        .map(|s| {
            let answer = match &s.untrusted {
                Some(why) => Err(Error::unknown(format!("not asked: {why}"))),
                None => crate::collect::ovsdb::query(&s.socket, opts.timeout),
            };
            (s.socket.display().to_string(), answer)
        })
        .collect();
    let host = crate::collect::hostname::hostname();
    Ok(Facts {
        neutron: neutron.and_then(|h| h.join().ok()),
        neutron_host: opts.neutron.host.clone().unwrap_or_else(|| host.clone()),
        host,
        ha_confs,
        conntrack_max,
        routers,
        dhcp,
        node,
        bgp,
        ovsdb,
        peer,
        expect_bgp: opts.expect_bgp,
    })
}

/// One router's keepalived.conf and state file.
fn read_router(
    id: String,
    ns: NsFacts,
    path: PathBuf,
    ka: Option<Keepalived>,
    ha_confs: Option<&Path>,
) -> RouterRead {
    let conf_path = ka
        .as_ref()
        .and_then(|k| k.conf.clone())
        .or_else(|| ha_confs.map(|d| d.join(&id).join("keepalived.conf")));
    // A config a keepalived names is read as that keepalived could read it.
    let uid = ka.as_ref().and_then(|k| k.uid).unwrap_or(0);
    let instances: Result<Vec<VrrpInstance>> = match &conf_path {
        Some(p) => crate::collect::files::read_for(p, uid, MAX_TEXT)
            .map_err(|e| Error::unknown(format!("{}: {e}", p.display())))
            .and_then(|t| keepalived::parse_conf(&t).map_err(|e| e.context(p.display()))),
        None => Err(Error::unknown(
            "no keepalived and no ha_confs directory (give --ha-confs)",
        )),
    };
    let state_path = ha_confs.map(|d| d.join(&id).join("state")).or_else(|| {
        conf_path
            .as_ref()
            .and_then(|c| c.parent().map(|p| p.join("state")))
    });
    let state_file = match &state_path {
        Some(p) => crate::collect::files::read_text(p, 1 << 16)
            .map_err(|e| Error::unknown(format!("unreadable: {e}")))
            .and_then(|t| keepalived::parse_state(&t).ok_or_else(|| Error::unknown("empty"))),
        None => Err(Error::unknown("no ha_confs directory")),
    };
    RouterRead {
        id,
        ns,
        path,
        keepalived: ka,
        instances,
        state_file,
        state_path: state_path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "-".into()),
        reported: None,
        wire: Wire::default(),
    }
}

/// Ask each live keepalived for its own state, one at a time (keepalived processes sharing a
/// tmp dir write the same dump file), within one overall budget.
fn ask_keepalived(routers: &mut [RouterRead], budget: Duration) {
    let deadline = Instant::now() + budget.max(Duration::from_secs(1));
    // One signal number, from the system's own binary, asked once and only when needed.
    let mut signal: Option<Result<(PathBuf, i32)>> = None;
    for r in routers.iter_mut() {
        let Some(k) = r.keepalived.as_ref().filter(|k| k.vrrp_pid.is_some()) else {
            continue;
        };
        if let Some(why) = &k.untrusted {
            r.reported = Some(Err(Error::unknown(format!("not asked: {why}"))));
            continue;
        }
        let sig = signal
            .get_or_insert_with(|| keepalived::json_signal(Duration::from_secs(2)))
            .clone()
            .and_then(|(bin, n)| keepalived::runs_binary(k, &bin).map(|()| n));
        let iface = r
            .instances
            .as_ref()
            .ok()
            .and_then(|v| v.first())
            .and_then(|i| i.interface.clone());
        let now = Instant::now();
        r.reported = Some(if now >= deadline {
            Err(Error::unknown(format!(
                "not asked: the {:?} budget was spent on the other routers (raise --timeout)",
                budget.max(Duration::from_secs(1))
            )))
        } else {
            sig.and_then(|sig| {
                let one = deadline.min(now + Duration::from_secs(1));
                keepalived::ask(k, sig, iface.as_deref(), one).and_then(|v| {
                    v.into_iter()
                        .find(|r| iface.as_deref().is_none_or(|i| r.interface == i))
                        .ok_or_else(|| Error::unknown("keepalived's dump has no VRRP instance"))
                })
            })
        });
    }
}
