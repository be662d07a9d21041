//! `vmpath probe`: a TCP traceroute that keeps one 5-tuple per flow, so that ECMP and
//! two-gateway asymmetry show up as "these flows die at gw2, those work".
//!
//! [`packet`] builds probes and matches replies (pure), [`route`] asks the local kernel for its
//! own ECMP choice per flow, [`schedule`] decides what to send when (pure: the routers' modelled
//! ICMP buckets, retries, which flows to trace, the hop rows), [`net`] is the engine's window on
//! the machine (the [`net::Network`] trait and its raw sockets), [`engine`] runs the schedule on
//! a network, [`config`] is what a run is asked to do, [`report`] turns per-flow results into the
//! summary (pure).

pub mod config;
pub mod engine;
pub mod net;
pub mod packet;
pub mod report;
pub mod route;
pub mod schedule;

#[cfg(test)]
mod fakenet;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod scenarios;
