//! The planner: a pure function of (identity, desired state, observed host facts, flags) to an
//! ordered list of steps. Each step names the walk check it fixes, its shell equivalent and its
//! inverse, computed from the observed pre-state. The planner simulates the kernel's side effects
//! it relies on (deleting a tap's last IPv4 address deletes every route through the tap), so that
//! the plan leaves nothing broken behind.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::action::{
    Action, AddrSpec, FileSpec, RouteSpec, IFA_F_NOPREFIXROUTE, PROTO_KERNEL, PROTO_STATIC,
    RTN_UNICAST, SCOPE_LINK, SCOPE_UNIVERSE,
};
use crate::collect::dnsmasq::HostEntry;
use crate::collect::netlink::{host_len, is_link_local};
use crate::collect::sysctl::TapSysctls;
use crate::error::Error;
use crate::port::{mac_suffix, Desired, Identity};

/// The tap as observed (or `None` when it does not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TapState {
    pub admin_up: bool,
    pub mtu: u32,
    pub mac: Option<String>,
    pub kind: Option<String>,
    /// Addresses on the tap, link-local ones excluded (the kernel manages those).
    pub addrs: Vec<AddrSpec>,
}

/// The port's DHCP host record as found, and where a new one goes.
#[derive(Debug, Clone, Default)]
pub struct DhcpState {
    /// Every host entry that belongs to the port.
    pub entries: Vec<HostEntry>,
    /// The per-port host file (`<hostsdir>/<port uuid>`) as it is, when it exists.
    pub file: Option<FileSpec>,
    /// dnsmasq's hosts dir serving the tap.
    pub hostsdir: Option<PathBuf>,
    /// Owner and mode for a new host file (those of the other host files).
    pub new_owner: (u32, u32, u32),
    /// The serving dnsmasq's pid.
    pub pid: Option<u32>,
    /// Why no host file may be written (an untrusted dnsmasq, a hosts dir others may change).
    pub refused: Option<String>,
}

/// Everything the planner looks at.
pub struct PlanInput<'a> {
    pub id: &'a Identity,
    pub want: &'a Desired,
    pub tap: Option<&'a TapState>,
    /// Routes of the main table.
    pub routes: &'a [RouteSpec],
    pub sysctl: &'a TapSysctls,
    /// What a newly created tap gets (`conf/default`).
    pub sysctl_default: &'a TapSysctls,
    pub dhcp: &'a DhcpState,
    pub flags: &'a PlanFlags,
}

#[derive(Debug, Clone, Default)]
pub struct PlanFlags {
    /// Delete a /32 (/128) of this VM that points elsewhere.
    pub prune: bool,
    pub tap_owner: Option<u32>,
    pub tap_group: Option<u32>,
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    /// Why: the check it fixes and what that check reports.
    pub reason: String,
    /// Walk check ids this step fixes.
    pub fixes: Vec<&'static str>,
    /// What undoes it, in order.
    pub inverse: Vec<Action>,
}

/// Something a walk check reports that plumb will not change on its own, and what would let it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub check: &'static str,
    pub what: String,
    pub how: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub blocked: Vec<Blocked>,
}

/// The Nova MAC of a tap for a VM MAC: `fe:` + the VM MAC's last 5 octets.
pub fn tap_mac_for(vm_mac: &str) -> String {
    format!("fe:{}", mac_suffix(vm_mac))
}

/// The planner's view of the host while it plans (the tap and the main table).
struct Model {
    tap: Option<TapState>,
    created: bool,
    routes: Vec<RouteSpec>,
    /// Routes that the plan's own address change made the kernel delete.
    lost: Vec<RouteSpec>,
}

impl Model {
    fn routes_via(&self, tap: &str) -> impl Iterator<Item = &RouteSpec> {
        let tap = tap.to_string();
        self.routes
            .iter()
            .filter(move |r| r.dev.as_deref() == Some(tap.as_str()))
    }
}

