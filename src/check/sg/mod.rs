//! Security-group checks for one port: `sg.chains` (the port's chains exist and are hooked),
//! `sg.drops` (no explicit rule other than the defaults is dropping the VM's traffic) and
//! `sg.flow` (a given flow is accepted). Pure: firewall facts in, findings out.
//!
//! Per-port chains are recognised by name — Neutron `neutron-<agent>-{i,o,s}<port10>`, Calico
//! `cali-{tw,fw}-<tap>` and any chain named `...{tw,fw}-<tap>` — and, where no naming scheme is in
//! use, as the chains that rules matching exactly this tap (`-i/-o`, physdev, nft
//! `iifname/oifname`) jump to from the hooked base chains.
//!
//! `chains.rs` finds the per-port chains, `drops.rs` reads their counters, `flow.rs` parses and
//! judges one flow; `eval.rs` is the evaluator that walks a packet through the rules.

mod chains;
mod drops;
pub mod eval;
mod flow;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use chains::check_chains;
pub use drops::check_drops;
pub use flow::{check_flow, evaluate_flow, flow_packet, parse_flow, Direction, Flow, FlowProto};

use crate::collect::firewall::FirewallFacts;
use crate::model::Check;

/// The port the checks are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgPort {
    /// `tap` + the first 11 characters of the port UUID.
    pub tap: String,
    /// Full port UUID, or at least its first 10 characters (the tap's suffix will do).
    pub port_id: String,
    pub ips: Vec<IpAddr>,
    /// Lower-case MAC of the port, when known (anti-spoofing rules match it).
    pub mac: Option<String>,
}

impl SgPort {
    pub fn new(tap: &str, port_id: &str, ips: &[IpAddr], mac: Option<&str>) -> Self {
        SgPort {
            tap: tap.to_string(),
            port_id: port_id.to_string(),
            ips: ips.to_vec(),
            mac: mac.map(str::to_ascii_lowercase),
        }
    }
    /// First 10 characters of the port UUID, as Neutron's chain names carry them.
    pub fn port10(&self) -> String {
        let id = self.port_id.to_ascii_lowercase();
        if let Some(p) = id.get(..10) {
            if p.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return p.to_string();
            }
        }
        self.tap.get(3..13).unwrap_or("").to_ascii_lowercase()
    }
}

/// All security-group checks for a port: `sg.chains`, `sg.drops`, and `sg.flow` when a flow
/// is given.
pub fn checks(fw: &FirewallFacts, port: &SgPort, flow: Option<&Flow>) -> Vec<Check> {
    let mut out = vec![check_chains(fw, port), check_drops(fw, port)];
    if let Some(f) = flow {
        out.extend(check_flow(fw, port, f));
    }
    out
}

fn families(port: &SgPort) -> Vec<bool> {
    let mut v: Vec<bool> = port.ips.iter().map(IpAddr::is_ipv6).collect();
    v.sort();
    v.dedup();
    if v.is_empty() {
        v.push(false);
    }
    v
}

fn fam_label(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn resync_fix(owner: Option<&str>) -> String {
    match owner {
        Some("cali") => "restart calico-felix: it owns the cali-* chains and reprograms every \
                         endpoint's chains on start"
            .to_string(),
        Some(o) if o.starts_with("neutron-") => format!(
            "re-sync the port's security group: restart the agent that owns the {o}-* chains \
             (it rebuilds every port's chains on start)"
        ),
        Some(o) => format!(
            "re-apply the port's security group: restart the agent that owns {o} (it writes the \
             per-port chains)"
        ),
        None => "re-sync the port's security group: restart the L2 agent that writes the \
                 per-port firewall chains"
            .to_string(),
    }
}

fn read_errors(fw: &FirewallFacts) -> Option<String> {
    let e = fw.error_lines();
    (!e.is_empty()).then(|| e.join("; "))
}
