//! `vmpath routers` / `vmpath router ID` on a gateway node: every `qrouter-*` namespace read on a
//! few setns worker threads, keepalived found from processes, Neutron's `ha_confs` read, and the
//! router checks run per router.

use std::collections::HashMap;
use std::net::IpAddr;
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
    /// Listen for VRRP adverts and probe the gateway address (takes 3 advert intervals).
    pub wire: bool,
    /// OVSDB sockets to read (found from ovsdb-server processes when empty).
    pub ovsdb: Vec<PathBuf>,
    /// Ask each router's keepalived for its own state (its JSON dump).
    pub dump: bool,
    /// Ask the node's BGP speaker whether each router's tenant prefixes are advertised.
    pub bgp: bool,
    pub bgp_overrides: crate::collect::bgp::Overrides,
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

/// One router's facts before the checks.
struct Prep<'a> {
    id: &'a str,
    f: &'a nsscan::NsFacts,
    path: PathBuf,
    ka: Option<&'a Keepalived>,
    instances: Result<Vec<VrrpInstance>, String>,
    state_file: Result<String, String>,
    state_path: String,
    reported: Option<Result<keepalived::Reported, String>>,
}

fn facts_of<'a>(p: &'a Prep<'a>, ct_max: Option<u64>) -> RouterFacts<'a> {
    RouterFacts {
        router_id: p.id,
        namespace: &p.f.name,
        net: p.f.net.as_ref().map_err(|e| e.as_str()),
        conntrack: &p.f.conntrack,
        conntrack_max: ct_max,
        keepalived: p.ka,
        instance: match &p.instances {
            Ok(v) => v
                .first()
                .ok_or_else(|| "no vrrp_instance in keepalived.conf".to_string()),
            Err(e) => Err(e.clone()),
        },
        state_file: p.state_file.clone(),
        state_path: p.state_path.clone(),
        reported: p.reported.clone(),
    }
}

