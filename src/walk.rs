//! `vmpath walk`: gather the facts for one port (in parallel where the sources are independent),
//! then run the checks in path order. Reads only; never changes the host.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::check::{self, dhcp, host};
use crate::collect::bgp;
use crate::collect::dnsmasq::{self, Dnsmasq};
use crate::collect::netlink::{HostNet, Netlink};
use crate::collect::procs::{pid_alive, ProcTable};
use crate::model::{verdict, Check, Status};
use crate::port::{self, Desired, DesiredSource, HostRecords, Identity, Overrides};
use crate::target::Target;

/// Validated options for one walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub target: Target,
    pub flow: Option<String>,
    pub timeout: Duration,
    pub overrides: Overrides,
    pub bird_socket: Option<PathBuf>,
    pub frr_dir: Option<PathBuf>,
    pub dhcp_hostsdir: Option<PathBuf>,
}

/// The walk's result; its JSON form is documented in README.md.
#[derive(Debug, Clone, Serialize)]
pub struct WalkReport {
    pub target: String,
    pub host: String,
    pub verdict: Status,
    pub exit_code: u8,
    pub port: PortReport,
    pub checks: Vec<Check>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    pub tap: String,
    pub port_id: String,
    pub matched_by: String,
    pub desired_source: String,
    pub desired: Desired,
}

/// A walk that could not start: the message and the exit code.
#[derive(Debug)]
pub struct WalkError {
    pub message: String,
    pub exit_code: u8,
}

impl WalkError {
    fn usage(m: impl Into<String>) -> Self {
        WalkError {
            message: m.into(),
            exit_code: crate::model::exit::USAGE,
        }
    }
    fn unknown(m: impl Into<String>) -> Self {
        WalkError {
            message: m.into(),
            exit_code: crate::model::exit::UNKNOWN,
        }
    }
}

/// Phase timings on stderr when VMPATH_TIMINGS is set (diagnosing a slow walk in the field).
struct Timer {
    on: bool,
    start: Instant,
}