fn step(action: Action, fixes: &[&'static str], reason: String, inverse: Vec<Action>) -> Step {
    Step {
        action,
        reason,
        fixes: fixes.to_vec(),
        inverse,
    }
}

/// The standard host route for a VM address on its tap (what the agent installs).
pub fn host_route(ip: IpAddr, tap: &str) -> RouteSpec {
    RouteSpec {
        dst: ip,
        prefix_len: host_len(&ip),
        dev: Some(tap.to_string()),
        protocol: PROTO_STATIC,
        scope: if ip.is_ipv4() {
            SCOPE_LINK
        } else {
            SCOPE_UNIVERSE
        },
        kind: RTN_UNICAST,
        metric: if ip.is_ipv4() { None } else { Some(1024) },
    }
}

fn v4_families(want: &Desired) -> (bool, bool) {
    let has_v4 = want.ips.iter().any(|i| i.value.is_ipv4()) || want.ips.is_empty();
    let has_v6 = want.ips.iter().any(|i| i.value.is_ipv6());
    (has_v4, has_v6)
}

/// Plan the repair of one port.
pub fn plan(inp: &PlanInput) -> Plan {
    let mut p = Plan::default();
    let mut m = Model {
        tap: inp.tap.cloned(),
        created: false,
        routes: inp.routes.to_vec(),
        lost: Vec::new(),
    };
    plan_link(inp, &mut m, &mut p);
    plan_addresses(inp, &mut m, &mut p);
    plan_sysctls(inp, &m, &mut p);
    plan_routes(inp, &mut m, &mut p);
    plan_dhcp(inp, &mut p);
    p
}

fn plan_link(inp: &PlanInput, m: &mut Model, p: &mut Plan) {
    let tap = inp.id.tap.as_str();
    let want_mac = inp.want.mac.as_ref().map(|m| tap_mac_for(&m.value));
    if m.tap.is_none() {
        p.steps.push(step(
            Action::CreateTap {
                tap: tap.into(),
                owner: inp.flags.tap_owner,
                group: inp.flags.tap_group,
            },
            &["tap.exists"],
            format!("tap.exists: {tap} does not exist"),
            vec![Action::DeleteLink { tap: tap.into() }],
        ));
        m.tap = Some(TapState {
            admin_up: false,
            mtu: 1500,
            mac: None,
            kind: Some("tun".into()),
            addrs: Vec::new(),
        });
        m.created = true;
        // A tap that did not exist has no routes.
        m.routes.retain(|r| r.dev.as_deref() != Some(tap));
    }
    let created = m.created;
    let Some(t) = m.tap.as_mut() else { return };
    // MAC: what tap.mac reports (no MAC, the VM's own MAC, or a fe: MAC of another port).
    if let Some(wm) = &want_mac {
        let vm_mac = inp
            .want
            .mac
            .as_ref()
            .map(|m| m.value.as_str())
            .unwrap_or("");
        let cur = t.mac.clone().unwrap_or_default();
        let wrong = created
            || cur.is_empty()
            || cur == "00:00:00:00:00:00"
            || cur.eq_ignore_ascii_case(vm_mac)
            || (cur.starts_with("fe:") && mac_suffix(&cur) != mac_suffix(vm_mac));
        if wrong && !cur.eq_ignore_ascii_case(wm) {
            let inverse = if created || cur.is_empty() {
                vec![]
            } else {
                vec![Action::SetMac {
                    tap: tap.into(),
                    mac: cur.clone(),
                }]
            };
            let why = if created {
                "a new tap gets Nova's MAC (fe: + the port MAC's last 5 octets)".to_string()
            } else {
                format!("tap.mac: {tap} has MAC {cur}, the port's tap MAC is {wm}")
            };
            p.steps.push(step(
                Action::SetMac {
                    tap: tap.into(),
                    mac: wm.clone(),
                },
                &["tap.mac"],
                why,
                inverse,
            ));
            t.mac = Some(wm.clone());
        }
    }
    if let Some(mtu) = &inp.want.mtu {
        if t.mtu != mtu.value {
            let inverse = if created {
                vec![]
            } else {
                vec![Action::SetMtu {
                    tap: tap.into(),
                    mtu: t.mtu,
                }]
            };
            p.steps.push(step(
                Action::SetMtu {
                    tap: tap.into(),
                    mtu: mtu.value,
                },
                &["tap.mtu"],
                format!(
                    "tap.mtu: MTU {} but the network MTU is {} ({})",
                    t.mtu, mtu.value, mtu.source
                ),
                inverse,
            ));
            t.mtu = mtu.value;
        }
    } else {
        p.blocked.push(Blocked {
            check: "tap.mtu",
            what: "no network MTU on record".into(),
            how: "pass --mtu <network MTU>".into(),
        });
    }
    if !t.admin_up {
        let inverse = if created {
            vec![]
        } else {
            vec![Action::SetDown { tap: tap.into() }]
        };
        p.steps.push(step(
            Action::SetUp { tap: tap.into() },
            &["tap.state"],
            format!("tap.state: {tap} is administratively down"),
            inverse,
        ));
        t.admin_up = true;
    }
}

fn plan_addresses(inp: &PlanInput, m: &mut Model, p: &mut Plan) {
    let tap = inp.id.tap.as_str();
    let (has_v4, has_v6) = v4_families(inp.want);
    let fams: Vec<bool> = [(false, has_v4), (true, has_v6)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(v6, _)| *v6)
        .collect();
    for v6 in fams {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let full = if v6 { 128 } else { 32 };
        let Some(t) = m.tap.as_ref() else { return };
        let on_tap: Vec<AddrSpec> = t
            .addrs
            .iter()
            .filter(|a| a.addr.is_ipv6() == v6 && !is_link_local(&a.addr))
            .cloned()
            .collect();
        // The gateway on record; without one, an address on the tap that lacks the flag.
        let (target, source) = match inp.want.gateway_for(v6) {
            Some(g) => (Some((g.value.addr, g.value.prefix_len)), g.source.clone()),
            None => match on_tap.first() {
                Some(a) => (
                    Some((a.addr, a.prefix_len)),
                    "the address on the tap".into(),
                ),
                None => (None, String::new()),
            },
        };
        let Some((gw, plen)) = target else {
            p.blocked.push(Blocked {
                check: "tap.gateway",
                what: format!("no {fam} gateway on record for {tap}"),
                how: "pass --gateway ADDR/LEN".into(),
            });
            continue;
        };
        let new = AddrSpec {
            addr: gw,
            prefix_len: plen,
            flags: IFA_F_NOPREFIXROUTE,
            broadcast: None,
        };
        let add = |reason: String| {
            step(
                Action::AddAddr {
                    tap: tap.into(),
                    addr: new.clone(),
                },
                &["tap.gateway", "route.connected"],
                reason,
                vec![Action::DelAddr {
                    tap: tap.into(),
                    addr: new.clone(),
                }],
            )
        };
        match on_tap.iter().find(|a| a.addr == gw) {
            Some(a) if a.noprefixroute() || a.prefix_len == full => {}
            None => {
                p.steps.push(add(format!(
                    "tap.gateway: gateway {gw} missing on {tap} (expected {gw}/{plen} from {source})"
                )));
                if let Some(t) = m.tap.as_mut() {
                    t.addrs.push(new.clone());
                }
            }
            Some(a) => {
                // `ip addr replace` keeps the old flags: delete and add.
                p.steps.push(step(
                    Action::DelAddr {
                        tap: tap.into(),
                        addr: a.clone(),
                    },
                    &["tap.gateway", "route.connected"],
                    format!(
                        "tap.gateway: gateway {}/{} lacks noprefixroute (its connected route steals the subnet); `replace` would keep the old flags",
                        a.addr, a.prefix_len
                    ),
                    vec![Action::AddAddr {
                        tap: tap.into(),
                        addr: a.clone(),
                    }],
                ));
                let last_v4 = !v6 && on_tap.len() == 1;
                if let Some(t) = m.tap.as_mut() {
                    t.addrs.retain(|x| x != a);
                }
                // The connected route of the old address goes with it.
                m.routes.retain(|r| {
                    !(r.dev.as_deref() == Some(tap)
                        && r.protocol == PROTO_KERNEL
                        && r.dst.is_ipv6() == v6
                        && r.prefix_len < full)
                });
                if last_v4 {
                    // The kernel deletes every IPv4 route through a device with its last
                    // IPv4 address.
                    let (gone, keep): (Vec<RouteSpec>, Vec<RouteSpec>) = m
                        .routes
                        .drain(..)
                        .partition(|r| r.dev.as_deref() == Some(tap) && r.dst.is_ipv4());
                    m.routes = keep;
                    m.lost.extend(gone);
                }
                p.steps.push(add(format!(
                    "tap.gateway: re-add {gw}/{plen} with noprefixroute (expected from {source})"
                )));
                if let Some(t) = m.tap.as_mut() {
                    t.addrs.push(new.clone());
                }
            }
        }
    }
}

fn plan_sysctls(inp: &PlanInput, m: &Model, p: &mut Plan) {
    let tap = inp.id.tap.as_str();
    let s = if m.created {
        inp.sysctl_default
    } else {
        inp.sysctl
    };
    let (has_v4, has_v6) = v4_families(inp.want);
    let mut set = |path: String, value: &str, old: Option<u32>, id: &'static str, why: String| {
        let inverse = match (m.created, old) {
            (true, _) => vec![],
            (false, Some(o)) => vec![Action::Sysctl {
                path: path.clone(),
                value: o.to_string(),
            }],
            (false, None) => vec![],
        };
        p.steps.push(step(
            Action::Sysctl {
                path,
                value: value.into(),
            },
            &[id],
            why,
            inverse,
        ));
    };
    if has_v4 {
        let on = s.proxy_arp.unwrap_or(0) >= 1 || inp.sysctl.proxy_arp_all.unwrap_or(0) >= 1;
        if !on {
            set(
                format!("ipv4/conf/{tap}/proxy_arp"),
                "1",
                s.proxy_arp,
                "tap.proxy_arp",
                format!(
                    "tap.proxy_arp: proxy ARP off on {tap} (= {}): the VM's ARP for its gateway goes unanswered",
                    s.proxy_arp.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
                ),
            );
        }
        if s.proxy_delay != Some(0) {
            set(
                format!("ipv4/neigh/{tap}/proxy_delay"),
                "0",
                s.proxy_delay,
                "tap.proxy_delay",
                format!(
                    "tap.proxy_delay: proxy ARP replies delayed (proxy_delay = {})",
                    s.proxy_delay
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "?".into())
                ),
            );
        }
    }
    if has_v6 {
        let on = s.proxy_ndp.unwrap_or(0) >= 1 || inp.sysctl.proxy_ndp_all.unwrap_or(0) >= 1;
        if !on {
            set(
                format!("ipv6/conf/{tap}/proxy_ndp"),
                "1",
                s.proxy_ndp,
                "tap.proxy_ndp",
                format!("tap.proxy_ndp: proxy NDP off on {tap}"),
            );
        }
    }
}

