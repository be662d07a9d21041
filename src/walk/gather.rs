//! Reading a routed hypervisor once, for any number of ports: the netlink snapshot, processes,
//! dnsmasq and the firewall (host-wide, started at once and in parallel), then what the ports'
//! checks need beyond that (route lookups, tap sysctls, the BGP speakers' answers, the sockets
//! behind the metadata redirect), read for all the ports together.
//!
//! [`start`] reads the host-wide facts a port is resolved from; [`Gathering::port`] resolves a
//! target; [`Gathering::finish`] reads the rest for the resolved ports and returns [`Facts`], the
//! one value the pure checks in `checks.rs` look at. `Facts` serializes, so a captured host can be
//! checked again without root (`VMPATH_FACTS_OUT`, README "Diagnostics").

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::check::metadata;
use crate::collect::bgp::{self, Spoken};
use crate::collect::dnsmasq::{self, Dnsmasq};
use crate::collect::firewall::FirewallFacts;
use crate::collect::netlink::{host_len, HostNet, Netlink, Route};
use crate::collect::procs::{pid_alive, ProcTable};
use crate::collect::sockets::Listener;
use crate::collect::sysctl::TapSysctls;
use crate::error::{Error, Result};
use crate::port::target::Target;
use crate::port::{self, Desired, DesiredSource, HostRecords, Identity, Overrides};

/// Where to find the sources that discovery would otherwise find from processes.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub bird_socket: Option<PathBuf>,
    pub frr_dir: Option<PathBuf>,
    pub dhcp_hostsdir: Option<PathBuf>,
    /// Which daemons are trusted as sources of paths and sockets.
    pub trust: crate::collect::trust::Policy,
}

/// One port as the walk judges it: which port, and what its host state should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub id: Identity,
    pub desired: Desired,
    /// Where the desired state came from (README "JSON output": `port.desired_source`).
    pub desired_source: String,
    /// The MAC given with `--mac` (evidence against the DHCP record).
    pub mac_flag: Option<String>,
}

impl Port {
    /// The port's host routes: each address with its full prefix length.
    pub fn prefixes(&self) -> Vec<(IpAddr, u8)> {
        self.desired
            .ip_list()
            .iter()
            .map(|ip| (*ip, host_len(ip)))
            .collect()
    }
    /// The address the metadata service is reached from (the service is IPv4).
    pub fn metadata_source(&self) -> Option<IpAddr> {
        self.desired.ip_list().into_iter().find(IpAddr::is_ipv4)
    }
}

/// Everything the walk's checks look at, read once for the host and the ports it was asked
/// about. Maps are keyed by what the ports need (address, tap), so N ports share one read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub host: String,
    pub net: HostNet,
    pub procs: ProcTable,
    pub dnsmasq: Vec<Dnsmasq>,
    /// dnsmasq pids found alive when the host was read.
    pub alive: BTreeSet<u32>,
    pub firewall: FirewallFacts,
    /// The kernel's answer to `ip route get ADDR` per port address (`Ok(None)`: no route).
    pub lookups: BTreeMap<IpAddr, Result<Option<Route>>>,
    pub sysctls: BTreeMap<String, TapSysctls>,
    /// One entry per BGP speaker found; empty when none runs here.
    pub bgp: Vec<Spoken>,
    /// Listening sockets, with owners for the ports the metadata redirects can land on.
    pub sockets: Result<Vec<Listener>>,
}

/// Phase timings on stderr when VMPATH_TIMINGS is set (diagnosing a slow walk in the field).
#[derive(Debug, Clone, Copy)]
pub struct Timer {
    on: bool,
    start: Instant,
}

