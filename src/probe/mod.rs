//! `vmpath probe`: a TCP traceroute that keeps one 5-tuple per flow, so that ECMP and
//! two-gateway asymmetry show up as "these flows die at gw2, those work".
//!
//! [`packet`] builds probes and matches replies (pure), [`route`] asks the local kernel for its
//! own ECMP choice per flow, [`engine`] owns the sockets and the schedule, [`report`] turns
//! per-flow results into the summary (pure).

pub mod engine;
pub mod packet;
pub mod report;
pub mod route;
