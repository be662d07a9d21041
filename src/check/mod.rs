//! Checks: pure functions from collected facts to findings.

pub mod dhcp;
pub mod host;