impl Timer {
    pub fn new() -> Self {
        Timer {
            on: std::env::var_os("VMPATH_TIMINGS").is_some(),
            start: Instant::now(),
        }
    }
    pub fn mark(&self, what: &str) {
        if self.on {
            eprintln!(
                "vmpath timing: {:>8.2} ms  {what}",
                self.start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

impl Default for Timer {
    fn default() -> Self {
        Timer::new()
    }
}

/// The port `target` names among the host's links and records, and its desired state from the
/// host's records and `overrides`. Pure. `Error::NotHere` when no port matches.
pub fn resolve_port(
    net: &HostNet,
    dnsmasq: &[Dnsmasq],
    target: &Target,
    overrides: &Overrides,
) -> Result<Port> {
    let id = port::resolve(target, net, dnsmasq)?;
    let source = HostRecords { dnsmasq, overrides };
    let desired = source.desired(&id, net);
    Ok(Port {
        id,
        desired,
        desired_source: source.name(),
        mac_flag: overrides.mac.clone(),
    })
}

impl Facts {
    /// [`resolve_port`] on the gathered facts (a captured host, or a sweep's one read).
    pub fn port(&self, target: &Target, overrides: &Overrides) -> Result<Port> {
        resolve_port(&self.net, &self.dnsmasq, target, overrides)
    }
}

/// The host-wide facts, read; the firewall still being read on its own thread.
pub struct Gathering {
    sources: Sources,
    timeout: Duration,
    rt: tokio::runtime::Runtime,
    nl: Netlink,
    firewall: JoinHandle<FirewallFacts>,
    pub net: HostNet,
    pub procs: ProcTable,
    pub dnsmasq: Vec<Dnsmasq>,
    pub timer: Timer,
}

/// Start reading the host: the firewall tools (the slowest source) on their own thread, then
/// links, addresses, routes, neighbours, processes and dnsmasq.
pub fn start(sources: &Sources, timeout: Duration) -> Result<Gathering> {
    let timer = Timer::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::unknown(format!("cannot start the async runtime: {e}")))?;
    timer.mark("runtime");
    let firewall = std::thread::spawn(move || crate::collect::firewall::collect_with(timeout));
    // Reading a cmdline can block on a process stuck in D state: bound the scan by the timeout.
    let (procs_tx, procs_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = procs_tx.send(ProcTable::scan());
    });
    let (net, nl) = rt
        .block_on(async {
            let nl = Netlink::open().map_err(|e| e.to_string())?;
            let net = tokio::time::timeout(timeout, nl.snapshot())
                .await
                .map_err(|_| format!("rtnetlink dump: no answer within {timeout:?}"))?
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((net, nl))
        })
        .map_err(|e| {
            Error::unknown(format!(
                "{e}: cannot read this host's interfaces and routes — run vmpath as root, in the hypervisor's network namespace"
            ))
        })?;
    timer.mark("netlink snapshot");
    let procs = procs_rx
        .recv_timeout(timeout)
        .map_err(|_| {
            Error::unknown(format!(
                "scanning /proc for the routing daemons and dnsmasq did not finish within {timeout:?} (a process stuck in D state?): retry with a longer --timeout"
            ))
        })?
        .map_err(|e| Error::unknown(format!("cannot scan /proc: {e} — is /proc mounted?")))?;
    timer.mark("process scan");
    let mut dnsmasq = dnsmasq::discover(&procs, &sources.trust);
    if let Some(dir) = &sources.dhcp_hostsdir {
        // A dir no running dnsmasq reads is a source of its own (no process behind it).
        if !dnsmasq.iter().any(|d| d.hostsdirs.contains(dir)) {
            dnsmasq.push(dnsmasq::from_hostsdir(dir));
        }
    }
    timer.mark("dnsmasq");
    Ok(Gathering {
        sources: sources.clone(),
        timeout,
        rt,
        nl,
        firewall,
        net,
        procs,
        dnsmasq,
        timer,
    })
}

impl Gathering {
    /// The port `target` names on this host, and its desired state from the host's records
    /// (and `overrides`). `Error::NotHere` when no port matches.
    pub fn port(&self, target: &Target, overrides: &Overrides) -> Result<Port> {
        let p = resolve_port(&self.net, &self.dnsmasq, target, overrides);
        self.timer.mark("resolved");
        p
    }

    /// Read what `ports` need beyond the host-wide facts, all ports together, and join the
    /// firewall reader.
    pub fn finish(self, ports: &[Port]) -> Facts {
        let Gathering {
            sources,
            timeout,
            rt,
            nl,
            firewall,
            net,
            procs,
            dnsmasq,
            timer,
        } = self;
        // BGP: one thread per routing daemon, bounded by the timeout, while the rest is read.
        let mut prefixes: Vec<(IpAddr, u8)> = ports.iter().flat_map(Port::prefixes).collect();
        prefixes.sort();
        prefixes.dedup();
        let speakers = bgp::discover(
            &procs,
            &bgp::Overrides {
                bird_socket: sources.bird_socket.clone(),
                frr_dir: sources.frr_dir.clone(),
            },
            &sources.trust,
        );
        let bgp_threads = bgp::spawn_collect(speakers, &prefixes, timeout);
        let ips: BTreeSet<IpAddr> = ports.iter().flat_map(|p| p.desired.ip_list()).collect();
        let lookups: BTreeMap<IpAddr, Result<Option<Route>>> = rt.block_on(async {
            let mut m = BTreeMap::new();
            for ip in &ips {
                let r = tokio::time::timeout(timeout, nl.route_get(*ip, None, None))
                    .await
                    .map_err(|_| Error::unknown(format!("no answer within {timeout:?}")))
                    .and_then(|r| r.map_err(|e| Error::unknown(e.to_string())));
                m.insert(*ip, r);
            }
            m
        });
        let sysctls: BTreeMap<String, TapSysctls> = ports
            .iter()
            .map(|p| (p.id.tap.clone(), TapSysctls::of(&p.id.tap)))
            .collect();
        let alive: BTreeSet<u32> = dnsmasq
            .iter()
            .filter_map(|d| d.pid)
            .filter(|p| pid_alive(*p))
            .collect();
        timer.mark("route lookups, sysctls");
        let firewall = firewall.join().unwrap_or_else(|_| {
            crate::collect::firewall::FirewallFacts::failed("the firewall reader panicked")
        });
        for s in &firewall.sources {
            timer.mark(&format!(
                "firewall: {} took {:.2} ms",
                s.command,
                s.elapsed.as_secs_f64() * 1e3
            ));
            if let Some(n) = &s.note {
                timer.mark(&format!("firewall: {n}"));
            }
        }
        // Sockets: owners only for the ports a metadata request from these VMs may land on.
        let local = net.local_addrs();
        let mut wanted: Vec<u16> = ports
            .iter()
            .filter_map(|p| {
                let vm4 = p.metadata_source()?;
                Some(metadata::wanted_ports(&firewall, &local, &p.id.tap, vm4))
            })
            .flatten()
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let pids: Vec<u32> = procs.procs.iter().map(|p| p.pid).collect();
        let sockets = if wanted.is_empty() {
            Ok(Vec::new())
        } else {
            crate::collect::sockets::collect_among(Some(&wanted), Some(&pids))
        };
        timer.mark("sockets");
        let bgp = bgp::join(bgp_threads);
        timer.mark("bgp");
        Facts {
            host: crate::collect::hostname::hostname(),
            net,
            procs,
            dnsmasq,
            alive,
            firewall,
            lookups,
            sysctls,
            bgp,
            sockets,
        }
    }
}
