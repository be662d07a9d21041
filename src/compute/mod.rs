//! `vmpath walk` on an Open vSwitch compute node (the overlay design: VM taps in OVS, VXLAN
//! tunnels to the gateways): read OVSDB, resolve the target to the VM's OVS port, read the
//! host's interfaces and routes once (`gather.rs`), then run the pure checks of `check::ovs` in
//! path order. Reads only; never changes the host.

pub mod gather;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use gather::Facts;

use crate::error::Result;
use crate::model::{verdict, Check, Status};
use crate::port::target::Target;
use crate::port::vif::Vif;
use crate::port::Sourced;

/// Validated options for one compute-node walk.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub timeout: Duration,
    /// `--mtu`: the network MTU.
    pub mtu: Option<u32>,
    /// `--mac`: the port's MAC, against OVSDB's attached-mac.
    pub mac: Option<String>,
    /// OVSDB sockets to read instead of discovering them.
    pub ovsdb: Vec<PathBuf>,
    pub trust: crate::collect::trust::Policy,
    /// Where the port's desired state comes from (`--source`).
    pub source: crate::port::source::Source,
}

/// The compute walk's result; the same shape as the routed walk's (README "JSON output"), with
/// `design` = `ovs` and the VIF in `port`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub host: String,
    pub design: &'static str,
    pub verdict: Status,
    pub exit_code: u8,
    pub port: PortReport,
    /// Where the desired state came from (README "JSON output").
    pub source: crate::port::source::SourceReport,
    pub checks: Vec<Check>,
    pub elapsed_ms: u64,
}

/// The port as the compute walk found it.
#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    pub tap: String,
    /// The Neutron port (OVSDB `iface-id`), `""` when the interface carries none.
    pub port_id: String,
    pub matched_by: String,
    pub ovs_interface: String,
    pub bridge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `native` (the tap is the OVS port) or `hybrid` (tap → qbr → qvb/qvo).
    pub plug: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ofport: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_vlan: Option<u32>,
}

/// A compute walk with what it was computed from (`VMPATH_FACTS_OUT`).
#[derive(Debug, Clone)]
pub struct Walked {
    pub report: Report,
    pub facts: Facts,
    pub vif: Vif,
}

