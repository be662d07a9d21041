//! Reading an Open vSwitch compute node once: OVSDB first (it says whether the target is an
//! OVS port here at all, before anything else is read), then the kernel's interfaces, addresses
//! and routes in one netlink snapshot. [`Facts`] is the one value the pure checks look at; it
//! serializes, so a captured host can be checked again without root (`VMPATH_FACTS_OUT`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Options;
use crate::check::ovsflow::{self, Switch, TraceAsk};
use crate::collect::deadline::Deadline;
use crate::collect::netlink::{HostNet, Netlink};
use crate::collect::openstack::{neutron, NeutronFacts};
use crate::collect::ovsctl::{self, flows, trace, Session};
use crate::collect::ovsdb::{self, OvsDb};
use crate::collect::procs::ProcTable;
use crate::error::{Error, Result};
use crate::port::target::Target;
use crate::port::vif::{self, Vif};

/// Everything the compute walk's checks look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub host: String,
    /// The OVSDB socket read.
    pub ovsdb_socket: String,
    pub ovsdb: Result<OvsDb>,
    pub net: HostNet,
    /// What ovs-vswitchd answered: the flows of the port's bridges and the traces of its
    /// packets. `Error::NotHere` when no ovs-vswitchd runs here (nothing forwards), `Unknown`
    /// when it is not trusted or does not answer.
    #[serde(default = "not_read")]
    pub vswitchd: Result<Switch>,
    /// The firewall rules (iptables, nftables), read for a hybrid plug: its security group is
    /// enforced by iptables on the qbr bridge (physdev matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<crate::collect::firewall::FirewallFacts>,
    /// What Neutron said of the port (`--source neutron`, or `auto` with credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neutron: Option<NeutronFacts>,
    /// The name Neutron knows this host by (`binding:host_id` of its ports): the config's
    /// `neutron_host`, else the host name.
    #[serde(default)]
    pub neutron_host: String,
}

/// The trace's destination: the router interface that is the port's gateway (Neutron's
/// records), when known.
pub fn gateway_of(n: Option<&NeutronFacts>) -> Option<&neutron::Gateway> {
    n?.ports.as_ref().ok()?.first()?.gateway()
}

fn not_read() -> Result<Switch> {
    Err(Error::unknown("ovs-vswitchd was not read"))
}

/// OVSDB read; the rest still to read.
pub struct Gathering {
    socket: String,
    db: OvsDb,
    /// The ovs-vswitchd to ask (or why none), and a session opened early for a walk by address.
    switch: Result<ovsctl::Vswitchd>,
    session: Option<Session>,
    deadline: Deadline,
    pre_flows: std::collections::BTreeMap<String, Result<Vec<flows::Flow>>>,
}

