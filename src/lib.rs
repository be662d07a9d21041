//! vmpath: walk, probe and repair the network path of an OpenStack VM.

pub mod check;
pub mod cli;
pub mod cmd;
pub mod collect;
pub mod compute;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod model;
pub mod output;
pub mod path;
pub mod plumb;
pub mod port;
pub mod probe;
#[cfg(test)]
mod testing;
pub mod walk;