/// The network MTU: `--mtu`, else the OVS Interface's `mtu_request` (os-vif sets it for
/// vhost-user ports), else what the host's other ports of the same network agree on (the other
/// ports in the same local VLAN of the bridge: other VMs, a kernel tunnel device).
fn network_mtu(opts_mtu: Option<u32>, vif: &Vif, f: &Facts) -> Option<Sourced<u32>> {
    if let Some(m) = opts_mtu {
        return Some(Sourced::new(m, "--mtu flag"));
    }
    if let Some((net, m)) = f
        .neutron
        .as_ref()
        .and_then(|n| n.ports.as_ref().ok()?.first())
        .and_then(|r| r.network.as_ref().ok())
        .and_then(|n| Some((n, n.mtu?)))
    {
        return Some(Sourced::new(m, format!("Neutron network {} mtu", net.id)));
    }
    let db = f.ovsdb.as_ref().ok()?;
    let i = vif.iface(db)?;
    if let Some(m) = i.mtu_request {
        return Some(Sourced::new(
            m,
            format!("OVSDB Interface {} mtu_request", i.name),
        ));
    }
    let tag = i.tag.filter(|t| *t != crate::check::ovs::DEAD_VLAN)?;
    let siblings: Vec<(&str, u32)> = db
        .ports
        .iter()
        .filter(|p| {
            p.name != i.name
                && p.in_bridge.as_deref() == Some(vif.bridge.as_str())
                && p.tag == Some(tag)
                && p.kind != "internal"
        })
        .filter_map(|p| Some((p.name.as_str(), f.net.link(&p.name)?.mtu)))
        .collect();
    let first = siblings.first()?.1;
    siblings.iter().all(|(_, m)| *m == first).then(|| {
        Sourced::new(
            first,
            format!(
                "the other ports of local VLAN {tag} in {} ({})",
                vif.bridge,
                siblings
                    .iter()
                    .map(|(n, m)| format!("{n} {m}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// Every check of the compute walk, in path order (pure: a captured host gives the same).
pub fn checks(f: &Facts, vif: &Vif, mtu: Option<u32>, mac: Option<&str>) -> Vec<Check> {
    use crate::check::ovs;
    let db = match &f.ovsdb {
        Ok(db) => db,
        Err(e) => {
            return vec![Check::unknown("vif.ovs", format!("OVSDB did not answer: {e}"))
                .fix("check ovsdb-server (systemctl status ovsdb-server; ovs-vsctl show), then run the walk again")]
        }
    };
    let want = network_mtu(mtu, vif, f);
    let mut out = Vec::new();
    if let Some(n) = &f.neutron {
        let iface = db.ports.iter().find(|p| p.name == vif.ovs_iface);
        out.push(crate::check::neutron::port_check(
            n,
            vif.port_id.as_deref().unwrap_or(&vif.tap),
            &vif.tap,
            &f.neutron_host,
            iface
                .and_then(|i| i.attached_mac.as_deref())
                .or(vif.mac.as_deref()),
            vif.hybrid.is_some(),
        ));
    }
    out.extend(ovs::vif_checks(vif, &f.net, db));
    out.push(ovs::mtu_check(vif, &f.net, db, want.as_ref()));
    let mac = mac.or(vif.mac.as_deref());
    out.push(ovs::ovs_iface_check(vif, db, mac));
    out.push(ovs::tag_check(vif, db));
    // The largest frame the VM sends: the network MTU, else what its tap lets through.
    let frame = want
        .as_ref()
        .map(|w| w.value)
        .or_else(|| f.net.link(&vif.tap).map(|l| l.mtu));
    let routes = f
        .vswitchd
        .as_ref()
        .ok()
        .and_then(|sw| sw.routes.as_ref())
        .and_then(|r| r.as_ref().ok())
        .map(Vec::as_slice);
    out.extend(ovs::tunnel_checks(vif, &f.net, db, frame, routes));
    out.extend(hybrid_sg(f, vif));
    out.extend(switch_checks(f, vif, db));
    out
}

/// A hybrid plug's security group: iptables on the qbr bridge (physdev matches on the tap),
/// judged as on a routed hypervisor (`sg.chains`, `sg.drops`: the VM's traffic walked through
/// the real rules). The VM's addresses are those its anti-spoofing rules allow from its MAC.
fn hybrid_sg(f: &Facts, vif: &Vif) -> Vec<Check> {
    use crate::check::sg;
    if vif.hybrid.is_none() {
        return Vec::new();
    }
    let Some(fw) = &f.firewall else {
        return vec![
            Check::unknown("sg.chains", "the firewall rules were not read")
                .fix("run the walk again"),
        ];
    };
    let ips = vif
        .mac
        .as_deref()
        .map(|m| crate::check::ovs::spoof_allowed(fw, m))
        .unwrap_or_default();
    let port = sg::SgPort::new(
        &vif.tap,
        vif.port_id.as_deref().unwrap_or(&vif.tap),
        &ips,
        vif.mac.as_deref(),
    );
    sg::checks(fw, &port, None)
}

/// The checks that read ovs-vswitchd: the VLAN ↔ VNI mapping, the security group and the
/// flows by their traces, and where the path goes next.
fn switch_checks(f: &Facts, vif: &Vif, db: &crate::collect::ovsdb::OvsDb) -> Vec<Check> {
    use crate::check::ovsflow;
    let sw = match &f.vswitchd {
        Ok(sw) => sw,
        Err(crate::error::Error::NotHere(m)) => {
            return vec![Check::fail("flow.egress", m.clone())
                .evidence("OVSDB answers, but no ovs-vswitchd process runs in this network namespace")
                .fix("start ovs-vswitchd (systemctl start ovs-vswitchd / openvswitch-switch) and check its log")]
        }
        Err(e) => {
            return vec![Check::unknown("flow.egress", format!("ovs-vswitchd not read: {e}"))
                .fix("check ovs-vswitchd (its log; `ovs-appctl version`), then run the walk again")]
        }
    };
    let ip = sw
        .flows
        .get(&vif.bridge)
        .and_then(|r| r.as_ref().ok())
        .zip(vif.iface(db).and_then(|i| i.ofport))
        .and_then(|(fl, o)| {
            ovsflow::vm_addresses(o, fl)
                .into_iter()
                .find(std::net::IpAddr::is_ipv4)
        });
    // A port without a usable local VLAN forwards nothing: brint.tag says so, and nothing
    // after it is judged.
    if vif
        .iface(db)
        .and_then(|i| i.tag)
        .is_none_or(|t| t == crate::check::ovs::DEAD_VLAN)
    {
        return Vec::new();
    }
    let mut out = ovsflow::dangling_checks(vif, db, &f.net, sw);
    let vni = ovsflow::vni_check(vif, db, &f.net, sw);
    let vni_failed = vni.status == Status::Fail;
    out.push(vni);
    for mut c in ovsflow::trace_checks(vif, db, &f.net, sw) {
        // The trace fails where the VLAN is not mapped to the network's VNI: that is brint.vni's
        // finding, not another one.
        if vni_failed && c.id == "flow.egress" && c.status == Status::Fail {
            c.status = Status::Unknown;
            c.summary = format!(
                "not judged past the missing VNI mapping (see brint.vni): {}",
                c.summary
            );
            c.fix = Some("see brint.vni".into());
        }
        out.push(c);
    }
    // Neutron's security groups against the native OVS firewall, by traced connections.
    if let Some(rec) = f
        .neutron
        .as_ref()
        .and_then(|n| n.ports.as_ref().ok()?.first())
    {
        if vif.hybrid.is_none() {
            out.push(crate::check::neutron::sg_check(rec, vif, sw));
        }
    }
    out.push(ovsflow::handoff_check(
        vif,
        db,
        &f.net,
        sw,
        ip,
        f.neutron.as_ref(),
    ));
    out
}

/// Run the walk: `Error::NotHere` when no OVSDB answers here or the target names none of its VM
/// ports (the caller then walks the routed design).
pub fn run(opts: &Options) -> Result<Walked> {
    let started = Instant::now();
    let mut g = gather::start(opts)?;
    let vif = g.resolve(&opts.target)?;
    // Neutron's records of the port, asked on a thread of their own while the host is read.
    let neutron = opts.source.cloud.as_ref().map(|c| {
        let q = match (&vif.port_id, &vif.mac) {
            (Some(id), _) => crate::collect::openstack::neutron::PortQuery::Id(id.clone()),
            (None, Some(m)) => crate::collect::openstack::neutron::PortQuery::Mac(m.clone()),
            (None, None) => crate::collect::openstack::neutron::PortQuery::Id(vif.tap.clone()),
        };
        // The agent's record of the port's network (other_config:net_uuid).
        let net = g
            .db()
            .ports
            .iter()
            .find(|p| p.name == vif.ovs_iface)
            .and_then(|p| p.port_config.get("net_uuid").cloned());
        crate::collect::openstack::spawn_lookup(c.clone(), q, net, true, opts.timeout)
    });
    let mut facts = g.finish(&vif, opts.timeout, neutron)?;
    facts.neutron_host = opts
        .source
        .host
        .clone()
        .unwrap_or_else(|| facts.host.clone());
    let checks = checks(&facts, &vif, opts.mtu, opts.mac.as_deref());
    let v = verdict(&checks);
    let iface = facts.ovsdb.as_ref().ok().and_then(|db| vif.iface(db));
    let report = Report {
        target: opts.target.to_string(),
        host: facts.host.clone(),
        design: "ovs",
        verdict: v,
        exit_code: crate::model::exit_code(v),
        port: PortReport {
            tap: vif.tap.clone(),
            port_id: vif.port_id.clone().unwrap_or_default(),
            matched_by: vif.matched_by.clone(),
            ovs_interface: vif.ovs_iface.clone(),
            bridge: vif.bridge.clone(),
            mac: vif.mac.clone(),
            plug: if vif.hybrid.is_some() {
                "hybrid"
            } else {
                "native"
            },
            ofport: iface.and_then(|i| i.ofport),
            local_vlan: iface.and_then(|i| i.tag),
        },
        source: opts.source.report(facts.neutron.as_ref()),
        checks,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok(Walked { report, facts, vif })
}