impl Timer {
    fn new() -> Self {
        Timer {
            on: std::env::var_os("VMPATH_TIMINGS").is_some(),
            start: Instant::now(),
        }
    }
    fn mark(&self, what: &str) {
        if self.on {
            eprintln!(
                "vmpath timing: {:>8.2} ms  {what}",
                self.start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Facts read once per walk (the firewall is read concurrently; see [`run`]).
struct Facts {
    net: HostNet,
    procs: ProcTable,
    dnsmasq: Vec<Dnsmasq>,
}

/// Links, addresses, routes, neighbours, processes and dnsmasq. The netlink connection is kept
/// for the route lookups.
fn gather(
    opts: &WalkOptions,
    rt: &tokio::runtime::Runtime,
    tm: &Timer,
) -> Result<(Facts, Netlink), WalkError> {
    // Reading a cmdline can block on a process stuck in D state: bound the scan by the timeout.
    let (procs_tx, procs_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = procs_tx.send(ProcTable::scan());
    });
    let (net, nl) = rt
        .block_on(async {
            let nl = Netlink::open().map_err(|e| e.to_string())?;
            let net = tokio::time::timeout(opts.timeout, nl.snapshot())
                .await
                .map_err(|_| format!("rtnetlink dump: no answer within {:?}", opts.timeout))?
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((net, nl))
        })
        .map_err(|e| {
            WalkError::unknown(format!(
                "{e}: cannot read this host's interfaces and routes — run vmpath as root, in the hypervisor's network namespace"
            ))
        })?;
    tm.mark("netlink snapshot");
    let procs = procs_rx
        .recv_timeout(opts.timeout)
        .map_err(|_| {
            WalkError::unknown(format!(
                "scanning /proc for the routing daemons and dnsmasq did not finish within {:?} (a process stuck in D state?): retry with a longer --timeout",
                opts.timeout
            ))
        })?
        .map_err(|e| WalkError::unknown(format!("cannot scan /proc: {e} — is /proc mounted?")))?;
    tm.mark("process scan");
    let mut dnsmasq = dnsmasq::discover(&procs);
    if let Some(dir) = &opts.dhcp_hostsdir {
        // A dir no running dnsmasq reads is a source of its own (no process behind it).
        if !dnsmasq.iter().any(|d| d.hostsdirs.contains(dir)) {
            dnsmasq.push(dnsmasq::from_hostsdir(dir));
        }
    }
    tm.mark("dnsmasq");
    Ok((
        Facts {
            net,
            procs,
            dnsmasq,
        },
        nl,
    ))
}

/// Run the walk.
pub fn run(opts: &WalkOptions) -> Result<WalkReport, WalkError> {
    run_with_state(opts).map(|(r, _)| r)
}

/// What a walk saw, for callers that act on it (`vmpath plumb`): the same snapshot the checks
/// were computed from.
#[derive(Debug, Clone)]
pub struct WalkState {
    pub net: HostNet,
    pub dnsmasq: Vec<Dnsmasq>,
    pub id: Identity,
    pub desired: Desired,
    pub desired_source: String,
}

/// Run the walk and also return the facts and the port it resolved.
pub fn run_with_state(opts: &WalkOptions) -> Result<(WalkReport, WalkState), WalkError> {
    let started = Instant::now();
    let tm = Timer::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WalkError::unknown(format!("cannot start the async runtime: {e}")))?;
    tm.mark("runtime");
    // The firewall tools are the slowest source (forks): start them first, join them last.
    let fw_timeout = opts.timeout;
    let fw_thread = std::thread::spawn(move || crate::collect::firewall::collect_with(fw_timeout));
    let (facts, nl) = gather(opts, &rt, &tm)?;
    let id = port::resolve(&opts.target, &facts.net, &facts.dnsmasq).map_err(WalkError::usage)?;
    let source = HostRecords {
        dnsmasq: &facts.dnsmasq,
        overrides: &opts.overrides,
    };
    let want = source.desired(&id, &facts.net);
    tm.mark("resolved");
    let checks = run_checks(opts, &rt, &nl, fw_thread, &facts, &id, &want, &tm);
    tm.mark("checks done");
    let v = verdict(&checks);
    let state = WalkState {
        net: facts.net.clone(),
        dnsmasq: facts.dnsmasq.clone(),
        id: id.clone(),
        desired: want.clone(),
        desired_source: source.name(),
    };
    let report = WalkReport {
        target: opts.target.to_string(),
        host: hostname(),
        verdict: v,
        exit_code: crate::model::exit_code(v),
        port: PortReport {
            tap: id.tap.clone(),
            port_id: id.port_id.clone(),
            matched_by: id.matched_by.clone(),
            desired_source: source.name(),
            desired: want,
        },
        checks,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok((report, state))
}

#[allow(clippy::too_many_arguments)]
fn run_checks(
    opts: &WalkOptions,
    rt: &tokio::runtime::Runtime,
    nl: &Netlink,
    fw_thread: std::thread::JoinHandle<crate::collect::firewall::FirewallFacts>,
    facts: &Facts,
    id: &Identity,
    want: &Desired,
    tm: &Timer,
) -> Vec<Check> {
    let ips = want.ip_list();
    let flow = opts
        .flow
        .as_deref()
        .and_then(|f| check::sg::parse_flow(f).ok());
    // BGP: one thread per routing daemon, bounded by the timeout, while the host is checked.
    let prefixes: Vec<(IpAddr, u8)> = ips
        .iter()
        .map(|ip| (*ip, crate::collect::netlink::host_len(ip)))
        .collect();
    let speakers = bgp::discover(
        &facts.procs,
        &bgp::Overrides {
            bird_socket: opts.bird_socket.clone(),
            frr_dir: opts.frr_dir.clone(),
        },
    );
    let bgp_threads = bgp::spawn_collect(speakers, &prefixes, opts.timeout);
    type Lookup = Result<Option<crate::collect::netlink::Route>, String>;
    let lookups: BTreeMap<IpAddr, Lookup> = rt.block_on(async {
        let mut m = BTreeMap::new();
        for ip in &ips {
            let r = tokio::time::timeout(opts.timeout, nl.route_get(*ip, None, None))
                .await
                .map_err(|_| format!("no answer within {:?}", opts.timeout))
                .and_then(|r| r.map_err(|e| e.to_string()));
            m.insert(*ip, r);
        }
        m
    });
    let hf = host::HostFacts {
        net: &facts.net,
        sysctl: crate::collect::sysctl::TapSysctls::of(&id.tap),
        lookups,
    };
    let mut out = Vec::new();
    out.extend(host::tap_checks(id, want, &hf));
    out.extend(host::gateway_checks(id, want, &hf));
    out.extend(host::proxy_checks(id, want, &hf));
    out.extend(host::route_checks(id, want, &hf));
    out.extend(host::neigh_checks(id, want, &hf));
    tm.mark("host checks");
    let fw = fw_thread.join().unwrap_or_else(|_| {
        crate::collect::firewall::FirewallFacts::failed("the firewall reader panicked")
    });
    if tm.on {
        for s in &fw.sources {
            tm.mark(&format!(
                "firewall: {} took {:.2} ms",
                s.command,
                s.elapsed.as_secs_f64() * 1e3
            ));
            if let Some(n) = &s.note {
                tm.mark(&format!("firewall: {n}"));
            }
        }
    }
    // Security group.
    let sg_port = check::sg::SgPort::new(
        &id.tap,
        &id.port_id,
        &ips,
        want.mac.as_ref().map(|m| m.value.as_str()),
    );
    out.extend(check::sg::checks(&fw, &sg_port, flow.as_ref()));
    tm.mark("sg checks");
    out.push(dhcp::server_check(id, &facts.dnsmasq, &pid_alive));
    let macs = dhcp::MacEvidence::from_host(&facts.net, &id.tap, &ips, opts.overrides.mac.clone());
    out.push(dhcp::host_check(id, &facts.dnsmasq, &facts.net, &macs));
    // Metadata: from the VM's first IPv4 address (the metadata service is IPv4).
    if let Some(vm4) = ips.iter().find(|i| i.is_ipv4()) {
        let local = facts.net.local_addrs();
        let ports = check::metadata::wanted_ports(&fw, &local, &id.tap, *vm4);
        tm.mark("metadata ports");
        let pids: Vec<u32> = facts.procs.procs.iter().map(|p| p.pid).collect();
        let socks = crate::collect::sockets::collect_among(Some(&ports), Some(&pids));
        tm.mark("sockets");
        out.push(check::metadata::check_metadata(
            &fw,
            &socks,
            &local,
            &id.tap,
            *vm4,
            want.mac.as_ref().map(|m| m.value.as_str()),
        ));
    }
    tm.mark("sg, dhcp, metadata checks");
    // BGP last: the RIB, then each peer.
    let pfx_names: Vec<String> = prefixes.iter().map(|(ip, l)| format!("{ip}/{l}")).collect();
    if bgp_threads.is_empty() {
        out.extend(check::bgp::no_speaker(&pfx_names));
    }
    for t in bgp_threads {
        match t.join() {
            Ok((_, Ok(f))) => out.extend(check::bgp::evaluate(&f, &pfx_names)),
            Ok((sp, Err(e))) => out.extend(check::bgp::unreachable(&sp.describe(), &e, &pfx_names)),
            Err(_) => out.push(check::bgp::collector_panicked()),
        }
    }
    out
}
