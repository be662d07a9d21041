//! `vmpath path TARGET`: arguments and rendering; the work is in `crate::path`.

use std::path::PathBuf;

use clap::Args;

use super::args::GlobalArgs;
use crate::error::{Error, Result};
use crate::output;
use crate::path;

#[derive(Debug, Args)]
pub struct PathArgs {
    /// The VM: a Neutron port UUID, its instance's UUID, an address or a MAC (found in Neutron)
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// The clouds.yaml cloud to use [default: OS_CLOUD, the config's `cloud`, OS_* variables,
    /// or the only cloud in clouds.yaml]
    #[arg(long, value_name = "NAME")]
    pub os_cloud: Option<String>,
    /// ssh's config file (`ssh -F`; default: the user's own ~/.ssh/config)
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Reach the hosts through this jump host (`ssh -J`)
    #[arg(long, value_name = "HOST")]
    pub jump: Option<String>,
    /// The vmpath to run on the other hosts
    #[arg(long, value_name = "PATH", default_value = "vmpath")]
    pub remote_vmpath: String,
    /// How long to wait for each Neutron call, and the remote walks' --timeout: 2s
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub timeout: String,
    /// How long to wait for each host (the SSH connection and its walk): 60s
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub host_timeout: String,
}

pub fn exec(g: &GlobalArgs, a: &PathArgs) -> Result<u8> {
    let target = crate::port::target::Target::parse(&a.target)?;
    let timeout = crate::config::parse_duration(&a.timeout).map_err(|e| e.context("--timeout"))?;
    let host_timeout =
        crate::config::parse_duration(&a.host_timeout).map_err(|e| e.context("--host-timeout"))?;
    if a.remote_vmpath.is_empty() || a.remote_vmpath.starts_with('-') {
        return Err(Error::usage("--remote-vmpath must name a program"));
    }
    let src = super::args::SourceArgs {
        source: super::args::SourceArg::Neutron,
        os_cloud: a.os_cloud.clone(),
    }
    .choose(g)?;
    let cloud = src.cloud.clone().ok_or_else(|| {
        Error::usage("vmpath path needs OpenStack credentials (clouds.yaml or OS_*)")
    })?;
    let rep = path::run(&path::Options {
        target,
        cloud,
        timeout,
        host_timeout,
        ssh_config: a.ssh_config.clone(),
        jump: a.jump.clone(),
        remote_vmpath: a.remote_vmpath.clone(),
        remote_timeout: timeout,
    })?;
    let res = output::emit(g.json, &rep, |out| {
        writeln!(
            out,
            "vmpath path {}: port {} ({} design{})",
            rep.target,
            rep.port_id,
            rep.design,
            rep.router_id
                .as_deref()
                .map(|r| format!(", router {r}"))
                .unwrap_or_default()
        )?;
        for n in &rep.neutron {
            writeln!(out, "  Neutron: {n}")?;
        }
        for h in &rep.hops {
            let bad: Vec<String> = h
                .report
                .as_ref()
                .map(|r| {
                    path::hop_checks(r)
                        .iter()
                        .filter(|c| c["status"] != "ok")
                        .map(|c| {
                            format!(
                                "{} {}",
                                c["status"].as_str().unwrap_or("?"),
                                c["id"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            writeln!(
                out,
                "{:<8} {:<16} {:<18} {} ms{}",
                h.verdict.as_str().to_ascii_uppercase(),
                h.host,
                h.role,
                h.elapsed_ms,
                if bad.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", bad.join(", "))
                }
            )?;
            if let Some(e) = &h.error {
                writeln!(out, "           not read: {e}")?;
            }
            if let Some(r) = &h.report {
                for c in path::hop_checks(r) {
                    let id = c["id"].as_str().unwrap_or("");
                    // On the hypervisor, where the VM's packet leaves (the tunnel): the next
                    // lines are the gateways that take it.
                    if c["status"] == "ok" && id == "flow.egress" && h.role == "hypervisor" {
                        writeln!(
                            out,
                            "           tunnel: {}",
                            c["summary"].as_str().unwrap_or("")
                        )?;
                    }
                    if c["status"] != "ok" {
                        writeln!(
                            out,
                            "           {id}: {}",
                            c["summary"].as_str().unwrap_or("")
                        )?;
                        if let Some(f) = c["fix"].as_str() {
                            writeln!(out, "             fix: {f}")?;
                        }
                    }
                }
            }
        }
        writeln!(
            out,
            "verdict: {} ({} hosts in {} ms)",
            rep.verdict.as_str().to_ascii_uppercase(),
            rep.hops.len(),
            rep.elapsed_ms
        )
    });
    Ok(output::exit_after("path", res, rep.exit_code))
}