fn plan_routes(inp: &PlanInput, m: &mut Model, p: &mut Plan) {
    let tap = inp.id.tap.as_str();
    // Routes the plan's own address change removes and that are not this VM's: put back.
    let mine = inp.want.ip_list();
    let lost = std::mem::take(&mut m.lost);
    for r in lost.iter().filter(|r| !mine.contains(&r.dst)) {
        p.steps.push(step(
            Action::AddRoute { route: r.clone() },
            &[],
            format!(
                "restore {}: the kernel deletes it with the tap's last IPv4 address",
                r.describe()
            ),
            vec![Action::DelRoute { route: r.clone() }],
        ));
        m.routes.push(r.clone());
    }
    for ip in mine {
        let hl = host_len(&ip);
        let same = |r: &&RouteSpec| r.dst == ip && r.prefix_len == hl;
        let on_tap = m.routes_via(tap).filter(same).any(|r| r.is_unicast());
        let others: Vec<RouteSpec> = m
            .routes
            .iter()
            .filter(same)
            .filter(|r| r.dev.as_deref() != Some(tap) || !r.is_unicast())
            .cloned()
            .collect();
        let mut blocked = false;
        for o in &others {
            let what = o.dev.clone().unwrap_or_else(|| "no device".to_string());
            if inp.flags.prune {
                p.steps.push(step(
                    Action::DelRoute { route: o.clone() },
                    &["route.host", "route.lookup"],
                    format!(
                        "route.host: {ip}/{hl} points at {what} instead of {tap} ({}); --prune given",
                        o.describe()
                    ),
                    vec![Action::AddRoute { route: o.clone() }],
                ));
                m.routes.retain(|r| r != o);
            } else {
                blocked = true;
                p.blocked.push(Blocked {
                    check: "route.host",
                    what: format!("{ip}/{hl} points at {what}: {}", o.describe()),
                    how: format!(
                        "pass --prune to delete it and route {ip}/{hl} to {tap} (make sure the address moved to this port)"
                    ),
                });
            }
        }
        if !on_tap && !blocked {
            // Re-create exactly the route the plan's address change removed, else the agent's.
            let r = lost
                .iter()
                .find(|r| r.dst == ip && r.prefix_len == hl && r.is_unicast())
                .cloned()
                .unwrap_or_else(|| host_route(ip, tap));
            let why = if lost.contains(&r) {
                format!(
                    "route.host: re-add {}: the kernel deletes it with the tap's last IPv4 address",
                    r.describe()
                )
            } else {
                format!("route.host: no /{hl} route for {ip} on {tap}")
            };
            p.steps.push(step(
                Action::AddRoute { route: r.clone() },
                &["route.host", "route.lookup"],
                why,
                vec![Action::DelRoute { route: r.clone() }],
            ));
            m.routes.push(r);
        }
    }
}

