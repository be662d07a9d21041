//! What one probe run is asked to do: the destination, the flows (source ports), the limits and
//! which flows to trace. Shared by the engine and the network it opens.

use std::net::IpAddr;
use std::time::Duration;

use super::schedule::HopsMode;

/// The options of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub dst: IpAddr,
    pub port: u16,
    /// Source ports, one flow each.
    pub sports: Vec<u16>,
    /// When false, ports that are in use locally are skipped (and replaced) instead of failing.
    pub explicit_sports: bool,
    pub max_ttl: u8,
    pub source: Option<IpAddr>,
    pub interface: Option<String>,
    pub repeat: u32,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Bound on the whole run (pacing for rate limits stops here).
    pub max_time: Duration,
    pub hops: HopsMode,
}
