//! `vmpath walk` on a routed (L2-less) hypervisor: gather the host once (`gather.rs`), resolve
//! the target to a port, then run the pure checks (`checks.rs`) in path order. Reads only; never
//! changes the host.

pub mod checks;
pub mod gather;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use gather::{Facts, Port, Sources};

use crate::check::sg::Flow;
use crate::error::Result;
use crate::model::{verdict, Check, Status};
use crate::port::target::Target;
use crate::port::{Desired, Overrides};

/// Validated options for one walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub target: Target,
    /// `--source` (the routed walk reports it; it reads the host's records only today).
    pub source: crate::port::source::Source,
    /// `--flow`, checked against the security group.
    pub flow: Option<Flow>,
    pub timeout: Duration,
    pub overrides: Overrides,
    pub sources: Sources,
    /// What the configuration says the host must run.
    pub expect: crate::check::Expect,
}

/// The walk's result; its JSON form is documented in README.md.
#[derive(Debug, Clone, Serialize)]
pub struct WalkReport {
    pub target: String,
    pub host: String,
    /// `routed` (this walk); `ovs` for a compute node's (`crate::compute`).
    pub design: &'static str,
    pub verdict: Status,
    pub exit_code: u8,
    pub port: PortReport,
    /// Where the desired state came from: always the host's records on a routed hypervisor
    /// today (README "Neutron as the source of the desired state").
    pub source: crate::port::source::SourceReport,
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

impl PortReport {
    pub fn of(p: &Port) -> PortReport {
        PortReport {
            tap: p.id.tap.clone(),
            port_id: p.id.port_id.clone(),
            matched_by: p.id.matched_by.clone(),
            desired_source: p.desired_source.clone(),
            desired: p.desired.clone(),
        }
    }
}

/// A walk's report with what it was computed from (for `vmpath plumb`, which acts on the same
/// facts, and for `VMPATH_FACTS_OUT`).
#[derive(Debug, Clone)]
pub struct Walked {
    pub report: WalkReport,
    pub facts: Facts,
    pub port: Port,
}

/// Run the walk. `Error::NotHere` when the target names no port on this host.
pub fn run(opts: &WalkOptions) -> Result<Walked> {
    let started = Instant::now();
    let g = gather::start(&opts.sources, opts.timeout)?;
    let tm = g.timer;
    let port = g.port(&opts.target, &opts.overrides)?;
    let facts = g.finish(std::slice::from_ref(&port));
    let checks = checks::port(&facts, &port, opts.flow.as_ref(), opts.expect);
    tm.mark("checks done");
    let v = verdict(&checks);
    let report = WalkReport {
        target: opts.target.to_string(),
        host: facts.host.clone(),
        design: "routed",
        verdict: v,
        exit_code: crate::model::exit_code(v),
        port: PortReport::of(&port),
        source: opts.source.routed_report(),
        checks,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok(Walked {
        report,
        facts,
        port,
    })
}