/// The host line for the port: the existing line with MAC and IPv4 corrected (other fields kept
/// as they are), or a new line in Neutron's format.
pub fn dhcp_line(
    existing: Option<&HostEntry>,
    mac: &str,
    ipv4: Option<IpAddr>,
    ipv6: Option<IpAddr>,
    port_id: &str,
) -> Option<String> {
    match existing {
        Some(e) => {
            let mut mac_done = false;
            let fields: Vec<String> = e
                .line
                .split(',')
                .map(|f| {
                    let t = f.trim();
                    if e.macs.iter().any(|m| m.eq_ignore_ascii_case(t)) {
                        if mac_done {
                            return String::new();
                        }
                        mac_done = true;
                        return mac.to_string();
                    }
                    if let (Some(IpAddr::V4(want)), Ok(_)) = (ipv4, t.parse::<std::net::Ipv4Addr>())
                    {
                        return want.to_string();
                    }
                    t.to_string()
                })
                .filter(|f| !f.is_empty())
                .collect();
            let mut line = fields.join(",");
            if !mac_done {
                line = format!("{mac},{line}");
            }
            Some(line)
        }
        None => {
            let ip = ipv4.or(ipv6)?;
            let name = format!("host-{}", ip.to_string().replace(['.', ':'], "-"));
            let addr = match ip {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            };
            Some(format!("{mac},{name},{addr},set:port-{port_id}"))
        }
    }
}