/// Read the OVSDB of this host: `Error::NotHere` when no trusted ovsdb-server runs here (not
/// an OVS host: the routed design applies), `Error::Unknown` when one runs but none answers
/// (the design of the port cannot be told).
pub fn start(opts: &Options) -> Result<Gathering> {
    // One process scan for the OVSDB servers and ovs-vswitchd.
    let procs = ProcTable::scan()
        .map_err(|e| Error::unknown(format!("cannot scan /proc for ovsdb-server: {e}")))?;
    let servers = ovsdb::servers(&opts.ovsdb, &procs.procs, &opts.trust);
    let trusted: Vec<&ovsdb::Server> = servers.iter().filter(|s| s.untrusted.is_none()).collect();
    if trusted.is_empty() {
        let why = servers
            .iter()
            .filter_map(|s| {
                s.untrusted
                    .as_deref()
                    .map(|w| format!("{} not read: {w}", s.socket.display()))
            })
            .collect::<Vec<_>>();
        return Err(Error::not_here(if why.is_empty() {
            "no ovsdb-server runs here".to_string()
        } else {
            format!("no trusted ovsdb-server runs here ({})", why.join("; "))
        }));
    }
    let mut failures = Vec::new();
    for s in trusted {
        match ovsdb::query_db(&s.socket, opts.timeout) {
            Ok(db) => {
                return Ok(Gathering {
                    socket: s.socket.display().to_string(),
                    db,
                    switch: find_vswitchd(&procs, opts),
                    session: None,
                    deadline: Deadline::after(opts.timeout),
                    pre_flows: Default::default(),
                })
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(Error::unknown(format!(
        "{}: cannot tell whether {} is plugged into Open vSwitch here; when it is a routed port, `--design routed` walks it without OVSDB",
        failures.join("; "),
        opts.target
    )))
}

/// The ovs-vswitchd of this host: the first trusted one with a control socket.
fn find_vswitchd(procs: &ProcTable, opts: &Options) -> Result<ovsctl::Vswitchd> {
    let found = ovsctl::discover(&procs.procs, &opts.trust);
    if let Some(v) = found.iter().find(|v| v.untrusted.is_none()) {
        return Ok(v.clone());
    }
    match found.first() {
        Some(v) => Err(Error::unknown(format!(
            "ovs-vswitchd (pid {}) not asked: {}",
            v.pid,
            v.untrusted.as_deref().unwrap_or("?")
        ))),
        None => Err(Error::not_here(
            "no ovs-vswitchd runs here: OVSDB is configured but no datapath forwards anything",
        )),
    }
}

impl Gathering {
    /// The VM port `target` names in OVSDB (`Error::NotHere` when none). An address is found
    /// through the flows: the native OVS firewall's flows of a port name its addresses.
    pub fn resolve(&mut self, target: &Target) -> Result<Vif> {
        let Target::Ip(ip) = target else {
            return vif::resolve(target, &self.db);
        };
        // The bridges that hold VM ports.
        let mut bridges: Vec<String> = self
            .db
            .ports
            .iter()
            .filter(|p| p.iface_id.is_some() && p.bridge.is_none())
            .filter_map(|p| p.in_bridge.clone())
            .collect();
        bridges.sort();
        bridges.dedup();
        let mut found = Vec::new();
        for b in bridges {
            let flows = self.dump_flows(&b);
            if let Ok(f) = &flows {
                for o in ovsflow::port_of_address(*ip, f) {
                    if let Some(p) =
                        self.db.ports.iter().find(|p| {
                            p.in_bridge.as_deref() == Some(b.as_str()) && p.ofport == Some(o)
                        })
                    {
                        found.push(p.name.clone());
                    }
                }
            }
            self.pre_flows.insert(b, flows);
        }
        match found.as_slice() {
            [one] => vif::resolve(&Target::Tap(one.clone()), &self.db).map(|mut v| {
                v.matched_by = "the OVS firewall's flows for the address".into();
                v
            }),
            [] => Err(Error::not_here(format!(
                "no OVS firewall flow on this host names {ip} (a port without port security, or another host's)"
            ))),
            many => Err(Error::usage(format!(
                "{ip} is named by the flows of {} ports ({}): name one by its port UUID or tap",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    /// The OVSDB read.
    pub fn db(&self) -> &OvsDb {
        &self.db
    }

    /// `bridge/dump-flows BRIDGE` on the session (opened on first use).
    fn dump_flows(&mut self, bridge: &str) -> Result<Vec<flows::Flow>> {
        let text = self.call("bridge/dump-flows", &[bridge])?;
        Ok(flows::parse_dump_flows(&text))
    }

    fn call(&mut self, method: &str, params: &[&str]) -> Result<String> {
        if self.session.is_none() {
            let v = self.switch.clone()?;
            self.session = Some(Session::connect(&v.socket, &self.deadline)?);
        }
        match self.session.as_mut() {
            Some(s) => s.call(method, params),
            None => Err(Error::unknown("no ovs-vswitchd session")),
        }
    }

    /// The flows of the VIF's bridges and the traces of its packets, on one session.
    fn read_switch(
        &mut self,
        vif: &Vif,
        net: &HostNet,
        dst: Option<(&str, std::net::IpAddr)>,
        probes: &[ovsflow::SgProbe],
    ) -> Result<Switch> {
        let v = self.switch.clone()?;
        let mut sw = Switch {
            socket: v.socket.display().to_string(),
            ..Default::default()
        };
        for b in ovsflow::bridges(vif, &self.db, net) {
            let f = match self.pre_flows.remove(&b) {
                Some(f) => f,
                None => self.dump_flows(&b),
            };
            sw.flows.insert(b, f);
        }
        // ovs-vswitchd not answering at all: one unknown, not a trace per question.
        if let Some(Err(e)) = sw
            .flows
            .values()
            .find(|_| sw.flows.values().all(|f| f.is_err()))
        {
            return Err(e.clone());
        }
        if ovsflow::tunnel_bridge(vif, &self.db, net).is_some_and(|b| self.db.userspace(&b)) {
            sw.routes = Some(
                self.call("ovs/route/show", &[])
                    .map(|t| ovsctl::replies::parse_route_show(&t)),
            );
        }
        for ask in ovsflow::plan(vif, &self.db, net, &sw, dst, probes) {
            let t = self.trace(&ask);
            sw.traces.push((ask, t));
        }
        Ok(sw)
    }

    /// One trace; a tunnel neighbor not yet resolved is asked once more (the first trace made
    /// ovs-vswitchd send the ARP/ND request).
    fn trace(&mut self, ask: &TraceAsk) -> Result<trace::Trace> {
        let mut params: Vec<&str> = vec![ask.bridge.as_str(), ask.flow.as_str()];
        params.extend(ask.options.iter().map(String::as_str));
        let t = trace::parse_trace(&self.call("ofproto/trace", &params)?);
        if matches!(t.verdict(), trace::Outcome::NeighborMiss { .. }) {
            std::thread::sleep(Duration::from_millis(200));
            return Ok(trace::parse_trace(&self.call("ofproto/trace", &params)?));
        }
        Ok(t)
    }

    /// Read the kernel's view (one netlink snapshot, bounded by `timeout`), then ovs-vswitchd's
    /// flows and traces for `vif` — towards the port's gateway when Neutron's answer (`neutron`,
    /// asked meanwhile on its own thread) names it.
    pub fn finish(
        mut self,
        vif: &Vif,
        timeout: Duration,
        neutron: Option<std::thread::JoinHandle<NeutronFacts>>,
    ) -> Result<Facts> {
        // A hybrid plug's security group is iptables' on its qbr: read the rules meanwhile.
        let firewall = vif
            .hybrid
            .is_some()
            .then(|| std::thread::spawn(move || crate::collect::firewall::collect_with(timeout)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::unknown(format!("cannot start the async runtime: {e}")))?;
        let net = rt
            .block_on(async {
                let nl = Netlink::open().map_err(|e| e.to_string())?;
                tokio::time::timeout(timeout, nl.snapshot())
                    .await
                    .map_err(|_| format!("rtnetlink dump: no answer within {timeout:?}"))?
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| {
                Error::unknown(format!(
                    "{e}: cannot read this host's interfaces and routes — run vmpath as root, in the compute node's network namespace"
                ))
            })?;
        let neutron = neutron.and_then(|h| h.join().ok());
        if neutron.is_some() {
            // ovs-vswitchd's reads get their own --timeout, whatever Neutron took.
            self.deadline = Deadline::after(timeout);
            if let Some(s) = self.session.as_mut() {
                s.rearm(&self.deadline);
            }
        }
        let dst = gateway_of(neutron.as_ref()).map(|g| (g.mac.as_str(), g.ip));
        let probes = neutron
            .as_ref()
            .and_then(|n| n.ports.as_ref().ok()?.first())
            .map(crate::check::neutron::sg_probes)
            .unwrap_or_default();
        let vswitchd = self.read_switch(vif, &net, dst, &probes);
        let firewall = firewall.and_then(|h| h.join().ok());
        Ok(Facts {
            host: crate::collect::hostname::hostname(),
            ovsdb_socket: self.socket,
            ovsdb: Ok(self.db),
            net,
            vswitchd,
            firewall,
            neutron,
            neutron_host: String::new(),
        })
    }
}