/// Neutron's ha_confs from its config (`state_path` in l3_agent.ini or neutron.conf, default
/// /var/lib/neutron), when that directory exists: found even when no keepalived runs.
fn neutron_ha_confs() -> Option<PathBuf> {
    let from_conf = ["/etc/neutron/l3_agent.ini", "/etc/neutron/neutron.conf"]
        .iter()
        .find_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
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

/// Find Neutron's ha_confs directory from keepalived's configs.
fn ha_confs_of(kas: &[Keepalived]) -> Option<PathBuf> {
    kas.iter().find_map(|k| {
        let c = k.conf.as_ref()?;
        keepalived::router_id_of(c)?;
        Some(c.parent()?.parent()?.to_path_buf())
    })
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
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let name = select_router(&names, id).map_err(|e| match e {
            Select::None(id) => format!(
                "no namespace qrouter-{id} in {}: is the router scheduled on this node? (`openstack network agent list --router {id}`)",
                opts.netns_dir.display()
            ),
            Select::Ambiguous(id, of) => format!(
                "router id {id} is ambiguous on this node: {}; give more of the id",
                of.join(", ")
            ),
        })?;
        entries.retain(|e| e.name == name);
    }
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
    let ours: std::collections::HashSet<u64> = inode_of.values().copied().collect();
    let kas: Vec<Keepalived> = keepalived::discover()
        .into_iter()
        .filter(|k| ours.contains(&k.netns_inode))
        .collect();
    // Neutron's own processes: the state monitor in one of our router namespaces, or the L3
    // agent in this node's network namespace.
    let own_ns = crate::collect::procs::own_netns_inode();
    let from_neutron = || {
        keepalived::discover_neutron()
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
    let facts = nsscan::scan(&entries, opts.workers, opts.timeout);
    let ct_max = nsscan::conntrack_max();
    let peer = match &opts.peer {
        Some(p) => Some(read_peer(p)?),
        None => None,
    };

    let mut preps = Vec::new();
    let mut dhcp = Vec::new();
    for (f, e) in facts.iter().zip(&entries) {
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
        let ka = kas.iter().find(|k| Some(k.netns_inode) == ino);
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
        preps.push(Prep {
            id,
            f,
            path: e.path.clone(),
            ka,
            instances,
            state_file,
            state_path: state_path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into()),
            reported: None,
        });
    }
    // The node's BGP speaker, asked about every tenant prefix at once while keepalived is.
    let tenant: Vec<Vec<(IpAddr, u8)>> = preps.iter().map(tenant_prefixes).collect();
    let bgp_thread = opts.bgp.then(|| {
        let mut all: Vec<(IpAddr, u8)> = tenant.iter().flatten().copied().collect();
        all.sort();
        all.dedup();
        let (ov, timeout) = (opts.bgp_overrides.clone(), opts.timeout);
        std::thread::spawn(move || ask_bgp(&ov, &all, timeout))
    });
    if opts.dump {
        ask_keepalived(&mut preps, opts.timeout);
    }
    let facts_of = |p| facts_of(p, ct_max);
    let wires: Vec<router::Wire> = if opts.wire {
        wire(
            &preps
                .iter()
                .map(|p| (p.path.clone(), facts_of(p)))
                .collect::<Vec<_>>(),
            opts.workers,
        )
    } else {
        vec![router::Wire::default(); preps.len()]
    };
    // The node itself: its VXLAN devices (the overlay MTU).
    let host = nsscan::read_here("host", opts.timeout);
    let overlay: Option<(String, u32)> = host.net.as_ref().ok().and_then(|h| {
        h.links
            .iter()
            .filter(|l| l.kind.as_deref() == Some("vxlan"))
            .min_by_key(|l| l.mtu)
            .map(|l| (l.name.clone(), l.mtu))
    });
    let bgp: Option<Vec<Spoken>> = bgp_thread.map(|t| {
        t.join()
            .unwrap_or_else(|_| vec![Err(Box::new(crate::check::bgp::collector_panicked()))])
    });
    let mut routers = Vec::new();
    for ((p, w), pfx) in preps.iter().zip(&wires).zip(&tenant) {
        let rf = facts_of(p);
        let mut checks = router::checks(&rf);
        if let Ok(net) = &p.f.net {
            checks.extend(router::mtu_check(net, &p.f.name, overlay.clone()));
            if let Ok(h) = &host.net {
                checks.extend(router::peer_mtu_check(net, h, &p.f.name));
            }
        }
        checks.extend(router::wire_checks(&rf, w));
        let names: Vec<String> = pfx.iter().map(|(a, l)| format!("{a}/{l}")).collect();
        if let Some(sp) = &bgp {
            checks.extend(bgp_router_checks(sp, &names));
        }
        let views = router::views(&rf);
        if let Some(peer) = &peer {
            checks.push(peer_check(p.id, &views, peer));
        }
        let conntrack_percent = match (p.f.conntrack.count, ct_max) {
            (Some(c), Some(m)) if m > 0 => Some((c as f64 * 1000.0 / m as f64).round() / 10.0),
            _ => None,
        };
        routers.push(RouterReport {
            router_id: p.id.to_string(),
            namespace: p.f.name.clone(),
            verdict: model::verdict(&checks),
            views,
            conntrack_percent,
            tenant_prefixes: names,
            checks,
        });
    }
    let socks = if opts.ovsdb.is_empty() {
        crate::collect::ovsdb::discover()
    } else {
        opts.ovsdb.clone()
    };
    let mut host_checks: Vec<Check> = host
        .net
        .as_ref()
        .map(router::vxlan_checks)
        .unwrap_or_default();
    if let Some(sp) = &bgp {
        host_checks.extend(bgp_host_checks(sp));
    }
    host_checks.extend(socks.iter().map(|s| {
        router::ovs_check(
            &s.display().to_string(),
            &crate::collect::ovsdb::query(s, opts.timeout),
        )
    }));
    let verdict = routers
        .iter()
        .map(|r| r.verdict)
        .chain(host_checks.iter().map(|c| c.status))
        .max()
        .unwrap_or(Status::Ok);
    Ok(RoutersReport {
        host: crate::walk::hostname(),
        verdict,
        ha_confs: ha_confs.map(|p| p.display().to_string()),
        conntrack_max: ct_max,
        routers,
        dhcp,
        host_checks,
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// The router's tenant prefixes: the subnets of its qr- gateway addresses (from keepalived.conf's
/// `virtual_ipaddress_excluded`, which both gateways have; else the qr- addresses configured),
/// link-local ones left out.
fn tenant_prefixes(p: &Prep<'_>) -> Vec<(IpAddr, u8)> {
    let from_conf: Vec<(IpAddr, u8)> = p
        .instances
        .iter()
        .flatten()
        .flat_map(|i| &i.excluded)
        .filter(|a| a.dev.as_deref().is_some_and(|d| d.starts_with("qr-")))
        .map(|a| (a.addr, a.prefix_len))
        .collect();
    let pairs = if from_conf.is_empty() {
        p.f.net
            .as_ref()
            .map(|n| {
                n.addrs
                    .iter()
                    .filter(|a| n.ifname(a.index).starts_with("qr-"))
                    .map(|a| (a.addr, a.prefix_len))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        from_conf
    };
    let mut out: Vec<(IpAddr, u8)> = pairs
        .into_iter()
        .filter(|(a, _)| !crate::collect::netlink::is_link_local(a))
        .map(|(a, l)| (crate::collect::netlink::network_of(a, l), l))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What one BGP speaker of the node said, or the row saying why it could not.
type Spoken = Result<crate::collect::bgp::BgpFacts, Box<Check>>;

/// Find the node's BGP speakers (BIRD, FRR in this network namespace) and ask each about the
/// prefixes; no speaker is one `bgp.daemon` row.
fn ask_bgp(
    ov: &crate::collect::bgp::Overrides,
    prefixes: &[(IpAddr, u8)],
    timeout: Duration,
) -> Vec<Spoken> {
    use crate::collect::bgp;
    let procs = crate::collect::procs::ProcTable::scan().unwrap_or_default();
    let speakers = bgp::discover(&procs, ov);
    if speakers.is_empty() {
        return vec![Err(Box::new(Check::unknown(
                "bgp.daemon",
                "no BIRD or FRR process in this node's network namespace: tenant prefix advertisements unknown",
            )
            .evidence("no process named bird, bird6 or bgpd shares this network namespace")
            .fix("start the routing daemon, or give --bird-socket/--frr-dir; on a node that does not announce tenant prefixes, use --no-bgp")))];
    }
    bgp::spawn_collect(speakers, prefixes, timeout)
        .into_iter()
        .map(|t| match t.join() {
            Ok((_, Ok(f))) => Ok(f),
            Ok((sp, Err(e))) => Err(crate::check::bgp::unreachable(&sp.describe(), &e, &[])
                .into_iter()
                .next()
                .map(Box::new)
                .unwrap_or_else(|| Box::new(Check::unknown("bgp.daemon", "no answer")))),
            Err(_) => Err(Box::new(crate::check::bgp::collector_panicked())),
        })
        .collect()
}

/// Node rows: each speaker answered (`bgp.daemon`) and its sessions (`bgp.session`).
fn bgp_host_checks(sp: &[Spoken]) -> Vec<Check> {
    sp.iter()
        .flat_map(|s| match s {
            Ok(f) => crate::check::bgp::evaluate(f, &[]),
            Err(c) => vec![(**c).clone()],
        })
        .collect()
}

/// Router rows: each tenant prefix in the speaker's table (`bgp.rib`) and advertised to every
/// peer (`bgp.export`). Nothing when no speaker answered (the node row says why).
fn bgp_router_checks(sp: &[Spoken], prefixes: &[String]) -> Vec<Check> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    sp.iter()
        .filter_map(|s| s.as_ref().ok())
        .flat_map(|f| crate::check::bgp::evaluate(f, prefixes))
        .filter(|c| c.id == "bgp.rib" || c.id == "bgp.export")
        .collect()
}

/// Ask each live keepalived for its own state, one at a time (keepalived processes sharing a
/// tmp dir write the same dump file), within one overall budget.
fn ask_keepalived(preps: &mut [Prep<'_>], budget: Duration) {
    let deadline = Instant::now() + budget.max(Duration::from_secs(1));
    let mut signals: HashMap<PathBuf, Result<i32, String>> = HashMap::new();
    for p in preps.iter_mut() {
        let Some(k) = p.ka.filter(|k| k.vrrp_pid.is_some()) else {
            continue;
        };
        let exe = std::fs::read_link(format!("/proc/{}/exe", k.pid)).unwrap_or_default();
        let sig = signals
            .entry(exe)
            .or_insert_with(|| keepalived::json_signal(k.pid, Duration::from_secs(2)))
            .clone();
        let iface = p
            .instances
            .as_ref()
            .ok()
            .and_then(|v| v.first())
            .and_then(|i| i.interface.clone());
        let now = Instant::now();
        p.reported = Some(if now >= deadline {
            Err(format!(
                "not asked: the {:?} budget was spent on the other routers (raise --timeout)",
                budget.max(Duration::from_secs(1))
            ))
        } else {
            sig.and_then(|sig| {
                let one = deadline.min(now + Duration::from_secs(1));
                keepalived::ask(k, sig, iface.as_deref(), one).and_then(|v| {
                    v.into_iter()
                        .find(|r| iface.as_deref().is_none_or(|i| r.interface == i))
                        .ok_or_else(|| "keepalived's dump has no VRRP instance".to_string())
                })
            })
        });
    }
}

/// Open a VRRP listener on each router's HA interface (and, on a primary, send the ARP probe for
/// its gateway address), all at once, then read them together for three advert intervals.
fn wire(routers: &[(PathBuf, RouterFacts<'_>)], workers: usize) -> Vec<router::Wire> {
    use std::net::{IpAddr, Ipv4Addr};
    struct Plan {
        ha: Option<String>,
        own: Vec<Ipv4Addr>,
        dad: Option<(String, [u8; 6], Ipv4Addr)>,
        advert_int: f64,
    }
    let plans: Vec<Plan> = routers
        .iter()
        .map(|(_, f)| {
            let net = f.net.ok();
            let inst = f.instance.as_ref().ok();
            let ha = inst.and_then(|i| i.interface.clone()).or_else(|| {
                net.and_then(|n| {
                    n.links
                        .iter()
                        .find(|l| l.name.starts_with("ha-"))
                        .map(|l| l.name.clone())
                })
            });
            let own = net
                .map(|n| {
                    n.addrs
                        .iter()
                        .filter(|a| ha.as_deref().is_some_and(|h| n.ifname(a.index) == h))
                        .filter_map(|a| match a.addr {
                            IpAddr::V4(v) => Some(v),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let dad = if router::holds_vip(f) == Some(true) {
                inst.and_then(|i| {
                    let gw = i.excluded.iter().find(|a| {
                        a.addr.is_ipv4() && a.dev.as_deref().is_some_and(|d| d.starts_with("qr-"))
                    })?;
                    let dev = gw.dev.clone()?;
                    let mac = net?
                        .link(&dev)?
                        .mac
                        .as_deref()
                        .and_then(crate::collect::vrrp::mac_bytes)?;
                    match gw.addr {
                        IpAddr::V4(v) => Some((dev, mac, v)),
                        _ => None,
                    }
                })
            } else {
                None
            };
            Plan {
                ha,
                own,
                dad,
                advert_int: inst.map(|i| i.advert_int).unwrap_or(1.0),
            }
        })
        .collect();
    let paths: Vec<PathBuf> = routers.iter().map(|(p, _)| p.clone()).collect();
    let opened = nsscan::run_in_each(&paths, workers, |i| {
        let p = &plans[i];
        let l = p.ha.as_deref().map(|h| {
            crate::collect::vrrp::open_listener(h).map_err(|e| format!("listen on {h}: {e}"))
        });
        let d = p.dad.as_ref().map(|(dev, _mac, ip)| {
            crate::collect::vrrp::open_arp(dev, *ip).map_err(|e| format!("ARP probe on {dev}: {e}"))
        });
        (l, d)
    });
    let dur = plans.iter().map(|p| p.advert_int).fold(1.0f64, f64::max) * 3.0 + 0.5;
    let dur = Duration::from_secs_f64(dur.min(15.0));
    let start = Instant::now();
    let mut heard: Vec<crate::collect::vrrp::Heard> = vec![Default::default(); routers.len()];
    let mut macs: Vec<Vec<String>> = vec![Vec::new(); routers.len()];
    let mut fds: Vec<libc::pollfd> = Vec::new();
    for (l, d) in opened.iter().flatten() {
        use std::os::fd::AsRawFd;
        if let Some(Ok(s)) = l {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(Ok(d)) = d {
            fds.push(libc::pollfd {
                fd: d.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }
    while start.elapsed() < dur {
        let left = dur
            .saturating_sub(start.elapsed())
            .as_millis()
            .clamp(1, 500) as i32;
        // SAFETY: poll over descriptors owned by `opened`, alive for this loop.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, left) };
        for (i, o) in opened.iter().enumerate() {
            if let Ok((l, d)) = o {
                if let Some(Ok(s)) = l {
                    crate::collect::vrrp::read_adverts(s, &mut heard[i]);
                }
                if let Some(Ok(probe)) = d {
                    crate::collect::vrrp::read_arp(probe, &mut macs[i]);
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    opened
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let p = &plans[i];
            match o {
                Err(e) => router::Wire {
                    heard: Some(Err(e.clone())),
                    own: p.own.clone(),
                    dad: p.dad.as_ref().map(|(_, _, ip)| (*ip, Err(e))),
                },
                Ok((l, d)) => router::Wire {
                    heard: l.map(|r| {
                        r.map(|_| {
                            let mut h = std::mem::take(&mut heard[i]);
                            h.listened_s = secs;
                            h
                        })
                    }),
                    own: p.own.clone(),
                    dad: match (d, &p.dad) {
                        (Some(r), Some((_, _, ip))) => {
                            Some((*ip, r.map(|_| std::mem::take(&mut macs[i]))))
                        }
                        _ => None,
                    },
                },
            }
        })
        .collect()
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
