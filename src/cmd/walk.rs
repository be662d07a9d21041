//! `vmpath walk TARGET`: arguments and rendering; the work is in `crate::walk` (and, on a
//! gateway node, `crate::gateway`).

use clap::{Args, ValueEnum};

use super::args::{self, GlobalArgs, PortArgs};
use crate::collect::caps;
use crate::compute;
use crate::error::{Error, Result};
use crate::gateway::{self, RouterTarget};
use crate::output::{self, Style};
use crate::port::target::Target;
use crate::walk;

#[derive(Debug, Args)]
pub struct WalkArgs {
    #[command(flatten)]
    pub port: PortArgs,
    /// Evaluate one flow against the security group: [in:|out:]PROTO[/PORT][@PEER]
    /// (tcp/22, out:udp/53, icmp, tcp/443@203.0.113.10); `in` (default) is traffic to the VM
    #[arg(long, value_name = "FLOW")]
    pub flow: Option<String>,
    /// The host's design (default: found by itself — ovs when the port is plugged into Open
    /// vSwitch, else routed)
    #[arg(long, value_enum, value_name = "DESIGN")]
    pub design: Option<Design>,
    #[command(flatten)]
    pub source: args::SourceArgs,
}

/// Which design's walk to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Design {
    /// A routed (L2-less) hypervisor: /32 per VM, proxy ARP, BGP
    Routed,
    /// An Open vSwitch compute node of the overlay design: taps in br-int, VXLAN tunnels
    Ovs,
}

pub fn exec(g: &GlobalArgs, a: &WalkArgs) -> Result<u8> {
    let mut opts = args::walk_options(g, &a.port, a.flow.as_deref())?;
    caps::require(&[(
        caps::CAP_NET_ADMIN,
        "reading the firewall rules and the routing daemons' control sockets",
    )])?;
    // On a gateway node a router id names its qrouter namespace: the router's walk.
    let src = a.source.choose(g)?;
    opts.source = src.clone();
    let gw = gateway_options(g, &opts, &src)?;
    if matches!(opts.target, Target::PortId(_) | Target::PortPrefix(_)) {
        if let Some(r) = gateway::router_for(&opts.target, &gw) {
            return walk_router(g, &r, gw);
        }
    }
    if a.design != Some(Design::Routed) {
        let copts = compute::Options {
            target: opts.target.clone(),
            timeout: opts.timeout,
            mtu: opts.overrides.mtu,
            mac: opts.overrides.mac.clone(),
            ovsdb: Vec::new(),
            trust: opts.sources.trust.clone(),
            source: src.clone(),
        };
        match compute::run(&copts) {
            Ok(w) => return walk_compute(g, &w),
            // Not an OVS port here: the routed design's walk (unless OVS was asked for).
            Err(Error::NotHere(_)) if a.design.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    let walked = match walk::run(&opts) {
        Ok(w) => w,
        // Not a port here: on a gateway node, a tenant address names the router serving it.
        Err(Error::NotHere(m)) => {
            if matches!(opts.target, Target::Ip(_)) {
                if let Some(r) = gateway::router_for(&opts.target, &gw) {
                    return walk_router(g, &r, gw);
                }
            }
            // Nothing here: where Neutron has it, when it can be asked.
            return Err(Error::NotHere(
                match src.locate(&opts.target, opts.timeout) {
                    Some(w) => format!("{m}. {w}"),
                    None => m,
                },
            ));
        }
        Err(e) => return Err(e),
    };
    if let Some(path) = std::env::var_os("VMPATH_FACTS_OUT") {
        output::write_facts(std::path::Path::new(&path), &walked.facts);
    }
    let report = &walked.report;
    let res = output::emit(g.json, report, |out| {
        let style = Style::detect(g.verbose);
        writeln!(
            out,
            "vmpath walk {} on {}: port {} on {} (matched by {})",
            report.target,
            report.host,
            report.port.port_id,
            report.port.tap,
            report.port.matched_by
        )?;
        if src.cloud.is_some() {
            writeln!(out, "{}", report.source.line())?;
        }
        output::render_checks(out, &report.checks, style)?;
        writeln!(
            out,
            "{}",
            output::verdict_line(
                report.verdict,
                &report.checks,
                &format!(
                    " ({} checks in {} ms)",
                    report.checks.len(),
                    report.elapsed_ms
                ),
                style
            )
        )
    });
    Ok(output::exit_after("walk", res, report.exit_code))
}

/// Render the walk of an Open vSwitch compute node's port.
fn walk_compute(g: &GlobalArgs, w: &compute::Walked) -> Result<u8> {
    if let Some(path) = std::env::var_os("VMPATH_FACTS_OUT") {
        output::write_facts(std::path::Path::new(&path), &w.facts);
    }
    let r = &w.report;
    let res = output::emit(g.json, r, |out| {
        let style = Style::detect(g.verbose);
        writeln!(
            out,
            "vmpath walk {} on {} (Open vSwitch compute node): port {} on {} ({} plug, OVS {} in {}; matched by {})",
            r.target,
            r.host,
            if r.port.port_id.is_empty() { "?" } else { &r.port.port_id },
            r.port.tap,
            r.port.plug,
            r.port.ovs_interface,
            r.port.bridge,
            r.port.matched_by
        )?;
        writeln!(out, "{}", r.source.line())?;
        output::render_checks(out, &r.checks, style)?;
        writeln!(
            out,
            "{}",
            output::verdict_line(
                r.verdict,
                &r.checks,
                &format!(" ({} checks in {} ms)", r.checks.len(), r.elapsed_ms),
                style
            )
        )
    });
    Ok(output::exit_after("walk", res, r.exit_code))
}

/// What `vmpath router ID` would read on this node, with the walk's timeout and sources.
fn gateway_options(
    g: &GlobalArgs,
    opts: &walk::WalkOptions,
    src: &crate::port::source::Source,
) -> Result<gateway::Options> {
    let cfg = crate::config::Config::load(g.config.as_deref())?;
    let mut o = gateway::Options::new(opts.timeout);
    o.ha_confs = cfg.ha_confs.clone();
    o.expect_bgp = cfg.expects("bgp");
    o.trust = opts.sources.trust.clone();
    o.neutron = src.clone();
    o.bgp_overrides = crate::collect::bgp::Overrides {
        bird_socket: opts.sources.bird_socket.clone(),
        frr_dir: opts.sources.frr_dir.clone(),
    };
    Ok(o)
}

/// The walk of a router on a gateway node: `vmpath router ID`'s checks.
fn walk_router(g: &GlobalArgs, r: &RouterTarget, mut opts: gateway::Options) -> Result<u8> {
    let intro = r.behind.as_ref().map(|(ip, prefixes)| {
        format!(
            "vmpath walk {ip}: no port for it on this gateway node; it is behind router {} (tenant prefix {}):",
            r.router_id,
            prefixes.join(", ")
        )
    });
    // As `vmpath router ID`: listening on the wire too.
    opts.only = Some(r.router_id.clone());
    opts.wire = gateway::WireMode::Listen;
    let (rep, facts) = gateway::run(&opts)?;
    if let Some(path) = std::env::var_os("VMPATH_FACTS_OUT") {
        output::write_facts(std::path::Path::new(&path), &facts);
    }
    let style = Style::detect(g.verbose);
    let res = output::emit(g.json, &rep, |out| {
        if let Some(l) = &intro {
            writeln!(out, "{l}")?;
        }
        output::routers::one(out, &rep, style)
    });
    Ok(output::exit_after(
        "walk",
        res,
        crate::model::exit_code(rep.verdict),
    ))
}