fn plan_dhcp(inp: &PlanInput, p: &mut Plan) {
    let d = inp.dhcp;
    let id = inp.id;
    let mac = inp.want.mac.as_ref().map(|m| m.value.clone());
    let ipv4 = inp.want.ips.iter().map(|i| i.value).find(|i| i.is_ipv4());
    let ipv6 = inp.want.ips.iter().map(|i| i.value).find(|i| i.is_ipv6());
    let block = |p: &mut Plan, what: String, how: &str| {
        p.blocked.push(Blocked {
            check: "dhcp.host",
            what,
            how: how.into(),
        })
    };
    if d.entries.len() > 1 {
        return block(
            p,
            format!(
                "{} host entries for port {}: {}",
                d.entries.len(),
                id.port_id,
                d.entries
                    .iter()
                    .map(|e| e.source.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "delete the stale entry by hand and SIGHUP dnsmasq, then run plumb again",
        );
    }
    let Some(mac) = mac else {
        return block(
            p,
            "no MAC on record for the port".into(),
            "pass --mac (the port's MAC from Neutron)",
        );
    };
    let existing = d.entries.first();
    if let Some(e) = existing {
        if e.ignore {
            return block(
                p,
                format!("the host entry in {} says 'ignore'", e.source),
                "remove 'ignore' by hand if the port should get a lease",
            );
        }
        let mac_ok = e.macs.first().is_some_and(|m| m.eq_ignore_ascii_case(&mac));
        let ip_ok = match ipv4 {
            Some(IpAddr::V4(v)) => e.ipv4.is_none_or(|x| x == v),
            _ => true,
        };
        if mac_ok && ip_ok {
            return;
        }
    }
    if let Some(why) = &d.refused {
        return block(
            p,
            why.clone(),
            "write the host entry by hand once the DHCP server and its hosts dir are confirmed \
             (README \"Security\"), or add the daemon's account to trusted_accounts",
        );
    }
    let Some(dir) = &d.hostsdir else {
        return block(
            p,
            "no dnsmasq hosts dir serves the tap".into(),
            "pass --dhcp-hostsdir DIR",
        );
    };
    let file_path = match (existing, &d.file) {
        (Some(e), Some(f)) if Path::new(&e.source) == f.path => f.path.clone(),
        (Some(e), _) => {
            return block(
                p,
                format!(
                    "the port's host entry is in {}, not in a per-port file",
                    e.source
                ),
                "correct the entry by hand and SIGHUP dnsmasq",
            )
        }
        (None, _) => {
            if !crate::collect::dnsmasq::looks_like_uuid(&id.port_id) {
                return block(
                    p,
                    format!(
                        "no host file for port {}… and its full UUID is unknown",
                        id.port_id
                    ),
                    "name the port by its full UUID as the target",
                );
            }
            dir.join(&id.port_id)
        }
    };
    let Some(line) = dhcp_line(existing, &mac, ipv4, ipv6, &id.port_id) else {
        return block(
            p,
            "no address on record for the port".into(),
            "pass --ip (the port's fixed IPs)",
        );
    };
    let (content, uid, gid, mode, reason, inverse) = match (&d.file, existing) {
        (Some(f), Some(e)) => {
            let content: String = f
                .content
                .lines()
                .map(|l| if l.trim() == e.line { line.as_str() } else { l })
                .map(|l| format!("{l}\n"))
                .collect();
            (
                content,
                f.uid,
                f.gid,
                f.mode,
                format!(
                    "dhcp.host: the entry in {} reads '{}', the port is {mac}{}",
                    f.path.display(),
                    e.line,
                    ipv4.map(|i| format!(" {i}")).unwrap_or_default()
                ),
                vec![Action::WriteFile { file: f.clone() }],
            )
        }
        (Some(f), None) => {
            // A per-port file without an entry (empty, comments): keep what it has.
            let mut content = f.content.clone();
            if !content.is_empty() && !content.ends_with('\n') {
                content.push('\n');
            }
            content.push_str(&format!("{line}\n"));
            (
                content,
                f.uid,
                f.gid,
                f.mode,
                format!(
                    "dhcp.host: no DHCP host entry for port {} in {}",
                    id.port_id,
                    f.path.display()
                ),
                vec![Action::WriteFile { file: f.clone() }],
            )
        }
        (None, _) => (
            format!("{line}\n"),
            d.new_owner.0,
            d.new_owner.1,
            d.new_owner.2,
            format!("dhcp.host: no DHCP host entry for port {}", id.port_id),
            vec![Action::RemoveFile {
                path: file_path.clone(),
            }],
        ),
    };
    let mut inverse = inverse;
    if let Some(pid) = d.pid {
        inverse.push(Action::ReloadDnsmasq { pid });
    }
    p.steps.push(step(
        Action::WriteFile {
            file: FileSpec {
                path: file_path,
                content,
                uid,
                gid,
                mode,
            },
        },
        &["dhcp.host"],
        reason,
        inverse,
    ));
    match d.pid {
        Some(pid) => p.steps.push(step(
            Action::ReloadDnsmasq { pid },
            &["dhcp.host"],
            format!("dhcp.host: dnsmasq (pid {pid}) forgets a changed or removed host file only on SIGHUP"),
            vec![],
        )),
        None => block(
            p,
            "no running dnsmasq to reload".into(),
            "start the DHCP service; it reads the host file at start",
        ),
    }
}

/// Refuse a plan that would touch any interface other than the port's tap, or a port whose tap
/// is not Nova-named. Deleting a host route of this VM elsewhere (`--prune`) is the one
/// exception, and so is putting back a route the plan's own address change removed.
pub fn guard(id: &Identity, want: &Desired, plan: &Plan) -> Result<(), Error> {
    let tap = id.tap.as_str();
    if id.port_prefix().is_none()
        || tap != format!("tap{}", &id.port_id[..id.port_id.len().min(11)])
    {
        return Err(Error::refused(format!(
            "{tap} is not a port's tap (tap + the first 11 characters of the port UUID): plumb changes only Nova-named taps"
        )));
    }
    let mine = want.ip_list();
    for s in &plan.steps {
        let ok = match &s.action {
            Action::DelRoute { route } => mine.contains(&route.dst),
            Action::AddRoute { route } if route.dev.as_deref() != Some(tap) => {
                // Only a restore of a route the plan itself removes (its own inverse is a delete).
                s.fixes.is_empty()
            }
            Action::Sysctl { path, .. } => {
                let parts: Vec<&str> = path.split('/').collect();
                parts.len() == 4 && parts[2] == tap
            }
            Action::WriteFile { .. } | Action::RemoveFile { .. } | Action::ReloadDnsmasq { .. } => {
                true
            }
            a => a.interface() == Some(tap),
        };
        if !ok {
            return Err(Error::refused(format!(
                "refusing: '{}' touches {} which is not {tap}, the port's tap",
                s.action.equivalent(),
                s.action.interface().unwrap_or("another interface")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::dnsmasq::parse_host_entry;
    use crate::port::{Gateway, Sourced};

    const ID: &str = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51";
    const TAP: &str = "tap3f1c2a4e-5b";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn id() -> Identity {
        Identity {
            tap: TAP.into(),
            port_id: ID.into(),
            matched_by: "test".into(),
            target_ip: None,
        }
    }

    fn want() -> Desired {
        Desired {
            mac: Some(Sourced::new("fa:16:3e:00:00:01".to_string(), "dhcp")),
            ips: vec![Sourced::new(ip("198.51.100.11"), "dhcp")],
            mtu: Some(Sourced::new(1450, "dnsmasq")),
            gateways: vec![Sourced::new(
                Gateway {
                    addr: ip("198.51.100.1"),
                    prefix_len: 24,
                },
                "dnsmasq",
            )],
        }
    }

    fn gw(npr: bool) -> AddrSpec {
        AddrSpec {
            addr: ip("198.51.100.1"),
            prefix_len: 24,
            flags: if npr { IFA_F_NOPREFIXROUTE } else { 0 },
            broadcast: None,
        }
    }

    fn healthy_tap() -> TapState {
        TapState {
            admin_up: true,
            mtu: 1450,
            mac: Some("fe:16:3e:00:00:01".into()),
            kind: Some("veth".into()),
            addrs: vec![gw(true)],
        }
    }

    fn sys() -> TapSysctls {
        TapSysctls {
            proxy_arp: Some(1),
            proxy_arp_all: Some(0),
            proxy_delay: Some(0),
            proxy_ndp: Some(1),
            proxy_ndp_all: Some(0),
        }
    }

    fn dflt() -> TapSysctls {
        TapSysctls {
            proxy_arp: Some(0),
            proxy_arp_all: Some(0),
            proxy_delay: Some(80),
            proxy_ndp: Some(0),
            proxy_ndp_all: Some(0),
        }
    }

    fn line() -> String {
        format!("fa:16:3e:00:00:01,host-198-51-100-11,198.51.100.11,set:port-{ID}")
    }

    fn dhcp(l: &str) -> DhcpState {
        let path = PathBuf::from(format!("/h/{ID}"));
        DhcpState {
            entries: parse_host_entry(l, &path.display().to_string())
                .into_iter()
                .collect(),
            file: Some(FileSpec {
                path,
                content: format!("{l}\n"),
                uid: 0,
                gid: 0,
                mode: 0o644,
            }),
            hostsdir: Some(PathBuf::from("/h")),
            new_owner: (0, 0, 0o644),
            pid: Some(42),
            refused: None,
        }
    }

    struct Case {
        tap: Option<TapState>,
        routes: Vec<RouteSpec>,
        sysctl: TapSysctls,
        dhcp: DhcpState,
        flags: PlanFlags,
        want: Desired,
    }

    impl Case {
        fn healthy() -> Case {
            Case {
                tap: Some(healthy_tap()),
                routes: vec![host_route(ip("198.51.100.11"), TAP)],
                sysctl: sys(),
                dhcp: dhcp(&line()),
                flags: PlanFlags::default(),
                want: want(),
            }
        }
        fn plan(&self) -> Plan {
            let i = id();
            plan(&PlanInput {
                id: &i,
                want: &self.want,
                tap: self.tap.as_ref(),
                routes: &self.routes,
                sysctl: &self.sysctl,
                sysctl_default: &dflt(),
                dhcp: &self.dhcp,
                flags: &self.flags,
            })
        }
        fn names(&self) -> Vec<&'static str> {
            self.plan().steps.iter().map(|s| s.action.name()).collect()
        }
    }

    #[test]
    fn a_healthy_port_has_an_empty_plan() {
        let p = Case::healthy().plan();
        assert!(p.steps.is_empty() && p.blocked.is_empty(), "{p:#?}");
    }

    #[test]
    fn each_drift_gets_exactly_its_action() {
        let mut c = Case::healthy();
        c.tap.as_mut().expect("tap").admin_up = false;
        assert_eq!(c.names(), vec!["set-up"]);

        let mut c = Case::healthy();
        c.tap.as_mut().expect("tap").mtu = 1500;
        let p = c.plan();
        assert_eq!(p.steps.len(), 1);
        assert_eq!(
            p.steps[0].action.equivalent(),
            format!("ip link set {TAP} mtu 1450")
        );
        assert_eq!(
            p.steps[0].inverse,
            vec![Action::SetMtu {
                tap: TAP.into(),
                mtu: 1500
            }]
        );

        let mut c = Case::healthy();
        c.tap.as_mut().expect("tap").addrs.clear();
        assert_eq!(c.names(), vec!["add-address"]);

        let mut c = Case::healthy();
        c.sysctl.proxy_arp = Some(0);
        c.sysctl.proxy_delay = Some(80);
        let p = c.plan();
        assert_eq!(
            p.steps
                .iter()
                .map(|s| s.action.equivalent())
                .collect::<Vec<_>>(),
            vec![
                format!("sysctl -w net.ipv4.conf.{TAP}.proxy_arp=1"),
                format!("sysctl -w net.ipv4.neigh.{TAP}.proxy_delay=0")
            ]
        );
        assert_eq!(
            p.steps[0].inverse,
            vec![Action::Sysctl {
                path: format!("ipv4/conf/{TAP}/proxy_arp"),
                value: "0".into()
            }]
        );

        let mut c = Case::healthy();
        c.routes.clear();
        let p = c.plan();
        assert_eq!(p.steps.len(), 1);
        assert_eq!(
            p.steps[0].action.equivalent(),
            format!("ip route add 198.51.100.11/32 dev {TAP} proto static scope link")
        );
        assert_eq!(p.steps[0].fixes, vec!["route.host", "route.lookup"]);
    }

    #[test]
    fn gateway_without_noprefixroute_is_deleted_and_re_added_and_the_flushed_routes_come_back() {
        let mut c = Case::healthy();
        c.tap.as_mut().expect("tap").addrs = vec![gw(false)];
        let foreign = host_route(ip("198.51.100.99"), TAP);
        c.routes.push(foreign.clone());
        c.routes.push(RouteSpec {
            dst: ip("198.51.100.0"),
            prefix_len: 24,
            protocol: PROTO_KERNEL,
            ..host_route(ip("198.51.100.0"), TAP)
        });
        let p = c.plan();
        assert_eq!(
            p.steps.iter().map(|s| s.action.name()).collect::<Vec<_>>(),
            vec!["delete-address", "add-address", "add-route", "add-route"]
        );
        // the foreign route is restored as it was, the VM's own /32 too
        assert_eq!(p.steps[2].action, Action::AddRoute { route: foreign });
        assert!(p.steps[2].fixes.is_empty());
        assert!(
            p.steps[3].reason.contains("re-add"),
            "{}",
            p.steps[3].reason
        );
        assert_eq!(
            p.steps[0].inverse,
            vec![Action::AddAddr {
                tap: TAP.into(),
                addr: gw(false)
            }]
        );
        assert!(guard(&id(), &c.want, &p).is_ok());
    }

    #[test]
    fn a_missing_tap_is_created_then_configured_in_order_with_one_inverse() {
        let mut c = Case::healthy();
        c.tap = None;
        c.routes.clear();
        c.flags.tap_owner = Some(107);
        let p = c.plan();
        assert_eq!(
            p.steps.iter().map(|s| s.action.name()).collect::<Vec<_>>(),
            vec![
                "create-tap",
                "set-mac",
                "set-mtu",
                "set-up",
                "add-address",
                "sysctl",
                "sysctl",
                "add-route"
            ]
        );
        assert_eq!(
            p.steps[1].action,
            Action::SetMac {
                tap: TAP.into(),
                mac: "fe:16:3e:00:00:01".into()
            }
        );
        // deleting the tap undoes the link-level steps
        assert_eq!(
            p.steps[0].inverse,
            vec![Action::DeleteLink { tap: TAP.into() }]
        );
        assert!(p.steps[1..4].iter().all(|s| s.inverse.is_empty()));
        assert_eq!(
            p.steps[0].action.equivalent(),
            format!("ip tuntap add dev {TAP} mode tap user 107")
        );
    }

    #[test]
    fn a_route_on_another_tap_needs_prune() {
        let mut c = Case::healthy();
        let other = host_route(ip("198.51.100.11"), "tap7a2b3c4d-1e");
        c.routes = vec![other.clone()];
        let p = c.plan();
        assert!(p.steps.is_empty(), "{p:#?}");
        assert_eq!(p.blocked.len(), 1);
        assert!(p.blocked[0].how.contains("--prune"));
        c.flags.prune = true;
        let p = c.plan();
        assert_eq!(
            p.steps.iter().map(|s| s.action.name()).collect::<Vec<_>>(),
            vec!["delete-route", "add-route"]
        );
        assert_eq!(p.steps[0].inverse, vec![Action::AddRoute { route: other }]);
        assert!(guard(&id(), &c.want, &p).is_ok());
    }

    #[test]
    fn dhcp_host_file_missing_or_wrong() {
        let mut c = Case::healthy();
        c.dhcp.entries.clear();
        c.dhcp.file = None;
        let p = c.plan();
        assert_eq!(
            p.steps.iter().map(|s| s.action.name()).collect::<Vec<_>>(),
            vec!["write-dhcp-host", "reload-dnsmasq"]
        );
        let Action::WriteFile { file } = &p.steps[0].action else {
            panic!("{p:#?}")
        };
        assert_eq!(file.content, format!("{}\n", line()));
        assert_eq!(file.path, PathBuf::from(format!("/h/{ID}")));
        assert_eq!(
            p.steps[0].inverse,
            vec![
                Action::RemoveFile {
                    path: file.path.clone()
                },
                Action::ReloadDnsmasq { pid: 42 }
            ]
        );

        let wrong = line().replace("00:00:01", "00:00:99");
        let c = Case {
            dhcp: dhcp(&wrong),
            ..Case::healthy()
        };
        let p = c.plan();
        let Action::WriteFile { file } = &p.steps[0].action else {
            panic!("{p:#?}")
        };
        assert_eq!(file.content, format!("{}\n", line()));
        assert!(
            matches!(&p.steps[0].inverse[0], Action::WriteFile { file } if file.content.contains("00:00:99"))
        );

        // a port known only by its prefix cannot get a new file
        let mut c = Case::healthy();
        c.dhcp.entries.clear();
        c.dhcp.file = None;
        c.want.mac = None;
        assert!(c.plan().blocked.iter().any(|b| b.how.contains("--mac")));
    }

    #[test]
    fn dhcp_line_keeps_other_fields() {
        let e = parse_host_entry("fa:16:3e:00:00:99,id:01:02,vm-a,192.0.2.5,infinite", "f")
            .expect("entry");
        assert_eq!(
            dhcp_line(
                Some(&e),
                "fa:16:3e:00:00:05",
                Some(ip("192.0.2.6")),
                None,
                ID
            )
            .as_deref(),
            Some("fa:16:3e:00:00:05,id:01:02,vm-a,192.0.2.6,infinite")
        );
        assert_eq!(
            dhcp_line(None, "fa:16:3e:00:00:05", None, Some(ip("2001:db8::5")), ID).as_deref(),
            Some(
                format!("fa:16:3e:00:00:05,host-2001-db8--5,[2001:db8::5],set:port-{ID}").as_str()
            )
        );
    }

    #[test]
    fn guard_refuses_other_interfaces_and_non_nova_taps() {
        let c = Case::healthy();
        let bad = Plan {
            steps: vec![step(
                Action::SetUp { tap: "eth0".into() },
                &["tap.state"],
                "x".into(),
                vec![],
            )],
            blocked: vec![],
        };
        let e = guard(&id(), &c.want, &bad).expect_err("refused");
        assert!(e.message().contains("eth0"), "{e}");
        let mut i = id();
        i.tap = "tap3f".into();
        i.port_id = "3f".into();
        assert!(guard(&i, &c.want, &Plan::default()).is_err());
        let foreign_route = Plan {
            steps: vec![step(
                Action::DelRoute {
                    route: host_route(ip("198.51.100.12"), "tap7a2b3c4d-1e"),
                },
                &["route.host"],
                "x".into(),
                vec![],
            )],
            blocked: vec![],
        };
        assert!(guard(&id(), &c.want, &foreign_route).is_err());
    }
}
